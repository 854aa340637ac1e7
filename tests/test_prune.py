"""`minillm compress prune` of neural runs: magnitude masks and their packed file, FFN neurons, recovery
fine-tuning, a pruned run that every command takes, bad inputs."""

import json
import shutil

import pytest
import safetensors
import safetensors.torch
import torch
from conftest import train_tiny_run

from minillm.cli import main
from minillm.compress.prune import ffn_importance, pack, prune_run
from minillm.core.errors import InputError
from minillm.models.weights import unpack
from minillm.training.runs import load_run

SENTENCE = "The Sun is the star at the centre of the Solar System."
VARIANT = {"max_seq_len": 96, "emb_dim": 32, "num_layers": 2, "num_heads": 2, "ffn_dim": 48, "bias": False,
           "activation": "swiglu", "norm": "rmsnorm", "position": "rotary", "tie_embeddings": True,
           "share_layers": True, "copy_head": True}


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory):
    """The session's tiny transformer, and a few training steps of a transformer variant (SwiGLU, tied, shared
    layers, copy head), an attention run and an mlp run."""
    def short(name, model):
        return train_tiny_run(tmp_path_factory.mktemp(name), model, pretrain_steps=4, finetune_steps=4)

    return {"transformer": tiny_run, "variant": short("variant", VARIANT),
            "attention": short("attention", {"arch": "attention", "max_seq_len": 96, "emb_dim": 32,
                                             "num_heads": 2}),
            "mlp": short("mlp", {"arch": "mlp", "max_seq_len": 96, "emb_dim": 16, "hidden_dim": 32})}


def pruning_metadata(out):
    with safetensors.safe_open(str(out / "model.safetensors"), framework="pt") as fh:  # safetensors alone
        return json.loads(fh.metadata()["pruning"])


def test_pack_round_trips_with_the_first_weight_in_the_lowest_bit():
    w = torch.randn(5, 7) * (torch.rand(5, 7) > 0.5)  # 35 weights: the last byte is part padding
    mask, values = pack(w)
    assert mask.dtype == torch.uint8 and mask.numel() == 5 and values.numel() == int((w != 0).sum())
    assert torch.equal(unpack(mask, values, [5, 7]), w)
    mask, values = pack(torch.tensor([[0.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 4.0]]))
    assert mask.tolist() == [0b1010, 1] and values.tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="takes 2 bytes"):
        unpack(mask[:1], values, [1, 9])


@pytest.mark.parametrize(("name", "sparsity"), [("transformer", 0.3), ("transformer", 0.5), ("transformer", 0.7),
                                                ("variant", 0.5), ("attention", 0.5), ("mlp", 0.5)])
def test_unstructured_zeroes_the_smallest_weights_of_each_matrix(runs, tmp_path, name, sparsity):
    out = tmp_path / "pruned"
    summary = prune_run(runs[name], out, sparsity=sparsity)
    assert summary.startswith(f"pruned {sparsity:.0%} of the weights of each of") and summary.endswith(str(out))
    original, tok, _ = load_run(runs[name])
    model, _, _ = load_run(out)
    before, after = original.state_dict(), model.state_dict()
    pruning = pruning_metadata(out)
    assert pruning["format"] == "bitmask" and pruning["sparsity"] == sparsity
    matrices = pruning["tensors"]
    assert {n for n, t in before.items() if t.dim() == 2} == set(matrices)  # every matrix, no vector
    stored = safetensors.torch.load_file(str(out / "model.safetensors"))
    for n, t in before.items():
        if n not in matrices:
            assert torch.equal(after[n], t) and torch.equal(stored[n], t)
            continue
        kept = after[n] != 0
        assert int((~kept).sum()) == round(sparsity * t.numel())
        assert t[~kept].abs().max() <= t[kept].abs().min()  # the smallest magnitudes went
        assert torch.equal(after[n], t * kept)  # the others as they were
        assert stored[f"{n}.mask"].dtype == torch.uint8 and stored[f"{n}.mask"].numel() == (t.numel() + 7) // 8
        assert stored[f"{n}.values"].dtype == torch.float32 and stored[f"{n}.values"].numel() == int(kept.sum())
    dense, packed = original.size_bytes(), model.size_bytes()
    assert packed == sum(t.numel() * t.element_size() for t in stored.values())
    matrix_bytes = sum(t.numel() * 4 for n, t in before.items() if n in matrices)
    assert packed - (dense - matrix_bytes) <= (1 / 32 + 1 - sparsity + 0.001) * matrix_bytes
    assert (out / "model.safetensors").stat().st_size < (runs[name] / "model.safetensors").stat().st_size
    ids = torch.tensor([tok.encode(SENTENCE)])
    with torch.no_grad():
        assert torch.isfinite(model(ids)).all()


def test_a_pruned_run_is_a_run(open_tiny_run, tmp_path, capsys):
    run = open_tiny_run
    out = tmp_path / "p50"
    assert main(["compress", "prune", str(run), "--sparsity", "0.5", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("pruned 50% of the weights of each of 15 matrices") and line.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "index", "metrics.jsonl", "model.safetensors",
                                                      "tokenizer.json"]
    assert (out / "config.toml").read_bytes() == (run / "config.toml").read_bytes()
    assert main(["ask", str(out), "What is the Sun?", "--json", "--max-new-tokens", "8"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["mode"] == "open" and reply["sources"][0]["title"] == "Sun"
    assert main(["ask", str(out), "What is the Sun?"]) == 0


def test_a_pruned_run_quantizes_with_its_zeros_kept(tiny_run, tmp_path):
    pruned, quantized = tmp_path / "p50", tmp_path / "p50-int8"
    assert main(["compress", "prune", str(tiny_run), "--sparsity", "0.5", "--out", str(pruned)]) == 0
    assert main(["compress", "quantize", str(pruned), "--out", str(quantized)]) == 0
    dense = load_run(pruned)[0].state_dict()
    weights = load_run(quantized)[0].state_dict()
    for name, w in dense.items():
        if w.dim() == 2:  # every matrix quantized: zeros stay zeros, the rest within half a step
            assert (weights[name][w == 0] == 0).all()
            assert torch.allclose(weights[name], w, atol=w.abs().max().item() / 127)
    with safetensors.safe_open(str(quantized / "model.safetensors"), "pt") as f:
        assert "pruning" not in f.metadata() and "quantization" in f.metadata()


def zero_neurons(model, sparsity):
    """Zero the weights of round(sparsity * ffn_dim) random FFN neurons of each block, in place."""
    generator = torch.Generator().manual_seed(0)
    hidden = model.config.hidden_dim
    with torch.no_grad():
        for block in model.blocks:
            gone = torch.randperm(hidden, generator=generator)[:round(sparsity * hidden)]
            for linear in (block.mlp.up, block.mlp.gate):
                if linear is not None:
                    linear.weight[gone] = 0
                    if linear.bias is not None:
                        linear.bias[gone] = 0
            block.mlp.down.weight[:, gone] = 0


@pytest.mark.parametrize("name", ["transformer", "variant"])
def test_structured_ffn_removes_exactly_the_neurons_that_do_nothing(runs, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(runs[name], run)
    zeroed, tok, cfg = load_run(run)
    zero_neurons(zeroed, 0.25)
    zeroed.save(run)
    out = tmp_path / "ffn"
    hidden = zeroed.config.hidden_dim
    keep = hidden - round(0.25 * hidden)
    summary = prune_run(run, out, sparsity=0.25, structured="ffn")
    assert f"pruned 25% of the FFN neurons (ffn_dim {hidden} -> {keep})" in summary
    model, _, new_cfg = load_run(out)
    assert new_cfg.model == {**cfg.model, "ffn_dim": keep} and model.config.ffn_dim == keep
    assert model.num_parameters() < zeroed.num_parameters()
    assert model.size_bytes() < zeroed.size_bytes()
    assert all((ffn_importance(block.mlp) > 0).all() for block in model.blocks)  # only the zeroed ones went
    assert pruning_metadata(out) == {"method": "ffn", "sparsity": 0.25, "tensors": {}, "finetune_steps": 0,
                                     "val_qa_loss": [], "ffn_dim": [hidden, keep]}
    ids = torch.tensor([tok.encode(SENTENCE)])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), zeroed(ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize("structured", [None, "ffn"])
def test_recovery_lowers_the_pruned_val_loss_and_keeps_pruned_weights_zero(tiny_run, tmp_path, structured):
    pruned, recovered = tmp_path / "pruned", tmp_path / "recovered"
    prune_run(tiny_run, pruned, sparsity=0.7, structured=structured)
    summary = prune_run(tiny_run, recovered, sparsity=0.7, structured=structured, finetune_steps=10)
    assert ", 10 recovery steps (val QA loss " in summary
    pruning = pruning_metadata(recovered)
    before, after_pruning, after_recovery = pruning["val_qa_loss"]
    assert pruning["finetune_steps"] == 10 and after_pruning > before and after_recovery < after_pruning
    assert f"{before:.2f} -> {after_pruning:.2f} -> {after_recovery:.2f}" in summary
    masked, recovered_model = load_run(pruned)[0].state_dict(), load_run(recovered)[0].state_dict()
    for name in pruning["tensors"]:  # the same weights pruned, and they stayed zero
        assert torch.equal(recovered_model[name] == 0, masked[name] == 0)
    changed = [not torch.equal(recovered_model[n], masked[n]) for n in masked]
    assert sum(changed) > len(changed) / 2


@pytest.mark.parametrize("name", ["variant", "attention", "mlp"])
def test_masks_stay_in_force_while_every_rung_recovers(runs, tmp_path, name):
    prune_run(runs[name], tmp_path / "pruned", sparsity=0.5)
    prune_run(runs[name], tmp_path / "recovered", sparsity=0.5, finetune_steps=3)
    masked, recovered = load_run(tmp_path / "pruned")[0].state_dict(), load_run(tmp_path / "recovered")[0].state_dict()
    for n in pruning_metadata(tmp_path / "recovered")["tensors"]:
        assert torch.equal(recovered[n] == 0, masked[n] == 0) and not torch.equal(recovered[n], masked[n])


def check_refused(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compress", "prune", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.parametrize(("args", "message"), [
    ([], "--sparsity: required for a neural run"),
    (["--sparsity", "0"], "--sparsity: must be a number in (0, 1), got 0.0"),
    (["--sparsity", "1"], "--sparsity: must be a number in (0, 1), got 1.0"),
    (["--sparsity", "-0.5"], "--sparsity: must be a number in (0, 1)"),
    (["--sparsity", "nan"], "--sparsity: must be a number in (0, 1), got nan"),
    (["--sparsity", "0.5", "--finetune-steps", "-1"], "--finetune-steps: must be 0 or more"),
    (["--sparsity", "0.01", "--structured", "ffn"], "would remove 0 of the 32 FFN neurons of each block"),
    (["--sparsity", "0.99", "--structured", "ffn"], "would remove 32 of the 32 FFN neurons of each block"),
    (["--sparsity", "0.5", "--structured", "heads"], "--structured heads: removing attention heads is not "
                                                     "supported yet"),
    (["--structured", "vocab"], "--structured vocab: dropping vocabulary rows is not supported yet"),
])
def test_bad_options_exit_2_and_write_nothing(tiny_run, tmp_path, capsys, args, message):
    check_refused([str(tiny_run), *args], message, tmp_path, capsys)


def test_bad_runs_exit_2_and_write_nothing(runs, tmp_path, capsys):
    for name in ("attention", "mlp"):
        check_refused([str(runs[name]), "--sparsity", "0.5", "--structured", "ffn"],
                      f"--structured ffn: {runs[name]} is an {name} run, which has no feed-forward layer",
                      tmp_path, capsys)
    run = runs["transformer"]
    for structured, what in ([], "50% of the weights of each matrix"), (["--structured", "ffn"],
                                                                         "50% of the FFN neurons"):
        pruned = tmp_path / f"pruned{len(structured)}"
        assert main(["compress", "prune", str(run), "--sparsity", "0.5", *structured, "--out", str(pruned)]) == 0
        check_refused([str(pruned), "--sparsity", "0.5"], f"already pruned ({what}); prune the original run",
                      tmp_path, capsys)
    assert main(["compress", "quantize", str(run), "--out", str(tmp_path / "int8")]) == 0
    check_refused([str(tmp_path / "int8"), "--sparsity", "0.5"], "already quantized (8-bit)", tmp_path, capsys)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert main(["compress", "prune", str(run), "--sparsity", "0.5", "--out", str(busy)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    check_refused([str(tmp_path / "missing"), "--sparsity", "0.5"], "not a run directory (no config.toml)",
                  tmp_path, capsys)
    pattern = tmp_path / "pattern"
    pattern.mkdir()
    (pattern / "config.toml").write_text('[model]\narch = "pattern"\nmax_seq_len = 256\n')
    check_refused([str(pattern), "--sparsity", "0.5"], "a pattern run has no neural weights to prune",
                  tmp_path, capsys)
    with pytest.raises(InputError, match="a pattern run has no neural weights"):  # the API as the CLI
        prune_run(pattern, tmp_path / "out", sparsity=0.5)


def test_a_broken_pruned_file_is_one_clear_error(tiny_run, tmp_path):
    from minillm.models.weights import read_weights_metadata

    out = tmp_path / "p"
    prune_run(tiny_run, out, sparsity=0.5)
    weights = out / "model.safetensors"
    tensors = safetensors.torch.load_file(str(weights))
    metadata = read_weights_metadata(weights)
    tensors["lm_head.weight.values"] = tensors["lm_head.weight.values"][1:]
    safetensors.torch.save_file(tensors, str(weights), metadata=metadata)
    with pytest.raises(InputError, match="field 'pruning': not a pruned minillm model"):
        load_run(out)
