"""Rung 2, the Bengio-style MLP language model: windows, causality, training, weight files, the CLI."""

import math

import pytest
import torch
from conftest import check_save_load_identical, check_trains_below_untrained_and_uniform, train_tiny_run
from torch import nn

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.models import MODELS, LanguageModel, MiniTransformer, ModelConfig
from minillm.models.generation import Sampling, generate
from minillm.models.mlp import MLPConfig, MLPLanguageModel
from minillm.training.config import config_from_dict

MODEL = {"arch": "mlp", "max_seq_len": 96, "context": 4, "emb_dim": 16, "hidden_dim": 64}
TRAIN = {"pretrain_steps": 60, "finetune_steps": 40, "lr": 1e-2, "min_lr": 1e-3}  # enough to learn the tiny data


def tiny(**overrides) -> MLPLanguageModel:
    torch.manual_seed(0)
    values = dict(vocab_size=50, max_seq_len=24, context=3, emb_dim=8, hidden_dim=16)
    return MLPLanguageModel(MLPConfig(**{**values, **overrides})).eval()


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("mlp_run"), MODEL, **TRAIN)


def test_registered_with_the_interface_members():
    assert MODELS["mlp"] is MLPLanguageModel
    assert MLPLanguageModel.config_class is MLPConfig and MLPLanguageModel.trained_by == "trainer"
    model = tiny()
    assert isinstance(model, LanguageModel) and model.name == "mlp" and model.max_seq_len == 24


def test_parameter_count_and_init():
    model = tiny(num_layers=2)
    V, c, e, h = 50, 3, 8, 16
    expected = (V + 1) * e + (c * e * h + h) + (h * h + h) + (h * V + V)  # table + "before start", 2 hidden, head
    assert model.num_parameters() == expected
    assert model.size_bytes() == 4 * expected
    for linear in [m for m in model.modules() if isinstance(m, nn.Linear)]:
        fan_out, fan_in = linear.weight.shape
        assert linear.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out))  # xavier_uniform_
        assert torch.all(linear.bias == 0)
    big = MLPLanguageModel(MLPConfig(vocab_size=4000, max_seq_len=8, emb_dim=64))
    assert big.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_forward_is_the_papers_formula_for_every_position():
    """y_t = b + U tanh(d + H [e(x_{t-2}); e(x_{t-1}); e(x_t)]), with the "before start" row before t = 0."""
    model = tiny()
    ids = torch.tensor([[5, 9, 2, 7, 7, 1]])
    table, (hidden,), head = model.tok_emb.weight, model.hidden, model.lm_head
    padded = [50, 50] + ids[0].tolist()
    for t in range(ids.size(1)):
        window = torch.cat([table[i] for i in padded[t:t + 3]])
        expected = head(torch.tanh(hidden(window)))
        torch.testing.assert_close(model(ids)[0, t], expected)


def test_shapes_and_bad_input():
    model = tiny()
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 50)
    assert model.log_prob(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 4)
    with pytest.raises(ValueError, match="batch, time"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len=24"):
        model(torch.zeros(1, 25, dtype=torch.long))


def test_causal_and_blind_beyond_its_window():
    model = tiny(context=4)
    ids = torch.randint(0, 50, (1, 20), generator=torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[0, 10] = (ids[0, 10] + 1) % 50
    before, after = model(ids)[0], model(changed)[0]
    torch.testing.assert_close(before[:10], after[:10])  # earlier positions never see a later token
    assert not torch.allclose(before[10:14], after[10:14])  # positions 10..13 read token 10
    torch.testing.assert_close(before[14:], after[14:])  # and later ones have forgotten it


def test_generation_from_the_last_window_equals_reading_the_whole_sequence():
    model = tiny().train()
    prompt = [1, 4, 8, 15, 16, 23, 42]
    sampling = Sampling(max_new_tokens=12, temperature=0.8, seed=3)
    fast = list(model.generate(prompt, sampling))
    assert fast == list(generate(model, prompt, sampling, use_cache=False)) and len(fast) == 12
    assert model.training  # generation leaves the model's mode as it found it
    assert len(list(model.generate(prompt, Sampling(max_new_tokens=100)))) == 24 - len(prompt)  # max_seq_len


def test_trains_below_untrained_and_uniform_loss(mlp_run):
    check_trains_below_untrained_and_uniform(mlp_run, MLPLanguageModel)


def test_save_load_gives_identical_logits_and_greedy_answers(mlp_run, tmp_path):
    check_save_load_identical(mlp_run, MLPLanguageModel, tmp_path)


def test_load_rejects_another_rungs_file(tmp_path):
    MiniTransformer(ModelConfig(vocab_size=50, max_seq_len=8, emb_dim=8, num_layers=1, num_heads=2)).save(tmp_path)
    with pytest.raises(InputError, match="not a mlp weights file"):
        MLPLanguageModel.load(tmp_path)


def test_cli_ask_answers(mlp_run, capsys):
    assert main(["ask", str(mlp_run), "What is the sun?", "--max-new-tokens", "20"]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("key, value, message", [
    ("context", 0, "context must be a positive integer"),
    ("hidden_dim", -3, "hidden_dim must be a positive integer"),
    ("dropout", 1.0, "dropout must be in"),
    ("num_heads", 2, "model.num_heads: unknown key"),
])
def test_bad_config_values_name_the_key(key, value, message):
    with pytest.raises(InputError, match=message):
        config_from_dict({"model": {**MODEL, key: value}}, "mlp.toml")

