"""`minillm train|ask|chat|quickstart|serve`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from minillm.cli.common import (
    add_engine_flag,
    add_mode_flags,
    add_reader_flag,
    add_sampling_flags,
    load_answering_model,
    open_book_index,
    print_sources,
    sampling_from_args,
)
from minillm.core.errors import InputError


def cmd_train(args: argparse.Namespace) -> int:
    from minillm.training.config import load_config, shipped_config
    from minillm.training.runs import TrainingDiverged
    from minillm.training.trainer import train

    if not args.resume and not args.config:
        raise InputError("train: give --config NAME|FILE for a new run, or --resume")
    cfg = load_config(shipped_config(args.config), args.set) if args.config else None
    with _run_lock(args.out) as lock:  # one writer per run directory
        if args.nproc != 1:
            return _train_with_torchrun(args, cfg, lock)
        try:
            result = train(cfg, args.out, resume=args.resume, device=args.device, progress=not args.no_progress)
        except TrainingDiverged as e:
            print(f"minillm: error: {e}", file=sys.stderr)
            return 1
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports for all
        losses = ", ".join(f"{k} {v:.4f}" for k, v in result.final_losses.items())
        print(f"trained {result.steps} steps in {result.seconds:.1f}s ({result.tokens_per_s:,.0f} tokens/s) "
              f"-> {result.out_dir}; {losses}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _exit_worker()
    return 0


def _exit_worker() -> None:
    """End a torchrun worker whose run is complete (every file written, the process group destroyed) without
    the interpreter's teardown: there, gloo's C++ threads now and then abort a finished worker ("terminate
    called without an active exception", seen once in CI on a two-process CPU run), and torchrun then fails
    the whole job."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run_lock(out: str):
    """The run directory's lock (minillm/lock.py), taken by rank 0 alone under torchrun: the others write nothing."""
    from contextlib import nullcontext

    from minillm.core.lock import output_lock

    return output_lock(out) if os.environ.get("RANK", "0") == "0" else nullcontext()


def _train_with_torchrun(args: argparse.Namespace, cfg, lock) -> int:
    """``train --nproc N``: check what can be checked here, then run this command in N DDP processes, which
    work under the run's ``lock`` this process holds."""
    import subprocess

    from minillm.training.distributed import check_processes

    check_processes(cfg, args.out, args.nproc, resume=args.resume, device=args.device)
    argv = ["--out", args.out, *(["--config", args.config] if args.config else []),
            *[arg for item in args.set for arg in ("--set", item)], *(["--resume"] if args.resume else []),
            *(["--device", args.device] if args.device else []), *(["--no-progress"] if args.no_progress else [])]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
               "-m", "minillm", "train", *argv]
    from minillm.core.lock import held_env

    with subprocess.Popen(command, env=held_env(lock)) as torchrun:
        try:
            return torchrun.wait()
        except KeyboardInterrupt:  # torchrun and its processes got the Ctrl-C too: rank 0 saves a checkpoint
            torchrun.wait()
            raise


def cmd_ask(args: argparse.Namespace) -> int:
    import json


    if not args.question.strip():
        raise InputError("ask: the question is empty")
    sampling = sampling_from_args(args)
    index = open_book_index(args)
    model, tok, cfg = load_answering_model(args.run, args.reader, args.device, args.engine, "ask")
    recalled = None
    if index is None:  # closed book: withheld below the run's confidence threshold (minillm calibrate)
        recalled = _recall(args, _memory(args.run), model, tok, args.question, sampling)
        result, passages = recalled.fallback or recalled.answer, list(recalled.passages)
    else:
        from minillm.answering.open_book import answer_open

        result, passages = answer_open(model, tok, index, args.question, sampling, k=args.k)
    text = result.text if recalled is None else _shown(recalled)
    if args.json:
        from minillm.answering.attribution import attribution, passage_source
        from minillm.answering.reader import reader_info

        used = attribution(result.text, passages) if passages else {}
        memory = {} if recalled is None else {
            "confidence": recalled.confidence, "known_from_memory": recalled.known,
            "answered_from": recalled.answered_from}
        print(json.dumps({"question": args.question, "answer": text, "run": args.run,
                          "mode": args.mode, **reader_info(model), **memory,
                          "sources": [passage_source(p) for p in passages], **used,
                          "prompt_tokens": result.prompt_tokens, "new_tokens": result.new_tokens,
                          "seconds": round(result.seconds, 4),
                          "tokens_per_second": round(result.tokens_per_second, 1)}, ensure_ascii=False))
    else:
        print(text)
        if passages:
            print_sources(passages, text)
    return 0


def _memory(run: str) -> tuple:
    """(the run's calibration or None, its index for answering open book what memory does not hold, or None)."""
    from minillm.answering.confidence import load_calibration
    from minillm.retrieval.index import load_index

    calibration = load_calibration(run)
    return calibration, load_index(run) if calibration is not None else None


def _recall(args: argparse.Namespace, memory: tuple, model, tok, question: str, sampling):
    """A closed-book answer with the run's confidence; withheld below its threshold, then answered open book
    when the run has an index."""
    from minillm.answering.confidence import answer_from_memory

    return answer_from_memory(model, tok, question, sampling, *memory, k=max(1, args.k))


def _shown(recalled) -> str:
    from minillm.answering.confidence import shown_text

    return shown_text(recalled)


def cmd_chat(args: argparse.Namespace) -> int:
    from minillm.answering.answer import stream_answer
    from minillm.answering.conversation import Turn, resolve
    from minillm.retrieval.index import retrieve

    sampling = sampling_from_args(args)
    index = open_book_index(args)
    model, tok, _ = load_answering_model(args.run, args.reader, args.device, args.engine, "chat")
    memory = _memory(args.run) if index is None else (None, None)
    print(f"minillm chat: {args.run} ({model.num_parameters() / 1e6:.2f}M parameters, {args.mode} book). "
          "Ask a question; an empty line or Ctrl-D ends.")
    turns: list[Turn] = []  # follow-ups ("How hot is it there?") are resolved against these
    while True:
        try:
            question = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        resolved = resolve(turns, question)
        if resolved.subject is not None:
            print(f"(about: {resolved.subject})")
        if memory[0] is not None:  # closed book, withheld below the run's threshold
            recalled = _recall(args, memory, model, tok, resolved.question, sampling)
            passages, pieces = list(recalled.passages), [_shown(recalled)]
            print(pieces[0])
        else:
            passages, context = retrieve(index, resolved.question, args.k, model)
            pieces = []
            try:
                for piece in stream_answer(model, tok, resolved.question, sampling, context=context,
                                          vocabulary=None if index is None else index.vocabulary,
                                          open_book=index is not None):
                    pieces.append(piece)
                    print(piece, end="", flush=True)
            except KeyboardInterrupt:
                pass  # Ctrl-C stops this answer, not the chat
            print()
        turns.append(Turn(question, "".join(pieces), tuple(p.title for p in passages)))
        if passages:
            print_sources(passages, "".join(pieces))


def cmd_quickstart(args: argparse.Namespace) -> int:
    from minillm.workflows.quickstart import run_quickstart

    result = run_quickstart(args.out, args.data_dir, config=args.config, overrides=tuple(args.set),
                            device=args.device, overwrite=args.overwrite, index_kind=args.index,
                            log=lambda line: print(line, flush=True), progress=not args.no_progress)
    print(f"\nsample answers from {result.run_dir} (open book: from the passages its index retrieves):")
    for sample in result.samples:
        print(f"Q: {sample.question}")
        if sample.closed is not None:
            print(f"A, closed book (the model alone): {sample.closed}")
        print(f"A{', open book' if sample.closed is not None else ''}: {sample.answer}")
        print(f"   sources: {'; '.join(sample.sources)}\n")
    print(f"done in {result.seconds:.0f}s. Next: minillm ask {result.run_dir} \"What is the Moon?\" [--mode closed]  "
          f"or  minillm chat {result.run_dir}  or  minillm eval {result.run_dir} --mode open")
    return 0


def add_model_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model: pretrain on articles, then fine-tune on QA pairs")
    p.add_argument("--config", help="a shipped config name (tiny-cpu, seed-3m) or a TOML file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable)")
    p.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", help="auto (default from the config), cpu, cuda, mps")
    p.add_argument("--nproc", type=int, default=1,
                   help="train in N processes, one per GPU (DDP through torchrun); default 1")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ask", help="answer one question with a trained run")
    p.add_argument("run", help="run directory")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="machine-readable output with timing")
    add_mode_flags(p)
    add_engine_flag(p)
    add_sampling_flags(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="ask questions interactively; answers stream token by token")
    p.add_argument("run", help="run directory")
    add_mode_flags(p)
    add_engine_flag(p)
    add_sampling_flags(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("quickstart", help="fetch, generate, split, tokenize, train tiny-cpu, evaluate, answer")
    p.add_argument("--out", default="runs/quickstart", help="run directory (default runs/quickstart)")
    p.add_argument("--data-dir", default="data", help="where the data files go (default data/)")
    p.add_argument("--config", default="tiny-cpu", help="a shipped config name or a TOML file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--device", help="auto (default), cpu, cuda, mps")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--index", choices=("auto", "hybrid", "bm25"), default="auto",
                   help="retrieval index: hybrid (BM25 + dense, needs the [dense] extra), bm25, or auto "
                        "(default: hybrid where the extra is installed, else bm25, said once)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_quickstart)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from minillm.serve.app import WORKER_ENV, bind_warning, create_app, resolve_api_key
    except ImportError as e:
        raise InputError(f"serve: the package '{e.name}' is missing; pip install 'minillm[serve]'") from None
    import secrets

    import torch

    for flag, value in (("--threads", args.threads), ("--workers", args.workers)):
        if value < 1:
            raise InputError(f"serve: {flag} must be at least 1, got {value}")
    try:
        api_key = resolve_api_key(args.api_key, os.environ)
        kwargs = {"device": args.device, "host": args.host, "api_key": api_key, "cors_origins": args.cors_origin,
                  "web_dir": args.web, "reader": args.reader, "max_batch": args.max_batch, "engine": args.engine,
                  "threads": args.threads, "session": secrets.token_urlsafe(32)}
        app = create_app(args.run, **kwargs)  # with --workers too: a broken run fails here, before any process
    except ValueError as e:
        raise InputError(f"serve: {e}") from None
    if app.state.engine_note:
        print(f"minillm serve: {app.state.engine_note}", file=sys.stderr, flush=True)
    torch.set_num_threads(args.threads)  # after loading, so a bad run changes nothing in the process
    url = f"http://{f'[{args.host}]' if ':' in args.host else args.host}:{args.port}"
    print(f"minillm serve: {args.run} at {url}/ (chat page) and {url}/v1 (OpenAI API); Ctrl-C stops",
          flush=True)
    warning = bind_warning(args.host, api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
        return 0
    app.state.close()  # each worker process makes its own (serve.app.app_for_worker), with the same arguments
    del app
    os.environ[WORKER_ENV] = json.dumps({"run_dir": str(args.run), **kwargs})
    uvicorn.run("minillm.serve.app:app_for_worker", factory=True, workers=args.workers, host=args.host,
                port=args.port, log_level=args.log_level)
    return 0


def add_serve(sub: argparse._SubParsersAction) -> None:
    import os

    p = sub.add_parser("serve", help="serve a run: OpenAI-compatible HTTP API and a chat page")
    p.add_argument("run", help="run directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    add_reader_flag(p)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    # one core is left to the event loop: with both cores of a busy 2-core machine in torch's pool, the tiny
    # test model answered 9x slower for one client and 100x slower for eight (benchmarks/bench_serve.py)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="torch CPU threads for generation (default: the number of cores minus one)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes, each with the model, the index and its own batch (default 1). Python "
                        "runs one thread at a time in a process: on two cores, --workers 2 answered 1.25x (hybrid "
                        "index) to 1.7x (BM25) the requests a second of one process (experiments/README.md)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="answers a transformer decodes together, one forward a step (default 32; 1: one at a time)")
    p.add_argument("--engine", choices=["auto", "minillm", "onnxruntime"], default="auto",
                   help="who decodes a transformer's answers: auto (default: minillm's engine, batched, when "
                        "--max-batch > 1; else onnxruntime where it is installed), minillm, or onnxruntime "
                        "(one answer at a time, about twice minillm's tokens/s at batch 1)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on the API (the page asks for it "
                                     "once); default $MINILLM_API_KEY, which, unlike a flag, other users' ps "
                                     "cannot see")
    p.add_argument("--web", metavar="SITE", help="also serve a folder made by `minillm export web` at /web/: the "
                                                 "page's choice to answer in the browser")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages of ORIGIN (e.g. https://example.org) call the API; repeatable; default none")
    p.set_defaults(func=cmd_serve)
