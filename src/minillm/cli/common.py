"""Helpers shared by the command modules: progress bars, count tables, sampling and open-book flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from minillm.core.errors import InputError

DEFAULT_ARTICLES = "data/raw/articles.jsonl"
DEFAULT_QA = "data/processed/qa_pairs.jsonl"
DEFAULT_SPLITS = "data/splits"


def progress_bar(desc: str, enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
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


def print_counts(title: str, counts: dict, skipped: dict | None = None) -> None:
    print(title)
    for key in sorted(counts):
        print(f"  {key:<14} {counts[key]:>7}")
    print(f"  {'total':<14} {sum(counts.values()):>7}")
    if skipped:
        print("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))


def skipped_note(path: str, skipped: list[int]) -> None:
    if skipped:
        head = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        print(f"{path}: skipped {len(skipped)} invalid line(s): {head}", file=sys.stderr)


def read_noted(read: Callable[..., list], path: str, skip_invalid: bool) -> list:
    """``read(path)`` (read_articles, read_qa_pairs), with --skip-invalid; the lines it skipped said on stderr."""
    skipped: list[int] = []
    items = read(path, skip_invalid=skip_invalid, skipped=skipped)
    skipped_note(path, skipped)
    return items


def sampling_from_args(args: argparse.Namespace):
    from minillm.models.generation import Sampling

    try:
        return Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                        max_sentences=args.max_sentences, seed=args.seed, no_repeat_ngram=args.no_repeat_ngram,
                        stop_repeat=args.stop_repeat)
    except ValueError as e:
        raise InputError(f"sampling: {e}") from None


def open_book_index(args: argparse.Namespace):
    """The run's retrieval index for --mode open (InputError if it has none), None for --mode closed; with
    no --mode, the index when the run has one (args.mode becomes open), else None (closed)."""
    if args.mode == "closed":
        return None
    from minillm.retrieval.index import load_index, require_index

    if args.k < 1:
        raise InputError(f"--k: must be at least 1, got {args.k}")
    if args.mode == "open":
        return require_index(args.run)
    index = load_index(args.run)
    args.mode = "closed" if index is None else "open"
    return index


def print_sources(passages: list, answer: str) -> None:
    """One line per source article, best first (a long article may have given several passages), under
    "sources:", or "searched:" when the answer says it does not know (it took nothing from them)."""
    from minillm.answering.confidence import says_not_known

    print("searched:" if says_not_known(answer) else "sources:")
    seen = set()
    for p in passages:
        if p.article_id not in seen:
            seen.add(p.article_id)
            print(f"  [{len(seen)}] {p.title} - {p.url} ({p.license})")


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    from minillm.answering.answer import ANSWER_SAMPLING as default

    p.add_argument("--max-new-tokens", type=int, default=default.max_new_tokens)
    p.add_argument("--temperature", type=float, default=default.temperature, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=default.top_k, help="0 = off")
    p.add_argument("--top-p", type=float, default=default.top_p, help="1 = off")
    p.add_argument("--repetition-penalty", type=float, default=default.repetition_penalty,
                   help=f"1 = off (default {default.repetition_penalty})")
    p.add_argument("--no-repeat-ngram", type=int, default=default.no_repeat_ngram,
                   help=f"never repeat an n-gram of the answer's tokens (default {default.no_repeat_ngram}; 0 = off)")
    p.add_argument("--stop-repeat", type=int, default=default.stop_repeat,
                   help=f"stop when the answer repeats a word n-gram (default {default.stop_repeat}; 0 = off)")
    p.add_argument("--max-sentences", type=int, default=default.max_sentences,
                   help=f"stop after this many sentences (default {default.max_sentences}; 0 = off)")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")


def add_mode_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=["closed", "open"],
                   help="open: retrieve passages from the run's index (minillm index build) and answer from "
                        "them, listing the sources; closed: the model alone. Default: open when the run has "
                        "an index, else closed")
    p.add_argument("--k", type=int, default=3, help="open: passages to retrieve (default 3)")
    add_reader_flag(p)


def add_engine_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["auto", "minillm", "onnxruntime"], default="auto",
                   help="who decodes a transformer's answers: onnxruntime (about twice as fast on a CPU; its "
                        "decode step is exported once per run into the cache), minillm (its own engine, the "
                        "model's exact numbers), or auto (default: onnxruntime where it is installed)")


def load_answering_model(run: str, reader: str | None, device: str, engine: str, command: str) -> tuple:
    """(model, tokenizer, config) of a run answering through ``engine`` and ``reader``; prints one line on
    stderr when auto had to fall back to minillm's own engine."""
    from minillm.answering.engine import with_engine
    from minillm.answering.reader import with_reader
    from minillm.training.runs import load_run

    network, tok, cfg = load_run(run, device=device)
    try:
        network, note = with_engine(network, engine)
        model = with_reader(network, tok, reader or cfg.answer.reader, run)
    except ValueError as e:
        raise InputError(f"{command}: {e}") from None
    for line in (note, getattr(model, "reader_note", None)):
        if line:
            print(f"minillm {command}: {line}", file=sys.stderr, flush=True)
    return model, tok, cfg


def add_reader_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reader", choices=["model", "pattern", "ranker"],
                   help="who answers open book: model (the network writes from the passages), ranker (the "
                        "run's trained reader picks their sentences: minillm reader train) or pattern (the "
                        "pattern rung's rules pick them); default: the run's [answer] reader (ranker for "
                        "tiny-cpu and the quickstart)")
