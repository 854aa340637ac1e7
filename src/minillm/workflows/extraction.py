"""How facts get into weights: an extraction experiment, in a few CPU minutes an arm.

    >>> result = run_extraction("small", out_dir="experiments/extraction", runs_dir="runs/extraction")
    >>> result.table     # Markdown: one row per arm; also in experiments/extraction/results.md with a plot

A model can recite an article and still not answer a question about it (Allen-Zhu & Li, "Physics of Language
Models, Part 3.1"). This measures *extraction*, not recall of trained questions: a sample of the articles is
split by article into halves. Every article is pretrained on; only the first half's QA pairs are trained
(fine-tuning, and for the mixed arms also inside pretraining). The test is the second half's questions, closed
book: facts the model has seen only as article text. The second half is cut again into a validation quarter
(the validation loss that picks the weights, and confidence calibration) and a test quarter.

Each arm (``ARMS``) is tiny-cpu with [data] augmentation settings (data/augment.py, training/data.py) or
another size, trained for the same steps on the same data and tokenizer. Scores, each on the test quarter:

- ``extraction``: fact hit rate (evaluation/metrics.py, ``fact_recall``) of greedy closed-book answers to the
  generator's questions, which are phrased as the trained questions are (other articles, same templates);
- ``paraphrased``: the same facts asked with the generator's other phrasings, never trained for any article;
- ``chance``: the same answers scored against the reference of another test question of the same kind: what
  the metric gives an answer that is about something else (shared topic words, "is a", ...);
- ``trained``: the fact hit rate on questions fine-tuned on (memorisation, for contrast), and ``trained
  paraphrased``: the same facts of the trained articles asked in the generator's other phrasings, never
  trained (a user's question about a subject the model was taught, in the user's words);
- ``choice``: whether the model finds the right answer more likely than another article's answer to a
  question of the same kind, by mean log-probability per token: the facts in the weights, read without
  generating. A model that wins here and loses on ``extraction`` stores facts it cannot put into words.
- ``recited``: the fact hit rate when the model is not asked but cued, as pretraining text, with the first
  ``RECITE_WORDS`` words of the sentence that states the fact ("Abidjan's population was" ...) and left to
  continue: whether the fact is in the weights as text, apart from whether a question reaches it.
- ``on subject``: the share of extraction answers holding a word that the question and its reference share
  (mostly the subject's name): the others answer about something else.
- ``misses from trained``: of the wrong extraction answers whose words come mostly from another article, the
  share whose source is an article with trained QA pairs (half of them are): where wrong facts come from.

Design choices:
- The data is the bundled corpus (the quickstart's ``data/``, made when missing), a seeded sample of
  ``articles`` articles; nothing is held out of pretraining (``data.heldout_fraction = 0``): a test article's
  text must be seen, its questions not. Fine-tuning is closed book only (``data.qa_context = false``).
- Every arm is a normal run folder made by ``train`` and scored by ``evaluate_qa``; an arm whose folder holds
  ``extraction.json`` is reused, so an interrupted experiment continues where it stopped.
- Left out: seeds. One seed per arm; the README gives the spread where it was measured.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from minillm.answering.answer import ANSWER_SAMPLING, answer_sampling
from minillm.answering.attribution import content_words
from minillm.answering.reader import load_answerer
from minillm.core.checks import check_names
from minillm.core.errors import InputError
from minillm.core.files import atomic_write, write_jsonl
from minillm.core.numbers import format_number, human_count, human_seconds
from minillm.data.generate import generate_qa_pairs
from minillm.data.records import QAPair, read_articles, read_qa_pairs
from minillm.evaluation import metrics
from minillm.evaluation.qa import EvalQuestion, choice_log_probs, evaluate_qa, seeded_sample
from minillm.evaluation.report import markdown_table
from minillm.tokenizer import train_tokenizer
from minillm.training.config import load_config, shipped_config
from minillm.training.runs import TOKENIZER_FILE
from minillm.training.trainer import train
from minillm.workflows.quickstart import prepare_data


@dataclass(frozen=True)
class Arm:
    label: str
    overrides: tuple[str, ...] = ()
    what: str = ""


AUGMENTED = ("data.name_subject=true", "data.orders=3")
MIXED = ("data.mix_qa=1",)
SMALL = ("model.emb_dim=64", "model.num_heads=2", "model.ffn_dim=192", "model.num_layers=1")
LARGE = ("model.emb_dim=192", "model.num_heads=6", "model.ffn_dim=576", "model.num_layers=3")
ARMS = (
    Arm("plain", (), "articles as written"),
    Arm("named", ("data.name_subject=true",), "every sentence names its subject"),
    Arm("augmented", AUGMENTED, "named, and 3 more shuffled orders of each article"),
    Arm("mixed", MIXED, "as written, the trained QA pairs mixed into pretraining"),
    Arm("augmented+mixed", AUGMENTED + MIXED, "both"),
    Arm("augmented+mixed-small", AUGMENTED + MIXED + SMALL, "both, 64 wide, 1 layer"),
    Arm("augmented+mixed-large", AUGMENTED + MIXED + LARGE, "both, 192 wide, 3 layers"),
)

# articles sampled; steps of every arm; questions answered (0 = all), tokens an answer may take; the window
BUDGETS: dict[str, dict[str, int]] = {
    "tiny": {"articles": 16, "pretrain_steps": 6, "finetune_steps": 4, "extraction": 6, "paraphrased": 4,
             "trained": 4, "max_new_tokens": 12, "max_seq_len": 64},
    "small": {"articles": 400, "pretrain_steps": 1200, "finetune_steps": 300, "extraction": 0, "paraphrased": 200,
              "trained": 100, "max_new_tokens": 96, "max_seq_len": 256},
}
RESULT_FILE = "extraction.json"  # in each arm's run folder
RECITE_WORDS = 4  # words of the fact's own sentence that cue a recitation
INVERSE_KINDS = ("superlative",)  # questions that ask for the subject by one of its facts


@dataclass
class ExtractionResult:
    out_dir: Path
    table: str
    rows: list[dict[str, Any]]
    seconds: float


def split_articles(article_ids: list[str], seed: int) -> dict[str, str]:
    """article id -> "train" (half), "val" or "test" (a quarter each), drawn with ``seed``."""
    order = sorted(article_ids)
    random.Random(seed).shuffle(order)
    half, three_quarters = len(order) // 2, (3 * len(order)) // 4
    return {a: "train" if i < half else "val" if i < three_quarters else "test" for i, a in enumerate(order)}


def extraction_data(articles_path: str | Path, out: str | Path, count: int, seed: int = 0) -> dict[str, Path]:
    """The experiment's files in ``out``: a seeded sample of ``count`` articles, its QA pairs split by article
    (train, val, test) and the other phrasings of the test and of the trained questions; returns their paths."""
    out = Path(out)
    articles = read_articles(articles_path)
    if len(articles) < 4:
        raise InputError(f"{articles_path}: {len(articles)} articles; the experiment needs at least 4")
    keep = sorted(random.Random(seed).sample(range(len(articles)), min(count, len(articles))))
    sample = [articles[i] for i in keep]
    pairs, _ = generate_qa_pairs(sample, paraphrases=3, seed=seed)
    part = split_articles([a.id for a in sample], seed)
    names = ("articles", "train", "val", "test", "paraphrased", "trained_paraphrased")
    files = {name: out / f"{name}.jsonl" for name in names}
    write_jsonl(files["articles"], sample)
    for name in ("train", "val", "test"):
        write_jsonl(files[name], [p for p in pairs if part[p.article_id] == name and "/" not in p.kind])
    for name, where in (("paraphrased", "test"), ("trained_paraphrased", "train")):
        write_jsonl(files[name], [p for p in pairs if part[p.article_id] == where and "/" in p.kind])
    return files


def _arm_config(arm: Arm, budget: dict[str, int], files: dict[str, Path], tokenizer: Path):
    settings = {"articles": str(files["articles"]), "train_qa": str(files["train"]), "val_qa": str(files["val"]),
                "tokenizer": str(tokenizer), "heldout_fraction": 0.0, "qa_context": False}
    longest = max(budget["pretrain_steps"], budget["finetune_steps"])
    overrides = [*(f"data.{k}={json.dumps(v)}" for k, v in settings.items()),
                 f"train.pretrain_steps={budget['pretrain_steps']}", f"train.finetune_steps={budget['finetune_steps']}",
                 f"train.warmup_steps={min(50, max(1, longest // 10))}", f"train.eval_interval={min(200, longest)}",
                 f"train.checkpoint_interval={longest}", f"model.max_seq_len={budget['max_seq_len']}",
                 *arm.overrides]
    return load_config(shipped_config("tiny-cpu"), overrides)


def _questions(pairs: list[QAPair]) -> list[EvalQuestion]:
    return [EvalQuestion(p.question, p.answer, p.kind.split("/")[0]) for p in pairs]


def chance_recall(questions: list[EvalQuestion], answers: list[str], seed: int = 0) -> float | None:
    """Mean fact recall of each answer against the reference of another question of the same kind (of any
    other, when a kind has one question): the score of an answer about something else."""
    rng = random.Random(seed)
    scores = []
    for i, (q, text) in enumerate(zip(questions, answers, strict=True)):
        others = [j for j, o in enumerate(questions) if j != i and o.domain == q.domain] or \
                 [j for j in range(len(questions)) if j != i]
        if others:
            other = questions[rng.choice(others)]
            recall = metrics.fact_recall(text, q.question, other.reference)
            scores.append(float(recall >= metrics.FACT_HIT) if recall is not None else None)
    kept = [s for s in scores if s is not None]
    return sum(kept) / len(kept) if kept else None


def choice_accuracy(model, tok, questions: list[EvalQuestion], seed: int = 0) -> float | None:
    """Share of questions whose own reference is more likely (mean log-prob per token) than the reference of
    another question of the same kind about another answer."""
    rng = random.Random(seed)
    right = total = 0
    for i, q in enumerate(questions):
        others = [o for j, o in enumerate(questions) if j != i and o.domain == q.domain and o.reference != q.reference]
        if not others:
            continue
        scores = choice_log_probs(model, tok, q.question, (q.reference, rng.choice(others).reference))
        right += scores[0][0] / scores[0][1] > scores[1][0] / scores[1][1]
        total += 1
    return right / total if total else None


def on_subject(question: str, reference: str, answer: str) -> bool:
    """Whether the answer holds a word that the question and its reference share (for most questions the
    subject's name): an answer without one talks about something else."""
    shared = set(content_words(question)) & set(content_words(reference))
    return not shared or bool(shared & set(content_words(answer)))


def evaluate_arm(run_dir: Path, files: dict[str, Path], budget: dict[str, int], seed: int = 0) -> dict[str, Any]:
    """Every score of one trained arm (module docstring), with its extraction answers."""
    model, tok, _ = load_answerer(run_dir, device="cpu")
    sampling = replace(ANSWER_SAMPLING, max_new_tokens=budget["max_new_tokens"], max_sentences=2)
    sets = (("test", "extraction", "extraction"), ("paraphrased", "paraphrased", "paraphrased"),
            ("train", "trained", "trained"), ("trained_paraphrased", "trained_paraphrased", "paraphrased"))
    pairs = {name: seeded_sample(read_qa_pairs(files[name]), budget[key] or None, seed) for name, _, key in sets}
    scores: dict[str, Any] = {}
    for name, label, _ in sets:
        questions = _questions(pairs[name])
        result = evaluate_qa(model, tok, questions, sampling)
        scores[label] = result["fact_hit_rate"]
        if name == "test":
            answers = [r["answer"] for r in result["answers"]]
            scores["chance"] = chance_recall(questions, answers, seed)
            scores["choice"] = choice_accuracy(model, tok, questions, seed)
            scores["recited"] = recitation(model, tok, questions, sampling)
            scores["on_subject"] = sum(on_subject(q.question, q.reference, a)
                                       for q, a in zip(questions, answers, strict=True)) / len(answers)
            scores["by_kind"] = _by_kind(result["answers"], questions)
            scores["degenerate"] = result["degenerate"]
            scores["answers"] = [{k: r[k] for k in ("question", "reference", "answer", "fact_recall")}
                                 for r in result["answers"]]
    return scores


def recitation(model, tok, questions: list[EvalQuestion], sampling) -> float | None:
    """Fact hit rate of continuations of each fact sentence's first RECITE_WORDS words, given as pretraining
    text (after ``<eos>``, no question); the cue's own words earn nothing."""
    one_sentence = answer_sampling(tok, replace(sampling, max_sentences=1))
    hits = []
    for q in questions:
        words = metrics.fact_sentence(q.question, q.reference).split()
        if len(words) <= RECITE_WORDS:
            continue
        cue = " ".join(words[:RECITE_WORDS])
        new = list(model.generate([tok.eos_id] + tok.encode(cue), one_sentence, eos_id=tok.eos_id,
                                  decode=tok.decode))
        recall = metrics.fact_recall(tok.decode(new), f"{q.question} {cue}", q.reference)
        if recall is not None:
            hits.append(recall >= metrics.FACT_HIT)
    return sum(hits) / len(hits) if hits else None


def _by_kind(rows: list[dict[str, Any]], questions: list[EvalQuestion]) -> dict[str, dict[str, Any]]:
    """Fact hit rate and count per group: overview, inverse (the question asks for the subject), other facts."""
    groups: dict[str, list[float]] = {}
    for row, q in zip(rows, questions, strict=True):
        if row["fact_recall"] is None:
            continue
        group = "overview" if q.domain == "overview" else "inverse" if q.domain in INVERSE_KINDS else "fact"
        groups.setdefault(group, []).append(float(row["fact_recall"] >= metrics.FACT_HIT))
    return {g: {"hit_rate": sum(v) / len(v), "count": len(v)} for g, v in sorted(groups.items())}


def run_extraction(budget: str = "small", out_dir: str | Path = "experiments/extraction",
                   runs_dir: str | Path = "runs/extraction", data_dir: str | Path = "data", arms: tuple[str, ...] = (),
                   seed: int = 0, overwrite: bool = False, rescore: bool = False, device: str | None = None,
                   log: Callable[[str], None] = lambda _: None) -> ExtractionResult:
    """Train and score every arm (or those named in ``arms``); write results.json, results.md and the plot.
    ``rescore``: an arm trained before is scored again (after a change to the scores), not retrained."""
    if budget not in BUDGETS:
        raise InputError(f"--budget {budget}: unknown budget; choose one of {', '.join(BUDGETS)}")
    check_names("--arms", arms, [a.label for a in ARMS], "arm")
    start, plan = time.perf_counter(), BUDGETS[budget]
    out_dir, runs_dir = Path(out_dir), Path(runs_dir)
    if overwrite and runs_dir.exists():
        shutil.rmtree(runs_dir)
    data = prepare_data(data_dir, Path(data_dir) / TOKENIZER_FILE, log=log)
    files = extraction_data(data["articles"], runs_dir / "data", plan["articles"], seed)
    counts = {name: len(read_qa_pairs(files[name]))
              for name in ("train", "val", "test", "paraphrased", "trained_paraphrased")}
    log(f"data: {plan['articles']} articles; QA pairs {', '.join(f'{k} {v}' for k, v in counts.items())}")
    tokenizer = runs_dir / TOKENIZER_FILE
    if not tokenizer.is_file():
        train_tokenizer((a.text for a in read_articles(files["articles"])), kind="bpe", vocab_size=4096).save(tokenizer)
    rows = []
    for arm in [a for a in ARMS if not arms or a.label in arms]:
        run_dir = runs_dir / arm.label
        done = (run_dir / RESULT_FILE).is_file()
        if done and rescore:
            seconds = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))["training_seconds"]
        elif not done:
            if run_dir.exists():
                shutil.rmtree(run_dir)  # an unfinished arm: train it again from the start
            log(f"{arm.label}: training ({', '.join(arm.overrides) or 'tiny-cpu'})")
            seconds = train(_arm_config(arm, plan, files, tokenizer), run_dir, device=device, progress=False).seconds
        if rescore or not done:
            log(f"{arm.label}: scoring")
            scores = {**evaluate_arm(run_dir, files, plan, seed), "training_seconds": seconds}
            with atomic_write(run_dir / RESULT_FILE) as fh:
                json.dump(scores, fh, indent=2, ensure_ascii=False)
        rows.append(_row(arm, run_dir, files, plan, seed))
    table = extraction_table(rows)
    _write_results(out_dir, budget, plan, counts, rows, table)
    return ExtractionResult(out_dir=out_dir, table=table, rows=rows, seconds=time.perf_counter() - start)


def borrowed_from_trained(answers: list[dict[str, Any]], pairs: list[QAPair], files: dict[str, Path]) -> float | None:
    """Of the extraction misses whose words (beyond the question's; at least 4) come mostly from another
    article than the one asked about, the share whose source article had its QA pairs trained (half of all
    articles have): where a wrong answer's facts come from. ``pairs``: the test pairs the answers answer."""
    articles = {a.id: set(content_words(a.text)) for a in read_articles(files["articles"])}
    trained = {p.article_id for p in read_qa_pairs(files["train"])}
    sources = []
    for pair, row in zip(pairs, answers, strict=True):
        if row["fact_recall"] is None or row["fact_recall"] >= metrics.FACT_HIT:
            continue
        said = set(content_words(row["answer"])) - set(content_words(pair.question))
        if len(said) >= 4:
            source = max(articles, key=lambda a: len(said & articles[a]))
            if source != pair.article_id:
                sources.append(source in trained)
    return sum(sources) / len(sources) if sources else None


def _row(arm: Arm, run_dir: Path, files: dict[str, Path], budget: dict[str, int], seed: int) -> dict[str, Any]:
    scores = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    model, _, _ = load_answerer(run_dir, device="cpu")
    pairs = seeded_sample(read_qa_pairs(files["test"]), budget["extraction"] or None, seed)  # as evaluate_arm
    return {"arm": arm.label, "what": arm.what, "parameters": model.num_parameters(),
            **{k: v for k, v in scores.items() if k != "answers"},
            "misses_from_trained": borrowed_from_trained(scores["answers"], pairs, files)}


COLUMNS = ("arm", "what", "parameters", "training", "extraction", "paraphrased", "chance", "trained",
           "trained paraphrased", "recited", "choice", "on subject", "misses from trained", "inverse")


def extraction_table(rows: list[dict[str, Any]]) -> str:
    cells = [[r["arm"], r["what"], human_count(r["parameters"]), human_seconds(r["training_seconds"]),
              *(format_number(r.get(k)) for k in ("extraction", "paraphrased", "chance", "trained",
                                                   "trained_paraphrased", "recited", "choice", "on_subject",
                                                   "misses_from_trained")),
              format_number(r["by_kind"].get("inverse", {}).get("hit_rate"))] for r in rows]
    return markdown_table(COLUMNS, cells)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("extraction", "paraphrased", "chance", "recited", "trained", "trained_paraphrased")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows)), 4))
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        ax.bar([i + (k - (len(keys) - 1) / 2) * width for i in range(len(rows))], [r.get(key) or 0.0 for r in rows],
               width, label=key)
    ax.set_xticks(range(len(rows)), [r["arm"].replace("+", "+\n") for r in rows], fontsize=8)
    ax.set_ylabel("fact hit rate, closed book")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Closed-book fact hits: extraction, paraphrased, chance and recited are about articles\n"
                 "whose QA pairs were never trained; trained (paraphrased) about those that were", fontsize=10)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def _write_results(out_dir: Path, budget: str, plan: dict[str, int], counts: dict[str, int],
                   rows: list[dict[str, Any]], table: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot(rows, out_dir / "extraction.png")
    with atomic_write(out_dir / "results.json") as fh:
        json.dump({"budget": budget, "plan": plan, "questions": counts, "arms": rows}, fh, indent=2)
    text = [f"# Extraction, budget `{budget}`", "",
            f"Made by `minillm extraction --budget {budget}`: {plan['articles']} articles, every one pretrained on; "
            f"the QA pairs of half of them trained ({counts['train']} pairs), the other half's questions asked "
            f"closed book ({counts['test']} test, {counts['paraphrased']} paraphrased; "
            f"{counts['trained_paraphrased']} other phrasings of trained questions). "
            f"{plan['pretrain_steps']} pretraining + {plan['finetune_steps']} fine-tuning steps an arm. Fact hit: "
            "the answer holds at least half of the words its reference adds to the question; chance: the same "
            "answers against another question's reference; recited: the fact's sentence continued from its first "
            f"{RECITE_WORDS} words, no question; choice: the right answer more likely than another's; misses from "
            "trained: wrong answers whose words come from an article with trained QA pairs (half have). Training: "
            "wall-clock time on the machine that ran it, with whatever else it was running. What the columns "
            "mean: the module docstring of minillm/workflows/extraction.py.",
            "", table, "", "![fact hit rates per arm](extraction.png)", ""]
    with atomic_write(out_dir / "results.md") as fh:
        fh.write("\n".join(text))
