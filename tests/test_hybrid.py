"""Rung 5, the Markov-neural mixture: the tuned weight, the never-worse mix, a self-contained run dir."""

import json
from dataclasses import replace

import pytest
import torch

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.models.generation import Sampling
from minillm.models.hybrid import HybridModel, mix, tune_weight
from minillm.tokenizer import Tokenizer
from minillm.training.config import config_from_dict, load_config, shipped_config
from minillm.training.data import fit_data
from minillm.training.runs import load_run
from minillm.training.trainer import train


def hybrid_config(tiny_run, **model):
    """The tiny run's data and tokenizer, and a trigram mixed with the tiny run's transformer."""
    data = {**vars(load_config(tiny_run / "config.toml").data), "tokenizer": str(tiny_run)}
    return config_from_dict({"data": data, "tokenizer": {"kind": "bpe", "vocab_size": 300},
                             "model": {"arch": "hybrid", "max_seq_len": 96, "neural_run": str(tiny_run), **model},
                             "train": {"pretrain_steps": 1, "finetune_steps": 1}}, "hybrid")


@pytest.fixture(scope="module")
def hybrid_run(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("hybrid") / "run"
    train(hybrid_config(tiny_run), run, progress=False)
    return run


def test_shipped_config_names_a_neural_run_and_tunes_the_weight():
    cfg = load_config(shipped_config("hybrid"))
    assert cfg.arch == "hybrid" and cfg.model["neural_run"] and "weight" not in cfg.model


def test_tuned_weight_mixes_no_worse_than_either_part(hybrid_run):
    fit = json.loads((hybrid_run / "fit.json").read_text())
    assert 0.0 <= fit["weight"] <= 1.0
    assert fit["val_mix_loss"] <= min(fit["val_ngram_loss"], fit["val_neural_loss"]) + 1e-9
    assert fit["val_qa_loss"] == pytest.approx(fit["val_mix_loss"])  # held-out text is off: QA answers only


def test_tune_weight_finds_the_minimum_and_keeps_the_ends():
    torch.manual_seed(0)
    ngram, neural = -torch.rand(1000) * 5, -torch.rand(1000) * 5
    w = tune_weight(ngram, neural)
    losses = {v: -mix(ngram.double(), neural.double(), v).mean().item() for v in (0.0, 1.0, w, w - 0.01, w + 0.01)}
    assert losses[w] <= min(losses.values()) + 1e-9
    assert tune_weight(ngram, ngram - 1.0) == 1.0  # the n-gram part better on every token: all n-gram


def test_save_load_gives_identical_scores_and_answers(tiny_run, tmp_path):
    tok = Tokenizer.load(tiny_run)
    cfg = hybrid_config(tiny_run, weight=0.3, vocab_size=tok.vocab_size)
    model = HybridModel(cfg.model_config())
    data = replace(fit_data(cfg, tok, (tiny_run / "tokenizer.json").read_bytes()), load_run=load_run)
    assert model.fit(data)["weight"] == 0.3
    model.save(tmp_path)
    loaded = HybridModel.load(tmp_path)
    assert loaded.weight == 0.3 and loaded.max_seq_len == 96
    ids = torch.randint(0, tok.vocab_size, (3, 40))
    assert torch.equal(model.log_prob(ids), loaded.log_prob(ids))
    prompt = [tok.bos_id] + tok.encode("Question: What is the sun?\nAnswer:")
    sampling = Sampling(max_new_tokens=8)
    assert list(model.generate(prompt, sampling, eos_id=tok.eos_id)) == \
        list(loaded.generate(prompt, sampling, eos_id=tok.eos_id))
    neural = load_run(tiny_run)[0]
    assert loaded.num_parameters() == model.markov.num_parameters() + neural.num_parameters()
    assert loaded.size_bytes() == model.markov.size_bytes() + neural.size_bytes()


def test_ask_and_export_work_on_the_run_alone(hybrid_run, tmp_path, capsys):
    assert main(["ask", str(hybrid_run), "What is the sun?", "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["export", "arpa", str(hybrid_run), "--out", str(tmp_path / "ngram.arpa")]) == 0


def test_a_neural_run_with_another_tokenizer_is_refused(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    cfg = hybrid_config(tiny_run)
    cfg.data.tokenizer = ""  # trained anew with 280 tokens: not the tiny run's 300
    cfg.tokenizer.vocab_size = 280
    with pytest.raises(InputError, match=r"tokenizer\.json: not this run's tokenizer"):
        train(cfg, tmp_path / "run", progress=False)


def test_missing_neural_run_is_a_config_error(tiny_run, tmp_path):
    with pytest.raises(InputError, match="model.neural_run: empty"):
        train(hybrid_config(tiny_run, neural_run=""), tmp_path / "run", progress=False)
