"""The ``minillm`` command: parses arguments, calls library functions, prints results.

Only this package prints or exits, one module per group of commands: data.py (data, tokenizer), model.py
(train, ask, chat, quickstart, serve), evaluate.py (eval, compare, index, ladder), experiment.py
(extraction), export.py (export arpa), compress.py (compress quantize). Bad input raises ``InputError``
anywhere below; here it becomes one line on stderr and exit code 2 (argparse gives the same code for
unknown options).
"""

from __future__ import annotations

import argparse
import sys

from minillm.cli.compress import add_compress
from minillm.cli.data import add_data, add_tokenizer
from minillm.cli.docs import add_docs
from minillm.cli.evaluate import add_eval_commands, add_index, add_reader
from minillm.cli.experiment import add_experiment
from minillm.cli.export import add_export
from minillm.cli.model import add_model_commands, add_serve
from minillm.core.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    from minillm import __version__

    parser = argparse.ArgumentParser(
        prog="minillm", description="Turn reference articles into a small question-answering language model.")
    parser.add_argument("--version", action="version", version=f"minillm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data(sub)
    add_tokenizer(sub)
    add_model_commands(sub)
    add_index(sub)
    add_reader(sub)
    add_eval_commands(sub)
    add_experiment(sub)
    add_export(sub)
    add_compress(sub)
    add_docs(sub)
    add_serve(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"minillm: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output path under a file, no permission, a full disk: a line, not a traceback
        print(f"minillm: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minillm: interrupted", file=sys.stderr)
        return 130


def os_error_line(e: OSError) -> str:
    """'PATH: what went wrong' for a failed file operation."""
    if e.filename is None:
        return str(e)
    reason = e.strerror or str(e)
    if isinstance(e, FileExistsError | NotADirectoryError):
        reason = "a file is in the way of a directory the output needs"
    return f"{e.filename}: {reason}"
