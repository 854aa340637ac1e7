"""`minillm docs build [--check]`: fill the learning path's figures blocks from the results files."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_docs_build(args: argparse.Namespace) -> int:
    from minillm.workflows.docs import build

    docs_dir = Path(args.docs) if args.docs is not None else Path(args.root) / "docs"
    changed = build(docs_dir, root=args.root, check=args.check)
    if args.check:
        print(f"{docs_dir}: every figures block agrees with the results")
    else:
        print(f"{docs_dir}: {len(changed)} page(s) rewritten" + "".join(f"\n  {p}" for p in changed))
    return 0


def add_docs(sub: argparse._SubParsersAction) -> None:
    docs = sub.add_parser("docs", help="the learning path under docs/").add_subparsers(
        dest="docs_command", required=True, metavar="{build}")
    p = docs.add_parser("build", help="fill every <!-- figures:KEY --> block of docs/ from the results files")
    p.add_argument("--root", default=".", help="the repository root: results are read from ROOT/experiments/"
                                               "{ladder,compress,extraction}/results.json (default: .)")
    p.add_argument("--docs", help="the folder of pages (default: ROOT/docs)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 2 naming the first page whose figures differ from the results")
    p.set_defaults(func=cmd_docs_build)
