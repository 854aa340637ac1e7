"""Reports: the table ``minillm eval`` prints, and ``minillm compare``'s Markdown table and plots of runs.

    >>> result = compare_runs(["runs/tiny-cpu", "runs/seed-3m"], "experiments/tiny-vs-seed")
    >>> result.readme    # experiments/tiny-vs-seed/README.md, beside loss_curves.png and size_quality.png

Design choices:
- A run is read from its own files only: the model and config through ``load_run`` (parameters as the
  model counts them, each shared tensor once), the size of model.safetensors on disk, metrics.jsonl
  (training time = the last ``elapsed``; loss curves) and eval.json (quality and latency). A run without
  eval.json gets "—" in those columns and a note saying how to fill them.
- The table says which question set and mode each run was evaluated on, and warns when they differ:
  F1 on 50 hand-written questions and on the generated test split are not comparable.
- Plots use matplotlib's object API (``Figure``, no pyplot): no display, no global state; PNGs are
  written atomically like every other file. README.md has no timestamp, so the same runs give the same
  text.
- Left out: statistical tests between runs; the per-answer scores in eval.json are there for that.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minillm.core.errors import InputError
from minillm.core.files import atomic_write, iter_json_lines
from minillm.core.numbers import DASH, format_number, human_bytes, human_count, human_seconds
from minillm.training.runs import EVAL_FILE, METRICS_FILE, load_run

# --- formatting -------------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, the first left-aligned and the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).rjust(w) for c, w in zip(row, widths, strict=True)]
        cells[0] = str(row[0]).ljust(widths[0])
        lines.append("  ".join(cells))
    return lines


def eval_table(result: dict[str, Any]) -> str:
    """``evaluate_run``'s result as a readable plain-text report."""
    model, settings = result["model"], result["settings"]
    lines = [f"{result['run']}: {model['name']}, {human_count(model['parameters'])} parameters, "
             f"{human_bytes(model['size_bytes'])} of weights"]
    scores = [s for s in (result["lm"]["heldout"], result["lm"].get("text")) if s and s["loss"] is not None]
    if scores:
        lines += ["", "language modelling"]
        lines += ["  " + line for line in _table(
            ["text", "tokens", "loss", "perplexity", "bits/byte"],
            [[s["source"], f"{s['tokens']:,}", f"{s['loss']:.4f}", format_number(s["perplexity"], 2),
              f"{s['bits_per_byte']:.4f}"] for s in scores])]
    elif not model.get("probabilities", True):
        lines += ["", f"language modelling: undefined, {model['name']} has no probabilities"]
    else:
        lines += ["", "language modelling: the run holds out no text (data.heldout_fraction is 0); "
                      "add --text FILE to score one"]
    if "qa" in result:
        qa = result["qa"]
        lines += ["", f"QA, {settings['mode']} book: {settings['questions_file']}, {qa['count']} questions"]
        if settings["mode"] == "open" and settings.get("reader_why"):  # who read the passages, and why
            lines += [f"  read by {settings['reader']}: {settings['reader_why']}"]
        rows = [[name, str(s["count"]), format_number(s["exact_match"]), format_number(s["f1"]),
                 format_number(s["rouge_l"]),
                 format_number(s["keyword_hit_rate"]), format_number(s.get("fact_hit_rate")),
                 format_number(s["two_to_four_sentences"]),
                 format_number(s["mean_words"], 1), str(s.get("degenerate", DASH)),
                 format_number(s.get("faithfulness")), format_number(s.get("invented_words"), 0),
                 format_number(s.get("withheld_rate")),
                 format_number(s["latency_p50_s"]), format_number(s["latency_p95_s"])]
                for name, s in [*qa["by_domain"].items(), ("all", qa)]]
        lines += ["  " + line for line in _table(
            ["domain", "n", "EM", "F1", "ROUGE-L", "keyword", "fact", "2-4 sent.", "words", "degen.", "faithful",
             "invented", "withheld", "p50 s", "p95 s"], rows)]
        if qa.get("selective"):
            lines += selective_lines(qa["selective"])
    if "multiple_choice" in result:
        mc = result["multiple_choice"]
        lines += ["", f"multiple choice, {mc['task']}: {settings['questions_file']}, {mc['count']} questions",
                  f"  accuracy {mc['accuracy_sum']:.3f} (sum of log-probs), {mc['accuracy_mean']:.3f} "
                  f"(mean per token); chance {mc['chance']:.3f}"]
    return "\n".join(lines)


RISK_COVERAGE_POINTS = (0.1, 0.25, 0.5, 0.75, 1.0)


def selective_lines(selective: dict[str, Any]) -> list[str]:
    """Knowing what it does not know: coverage and precision among answered at the run's threshold (a right
    answer holds a keyword, else the reference's fact), and the precision at a few coverages."""
    lines = ["", f"closed book, answers withheld below a confidence ({selective['measure']}; right = keyword "
                 f"hit, else fact hit): all answered {format_number(selective['precision_all'])} right"]
    if "threshold" in selective:
        lines.append(f"  at the run's threshold {selective['threshold']:.3f}: coverage "
                     f"{format_number(selective['coverage'])}, precision among answered "
                     f"{format_number(selective['precision_answered'])}")
    else:
        lines.append("  no threshold: the run has no confidence.json (minillm calibrate RUN)")
    curve = selective["curve"]
    cells = []
    for target in RISK_COVERAGE_POINTS:  # the first point of the curve that reaches each coverage
        point = next((p for p in curve if p["coverage"] >= target), curve[-1])
        cells.append(f"{point['coverage']:.2f}: {point['precision']:.3f}")
    lines.append("  risk-coverage (coverage: precision): " + ", ".join(cells))
    return lines


def followups_table(result: dict[str, Any]) -> str:
    """``evaluate_followups_run``'s result: keyword and retrieval hits per domain, with memory and without."""
    rows = [[name, str(s["count"]), format_number(s["memory"]["keyword_hit_rate"]),
             format_number(s["alone"]["keyword_hit_rate"]),
             format_number(s["memory"]["retrieval_hit_rate"]), format_number(s["alone"]["retrieval_hit_rate"])]
            for name, s in [*result["by_domain"].items(), ("all", result)]]
    lines = [f"follow-ups, {result['mode']} book: {result['file']}, {result['count']} conversations"]
    return "\n".join(lines + ["  " + line for line in _table(
        ["domain", "n", "keyword memory", "alone", "retrieval memory", "alone"], rows)])


# --- reading runs -----------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    label: str
    path: Path
    shape: str  # e.g. "4 x 192, bpe 4096"
    parameters: int
    weights_bytes: int  # the model's saved data (model.size_bytes(): weights, tables or look-up data)
    pretrain_steps: int
    training_seconds: float | None
    train_loss: list[tuple[int, float]] = field(default_factory=list)  # (global step, loss)
    val_loss: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # "val_text" -> points
    eval: dict[str, Any] | None = None

    def metric(self, *keys: str) -> Any:
        """A value inside eval.json (``metric("qa", "f1")``), None when the run has none."""
        value: Any = self.eval
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value


_SHAPE_KEYS = {"num_layers": "{} x ", "emb_dim": "{}", "order": "order {}", "context": ", window {}",
               "hidden_dim": ", hidden {}"}


def model_shape(cfg: Any, tok: Any) -> str:
    """A short description of a run's model: ``transformer 2 x 128, bpe 4096``, ``markov order 3, bpe 4096``."""
    dims = "".join(fmt.format(cfg.model[key]) for key, fmt in _SHAPE_KEYS.items() if key in cfg.model)
    return f"{cfg.arch} {dims}".strip() + f", {tok.kind} {tok.vocab_size}"


def read_run(run_dir: str | Path, label: str | None = None) -> RunSummary:
    run_dir = Path(run_dir)
    model, tok, cfg = load_run(run_dir)
    summary = RunSummary(label=label or run_dir.name, path=run_dir, shape=model_shape(cfg, tok),
                         parameters=model.num_parameters(), weights_bytes=model.size_bytes(),
                         pretrain_steps=cfg.train.pretrain_steps, training_seconds=None)
    metrics_path = run_dir / METRICS_FILE
    if metrics_path.is_file() and metrics_path.stat().st_size:
        # a crash mid-append can leave a truncated last line; the other lines still draw the curve
        for _, record in iter_json_lines(metrics_path, skip_invalid=True):
            step = record.get("global_step")
            summary.training_seconds = record.get("elapsed", summary.training_seconds)
            if record.get("event") == "train" and "loss" in record:
                summary.train_loss.append((step, record["loss"]))
            if record.get("event") == "eval":
                for key, value in record.items():
                    if key.endswith("_loss"):  # val_text_loss, val_qa_loss
                        summary.val_loss.setdefault(key.removesuffix("_loss"), []).append((step, value))
    eval_path = run_dir / EVAL_FILE
    if eval_path.is_file():
        try:
            summary.eval = json.loads(eval_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{eval_path}: not valid JSON ({e}); rerun minillm eval {run_dir}") from None
        if not isinstance(summary.eval, dict) or {"format", "model", "settings", "lm"} - set(summary.eval):
            raise InputError(f"{eval_path}: not a minillm eval.json; rerun minillm eval {run_dir}")
    return summary


def _labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """Folder names, or the paths as given when two runs share a folder name."""
    names = [Path(r).name for r in run_dirs]
    return names if len(set(names)) == len(names) else [str(r) for r in run_dirs]


# --- the comparison ---------------------------------------------------------------------------------------


COLUMNS = ("run", "model", "parameters", "size on disk", "training time", "val bits/byte", "QA F1",
           "ROUGE-L", "keyword hit", "latency p50")


def comparison_rows(runs: Sequence[RunSummary]) -> list[list[str]]:
    rows = []
    for r in runs:
        qa = r.metric("qa") or {}
        rows.append([r.label, r.shape, human_count(r.parameters), human_bytes(r.weights_bytes),
                     DASH if r.training_seconds is None else human_seconds(r.training_seconds),
                     format_number(r.metric("lm", "heldout", "bits_per_byte")), format_number(qa.get("f1")),
                     format_number(qa.get("rouge_l")), format_number(qa.get("keyword_hit_rate")),
                     format_number(qa.get("latency_p50_s"), suffix=" s")])
    return rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---"] + ["--:"] * (len(header) - 1)
    return "\n".join("| " + " | ".join(r) + " |" for r in [list(header), align, *rows])


def comparison_notes(runs: Sequence[RunSummary]) -> list[str]:
    notes = []
    evaluated = [r for r in runs if r.eval is not None]
    for r in runs:
        if r.eval is None:
            notes.append(f"`{r.label}` has no eval.json: run `minillm eval {r.path}` to fill its quality "
                         "columns.")
    for r in evaluated:
        s, task = r.eval["settings"], "qa" if "qa" in r.eval else "multiple_choice"
        note = (f"`{r.label}` was evaluated ({s['task']}, {s['mode']} book) on `{s['questions_file']}`, "
                f"{r.metric(task, 'count')} questions"
                + (f" (a sample of --limit {s['limit']})" if s.get("limit") else "") + f", on {s['device']}")
        if task == "multiple_choice":
            mc = r.eval[task]
            note += (f": accuracy {mc['accuracy_sum']:.3f} by summed log-probs, {mc['accuracy_mean']:.3f} by "
                     f"mean per token (chance {mc['chance']:.3f})")
        notes.append(note + ".")
    settings = [r.eval["settings"] for r in evaluated]
    if len({json.dumps([s[k] for k in ("task", "questions_file", "mode", "limit", "seed", "sampling")])
            for s in settings}) > 1:
        notes.append("The runs were not evaluated on the same questions with the same settings: compare "
                     "their QA columns with care.")
    heldout = {r.metric("lm", "heldout", "source") for r in evaluated} - {None}
    if len(heldout) > 1:
        notes.append("The runs held out different text (" + "; ".join(sorted(heldout)) + "): their bits per "
                     "byte are not measured on the same text.")
    if any("qa" in r.eval and not r.eval["qa"]["keyword_questions"] for r in evaluated):
        notes.append("keyword hit is — where the questions have no `keywords` list.")
    return notes


def _save_png(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})  # no version: stable bytes
    with atomic_write(path, "wb") as fh:
        fh.write(buffer.getvalue())


def plot_loss_curves(runs: Sequence[RunSummary], path: Path) -> None:
    """Training loss and validation losses against the global step; a dotted line where fine-tuning starts."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    train_ax, val_ax = fig.subplots(1, 2, sharex=True)
    styles = {"val_text": "-", "val_qa": "--"}
    for i, r in enumerate(runs):
        color = f"C{i % 10}"
        if r.train_loss:
            train_ax.plot(*zip(*r.train_loss, strict=True), color=color, label=r.label, linewidth=1.2)
        for name, points in sorted(r.val_loss.items()):
            val_ax.plot(*zip(*points, strict=True), styles.get(name, ":"), marker="o", markersize=3,
                        color=color, label=f"{r.label} {name}")
        for ax in (train_ax, val_ax):
            if r.pretrain_steps and (r.train_loss or r.val_loss):
                ax.axvline(r.pretrain_steps, color=color, linestyle=":", linewidth=0.8)
    train_ax.set(title="training loss (dotted: fine-tuning starts)", xlabel="step",
                 ylabel="loss (nats/token)")
    val_ax.set(title="validation loss (text: solid, QA answers: dashed)", xlabel="step")
    for ax in (train_ax, val_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no metrics.jsonl", ha="center", va="center", transform=ax.transAxes)
    _save_png(fig, path)


def spaced_labels(sizes: Sequence[int], min_share: float = 0.15) -> list[str]:
    """Tick labels for sorted sizes on a log axis; a size closer to the last labelled one than ``min_share`` of
    the axis's log span gets none, so runs of nearly the same size do not print labels on top of each other."""
    span = math.log(sizes[-1] / sizes[0]) if sizes else 0.0
    labels, last = [], None
    for n in sizes:
        show = last is None or math.log(n / last) >= min_share * span
        labels.append(human_count(n) if show else "")
        last = n if show else last
    return labels


def plot_size_quality(runs: Sequence[RunSummary], path: Path) -> None:
    """Parameters (log scale) against QA F1 and against held-out bits per byte, one point per run; a run
    with no parameters (the extractive rung) has no place on a log axis and is left out."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = [(("qa", "f1"), "QA token F1 (higher is better)"),
              (("lm", "heldout", "bits_per_byte"), "held-out bits per byte (lower is better)")]
    for ax, (keys, title) in zip(axes, panels, strict=True):
        plotted = 0
        for i, r in enumerate(runs):
            value = r.metric(*keys) if r.parameters > 0 else None
            if value is not None:
                ax.scatter(r.parameters, value, color=f"C{i % 10}", s=40, zorder=3)
                ax.annotate(r.label, (r.parameters, value), textcoords="offset points", xytext=(5, 5),
                            fontsize=8)
                plotted += 1
        ax.set(title=title, xlabel="parameters (log scale)", xscale="log")
        # ticks at the runs' own sizes: log axes over less than a decade get no or crowded default labels
        sizes = sorted({r.parameters for r in runs if r.parameters > 0 and r.metric(*keys) is not None})
        ax.set_xticks(sizes, spaced_labels(sizes))
        ax.minorticks_off()
        ax.margins(x=0.2, y=0.15)
        ax.grid(alpha=0.3)
        if not plotted:
            ax.text(0.5, 0.5, "no eval.json with this value:\nrun minillm eval RUN", ha="center",
                    va="center", transform=ax.transAxes)
    _save_png(fig, path)


@dataclass
class CompareResult:
    readme: Path
    plots: list[Path]
    table: str  # the Markdown table
    notes: list[str]


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> CompareResult:
    """Write out_dir/README.md (table and notes), loss_curves.png and size_quality.png for the runs."""
    if not run_dirs:
        raise InputError("compare: give at least one run directory")
    runs = [read_run(r, label) for r, label in zip(run_dirs, _labels(run_dirs), strict=True)]
    out_dir = Path(out_dir)
    table = markdown_table(COLUMNS, comparison_rows(runs))
    notes = comparison_notes(runs)
    plots = [out_dir / "loss_curves.png", out_dir / "size_quality.png"]
    plot_loss_curves(runs, plots[0])
    plot_size_quality(runs, plots[1])
    command = " ".join(["minillm compare", *map(str, run_dirs), "--out", str(out_dir)])
    text = [f"# Comparison of {len(runs)} run{'s' if len(runs) != 1 else ''}", "",
            f"Made by `{command}` from each run's config.toml, model.safetensors, metrics.jsonl and "
            "eval.json. Bits per byte: on the text each run held out of pretraining; latency: wall time of "
            "one answer.", "", table, ""]
    text += [f"- {note}" for note in notes] + ([""] if notes else [])
    text += ["![training and validation loss](loss_curves.png)", "",
             "![size against quality](size_quality.png)", ""]
    readme = out_dir / "README.md"
    with atomic_write(readme) as fh:
        fh.write("\n".join(text))
    return CompareResult(readme=readme, plots=plots, table=table, notes=notes)
