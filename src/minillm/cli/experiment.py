"""`minillm extraction`: the experiment on how facts get into weights (workflows/extraction.py)."""

from __future__ import annotations

import argparse

from minillm.core.checks import comma_list


def add_experiment(sub: argparse._SubParsersAction) -> None:
    from minillm.workflows.extraction import ARMS, BUDGETS

    p = sub.add_parser("extraction", help="train arms with and without knowledge augmentation and measure "
                                          "closed-book answers about articles whose questions were never trained")
    p.add_argument("--budget", choices=list(BUDGETS), default="small",
                   help="articles, steps and questions per arm (small: a few minutes an arm on 2 CPU cores)")
    p.add_argument("--out", default="experiments/extraction", help="results folder (default experiments/extraction)")
    p.add_argument("--runs", default="runs/extraction", help="where the arms' run folders go (default runs/extraction)")
    p.add_argument("--data", default="data", help="data folder; made by the offline pipeline if empty (default data)")
    p.add_argument("--arms", help="comma-separated subset of: " + ", ".join(a.label for a in ARMS))
    p.add_argument("--seed", type=int, default=0, help="article sample and split (default 0)")
    p.add_argument("--overwrite", action="store_true", help="retrain every arm instead of reusing finished ones")
    p.add_argument("--rescore", action="store_true", help="score finished arms again without training them")
    p.add_argument("--device", help="cpu (default), cuda, mps")
    p.set_defaults(func=cmd_extraction)


def cmd_extraction(args: argparse.Namespace) -> int:
    from minillm.workflows.extraction import run_extraction

    result = run_extraction(args.budget, out_dir=args.out, runs_dir=args.runs, data_dir=args.data,
                            arms=comma_list(args.arms),
                            seed=args.seed, overwrite=args.overwrite, rescore=args.rescore,
                            device=args.device,
                            log=lambda line: print(f"extraction: {line}", flush=True))
    print(result.table)
    print(f"\nwrote {result.out_dir / 'results.md'}, results.json and extraction.png in {result.seconds / 60:.1f} min")
    return 0
