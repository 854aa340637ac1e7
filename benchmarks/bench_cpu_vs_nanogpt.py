"""nanoGPT against minillm on a CPU, in one run: wall time to nanoGPT's final validation loss, and the ratio.

    python benchmarks/bench_cpu_vs_nanogpt.py [--out FILE] [--config shakespeare-char-cpu] [--set K=V ...]
    python benchmarks/bench_cpu_vs_nanogpt.py --quick          # a few steps of each: checks the plumbing
    python benchmarks/bench_cpu_vs_nanogpt.py --target-loss 1.8857 --nanogpt-seconds 110.7  # minillm alone

What runs, one after the other, each in its own process started by this script (never both at once: on two
cores they would share the CPU):

1. nanoGPT, its own unmodified train.py through ``../shared/anchors/run-nanogpt``, with the CPU recipe of its
   README (4 layers, 4 heads, width 128, context 64, batch 12, no dropout, 2000 iterations, lr 1e-3 cosine
   to 2000, eval_iters 20); ``--out_dir`` points into this script's temp dir so that its checkpoint (saved
   when its val loss improves) outlives the run. Its log is read line by line as it is printed (unbuffered):
   the wall time to its final validation loss is when the ``step 2000: train loss X, val loss Y`` line
   appears, counted from the moment this script started the process (Python and torch imports, its data
   preparation and every evaluation included). That val loss Y is the target.
2. minillm, ``python -m minillm train --config shakespeare-char-cpu`` (the same model shape; a faster
   recipe, see that file), with a fresh, empty token cache (``MINILLM_CACHE`` in the temp dir), so that
   training its char tokenizer and tokenizing the text count, as nanoGPT's data preparation does.
   ``--warm-cache`` uses the usual cache instead. The script watches the run's metrics.jsonl (every 20 ms)
   and stops the process (SIGTERM) at the first evaluation whose ``val_text_loss`` is <= the target; the
   wall time is when that line was seen, from the moment the process was started. ``startup_s`` is that
   minus the line's ``elapsed`` (which train() counts from its own start): the interpreter, torch and the CLI.
   ``--full-run`` lets the run finish its schedule instead (the first hit is still what is timed).

``ratio`` = minillm's wall time / nanoGPT's; the goal is <= 0.5.

Validation losses are not computed alike, so the JSON says how each is computed and re-scores both models:

- The validation text is the same: nanoGPT's run-nanogpt encodes input.txt one id per character and keeps
  the last 10% of the ids (``n = int(len(ids) * 0.9)``); minillm's ``data.text`` keeps the last 10% of the
  characters (``int(len(text) * 0.9)``). The script checks that the two give the same text
  (``validation.same_text``). minillm appends one ``<eos>`` token to the stream, and its vocabulary has 4
  special tokens (69 outputs) that nanoGPT's 65 lack.
- nanoGPT's val loss is the mean over ``eval_iters`` (20) batches of 12 windows of 64 characters at random
  places, drawn afresh at every evaluation: 15,360 targets, a noisy estimate (a few hundredths).
- minillm's is over ``eval_batches`` x ``batch_size`` windows spread evenly over the validation text, the
  same ones at every evaluation: also a sample of the text, but a fixed one.
- Stopping at the first evaluation under a noisy target favours whoever evaluates more often, so after both
  runs (outside the timed part) the script scores nanoGPT's checkpoint (its best val loss, normally step
  2000) and minillm's model.safetensors (the weights of the evaluation that hit the target) on the same
  windows: every non-overlapping window of 64 characters of the validation text, each character a target
  once with 0-63 characters of context, which is what nanoGPT's random windows estimate (``rescored``).
  ``--quick`` scores the first 64 windows only.

Both runs use torch's default threads (one per core). The load average before each run is recorded: other
work on the machine slows both, and not necessarily alike. The whole report is printed as JSON; ``--out FILE``
also writes it there. Without ``../shared/anchors`` (or its data) the script prints ``{"skipped": reason}`` and
exits 0. Never asserted for speed in tests.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ANCHORS = SHARED / "anchors"
RUN_NANOGPT = ANCHORS / "run-nanogpt"
TEXT = SHARED / "data" / "tinyshakespeare" / "input.txt"

MAX_ITERS = 2000
BLOCK = 64
NANOGPT_RECIPE = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                  "--log_interval=50", f"--block_size={BLOCK}", "--batch_size=12", "--n_layer=4", "--n_head=4",
                  "--n_embd=128", f"--max_iters={MAX_ITERS}", f"--lr_decay_iters={MAX_ITERS}", "--dropout=0.0"]
# later --key=value arguments override earlier ones in nanoGPT's configurator
NANOGPT_QUICK = ["--max_iters=20", "--lr_decay_iters=20", "--eval_interval=10", "--eval_iters=2",
                 "--log_interval=10"]
MINILLM_QUICK = ["train.pretrain_steps=20", "train.warmup_steps=2", "train.eval_interval=10",
                 "train.eval_batches=2", "train.log_interval=10", "train.checkpoint_interval=0"]
QUICK_WINDOWS = 64  # windows re-scored with --quick

EVAL_LINE = re.compile(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
ITER_LINE = re.compile(r"iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
POLL_S = 0.02

NANOGPT_VAL_METHOD = ("mean over eval_iters batches (20; --quick 2) of 12 random windows of 64 characters of "
                      "the validation ids, drawn afresh at each evaluation (estimate_loss in train.py)")
MINILLM_VAL_METHOD = ("mean over all targets of eval_batches x batch_size windows of 64 tokens spread evenly "
                      "over the validation stream, the same windows at every evaluation (fixed_text_batches)")
RESCORE_METHOD = ("both models on the same windows: every non-overlapping window of 64 characters of the "
                  "validation text (each character a target once, 0-63 characters of context), mean per target; "
                  "the expectation of nanoGPT's random-window estimate, without its sampling noise")


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def children_cpu_s() -> float:
    """User + system CPU seconds of the waited-for child processes so far (their children included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def run_nanogpt(work: Path, quick: bool) -> dict:
    """nanoGPT's CPU recipe; the time of each log line is when it was read, from the process start."""
    out_dir = work / "nanogpt-out"
    command = [str(RUN_NANOGPT), *NANOGPT_RECIPE, *(NANOGPT_QUICK if quick else []), f"--out_dir={out_dir}"]
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}
    load, cpu = loadavg(), children_cpu_s()
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=REPO)
    evals, iter_ms, log = [], [], []
    for line in proc.stdout:
        seen = time.perf_counter() - started
        log.append(line)
        if m := EVAL_LINE.match(line):
            evals.append({"step": int(m[1]), "train_loss": float(m[2]), "val_loss": float(m[3]),
                          "s": round(seen, 2)})
        elif m := ITER_LINE.match(line):
            iter_ms.append((int(m[1]), float(m[3])))
    rc = proc.wait()
    total, cpu = time.perf_counter() - started, children_cpu_s() - cpu
    (work / "nanogpt.log").write_text("".join(log))
    if rc or not evals:
        raise RuntimeError(f"nanoGPT failed (exit {rc}):\n{''.join(log[-20:])}")
    final = evals[-1]
    # iterations right after an evaluation include it (nanoGPT's timer spans it): the median leaves them out
    steady = [ms for it, ms in iter_ms if it > 0]
    return {"command": ["run-nanogpt", *command[1:-1], "--out_dir=TMP"], "loadavg_before": load,
            "wall_s_to_final_val": final["s"], "process_s": round(total, 2), "process_cpu_s": round(cpu, 1),
            "final_step": final["step"],
            "final_val_loss": final["val_loss"], "final_train_loss": final["train_loss"],
            "ms_per_iter_median": round(statistics.median(steady), 2) if steady else None,
            "val_curve": [[e["step"], e["val_loss"], e["s"]] for e in evals],
            "val_loss_method": NANOGPT_VAL_METHOD, "checkpoint": str(out_dir / "ckpt.pt")}


def minillm_overrides(args) -> list[str]:
    return [*(MINILLM_QUICK if args.quick else []), *args.set]


def run_minillm(work: Path, args, target: float) -> dict:
    """minillm's run, stopped at the first logged val_text_loss <= target (unless --full-run)."""
    run_dir, log_path = work / "minillm-run", work / "minillm.log"
    overrides = minillm_overrides(args)
    command = [sys.executable, "-m", "minillm", "train", "--config", args.config, "--out", str(run_dir),
               "--no-progress", *[a for item in overrides for a in ("--set", item)]]
    env = dict(os.environ)
    if not args.warm_cache:
        env["MINILLM_CACHE"] = str(work / "minillm-cache")
    metrics = run_dir / "metrics.jsonl"
    load, cpu = loadavg(), children_cpu_s()
    with open(log_path, "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        events, buffer, offset, hit = [], "", 0, None
        while True:
            done = proc.poll() is not None  # read once more after the exit: the last lines
            if metrics.exists():
                with open(metrics) as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                    offset = fh.tell()
                seen = time.perf_counter() - started
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    event = json.loads(line)
                    event["_seen_s"] = seen
                    events.append(event)
                    if hit is None and event.get("val_text_loss", float("inf")) <= target:
                        hit = event
                if hit is not None and not args.full_run and not done:
                    proc.terminate()
                    proc.wait()
                    break
            if done:
                break
            time.sleep(POLL_S)
    total, cpu = time.perf_counter() - started, children_cpu_s() - cpu
    if proc.returncode not in (0, -15) or (proc.returncode and hit is None):
        raise RuntimeError(f"minillm failed (exit {proc.returncode}):\n{tail(log_path)}")
    evals = [e for e in events if "val_text_loss" in e]
    ms = [e["ms_per_step"] for e in events if e["event"] == "train"][1:]  # the first window warms up
    report = {"command": ["minillm", *command[3:5], args.config, "--out", "TMP", *command[8:]],
              "config": args.config, "overrides": overrides, "token_cache": "warm" if args.warm_cache else "cold",
              "loadavg_before": load, "target_val_loss": target,
              "wall_s_to_target": round(hit["_seen_s"], 2) if hit else None,
              "step_at_target": hit["step"] if hit else None,
              "val_loss_at_target": round(hit["val_text_loss"], 4) if hit else None,
              "startup_s": round(hit["_seen_s"] - hit["elapsed"], 2) if hit else None,
              "stopped": ("at target" if hit and not args.full_run else "schedule finished"),
              "process_s": round(total, 2), "process_cpu_s": round(cpu, 1),
              "best_val_loss": round(min(e["val_text_loss"] for e in evals), 4) if evals else None,
              "ms_per_step_median": round(statistics.median(ms), 2) if ms else None,
              "val_curve": [[e["step"], round(e["val_text_loss"], 4), round(e["_seen_s"], 2)] for e in evals],
              "val_loss_method": MINILLM_VAL_METHOD}
    return report


# --- the same validation text, and both models scored on the same windows ----------------------------------


def validation_check(args) -> dict:
    """nanoGPT's validation text (run-nanogpt's split of the ids, decoded) against minillm's (data.text)."""
    from minillm.training.config import load_config, shipped_config
    from minillm.training.data import pretrain_texts

    text = TEXT.read_text()
    chars = sorted(set(text))  # run-nanogpt's encoding and split, redone here
    stoi = {c: i for i, c in enumerate(chars)}
    ids = [stoi[c] for c in text]
    nanogpt_val = "".join(chars[i] for i in ids[int(len(ids) * 0.9):])
    cfg = load_config(shipped_config(args.config), [*minillm_overrides(args), f"data.text={json.dumps(str(TEXT))}"])
    _, minillm_val = pretrain_texts(cfg)
    return {"characters": len(nanogpt_val), "same_text": minillm_val == [nanogpt_val],
            "split": "last 10% of input.txt by position in both (nanoGPT: of the ids, one per character; "
                     "minillm data.text: of the characters)",
            "differences": "minillm appends one <eos> token after the validation stream and predicts over 69 "
                           "tokens (65 characters + 4 special tokens, never targets except that <eos>); "
                           "nanoGPT over the 65 characters"}


def _windows_loss(forward, ids, windows: int | None) -> tuple[float, int, int]:
    import torch
    import torch.nn.functional as F

    starts = list(range(0, len(ids) - BLOCK, BLOCK))[:windows]
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(starts), 256):
            batch = torch.stack([ids[s:s + BLOCK + 1] for s in starts[i:i + 256]])
            x, y = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
            logits = forward(x, y)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
    return total / count, len(starts), count


def rescore(nanogpt_ckpt: Path, run_dir: Path, quick: bool) -> dict:
    import torch

    from minillm.training.runs import load_run

    started = time.perf_counter()
    text = TEXT.read_text()
    val = text[int(len(text) * 0.9):]
    windows = QUICK_WINDOWS if quick else None
    report = {"method": RESCORE_METHOD}

    spec = importlib.util.spec_from_file_location("nanogpt_model", ANCHORS / "nanoGPT" / "model.py")
    nanogpt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nanogpt)
    ckpt = torch.load(nanogpt_ckpt, map_location="cpu", weights_only=True)
    with contextlib.redirect_stdout(sys.stderr):  # it prints its parameter count; stdout is for the JSON
        model = nanogpt.GPT(nanogpt.GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    model.eval()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in val], dtype=torch.long)
    loss, n_windows, targets = _windows_loss(lambda x, y: model(x, y)[0], ids, windows)
    report["nanogpt"] = {"val_loss": round(loss, 4), "checkpoint_step": ckpt["iter_num"],
                         "checkpoint_logged_val_loss": round(float(ckpt["best_val_loss"]), 4)}

    mini, tok, _ = load_run(run_dir)
    mini_ids = tok.encode(val)
    if len(mini_ids) != len(val):
        raise RuntimeError(f"minillm's tokenizer gave {len(mini_ids)} ids for {len(val)} characters")
    loss, _, _ = _windows_loss(lambda x, y: mini(x), torch.tensor(mini_ids, dtype=torch.long), windows)
    report["minillm"] = {"val_loss": round(loss, 4), "weights": "model.safetensors (best logged val loss)"}
    report.update(windows=n_windows, targets=targets, seconds=round(time.perf_counter() - started, 1))
    report["minillm_minus_nanogpt"] = round(report["minillm"]["val_loss"] - report["nanogpt"]["val_loss"], 4)
    # the target met on the common windows too, not only by minillm's own (fixed-sample) estimate
    report["minillm_reached_nanogpt"] = report["minillm_minus_nanogpt"] <= 0
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 steps of each, a tiny re-score: for tests")
    parser.add_argument("--out", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--config", default="shakespeare-char-cpu", help="minillm config (name or .toml)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one minillm config value (repeatable)")
    parser.add_argument("--warm-cache", action="store_true", help="minillm uses the usual token cache")
    parser.add_argument("--full-run", action="store_true", help="let minillm finish its schedule")
    parser.add_argument("--target-loss", type=float, help="skip nanoGPT: minillm's target val loss")
    parser.add_argument("--nanogpt-seconds", type=float, help="with --target-loss: nanoGPT's time, for the ratio")
    parser.add_argument("--keep", type=Path, help="copy the runs (logs, metrics, weights) to this new directory")
    args = parser.parse_args()
    report = {"benchmark": "cpu_vs_nanogpt", "quick": args.quick}
    missing = [p for p in (RUN_NANOGPT, ANCHORS / "nanoGPT" / "model.py", TEXT) if not p.exists()]
    if missing and args.target_loss is None:
        report["skipped"] = f"{missing[0]} is absent: nothing to compare against"
        print(json.dumps(report, indent=2))
        return 0

    import torch

    report["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                         "torch": torch.__version__, "python": platform.python_version(),
                         "processor": platform.processor() or platform.machine()}
    work = Path(tempfile.mkdtemp(prefix="minillm-bench-nanogpt-"))
    try:
        if args.target_loss is None:
            report["nanogpt"] = run_nanogpt(work, args.quick)
            target, seconds = report["nanogpt"]["final_val_loss"], report["nanogpt"]["wall_s_to_final_val"]
        else:
            target, seconds = args.target_loss, args.nanogpt_seconds
            report["nanogpt"] = {"skipped": "--target-loss given", "final_val_loss": target,
                                 "wall_s_to_final_val": seconds}
        report["minillm"] = run_minillm(work, args, target)
        hit = report["minillm"]["wall_s_to_target"]
        report["target_val_loss"] = target
        report["ratio"] = round(hit / seconds, 3) if hit is not None and seconds else None
        report["goal"] = "ratio <= 0.5"
        report["goal_met"] = report["ratio"] is not None and report["ratio"] <= 0.5
        report["validation"] = validation_check(args)
        if args.target_loss is None and (work / "minillm-run" / "model.safetensors").exists():
            report["rescored"] = rescore(work / "nanogpt-out" / "ckpt.pt", work / "minillm-run", args.quick)
        if args.keep:
            shutil.copytree(work, args.keep, ignore=shutil.ignore_patterns("minillm-cache"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["nanogpt"].pop("checkpoint", None)
    report["script_s"] = round(time.perf_counter() - STARTED, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
