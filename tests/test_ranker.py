"""The trained reader (models/ranker.py, training/ranker.py): features, the answer it composes, training,
its file, and the reader that answers open book with it (answering/reader.py, `minillm reader train`)."""

import hashlib
import json
import random
import shutil

import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import TINY_FACTS, tiny_articles
from test_reader import LION, set_reader

from minillm.answering.answer import ANSWER_SAMPLING, answer
from minillm.answering.reader import PatternReading, RankerReading, load_answerer, reader_info, with_reader
from minillm.cli import main
from minillm.core.errors import InputError
from minillm.data.records import QAPair
from minillm.evaluation.qa import evaluate_run
from minillm.evaluation.report import eval_table
from minillm.models.ranker import (
    NOT_ANSWERED,
    PLACE_FEATURES,
    READER_FILE,
    RankerConfig,
    Scorer,
    SentenceRanker,
    candidates,
    compose,
    context_passages,
    features,
)
from minillm.models.weights import write_safetensors
from minillm.retrieval.dense import DIMENSIONS, embed, text_vectors
from minillm.retrieval.dense import available as dense_available
from minillm.retrieval.index import Index
from minillm.training.config import load_config
from minillm.training.ranker import (
    ANSWERABLE_KEEP,
    RankExample,
    answerable_cosine,
    batch_loss,
    draw_questions,
    train_ranker,
)
from minillm.training.runs import load_run

needs_dense = pytest.mark.skipif(not dense_available(), reason="needs the [dense] extra (all-MiniLM-L6-v2)")
LION_CONTEXT = ("The lion is a large cat of Africa and India. It lives in groups called prides. Male lions have "
                "a mane.\nThe Nile is a river in northeast Africa. It flows north into the Mediterranean Sea.")


def bag_of_words(texts):
    """A stand-in encoder: unit vectors of hashed lower-cased words (the same word, the same direction)."""
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().replace(".", " ").replace("?", " ").split():
            out[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_features_hold_the_cosine_the_shared_words_and_the_place():
    passages = context_passages(LION_CONTEXT)
    assert [len(p) for p in passages] == [3, 2]
    places = candidates(passages)
    assert places == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    rows = features("Where do lions live in groups?", passages, places, bag_of_words)
    assert rows.shape == (5, len(PLACE_FEATURES) + DIMENSIONS)
    named = {name: rows[:, k].tolist() for k, name in enumerate(PLACE_FEATURES)}
    vectors = bag_of_words(["Where do lions live in groups?"] + [passages[i][j] for i, j in places])
    assert named["cosine"] == pytest.approx((vectors[1:] @ vectors[0]).tolist(), abs=1e-6)
    # "lion" is the subject (its passage's lead names it): only "live" and "group" count after the lead
    assert named["shared"] == [1, 2, 0, 0, 0]
    assert named["passage_1"] == [1, 1, 1, 0, 0] and named["passage_2"] == [0, 0, 0, 1, 1]
    assert named["passage_start"] == [1, 0, 0, 1, 0] and named["position"] == pytest.approx([0, .1, .2, 0, .1])
    torch.testing.assert_close(rows[:, len(PLACE_FEATURES):], torch.from_numpy(vectors[1:] * vectors[0]))


def test_the_answer_is_the_lead_of_the_best_sentences_passage_then_its_best_others():
    passages = [["A0.", "A1.", "A2."], ["B0.", "B1.", "B2.", "B3."]]
    places = candidates(passages)
    scores = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.5, 2.0, 1.0])  # best: B2, then B3, B1
    assert compose(passages, places, scores, picks=2) == ["B0.", "B2.", "B3."]
    assert compose(passages, places, torch.tensor([3.0, 1, 1, 0, 0, 0, 0]), picks=2) == ["A0.", "A1.", "A2."]
    assert compose([["Only."]], [(0, 0)], torch.tensor([1.0]), picks=2) == ["Only."]


def test_the_listwise_loss_is_the_softmax_mass_off_the_right_ones():
    expected = -torch.log(torch.softmax(torch.tensor([1.0, 2.0, 0.5]), 0)[1:].sum())
    # a padded batch of two questions whose scores are their one feature: the second question's padding is
    # out of its softmax, and the loss is the mean of the two
    features_ = torch.tensor([[[1.0], [2.0], [0.5]], [[1.0], [2.0], [99.0]]])
    real = torch.tensor([[True, True, True], [True, True, False]])
    rights = torch.tensor([[False, True, True], [True, False, False]])
    second = -torch.log(torch.softmax(torch.tensor([1.0, 2.0]), 0)[0])
    torch.testing.assert_close(batch_loss(torch.nn.Identity(), features_[:1], real[:1], rights[:1]), expected)
    torch.testing.assert_close(batch_loss(torch.nn.Identity(), features_, real, rights), (expected + second) / 2)


def pairs_about_tiny_articles():
    """A question per non-lead sentence of each tiny article, answered by that sentence (not an overview)."""
    pairs = []
    for article, (title, domain, text) in zip(tiny_articles(), TINY_FACTS, strict=True):
        lead, *others = [s.strip() + "." for s in text.split(".") if s.strip()]
        for sentence in others:
            pairs.append(QAPair.create(article_id=article.id, domain=domain, question=f"{title}: {sentence}?",
                                       answer=f"{lead} {sentence}", context=text, kind="property"))
        pairs.append(QAPair.create(article_id=article.id, domain=domain, question=f"What is {title}?",
                                   answer=lead, context=text, kind="overview"))
    return pairs


def test_training_learns_to_pick_the_sentence_that_answers():
    index = Index.build(tiny_articles())
    pairs = pairs_about_tiny_articles()
    assert sum(p.kind == "overview" for p in draw_questions(pairs, 10, random.Random(0))) == 2
    reader = train_ranker(index, pairs, pairs, questions=len(pairs), epochs=20, seed=0, vectors=bag_of_words)
    assert reader.summary["questions"] == 14 + 4  # every other question, and a fifth of 21 are overviews
    assert reader.summary["val_top1"] >= 0.9
    again = train_ranker(index, pairs, pairs, questions=len(pairs), epochs=20, seed=0, vectors=bag_of_words)
    for a, b in zip(reader.scorer.parameters(), again.scorer.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # the seed decides everything
    answer_ = reader.answer_sentences("Lion: Male lions have a mane?", LION_CONTEXT)
    assert answer_[:2] == ["The lion is a large cat of Africa and India.", "Male lions have a mane."]
    with pytest.raises(ValueError, match="questions and epochs must be at least 1"):
        train_ranker(index, pairs, pairs, questions=0, vectors=bag_of_words)
    with pytest.raises(ValueError, match="no training question has a right sentence"):
        unanswerable = [QAPair.create(article_id="x", domain="weather", question="What is the Sun?",
                                      answer="Nothing of the passages.", context="-", kind="property")]
        train_ranker(index, unanswerable, [], questions=5, vectors=bag_of_words)


def test_a_saved_reader_loads_with_the_same_scores(tmp_path):
    reader = SentenceRanker(RankerConfig(hidden=8, heads=2), summary={"val_top1": 0.5}, vectors=bag_of_words)
    path = reader.save(tmp_path)
    assert path == tmp_path / READER_FILE
    loaded = SentenceRanker.load(tmp_path)
    assert loaded.config == reader.config and loaded.summary == {"val_top1": 0.5}
    rows = features(LION, context_passages(LION_CONTEXT), candidates(context_passages(LION_CONTEXT)), bag_of_words)
    torch.testing.assert_close(loaded.scorer(rows), reader.scorer(rows))
    assert reader.num_parameters() == 2 * ((len(PLACE_FEATURES) + DIMENSIONS) * 8 + 8 + 8 + 1)


def test_a_missing_or_foreign_reader_file_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match=f"{READER_FILE}: no trained reader; train one with `minillm reader train"):
        SentenceRanker.load(tmp_path)
    write_safetensors(tmp_path / READER_FILE, {"x": torch.zeros(1)}, {"format": "9"})
    with pytest.raises(InputError, match="not a reader this version reads"):
        SentenceRanker.load(tmp_path)
    (tmp_path / READER_FILE).write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="not a safetensors file"):
        SentenceRanker.load(tmp_path)
    with pytest.raises(ValueError, match="hidden, heads and picks must be at least 1"):
        RankerConfig(heads=0)


@needs_dense
def test_sentences_are_embedded_as_questions_are():
    texts = ["The lion lives in prides.", "What is a lion?", "Water boils at one hundred degrees Celsius."]
    vectors = text_vectors(texts)
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    # sentence-transformers' own encoding of the same model, the outside reference
    np.testing.assert_allclose(vectors, embed(texts), atol=1e-5)
    np.testing.assert_array_equal(text_vectors(texts[::-1], workers=2), vectors[::-1])
    assert text_vectors([]).shape == (0, DIMENSIONS)


@needs_dense
def test_the_run_answers_open_book_with_its_reader_and_says_so(open_tiny_run, capsys):
    run = open_tiny_run
    set_reader(run, "ranker")
    model, tok, _ = load_answerer(run)  # no reader.safetensors yet: the rules read, and say why
    assert isinstance(model, PatternReading) and "no trained reader" in model.reader_note
    assert reader_info(model)["reader"] == "pattern" and "the pattern rules read instead" in reader_info(model)[
        "reader_why"]
    train_qa = load_config(run / "config.toml").data.train_qa
    assert main(["reader", "train", str(run), "--qa", train_qa, "--val", "", "--questions", "20", "--epochs",
                 "3"]) == 0
    assert "trained the reader (" in capsys.readouterr().out and (run / READER_FILE).is_file()
    model, tok, _ = load_answerer(run)
    assert isinstance(model, RankerReading) and reader_info(model)["reader"] == "ranker"
    network, _, _ = load_run(run)
    expected = model.ranker.answer_sentences(LION, LION_CONTEXT)
    assert answer(model, tok, LION, ANSWER_SAMPLING, context=LION_CONTEXT).text == " ".join(expected)
    assert main(["ask", str(run), LION, "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["reader"] == "ranker" and "trained reader" in reply["reader_why"]
    val_qa = load_config(run / "config.toml").data.val_qa
    result = evaluate_run(run, qa_path=val_qa, mode="open", limit=2)
    assert result["settings"]["reader"] == "ranker"
    assert "  read by ranker: the run's trained reader (reader.safetensors" in eval_table(result)
    assert with_reader(network, tok, "ranker") is not network  # no run directory: the rules, with a note
    assert isinstance(with_reader(network, tok, "ranker"), PatternReading)


@pytest.mark.parametrize("argv, message", [
    (["--keep", "0"], "reader train: --keep must be within (0, 1], got 0.0"),
    (["--keep", "1.5"], "reader train: --keep must be within (0, 1], got 1.5"),
    (["--questions", "0"], "reader train: --questions must be a positive integer, got 0"),
    (["--epochs", "-1"], "reader train: --epochs must be a positive integer, got -1"),
    (["--qa", "missing.jsonl"], "missing.jsonl"),
])
def test_reader_train_refuses_bad_input_in_one_line(open_tiny_run, capsys, argv, message):
    assert main(["reader", "train", str(open_tiny_run), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (open_tiny_run / READER_FILE).exists()


def test_reader_train_needs_an_index(tiny_run, tmp_path, capsys):
    shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["reader", "train", str(tmp_path / "run")]) == 2
    assert "no retrieval index" in capsys.readouterr().err


def test_scores_match_a_plain_torch_computation():
    """The ensemble is the mean of each head's Linear-ReLU-Linear, as written out by hand."""
    torch.manual_seed(0)
    scorer = Scorer(RankerConfig(hidden=4, heads=3))
    x = torch.randn(5, len(PLACE_FEATURES) + DIMENSIONS)
    by_hand = torch.stack([torch.relu(x @ h[0].weight.T + h[0].bias) @ h[2].weight.T + h[2].bias
                           for h in scorer.heads]).mean(0).squeeze(-1)
    torch.testing.assert_close(scorer(x), by_hand)
    state = safetensors.torch.load(safetensors.torch.save(scorer.state_dict()))
    assert sorted(state) == sorted(scorer.state_dict())


def test_no_sentence_near_the_question_is_an_answer_that_the_articles_do_not_answer(tmp_path):
    """Below min_cosine (the best sentence's cosine with the question) the reader says it does not know;
    at or above it, it answers as before. The threshold travels in the reader's file."""
    question = "Where do lions live in groups?"
    passages = context_passages(LION_CONTEXT)
    best = float(features(question, passages, candidates(passages), bag_of_words)[:, 0].max())
    torch.manual_seed(0)
    scorer = Scorer(RankerConfig(hidden=8, heads=2))
    answers = {}
    for gate in (-1.0, best - 1e-4, best + 1e-4):
        reader = SentenceRanker(RankerConfig(hidden=8, heads=2, min_cosine=gate), scorer, vectors=bag_of_words)
        answers[gate] = reader.answer_sentences(question, LION_CONTEXT)
    assert answers[best - 1e-4] == answers[-1.0] != [NOT_ANSWERED]
    assert answers[best + 1e-4] == [NOT_ANSWERED]
    reader.save(tmp_path)
    assert SentenceRanker.load(tmp_path).config.min_cosine == best + 1e-4
    with pytest.raises(ValueError, match="min_cosine must be within"):
        RankerConfig(min_cosine=1.5)


def test_min_cosine_is_what_the_kept_share_of_answerable_questions_reach():
    def example(cosines):
        rows = torch.zeros(len(cosines), 3)
        rows[:, 0] = torch.tensor(cosines)
        return RankExample(rows, torch.ones(len(cosines), dtype=torch.bool))

    examples = [example([0.1 * k, 0.0]) for k in range(1, 11)]  # best cosines 0.1 .. 1.0
    assert answerable_cosine(examples, 0.9) == pytest.approx(np.floor(np.quantile(np.arange(1, 11) / 10, 0.1) * 1e4)
                                                             / 1e4)
    assert answerable_cosine(examples, 1.0) == -1.0  # keep all: never withheld
    assert 0.0 < ANSWERABLE_KEEP < 1.0
    index = Index.build(tiny_articles())
    pairs = pairs_about_tiny_articles()
    reader = train_ranker(index, pairs, [], questions=len(pairs), epochs=2, seed=0, vectors=bag_of_words, keep=0.9)
    assert reader.summary["min_cosine"] == reader.config.min_cosine > -1.0 and reader.summary["keep"] == 0.9
    with pytest.raises(ValueError, match="keep must be within"):
        train_ranker(index, pairs, [], questions=5, vectors=bag_of_words, keep=0.0)
