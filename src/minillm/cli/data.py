"""`minillm data fetch|generate|split|augment` and `minillm tokenizer train`."""

from __future__ import annotations

import argparse
import sys

from minillm.cli.common import DEFAULT_ARTICLES, DEFAULT_QA, DEFAULT_SPLITS, print_counts, progress_bar, read_noted
from minillm.core.errors import InputError
from minillm.core.lock import output_lock
from minillm.training.runs import TOKENIZER_FILE


def cmd_fetch(args: argparse.Namespace) -> int:
    with output_lock(args.output):  # one writer per output
        return _fetch(args)


def _fetch(args: argparse.Namespace) -> int:
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
        update, close = progress_bar("fetch", not args.no_progress)
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
    print_counts(f"wrote {report.total} articles to {args.output}", report.written, report.skipped)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    with output_lock(args.output):  # one writer per output
        return _generate(args)


def _generate(args: argparse.Namespace) -> int:
    from minillm.core.files import write_jsonl
    from minillm.data.generate import generate_qa_pairs
    from minillm.data.records import read_articles

    if args.paraphrases < 0:
        raise InputError(f"--paraphrases: must be 0 or more, got {args.paraphrases}")
    articles = read_noted(read_articles, args.input, args.skip_invalid)
    update, close = progress_bar("generate", not args.no_progress)
    try:
        pairs, stats = generate_qa_pairs(articles, paraphrases=args.paraphrases, seed=args.seed,
                                         described=args.described, progress=update)
    finally:
        close()
    if not pairs:
        raise InputError(f"{args.input}: no question could be generated from these articles")
    write_jsonl(args.output, pairs)
    print(f"wrote {len(pairs)} QA pairs from {len(articles)} articles to {args.output}")
    print(stats.summary())
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    with output_lock(args.output_dir):  # one writer per output
        return _split(args)


def _split(args: argparse.Namespace) -> int:
    from minillm.data.records import read_qa_pairs
    from minillm.data.split import check_ratios, split_qa_pairs, write_split

    check_ratios(args.train_size, args.val_size, args.test_size)  # before reading a possibly large file
    pairs = read_noted(read_qa_pairs, args.input, args.skip_invalid)
    split = split_qa_pairs(pairs, args.train_size, args.val_size, args.test_size, args.group_by, args.seed)
    paths = write_split(split, args.output_dir)
    for name, part in split.as_dict().items():
        articles = len({p.article_id for p in part})
        print(f"{paths[name]}: {len(part)} pairs from {articles} articles ({len(part) / len(pairs):.1%})")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    with output_lock(args.output):  # one writer per output
        return _augment(args)


def _augment(args: argparse.Namespace) -> int:
    from minillm.core.files import atomic_write
    from minillm.data.augment import augment_articles
    from minillm.data.records import read_articles

    if args.orders < 0:
        raise InputError(f"--orders: must be 0 or more, got {args.orders}")
    articles = read_noted(read_articles, args.input, args.skip_invalid)
    documents = augment_articles(articles, orders=args.orders, name_subject=not args.no_names, seed=args.seed)
    with atomic_write(args.output) as fh:
        fh.write("\n\n".join(documents) + "\n")
    print(f"wrote {len(documents)} documents from {len(articles)} articles to {args.output} "
          f"(names {'kept as written' if args.no_names else 'given to every sentence'}, {args.orders} shuffled "
          "orders each)")
    return 0


def add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="fetch articles, generate QA pairs, split them").add_subparsers(
        dest="data_command", required=True, metavar="{fetch,generate,split,augment}")

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
    p.add_argument("--described", action="store_true",
                   help="also ask each first sentence the other way round: \"What is a bear species endemic to "
                        "China?\" -> the lead (subjects found from a description, closed book)")
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

    p = data.add_parser("augment", help="write the knowledge-augmented pretraining text of articles (to read it; "
                                        "training makes it itself from the [data] settings)")
    p.add_argument("--input", default=DEFAULT_ARTICLES)
    p.add_argument("--output", required=True, help="a text file: the documents, a blank line between them")
    p.add_argument("--orders", type=int, default=3, help="shuffled orders of each article besides its own "
                                                          "(default 3: the augmented arm of minillm extraction)")
    p.add_argument("--no-names", action="store_true", help="keep pronouns (data.name_subject = false)")
    p.add_argument("--seed", type=int, default=0, help="the shuffles' seed (training uses train.seed)")
    p.add_argument("--skip-invalid", action="store_true", help="skip bad input lines instead of stopping")
    p.set_defaults(func=cmd_augment)


def cmd_tokenizer_train(args: argparse.Namespace) -> int:
    with output_lock(args.output):  # one writer per output
        return _tokenizer_train(args)


def _tokenizer_train(args: argparse.Namespace) -> int:
    import time

    from minillm.data.records import read_articles
    from minillm.tokenizer import train_tokenizer

    articles = read_noted(read_articles, args.input, args.skip_invalid)
    start = time.perf_counter()
    tok = train_tokenizer((a.text for a in articles), kind=args.kind, vocab_size=args.vocab_size)
    tok.save(args.output)
    print(f"trained a {tok.kind} tokenizer with {tok.vocab_size} tokens on {len(articles)} articles "
          f"in {time.perf_counter() - start:.1f}s -> {args.output}")
    return 0


def add_tokenizer(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="train a tokenizer").add_subparsers(
        dest="tokenizer_command", required=True, metavar="{train}")
    p = tok.add_parser("train", help="train a tokenizer on article text, saved as tokenizer.json")
    p.add_argument("--input", default=DEFAULT_ARTICLES, help="articles JSONL")
    p.add_argument("--kind", choices=["bpe", "char", "word"], default="bpe")
    p.add_argument("--vocab-size", type=int, default=5000)
    p.add_argument("--output", default=TOKENIZER_FILE)
    p.add_argument("--skip-invalid", action="store_true", help="skip bad input lines instead of stopping")
    p.set_defaults(func=cmd_tokenizer_train)
