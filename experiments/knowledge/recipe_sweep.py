"""Which pretraining recipe should the quickstart ship? Quickstart runs side by side, scored on the natural sets.

    python experiments/knowledge/recipe_sweep.py --out out/sweep [--device cuda] [--jobs 6] \
        [--index bm25] [--variant NAME='data.mix_qa=1 data.orders=3' ...]

Each variant is `minillm quickstart` with its `--set` overrides (its own data folder and run folder), then
`minillm eval` closed book on `natural`, `natural-heldout` and `natural-third`, open book with the
network reading (`--reader model`) and with the run's own reader (``reading``) on the same three sets.
Prints one JSON object: per variant its settings, training seconds and, per set and mode, the keyword
hit rate, the fact hit rate, degenerate answers, invented words (open book) and, closed book, the coverage
and precision at the run's calibrated threshold. With no --variant, the default grid below. The step
counts stay the quickstart's, so a variant costs the same CPU training time as the quickstart: what
changes is only the text it reads.

Variants run in parallel (--jobs); on a GPU machine the small model leaves the GPU mostly idle, so six at
once take about as long as one. Figures from a GPU differ from a CPU's in the last digits (other kernels),
not in which recipe wins; the chosen recipe is then measured again on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

DEFAULT_VARIANTS = {
    "plain": "",
    "named": "data.name_subject=true",
    "augmented": "data.name_subject=true data.orders=3",
    "mixed": "data.mix_qa=1",
    "augmented+mixed": "data.name_subject=true data.orders=3 data.mix_qa=1",
    "augmented+mixed2": "data.name_subject=true data.orders=3 data.mix_qa=2",
}
SETS = ("natural", "natural-heldout", "natural-third")


def run(cmd: list[str], log: Path) -> None:
    with log.open("a") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True)


def summary(path: Path) -> dict:
    data = json.loads(path.read_text())
    s, sel = data["qa"], data["qa"].get("selective") or {}
    out = {k: s.get(k) for k in ("keyword_hit_rate", "fact_hit_rate", "degenerate", "invented_words",
                                 "answers_with_invented_words", "faithfulness")}
    out.update({k: sel.get(k) for k in ("threshold", "coverage", "precision") if k in sel})
    return out


def one_variant(name: str, sets: str, args: argparse.Namespace) -> dict:
    out = Path(args.out)
    run_dir, data_dir, log = out / "runs" / name, out / "data" / name, out / f"{name}.log"
    py = [sys.executable, "-m", "minillm"]
    overrides = [x for s in shlex.split(sets) for x in ("--set", s)]
    start = time.perf_counter()
    run([*py, "quickstart", "--out", str(run_dir), "--data-dir", str(data_dir), "--index", args.index,
         "--device", args.device, "--overwrite", "--no-progress", *overrides], log)
    seconds = time.perf_counter() - start
    result = {"variant": name, "sets": sets, "quickstart_seconds": round(seconds, 1)}
    fit = run_dir / "fit.json"
    if fit.exists():
        result["fit"] = json.loads(fit.read_text())
    for split in SETS:
        # open: the network reading; reading: the run's own open-book reader (tiny-cpu's: the pattern rung)
        for label, mode, extra in (("closed", "closed", []), ("open", "open", ["--reader", "model"]),
                                   ("reading", "open", [])):
            path = out / "evals" / f"{name}.{split}.{label}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            run([*py, "eval", str(run_dir), "--split", split, "--mode", mode, *extra, "--no-progress",
                 "--device", args.device, "--out", str(path)], log)
            result[f"{split}/{label}"] = summary(path)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--index", default="bm25", choices=("auto", "hybrid", "bm25"))
    parser.add_argument("--jobs", type=int, default=len(DEFAULT_VARIANTS))
    parser.add_argument("--variant", action="append", default=[], metavar="NAME='SECTION.KEY=VALUE ...'")
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else DEFAULT_VARIANTS
    Path(args.out).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    results = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(one_variant, name, sets, args): name for name, sets in variants.items()}
        for future in as_completed(futures):  # written as each ends, in case the rest is cut off
            try:
                results.append(future.result())
            except subprocess.CalledProcessError as e:
                results.append({"variant": futures[future], "error": f"{e.cmd[3]} exited {e.returncode}"})
            results.sort(key=lambda r: list(variants).index(r["variant"]))
            report = json.dumps({"device": args.device, "index": args.index, "variants": results}, indent=1)
            (Path(args.out) / "results.json").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
