"""MiniTransformer and ModelConfig: the seed's API, init, references, KV cache, variants, weight files."""

import contextlib
import io
import json
import math
import re
import struct
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minillm.core.errors import InputError
from minillm.models import MODELS, LanguageModel, MiniTransformer, ModelConfig
from minillm.models.generation import KVCache
from minillm.models.transformer import RMSNorm, apply_rotary, rotary_tables
from minillm.models.weights import load_weights, save_weights

SEED_CONFIG = dict(vocab_size=5000, max_seq_len=32, emb_dim=256, num_layers=2, num_heads=2)


def tiny(**overrides) -> ModelConfig:
    values = dict(vocab_size=50, max_seq_len=24, emb_dim=32, num_layers=2, num_heads=4)
    return ModelConfig(**{**values, **overrides})


def build(config: ModelConfig, seed: int = 0) -> MiniTransformer:
    torch.manual_seed(seed)
    return MiniTransformer(config).eval()


def readme_snippet() -> str:
    """The README's model snippet, read from the README itself so the two cannot drift apart."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    [snippet] = [b for b in blocks if "MiniTransformer(config)" in b]
    return snippet


def test_readme_snippet_runs_and_prints_shape_and_size():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(readme_snippet(), {})
    shape_line, size_line = out.getvalue().splitlines()
    assert shape_line == "torch.Size([128, 5000])"
    millions = float(size_line.removesuffix("M parameters"))
    assert 3.30 <= millions <= 3.40


def test_seed_config_parameter_count_and_size():
    model = build(ModelConfig(**SEED_CONFIG))
    V, T, d, L = 5000, 32, 256, 2
    block = 2 * 2 * d + 4 * (d * d + d) + 2 * (d * d + d)  # 2 LayerNorms, q/k/v/out, MLP up/down (ffn = d)
    expected = V * d + T * d + L * block + 2 * d + d * V  # embeddings, blocks, final norm, head (no bias)
    assert model.num_parameters() == expected == 3_360_256
    assert model.size_bytes() == 4 * expected  # float32, ~13 MB


def test_init_xavier_uniform_for_linears_and_normal_002_for_embeddings():
    model = build(ModelConfig(**SEED_CONFIG))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2 * 6 + 1
    for linear in linears:
        fan_out, fan_in = linear.weight.shape
        bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio (2010), uniform variant
        w = linear.weight.detach()
        assert w.abs().max() <= bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
        assert abs(w.mean().item()) < 0.05 * bound
        if linear.bias is not None:
            assert torch.all(linear.bias == 0)
    for table in (model.tok_emb.weight, model.pos_emb.weight):
        assert table.std().item() == pytest.approx(0.02, rel=0.05)
        assert abs(table.mean().item()) < 0.002


def test_block_matches_torch_transformer_encoder_layer():
    """Outside reference: the default block is PyTorch's pre-norm encoder layer, GELU, causal mask."""
    config = tiny(ffn_dim=48)
    block = build(config).blocks[0]
    ref = nn.TransformerEncoderLayer(config.emb_dim, config.num_heads, dim_feedforward=48, dropout=0.0,
                                     activation="gelu", batch_first=True, norm_first=True).eval()
    attn = block.attn
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight,
                                                      attn.v_proj.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        ref.self_attn.out_proj.load_state_dict(attn.out_proj.state_dict())
        ref.linear1.load_state_dict(block.mlp.up.state_dict())
        ref.linear2.load_state_dict(block.mlp.down.state_dict())
        ref.norm1.load_state_dict(block.norm1.state_dict())
        ref.norm2.load_state_dict(block.norm2.state_dict())
    x = torch.randn(3, 10, config.emb_dim)
    mask = nn.Transformer.generate_square_subsequent_mask(10)
    with torch.no_grad():
        expected = ref(x, src_mask=mask, is_causal=True)
        got = block(x, None, None, 0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_rmsnorm_matches_torch():
    torch.manual_seed(0)
    ours, ref = RMSNorm(16, 1e-5), nn.RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
    x = torch.randn(4, 16)
    torch.testing.assert_close(ours(x), ref(x))


def test_rotary_scores_depend_only_on_relative_position():
    cos, sin = rotary_tables(8, 64)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m: int, n: int) -> float:
        rotated_q = apply_rotary(q, cos[m:m + 1], sin[m:m + 1])
        return (rotated_q * apply_rotary(k, cos[n:n + 1], sin[n:n + 1])).sum().item()

    assert score(5, 2) == pytest.approx(score(40, 37), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)
    assert apply_rotary(q, cos[:1], sin[:1]).equal(q)  # position 0 is the identity


@pytest.mark.parametrize("position", ["learned", "rotary"])
def test_causal_a_later_token_never_changes_earlier_logits(position):
    model = build(tiny(position=position))
    ids = torch.randint(0, 50, (2, 16))
    changed = ids.clone()
    changed[:, 9] = (ids[:, 9] + 1) % 50
    with torch.no_grad():
        before, after = model(ids), model(changed)
    torch.testing.assert_close(before[:, :9], after[:, :9], atol=0, rtol=0)
    assert not torch.allclose(before[:, 9:], after[:, 9:])


@pytest.mark.parametrize("overrides", [{}, {"position": "rotary"}, {"share_layers": True, "num_layers": 3},
                                       {"norm": "rmsnorm", "activation": "swiglu", "tie_embeddings": True},
                                       {"copy_head": True, "position": "rotary"}])
def test_kv_cache_logits_equal_full_recomputation(overrides):
    config = tiny(**overrides)
    model = build(config)
    ids = torch.randint(0, 50, (2, 20))
    with torch.no_grad():
        full = model(ids)
        cache = KVCache(2, config.num_layers, config.num_heads, config.head_dim, config.max_seq_len)
        pieces = [model(ids[:, :6], kv_cache=cache), model(ids[:, 6:9], kv_cache=cache)]  # prompt, a chunk
        pieces += [model(ids[:, t:t + 1], kv_cache=cache) for t in range(9, 20)]  # then one token at a time
    assert cache.pos == 20
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)


def test_sequence_longer_than_max_seq_len_rejected():
    config = tiny()
    model = build(config)
    with pytest.raises(ValueError, match="25 tokens is longer than max_seq_len=24"):
        model(torch.zeros(1, 25, dtype=torch.long))
    cache = KVCache.for_model(model)
    model(torch.zeros(1, 20, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="longer than max_seq_len"):
        model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match=r"shape \(batch, time\)"):
        model(torch.zeros(5, dtype=torch.long))


def param_count(**overrides) -> int:
    return MiniTransformer(tiny(**overrides)).num_parameters()


def test_variants_parameter_count_relations():
    d, V, T, L, hidden = 32, 50, 24, 2, 32
    base = param_count()
    block = (base - V * d - T * d - 2 * d - d * V) // L
    assert param_count(tie_embeddings=True) == base - V * d
    assert param_count(share_layers=True) == base - (L - 1) * block
    assert param_count(position="rotary") == base - T * d
    assert param_count(activation="swiglu") == base + L * (d * hidden + hidden)
    assert param_count(norm="rmsnorm") == base - (2 * L + 1) * d  # no norm biases
    assert param_count(bias=False) == base - L * (4 * d + hidden + d) - (2 * L + 1) * d
    assert param_count(ffn_dim=4 * d) == base + L * (2 * d * 3 * d + 3 * d)  # up/down grow by 3d
    assert param_count(dropout=0.1) == base


@pytest.mark.parametrize("overrides", [
    {"norm": "rmsnorm"}, {"activation": "swiglu"}, {"position": "rotary"}, {"tie_embeddings": True},
    {"share_layers": True}, {"dropout": 0.2}, {"bias": False}, {"ffn_dim": 128}, {"copy_head": True},
])
def test_every_variant_runs_forward_and_backward(overrides):
    model = build(tiny(**overrides)).train()
    ids = torch.randint(0, 50, (2, 12))
    logits = model(ids)
    assert logits.shape == (2, 12, 50)
    F.cross_entropy(logits.view(-1, 50), ids.view(-1)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_copy_head_gives_normalised_log_probs_and_its_parameter_count():
    model = build(tiny(copy_head=True))
    with torch.no_grad():
        log_probs = model(torch.randint(0, 50, (3, 20)))
    torch.testing.assert_close(log_probs.logsumexp(-1), torch.zeros(3, 20), atol=1e-5, rtol=0)
    d, head_dim = 32, 8
    assert param_count(copy_head=True) == param_count() + 2 * d * head_dim + d + 1  # query, key, gate


def test_copy_head_points_only_at_tokens_that_followed_earlier_ones():
    model = build(tiny(copy_head=True))
    with torch.no_grad():
        model.copy_head.gate.bias.fill_(-40.0)  # gate shut: the distribution is the pointer's alone
        model.copy_head.gate.weight.zero_()
        ids = torch.tensor([[7, 3, 9, 3, 11, 5]])
        probs = model(ids)[0].exp()
    torch.testing.assert_close(probs[0].sum(), torch.tensor(1.0))  # position 0 has nothing to copy: vocab
    for t in range(1, 6):
        successors = set(ids[0, 1:t + 1].tolist())  # ids[j + 1] for j < t
        mass = probs[t, sorted(successors)].sum()
        assert mass > 1 - 1e-6, (t, successors)


@pytest.mark.parametrize("copy_head", [False, True])
def test_targets_give_the_full_outputs_loss_and_gradients(copy_head):
    """forward(ids, targets=y), the Trainer's path, scores only the targets: the same per-token loss as a
    cross entropy over the full output, ignored targets (-100) at 0, and the same gradients."""
    model = build(tiny(copy_head=copy_head)).train()
    ids = torch.randint(0, 50, (3, 20), generator=torch.Generator().manual_seed(1))
    targets = torch.roll(ids, -1, dims=1)
    targets[0, :5] = -100
    targets[2, 9] = ids[2, 4]  # a token the copy head can point at
    full = F.cross_entropy(model(ids).transpose(1, 2), targets, reduction="none")
    full.sum().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    scored = model(ids, targets=targets)
    scored.sum().backward()
    torch.testing.assert_close(scored, full, atol=1e-5, rtol=1e-5)
    assert scored.shape == (3, 20) and scored[0, :5].eq(0).all()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], atol=1e-5, rtol=1e-4, msg=name)
    with pytest.raises(ValueError, match="no kv_cache"):
        model(ids, kv_cache=KVCache.for_model(model, 3), targets=targets)


def test_dropout_is_active_in_train_mode_only():
    model = build(tiny(dropout=0.3))
    ids = torch.randint(0, 50, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), model(ids))
        model.train()
        assert not torch.allclose(model(ids), model(ids))


def test_tiny_model_overfits_one_batch():
    model = build(tiny()).train()
    ids = torch.randint(0, 50, (4, 16), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = F.cross_entropy(model(ids[:, :-1]).reshape(-1, 50), ids[:, 1:].reshape(-1))
        if loss.item() < 0.01:  # memorised (~40 steps); stopping early keeps the test fast
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01


def test_log_prob_equals_negative_cross_entropy():
    model = build(tiny())
    ids = torch.randint(0, 50, (3, 12))
    with torch.no_grad():
        lp = model.log_prob(ids)
        expected = -F.cross_entropy(model(ids[:, :-1]).transpose(1, 2), ids[:, 1:], reduction="none")
    assert lp.shape == (3, 11)
    torch.testing.assert_close(lp, expected)


@pytest.mark.parametrize("values, message", [
    ({"emb_dim": 30, "num_heads": 4}, "emb_dim \\(30\\) must be divisible by num_heads \\(4\\)"),
    ({"emb_dim": 36, "num_heads": 4, "position": "rotary"}, "rotary positions need an even head_dim, got 9"),
    ({"vocab_size": 0}, "vocab_size must be a positive integer, got 0"),
    ({"num_layers": -1}, "num_layers must be a positive integer"),
    ({"emb_dim": 32.0}, "emb_dim must be a positive integer, got 32.0"),
    ({"ffn_dim": 0}, "ffn_dim must be a positive integer"),
    ({"dropout": 1.0}, "dropout must be in \\[0, 1\\), got 1.0"),
    ({"dropout": -0.1}, "dropout must be in"),
    ({"norm": "batchnorm"}, "unknown norm 'batchnorm'; choose one of layernorm, rmsnorm"),
    ({"activation": "relu"}, "unknown activation 'relu'; choose one of gelu, swiglu"),
    ({"position": "alibi"}, "unknown position 'alibi'; choose one of learned, rotary"),
    ({"norm_eps": 0}, "norm_eps must be a positive number"),
    ({"tie_embeddings": "yes"}, "tie_embeddings must be true or false"),
])
def test_bad_configs_rejected_with_clear_message(values, message):
    with pytest.raises(ValueError, match=message):
        tiny(**values)


def test_config_dict_round_trip_and_unknown_keys():
    config = tiny(position="rotary", ffn_dim=64)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert json.loads(json.dumps(config.to_dict()))["ffn_dim"] == 64
    with pytest.raises(ValueError, match="unknown model config key\\(s\\) 'n_embd'; known keys: vocab_size"):
        ModelConfig.from_dict({**config.to_dict(), "n_embd": 32})
    with pytest.raises(ValueError, match="model config is missing 'num_heads'"):
        ModelConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "num_heads"})


def test_interface_and_registry():
    model = build(tiny())
    assert isinstance(model, LanguageModel)
    assert MODELS["transformer"] is MiniTransformer and model.name == "transformer"
    assert model.max_seq_len == 24


def safetensors_data_bytes(path) -> int:
    """File size minus the 8-byte header length and the JSON header: the tensor bytes."""
    raw = path.read_bytes()
    return len(raw) - 8 - struct.unpack("<Q", raw[:8])[0]


@pytest.mark.parametrize("overrides", [{}, {"tie_embeddings": True}, {"share_layers": True},
                                       {"position": "rotary", "norm": "rmsnorm", "activation": "swiglu"},
                                       {"copy_head": True}])
def test_weights_round_trip_gives_identical_logits(tmp_path, overrides):
    config = tiny(**overrides)
    model = build(config, seed=1)
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left behind
    assert safetensors_data_bytes(path) == model.size_bytes()
    other = build(config, seed=2)
    load_weights(other, path)
    ids = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(ids), other(ids))


def test_save_load_rebuilds_model_from_run_dir(tmp_path):
    model = build(tiny(tie_embeddings=True, share_layers=True, num_layers=3), seed=3)
    path = model.save(tmp_path)
    assert path == tmp_path / "model.safetensors"
    loaded = MiniTransformer.load(tmp_path)
    assert loaded.config == model.config
    ids = torch.randint(0, 50, (1, 10))
    with torch.no_grad():
        assert torch.equal(model(ids), loaded.eval()(ids))
    assert loaded.num_parameters() == model.num_parameters() < param_count(num_layers=3)


def test_bad_weight_files_raise_input_error(tmp_path):
    model = build(tiny())
    with pytest.raises(InputError, match="no such weights file"):
        MiniTransformer.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="model.safetensors: not a safetensors file"):
        MiniTransformer.load(tmp_path)
    save_weights(model, tmp_path / "model.safetensors")  # no config in metadata
    with pytest.raises(InputError, match="not a transformer weights file"):
        MiniTransformer.load(tmp_path)
    save_weights(build(tiny(tie_embeddings=True)), tmp_path / "w.safetensors")
    with pytest.raises(InputError, match="w.safetensors: weights do not fit this model: missing 'lm_head"):
        load_weights(model, tmp_path / "w.safetensors")
    with pytest.raises(InputError, match=r"'tok_emb.weight' has shape \(50, 32\), the model needs \(60"):
        load_weights(build(tiny(vocab_size=60)), tmp_path / "model.safetensors")
