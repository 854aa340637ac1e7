"""Shared fixtures: a tiny trained run directory, built once per test session."""

import pytest

from minillm.config import config_from_dict
from minillm.data.records import Article, QAPair, write_jsonl
from minillm.train import train

TINY_FACTS = [
    ("Sun", "astronomy", "The Sun is the star at the centre of the Solar System. It is a hot ball of plasma. "
                         "The Earth orbits the Sun."),
    ("Moon", "astronomy", "The Moon is the only natural satellite of the Earth. It has no air. "
                          "Its light is reflected sunlight."),
    ("Heart", "anatomy", "The heart is a muscular organ that pumps blood. It has four chambers. "
                         "It beats about seventy times a minute."),
    ("Lion", "animals", "The lion is a large cat of Africa and India. It lives in groups called prides. "
                        "Male lions have a mane."),
    ("Nile", "geography", "The Nile is a river in northeast Africa. It flows north into the Mediterranean Sea. "
                          "It is one of the longest rivers in the world."),
    ("Water", "chemistry", "Water is a compound of hydrogen and oxygen. Its formula is H2O. "
                           "It boils at one hundred degrees Celsius."),
    ("Tornado", "weather", "A tornado is a rotating column of air. It reaches from a thunderstorm to the ground. "
                           "Tornadoes can destroy buildings."),
]


def tiny_articles():
    return [Article.create(source="offline", title=t, domain=d, text=x, url=f"https://en.wikipedia.org/wiki/{t}",
                           retrieved_at="2026-01-01T00:00:00+00:00") for t, d, x in TINY_FACTS]


def tiny_pairs(articles):
    return [QAPair.create(article_id=a.id, domain=a.domain, question=f"What is {a.title.lower()}?",
                          answer=a.text, context=a.text, kind="overview") for a in articles]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory (config.toml, tokenizer.json, model.safetensors, ...) of a ~20k-parameter model."""
    root = tmp_path_factory.mktemp("tiny_run")
    articles = tiny_articles()
    pairs = tiny_pairs(articles)
    write_jsonl(root / "articles.jsonl", articles)
    write_jsonl(root / "train.jsonl", pairs[2:])
    write_jsonl(root / "val.jsonl", pairs[:2])
    cfg = config_from_dict({
        "data": {"articles": str(root / "articles.jsonl"), "train_qa": str(root / "train.jsonl"),
                 "val_qa": str(root / "val.jsonl"), "heldout_fraction": 0.0},
        "tokenizer": {"kind": "bpe", "vocab_size": 300},
        "model": {"max_seq_len": 96, "emb_dim": 32, "num_layers": 2, "num_heads": 2},
        "train": {"seed": 1, "device": "cpu", "batch_size": 4, "pretrain_steps": 20, "finetune_steps": 20,
                  "lr": 3e-3, "warmup_steps": 2, "eval_interval": 0, "eval_batches": 1, "log_interval": 5,
                  "checkpoint_interval": 0},
    }, "tiny")
    import os

    os.environ.setdefault("MINILLM_CACHE", str(root / "cache"))
    train(cfg, root / "run", progress=False)
    return root / "run"
