"""The minimal BERT rung: masked-LM corruption, ranking examples, a tiny fit that learns to pick the answer's
sentences, files, and answers through the same commands as any rung."""

import json

import pytest
import safetensors.torch
import torch
from conftest import tiny_articles, train_tiny_run

from minillm.answering.answer import answer
from minillm.answering.open_book import answer_open
from minillm.cli import main
from minillm.models import MODELS
from minillm.models.bert import (
    NO_PASSAGE,
    BertConfig,
    BertReader,
    MiniBert,
    answer_sentence_indices,
    mask_tokens,
    pair_inputs,
)
from minillm.models.generation import Sampling
from minillm.retrieval.index import Index, load_index
from minillm.tokenizer import train_tokenizer
from minillm.training.runs import load_run

TINY = {"arch": "bert", "max_seq_len": 256, "pair_len": 48, "emb_dim": 32, "num_layers": 1, "num_heads": 2,
        "ffn_dim": 64, "dropout": 0.0, "max_sentences": 2, "candidates": 4,
        "max_places": 1}  # no place input: on the tiny data every answer sentence comes first, a prior to learn


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    run = train_tiny_run(root, TINY, {"qa_retrieved": 3}, pretrain_steps=30, finetune_steps=150, batch_size=8, lr=3e-3,
                         finetune_lr=3e-3, warmup_steps=5)
    Index.build(tiny_articles()).save(run / "index")
    return run


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([a.text for a in tiny_articles()], "bpe", 300)


def test_config_rejects_bad_values():
    for bad in ({"candidates": 1}, {"max_sentences": 5}, {"mask_prob": 0.0}, {"emb_dim": 30, "num_heads": 4},
                {"pair_len": 4}, {"dropout": 1.0}, {"num_layers": 0}):
        with pytest.raises(ValueError):
            BertConfig(vocab_size=300, **bad)


def test_masking_follows_bert_and_never_touches_special_tokens(tok):
    ids = torch.randint(4, tok.vocab_size, (512, 50))
    ids[:, 0], ids[:, -1], ids[:, -5:-1] = tok.bos_id, tok.eos_id, tok.pad_id
    inputs, labels = mask_tokens(ids, tok, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen])  # the originals are the targets
    assert not chosen[:, 0].any() and not chosen[:, -5:].any()  # [CLS], [SEP], padding never chosen
    share = chosen.float().mean().item() * 50 / 45
    assert 0.12 < share < 0.18
    masked = (inputs == tok.unk_id) & chosen
    assert 0.75 < masked.sum().item() / chosen.sum().item() < 0.85  # 80% [MASK]
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes


def test_answer_sentences_are_the_ones_the_reference_holds():
    sentences = ["The Nile is a river.", "It flows north.", "Cairo is on it."]
    assert answer_sentence_indices(sentences, "The Nile is a river in Africa. It flows north to the sea.") == [0, 1]
    assert answer_sentence_indices(sentences, "Nothing of the kind.") == []


def test_pair_inputs_mark_the_sentence_segment_and_fit_the_positions(tok):
    question, sentences = tok.encode("What is the Nile?"), [tok.encode("The Nile is a river."), tok.encode("x" * 200)]
    ids, segments = pair_inputs(tok, question, sentences, 32)
    assert ids.shape[1] <= 32 and ids[0, 0] == tok.bos_id
    first = len(question) + 2
    assert ids[0, first - 1] == tok.eos_id and segments[0, :first].sum() == 0 and segments[0, first] == 1
    row = ids[0][ids[0] != tok.pad_id].tolist()
    assert tok.decode(row[first:-1]) == "The Nile is a river." and row[-1] == tok.eos_id
    assert (ids[1] != tok.pad_id).sum() == 32  # the long sentence is cut to fit
    assert (segments[0][ids[0] == tok.pad_id] == 0).all()


def test_padding_does_not_change_a_score():
    model = MiniBert(BertConfig(vocab_size=50, pair_len=16, emb_dim=16, num_heads=2, num_layers=2, ffn_dim=32,
                                dropout=0.0)).eval()
    ids = torch.tensor([[1, 7, 8, 2, 9, 10, 2]])
    segments = torch.tensor([[0, 0, 0, 0, 1, 1, 1]])
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    with torch.no_grad():
        a = model.scores(ids, segments, torch.tensor([0]))
        b = model.scores(padded, torch.cat([segments, torch.zeros(1, 5, dtype=torch.long)], 1), torch.tensor([0]))
    assert torch.allclose(a, b, atol=1e-5)


def test_fit_learns_to_rank_the_answer_sentences_first(run):
    fit = json.loads((run / "fit.json").read_text())
    assert fit["rank_examples"] > 0 and fit["mlm_loss"] > 0
    model, tok, _ = load_run(run)
    assert isinstance(model, BertReader) and MODELS["bert"] is BertReader
    # the training questions: their own article's sentences outrank the distractors
    context = " ".join(a.text for a in reversed(tiny_articles()))  # the gold passage is never first
    right = []
    for article in tiny_articles()[2:]:  # the training questions' articles (Sun and Moon are validation)
        ranked = sorted(model.sentence_scores(f"What is {article.title.lower()}?", context), key=lambda s: -s[1])
        right.append(sum(sentence in article.text for sentence, _ in ranked[:3]))
    assert sum(right) >= 11, right  # of 15; by chance 15 * 3 / 21, about 2


def test_answers_are_sentences_of_the_passages_and_closed_book_says_so(run):
    model, tok, _ = load_run(run)
    result, passages = answer_open(model, tok, load_index(run), "What is a tornado?", Sampling())
    sentences = {s for p in passages for s in p.text.split(". ")}
    assert result.text and all(part.rstrip(".") + "" in {s.rstrip(".") for s in sentences}
                               for part in result.text.split(". "))
    assert result.text.count(".") <= 2  # max_sentences = 2
    assert answer(model, tok, "What is a tornado?", Sampling()).text == NO_PASSAGE
    with pytest.raises(NotImplementedError):
        model.log_prob(torch.tensor([[1, 2, 3]]))


def test_saved_weights_load_with_safetensors_alone_and_answer_the_same(run, tmp_path):
    model, tok, _ = load_run(run)
    tensors = safetensors.torch.load_file(str(run / "model.safetensors"))
    assert set(tensors) == set(model.net.state_dict()) and model.size_bytes() > 0
    model.save(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes((run / "tokenizer.json").read_bytes())
    again = BertReader.load(tmp_path)
    context = " ".join(a.text for a in tiny_articles())
    assert again.sentence_scores("What is the moon?", context) == model.sentence_scores("What is the moon?", context)


def test_ask_and_eval_through_the_cli(run, tmp_path, capsys):
    assert main(["ask", str(run), "What is a lion?", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["mode"] == "open" and "lion" in reply["answer"].lower()
    qa = tmp_path / "q.jsonl"
    qa.write_text(json.dumps({"question": "What is a lion?", "answer": "The lion is a large cat of Africa and "
                              "India.", "domain": "animals", "keywords": ["cat"]}) + "\n")
    assert main(["eval", str(run), "--qa", str(qa), "--mode", "open", "--no-progress"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["qa"]["faithfulness"] == 1.0 and result["qa"]["degenerate"] == 0


def test_a_bad_model_option_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "--config", "bert", "--out", str(tmp_path / "r"), "--set", "model.candidates=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "candidates" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_quantized_bert_run_is_a_run(run, tmp_path):
    from minillm.compress.quantize import quantize_run

    report = quantize_run(run, tmp_path / "int8", bits=8)
    assert report.bytes_after < 0.4 * report.bytes_before
    small, tok, _ = load_run(tmp_path / "int8")
    model, _, _ = load_run(run)
    assert isinstance(small, BertReader) and small.size_bytes() == report.bytes_after
    context = " ".join(a.text for a in tiny_articles())
    assert small.answer_sentences("What is a lion?", context) == model.answer_sentences("What is a lion?", context)
