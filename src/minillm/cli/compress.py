"""`minillm compress quantize|prune|distill`: a smaller copy of a trained run."""

from __future__ import annotations

import argparse

from minillm.core.errors import InputError
from minillm.training.runs import CONFIG_FILE


def cmd_quantize(args: argparse.Namespace) -> int:
    from minillm.compress.quantize import quantize_run

    report = quantize_run(args.run, args.out, bits=args.bits, group_size=args.group_size)
    group = f", groups of {report.group_size}" if report.group_size else ", per output channel"
    print(f"quantized {report.tensors} matrices to {report.bits} bits{group}: weights "
          f"{report.bytes_before / 1e6:.2f} MB -> {report.bytes_after / 1e6:.2f} MB "
          f"({report.bytes_after / report.bytes_before:.2f}x) -> {args.out}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from minillm.training.config import load_config

    config = Path(args.run) / CONFIG_FILE
    if not config.is_file():
        raise InputError(f"{args.run}: not a run directory (no config.toml)")
    neural = {"--sparsity": args.sparsity, "--structured": args.structured,
              "--finetune-steps": args.finetune_steps or None}
    ngram = {"--min-count": args.min_count, "--entropy": args.entropy}
    arch = load_config(config).arch
    if arch in ("markov", "hybrid"):
        given = [name for name, value in neural.items() if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: a {arch} run is pruned by n-gram --min-count or --entropy")
        from minillm.compress.ngram import prune_ngram_run

        print(prune_ngram_run(args.run, args.out, min_count=args.min_count, entropy=args.entropy))
        return 0
    given = [name for name, value in ngram.items() if value is not None]
    if given:
        raise InputError(f"{', '.join(given)}: only markov and hybrid runs have n-grams to prune; "
                         f"{args.run} is a {arch} run")
    from minillm.compress.prune import prune_run

    print(prune_run(args.run, args.out, sparsity=args.sparsity, structured=args.structured,
                    finetune_steps=args.finetune_steps))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from minillm.compress.distill import distill

    print(distill(args.teacher, args.config, args.out, overrides=args.set, temperature=args.temperature,
                  alpha=args.alpha, device=args.device))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from minillm.compress.sweep import sweep

    extra = {}
    for item in args.extra:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--extra: expected NAME=RUN, got {item!r}")
        extra[name] = path
    readme = sweep(args.run, args.out, limit=args.limit, recovery_steps=args.recovery_steps, extra=extra,
                   questions=args.questions, progress=lambda name: print(f"sweep: {name}", flush=True))
    print(readme.read_text(encoding="utf-8"))
    print(f"wrote {readme}, results.json and frontier.png")
    return 0


def add_compress(sub: argparse._SubParsersAction) -> None:
    compress = sub.add_parser("compress", help="make a trained run smaller").add_subparsers(
        dest="compress_command", required=True, metavar="{quantize,prune,distill,sweep}")
    p = compress.add_parser("quantize", help="weight-only 8- or 4-bit quantization of a neural run")
    p.add_argument("run", help="run directory of a neural run (transformer, mlp, attention)")
    p.add_argument("--bits", type=int, choices=[8, 4], default=8,
                   help="8: symmetric per output channel (default); 4: symmetric per group, two weights a byte")
    p.add_argument("--group-size", type=int, help="4-bit: weights per scale (default 32)")
    p.add_argument("--out", required=True, help="the new run directory")
    p.set_defaults(func=cmd_quantize)

    p = compress.add_parser("prune", help="remove weights (neural runs) or n-grams (markov, hybrid runs)")
    p.add_argument("run", help="run directory")
    p.add_argument("--sparsity", type=float, help="neural: share of weights (or of --structured units) removed, "
                                                  "in (0, 1)")
    p.add_argument("--structured", choices=["ffn", "heads", "vocab"],
                   help="neural: remove whole FFN neurons, attention heads, or vocabulary rows the run's data "
                        "never uses, giving a smaller dense model (default: unstructured magnitude pruning)")
    p.add_argument("--finetune-steps", type=int, default=0, help="neural: recovery fine-tuning steps on the "
                                                                 "run's own data (default 0)")
    p.add_argument("--min-count", type=int, help="n-gram: drop n-grams (order >= 2) seen fewer times")
    p.add_argument("--entropy", type=float, help="n-gram: drop n-grams whose removal changes the model's "
                                                 "entropy less than this (relative, as SRILM's -prune)")
    p.add_argument("--out", required=True, help="the new run directory")
    p.set_defaults(func=cmd_prune)

    p = compress.add_parser("distill", help="train a student run on a teacher run's distribution")
    p.add_argument("--teacher", required=True, help="run directory of the teacher (a neural run)")
    p.add_argument("--config", required=True, help="the student's config: a shipped name or a TOML file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one value of the student's config (repeatable)")
    p.add_argument("--temperature", type=float, default=2.0, help="softmax temperature of the KL term (default 2)")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="weight of the KL term; 1 - alpha goes to the usual loss (default 0.5)")
    p.add_argument("--device", help="cpu, cuda, mps (default: the config's)")
    p.add_argument("--out", required=True, help="the student's run directory")
    p.set_defaults(func=cmd_distill)

    p = compress.add_parser("sweep", help="every compression of a run (int8, int4, pruned, ffn50, and runs you "
                                          "add) measured on one size/quality frontier")
    p.add_argument("run", help="run directory of a neural run")
    p.add_argument("--out", required=True, help="folder for the variants, results.json, README.md, frontier.png")
    p.add_argument("--limit", type=int, default=100, help="test-split questions for F1 (default 100)")
    p.add_argument("--recovery-steps", type=int, default=200,
                   help="recovery fine-tuning steps of the ffn50 variant (default 200)")
    p.add_argument("--questions", help="JSONL of questions with keywords for the keyword hits (default: the "
                                       "shipped natural questions)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=RUN",
                   help="also measure a run made elsewhere, e.g. distilled=runs/student (repeatable)")
    p.set_defaults(func=cmd_sweep)
