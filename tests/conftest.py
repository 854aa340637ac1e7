"""Shared fixtures and helpers: tiny data, a tiny trained run directory (built once per test session), and the
checks every neural rung's tests run on their own tiny run."""

import os
import shutil
from pathlib import Path

import pytest

from minillm.core.files import write_jsonl
from minillm.data.records import Article, QAPair
from minillm.training.config import config_from_dict, load_config, shipped_config
from minillm.training.trainer import train

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


# the browser tests' Chromium (Debian's package, driven by Playwright) and the hostile inputs they feed it
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
XSS_QUESTION = "<img src=x onerror=alert(1)>"
HOSTILE = Article.create(source="offline", title="Quasar <img src=x onerror=alert(2)>", domain="astronomy",
                         text="A quasar is a very bright galactic nucleus powered by a black hole.",
                         url="javascript:alert(3)", license="<b>CC BY-SA 4.0</b>",
                         retrieved_at="2026-01-01T00:00:00+00:00")


def tiny_articles():
    return [Article.create(source="offline", title=t, domain=d, text=x, url=f"https://en.wikipedia.org/wiki/{t}",
                           retrieved_at="2026-01-01T00:00:00+00:00") for t, d, x in TINY_FACTS]


def tiny_pairs(articles):
    return [QAPair.create(article_id=a.id, domain=a.domain, question=f"What is {a.title.lower()}?",
                          answer=a.text, context=a.text, kind="overview") for a in articles]


def tiny_run_tables(root, model: dict, **train) -> dict:
    """The config tables of a run on the tiny data written by ``train_tiny_run``, for any [model] table."""
    return {
        "data": {"articles": str(root / "articles.jsonl"), "train_qa": str(root / "train.jsonl"),
                 "val_qa": str(root / "val.jsonl"), "heldout_fraction": 0.0},
        "tokenizer": {"kind": "bpe", "vocab_size": 300},
        "model": model,
        "train": {"seed": 1, "device": "cpu", "batch_size": 4, "pretrain_steps": 20, "finetune_steps": 20,
                  "lr": 3e-3, "warmup_steps": 2, "eval_interval": 0, "eval_batches": 1, "log_interval": 5,
                  "checkpoint_interval": 0, **train},
    }


def train_tiny_run(root, model: dict, data: dict | None = None, **train_overrides):
    """Write the tiny articles and QA pairs under root, train a run on them and return root / "run";
    ``data`` overrides keys of the [data] table."""
    articles = tiny_articles()
    pairs = tiny_pairs(articles)
    write_jsonl(root / "articles.jsonl", articles)
    write_jsonl(root / "train.jsonl", pairs[2:])
    write_jsonl(root / "val.jsonl", pairs[:2])
    os.environ.setdefault("MINILLM_CACHE", str(root / "cache"))
    tables = tiny_run_tables(root, model, **train_overrides)
    tables["data"].update(data or {})
    cfg = config_from_dict(tables, model.get("arch", "tiny"))
    train(cfg, root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory (config.toml, tokenizer.json, model.safetensors, ...) of a ~20k-parameter model."""
    return train_tiny_run(tmp_path_factory.mktemp("tiny_run"),
                          {"max_seq_len": 96, "emb_dim": 32, "num_layers": 2, "num_heads": 2})


def open_copy(run, dest):
    """A copy of ``run`` at ``dest`` with a retrieval index over the tiny articles (open book); ``dest``."""
    from minillm.retrieval.index import Index

    shutil.copytree(run, dest)
    Index.build(tiny_articles()).save(dest / "index")
    return dest


@pytest.fixture
def open_tiny_run(tiny_run, tmp_path):
    """A copy of the tiny run with a retrieval index (the session's run stays untouched)."""
    return open_copy(tiny_run, tmp_path / "run")


# --- checks every neural rung's tests run on its own trained tiny run ------------------------------------


def text_loss(model, tok) -> float:
    """Mean loss (nats/token) over the articles the run learned in both phases."""
    import torch

    with torch.no_grad():
        return sum(-model.log_prob(torch.tensor([tok.encode(a.text)])).mean().item()
                   for a in tiny_articles()[2:]) / 5


def check_trains_below_untrained_and_uniform(run, cls) -> None:
    import math

    import torch

    from minillm.training.runs import load_run

    model, tok, cfg = load_run(run)
    torch.manual_seed(0)
    untrained = cls(cfg.model_config()).eval()
    loss, loss_before = text_loss(model, tok), text_loss(untrained, tok)
    assert loss < loss_before and loss < math.log(cfg.model["vocab_size"]) - 1.0


def check_save_load_identical(run, cls, tmp_path) -> None:
    """Saved and loaded again (and the Trainer's own file loaded): identical logits and greedy answers."""
    import torch

    from minillm.models.generation import Sampling
    from minillm.training.runs import load_run

    model, tok, _ = load_run(run)
    assert isinstance(model, cls)
    model.save(tmp_path)
    reloaded = cls.load(tmp_path).eval()
    assert reloaded.config == model.config
    ids = torch.tensor([tok.encode(tiny_articles()[2].text)])  # text of both training phases
    with torch.no_grad():
        assert torch.equal(model(ids), reloaded(ids))
        assert torch.equal(model(ids), cls.load(run).eval()(ids))  # the Trainer's file too
    prompt, sampling = [tok.bos_id] + tok.encode("Question: What is the sun?\nAnswer:"), Sampling(max_new_tokens=20)
    assert list(model.generate(prompt, sampling)) == list(reloaded.generate(prompt, sampling))


ARC_EASY = "../shared/data/qa/ARC-Easy-validation.jsonl"


def shared_file(relative: str) -> Path:
    """A data file of the workspace's ../shared (beside the clone, as in CI); skips the test where it is
    absent, as in a user's clone."""
    path = (Path(__file__).resolve().parents[1] / relative).resolve()
    if not path.is_file():
        pytest.skip(f"{path} is absent (the workspace's ../shared data)")
    return path


def shakespeare_slice(tmp_path, chars: int = 20_000) -> Path:
    """The first ``chars`` characters of the text shakespeare-char reads (../shared), as tmp_path/input.txt;
    skips the test where that file is absent."""
    source = shared_file(load_config(shipped_config("shakespeare-char")).data.text)
    text = tmp_path / "input.txt"
    text.write_text(source.read_text(encoding="utf-8")[:chars], encoding="utf-8")
    return text
