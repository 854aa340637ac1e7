"""`minillm compress sweep RUN --out DIR`: every compression of one run, measured the same way, on one frontier.

    >>> sweep("runs/quickstart", "experiments/compress", extra={"distilled": "runs/student"})

Variants (each a run directory under DIR/runs/, made from RUN by the compress commands):
fp32 (RUN itself), int8, int4 (group 32), pruned 30/50/70% (unstructured magnitude), ffn50 (half the FFN
neurons removed, then ``recovery_steps`` of recovery fine-tuning; transformer runs only), and any run given
in ``extra`` (a distilled student, a shared-layers run: those are trained, not derived).

Measured for each, in a child process of its own (so its peak RSS is its own, read with ``os.wait4``):
- bytes on disk of what answering needs: the weights, tokenizer and config (not the retrieval index, which
  every variant shares, nor metrics or checkpoints);
- keyword hit on the natural questions (or ``questions``), open book (when RUN has an index) and closed book;
- token F1 on ``limit`` questions of the test split, open book when there is an index;
- held-out bits per byte; generation tokens/s (closed book, greedy, the answer defaults); peak RSS.

Writes DIR/results.json, DIR/README.md (the table) and DIR/frontier.png (bytes against keyword hit and
against bits per byte). A variant that cannot be made from RUN (ffn50 of an mlp run) is skipped with the
reason in the table's notes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minillm.answering.answer import ANSWER_SAMPLING
from minillm.compress.prune import prune_run
from minillm.compress.quantize import quantize_run
from minillm.core.errors import InputError
from minillm.core.files import atomic_write
from minillm.evaluation.perplexity import heldout_score
from minillm.evaluation.qa import default_qa_path, evaluate_qa, read_eval_questions, seeded_sample
from minillm.evaluation.report import markdown_table
from minillm.retrieval.index import load_index
from minillm.training.runs import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, load_run

ANSWER_FILES = (WEIGHTS_FILE, TOKENIZER_FILE, CONFIG_FILE, "neural")  # what answering reads
PRUNE_LEVELS = (0.3, 0.5, 0.7)


def variant_builders(recovery_steps: int) -> dict[str, Callable[[str, Path], object] | None]:
    """name -> function(run, out) that makes the variant (None: the run itself)."""
    builders: dict[str, Callable[[str, Path], object] | None] = {
        "fp32": None,
        "int8": lambda run, out: quantize_run(run, out, bits=8),
        "int4": lambda run, out: quantize_run(run, out, bits=4),
    }
    for level in PRUNE_LEVELS:
        builders[f"pruned{round(level * 100)}"] = lambda run, out, s=level: prune_run(run, out, sparsity=s)
    builders["ffn50"] = lambda run, out: prune_run(run, out, sparsity=0.5, structured="ffn",
                                                   finetune_steps=recovery_steps)
    return builders


def answer_bytes(run_dir: str | Path) -> int:
    """Bytes on disk of the files answering needs (ANSWER_FILES), folders summed."""
    total = 0
    for name in ANSWER_FILES:
        path = Path(run_dir) / name
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total


def measure(run_dir: str | Path, limit: int, index_dir: str | Path | None = None,
            questions: str | Path | None = None) -> dict[str, Any]:
    """The figures of one run (see the module docstring), in this process; ``questions`` replaces the natural
    questions."""
    model, tok, cfg = load_run(run_dir)
    index = load_index(index_dir or run_dir)
    natural = read_eval_questions(questions or default_qa_path(cfg, "natural"))
    test = seeded_sample(read_eval_questions(default_qa_path(cfg, "test")), limit, 0)
    heldout = heldout_score(model, tok, cfg)
    closed = evaluate_qa(model, tok, natural, ANSWER_SAMPLING)
    result = {
        "parameters": model.num_parameters(),
        "bytes": answer_bytes(run_dir),
        "bits_per_byte": heldout.bits_per_byte if heldout else None,
        "closed_keyword": closed["keyword_hit_rate"],
        "open_keyword": None,
        "test_f1": None,
        "tokens_per_s": closed["tokens_per_second"],
    }
    if index is not None:
        result["open_keyword"] = evaluate_qa(model, tok, natural, ANSWER_SAMPLING, index=index)["keyword_hit_rate"]
    result["test_f1"] = evaluate_qa(model, tok, test, ANSWER_SAMPLING, index=index)["f1"]
    return result


def measure_in_child(run_dir: Path, limit: int, index_dir: Path | None, questions: Path | None) -> dict[str, Any]:
    """``measure`` in a fresh Python process; adds its peak RSS (bytes)."""
    args = [sys.executable, "-m", "minillm.compress.sweep", str(run_dir), str(limit), str(index_dir or ""),
            str(questions or "")]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"measuring {run_dir} failed:\n{err.strip()}")
    return {**json.loads(out), "peak_rss_bytes": usage.ru_maxrss * 1024}  # ru_maxrss is in KiB on Linux


def sweep(run: str | Path, out: str | Path, *, limit: int = 100, recovery_steps: int = 200,
          extra: dict[str, str] | None = None, questions: str | Path | None = None,
          progress: Callable[[str], None] | None = None) -> Path:
    """Make and measure every variant of ``run`` under ``out``; returns out/README.md."""
    run, out = Path(run), Path(out)
    if not (run / CONFIG_FILE).is_file():
        raise InputError(f"{run}: not a run directory (no config.toml)")
    if not (run / WEIGHTS_FILE).is_file() or (run / "neural").exists():
        raise InputError(f"{run}: compress sweep takes a neural run (transformer, attention, mlp)")
    if limit < 1:
        raise InputError(f"--limit: must be >= 1, got {limit}")
    if questions is not None:
        read_eval_questions(questions)  # a bad file fails here, before any variant is made
    for name, path in (extra or {}).items():
        if not (Path(path) / CONFIG_FILE).is_file():
            raise InputError(f"--extra {name}={path}: not a run directory (no config.toml)")
    index_dir = run if (run / "index").exists() else None
    made = [(name, run if build is None else out / "runs" / name, build)
            for name, build in variant_builders(recovery_steps).items()]
    given = [(name, Path(path), None) for name, path in (extra or {}).items()]
    rows, notes = [], []
    for name, target, build in made + given:
        if progress:
            progress(name)
        if build is not None and not target.exists():  # a variant made by an earlier sweep is measured again
            try:
                build(str(run), target)
            except InputError as e:
                notes.append(f"{name}: skipped ({e})")
                continue
        rows.append({"variant": name, "run": str(target),
                     **measure_in_child(target, limit, index_dir, Path(questions) if questions else None)})
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "results.json") as fh:
        fh.write(json.dumps({"run": str(run), "limit": limit, "recovery_steps": recovery_steps,
                             "variants": rows, "notes": notes}, indent=2) + "\n")
    plot_frontier(rows, out / "frontier.png")
    readme = out / "README.md"
    with atomic_write(readme) as fh:
        fh.write(results_markdown(run, rows, notes, limit))
    return readme


def results_markdown(run: Path, rows: list[dict[str, Any]], notes: list[str], limit: int) -> str:
    base = rows[0]["bytes"] if rows else 1

    def fmt(value: float | None, digits: int = 3) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    table = markdown_table(
        ["variant", "MB", "x fp32", "open kw", "closed kw", f"test F1 ({limit})", "bits/byte", "tok/s", "peak RSS MB"],
        [[r["variant"], f"{r['bytes'] / 1e6:.2f}", f"{r['bytes'] / base:.2f}", fmt(r["open_keyword"]),
          fmt(r["closed_keyword"]), fmt(r["test_f1"]), fmt(r["bits_per_byte"], 4), f"{r['tokens_per_s']:.0f}",
          f"{r['peak_rss_bytes'] / 1e6:.0f}"] for r in rows])
    lines = [f"# Compression sweep of `{run}`", "",
             f"`minillm compress sweep {run}`: MB is what answering reads (weights, tokenizer, config; not the "
             "retrieval index); keyword hits on the natural questions; tokens/s of closed-book greedy answers "
             "on this machine. The figure is frontier.png.", "", table, ""]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def plot_frontier(rows: list[dict[str, Any]], path: Path) -> None:
    """Bytes (log scale) against open-book keyword hit (else closed) and against bits per byte."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    open_book = any(r["open_keyword"] is not None for r in rows)
    panels = [("open_keyword" if open_book else "closed_keyword",
               f"{'open' if open_book else 'closed'}-book keyword hit, natural questions (higher is better)"),
              ("bits_per_byte", "held-out bits per byte (lower is better)")]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for i, r in enumerate(rows):
            if r[key] is not None:
                ax.scatter(r["bytes"] / 1e6, r[key], color=f"C{i % 10}", s=40, zorder=3)
                ax.annotate(r["variant"], (r["bytes"] / 1e6, r[key]), textcoords="offset points", xytext=(5, 5),
                            fontsize=8)
        ax.set(title=title, xlabel="MB on disk (log scale)", xscale="log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 2, not 2 x 10^0
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)


if __name__ == "__main__":  # the child process of measure_in_child: RUN LIMIT INDEX_DIR QUESTIONS ("" = none)
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), sys.argv[3] or None, sys.argv[4] or None)))
