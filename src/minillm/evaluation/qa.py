"""Evaluate a run: language-modelling scores, generated answers against references, multiple choice.

    >>> result = evaluate_run("runs/tiny", split="test", limit=200)       # closed book, greedy
    >>> write_eval(result, "runs/tiny/eval.json")
    >>> arc = evaluate_run("runs/tiny", task="arc-easy", qa_path="ARC-Easy-validation.jsonl")

What one evaluation measures (eval.json holds all of it; ``report.eval_table`` prints it):
- ``lm``: loss, perplexity and bits per byte on the text training held out, and on ``--text FILE``
  (perplexity.py), where defined: a model without probabilities (pattern; ``model.probabilities`` false)
  gets null scores, and multiple choice, which needs ``log_prob``, refuses it.
- ``qa`` (task ``qa``): one answer per question, greedy by default and with the same stop rules as
  ``minillm ask``, scored against the reference: SQuAD exact match and token F1, ROUGE-L, keyword hit rate
  (questions with ``keywords`` only), fact recall and fact hits (metrics.fact_recall: the words the
  reference adds to its question, for generated pairs), share of answers with 2-4 sentences, mean words,
  latency p50/p95 (wall time of the whole answer call, retrieval included in open mode, after one untimed
  warm-up answer). Overall and per domain, plus every answer with its scores, so a number can always be
  traced back to the answers behind it.
- ``multiple_choice`` (tasks ``arc-easy``, ``arc-challenge``): each choice scored by the log-probability
  of its tokens after the closed-book prompt ``Question: {q}\\nAnswer:``, as a sum and as a mean per token
  (the sum favours short choices); accuracy of both and the chance level, the mean of 1 / choices.
- With every answer: how it degenerated, if it did (a repeated word 4-gram, an unfinished last sentence,
  the prompt's punctuation in it; ``degenerate`` counts answers with any), and open book its faithfulness,
  the share of its content words found in the passages it was given, and the passage each sentence came
  from (evaluation/metrics.py says what these word counts can and cannot see).

Design choices:
- Question files: any JSON Lines with ``question`` and ``answer`` (or ``reference``), optional ``domain``
  and ``keywords`` (a list of strings), so the QAPair splits read as they are. The default is the run's
  own test split: ``test.jsonl`` beside the config's ``data.val_qa`` (``data.train_qa`` when that is empty),
  i.e. data/splits/test.jsonl for the shipped configs; split ``natural`` is the hand-written questions with
  keywords shipped in eval_data/ (people's phrasing, not the generator's). Multiple choice reads ARC's
  Hugging Face format: ``question``, ``choices: {text: [...], label: [...]}``, ``answerKey``.
- Every input is read and checked before the first answer is generated: a bad line fails in a second
  with ``FILE:LINE: field 'x': reason`` and nothing is written. ``--limit N`` takes a seeded sample, kept in
  file order.
- Open book (``mode="open"``) retrieves passages from the run's BM25 index (retrieval/index.py).
- eval.json is written whole and atomically, by ``write_eval``; it is the run's last evaluation.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from minillm.answering.answer import ANSWER_SAMPLING, answer
from minillm.answering.attribution import faithfulness, invented_words, sentence_sources, words_of
from minillm.answering.confidence import Calibration, confidences, load_calibration, says_not_known
from minillm.answering.open_book import answer_open
from minillm.answering.reader import load_answerer, reader_info
from minillm.core.checks import string_field, string_list_field
from minillm.core.errors import InputError
from minillm.core.files import atomic_write, iter_json_lines, utc_now
from minillm.evaluation import metrics
from minillm.evaluation.perplexity import (
    has_probabilities,
    heldout_score,
    heldout_text,
    model_device,
    read_text,
    score_documents,
    unscored,
)
from minillm.evaluation.retrieval import NATURAL_SETS, natural_questions_path
from minillm.models.base import LanguageModel
from minillm.models.generation import Sampling
from minillm.prompt import fit_prompt
from minillm.retrieval.index import require_index
from minillm.tokenizer import Tokenizer
from minillm.training.config import Config
from minillm.training.data import pretrain_texts

EVAL_FORMAT = 1
UNANSWERABLE = "unanswerable_questions.jsonl"  # 40 questions the articles do not answer: eval --split unanswerable
SHIPPED_SETS = {**NATURAL_SETS, "unanswerable": UNANSWERABLE}  # split -> its file in eval_data/
TASKS = ("qa", "arc-easy", "arc-challenge")
MODES = ("closed", "open")
DEFAULT_SAMPLING = ANSWER_SAMPLING  # as `minillm ask`


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    reference: str
    domain: str = "unknown"
    keywords: tuple[str, ...] = ()  # empty: the file gives none for this question


@dataclass(frozen=True)
class ChoiceQuestion:
    question: str
    choices: tuple[str, ...]
    answer: int  # index of the right choice


# --- reading question files -------------------------------------------------------------------------------


def read_eval_questions(path: str | Path) -> list[EvalQuestion]:
    """Questions with reference answers from a JSON Lines file; the first bad line raises InputError."""
    questions = []
    for lineno, obj in iter_json_lines(path):
        where = f"{path}:{lineno}"
        question = string_field(obj, "question", where)
        key = "reference" if "reference" in obj and "answer" not in obj else "answer"
        if key not in obj:
            hint = "; a multiple-choice file needs --task arc-easy" if "choices" in obj else ""
            raise InputError(f"{where}: field 'answer': missing (or give 'reference'){hint}")
        reference = string_field(obj, key, where)
        domain = string_field(obj, "domain", where, required=False) or "unknown"
        keywords = tuple(string_list_field(obj, "keywords", where)) if "keywords" in obj else ()
        questions.append(EvalQuestion(question, reference, domain, keywords))
    return questions


def read_choice_questions(path: str | Path) -> list[ChoiceQuestion]:
    """Multiple-choice questions in ARC's Hugging Face format; the first bad line raises InputError."""
    questions = []
    for lineno, obj in iter_json_lines(path):
        where = f"{path}:{lineno}"
        question = string_field(obj, "question", where)
        key = string_field(obj, "answerKey", where)
        choices = obj.get("choices")
        if not isinstance(choices, dict) or "text" not in choices or "label" not in choices:
            raise InputError(f"{where}: field 'choices': expected an object with 'text' and 'label' lists")
        texts = string_list_field(choices, "text", f"{where}: field 'choices'")
        labels = string_list_field(choices, "label", f"{where}: field 'choices'")
        if len(texts) != len(labels) or len(texts) < 2:
            raise InputError(f"{where}: field 'choices': needs 2 or more texts with one label each, got "
                             f"{len(texts)} texts and {len(labels)} labels")
        if key not in labels:
            raise InputError(f"{where}: field 'answerKey': {key!r} is not one of the labels {labels}")
        questions.append(ChoiceQuestion(question, tuple(texts), labels.index(key)))
    return questions


def default_qa_path(cfg: Config, split: str) -> Path:
    """``{split}.jsonl`` in the folder of the run's QA splits (that of data.val_qa, else data.train_qa);
    for ``natural``, the hand-written questions shipped with minillm (eval_data/natural_questions.jsonl),
    for ``natural-heldout`` the 36 written after the open-book reading was tuned on those, for
    ``natural-third`` 66 on new subjects, written before any reader answered them; for ``unanswerable`` 40
    that the articles do not answer (sport, art, cooking, ...), where an answer should say so (``withheld``)."""
    if split in SHIPPED_SETS:
        return natural_questions_path(SHIPPED_SETS[split])
    return Path(cfg.data.val_qa or cfg.data.train_qa).parent / f"{split}.jsonl"


def seeded_sample(items: list, limit: int | None, seed: int) -> list:
    """At most ``limit`` items, drawn with ``seed``, in their original order."""
    if limit is None or limit >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


# --- generated answers ------------------------------------------------------------------------------------


def score_answer(q: EvalQuestion, text: str, passages: list[str] | None = None) -> dict[str, Any]:
    """One answer's scores against its question's reference (and keywords, when it has some), how it
    degenerated if it did, and, given the passages it was answered from, its faithfulness to them and the
    passage each sentence came from."""
    scores = {"exact_match": metrics.exact_match(text, q.reference), "f1": metrics.token_f1(text, q.reference),
              "rouge_l": metrics.rouge_l(text, q.reference),
              "keyword_hit": metrics.keyword_hit(text, q.keywords) if q.keywords else None,
              "fact_recall": metrics.fact_recall(text, q.question, q.reference),
              "sentences": metrics.sentence_count(text), "words": metrics.word_count(text),
              "degenerate": metrics.degeneration(text, passages), "withheld": says_not_known(text)}
    if passages is not None:  # an answer that says it does not know claims nothing of the passages
        scores["faithfulness"] = None if scores["withheld"] else faithfulness(text, passages)
        scores["sentence_sources"] = [] if scores["withheld"] else sentence_sources(text, passages)
    return scores


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means and latency percentiles over scored answers (``evaluate_qa``'s rows)."""
    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 6) if values else None

    hits = [float(r["keyword_hit"]) for r in rows if r["keyword_hit"] is not None]
    facts = [r["fact_recall"] for r in rows if r.get("fact_recall") is not None]
    seconds = [r["seconds"] for r in rows]
    faithful = [r["faithfulness"] for r in rows if r.get("faithfulness") is not None]
    invented = rows and all("invented_words" in r for r in rows)
    flags = list(metrics.degeneration("").keys())
    return {
        "count": len(rows),
        "exact_match": mean([r["exact_match"] for r in rows]),
        "f1": mean([r["f1"] for r in rows]),
        "rouge_l": mean([r["rouge_l"] for r in rows]),
        "keyword_hit_rate": mean(hits),
        "keyword_questions": len(hits),
        "fact_recall": mean(facts),
        "fact_hit_rate": mean([float(f >= metrics.FACT_HIT) for f in facts]),
        "two_to_four_sentences": mean([float(2 <= r["sentences"] <= 4) for r in rows]),
        "mean_words": mean([r["words"] for r in rows]),
        "latency_p50_s": round(metrics.percentile(seconds, 50), 4),
        "latency_p95_s": round(metrics.percentile(seconds, 95), 4),
        "tokens_per_second": round(sum(r["new_tokens"] for r in rows) / max(sum(seconds), 1e-9), 1),
        "degenerate": sum(any(r["degenerate"].values()) for r in rows),
        "degenerate_by_kind": {flag: sum(r["degenerate"][flag] for r in rows) for flag in flags},
        "faithfulness": mean(faithful),
        "invented_words": sum(len(r["invented_words"]) for r in rows) if invented else None,
        "withheld_rate": mean([float(r["withheld"]) for r in rows]),
        "answers_with_invented_words": sum(bool(r["invented_words"]) for r in rows) if invented else None,
    }


def evaluate_qa(model: LanguageModel, tok: Tokenizer, questions: list[EvalQuestion], sampling: Sampling, *,
                index: Any = None, k: int = 3, known_words: AbstractSet[str] | None = None,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Answer every question (open book when a retrieval ``index`` is given) and score the answers; open
    book with ``known_words`` (the words of the tokenizer's training text), each answer's invented words."""
    def respond(question: str) -> tuple[Any, list | None]:
        if index is None:
            return answer(model, tok, question, sampling), None

        return answer_open(model, tok, index, question, sampling, k=k)

    respond(questions[0].question)  # untimed warm-up: the first call pays one-off costs (lazy setup, caches)
    rows = []
    for i, q in enumerate(questions):
        start = time.perf_counter()
        result, passages = respond(q.question)
        seconds = time.perf_counter() - start
        texts = None if passages is None else [p.text for p in passages]
        row = {"question": q.question, "reference": q.reference, "answer": result.text, "domain": q.domain,
               **score_answer(q, result.text, texts), "seconds": round(seconds, 4),
               "new_tokens": result.new_tokens}
        if passages is not None:
            row["passages"] = [p.title for p in passages]
            if known_words is not None:  # the words of "I don't know: ..." are minillm's, not the answer's
                row["invented_words"] = [] if row["withheld"] else invented_words(result.text, [*texts, q.question],
                                                                                   known_words)
        rows.append(row)
        if progress:
            progress(i + 1, len(questions))
    domains = sorted({r["domain"] for r in rows})
    by_domain = {d: summarize([r for r in rows if r["domain"] == d]) for d in domains}
    return {**summarize(rows), "by_domain": by_domain, "answers": rows}


# --- closed book: confidence and withheld answers ----------------------------------------------------------


def correct(row: dict[str, Any]) -> bool | None:
    """Whether a scored answer (evaluate_qa's row) holds the key fact; None when nothing says."""
    if row.get("keyword_hit") is not None:
        return bool(row["keyword_hit"])
    recall = row.get("fact_recall")
    return None if recall is None else recall >= metrics.FACT_HIT


def scored_answers(rows: list[dict[str, Any]], measure: str) -> list[tuple[float, bool]]:
    """(confidence by ``measure``, right) of every row that has both."""
    return [(r["confidence"][measure], correct(r)) for r in rows
            if r.get("confidence") and correct(r) is not None]


def selective_summary(rows: list[dict[str, Any]], calibration: Calibration | None) -> dict[str, Any] | None:
    """Coverage and precision among answered at the run's threshold, and the risk-coverage curve (by the
    calibration's measure, else the first sentence's mean log-probability); None without confidences."""
    measure = calibration.measure if calibration else "first_sentence"
    scored = scored_answers(rows, measure)
    if not scored:
        return None
    summary: dict[str, Any] = {"measure": measure, "questions": len(scored),
                               "precision_all": sum(c for _, c in scored) / len(scored),
                               "aurc": metrics.area_under_risk_coverage(scored),
                               "curve": metrics.risk_coverage(scored)}
    if calibration is not None:
        answered = [c for s, c in scored if s >= calibration.threshold]
        summary.update(threshold=calibration.threshold, coverage=len(answered) / len(scored),
                       precision_answered=sum(answered) / len(answered) if answered else None)
    return summary


def with_confidences(model: Any, tok: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """evaluate_qa's closed-book rows, each with every confidence measure of its answer (None: none)."""
    return [{**row, "confidence": confidences(model, tok, row["question"], row["answer"])} for row in rows]


# --- multiple choice --------------------------------------------------------------------------------------


@torch.inference_mode()
def choice_log_probs(model: LanguageModel, tok: Tokenizer, question: str,
                     choices: tuple[str, ...]) -> list[tuple[float, int]]:
    """(sum of log-probs, tokens) of each choice's tokens ``encode(" " + choice)`` after the prompt.

    A choice longer than half the context is cut to that; the prompt keeps its end (fit_prompt) so that
    prompt + choice fit the model. All choices go through the model as one right-padded batch: causal
    attention never lets padding change the positions before it.
    """
    rows, spans = [], []
    for choice in choices:
        choice_ids = tok.encode(" " + choice)[:model.max_seq_len // 2]
        prompt_ids = fit_prompt(tok, question, None, model.max_seq_len + 1 - len(choice_ids))
        rows.append(prompt_ids + choice_ids)
        spans.append((len(prompt_ids) - 1, len(choice_ids)))  # log_prob's row t scores token t + 1
    width = max(map(len, rows))
    padded = [row + [tok.pad_id] * (width - len(row)) for row in rows]
    ids = torch.tensor(padded, device=model_device(model))
    log_probs = model.log_prob(ids).double()
    return [(float(log_probs[i, first:first + n].sum()), n) for i, (first, n) in enumerate(spans)]


def evaluate_choices(model: LanguageModel, tok: Tokenizer, questions: list[ChoiceQuestion],
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Accuracy of picking the most likely choice, by summed and by per-token mean log-probability."""
    right_sum = right_mean = 0
    for i, q in enumerate(questions):
        scores = choice_log_probs(model, tok, q.question, q.choices)
        right_sum += max(range(len(scores)), key=lambda c: scores[c][0]) == q.answer
        right_mean += max(range(len(scores)), key=lambda c: scores[c][0] / scores[c][1]) == q.answer
        if progress:
            progress(i + 1, len(questions))
    n = len(questions)
    return {"count": n, "accuracy_sum": round(right_sum / n, 6), "accuracy_mean": round(right_mean / n, 6),
            "chance": round(sum(1 / len(q.choices) for q in questions) / n, 6)}


# --- a whole run ------------------------------------------------------------------------------------------


def evaluate_run(run_dir: str | Path, *, task: str = "qa", qa_path: str | Path | None = None,
                 split: str = "test", mode: str = "closed", k: int = 3, text_path: str | Path | None = None,
                 max_tokens: int | None = 50_000, limit: int | None = None, seed: int = 0,
                 sampling: Sampling = DEFAULT_SAMPLING, device: str = "cpu",
                 progress: Callable[[int, int], None] | None = None, reader: str | None = None) -> dict[str, Any]:
    """Everything eval.json holds for one run (see the module docstring); writes nothing. ``reader``: who
    answers open book (answering/reader.py; None: the run's ``[answer] reader``)."""
    if task not in TASKS:
        raise InputError(f"task '{task}': expected one of {', '.join(TASKS)}")
    if mode not in MODES:
        raise InputError(f"mode '{mode}': expected one of {', '.join(MODES)}")
    for name, value, least in (("limit", limit, 1), ("max_tokens", max_tokens, 1), ("k", k, 1)):
        if value is not None and value < least:
            raise InputError(f"{name}: must be >= {least}, got {value}")
    run_dir = Path(run_dir)
    model, tok, cfg = load_answerer(run_dir, reader, device=device)

    # every input is read and checked before the slow part
    if task == "qa":
        qa_path = Path(qa_path) if qa_path else default_qa_path(cfg, split)
        questions: list = read_eval_questions(qa_path)
    else:
        if qa_path is None:
            raise InputError(f"task {task}: give the questions with --qa FILE "
                             "(e.g. ../shared/data/qa/ARC-Easy-validation.jsonl)")
        if mode == "open":
            raise InputError(f"task {task}: multiple choice is scored closed book; drop --mode open")
        if not has_probabilities(model):
            raise InputError(f"{run_dir}: task {task}: {model.name} has no probabilities; multiple choice needs "
                             "log_prob")
        questions = read_choice_questions(qa_path)
    questions = seeded_sample(questions, limit, seed)
    index = None
    if mode == "open":
        index = require_index(run_dir)
    text = read_text(text_path) if text_path else None

    probabilities = has_probabilities(model)
    if probabilities:
        heldout = heldout_score(model, tok, cfg, max_tokens)
        lm: dict[str, Any] = {"heldout": heldout.to_dict() if heldout else None}
        if text is not None:
            lm["text"] = score_documents(model, tok, [text], str(text_path), max_tokens).to_dict()
    else:  # loss, perplexity and bits per byte are undefined: null
        heldout_docs, source = heldout_text(cfg)
        lm = {"heldout": unscored(source) if heldout_docs else None}
        if text is not None:
            lm["text"] = unscored(str(text_path))
    result: dict[str, Any] = {
        "format": EVAL_FORMAT,
        "run": str(run_dir),
        "created_at": utc_now(),
        "model": {"name": model.name, "parameters": model.num_parameters(), "size_bytes": model.size_bytes(),
                  "probabilities": probabilities},
        "settings": {"task": task, "mode": mode, "questions_file": str(qa_path), "limit": limit, "seed": seed,
                     "k": k if mode == "open" else None, **reader_info(model),
                     "sampling": asdict(sampling),
                     "text_file": str(text_path) if text_path else None, "max_tokens": max_tokens,
                     "device": device},
        "lm": lm,
    }
    if task == "qa":
        known = training_words(cfg) if index is not None else None
        result["qa"] = evaluate_qa(model, tok, questions, sampling, index=index, k=k, known_words=known,
                                   progress=progress)
        if mode == "closed" and probabilities:  # how sure the model was, and what withholding would give
            result["qa"]["answers"] = with_confidences(model, tok, result["qa"]["answers"])
            result["qa"]["selective"] = selective_summary(result["qa"]["answers"], load_calibration(run_dir))
    else:
        result["multiple_choice"] = {"task": task, **evaluate_choices(model, tok, questions, progress)}
    return result


def training_words(cfg: Config) -> set[str] | None:
    """The words of the run's pretraining text, on which its tokenizer was trained (None: not readable now)."""
    try:
        train, val = pretrain_texts(cfg)
    except InputError:
        return None
    return words_of(train + val)


def write_eval(result: dict[str, Any], path: str | Path) -> Path:
    """Write an ``evaluate_run`` result as JSON, atomically."""
    path = Path(path)
    with atomic_write(path) as fh:
        fh.write(json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return path
