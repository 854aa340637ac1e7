"""Hard kills: SIGKILL ``minillm train`` at seeded points, resume each time, compare with a run never killed;
SIGKILL ``minillm data fetch --source wikipedia`` mid-fetch, rerun, compare. Prints JSON.

    python benchmarks/bench_faults.py [--seed 0] [--kills 5] [--keep DIR]

Training: a ~20k-parameter transformer (dropout on, two micro-batches per step) on a few tiny articles
and QA pairs this script writes, 120 pretraining + 80 fine-tuning steps, checkpoints every 20, evaluations
every 20, log lines every 10; about a minute on two CPU cores, mostly process starts. The run is killed
``--kills`` times, each time by the trainer process sending itself SIGKILL at an exact point, so that what
each kill hit is known and reproducible:

    step                after the optimizer step of global step S, before anything of it is saved
    mid-step            in step S between its two micro-batches (gradients half accumulated)
    checkpoint-state    in the checkpoint at S, halfway through writing train_state.pt's temporary file
    checkpoint-weights  in the checkpoint at S, after last.safetensors was replaced, before train_state.pt
    best-weights        while evaluation at S writes model.safetensors, before the checkpoint at S
    metrics-line        halfway through a metrics.jsonl line at log step S

The kinds are a seeded sample (at least one inside a checkpoint write) and S a seeded step in each fifth
of the run, rounded to the kind's interval. After each kill ``minillm train --out RUN --resume`` continues
(a real process, no hooks); the last one runs to the end. ``identical`` compares model.safetensors,
last.safetensors, the checkpoint's weights and optimizer state, and metrics.jsonl (timings aside) with the
uninterrupted run's, bit for bit.

Fetch: the fake MediaWiki server of tests/fake_mediawiki.py serves 30 articles (and a redirect, a
disambiguation page, an empty extract, a missing title); ``data fetch --source wikipedia --full`` (one
request per title) is killed halfway through writing the progress line of its 12th title, then run again.
The rerun's output must hold every article of an uninterrupted fetch once (retrieved_at aside).

Child mode (used by this script): ``bench_faults.py --child KIND:STEP [--api URL] -- MINILLM ARGS`` runs the
minillm command line in this process with the kill hook (KIND ``none``: no hook) and, with --api, the
Wikipedia client pointed at URL without its 1 s politeness interval.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRETRAIN, FINETUNE, INTERVAL, LOG = 120, 80, 20, 10
KINDS = ("step", "mid-step", "checkpoint-state", "checkpoint-weights", "best-weights", "metrics-line")
IN_CHECKPOINT = {"checkpoint-state", "checkpoint-weights"}
FETCH_KILL_AT = 12  # the progress line of this title is cut in half by the kill

FACTS = [
    ("Sun", "astronomy", "The Sun is the star at the centre of the Solar System. It is a hot ball of plasma."),
    ("Moon", "astronomy", "The Moon is the only natural satellite of the Earth. It has no air."),
    ("Heart", "anatomy", "The heart is a muscular organ that pumps blood. It has four chambers."),
    ("Lion", "animals", "The lion is a large cat of Africa and India. It lives in groups called prides."),
    ("Nile", "geography", "The Nile is a river in northeast Africa. It flows north into the Mediterranean Sea."),
    ("Water", "chemistry", "Water is a compound of hydrogen and oxygen. Its formula is H2O."),
    ("Tornado", "weather", "A tornado is a rotating column of air. It reaches from a thunderstorm to the ground."),
]


# --- the child: one minillm command with a kill hook ------------------------------------------------------


def die(what: str) -> None:
    print(f"killed: {what}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def install_train_hook(kind: str, target: int) -> None:
    """Make this process SIGKILL itself at ``kind``:``target`` (see the module docstring)."""
    import io

    import torch

    from minillm.training import checkpoint
    from minillm.training import trainer as train_mod

    trainer, now = train_mod.Trainer, {"step": 0, "calls": 0}
    real_step = trainer.train_step

    def train_step(self, batches, lr):
        now["step"], now["calls"] = self.global_step() + 1, 0  # the step being taken
        real_step(self, batches, lr)
        if kind == "step" and now["step"] == target:
            die(f"after step {target}")

    trainer.train_step = train_step
    if kind == "mid-step":
        real_loss = train_mod.summed_nll

        def loss(forward, model, x, y):
            if model.training:
                now["calls"] += 1
                if now["step"] == target and now["calls"] == 2:
                    die(f"step {target}, second micro-batch")
            return real_loss(forward, model, x, y)

        train_mod.summed_nll = loss  # read when the Trainer is made
    elif kind == "checkpoint-state":
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            if isinstance(obj, dict) and {"optimizer", "phase", "step"} <= obj.keys():
                step = obj["step"] + (PRETRAIN if obj["phase"] == "finetune" else 0)
                if step == target:
                    buffer = io.BytesIO()
                    real_save(obj, buffer, *args, **kwargs)
                    f.write(buffer.getvalue()[: buffer.tell() // 2])
                    f.flush()
                    os.fsync(f.fileno())
                    die(f"checkpoint {target}, train_state.pt half written")
            return real_save(obj, f, *args, **kwargs)

        checkpoint.torch.save = save
    elif kind == "checkpoint-weights":
        real_weights = trainer.save_weights

        def save_weights(self, file):
            real_weights(self, file)
            if file == "last.safetensors" and self.global_step() == target:
                die(f"checkpoint {target}, after last.safetensors, before train_state.pt")

        trainer.save_weights = save_weights
    elif kind == "best-weights":
        real_weights, real_evaluate = trainer.save_weights, trainer.evaluate

        def save_weights(self, file):
            if file == "model.safetensors" and self.global_step() == target:
                die(f"evaluation {target}, before writing its better model.safetensors")
            real_weights(self, file)

        def evaluate(self):
            losses = real_evaluate(self)
            if self.global_step() == target:
                die(f"evaluation {target} (no better model), before checkpoint {target}")
            return losses

        trainer.save_weights, trainer.evaluate = save_weights, evaluate
    elif kind == "metrics-line":
        real_append = train_mod.append_jsonl

        def append(path, records):
            records = list(records)
            if records and records[0].get("global_step") == target and records[0].get("event") == "train":
                line = json.dumps(records[0], ensure_ascii=False).encode() + b"\n"
                with open(path, "ab") as fh:
                    fh.write(line[: len(line) // 2])
                die(f"log line of step {target}, half written")
            return real_append(path, records)

        train_mod.append_jsonl = append
    elif kind not in ("none", "step"):
        raise SystemExit(f"unknown kill kind {kind!r}")


def install_fetch_hooks(api: str, kill_at: int | None) -> None:
    from minillm.data import wikipedia

    real_client = wikipedia.WikipediaClient

    class Client(real_client):
        def __init__(self, **options):
            super().__init__(**{"api_url": api, "min_interval": 0.0, "max_retries": 1, **options})

    wikipedia.WikipediaClient = Client
    if kill_at is None:
        return
    real_append, calls = wikipedia.append_jsonl, []

    def append(path, records):
        calls.append(1)
        if len(calls) == kill_at:
            line = json.dumps(list(records)[0], ensure_ascii=False).encode() + b"\n"
            with open(path, "ab") as fh:
                fh.write(line[: len(line) // 2])
            die(f"progress line of title {kill_at}, half written")
        return real_append(path, records)

    wikipedia.append_jsonl = append


def child(args: argparse.Namespace, argv: list[str]) -> int:
    kind, _, step = args.child.partition(":")
    if args.api:
        install_fetch_hooks(args.api, int(step) if kind == "fetch" else None)
    else:
        install_train_hook(kind, int(step or 0))
    from minillm.cli import main

    return main(argv)


# --- the parent ---------------------------------------------------------------------------------------------


def run(argv: list[str], cwd: Path, hook: str = "none:0", api: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, __file__, "--child", hook, *(["--api", api] if api else []), "--", *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})


def write_data(root: Path) -> Path:
    import tomli_w

    from minillm.core.files import write_jsonl
    from minillm.data.records import Article, QAPair

    articles = [Article.create(source="offline", title=t, domain=d, text=x, url=f"https://en.wikipedia.org/wiki/{t}",
                               retrieved_at="2026-01-01T00:00:00+00:00") for t, d, x in FACTS]
    pairs = [QAPair.create(article_id=a.id, domain=a.domain, question=f"What is the {a.title.lower()}?",
                           answer=a.text, context=a.text, kind="overview") for a in articles]
    write_jsonl(root / "articles.jsonl", articles)
    write_jsonl(root / "train.jsonl", pairs[2:])
    write_jsonl(root / "val.jsonl", pairs[:2])
    tables = {
        "data": {"articles": str(root / "articles.jsonl"), "train_qa": str(root / "train.jsonl"),
                 "val_qa": str(root / "val.jsonl"), "heldout_fraction": 0.0},
        "tokenizer": {"kind": "bpe", "vocab_size": 300},
        "model": {"max_seq_len": 64, "emb_dim": 32, "num_layers": 2, "num_heads": 2, "dropout": 0.1},
        "train": {"seed": 3, "device": "cpu", "batch_size": 4, "grad_accum": 2, "pretrain_steps": PRETRAIN,
                  "finetune_steps": FINETUNE, "lr": 3e-3, "warmup_steps": 5, "eval_interval": INTERVAL,
                  "eval_batches": 1, "log_interval": LOG, "checkpoint_interval": INTERVAL},
    }
    (root / "tiny.toml").write_text(tomli_w.dumps(tables), encoding="utf-8")
    return root / "tiny.toml"


def plan_kills(seed: int, kills: int) -> list[tuple[str, int]]:
    """``kills`` (kind, global step) pairs, steps increasing, at least one kill inside a checkpoint write."""
    rng = random.Random(seed)
    kinds = rng.sample(KINDS, kills) if kills <= len(KINDS) else [rng.choice(KINDS) for _ in range(kills)]
    if not IN_CHECKPOINT & set(kinds):
        kinds[rng.randrange(kills)] = rng.choice(sorted(IN_CHECKPOINT))
    total, start = PRETRAIN + FINETUNE, INTERVAL + 1  # after the first checkpoint: something to resume
    width = (total - start) // kills
    plan = []
    for i, kind in enumerate(kinds):
        low, high = start + i * width, start + (i + 1) * width - 1
        every = INTERVAL if kind in IN_CHECKPOINT | {"best-weights"} else LOG if kind == "metrics-line" else 1
        choices = [s for s in range(low, high + 1) if s % every == 0 and s != PRETRAIN] or [low]
        plan.append((kind, rng.choice(choices)))
    return plan


def run_state(run_dir: Path) -> dict:
    """What a kill left: the checkpoint's step, leftover temporaries, the last metrics line."""
    import torch

    state = torch.load(run_dir / "train_state.pt", map_location="cpu", weights_only=True)
    lines = (run_dir / "metrics.jsonl").read_bytes().split(b"\n")
    return {"checkpoint_step": state["step"] + (PRETRAIN if state["phase"] == "finetune" else 0),
            "temporaries_left": sorted(p.name for p in run_dir.glob(".*.tmp")),
            "metrics_tail_cut": lines[-1] != b""}


def compare_runs(a: Path, b: Path) -> dict:
    import safetensors.torch
    import torch

    def same(x, y) -> bool:
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, list | tuple):
            return len(x) == len(y) and all(same(p, q) for p, q in zip(x, y, strict=True))
        return x == y

    def metrics(run_dir: Path) -> list[dict]:
        timing = ("elapsed", "tokens_per_s", "ms_per_step")
        return [{k: v for k, v in json.loads(line).items() if k not in timing}
                for line in (run_dir / "metrics.jsonl").read_text().splitlines()]

    result = {name: same(safetensors.torch.load_file(str(a / name)), safetensors.torch.load_file(str(b / name)))
              for name in ("model.safetensors", "last.safetensors")}
    sa, sb = (torch.load(d / "train_state.pt", map_location="cpu", weights_only=True) for d in (a, b))
    result["checkpoint_weights"] = same(sa["model"], sb["model"])
    result["optimizer_state"] = same(sa["optimizer"], sb["optimizer"])
    result["rng_state"] = same(sa["rng"], sb["rng"])
    result["best_val_loss"] = sa["best"] == sb["best"]
    result["metrics"] = metrics(a) == metrics(b)
    return result


def bench_train(root: Path, seed: int, kills: int) -> dict:
    config = write_data(root)
    started = time.perf_counter()
    straight = run(["train", "--config", str(config), "--out", "straight", "--no-progress"], root)
    assert straight.returncode == 0, straight.stderr
    straight_s = time.perf_counter() - started
    report = []
    first = True
    for kind, step in plan_kills(seed, kills):
        argv = (["train", "--config", str(config), "--out", "killed", "--no-progress"] if first
                else ["train", "--out", "killed", "--resume", "--no-progress"])
        first = False
        done = run(argv, root, f"{kind}:{step}")
        entry = {"kind": kind, "step": step, "killed_by_sigkill": done.returncode == -signal.SIGKILL,
                 "hit": next((line.removeprefix("killed: ") for line in done.stderr.splitlines()
                              if line.startswith("killed: ")), None)}
        if done.returncode != -signal.SIGKILL:
            entry["error"] = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        entry.update(run_state(root / "killed"))
        report.append(entry)
    started = time.perf_counter()
    last = run(["train", "--out", "killed", "--resume", "--no-progress"], root)
    assert last.returncode == 0, last.stderr
    identical = compare_runs(root / "straight", root / "killed")
    return {"steps": PRETRAIN + FINETUNE, "checkpoint_interval": INTERVAL, "kills": report,
            "bit_identical": all(identical.values()), "identical": identical,
            "temporaries_left_at_end": sorted(p.name for p in (root / "killed").glob(".*.tmp")),
            "straight_run_s": round(straight_s, 1), "last_resume_s": round(time.perf_counter() - started, 1)}


def bench_fetch(root: Path) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from fake_mediawiki import FakeMediaWiki, sample_wiki

    from minillm.data.records import read_articles

    wiki = sample_wiki()
    topics = [*wiki.pages, "Sol (star)", "No such page"]
    argv = ["data", "fetch", "--source", "wikipedia", "--full", "--no-progress", "--topics", *topics]

    def articles(path: Path) -> list[tuple]:
        return [(a.id, a.title, a.domain, a.text, a.url, a.description) for a in read_articles(root / path)]

    with FakeMediaWiki(wiki) as server:
        whole = run([*argv, "--output", "whole.jsonl"], root, api=server.url)
        assert whole.returncode == 0, whole.stderr
        killed = run([*argv, "--output", "killed.jsonl"], root, f"fetch:{FETCH_KILL_AT}", api=server.url)
        partial = root / "killed.jsonl.partial"
        lines, written = partial.read_bytes().split(b"\n"), (root / "killed.jsonl").exists()
        asked_before = len(server.requests)
        rerun = run([*argv, "--output", "killed.jsonl"], root, api=server.url)
        assert rerun.returncode == 0, rerun.stderr
        asked_again = len(server.requests) - asked_before
    expected, got = articles("whole.jsonl"), articles("killed.jsonl")
    return {"topics": len(topics), "killed_by_sigkill": killed.returncode == -signal.SIGKILL,
            "output_written_by_killed_run": written,
            "partial_lines_whole": len(lines) - 1, "partial_tail_cut": lines[-1] != b"",
            "requests_of_rerun": asked_again, "articles": len(got),
            "lost": len({a[0] for a in expected} - {a[0] for a in got}),
            "duplicated": len(got) - len({a[0] for a in got}),
            "same_as_uninterrupted": got == expected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--api", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.child:
        raise SystemExit(child(args, rest))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_faults."))
    root.mkdir(parents=True, exist_ok=True)
    os.environ["MINILLM_CACHE"] = str(root / "cache")
    started = time.perf_counter()
    try:
        result = {"seed": args.seed, "train": bench_train(root, args.seed, args.kills), "fetch": bench_fetch(root)}
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
