"""Evaluation: strided language-model scores, question files, answers, multiple choice, `minillm eval`."""

import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import ARC_EASY, shared_file
from hypothesis import given
from hypothesis import strategies as st

from minillm.answering.answer import Answer
from minillm.answering.attribution import invented_words, words_of
from minillm.answering.confidence import NOT_KNOWN
from minillm.cli import main
from minillm.core.errors import InputError
from minillm.data.records import read_articles
from minillm.evaluation import qa as evaluate
from minillm.evaluation.metrics import token_f1
from minillm.evaluation.perplexity import heldout_score, score_documents, stream_nats, token_stream, window_spans
from minillm.evaluation.qa import (
    ChoiceQuestion,
    EvalQuestion,
    choice_log_probs,
    evaluate_choices,
    read_choice_questions,
    read_eval_questions,
    seeded_sample,
)
from minillm.models.ranker import NOT_ANSWERED
from minillm.tokenizer import train_tokenizer
from minillm.training.config import load_config
from minillm.training.data import is_heldout
from minillm.training.runs import load_run

QUESTIONS = [
    {"question": "What is the Sun?", "answer": "The Sun is the star at the centre of the Solar System.",
     "domain": "astronomy", "keywords": ["star"]},
    {"question": "What is the heart?", "reference": "The heart is a muscular organ that pumps blood.",
     "domain": "anatomy"},
    {"question": "What is the Nile?", "answer": "The Nile is a river in northeast Africa."},
]


def write_lines(path, lines):
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


class FakeModel:
    """A LanguageModel whose log-probability of a token depends only on the token: ``table[id]``."""

    name = "fake"

    def __init__(self, table, max_seq_len=64):
        self.table, self.max_seq_len, self.calls = torch.as_tensor(table, dtype=torch.float), max_seq_len, []

    def log_prob(self, ids):
        assert ids.size(1) <= self.max_seq_len + 1
        self.calls.append(ids.clone())
        return self.table[ids[:, 1:]]


# --- strided language-model scores -----------------------------------------------------------------------


@given(st.integers(2, 300), st.integers(1, 64), st.data())
def test_window_spans_score_every_target_once_within_the_window(length, window, data):
    stride = data.draw(st.integers(1, window))
    targets = []
    for start, end, new in window_spans(length, window, stride):
        assert 0 <= start < end <= length - 1 and end - start <= window and 1 <= new <= end - start
        assert end - start == min(window, length - 1)  # every window full length
        targets += range(end - new + 1, end + 1)
    assert targets == list(range(1, length))


def test_bits_per_byte_of_a_uniform_model_by_hand():
    tok = train_tokenizer(["abcdé"], kind="char", vocab_size=40)
    uniform = FakeModel([-math.log(tok.vocab_size)] * tok.vocab_size, max_seq_len=3)
    # [eos] a b [eos] é: 4 scored tokens (the separator too) over 2 + 1 + 2 bytes ("é" is 2 bytes in UTF-8)
    score = score_documents(uniform, tok, ["ab", "é"], "hand")
    assert (score.tokens, score.bytes, score.documents) == (4, 5, 2)
    assert score.loss == pytest.approx(math.log(tok.vocab_size))
    assert score.perplexity == pytest.approx(tok.vocab_size)
    assert score.bits_per_byte == pytest.approx(4 * math.log2(tok.vocab_size) / 5)


def test_max_tokens_cuts_the_stream_and_counts_only_the_bytes_scored():
    tok = train_tokenizer(["abcdefgh é"], kind="char", vocab_size=40)
    ids, n_bytes, used = token_stream(tok, ["abcd", "eféh", "never"], max_tokens=8)
    assert tok.decode(ids[1:]) == "abcdefé" and ids[5] == tok.eos_id
    assert (len(ids) - 1, n_bytes, used) == (8, 4 + 1 + 4, 2)  # abcd, separator, "efé" (é is 2 bytes)
    ids, _, used = token_stream(tok, ["abcd", "ef"], max_tokens=5)  # room for the separator only: stop
    assert (len(ids) - 1, used) == (4, 1)


def test_strided_scores_equal_scoring_each_token_with_its_context(tiny_run):
    model, tok, _ = load_run(tiny_run)
    text = " ".join(a.text for a in read_articles(tiny_run.parent / "articles.jsonl"))
    ids = [tok.eos_id] + tok.encode(text)[:120]  # 24 tokens past the first window
    window = model.max_seq_len
    with torch.no_grad():  # stride 1: each token after the first window sees exactly `window` tokens
        expected = -sum(float(model.log_prob(torch.tensor([ids[max(0, t - window):t + 1]]))[0, -1])
                        for t in range(1, len(ids)))
    assert stream_nats(model, ids, stride=1) == pytest.approx(expected, rel=1e-5)
    ids = [tok.eos_id] + tok.encode(text)[:220]
    half = stream_nats(model, ids)  # default stride: half a window of guaranteed context
    assert half == pytest.approx(stream_nats(model, ids, stride=window // 2, batch_size=1), rel=1e-6)
    assert half != pytest.approx(stream_nats(model, ids, stride=window), rel=1e-6)  # less context, other loss


def test_heldout_text_is_what_training_held_out(tiny_run):
    model, tok, cfg = load_run(tiny_run)
    assert heldout_score(model, tok, cfg) is None  # the fixture holds nothing out
    cfg = replace(cfg, data=replace(cfg.data, heldout_fraction=0.5))
    articles = read_articles(cfg.data.articles)
    heldout = [a for a in articles if is_heldout(a.id, 0.5)]
    assert 0 < len(heldout) < len(articles)
    score = heldout_score(model, tok, cfg, max_tokens=None)
    assert score.documents == len(heldout)
    assert score.bytes == sum(len(a.text.encode()) for a in heldout) + len(heldout) - 1
    assert score.tokens == sum(len(tok.encode(a.text)) for a in heldout) + len(heldout) - 1


# --- question files ---------------------------------------------------------------------------------------


def test_read_eval_questions_answer_or_reference_domain_keywords(tmp_path):
    questions = read_eval_questions(write_lines(tmp_path / "q.jsonl", QUESTIONS))
    assert [q.reference[:9] for q in questions] == ["The Sun i", "The heart", "The Nile "]
    assert [q.domain for q in questions] == ["astronomy", "anatomy", "unknown"]
    assert [q.keywords for q in questions] == [("star",), (), ()]


@pytest.mark.parametrize("line, message", [
    ('{"question": "Q?", "answer": "A."', ":2: malformed JSON"),
    ({"answer": "A."}, ":2: field 'question': missing"),
    ({"question": "Q?"}, ":2: field 'answer': missing (or give 'reference')"),
    ({"question": "Q?", "answer": "  "}, ":2: field 'answer': must not be empty"),
    ({"question": "Q?", "reference": ""}, ":2: field 'reference': must not be empty"),
    ({"question": 3, "answer": "A."}, ":2: field 'question': expected a string, got int"),
    ({"question": "Q?", "answer": "A.", "keywords": "star"}, ":2: field 'keywords': expected a list"),
    ({"question": "Q?", "answer": "A.", "domain": ""}, ":2: field 'domain': must not be empty"),
    ([1, 2], ":2: expected a JSON object, got list"),
    ({"question": "Q?", "choices": {}, "answerKey": "A"}, "a multiple-choice file needs --task arc-easy"),
])
def test_bad_question_lines_name_file_line_and_field(tmp_path, line, message):
    path = write_lines(tmp_path / "bad.jsonl", [QUESTIONS[0], line])
    with pytest.raises(InputError, match=r"^" + str(path).replace("\\", "\\\\") + ".*"):
        read_eval_questions(path)
    with pytest.raises(InputError) as info:
        read_eval_questions(path)
    assert message in str(info.value)


def test_read_arc_file():
    questions = read_choice_questions(shared_file(ARC_EASY))
    assert len(questions) == 570
    first = questions[0]
    assert first.choices == ("cellular telephone", "television", "refrigerator", "airplane")
    assert first.answer == 0
    assert all(2 <= len(q.choices) <= 5 for q in questions)


@pytest.mark.parametrize("obj, message", [
    ({"question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"},
     "field 'answerKey': 'C' is not one of the labels"),
    ({"question": "Q?", "choices": {"text": ["a", "b"], "label": ["A"]}, "answerKey": "A"},
     "field 'choices': needs 2 or more texts with one label each"),
    ({"question": "Q?", "choices": ["a", "b"], "answerKey": "A"}, "field 'choices': expected an object"),
    ({"question": "Q?", "choices": {"text": ["a", ""], "label": ["A", "B"]}, "answerKey": "A"},
     "field 'choices': field 'text': expected a list of non-empty strings"),
])
def test_bad_arc_lines(tmp_path, obj, message):
    with pytest.raises(InputError, match=":1: " + message.replace("(", r"\(")):
        read_choice_questions(write_lines(tmp_path / "arc.jsonl", [obj]))


def test_seeded_sample_is_reproducible_and_in_order():
    items = list(range(100))
    sample = seeded_sample(items, 10, seed=3)
    assert sample == sorted(sample) and len(set(sample)) == 10 and sample == seeded_sample(items, 10, seed=3)
    assert sample != seeded_sample(items, 10, seed=4)
    assert seeded_sample(items, None, 0) == items and seeded_sample(items, 500, 0) == items


def test_latency_excludes_a_slow_first_call(monkeypatch):
    calls = []

    def fake_answer(model, tok, question, sampling, context=None):
        calls.append(question)
        if len(calls) == 1:
            time.sleep(0.3)  # one-off setup cost, paid by the warm-up call
        return Answer(text="A star.", token_ids=[5, 6], prompt_tokens=4, new_tokens=2, seconds=0.0,
                      tokens_per_second=0.0)

    monkeypatch.setattr(evaluate, "answer", fake_answer)
    questions = [EvalQuestion(q["question"], q.get("answer") or q["reference"]) for q in QUESTIONS]
    result = evaluate.evaluate_qa(None, None, questions, evaluate.DEFAULT_SAMPLING)
    assert calls == [q.question for q in questions[:1] + questions]
    assert result["latency_p95_s"] < 0.1 and result["count"] == 3


# --- multiple choice --------------------------------------------------------------------------------------


def test_choice_scoring_reads_only_the_choice_tokens_and_sum_and_mean_can_disagree():
    tok = train_tokenizer(["Question: Answer: abxyz?\n"], kind="char", vocab_size=60)
    table = torch.full((tok.vocab_size,), -100.0)  # prompt characters and padding: if scored, they dominate
    table[tok.encode(" ")[0]] = 0.0
    table[tok.encode("a")[0]], table[tok.encode("b")[0]] = -1.0, -2.0
    model = FakeModel(table)
    # " aaaa": sum -4 over 5 tokens (mean -0.8); " b": sum -2 over 2 tokens (mean -1)
    assert choice_log_probs(model, tok, "xyz?", ("aaaa", "b")) == [(-4.0, 5), (-2.0, 2)]
    assert model.calls[-1].shape[0] == 2  # both choices in one padded batch
    questions = [ChoiceQuestion("xyz?", ("aaaa", "b"), answer=0),
                 ChoiceQuestion("xyz?", ("b", "bb", "bbb"), answer=0)]
    result = evaluate_choices(model, tok, questions)
    # question 1: the sum picks "b" (wrong), the mean picks "aaaa" (right); question 2: both pick "b"
    assert result == {"count": 2, "accuracy_sum": 0.5, "accuracy_mean": 1.0, "chance": pytest.approx(5 / 12)}


def test_long_choices_and_questions_fit_the_model():
    tok = train_tokenizer(["Question: Answer: abxyz?\n"], kind="char", vocab_size=60)
    model = FakeModel(torch.full((tok.vocab_size,), -1.0), max_seq_len=16)
    scores = choice_log_probs(model, tok, "xyz" * 20 + "?", ("a" * 40, "b"))
    assert scores == [(-8.0, 8), (-2.0, 2)]  # the choice is cut to half the context; the prompt keeps its end


# --- minillm eval -----------------------------------------------------------------------------------------


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the tiny run, so eval.json written into it stays out of other tests' way."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def test_eval_closed_writes_eval_json(run_copy, tmp_path, capsys):
    qa = write_lines(tmp_path / "q.jsonl", QUESTIONS)
    text = tmp_path / "wiki.txt"
    text.write_text("The Sun is a star. The Moon orbits the Earth.\n" * 20, encoding="utf-8")
    code = main(["eval", str(run_copy), "--qa", str(qa), "--text", str(text), "--max-tokens", "150",
                 "--max-new-tokens", "12", "--no-progress"])
    assert code == 0
    result = json.loads((run_copy / "eval.json").read_text(encoding="utf-8"))
    assert set(result) == {"format", "run", "created_at", "model", "settings", "lm", "qa"}
    assert result["model"]["parameters"] == load_run(run_copy)[0].num_parameters()
    assert result["settings"]["sampling"]["max_new_tokens"] == 12 and result["settings"]["mode"] == "closed"
    assert result["lm"]["heldout"] is None
    lm = result["lm"]["text"]
    assert lm["tokens"] == 150 and 0 < lm["bits_per_byte"] < 20
    nats = lm["bits_per_byte"] * math.log(2) * lm["bytes"]
    assert lm["loss"] == pytest.approx(nats / lm["tokens"], rel=1e-4)
    qa_result = result["qa"]
    assert qa_result["count"] == 3 and len(qa_result["answers"]) == 3
    assert set(qa_result["by_domain"]) == {"anatomy", "astronomy", "unknown"}
    assert qa_result["keyword_questions"] == 1
    assert qa_result["by_domain"]["anatomy"]["keyword_hit_rate"] is None
    for key in ("exact_match", "f1", "rouge_l", "two_to_four_sentences", "mean_words", "latency_p50_s",
                "latency_p95_s", "tokens_per_second"):
        assert qa_result[key] is not None and qa_result[key] >= 0
    assert qa_result["latency_p95_s"] >= qa_result["latency_p50_s"] > 0
    row = qa_result["answers"][0]
    assert row["f1"] == pytest.approx(token_f1(row["answer"], row["reference"]))
    out = capsys.readouterr().out
    assert "QA, closed book" in out and "astronomy" in out and "bits/byte" in out and "wrote" in out


def test_eval_default_split_is_test_beside_val_qa_and_limit_samples(run_copy, tmp_path):
    cfg = load_config(run_copy / "config.toml")
    write_lines(Path(cfg.data.val_qa).parent / "test.jsonl", QUESTIONS * 4)
    out = tmp_path / "out" / "e.json"
    assert main(["eval", str(run_copy), "--limit", "2", "--max-new-tokens", "4", "--out", str(out),
                 "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["questions_file"] == str(Path(cfg.data.val_qa).parent / "test.jsonl")
    assert result["qa"]["count"] == 2 and not (run_copy / "eval.json").exists()


def test_eval_natural_questions_shipped_with_minillm(run_copy, tmp_path):
    out = tmp_path / "natural.json"
    assert main(["eval", str(run_copy), "--split", "natural", "--limit", "3", "--max-new-tokens", "4",
                 "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert Path(result["settings"]["questions_file"]).name == "natural_questions.jsonl"
    assert result["qa"]["keyword_questions"] == 3 and result["qa"]["keyword_hit_rate"] is not None


def test_eval_unanswerable_questions_count_the_answers_that_say_they_do_not_know(open_tiny_run, tmp_path, capsys):
    out = tmp_path / "unanswerable.json"
    assert main(["eval", str(open_tiny_run), "--split", "unanswerable", "--mode", "open", "--limit", "40",
                 "--max-new-tokens", "4", "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert Path(result["settings"]["questions_file"]).name == "unanswerable_questions.jsonl"
    qa = result["qa"]
    assert qa["count"] == 40 and qa["keyword_questions"] == 0
    withheld = [row["withheld"] for row in qa["answers"]]
    assert withheld == [row["answer"] in (NOT_ANSWERED, NOT_KNOWN) for row in qa["answers"]]
    # the tiny run's index shares no word with some of them: those are answered NOT_ANSWERED
    assert any(withheld) and qa["withheld_rate"] == pytest.approx(sum(withheld) / 40, abs=1e-6)
    # saying it does not know claims nothing: no invented words, no faithfulness to score
    assert all(row["invented_words"] == [] and row["faithfulness"] is None for row in qa["answers"] if row["withheld"])
    assert "withheld" in capsys.readouterr().out


def test_eval_arc_on_the_tiny_run(run_copy, capsys):
    assert main(["eval", str(run_copy), "--task", "arc-easy", "--qa", str(shared_file(ARC_EASY)), "--limit", "30",
                 "--no-progress"]) == 0
    result = json.loads((run_copy / "eval.json").read_text())
    mc = result["multiple_choice"]
    assert "qa" not in result and mc["task"] == "arc-easy" and mc["count"] == 30
    assert 0 <= mc["accuracy_sum"] <= 1 and 0 <= mc["accuracy_mean"] <= 1 and 0.2 <= mc["chance"] <= 0.34
    assert "multiple choice, arc-easy" in capsys.readouterr().out


@pytest.mark.parametrize("lines", [
    [QUESTIONS[0], {"question": "Q?", "answer": ""}],
    [QUESTIONS[0], {"answer": "no question"}],
    [QUESTIONS[0], "not json"],
])
def test_eval_bad_qa_file_exits_2_and_writes_nothing(run_copy, tmp_path, capsys, lines):
    qa = write_lines(tmp_path / "bad.jsonl", lines)
    assert main(["eval", str(run_copy), "--qa", str(qa), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"minillm: error: {qa}:2: ") and err.count("\n") == 1
    assert not (run_copy / "eval.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--task", "arc-easy"], "give the questions with --qa FILE"),
    (["--task", "arc-easy", "--qa", "q.jsonl", "--mode", "open"], "multiple choice is scored closed book"),
    (["--limit", "0"], "limit: must be >= 1"),
    (["--text", "/no/such/file.txt"], "/no/such/file.txt: no such file"),
    (["--qa", "/no/such/q.jsonl"], "/no/such/q.jsonl: no such file"),
])
def test_eval_bad_arguments_exit_2(run_copy, capsys, args, message):
    assert main(["eval", str(run_copy), *args, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (run_copy / "eval.json").exists()


def test_eval_open_book(run_copy, tmp_path):
    retrieval = pytest.importorskip("minillm.retrieval.index")
    qa = write_lines(tmp_path / "q.jsonl", QUESTIONS)
    open_book = ["eval", str(run_copy), "--qa", str(qa), "--mode", "open", "--no-progress"]
    assert main(open_book) == 2  # no index yet
    articles = read_articles(load_config(run_copy / "config.toml").data.articles)
    retrieval.Index.build(articles).save(run_copy / "index")
    assert main([*open_book, "--k", "2", "--max-new-tokens", "8"]) == 0
    result = json.loads((run_copy / "eval.json").read_text())
    assert result["settings"]["mode"] == "open" and result["settings"]["k"] == 2
    assert all(1 <= len(row["passages"]) <= 2 for row in result["qa"]["answers"])
    assert "Sun" in result["qa"]["answers"][0]["passages"]
    qa = result["qa"]
    for row in qa["answers"]:  # open book: faithfulness and each sentence's passage, with every answer
        assert row["faithfulness"] is None or 0 <= row["faithfulness"] <= 1
        assert all(s["passage"] in (None, 0, 1) for s in row["sentence_sources"])
    assert set(qa["degenerate_by_kind"]) == {"repeated_4gram", "unfinished", "prompt_punctuation"}
    assert qa["degenerate"] == sum(any(r["degenerate"].values()) for r in qa["answers"])
    assert all("degenerate" in s and "faithfulness" in s for s in qa["by_domain"].values())
    # invented words: in none of the passages, the question or the articles the tokenizer was trained on
    articles_words = words_of(a.text for a in articles)
    for row in qa["answers"]:
        assert row["invented_words"] == invented_words(row["answer"], [row["question"]], articles_words)
    assert qa["invented_words"] == sum(len(r["invented_words"]) for r in qa["answers"])
    assert qa["answers_with_invented_words"] == sum(bool(r["invented_words"]) for r in qa["answers"])


@pytest.mark.parametrize("answer, sources, known, invented", [
    ("Mars has two moons.", ["Mars has two small moons."], set(), []),
    ("Mars has two moonsies.", ["Mars has two moons."], set(), ["moonsies"]),
    ("Two lungs functionchange the air.", ["The two lungs change the air."], {"function"}, ["functionchange"]),
    ("MARS is red, 4 billion years old.", ["Mars is red."], {"billion", "years"}, ["old"]),  # case, numbers
    ("Venus venus Venusia venusia.", [], {"venus"}, ["venusia"]),  # each once
])
def test_invented_words(answer, sources, known, invented):
    assert invented_words(answer, sources, known) == invented


def test_eval_closed_book_counts_degenerate_answers_without_faithfulness(run_copy, tmp_path):
    qa = write_lines(tmp_path / "q.jsonl", QUESTIONS)
    assert main(["eval", str(run_copy), "--qa", str(qa), "--max-new-tokens", "2", "--no-progress"]) == 0
    result = json.loads((run_copy / "eval.json").read_text())["qa"]
    assert result["faithfulness"] is None and "faithfulness" not in result["answers"][0]
    assert result["degenerate_by_kind"]["unfinished"] >= 1  # 2 tokens: too few to end a sentence
