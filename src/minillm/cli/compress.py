"""`minillm compress quantize`: a smaller copy of a trained run."""

from __future__ import annotations

import argparse


def cmd_quantize(args: argparse.Namespace) -> int:
    from minillm.compress.quantize import quantize_run

    report = quantize_run(args.run, args.out, bits=args.bits, group_size=args.group_size)
    group = f", groups of {report.group_size}" if report.group_size else ", per output channel"
    print(f"quantized {report.tensors} matrices to {report.bits} bits{group}: weights "
          f"{report.bytes_before / 1e6:.2f} MB -> {report.bytes_after / 1e6:.2f} MB "
          f"({report.bytes_after / report.bytes_before:.2f}x) -> {args.out}")
    return 0


def add_compress(sub: argparse._SubParsersAction) -> None:
    compress = sub.add_parser("compress", help="make a trained run smaller").add_subparsers(
        dest="compress_command", required=True, metavar="{quantize}")
    p = compress.add_parser("quantize", help="weight-only 8- or 4-bit quantization of a neural run")
    p.add_argument("run", help="run directory of a neural run (transformer, mlp, attention)")
    p.add_argument("--bits", type=int, choices=[8, 4], default=8,
                   help="8: symmetric per output channel (default); 4: symmetric per group, two weights a byte")
    p.add_argument("--group-size", type=int, help="4-bit: weights per scale (default 32)")
    p.add_argument("--out", required=True, help="the new run directory")
    p.set_defaults(func=cmd_quantize)
