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


def cmd_ask(args: argparse.Namespace) -> int:
    import json

    from minillm.engine import answer
    from minillm.train import load_run

    if not args.question.strip():
        raise InputError("ask: the question is empty")
    sampling = _sampling(args)
    model, tok, _ = load_run(args.run, device=args.device)
    result = answer(model, tok, args.question, sampling)
    if args.json:
        print(json.dumps({"question": args.question, "answer": result.text, "run": args.run,
                          "prompt_tokens": result.prompt_tokens, "new_tokens": result.new_tokens,
                          "seconds": round(result.seconds, 4),
                          "tokens_per_second": round(result.tokens_per_second, 1)}, ensure_ascii=False))
    else:
        print(result.text)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from minillm.engine import stream_answer
    from minillm.train import load_run

    sampling = _sampling(args)
    model, tok, _ = load_run(args.run, device=args.device)
    print(f"minillm chat: {args.run} ({model.num_parameters() / 1e6:.2f}M parameters). "
          "Ask a question; an empty line or Ctrl-D ends.")
    while True:
        try:
            question = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        try:
            for piece in stream_answer(model, tok, question, sampling):
                print(piece, end="", flush=True)
        except KeyboardInterrupt:
            pass  # Ctrl-C stops this answer, not the chat
        print()


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
    _add_sampling_flags(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="ask questions interactively; answers stream token by token")
    p.add_argument("run", help="run directory")
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
