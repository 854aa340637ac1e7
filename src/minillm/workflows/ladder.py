"""The architecture ladder: every rung trained on the same data with a matched budget, evaluated the same way.

    >>> result = run_ladder("small", out_dir="experiments/ladder", runs_dir="runs/ladder")
    >>> result.table     # Markdown: one row per rung; also in experiments/ladder/results.md with the plots

The rungs, bottom to top (``RUNGS``):

    extractive   floor   no model: the first sentences of the retrieved passages (open book only)
    pattern      rung 0  regex question shapes + title look-up + templates (no probabilities)
    markov       rung 1  n-gram chain, interpolated Kneser-Ney
    mlp          rung 2  Bengio-style fixed-window neural LM
    attention    rung 3  one causal self-attention layer, no MLP
    transformer  rung 4  GPT-2-style MiniTransformer (LayerNorm, GELU, learned positions)
    modern       rung 5  the same size with RMSNorm, SwiGLU and rotary positions
    shared       rung 5  modern, 4 layers sharing one block's weights (ALBERT-style)
    copy         rung 5  modern with a pointer-generator copy head: tiny-cpu, the quickstart's model
    hybrid       rung 5  markov and modern mixed with a weight tuned on validation data
    bert         rung 6  a minimal BERT: masked-LM pretraining, then ranking the retrieved sentences

Design choices:
- Same data for every rung: one fetch/generate/split (the quickstart's, reused when ``data/`` has it) and one
  BPE tokenizer (``runs_dir/tokenizer.json``), so bits per byte, F1 and sizes compare like for like.
- A matched budget: every neural rung takes the same optimizer steps of the same batch and sequence length
  (``BUDGETS``), so they see the same number of tokens, and fine-tunes on the same pairs, each closed and
  open book (``data.qa_context``); count-based rungs read the same data once.
- Each rung is a normal run directory made by ``train``, evaluated by ``evaluate_run`` (closed book and open
  book on the same seeded sample of test questions) and read back by ``report.read_run``: the ladder adds no
  second way to train or score anything. A rung whose run directory already holds its evaluations is reused,
  so an interrupted ladder continues where it stopped; ``overwrite`` starts afresh.
- One retrieval index (BM25 over the articles) is built once and copied into each run for open book, and
  every rung reads the passages itself (``answer.reader = "model"``): tiny-cpu, which the copy, modern and
  shared rungs start from, ships the trained sentence ranker as its reader, which would make their open-book
  columns the ranker's (or, without one, the pattern rules') rather than the network's.
- The output: ``results.md`` (the table and notes, no timestamps) and compare's plots, in ``out_dir``;
  ``experiments/ladder/README.md`` quotes that table and says what it means.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minillm.core.checks import check_names
from minillm.core.errors import InputError
from minillm.core.files import atomic_write
from minillm.core.numbers import DASH, format_number, human_bytes, human_count, human_seconds
from minillm.data.records import read_articles
from minillm.evaluation.qa import DEFAULT_SAMPLING, evaluate_run, write_eval
from minillm.evaluation.report import markdown_table, plot_loss_curves, plot_size_quality, read_run
from minillm.models import model_class
from minillm.retrieval.index import INDEX_DIR, Index
from minillm.training.config import load_config, shipped_config
from minillm.training.runs import TOKENIZER_FILE
from minillm.training.trainer import train
from minillm.workflows.quickstart import prepare_data

if TYPE_CHECKING:
    from minillm.training.config import Config

# The heavy modules (torch, evaluation, plots) are imported inside the functions: the CLI imports this
# module for BUDGETS and RUNGS when it builds its parser.


@dataclass(frozen=True)
class Rung:
    label: str
    config: str  # a shipped config name
    overrides: tuple[str, ...] = ()
    what: str = ""


RUNGS = (
    Rung("extractive", "extractive", what="no model: the retrieved passages' first sentences (open-book floor)"),
    Rung("pattern", "pattern", what="regex question shapes + title look-up + templates"),
    Rung("markov", "markov", what="n-gram chain, interpolated Kneser-Ney"),
    Rung("mlp", "mlp", what="Bengio-style fixed-window MLP"),
    Rung("attention", "attention", what="one causal self-attention layer, no MLP"),
    Rung("transformer", "transformer", what="GPT-2-style: LayerNorm, GELU, learned positions"),
    Rung("modern", "tiny-cpu", ("model.copy_head=false",), what="RMSNorm, SwiGLU, rotary positions"),
    Rung("shared", "tiny-cpu", ("model.copy_head=false", "model.share_layers=true", "model.num_layers=4"),
         what="modern, 4 layers sharing one block"),
    Rung("copy", "tiny-cpu", what="modern + pointer-generator copy head (tiny-cpu)"),
    Rung("hybrid", "hybrid", what="markov + modern, weight tuned on validation data"),
    Rung("bert", "bert", what="minimal BERT: masked-LM encoder ranking the passages' sentences (open book)"),
)
HYBRID_NEURAL = "modern"  # the run the hybrid mixes with the n-gram chain

# Per budget: optimizer steps of every neural rung (batch and sequence length come from their configs,
# which match) and how many test questions each rung answers in each mode.
# "natural": how many of the shipped hand-written natural questions (0 = all 90) each rung also answers.
BUDGETS: dict[str, dict[str, int]] = {
    "tiny": {"pretrain_steps": 20, "finetune_steps": 10, "questions": 4, "natural": 3, "max_new_tokens": 12},
    "small": {"pretrain_steps": 800, "finetune_steps": 200, "questions": 100, "natural": 0, "max_new_tokens": 128},
    "full": {"pretrain_steps": 2200, "finetune_steps": 400, "questions": 500, "natural": 0, "max_new_tokens": 128},
}
MODES = ("closed", "open")
SAMPLE_QUESTION = "What do the kidneys do?"  # the natural question whose answers results.json keeps per rung


@dataclass
class LadderResult:
    out_dir: Path
    table: str
    rows: list[dict[str, Any]]
    seconds: float


def _rung_config(rung: Rung, budget: dict[str, int], data: dict[str, str], runs_dir: Path) -> Config:
    overrides = [*rung.overrides, *(f"data.{k}={json.dumps(v)}" for k, v in data.items()), 'answer.reader="model"']
    cfg = load_config(shipped_config(rung.config), overrides)
    cls = model_class(cfg.arch)
    if cls.trained_by == "fit" and not getattr(cls, "budgeted", False):  # steps > 0 only say "read this data"
        if rung.label == "hybrid":
            overrides.append(f"model.neural_run={json.dumps(str(runs_dir / HYBRID_NEURAL))}")
        return load_config(shipped_config(rung.config), overrides)
    overrides += [f"train.pretrain_steps={budget['pretrain_steps']}",
                  f"train.finetune_steps={budget['finetune_steps']}"]
    if cls.trained_by == "trainer":  # bert ranks the retrieved passages' sentences, as its config says
        overrides.append("data.qa_context=true")
    cfg = load_config(shipped_config(rung.config), overrides)
    # schedule lengths shrink with the budget: warmup and intervals must not exceed the phases
    t = cfg.train
    longest = max(t.pretrain_steps, t.finetune_steps, 1)
    return replace(cfg, train=replace(t, warmup_steps=min(t.warmup_steps, max(1, longest // 10)),
                                      eval_interval=min(t.eval_interval, longest),
                                      checkpoint_interval=min(t.checkpoint_interval, longest)))


def _done(run_dir: Path) -> bool:
    return all((run_dir / _eval_file(mode, split)).is_file() for mode in MODES for split in ("test", "natural"))


def _eval_file(mode: str, split: str = "test") -> str:
    return ("eval" if split == "test" else f"eval-{split}") + ("" if mode == "closed" else "-open") + ".json"


def run_ladder(budget: str = "small", out_dir: str | Path = "experiments/ladder",
               runs_dir: str | Path = "runs/ladder", data_dir: str | Path = "data", rungs: tuple[str, ...] = (),
               overwrite: bool = False, device: str | None = None, reevaluate: bool = False,
               log: Callable[[str], None] = lambda _: None) -> LadderResult:
    """Train, evaluate and tabulate every rung (or those named in ``rungs``); see the module docstring.
    ``reevaluate``: a rung trained before is evaluated again rather than reused as it was (after a change to
    retrieval, decoding or the metrics); one never trained is trained."""
    if budget not in BUDGETS:
        raise InputError(f"--budget {budget}: unknown budget; choose one of {', '.join(BUDGETS)}")
    check_names("--rungs", rungs, [r.label for r in RUNGS], "rung")
    chosen = [r for r in RUNGS if not rungs or r.label in rungs]
    if any(r.label == "hybrid" for r in chosen) and HYBRID_NEURAL not in [r.label for r in chosen]:
        chosen.insert(next(i for i, r in enumerate(chosen) if r.label == "hybrid"),
                      next(r for r in RUNGS if r.label == HYBRID_NEURAL))
    start, plan = time.perf_counter(), BUDGETS[budget]
    out_dir, runs_dir, data_dir = Path(out_dir), Path(runs_dir), Path(data_dir)
    if overwrite and runs_dir.exists():
        shutil.rmtree(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)

    data = prepare_data(data_dir, runs_dir / TOKENIZER_FILE, log=log)
    index_dir = runs_dir / INDEX_DIR
    if not (index_dir / "passages.jsonl").is_file():
        log(f"index: BM25 over {data['articles']} -> {index_dir}")
        Index.build(read_articles(data["articles"])).save(index_dir)

    rows = []
    for rung in chosen:
        run_dir = runs_dir / rung.label
        if _done(run_dir) and not reevaluate:
            log(f"{rung.label}: done before, reused ({run_dir})")
        else:
            if _done(run_dir):
                log(f"{rung.label}: trained before, evaluated again ({run_dir})")
            else:
                if run_dir.exists():
                    shutil.rmtree(run_dir)  # an unfinished rung: train it again from the start
                cfg = _rung_config(rung, plan, data, runs_dir)
                log(f"{rung.label}: training ({rung.config}"
                    f"{', ' + ', '.join(rung.overrides) if rung.overrides else ''})")
                train(cfg, run_dir, device=device, progress=False)
                shutil.copytree(index_dir, run_dir / INDEX_DIR)
            sampling = replace(DEFAULT_SAMPLING, max_new_tokens=plan["max_new_tokens"])
            for split, limit in (("test", plan["questions"]), ("natural", plan["natural"] or None)):
                for mode in MODES:
                    log(f"{rung.label}: evaluating, {mode} book, {limit or 'all'} {split} questions")
                    result = evaluate_run(run_dir, split=split, mode=mode, limit=limit, device=device or "cpu",
                                          sampling=sampling)
                    write_eval(result, run_dir / _eval_file(mode, split))
        rows.append(_row(rung, run_dir))
    if rungs:
        rows = _merged(out_dir, budget, rows)
    table = ladder_table(rows)
    _write_results(out_dir, budget, rows, table)
    return LadderResult(out_dir=out_dir, table=table, rows=rows, seconds=time.perf_counter() - start)


def _merged(out_dir: Path, budget: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a ladder run on some rungs, with the other rungs' rows of the same budget kept from
    ``out_dir/results.json``, in RUNGS order: one rung can be added or redone without training the rest."""
    path = out_dir / "results.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return rows
    if not isinstance(saved, dict) or saved.get("budget") != budget or not isinstance(saved.get("rungs"), list):
        return rows
    new = {r["rung"]: r for r in rows}
    old = {r.get("rung"): r for r in saved["rungs"] if isinstance(r, dict) and r.get("rung") not in new}
    return [new.get(r.label) or old[r.label] for r in RUNGS if r.label in new or r.label in old]


def _row(rung: Rung, run_dir: Path) -> dict[str, Any]:
    summary = read_run(run_dir, rung.label)

    def qa(name: str) -> dict[str, Any]:
        return json.loads((run_dir / name).read_text(encoding="utf-8"))["qa"]

    closed, opened = summary.eval["qa"], qa(_eval_file("open"))
    natural = {mode: qa(_eval_file(mode, "natural")) for mode in MODES}
    answers = {mode: natural[mode]["answers"] for mode in MODES}
    i = next((j for j, a in enumerate(answers["closed"]) if a["question"] == SAMPLE_QUESTION), 0)
    sample = {"question": answers["closed"][i]["question"], **{mode: answers[mode][i]["answer"] for mode in MODES}}
    return {"rung": rung.label, "what": rung.what, "model": summary.shape, "parameters": summary.parameters,
            "size_bytes": summary.weights_bytes, "training_seconds": summary.training_seconds,
            "bits_per_byte": summary.metric("lm", "heldout", "bits_per_byte"),
            "closed_f1": closed["f1"], "closed_rouge_l": closed["rouge_l"], "open_f1": opened["f1"],
            "open_rouge_l": opened["rouge_l"], "two_to_four": closed["two_to_four_sentences"],
            "latency_p50_s": closed["latency_p50_s"], "questions": closed["count"],
            "natural_closed_keyword": natural["closed"]["keyword_hit_rate"],
            "natural_open_keyword": natural["open"]["keyword_hit_rate"], "natural_questions": natural["open"]["count"],
            "sample": sample, "summary": summary}


LADDER_COLUMNS = ("rung", "model", "parameters", "size on disk", "training time", "val bits/byte",
                  "F1 closed", "F1 open", "ROUGE-L closed", "ROUGE-L open", "natural keyword closed",
                  "natural keyword open", "2-4 sentences", "latency p50")


def ladder_table(rows: list[dict[str, Any]]) -> str:
    cells = [[r["rung"], r["model"], human_count(r["parameters"]), human_bytes(r["size_bytes"]),
              DASH if r["training_seconds"] is None else human_seconds(r["training_seconds"]),
              format_number(r["bits_per_byte"]), format_number(r["closed_f1"]), format_number(r["open_f1"]),
              format_number(r["closed_rouge_l"]), format_number(r["open_rouge_l"]),
              format_number(r.get("natural_closed_keyword")),
              format_number(r.get("natural_open_keyword")), format_number(r["two_to_four"], 2),
              format_number(r["latency_p50_s"], suffix=" s")] for r in rows]
    return markdown_table(LADDER_COLUMNS, cells)


def _write_results(out_dir: Path, budget: str, rows: list[dict[str, Any]], table: str) -> None:
    summaries = [r["summary"] for r in rows if "summary" in r]
    if len(summaries) == len(rows):  # rows kept from results.json have no run to plot: keep the old plots
        plot_loss_curves([s for s in summaries if s.train_loss or s.val_loss], out_dir / "loss_curves.png")
        plot_size_quality(summaries, out_dir / "size_quality.png")
    data = [{k: v for k, v in r.items() if k != "summary"} for r in rows]
    with atomic_write(out_dir / "results.json") as fh:
        json.dump({"budget": budget, "budgets": BUDGETS[budget], "rungs": data}, fh, indent=2)
    questions = rows[0]["questions"] if rows else 0
    text = [f"# The ladder, budget `{budget}`", "",
            f"Made by `minillm ladder --budget {budget}`: every rung trained on the same articles and QA split "
            f"({BUDGETS[budget]['pretrain_steps']} pretraining + {BUDGETS[budget]['finetune_steps']} "
            "fine-tuning steps for the neural rungs), then answering the same seeded sample of "
            f"{questions} test questions closed book and open book (top passages from one BM25 index). "
            "Bits per byte: on the articles held out of pretraining (— where a rung has no probabilities). "
            "Natural keyword: the share of the shipped hand-written natural questions whose answer holds a key "
            "word (closed and open book). Latency: wall time of one closed-book answer. Size: the model's saved "
            "data.", "", table, "",
            "![training and validation loss](loss_curves.png)", "", "![size against quality](size_quality.png)",
            ""]
    with atomic_write(out_dir / "results.md") as fh:
        fh.write("\n".join(text))
