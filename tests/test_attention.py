"""Rung 3, one attention layer and no MLP: the transformer minus its MLP, KV cache, training, files, CLI."""


import pytest
import torch
from conftest import check_save_load_identical, check_trains_below_untrained_and_uniform, train_tiny_run
from test_mlp import TRAIN

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.models import MODELS, LanguageModel, MiniTransformer, ModelConfig
from minillm.models.attention import AttentionConfig, AttentionLanguageModel
from minillm.models.generation import KVCache, Sampling
from minillm.training.config import config_from_dict

MODEL = {"arch": "attention", "max_seq_len": 96, "emb_dim": 32, "num_heads": 2}


def tiny(**overrides) -> AttentionLanguageModel:
    torch.manual_seed(0)
    values = dict(vocab_size=50, max_seq_len=24, emb_dim=16, num_heads=2)
    return AttentionLanguageModel(AttentionConfig(**{**values, **overrides})).eval()


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("attention_run"), MODEL, **TRAIN)


def test_registered_with_the_interface_members():
    assert MODELS["attention"] is AttentionLanguageModel
    assert AttentionLanguageModel.config_class is AttentionConfig
    assert AttentionLanguageModel.trained_by == "trainer"
    model = tiny()
    assert isinstance(model, LanguageModel) and model.name == "attention" and model.max_seq_len == 24
    assert (model.config.num_layers, model.config.head_dim) == (1, 8)


@pytest.mark.parametrize("position, norm", [("rotary", "rmsnorm"), ("learned", "layernorm")])
def test_equals_a_one_layer_transformer_whose_mlp_outputs_zero(position, norm):
    """The reference: MiniTransformer with num_layers=1, the same weights, and its MLP's down projection zeroed."""
    model = tiny(position=position, norm=norm)
    reference = MiniTransformer(ModelConfig(vocab_size=50, max_seq_len=24, emb_dim=16, num_layers=1, num_heads=2,
                                            position=position, norm=norm)).eval()
    ours = model.state_dict()
    renamed = {"norm.": "blocks.0.norm1.", "attn.": "blocks.0.attn."}
    weights = reference.state_dict()
    for name, tensor in ours.items():
        prefix = next((p for p in renamed if name.startswith(p)), "")
        weights[renamed[prefix] + name.removeprefix(prefix) if prefix else name] = tensor
    for name in ("blocks.0.mlp.down.weight", "blocks.0.mlp.down.bias"):
        weights[name] = torch.zeros_like(weights[name])
    reference.load_state_dict(weights)
    ids = torch.randint(0, 50, (2, 24), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(ids), reference(ids))


def test_parameter_count():
    model = tiny(position="learned")
    V, T, d = 50, 24, 16
    expected = V * d + T * d + 4 * (d * d + d) + 2 * d + d * V  # embeddings, q/k/v/out, 2 RMSNorms, head
    assert model.num_parameters() == expected and model.size_bytes() == 4 * expected
    assert tiny().num_parameters() == expected - T * d  # rotary positions have no weights


def test_shapes_and_causality():
    model = tiny()
    ids = torch.randint(0, 50, (2, 20), generator=torch.Generator().manual_seed(0))
    assert model(ids).shape == (2, 20, 50) and model.log_prob(ids).shape == (2, 19)
    changed = ids.clone()
    changed[:, 12] = (ids[:, 12] + 1) % 50
    before, after = model(ids), model(changed)
    torch.testing.assert_close(before[:, :12], after[:, :12])
    assert not torch.allclose(before[:, 12:], after[:, 12:])
    assert not torch.allclose(before[:, 19], after[:, 19])  # no window: the last position still sees it
    with pytest.raises(ValueError, match="max_seq_len=24"):
        model(torch.zeros(1, 25, dtype=torch.long))


@pytest.mark.parametrize("position", ["rotary", "learned"])
def test_kv_cache_gives_the_same_logits_and_the_same_generation(position):
    model = tiny(position=position)
    ids = torch.randint(0, 50, (1, 15), generator=torch.Generator().manual_seed(2))
    cache = KVCache.for_model(model)
    with torch.no_grad():
        steps = [model(ids[:, :9], kv_cache=cache)] + [model(ids[:, t:t + 1], kv_cache=cache) for t in range(9, 15)]
        torch.testing.assert_close(torch.cat(steps, dim=1), model(ids))
    prompt = ids[0, :6].tolist()
    for sampling in (Sampling(max_new_tokens=30), Sampling(max_new_tokens=30, temperature=1.0, seed=5)):
        cached = list(model.generate(prompt, sampling))
        assert cached == list(model.generate(prompt, sampling, use_cache=False)) and len(cached) == 18


def test_trains_below_untrained_and_uniform_loss(attention_run):
    check_trains_below_untrained_and_uniform(attention_run, AttentionLanguageModel)


def test_save_load_gives_identical_logits_and_greedy_answers(attention_run, tmp_path):
    check_save_load_identical(attention_run, AttentionLanguageModel, tmp_path)


def test_load_rejects_another_rungs_file(tmp_path):
    MiniTransformer(ModelConfig(vocab_size=50, max_seq_len=8, emb_dim=8, num_layers=1, num_heads=2)).save(tmp_path)
    with pytest.raises(InputError, match="not a attention weights file"):
        AttentionLanguageModel.load(tmp_path)


def test_cli_ask_answers(attention_run, capsys):
    assert main(["ask", str(attention_run), "What is the sun?", "--max-new-tokens", "20"]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("key, value, message", [
    ("emb_dim", 30, r"emb_dim \(30\) must be divisible by num_heads \(4\)"),
    ("emb_dim", 12, "rotary positions need an even head_dim"),
    ("position", "sinusoidal", "unknown position 'sinusoidal'"),
    ("num_layers", 2, "model.num_layers: unknown key"),
])
def test_bad_config_values_name_the_key(key, value, message):
    with pytest.raises(InputError, match=message):
        config_from_dict({"model": {**MODEL, "num_heads": 4, key: value}}, "attention.toml")
