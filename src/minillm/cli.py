"""The ``minillm`` command: parses arguments, calls library functions, prints results.

Only this module prints or exits. Bad input raises ``InputError`` anywhere below; here it becomes one line on
stderr and exit code 2 (argparse gives the same code for unknown options).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from minillm.data.records import InputError

DEFAULT_ARTICLES = "data/raw/articles.jsonl"
DEFAULT_QA = "data/processed/qa_pairs.jsonl"
DEFAULT_SPLITS = "data/splits"


def _progress_bar(desc: str, enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A (callback, close) pair driving a tqdm bar from library progress calls ``(done, total)``."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="item", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def _print_counts(title: str, counts: dict, skipped: dict | None = None) -> None:
    print(title)
    for key in sorted(counts):
        print(f"  {key:<14} {counts[key]:>7}")
    print(f"  {'total':<14} {sum(counts.values()):>7}")
    if skipped:
        print("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))


def _skipped_note(path: str, skipped: list[int]) -> None:
    if skipped:
        head = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        print(f"{path}: skipped {len(skipped)} invalid line(s): {head}", file=sys.stderr)


# --- data -------------------------------------------------------------------------------------------------


def cmd_fetch(args: argparse.Namespace) -> int:
    from minillm.data import fetch

    if args.source == "wikipedia":
        from minillm.data import wikipedia

        domains = fetch.parse_domains(args.domains)
        if args.topics or args.topics_file:
            titles = list(args.topics or []) + (wikipedia.read_topics_file(args.topics_file)
                                                if args.topics_file else [])
            topics = {None: titles}
        else:
            topics = wikipedia.seed_topics(domains or list(fetch.DOMAINS))
        if args.limit is not None:
            topics = wikipedia.limit_topics(topics, args.limit, args.seed)
        update, close = _progress_bar("fetch", not args.no_progress)
        try:
            report = wikipedia.fetch_wikipedia(topics, args.output, full=args.full,
                                               client=wikipedia.WikipediaClient(), progress=update,
                                               classify=fetch.classify)
        except wikipedia.FetchError as e:
            print(f"minillm: error: {e}; rerun the same command to resume", file=sys.stderr)
            return 1
        finally:
            close()
    else:
        if args.full or args.topics or args.topics_file:
            raise InputError("--full, --topics and --topics-file apply to --source wikipedia only")
        report = fetch.fetch_articles(args.source, args.output, domains=args.domains, limit=args.limit,
                                      seed=args.seed, input_path=args.input, license=args.license)
    _print_counts(f"wrote {report.total} articles to {args.output}", report.written, report.skipped)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from minillm.data.generate import generate_qa_pairs
    from minillm.data.records import read_articles, write_jsonl

    if args.paraphrases < 0:
        raise InputError(f"--paraphrases: must be 0 or more, got {args.paraphrases}")
    skipped: list[int] = []
    articles = read_articles(args.input, skip_invalid=args.skip_invalid, skipped=skipped)
    _skipped_note(args.input, skipped)
    update, close = _progress_bar("generate", not args.no_progress)
    try:
        pairs, stats = generate_qa_pairs(articles, paraphrases=args.paraphrases, seed=args.seed,
                                         progress=update)
    finally:
        close()
    if not pairs:
        raise InputError(f"{args.input}: no question could be generated from these articles")
    write_jsonl(args.output, pairs)
    print(f"wrote {len(pairs)} QA pairs from {len(articles)} articles to {args.output}")
    print(stats.summary())
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from minillm.data.records import read_qa_pairs
    from minillm.data.split import check_ratios, split_qa_pairs, write_split

    check_ratios(args.train_size, args.val_size, args.test_size)  # before reading a possibly large file
    skipped: list[int] = []
    pairs = read_qa_pairs(args.input, skip_invalid=args.skip_invalid, skipped=skipped)
    _skipped_note(args.input, skipped)
    split = split_qa_pairs(pairs, args.train_size, args.val_size, args.test_size, args.group_by, args.seed)
    paths = write_split(split, args.output_dir)
    for name, part in split.as_dict().items():
        articles = len({p.article_id for p in part})
        print(f"{paths[name]}: {len(part)} pairs from {articles} articles ({len(part) / len(pairs):.1%})")
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="fetch articles, generate QA pairs, split them").add_subparsers(
        dest="data_command", required=True, metavar="{fetch,generate,split}")

    p = data.add_parser("fetch", help="fetch articles into a JSON Lines file")
    p.add_argument("--source", choices=["offline", "wikipedia", "local"], default="offline",
                   help="offline: bundled Wikipedia summaries (default); wikipedia: live API; local: files")
    p.add_argument("--input", help="for --source local: a folder of .txt/.md files or a JSONL file")
    p.add_argument("--output", default=DEFAULT_ARTICLES, help=f"output JSONL (default {DEFAULT_ARTICLES})")
    p.add_argument("--domains", nargs="+", metavar="DOMAIN",
                   help="astronomy anatomy animals geography chemistry weather (default: all six), or 'all'")
    p.add_argument("--limit", type=int, help="keep at most N articles (a seeded sample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true", help="wikipedia: full plain-text extract, not the intro")
    p.add_argument("--topics", nargs="+", metavar="TITLE", help="wikipedia: titles to fetch instead of seeds")
    p.add_argument("--topics-file", help="wikipedia: file of titles, one per line")
    p.add_argument("--license", default="unknown", help="local: license recorded with each article")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_fetch)

    p = data.add_parser("generate", help="generate question/answer pairs from articles")
    p.add_argument("--input", default=DEFAULT_ARTICLES)
    p.add_argument("--output", default=DEFAULT_QA)
    p.add_argument("--paraphrases", type=int, default=0, help="K extra phrasings per question (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-invalid", action="store_true", help="skip bad input lines instead of stopping")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_generate)

    p = data.add_parser("split", help="split QA pairs into train/val/test")
    p.add_argument("--input", default=DEFAULT_QA)
    p.add_argument("--output-dir", default=DEFAULT_SPLITS)
    p.add_argument("--train-size", type=float, default=0.8)
    p.add_argument("--val-size", type=float, default=0.1)
    p.add_argument("--test-size", type=float, default=0.1)
    p.add_argument("--group-by", choices=["article", "none"], default="article",
                   help="article: all pairs of an article in one split (default); none: split pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-invalid", action="store_true", help="skip bad input lines instead of stopping")
    p.set_defaults(func=cmd_split)


# --- tokenizer --------------------------------------------------------------------------------------------


def cmd_tokenizer_train(args: argparse.Namespace) -> int:
    import time

    from minillm.data.records import read_articles
    from minillm.tokenizer import train_tokenizer

    skipped: list[int] = []
    articles = read_articles(args.input, skip_invalid=args.skip_invalid, skipped=skipped)
    _skipped_note(args.input, skipped)
    start = time.perf_counter()
    tok = train_tokenizer((a.text for a in articles), kind=args.kind, vocab_size=args.vocab_size)
    tok.save(args.output)
    print(f"trained a {tok.kind} tokenizer with {tok.vocab_size} tokens on {len(articles)} articles "
          f"in {time.perf_counter() - start:.1f}s -> {args.output}")
    return 0


def _add_tokenizer(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="train a tokenizer").add_subparsers(
        dest="tokenizer_command", required=True, metavar="{train}")
    p = tok.add_parser("train", help="train a tokenizer on article text, saved as tokenizer.json")
    p.add_argument("--input", default=DEFAULT_ARTICLES, help="articles JSONL")
    p.add_argument("--kind", choices=["bpe", "char", "word"], default="bpe")
    p.add_argument("--vocab-size", type=int, default=5000)
    p.add_argument("--output", default="tokenizer.json")
    p.add_argument("--skip-invalid", action="store_true", help="skip bad input lines instead of stopping")
    p.set_defaults(func=cmd_tokenizer_train)


# --- train, ask, chat, quickstart ------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from minillm.config import load_config, shipped_config
    from minillm.train import TrainingDiverged, train

    if not args.resume and not args.config:
        raise InputError("train: give --config NAME|FILE for a new run, or --resume")
    cfg = load_config(shipped_config(args.config), args.set) if args.config else None
    try:
        result = train(cfg, args.out, resume=args.resume, device=args.device, progress=not args.no_progress)
    except TrainingDiverged as e:
        print(f"minillm: error: {e}", file=sys.stderr)
        return 1
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.final_losses.items())
    print(f"trained {result.steps} steps in {result.seconds:.1f}s ({result.tokens_per_s:,.0f} tokens/s) "
          f"-> {result.out_dir}; {losses}")
    return 0


def _sampling(args: argparse.Namespace):
    from minillm.engine import Sampling

    try:
        return Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                        max_sentences=args.max_sentences, seed=args.seed)
    except ValueError as e:
        raise InputError(f"sampling: {e}") from None


def _open_book_index(args: argparse.Namespace):
    """The run's retrieval index for --mode open (InputError if it has none), None for --mode closed."""
    if args.mode == "closed":
        return None
    from minillm.retrieval import require_index

    if args.k < 1:
        raise InputError(f"--k: must be at least 1, got {args.k}")
    return require_index(args.run)


def _print_sources(passages: list) -> None:
    """One line per source article, best first (a long article may have given several passages)."""
    seen = set()
    for p in passages:
        if p.article_id not in seen:
            seen.add(p.article_id)
            print(f"  [{len(seen)}] {p.title} - {p.url} ({p.license})")


def cmd_ask(args: argparse.Namespace) -> int:
    import json

    from minillm.engine import answer
    from minillm.train import load_run

    if not args.question.strip():
        raise InputError("ask: the question is empty")
    sampling = _sampling(args)
    index = _open_book_index(args)
    model, tok, _ = load_run(args.run, device=args.device)
    if index is None:
        result, passages = answer(model, tok, args.question, sampling), []
    else:
        from minillm.retrieval import answer_open

        result, passages = answer_open(model, tok, index, args.question, sampling, k=args.k)
    if args.json:
        from minillm.retrieval import passage_source

        print(json.dumps({"question": args.question, "answer": result.text, "run": args.run,
                          "mode": args.mode, "sources": [passage_source(p) for p in passages],
                          "prompt_tokens": result.prompt_tokens, "new_tokens": result.new_tokens,
                          "seconds": round(result.seconds, 4),
                          "tokens_per_second": round(result.tokens_per_second, 1)}, ensure_ascii=False))
    else:
        print(result.text)
        if passages:
            print("sources:")
            _print_sources(passages)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from minillm.engine import stream_answer
    from minillm.train import load_run

    sampling = _sampling(args)
    index = _open_book_index(args)
    model, tok, _ = load_run(args.run, device=args.device)
    print(f"minillm chat: {args.run} ({model.num_parameters() / 1e6:.2f}M parameters, {args.mode} book). "
          "Ask a question; an empty line or Ctrl-D ends.")
    while True:
        try:
            question = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        passages, context = [], None
        if index is not None:
            from minillm.retrieval import passages_context

            passages = index.search(question, args.k)
            context = passages_context(passages) or None
        try:
            for piece in stream_answer(model, tok, question, sampling, context=context):
                print(piece, end="", flush=True)
        except KeyboardInterrupt:
            pass  # Ctrl-C stops this answer, not the chat
        print()
        if passages:
            print("sources:")
            _print_sources(passages)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from minillm.quickstart import run_quickstart

    result = run_quickstart(args.out, args.data_dir, config=args.config, overrides=tuple(args.set),
                            device=args.device, overwrite=args.overwrite,
                            log=lambda line: print(line, flush=True), progress=not args.no_progress)
    print(f"\nsample answers from {result.run_dir}:")
    for question, text in result.samples:
        print(f"Q: {question}\nA: {text}\n")
    print(f"done in {result.seconds:.0f}s. Next: minillm ask {result.run_dir} \"What is the Moon?\"  or  "
          f"minillm chat {result.run_dir}")
    return 0


def _add_sampling_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    p.add_argument("--repetition-penalty", type=float, default=1.2, help="1 = off (default 1.2)")
    p.add_argument("--max-sentences", type=int, default=4, help="stop after this many sentences (0 = off)")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")


def _add_mode_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=["closed", "open"], default="closed",
                   help="closed: the model alone (default); open: retrieve passages from the run's index "
                        "(minillm index build) and answer from them, listing the sources")
    p.add_argument("--k", type=int, default=3, help="open: passages to retrieve (default 3)")


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model: pretrain on articles, then fine-tune on QA pairs")
    p.add_argument("--config", help="a shipped config name (tiny-cpu, seed-3m) or a TOML file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable)")
    p.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", help="auto (default from the config), cpu, cuda, mps")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ask", help="answer one question with a trained run")
    p.add_argument("run", help="run directory")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="machine-readable output with timing")
    _add_mode_flags(p)
    _add_sampling_flags(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="ask questions interactively; answers stream token by token")
    p.add_argument("run", help="run directory")
    _add_mode_flags(p)
    _add_sampling_flags(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("quickstart", help="fetch, generate, split, tokenize, train tiny-cpu, evaluate, answer")
    p.add_argument("--out", default="runs/quickstart", help="run directory (default runs/quickstart)")
    p.add_argument("--data-dir", default="data", help="where the data files go (default data/)")
    p.add_argument("--config", default="tiny-cpu", help="a shipped config name or a TOML file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--device", help="auto (default), cpu, cuda, mps")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_quickstart)


# --- serve ----------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from minillm.serve import create_app, is_loopback
    except ImportError as e:
        raise InputError(f"serve: the package '{e.name}' is missing; pip install 'minillm[serve]'") from None
    import torch

    if args.threads < 1:
        raise InputError(f"serve: --threads must be at least 1, got {args.threads}")
    app = create_app(args.run, device=args.device, host=args.host)
    torch.set_num_threads(args.threads)  # after loading, so a bad run changes nothing in the process
    url = f"http://{f'[{args.host}]' if ':' in args.host else args.host}:{args.port}"
    print(f"minillm serve: {args.run} at {url}/ (chat page) and {url}/v1 (OpenAI API); Ctrl-C stops",
          flush=True)
    if not is_loopback(args.host):
        print("minillm serve: warning: not a loopback address and there is no authentication: anyone who "
              "can reach this port can use the model", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    import os

    p = sub.add_parser("serve", help="serve a run: OpenAI-compatible HTTP API and a chat page")
    p.add_argument("run", help="run directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    # one core is left to the event loop: with both cores of a busy 2-core machine in torch's pool, the tiny
    # test model answered 9x slower for one client and 100x slower for eight (benchmarks/bench_serve.py)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="torch CPU threads for generation (default: the number of cores minus one)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.set_defaults(func=cmd_serve)


# --- eval, compare ----------------------------------------------------------------------------------------


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from minillm.evaluate import evaluate_run, write_eval
    from minillm.report import eval_table

    update, close = _progress_bar("eval", not args.no_progress)
    try:
        result = evaluate_run(args.run, task=args.task, qa_path=args.qa, split=args.split, mode=args.mode,
                              k=args.k, text_path=args.text, max_tokens=args.max_tokens or None,
                              limit=args.limit, seed=0 if args.seed is None else args.seed,
                              sampling=_sampling(args), device=args.device, progress=update)
    finally:
        close()
    out = write_eval(result, args.out or Path(args.run) / "eval.json")
    print(eval_table(result))
    print(f"\nwrote {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from minillm.report import compare_runs

    result = compare_runs(args.runs, args.out)
    print(result.table)
    for note in result.notes:
        print(f"- {note}")
    print(f"\nwrote {result.readme} and {', '.join(p.name for p in result.plots)}")
    return 0


def _add_eval_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run: held-out text, answers to questions; writes eval.json")
    p.add_argument("run", help="run directory")
    questions = p.add_mutually_exclusive_group()
    questions.add_argument("--split", choices=["train", "val", "test", "natural"], default="test",
                           help="the run's QA split: SPLIT.jsonl beside its data.val_qa (default test); "
                                "natural: the hand-written questions shipped with minillm")
    questions.add_argument("--qa", help="JSONL with question and answer (or reference), optional domain and "
                                        "keywords; for --task arc-*: ARC's format")
    p.add_argument("--task", choices=["qa", "arc-easy", "arc-challenge"], default="qa",
                   help="qa: generate and score answers (default); arc-*: multiple choice by log-likelihood")
    p.add_argument("--mode", choices=["closed", "open"], default="closed",
                   help="closed book (default) or open book with passages from the run's retrieval index")
    p.add_argument("--k", type=int, default=3, help="open book: passages retrieved per question (default 3)")
    p.add_argument("--text", help="also score a plain text file, e.g. WikiText-2's wiki.valid.raw")
    p.add_argument("--max-tokens", type=int, default=50_000,
                   help="score at most this many tokens of each text (default 50000; 0 = all)")
    p.add_argument("--limit", type=int, help="evaluate a seeded sample of N questions (--seed, default 0)")
    p.add_argument("--out", help="where to write the results (default RUN/eval.json)")
    p.add_argument("--no-progress", action="store_true")
    _add_sampling_flags(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", help="compare runs: a Markdown table and plots")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="output folder, e.g. experiments/NAME")
    p.set_defaults(func=cmd_compare)


# --- index ------------------------------------------------------------------------------------------------


def cmd_index_build(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from minillm.data.records import read_articles
    from minillm.retrieval import INDEX_DIR, Index

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    skipped: list[int] = []
    articles = read_articles(args.articles, skip_invalid=args.skip_invalid, skipped=skipped)
    _skipped_note(args.articles, skipped)
    start = time.perf_counter()
    index = Index.build(articles, dense=args.dense, show_progress=args.dense)
    index.save(run_dir / INDEX_DIR)
    size = sum(f.stat().st_size for f in (run_dir / INDEX_DIR).iterdir())
    print(f"indexed {len(index.passages)} passages from {len(articles)} articles"
          f"{' with dense embeddings' if args.dense else ''} in "
          f"{time.perf_counter() - start:.1f}s -> {run_dir / INDEX_DIR} ({size / 1e6:.1f} MB)")
    return 0


def cmd_index_eval(args: argparse.Namespace) -> int:
    import json

    from minillm.data.records import read_qa_pairs
    from minillm.retrieval import require_index
    from minillm.retrieval_eval import evaluate_retrieval, natural_targets, qa_targets, read_natural_questions

    index = require_index(args.run)
    both = args.qa is None and not args.natural  # no flag: both question sets
    reports, notes = {}, []
    if args.qa or both:
        qa = args.qa or f"{DEFAULT_SPLITS}/test.jsonl"
        reports[qa] = evaluate_retrieval(index, qa_targets(read_qa_pairs(qa)))
    if args.natural or both:
        targets, missing = natural_targets(index, read_natural_questions())
        reports["natural questions"] = evaluate_retrieval(index, targets)
        if missing:
            notes.append(f"natural questions: {len(missing)} gold article(s) not in the index, left out: "
                         + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    if args.json:
        print(json.dumps(reports if args.misses else {name: {k: v for k, v in r.items() if k != "misses"}
                                                      for name, r in reports.items()}, indent=2))
        return 0
    for name, r in reports.items():
        print(f"{name}: {r['questions']} questions, "
              f"recall@1 {r['recall@1']:.3f}, recall@5 {r['recall@5']:.3f}")
        for domain, d in r["by_domain"].items():
            print(f"  {domain:<12} {d['questions']:>5}  "
                  f"recall@1 {d['recall@1']:.3f}  recall@5 {d['recall@5']:.3f}")
        if args.misses:
            for m in r["misses"]:
                print(f"  miss: {m['question']!r} -> {', '.join(m['top']) or 'nothing'} (gold: {m['gold']})")
    for note in notes:
        print(note)
    return 0


def _add_index(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="retrieval index for open-book answers: build, evaluate")
    index = index.add_subparsers(dest="index_command", required=True, metavar="{build,eval}")
    p = index.add_parser("build", help="index article passages (BM25 + title matching) into RUN/index")
    p.add_argument("run", help="run directory")
    p.add_argument("--articles", default=DEFAULT_ARTICLES,
                   help=f"articles JSONL (default {DEFAULT_ARTICLES})")
    p.add_argument("--skip-invalid", action="store_true", help="skip bad input lines instead of stopping")
    p.add_argument("--dense", action="store_true",
                   help="also embed passages with all-MiniLM-L6-v2 and fuse with BM25 (better recall on "
                        "questions worded unlike the article; ~1 min on 2 CPU cores; needs minillm[dense])")
    p.set_defaults(func=cmd_index_build)

    p = index.add_parser("eval", help="recall@1 and @5 of the source article; default: both question sets")
    p.add_argument("run", help="run directory")
    p.add_argument("--qa", help=f"QA pairs whose article_id is the gold (e.g. {DEFAULT_SPLITS}/test.jsonl)")
    p.add_argument("--natural", action="store_true", help="the shipped hand-written natural questions")
    p.add_argument("--misses", action="store_true", help="list questions whose article is not ranked first")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_index_eval)


# --- entry point ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from minillm import __version__

    parser = argparse.ArgumentParser(
        prog="minillm", description="Turn reference articles into a small question-answering language model.")
    parser.add_argument("--version", action="version", version=f"minillm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data(sub)
    _add_tokenizer(sub)
    _add_model_commands(sub)
    _add_index(sub)
    _add_eval_commands(sub)
    _add_serve(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"minillm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minillm: interrupted", file=sys.stderr)
        return 130
