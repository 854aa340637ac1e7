"""One command from nothing to a model that answers questions: the whole pipeline on the bundled data.

    fetch (offline, six domains) -> generate -> split -> tokenizer -> train tiny-cpu -> retrieval index
    (BM25 + dense where the [dense] extra is installed, else BM25, said once) -> train the reader that picks
    the passages' sentences (models/ranker.py; with the [dense] extra, else the pattern rules read)
    -> calibrate (the confidence below which closed-book answers are withheld, on validation questions)
    -> sample answers (open book, with sources; two also closed book, to show what retrieval adds)

Each stage calls the same library function as its own ``minillm`` command and writes the same files, so a
learner can rerun any stage by hand afterwards. Data goes to ``data/`` and the run to ``runs/quickstart``.

Design choices:
- Nothing is skipped because its output exists: the data stages take well under a minute together, and
  rerunning them keeps the files consistent with the code. An existing run is never overwritten unless asked.
- The sample questions mix the test split (articles never fine-tuned on: the model knows them only from
  pretraining) with a few fixed questions everyone can judge. They are answered as ``minillm ask`` answers
  them by default, open book from the index just built: the first answers a newcomer sees are the best
  the run gives. The first two fixed questions are also answered closed book, side by side, as `minillm ask
  --mode closed` answers them: withheld ("I don't know this from memory.") below the calibrated confidence.
- Calibration answers ``CALIBRATION_QUESTIONS`` of the validation split (a seeded sample), about 20 s on two
  cores: enough questions for a threshold, little time.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from minillm.answering.answer import ANSWER_SAMPLING as ENGINE_ANSWER_SAMPLING
from minillm.answering.confidence import answer_from_memory, save_calibration, shown_text
from minillm.answering.open_book import answer_open
from minillm.answering.reader import load_answerer
from minillm.core.checks import comma_list
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.fetch import fetch_articles
from minillm.data.generate import generate_qa_pairs
from minillm.data.records import Article, read_articles, read_qa_pairs
from minillm.data.split import Split, split_qa_pairs, write_split
from minillm.evaluation.calibration import calibrate_run
from minillm.models.ranker import READER_FILE
from minillm.retrieval.dense import INSTALL_HINT
from minillm.retrieval.dense import available as dense_available
from minillm.retrieval.index import INDEX_DIR, Index
from minillm.tokenizer import train_tokenizer
from minillm.training.config import load_config, shipped_config
from minillm.training.ranker import train_ranker
from minillm.training.runs import TOKENIZER_FILE, TrainResult
from minillm.training.trainer import train

FIXED_QUESTIONS = ("What is the Sun?", "What is the heart?", "What is a tornado?")
ANSWER_SAMPLING = ENGINE_ANSWER_SAMPLING  # as `minillm ask` answers: 2-4 sentences fit its 128 tokens
CLOSED_BESIDE_OPEN = 2  # fixed questions also answered closed book
INDEX_KINDS = ("auto", "hybrid", "bm25")
CALIBRATION_QUESTIONS = 500  # validation questions the confidence threshold is chosen on


@dataclass
class Sample:
    question: str
    answer: str                # open book
    sources: list[str]         # titles of the articles retrieved, best first
    closed: str | None = None  # the model alone (or that it does not know), for the first CLOSED_BESIDE_OPEN


@dataclass
class QuickstartResult:
    run_dir: Path
    articles: int
    qa_pairs: int
    train: TrainResult
    samples: list[Sample]
    seconds: float


def run_quickstart(out_dir: str | Path = "runs/quickstart", data_dir: str | Path = "data",
                   config: str = "tiny-cpu", overrides: tuple[str, ...] = (), device: str | None = None,
                   overwrite: bool = False, seed: int = 0, log: Callable[[str], None] = lambda _: None,
                   progress: bool = True, index_kind: str = "auto") -> QuickstartResult:
    start = time.perf_counter()
    run_dir, data = Path(out_dir), Path(data_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise InputError(f"{run_dir}: already exists; pass --overwrite to replace it or --out to pick "
                             "another directory")
        shutil.rmtree(run_dir)
    cfg = load_config(shipped_config(config), overrides)  # a bad config fails before any work is done

    articles, split = build_data(data, seed, log, domains=cfg.data.domains, described=cfg.data.described)
    tokenizer_path = data / TOKENIZER_FILE
    tok = train_tokenizer((a.text for a in articles), kind=cfg.tokenizer.kind,
                          vocab_size=cfg.tokenizer.vocab_size)
    tok.save(tokenizer_path)
    log(f"tokenizer: {tok.kind}, {tok.vocab_size} tokens -> {tokenizer_path}")

    cfg = replace(cfg, data=replace(cfg.data, **_data_paths(data), tokenizer=str(tokenizer_path)))
    log(f"train: config {config} -> {run_dir}")
    trained = train(cfg, run_dir, device=device, progress=progress)
    losses = ", ".join(f"{k} {v:.3f}" for k, v in trained.final_losses.items())
    log(f"train: {trained.steps} steps in {trained.seconds:.0f}s ({trained.tokens_per_s:,.0f} tokens/s); {losses}")

    dense = index_is_dense(index_kind, log)
    index = Index.build(articles, dense=dense)
    index.save(run_dir / INDEX_DIR)
    kind = "BM25 + dense (all-MiniLM-L6-v2)" if dense else "BM25"
    log(f"index: {len(index.passages)} passages, {kind} -> {run_dir / INDEX_DIR} (open book: --mode open)")

    if dense and cfg.answer.reader == "ranker":
        reader = train_ranker(index, split.train, split.val, seed=seed)
        reader.save(run_dir)
        log(f"reader: trained on {reader.summary['questions']} questions' retrieved passages; the best-scored "
            f"sentence is a right one for {reader.summary['val_top1']:.0%} of {reader.summary['val_questions']} "
            f"val questions; below cosine {reader.config.min_cosine:.3f} with the question it says it does not "
            f"know -> {run_dir / READER_FILE}")
    elif cfg.answer.reader == "ranker":
        log(f"reader: the trained reader needs the [dense] extra ({INSTALL_HINT}): the pattern rules read")
    calibration, report = calibrate_run(run_dir, split="val", limit=CALIBRATION_QUESTIONS, seed=seed,
                                        device=device or "cpu")
    save_calibration(calibration, run_dir)
    reached = ("never precise enough: closed-book answers are withheld" if calibration.precision is None else
               f"answers {calibration.coverage:.0%} of them, {calibration.precision:.0%} right")
    log(f"calibrate: {calibration.questions} val questions closed book, {report['precision_all']:.0%} right; "
        f"withheld below {calibration.measure} {calibration.threshold:.2f}: {reached}")

    model, tok, _ = load_answerer(run_dir, device=device or "cpu")
    questions = list(FIXED_QUESTIONS) + [p.question for p in split.test[:: max(1, len(split.test) // 3)][:3]]
    samples = []
    for i, question in enumerate(questions):
        opened, passages = answer_open(model, tok, index, question, ANSWER_SAMPLING)
        closed = (shown_text(answer_from_memory(model, tok, question, ANSWER_SAMPLING, calibration))
                  if i < CLOSED_BESIDE_OPEN else None)
        samples.append(Sample(question, opened.text, list(dict.fromkeys(p.title for p in passages)), closed))
    pairs = len(split.train) + len(split.val) + len(split.test)
    return QuickstartResult(run_dir=run_dir, articles=len(articles), qa_pairs=pairs, train=trained,
                            samples=samples, seconds=time.perf_counter() - start)


def _data_paths(data: Path) -> dict[str, str]:
    return {"articles": str(data / "raw" / "articles.jsonl"), "train_qa": str(data / "splits" / "train.jsonl"),
            "val_qa": str(data / "splits" / "val.jsonl")}


def build_data(data: Path, seed: int = 0, log: Callable[[str], None] = lambda _: None,
               domains: str = "", described: bool = False) -> tuple[list[Article], Split]:
    """fetch (offline) -> generate -> split into ``data``: (the articles, the split). ``domains`` as a config's
    ``data.domains``: "" the six, "all" every offline summary, or comma-separated names; ``described`` as
    its ``data.described`` (generate_qa_pairs)."""
    articles_path = data / "raw" / "articles.jsonl"
    report = fetch_articles("offline", articles_path, seed=seed, domains=comma_list(domains) or None)
    log(f"fetch: {report.total} articles -> {articles_path} "
        f"({', '.join(f'{d} {n}' for d, n in sorted(report.written.items()))})")

    articles = read_articles(articles_path)
    pairs, _ = generate_qa_pairs(articles, seed=seed, described=described)
    qa_path = data / "processed" / "qa_pairs.jsonl"
    write_jsonl(qa_path, pairs)
    log(f"generate: {len(pairs)} QA pairs -> {qa_path}")

    split = split_qa_pairs(read_qa_pairs(qa_path), seed=seed)
    write_split(split, data / "splits")
    log(f"split: train {len(split.train)}, val {len(split.val)}, test {len(split.test)} -> {data / 'splits'}")
    return articles, split


def index_is_dense(kind: str, log: Callable[[str], None]) -> bool:
    """Whether the quickstart's index is hybrid: ``hybrid``, ``bm25`` or ``auto`` (hybrid where the [dense]
    extra is installed: it finds the article a question describes without naming it; else BM25, said once)."""
    if kind not in INDEX_KINDS:
        raise InputError(f"--index {kind!r}: expected one of {', '.join(INDEX_KINDS)}")
    if kind == "auto" and not dense_available():
        log(f"index: BM25 only, without the [dense] extra ({INSTALL_HINT}): open-book answers find fewer "
            "of the articles a question describes")
    return kind == "hybrid" or (kind == "auto" and dense_available())


def prepare_data(data: str | Path, tokenizer_path: str | Path, *, kind: str = "bpe", vocab_size: int = 4096,
                 seed: int = 0, log: Callable[[str], None] = lambda _: None) -> dict[str, str]:
    """The files a config's [data] section names, made only where missing: the offline pipeline's articles
    and splits (``build_data``; reused when ``data`` holds them) and a tokenizer trained on the articles
    (reused when ``tokenizer_path`` exists). Returns the [data] values: articles, train_qa, val_qa, tokenizer."""
    data, tokenizer_path = Path(data), Path(tokenizer_path)
    paths = _data_paths(data)
    test_path = data / "splits" / "test.jsonl"
    if all(Path(p).is_file() for p in paths.values()) and test_path.is_file():
        log(f"data: reusing {paths['articles']} and {data / 'splits'}")
    else:
        build_data(data, seed, log)
    if not tokenizer_path.is_file():
        tok = train_tokenizer((a.text for a in read_articles(paths["articles"])), kind=kind, vocab_size=vocab_size)
        tok.save(tokenizer_path)
        log(f"tokenizer: {tok.kind}, {tok.vocab_size} tokens -> {tokenizer_path}")
    return {**paths, "tokenizer": str(tokenizer_path)}
