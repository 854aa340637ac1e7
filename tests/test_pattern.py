"""Rung 0, pattern matching: rules, title look-up, open book, files, and evaluation without probabilities."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_articles, tiny_pairs

from minillm.answering.answer import answer
from minillm.cli import main
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.records import Article
from minillm.models import MODELS
from minillm.models.base import FitData
from minillm.models.generation import Sampling
from minillm.models.pattern import PATTERN_FILE, PatternConfig, PatternMatcher
from minillm.prompt import encode_prompt, parse_prompt
from minillm.tokenizer import train_tokenizer
from minillm.training.config import config_from_dict, load_config, shipped_config

EXTRA_FACTS = [
    ("Mount Kilimanjaro", "geography", "Mount Kilimanjaro is a dormant volcano. It is located in Tanzania, near "
                                       "the border with Kenya. Its summit is covered by glaciers."),
    ("Mount Everest", "geography", "Mount Everest is the highest mountain on Earth. It was named after a "
                                   "surveyor. Climbers reach it from Nepal."),
]
SAMPLING = Sampling(max_new_tokens=128, max_sentences=4)


def articles() -> list[Article]:
    extra = [Article.create(source="offline", title=t, domain=d, text=x, url=f"https://en.wikipedia.org/wiki/{t}",
                            retrieved_at="2026-01-01T00:00:00+00:00") for t, d, x in EXTRA_FACTS]
    return tiny_articles() + extra


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([a.text for a in articles()], kind="bpe", vocab_size=300)


@pytest.fixture(scope="module")
def model(tok):
    model = PatternMatcher(PatternConfig(vocab_size=tok.vocab_size, max_seq_len=256))
    data = FitData(tokenizer=tok, text=np.zeros(0, dtype=np.int64), val_text=None, qa=[], qa_answer_start=[],
                   articles=articles())
    assert model.fit(data) == {"articles": 9, "sentences": 27, "rules": len(model.rules)}
    return model


def ask(model, tok, question: str, context: str | None = None, sampling: Sampling = SAMPLING) -> str:
    return answer(model, tok, question, sampling, context=context).text


def test_registered_and_shipped_config():
    assert MODELS["pattern"] is PatternMatcher and PatternMatcher.trained_by == "fit"
    cfg = load_config(shipped_config("pattern"))
    assert cfg.arch == "pattern" and cfg.model["max_sentences"] == 3


@pytest.mark.parametrize("bad, message", [({"max_sentences": 5}, "at most 4"), ({"max_sentences": 0}, "positive"),
                                          ({"max_seq_len": True}, "max_seq_len")])
def test_config_checks_its_values(bad, message):
    with pytest.raises(ValueError, match=message):
        PatternConfig(**{"vocab_size": 300, "max_seq_len": 256, **bad})
    with pytest.raises(InputError, match="model"):
        config_from_dict({"model": {"arch": "pattern", "max_seq_len": 256, **bad}}, "x.toml")


def test_what_is_answers_with_the_lead(model, tok):
    assert ask(model, tok, "What is the Sun?") == ("The Sun is the star at the centre of the Solar System. It is a "
                                                   "hot ball of plasma. The Earth orbits the Sun.")


@pytest.mark.parametrize("question", ["What are lions?", "what is a LION", "Tell me about lions.",
                                      "Describe the lion."])
def test_case_plural_and_phrasing_variants_find_the_title(model, tok, question):
    assert ask(model, tok, question).startswith("The lion is a large cat of Africa and India.")


def test_where_picks_the_locating_sentence(model, tok):
    assert ask(model, tok, "Where is Mount Kilimanjaro?") == (
        "Mount Kilimanjaro is located in Tanzania, near the border with Kenya. Its summit is covered by glaciers.")


def test_fact_answers_name_the_subject_instead_of_a_pronoun(model, tok):
    assert ask(model, tok, "How many chambers does the heart have?") == (
        "The heart has four chambers. It beats about seventy times a minute.")
    assert ask(model, tok, "What is the formula of water?").startswith("Water's formula is H2O.")


def test_superlatives_search_every_article_in_encyclopedia_wording(model, tok):
    assert ask(model, tok, "What is the tallest mountain in the world?").startswith(
        "Mount Everest is the highest mountain on Earth.")


def test_what_else_skips_the_first_two_sentences(model, tok):
    assert ask(model, tok, "What else can you tell me about the Moon?") == "The Moon's light is reflected sunlight."


def test_fallbacks(model, tok):
    assert ask(model, tok, "What is a unicorn?") == "I don't know about a unicorn."
    assert ask(model, tok, "Hello there") == "I don't understand the question."


def test_open_book_answers_from_the_context_not_the_lookup(model, tok):
    context = "Mars is the fourth planet from the Sun. It is red. It has two small moons."
    assert ask(model, tok, "How many moons does Mars have?", context) == (
        "Mars is the fourth planet from the Sun. It is red. It has two small moons.")  # its lead, then the fact
    assert ask(model, tok, "What is the Sun?", "The Sun is a yellow dwarf star.") == "The Sun is a yellow dwarf star."


def test_open_book_reads_the_best_passage_and_names_its_subject(model, tok):
    """Passages come one per line, best first; the answer is the first passage's lead, then its sentence
    that answers (the words naming the subject, "China", count for no sentence); a superlative is searched
    in every passage and answered with that passage's lead."""
    context = ("China is in Asia. It has 33 provinces. Its capital is Beijing. Its population is 1.4 billion."
               "\nIndia is in Asia. Its population is 1.4 billion.")
    assert ask(model, tok, "How many people live in China?", context) == (
        "China is in Asia. Its capital is Beijing. Its population is 1.4 billion.")
    context = "Antarctica is a continent. It holds the South Pole. It is cold. Most of it is covered by ice."
    assert ask(model, tok, "What is Antarctica covered with?", context) == (
        "Antarctica is a continent. It is cold. Most of it is covered by ice.")  # not its overview
    context = ("Moose are deer. They live in forests.\nGiraffes are African mammals. They are the tallest "
               "living land animals. They eat leaves.")
    assert ask(model, tok, "Which animal is the tallest?", context).startswith(
        "Giraffes are African mammals. They are the tallest living land animals.")


@pytest.mark.parametrize("text, expected", [
    ("Question: What is the Sun?\nAnswer:", ("What is the Sun?", None)),
    ("Context: A. B.\nQuestion: Why?\nAnswer:", ("Why?", "A. B.")),
    ("Question : What is the Sun ? Answer :", ("What is the Sun ?", None)),  # a word tokenizer's decoding
    ("is the Sun?\nAnswer:", ("is the Sun?", None)),  # a prompt cut from the left
])
def test_parse_prompt(text, expected):
    assert parse_prompt(text) == expected


def test_generate_keeps_whole_sentences_within_the_limits_and_is_deterministic(model, tok):
    full = ask(model, tok, "What is the Moon?")
    assert full.count(".") == 3
    assert ask(model, tok, "What is the Moon?", sampling=Sampling(max_sentences=1)) == (
        "The Moon is the only natural satellite of the Earth.")
    assert ask(model, tok, "What is the Moon?", sampling=Sampling(max_new_tokens=30)).count(".") < 3
    assert len(answer(model, tok, "What is the Moon?", Sampling(max_new_tokens=3)).token_ids) == 3
    assert ask(model, tok, "What is the Moon?", sampling=Sampling(temperature=1.5, top_k=3, seed=7)) == full
    with pytest.raises(ValueError, match="max_seq_len"):
        model.generate(encode_prompt(tok, "What is the Moon? " * 100), SAMPLING)


def test_no_probabilities(model):
    with pytest.raises(NotImplementedError, match="no probabilities"):
        model.log_prob(torch.zeros((1, 4), dtype=torch.long))


def test_save_load_gives_identical_answers(model, tok, tmp_path):
    path = model.save(tmp_path)
    tok.save(tmp_path)
    assert path == tmp_path / PATTERN_FILE and path.stat().st_size == model.size_bytes()
    loaded = PatternMatcher.load(tmp_path)
    assert loaded.num_parameters() == model.num_parameters() == 9 + len(model.rules)
    for question in ("What is the Sun?", "Where is Mount Kilimanjaro?", "What is the tallest mountain?",
                     "How many chambers does the heart have?", "What is a unicorn?"):
        assert ask(loaded, tok, question) == ask(model, tok, question)
    path.write_text('{"format": 1, "config": {}}', encoding="utf-8")
    with pytest.raises(InputError, match=f"{PATTERN_FILE}: not a pattern model"):
        PatternMatcher.load(tmp_path)


# --- the commands, and evaluation of a model without probabilities ---------------------------------------


@pytest.fixture(scope="module")
def pattern_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pattern_run")
    write_jsonl(root / "articles.jsonl", articles())
    write_jsonl(root / "val.jsonl", tiny_pairs(tiny_articles())[:2])
    config = root / "pattern.toml"
    config.write_text(f"""
[data]
articles = "{root / 'articles.jsonl'}"
train_qa = ""
val_qa = "{root / 'val.jsonl'}"
heldout_fraction = 0.0

[tokenizer]
vocab_size = 300

[model]
arch = "pattern"
max_seq_len = 256

[train]
pretrain_steps = 1
finetune_steps = 0
""", encoding="utf-8")
    assert main(["train", "--config", str(config), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


def test_cli_train_then_ask(pattern_run, capsys):
    assert (pattern_run / PATTERN_FILE).is_file() and (pattern_run / "fit.json").is_file()
    capsys.readouterr()
    assert main(["ask", str(pattern_run), "What is the Moon?"]) == 0
    assert capsys.readouterr().out.startswith("The Moon is the only natural satellite of the Earth.")


def write_questions(path: Path) -> Path:
    path.write_text(json.dumps({"question": "What is the Moon?", "answer": "The Moon is the only natural "
                                "satellite of the Earth.", "domain": "astronomy", "keywords": ["satellite"]}) + "\n",
                    encoding="utf-8")
    return path


def test_eval_records_null_language_modelling_scores(pattern_run, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("The Sun is a star.\n", encoding="utf-8")
    out = tmp_path / "eval.json"
    assert main(["eval", str(pattern_run), "--qa", str(write_questions(tmp_path / "qa.jsonl")), "--text", str(text),
                 "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["model"]["name"] == "pattern" and result["model"]["probabilities"] is False
    assert result["lm"] == {"heldout": None, "text": {"source": str(text), "loss": None, "perplexity": None,
                                                      "bits_per_byte": None}}
    assert result["qa"]["keyword_hit_rate"] == 1.0 and result["qa"]["f1"] > 0.6
    assert "language modelling: undefined, pattern has no probabilities" in capsys.readouterr().out


def test_multiple_choice_needs_probabilities(pattern_run, tmp_path, capsys):
    arc = tmp_path / "arc.jsonl"
    arc.write_text(json.dumps({"question": "What is the Sun?", "answerKey": "A",
                               "choices": {"text": ["a star", "a planet"], "label": ["A", "B"]}}) + "\n",
                   encoding="utf-8")
    assert main(["eval", str(pattern_run), "--task", "arc-easy", "--qa", str(arc), "--no-progress"]) == 2
    assert "pattern has no probabilities; multiple choice needs log_prob" in capsys.readouterr().err


def test_compare_shows_a_dash_where_a_number_is_undefined(pattern_run, tiny_run, tmp_path):
    run = Path(shutil.copytree(pattern_run, tmp_path / "pattern"))
    assert main(["eval", str(run), "--qa", str(write_questions(tmp_path / "qa.jsonl")), "--no-progress"]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", str(run), str(tiny_run), "--out", str(out)]) == 0
    lines = [line for line in (out / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    header, row = lines[0].split(" | "), lines[2].split(" | ")
    assert row[0] == "| pattern" and row[1].startswith("pattern, bpe")
    assert row[header.index("val bits/byte")] == "—" and row[header.index("QA F1")] != "—"
    assert (out / "size_quality.png").is_file() and (out / "loss_curves.png").is_file()
