"""`minillm eval|calibrate|compare|ladder` and `minillm index build|eval`."""

from __future__ import annotations

import argparse

from minillm.cli.common import (
    DEFAULT_ARTICLES,
    DEFAULT_SPLITS,
    add_reader_flag,
    add_sampling_flags,
    progress_bar,
    read_noted,
    sampling_from_args,
)
from minillm.core.checks import comma_list
from minillm.core.errors import InputError
from minillm.training.ranker import ANSWERABLE_KEEP
from minillm.training.runs import EVAL_FILE


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from minillm.evaluation.followups import evaluate_followups_run, followups_path, read_followups
    from minillm.evaluation.qa import evaluate_run, write_eval
    from minillm.evaluation.report import eval_table, followups_table

    conversations = None
    if args.followups is not None:  # read and checked before the slow part; no FILE: the shipped set
        args.followups = args.followups or str(followups_path())
        conversations = read_followups(args.followups)
    update, close = progress_bar("eval", not args.no_progress)
    try:
        result = evaluate_run(args.run, task=args.task, qa_path=args.qa, split=args.split, mode=args.mode,
                              k=args.k, text_path=args.text, max_tokens=args.max_tokens or None,
                              limit=args.limit, seed=0 if args.seed is None else args.seed,
                              sampling=sampling_from_args(args), device=args.device, progress=update,
                              reader=args.reader)
        if conversations is not None:
            result["followups"] = evaluate_followups_run(args.run, args.followups, conversations, k=args.k,
                                                         sampling=sampling_from_args(args), device=args.device,
                                                         progress=update, reader=args.reader)
    finally:
        close()
    out = write_eval(result, args.out or Path(args.run) / EVAL_FILE)
    print(eval_table(result))
    if conversations is not None:
        print("\n" + followups_table(result["followups"]))
    print(f"\nwrote {out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from minillm.answering.confidence import save_calibration
    from minillm.core.lock import output_lock
    from minillm.evaluation.calibration import calibrate_run

    update, close = progress_bar("calibrate", not args.no_progress)
    try:
        calibration, report = calibrate_run(args.run, qa_path=args.qa, split=args.split, precision=args.precision,
                                            limit=args.limit, device=args.device, progress=update)
    finally:
        close()
    with output_lock(args.run):
        path = save_calibration(calibration, args.run)
    reached = ("no threshold reaches it: every closed-book answer will be withheld"
               if calibration.precision is None else
               f"coverage {calibration.coverage:.3f}, precision among answered {calibration.precision:.3f}")
    print(f"{calibration.source}: {calibration.questions} questions answered closed book, "
          f"{report.get('precision_all', 0):.3f} right")
    for name, row in report["measures"].items():
        print(f"  {name:<20} area under the risk-coverage curve {row['aurc']:.3f}, coverage at precision "
              f"{calibration.target_precision}: {row['coverage']:.3f}")
    print(f"confidence: {calibration.measure}; threshold {calibration.threshold:.3f} for precision "
          f"{calibration.target_precision}: {reached}")
    print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from minillm.evaluation.report import compare_runs

    result = compare_runs(args.runs, args.out)
    print(result.table)
    for note in result.notes:
        print(f"- {note}")
    print(f"\nwrote {result.readme} and {', '.join(p.name for p in result.plots)}")
    return 0


def add_eval_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run: held-out text, answers to questions; writes eval.json")
    p.add_argument("run", help="run directory")
    questions = p.add_mutually_exclusive_group()
    questions.add_argument("--split", choices=["train", "val", "test", "natural", "natural-heldout",
                                               "natural-third", "unanswerable"], default="test",
                           help="the run's QA split: SPLIT.jsonl beside its data.val_qa (default test); "
                                "natural: the 90 hand-written questions shipped with minillm; natural-heldout: "
                                "36 more, written after the open-book reading was tuned on the 90; "
                                "natural-third: 66 on new subjects, written before any reader answered them; "
                                "unanswerable: 40 the articles do not answer (eval.json's withheld_rate: the "
                                "share answered with I don't know)")
    questions.add_argument("--qa", help="JSONL with question and answer (or reference), optional domain and "
                                        "keywords; for --task arc-*: ARC's format")
    p.add_argument("--task", choices=["qa", "arc-easy", "arc-challenge"], default="qa",
                   help="qa: generate and score answers (default); arc-*: multiple choice by log-likelihood")
    p.add_argument("--mode", choices=["closed", "open"], default="closed",
                   help="closed book (default) or open book with passages from the run's retrieval index")
    p.add_argument("--k", type=int, default=3, help="open book: passages retrieved per question (default 3)")
    add_reader_flag(p)
    p.add_argument("--text", help="also score a plain text file, e.g. WikiText-2's wiki.valid.raw")
    p.add_argument("--followups", nargs="?", const="", metavar="FILE",
                   help="also answer two-turn conversations with and without conversation memory (open book "
                        "when the run has an index, as chat); FILE defaults to the shipped followups.jsonl")
    p.add_argument("--max-tokens", type=int, default=50_000,
                   help="score at most this many tokens of each text (default 50000; 0 = all)")
    p.add_argument("--limit", type=int, help="evaluate a seeded sample of N questions (--seed, default 0)")
    p.add_argument("--out", help="where to write the results (default RUN/eval.json)")
    p.add_argument("--no-progress", action="store_true")
    add_sampling_flags(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("calibrate", help="choose the confidence below which closed-book answers are withheld, on "
                                         "validation questions; writes RUN/confidence.json")
    p.add_argument("run", help="run directory")
    questions = p.add_mutually_exclusive_group()
    questions.add_argument("--split", choices=["val", "test", "natural", "natural-heldout"], default="val",
                           help="the run's QA split to calibrate on (default val: articles never trained on)")
    questions.add_argument("--qa", help="JSONL with question and answer, optional keywords")
    p.add_argument("--precision", type=float, default=0.8,
                   help="the precision among answered questions to reach (default 0.8)")
    p.add_argument("--limit", type=int, help="a seeded sample of N questions")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("compare", help="compare runs: a Markdown table and plots")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="output folder, e.g. experiments/NAME")
    p.set_defaults(func=cmd_compare)

    from minillm.workflows.ladder import BUDGETS, RUNGS

    p = sub.add_parser("ladder", help="train and evaluate every rung of the architecture ladder on the same data")
    p.add_argument("--budget", choices=list(BUDGETS), default="small",
                   help="steps per neural rung and questions per evaluation (small: < 30 min on 2 CPU cores)")
    p.add_argument("--out", default="experiments/ladder", help="results folder (default experiments/ladder)")
    p.add_argument("--runs", default="runs/ladder", help="where the rungs' run directories go (default runs/ladder)")
    p.add_argument("--data", default="data", help="data folder; made by the offline pipeline if empty (default data)")
    p.add_argument("--rungs", help="comma-separated subset of: " + ", ".join(r.label for r in RUNGS))
    p.add_argument("--overwrite", action="store_true", help="retrain every rung instead of reusing finished ones")
    p.add_argument("--reevaluate", action="store_true",
                   help="evaluate finished rungs again without training them (after a change to retrieval, "
                        "decoding or the metrics)")
    p.add_argument("--device", help="cpu (default), cuda, mps")
    p.set_defaults(func=cmd_ladder)


def cmd_ladder(args: argparse.Namespace) -> int:
    from minillm.workflows.ladder import run_ladder

    result = run_ladder(args.budget, out_dir=args.out, runs_dir=args.runs, data_dir=args.data,
                        rungs=comma_list(args.rungs),
                        overwrite=args.overwrite, device=args.device, reevaluate=args.reevaluate,
                        log=lambda line: print(f"ladder: {line}", flush=True))
    print(result.table)
    print(f"\nwrote {result.out_dir / 'results.md'}, results.json and plots in {result.seconds / 60:.1f} min")
    return 0


def cmd_index_build(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from minillm.core.lock import output_lock
    from minillm.data.records import read_articles
    from minillm.retrieval.index import INDEX_DIR, Index

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    with output_lock(run_dir / INDEX_DIR):  # one writer per index
        articles = read_noted(read_articles, args.articles, args.skip_invalid)
        start = time.perf_counter()
        index = Index.build(articles, dense=args.dense, show_progress=args.dense)
        index.save(run_dir / INDEX_DIR)
    size = sum(f.stat().st_size for f in (run_dir / INDEX_DIR).iterdir())
    print(f"indexed {len(index.passages)} passages from {len(articles)} articles"
          f"{' with dense embeddings' if args.dense else ''} in "
          f"{time.perf_counter() - start:.1f}s -> {run_dir / INDEX_DIR} ({size / 1e6:.1f} MB)")
    return 0


def cmd_index_eval(args: argparse.Namespace) -> int:
    import json

    from minillm.data.records import read_qa_pairs
    from minillm.evaluation.retrieval import (
        NATURAL_SETS,
        evaluate_retrieval,
        natural_questions_path,
        natural_targets,
        qa_targets,
        read_natural_questions,
    )
    from minillm.retrieval.index import require_index

    index = require_index(args.run)
    both = args.qa is None and not args.natural  # no flag: both question sets
    reports, notes = {}, []
    if args.qa or both:
        qa = args.qa or f"{DEFAULT_SPLITS}/test.jsonl"
        reports[qa] = evaluate_retrieval(index, qa_targets(read_qa_pairs(qa)))
    if args.natural or both:
        for name, file in NATURAL_SETS.items():
            targets, missing = natural_targets(index, read_natural_questions(natural_questions_path(file)))
            reports[name] = evaluate_retrieval(index, targets)
            if missing:
                notes.append(f"{name}: {len(missing)} gold article(s) not in the index, left out: "
                             + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    if args.json:
        print(json.dumps(reports if args.misses else {name: {k: v for k, v in r.items() if k != "misses"}
                                                      for name, r in reports.items()}, indent=2))
        return 0
    for name, r in reports.items():
        print(f"{name}: {r['questions']} questions, "
              f"recall@1 {r['recall@1']:.3f}, recall@5 {r['recall@5']:.3f}")
        for domain, d in r["by_domain"].items():
            print(f"  {domain:<12} {d['questions']:>5}  "
                  f"recall@1 {d['recall@1']:.3f}  recall@5 {d['recall@5']:.3f}")
        if args.misses:
            for m in r["misses"]:
                print(f"  miss: {m['question']!r} -> {', '.join(m['top']) or 'nothing'} (gold: {m['gold']})")
    for note in notes:
        print(note)
    return 0


def cmd_reader_train(args: argparse.Namespace) -> int:
    import time

    from minillm.core.checks import check_positive_int
    from minillm.core.lock import output_lock
    from minillm.data.records import read_qa_pairs
    from minillm.retrieval.dense import INSTALL_HINT
    from minillm.retrieval.dense import available as dense_available
    from minillm.retrieval.index import require_index
    from minillm.training.ranker import train_ranker

    try:
        for name in ("questions", "epochs"):
            check_positive_int(f"--{name}", getattr(args, name))
        if not 0.0 < args.keep <= 1.0:
            raise ValueError(f"--keep must be within (0, 1], got {args.keep}")
    except ValueError as e:
        raise InputError(f"reader train: {e}") from None
    if not dense_available():
        raise InputError(f"reader train: the trained reader embeds sentences with the [dense] extra: {INSTALL_HINT}")
    index = require_index(args.run)
    train_pairs = read_noted(read_qa_pairs, args.qa, args.skip_invalid)
    val_pairs = read_noted(read_qa_pairs, args.val, args.skip_invalid) if args.val else []
    start = time.perf_counter()
    with output_lock(args.run):
        try:
            reader = train_ranker(index, train_pairs, val_pairs, questions=args.questions, epochs=args.epochs,
                                  seed=args.seed, keep=args.keep,
                                  log=lambda line: print(f"reader: {line}", flush=True))
        except ValueError as e:
            raise InputError(f"reader train: {args.qa}: {e}") from None
        path = reader.save(args.run)
    found = reader.summary
    val = (f"; validation: the best-scored sentence is a right one for {found['val_top1']:.3f} of "
           f"{found['val_questions']} questions (the first candidate: {found['val_top1_first_candidate']:.3f})"
           if "val_top1" in found else "")
    print(f"trained the reader ({reader.num_parameters():,} parameters) on {found['questions']} questions in "
          f"{time.perf_counter() - start:.1f}s -> {path}{val}; it says it does not know below cosine "
          f"{reader.config.min_cosine:.3f} (kept: {args.keep:.0%} of answerable questions)")
    return 0


def add_reader(sub: argparse._SubParsersAction) -> None:
    reader = sub.add_parser("reader", help="the trained open-book reader: picks the passages' sentences that answer")
    reader = reader.add_subparsers(dest="reader_command", required=True, metavar="{train}")
    p = reader.add_parser("train", help="train RUN's reader on the passages RUN's index retrieves for the QA "
                                        "pairs' questions (needs the [dense] extra) -> RUN/reader.safetensors")
    p.add_argument("run", help="run directory with a retrieval index (minillm index build)")
    p.add_argument("--qa", default=f"{DEFAULT_SPLITS}/train.jsonl",
                   help=f"QA pairs to learn from (default {DEFAULT_SPLITS}/train.jsonl)")
    p.add_argument("--val", default=f"{DEFAULT_SPLITS}/val.jsonl",
                   help=f"QA pairs for the validation figure; '' for none (default {DEFAULT_SPLITS}/val.jsonl)")
    p.add_argument("--questions", type=int, default=500, help="training questions drawn (default 500)")
    p.add_argument("--epochs", type=int, default=40, help="passes over them (default 40)")
    p.add_argument("--seed", type=int, default=0, help="draw and init seed (default 0)")
    p.add_argument("--keep", type=float, default=ANSWERABLE_KEEP,
                   help="share of answerable training questions the reader still answers; below the cosine "
                        f"that many reach it says it does not know (default {ANSWERABLE_KEEP}; 1: always answers)")
    p.add_argument("--skip-invalid", action="store_true", help="skip bad input lines instead of stopping")
    p.set_defaults(func=cmd_reader_train)


def add_index(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="retrieval index for open-book answers: build, evaluate")
    index = index.add_subparsers(dest="index_command", required=True, metavar="{build,eval}")
    p = index.add_parser("build", help="index article passages (BM25 + title matching) into RUN/index")
    p.add_argument("run", help="run directory")
    p.add_argument("--articles", default=DEFAULT_ARTICLES,
                   help=f"articles JSONL (default {DEFAULT_ARTICLES})")
    p.add_argument("--skip-invalid", action="store_true", help="skip bad input lines instead of stopping")
    p.add_argument("--dense", action="store_true",
                   help="also embed passages with all-MiniLM-L6-v2 and fuse with BM25 (better recall on "
                        "questions worded unlike the article; ~1 min on 2 CPU cores; needs minillm[dense])")
    p.set_defaults(func=cmd_index_build)

    p = index.add_parser("eval", help="recall@1 and @5 of the source article; default: both question sets")
    p.add_argument("run", help="run directory")
    p.add_argument("--qa", help=f"QA pairs whose article_id is the gold (e.g. {DEFAULT_SPLITS}/test.jsonl)")
    p.add_argument("--natural", action="store_true", help="the shipped hand-written natural questions (all three sets)")
    p.add_argument("--misses", action="store_true", help="list questions whose article is not ranked first")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_index_eval)
