"""`minillm compress distill`: the loss against a hand computation, a self-taught student's KL term, a distilled
run that every command takes, bad inputs."""

import math

import pytest
import tomli_w
import torch
from conftest import tiny_run_tables, train_tiny_run

from minillm.cli import main
from minillm.compress.distill import DistillLoss, distill_loss
from minillm.training.config import load_config
from minillm.training.data import IGNORE_INDEX
from minillm.training.runs import load_run
from minillm.training.steps import lm_loss, summed_nll

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TEACHER = {"max_seq_len": 96, "emb_dim": 32, "num_layers": 2, "num_heads": 2, "copy_head": True}
STUDENT = {"max_seq_len": 64, "emb_dim": 16, "num_layers": 1, "num_heads": 2}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny copy-head transformer run; its data files sit beside it, in its parent folder."""
    return train_tiny_run(tmp_path_factory.mktemp("teacher"), TEACHER)


def student_config(teacher, path, model=STUDENT, **train):
    """A student config file on the teacher's tiny data."""
    path.write_text(tomli_w.dumps(tiny_run_tables(teacher.parent, model, pretrain_steps=10, finetune_steps=10,
                                                  **train)))
    return path


def batch(vocab_size, seed=0):
    """Logits of a student and a teacher (2, 5, vocab) and targets with ignored positions."""
    g = torch.Generator().manual_seed(seed)
    student, teacher = torch.randn(2, 5, vocab_size, generator=g), 3 * torch.randn(2, 5, vocab_size, generator=g)
    targets = torch.randint(0, vocab_size, (2, 5), generator=g)
    targets[0, :2] = IGNORE_INDEX
    targets[1, 4] = IGNORE_INDEX
    return student, teacher, targets


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (2.0, 0.3), (0.5, 1.0), (4.0, 0.0)])
def test_loss_equals_a_hand_computation(temperature, alpha):
    student, teacher, targets = batch(7)
    expected = 0.0
    for b in range(2):
        for t in range(5):
            y = int(targets[b, t])
            if y == IGNORE_INDEX:
                continue
            s, te = student[b, t].double().tolist(), teacher[b, t].double().tolist()
            log_z = math.log(sum(math.exp(v) for v in s))
            p_s = [math.exp(v / temperature) for v in s]
            p_t = [math.exp(v / temperature) for v in te]
            p_s, p_t = [p / sum(p_s) for p in p_s], [p / sum(p_t) for p in p_t]
            kl = sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s, strict=True))
            expected += (1 - alpha) * (log_z - s[y]) + alpha * temperature ** 2 * kl
    assert distill_loss(student, teacher, targets, temperature, alpha).item() == pytest.approx(expected, rel=1e-5)


def test_alpha_zero_is_exactly_the_usual_loss(teacher):
    student, other, targets = batch(7, seed=1)
    assert torch.equal(distill_loss(student, other, targets, 2.0, 0.0), lm_loss(student, targets, reduction="sum"))
    # the Trainer's fast path (a copy head's targets= scoring) agrees with the full output to float rounding
    model, tok, _ = load_run(teacher)
    ids = torch.tensor([tok.encode("The Sun is the star at the centre of the Solar System.")])
    x, y = ids[:, :-1], ids[:, 1:].clone()
    y[:, :3] = IGNORE_INDEX
    with torch.no_grad():
        loss = DistillLoss(model, 2.0, 0.0)(model, model, x, y)
        assert loss.item() == pytest.approx(summed_nll(model, model, x, y).item(), rel=1e-5)


def test_a_student_that_is_the_teacher_has_no_kl_term(teacher):
    model, tok, _ = load_run(teacher)
    student, _, _ = load_run(teacher)
    student.train()
    ids = torch.tensor([tok.encode("The Moon is the only natural satellite of the Earth. It has no air.")])
    loss = DistillLoss(model, 2.0, 1.0)(student, student, ids[:, :-1], ids[:, 1:])
    loss.backward()
    assert abs(loss.item()) < 1e-4
    assert max(p.grad.abs().max().item() for p in student.parameters() if p.grad is not None) < 1e-4


def test_cli_distills_a_run_that_answers(teacher, tmp_path, capsys):
    out = tmp_path / "student"
    config = student_config(teacher, tmp_path / "student.toml")
    assert main(["compress", "distill", "--teacher", str(teacher), "--config", str(config), "--out", str(out),
                 "--temperature", "3", "--alpha", "0.7", "--set", "train.finetune_steps=12"]) == 0
    summary = capsys.readouterr().out.strip()
    assert summary.startswith(f"distilled {teacher} (") and f"into {out} (" in summary
    assert ": 22 steps, val QA loss " in summary and summary.endswith(f"-> {out}")

    text = (out / "config.toml").read_text(encoding="utf-8")
    record = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# ") and "=" in line)
    assert tomllib.loads(f"[distill]\n{record}")["distill"] == {"teacher": str(teacher), "temperature": 3.0,
                                                                  "alpha": 0.7}
    cfg = load_config(out / "config.toml")
    assert cfg.model["vocab_size"] == load_config(teacher / "config.toml").model["vocab_size"]
    assert cfg.data.tokenizer == str(teacher / "tokenizer.json") and cfg.train.finetune_steps == 12
    assert (out / "tokenizer.json").read_bytes() == (teacher / "tokenizer.json").read_bytes()
    model, _, _ = load_run(out)
    assert model.config.emb_dim == 16 and not model.config.copy_head
    assert main(["ask", str(out), "What is the Sun?"]) == 0


@pytest.fixture(scope="module")
def markov_run(teacher):
    """A count-based run on the same tiny data: no next-token logits to distill."""
    root = teacher.parent / "markov"
    root.mkdir()
    return train_tiny_run(root, {"arch": "markov", "max_seq_len": 96, "order": 2})


@pytest.mark.parametrize("case", ["missing teacher", "markov teacher", "non-empty out", "out is a file",
                                  "temperature 0", "temperature -1", "temperature nan", "alpha -0.1",
                                  "alpha 1.5", "alpha nan", "no such config", "no such shipped config",
                                  "vocab mismatch", "longer max_seq_len", "markov student"])
def test_bad_inputs_write_nothing(case, teacher, markov_run, tmp_path, capsys):
    out = tmp_path / "out"
    config = student_config(teacher, tmp_path / "student.toml")
    teacher_arg, extra = str(teacher), []
    if case == "missing teacher":
        teacher_arg = str(tmp_path / "nowhere")
    elif case == "markov teacher":
        teacher_arg = str(markov_run)
    elif case == "non-empty out":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "out is a file":
        out.write_text("mine")
    elif case.startswith(("temperature", "alpha")):
        name, value = case.split()
        extra = [f"--{name}", value]
    elif case == "no such config":
        config = tmp_path / "missing.toml"
    elif case == "no such shipped config":
        config = "no-such-config"
    elif case == "vocab mismatch":
        config = student_config(teacher, tmp_path / "student.toml", {**STUDENT, "vocab_size": 512})
    elif case == "longer max_seq_len":
        config = student_config(teacher, tmp_path / "student.toml", {**STUDENT, "max_seq_len": 128})
    elif case == "markov student":
        config = student_config(teacher, tmp_path / "student.toml", {"arch": "markov", "max_seq_len": 64})
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["compress", "distill", "--teacher", teacher_arg, "--config", str(config), "--out", str(out),
                 *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("minillm: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "non-empty out":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
