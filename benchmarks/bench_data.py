"""Time fetch -> generate -> split over the whole offline corpus; print JSON.

    python benchmarks/bench_data.py [--domains six|all] [--out DIR]

Each stage runs through the same library functions the CLI calls, writing real files under a temp dir.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from minillm.core.files import write_jsonl
from minillm.data.fetch import fetch_articles
from minillm.data.generate import generate_qa_pairs
from minillm.data.records import read_articles, read_qa_pairs
from minillm.data.split import split_qa_pairs, write_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", choices=["six", "all"], default="six",
                        help="six: the default fetch (six domains); all: every bundled article")
    parser.add_argument("--out", help="keep the files here instead of a temp dir")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="minillm-bench-"))
    domains = None if args.domains == "six" else ["all"]

    t0 = time.perf_counter()
    report = fetch_articles("offline", out / "articles.jsonl", domains=domains)
    t1 = time.perf_counter()
    articles = read_articles(out / "articles.jsonl")
    pairs, _ = generate_qa_pairs(articles)
    write_jsonl(out / "qa_pairs.jsonl", pairs)
    t2 = time.perf_counter()
    split = split_qa_pairs(read_qa_pairs(out / "qa_pairs.jsonl"))
    write_split(split, out / "splits")
    t3 = time.perf_counter()

    print(json.dumps({
        "domains": args.domains,
        "articles": report.total,
        "qa_pairs": len(pairs),
        "fetch_s": round(t1 - t0, 3),
        "generate_s": round(t2 - t1, 3),
        "split_s": round(t3 - t2, 3),
        "total_s": round(t3 - t0, 3),
        "articles_per_s_fetch": round(report.total / (t1 - t0), 1),
        "articles_per_s_generate": round(len(articles) / (t2 - t1), 1),
        "pairs_per_s_generate": round(len(pairs) / (t2 - t1), 1),
        "pairs_per_s_split": round(len(pairs) / (t3 - t2), 1),
    }, indent=2))


if __name__ == "__main__":
    main()
