"""Training in several processes: DDP, and the flat gradient buffer (``train.ddp = "flat"``), over gloo on CPU,
started through torchrun in subprocesses; and the shakespeare-char config."""

import copy
import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import shakespeare_slice
from test_train import tiny_config, write_data

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.models import MiniTransformer
from minillm.training.config import load_config, save_config, shipped_config
from minillm.training.data import TextBatches, step_batches
from minillm.training.distributed import check_processes, flat_gradients, local_grad_accum
from minillm.training.trainer import train

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
STOP_AT = """
import os
import sys

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from minillm.training.config import load_config
from minillm.training.trainer import train

grads = []  # each step's gradients as the optimizer sees them: all-reduced and clipped
register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: grads.append(torch.cat(
    [p.grad.flatten() for group in optimizer.param_groups for p in group["params"]])))
train(load_config(sys.argv[1]), sys.argv[2], progress=False, max_steps=int(sys.argv[3]))
torch.save(torch.stack(grads), f"{sys.argv[2]}-grads-rank{os.environ['RANK']}.pt")
"""


def run(command, root, **kwargs):
    env = {**os.environ, "MINILLM_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=180, **kwargs)


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(run_dir):
    return safetensors.torch.load_file(str(run_dir / "last.safetensors"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, and two processes (``--nproc 2``), at the same global batch; and a two-process run
    stopped after 5 steps, then resumed by two new processes. The two-process runs twice: under DDP ("ddp",
    "split") and with the flat gradient buffer ("flat", "flat-split")."""
    root = tmp_path_factory.mktemp("ddp")
    write_data(root)
    cfg = tiny_config(root, grad_accum=2, pretrain_steps=6, finetune_steps=4, log_interval=1, eval_interval=3,
                      checkpoint_interval=4, model={"dropout": 0.1})  # dropout: masks follow the micro-batch
    save_config(cfg, root / "tiny.toml")
    save_config(replace(cfg, train=replace(cfg.train, ddp="flat")), root / "tiny-flat.toml")
    (root / "stop_at.py").write_text(STOP_AT)
    stdout = {}
    for mode, config, split in (("ddp", "tiny.toml", "split"), ("flat", "tiny-flat.toml", "flat-split")):
        straight = run([sys.executable, "-m", "minillm", "train", "--config", config, "--out", mode, "--nproc", "2",
                        "--no-progress"], root)
        assert straight.returncode == 0, straight.stderr
        stdout[mode] = straight.stdout
        stopped = run([*TORCHRUN, "stop_at.py", config, split, "5"], root)
        assert stopped.returncode == 0, stopped.stderr
        resumed = run([*TORCHRUN, "-m", "minillm", "train", "--out", split, "--resume", "--no-progress"], root)
        assert resumed.returncode == 0, resumed.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINILLM_CACHE", str(root / "cache"))
        train(cfg, root / "single", progress=False)
    return root, stdout["ddp"]


@pytest.mark.parametrize("mode", ["ddp", "flat"])
def test_two_processes_follow_the_loss_curve_of_one(runs, mode):
    root, _ = runs
    one, two = metrics(root / "single"), metrics(root / mode)
    assert [(e["event"], e["global_step"]) for e in one] == [(e["event"], e["global_step"]) for e in two]
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "val_text_loss", "val_qa_loss"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a, b)
    # Adam turns rounding-level differences of near-zero gradients into a fraction of one step (lr 3e-3)
    expected = weights(root / "single")
    for name, tensor in weights(root / mode).items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-3)


def test_only_rank_0_writes_the_run_directory(runs):
    root, stdout = runs
    assert {p.name for p in (root / "ddp").iterdir()} == {p.name for p in (root / "single").iterdir()}
    assert len(metrics(root / "ddp")) == len(metrics(root / "single"))  # no line written twice
    assert load_config(root / "ddp" / "config.toml") == load_config(root / "single" / "config.toml")
    assert stdout.count("trained 10 steps") == 1  # rank 0 reports for both


@pytest.mark.parametrize("mode, split", [("ddp", "split"), ("flat", "flat-split")])
def test_resume_in_two_processes_is_exact(runs, mode, split):
    root, _ = runs
    assert load_config(root / split / "config.toml").train.ddp == mode  # what the resumed processes read
    straight, resumed = weights(root / mode), weights(root / split)
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)

    def no_timing(events):
        return [{k: v for k, v in e.items() if k not in ("elapsed", "tokens_per_s", "ms_per_step")} for e in events]

    assert no_timing(metrics(root / split)) == no_timing(metrics(root / mode))


def test_the_flat_buffer_gives_ddps_gradients(runs):
    root, _ = runs
    ddp, flat = (torch.load(root / f"{split}-grads-rank0.pt") for split in ("split", "flat-split"))
    assert ddp.shape == flat.shape and len(ddp) == 5 and ddp.abs().sum() > 0
    # all-reduced and clipped, step by step; the same bits, as gloo adds two numbers and halving is exact
    assert torch.equal(flat, ddp)
    for split in ("split", "flat-split"):  # every process steps with the same mean
        assert torch.equal(torch.load(root / f"{split}-grads-rank1.pt"), torch.load(root / f"{split}-grads-rank0.pt"))


def test_flat_gradients_stay_views_under_compile_and_zeroing():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    eager = copy.deepcopy(model)
    model.compile(backend="aot_eager")  # a compiled backward, as the Trainer's, without a C++ build
    flat = flat_gradients(list(model.parameters()))
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    x = torch.randn(3, 4)
    for _ in range(2):
        for _ in range(2):  # accumulated, as micro-batches are
            model(x).square().sum().backward()
            eager(x).square().sum().backward()
        assert all(p.grad.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
                   for p in model.parameters())
        torch.testing.assert_close(flat, torch.cat([p.grad.flatten() for p in eager.parameters()]))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        flat.zero_()
        eager.load_state_dict(model.state_dict())
        eager.zero_grad(set_to_none=True)
    assert all(p.grad.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr() for p in model.parameters())


def test_grad_accum_must_divide_over_the_processes(runs, capsys, monkeypatch):
    root, _ = runs
    code = main(["train", "--config", str(root / "tiny.toml"), "--out", str(root / "bad"), "--nproc", "2",
                 "--set", "train.grad_accum=3"])
    assert code == 2 and "train.grad_accum = 3 is not divisible by the 2 processes" in capsys.readouterr().err
    assert not (root / "bad").exists()
    assert local_grad_accum(4, 2) == 2
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it: every process refuses before joining
    with pytest.raises(InputError, match="train.grad_accum = 3"):
        train(tiny_config(root, grad_accum=3), root / "bad", progress=False)
    with pytest.raises(InputError, match="--nproc must be at least 1"):
        check_processes(tiny_config(root), root / "bad", 0)


def test_every_process_draws_every_batch_and_builds_its_share():
    tokens = np.arange(1000, dtype=np.uint16)
    one = TextBatches(tokens, 3, 8, torch.Generator().manual_seed(1))
    ranks = [TextBatches(tokens, 3, 8, torch.Generator().manual_seed(1)) for _ in range(2)]
    for _ in range(3):
        whole = step_batches(one, 4)
        shares = [step_batches(b, 4, rank, 2) for rank, b in enumerate(ranks)]
        assert [x.tolist() for x, _ in whole] == [x.tolist() for x, _ in (shares[0][0], shares[1][0],
                                                                          shares[0][1], shares[1][1])]
    assert all(torch.equal(one.generator.get_state(), b.generator.get_state()) for b in ranks)


# --- shakespeare-char ---------------------------------------------------------------------------------------


def test_shakespeare_char_builds_nanogpts_model():
    cfg = load_config(shipped_config("shakespeare-char"))
    assert (cfg.tokenizer.kind, cfg.train.finetune_steps, cfg.data.train_qa, cfg.data.val_qa) == ("char", 0, "", "")
    model = MiniTransformer(load_config(shipped_config("shakespeare-char"), ["model.vocab_size=69"]).model_config())
    assert model.num_parameters() == 10_746_624
    # nanoGPT's 10.65M leaves out the position table, and has 65 vocabulary rows where we have 69
    assert model.num_parameters() - model.pos_emb.weight.numel() - 4 * 384 == 10_646_784
    assert model.lm_head is None and not any(n.endswith("bias") for n, _ in model.named_parameters())


def test_shakespeare_char_fast_is_nanogpts_model_four_layers_deep():
    """The fast recipe keeps nanoGPT's width, context, vocabulary and dropout, with 4 of its 6 blocks."""
    slow, fast = (load_config(shipped_config(name), ["model.vocab_size=69"])
                  for name in ("shakespeare-char", "shakespeare-char-fast"))
    assert (fast.tokenizer.kind, fast.train.finetune_steps, fast.data.text) == ("char", 0, slow.data.text)
    assert {**fast.model, "num_layers": 6} == slow.model and fast.model["num_layers"] == 4
    model = MiniTransformer(fast.model_config())
    assert model.num_parameters() == 10_746_624 - 2 * (12 * 384**2 + 2 * 384)  # two blocks fewer: 7.2M


def test_shakespeare_char_trains_a_few_steps_on_cpu(tmp_path, monkeypatch):
    text = shakespeare_slice(tmp_path)
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    cfg = load_config(shipped_config("shakespeare-char"), [
        f"data.text={text}", "train.device=cpu", "train.compile=false", "train.batch_size=2",
        "train.pretrain_steps=2", "train.eval_batches=1", "train.log_interval=1"])
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.steps == 2 and set(result.final_losses) == {"train", "val_text"}
    assert 0 < result.final_losses["val_text"] < 6
    assert load_config(tmp_path / "run" / "config.toml").model["vocab_size"] <= 69
