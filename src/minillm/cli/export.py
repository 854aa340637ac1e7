"""`minillm export arpa|hf|onnx|gguf`: a run's model in a file format other tools read."""

from __future__ import annotations

import argparse


def cmd_export_arpa(args: argparse.Namespace) -> int:
    from minillm.export.arpa import export_arpa

    ngrams = export_arpa(args.run, args.out)
    print(f"wrote {args.out} ({ngrams:,} n-grams)")
    return 0


def cmd_export_hf(args: argparse.Namespace) -> int:
    from minillm.export.hf import export_hf

    print(export_hf(args.run, args.out))
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from minillm.export.onnx import export_onnx

    print(export_onnx(args.run, args.out, int8=args.int8))
    return 0


def cmd_export_gguf(args: argparse.Namespace) -> int:
    from minillm.export.gguf import export_gguf

    print(export_gguf(args.run, args.out))
    return 0


def cmd_export_qr(args: argparse.Namespace) -> int:
    from minillm.export.qr import export_qr

    print(export_qr(args.run, args.out, args.png))
    return 0


def cmd_export_web(args: argparse.Namespace) -> int:
    from minillm.export.web import export_web

    print(export_web(args.run, args.out, dense=not args.no_dense))
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write a run's model in a format other tools read").add_subparsers(
        dest="export_command", required=True, metavar="{arpa,hf,onnx,gguf,qr,web}")
    p = export.add_parser("arpa", help="the n-gram tables of a markov or hybrid run as an ARPA file (kenlm, SRILM)")
    p.add_argument("run", help="run directory of a markov or hybrid run")
    p.add_argument("--out", required=True, help="the .arpa file to write")
    p.set_defaults(func=cmd_export_arpa)
    p = export.add_parser("hf", help="a Hugging Face folder: AutoModelForCausalLM and AutoTokenizer load it")
    p.add_argument("run", help="run directory of a neural run (transformer, attention, mlp)")
    p.add_argument("--out", required=True, help="the folder to write (new or empty)")
    p.set_defaults(func=cmd_export_hf)
    p = export.add_parser("onnx", help="an ONNX decoder with KV-cache inputs and outputs (onnxruntime)")
    p.add_argument("run", help="run directory of a neural run (transformer, attention, mlp)")
    p.add_argument("--out", required=True, help="the .onnx file to write (must not exist)")
    p.add_argument("--int8", action="store_true", help="int8 weights through onnxruntime's dynamic quantization")
    p.set_defaults(func=cmd_export_onnx)
    p = export.add_parser("gguf", help="a GGUF file for llama.cpp (Llama-shaped runs: rotary, RMSNorm, SwiGLU, "
                                       "no biases)")
    p.add_argument("run", help="run directory of a Llama-shaped transformer run")
    p.add_argument("--out", required=True, help="the .gguf file to write (must not exist)")
    p.set_defaults(func=cmd_export_gguf)
    p = export.add_parser("qr", help="a chatbot page of at most 2,953 bytes (one version-40 QR code) that answers "
                                     "from the run's articles offline")
    p.add_argument("run", help="run directory of any run (only its data is read)")
    p.add_argument("--out", required=True, help="the .html file to write (must not exist)")
    p.add_argument("--png", help="also write the page's bytes as a QR code PNG (must not exist)")
    p.set_defaults(func=cmd_export_qr)
    p = export.add_parser("web", help="a static folder that answers questions in the browser (onnxruntime-web)")
    p.add_argument("run", help="run directory of a neural run (transformer, attention, mlp)")
    p.add_argument("--out", required=True, help="the folder to write (new or empty)")
    p.add_argument("--no-dense", action="store_true",
                   help="a hybrid index searched by its words alone in the page: 87 MB lighter, and its answers "
                        "may differ from `minillm ask` where the dense part decides")
    p.set_defaults(func=cmd_export_web)
