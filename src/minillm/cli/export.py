"""`minillm export arpa`: a run's model in a file format other tools read."""

from __future__ import annotations

import argparse


def cmd_export_arpa(args: argparse.Namespace) -> int:
    from minillm.models.markov import export_arpa

    ngrams = export_arpa(args.run, args.out)
    print(f"wrote {args.out} ({ngrams:,} n-grams)")
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write a run's model in a format other tools read").add_subparsers(
        dest="export_command", required=True, metavar="{arpa}")
    p = export.add_parser("arpa", help="the n-gram tables of a markov or hybrid run as an ARPA file (kenlm, SRILM)")
    p.add_argument("run", help="run directory of a markov or hybrid run")
    p.add_argument("--out", required=True, help="the .arpa file to write")
    p.set_defaults(func=cmd_export_arpa)
