"""Closed book: does the network hold the facts and miss only the way in? A probe of answer openings.

    python experiments/knowledge/openings_probe.py RUN [--articles data/raw/articles.jsonl] [--device cuda]

A model that has learnt its articles by heart recites a lead whole when its answer opens with the
article's own words ("The Moon is ..." -> "... at an average distance of 384,399 kilometers"), and
invents when it opens otherwise ("Pandas, also known as psittacines, are ..."). This probe answers the
three natural sets closed book four ways and prints the keyword hit of each (JSON):

- ``free``: as ``minillm eval --mode closed`` answers (ANSWER_SAMPLING, nothing constrained);
- ``trie``: greedy, but the answer must open with the opening of one of the articles the model was
  pretrained on (the first sentence's words before its verb: "The giant panda", "Skin"), a text-level
  prefix check on each token (the way the open-book closed vocabulary is kept), then free;
- ``scored``: every opening scored by the model's log-probability after the prompt (summed over its
  tokens, as constrained beam search over entity names does, De Cao et al. 2021, "Autoregressive Entity
  Retrieval"), the best one forced, the rest generated;
- ``oracle``: the opening of the article the question is about forced (the natural sets name it): what
  the weights give back once the way in is right. A diagnostic, not an answerer.

Only the articles the run pretrained on give openings (the held-out ones are left out as training
leaves them out). The probe does not change how minillm answers; it measures whether it should.
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import sys
import time
from pathlib import Path

import torch

from minillm.answering.answer import ANSWER_SAMPLING, answer, answer_sampling, answer_text
from minillm.data.records import read_articles
from minillm.data.sentences import split_sentences
from minillm.evaluation.metrics import keyword_hit
from minillm.evaluation.retrieval import NATURAL_SETS, natural_questions_path
from minillm.models import generation
from minillm.prompt import encode_prompt
from minillm.training.data import is_heldout
from minillm.training.runs import load_run

SETS = ("natural", "natural-heldout", "natural-third")
_VERB = re.compile(r"\s*(?:\(|,|;|\s(?:is|are|was|were|refers|has|have|consists?|comprises?|means?|describes?)\b)")


def opening(title: str, text: str) -> str:
    """The first sentence's words before its verb ("The giant panda"), at most eight words; else the title."""
    sentences = split_sentences(text)
    first = sentences[0] if sentences else ""
    match = _VERB.search(first)
    words = first[:match.start()].split() if match else []
    return " ".join(words) if 0 < len(words) <= 8 else re.sub(r"\s*\([^)]*\)$", "", title)


class OpeningDecode:
    """A decode whose ``allows`` keeps an answer's start to one of ``openings`` (case-insensitive): while
    the text is a prefix of one, or once it starts with one followed by a non-word character."""

    def __init__(self, decode, openings: list[str]):
        self.decode = decode
        self.lowered = sorted({o.lower() for o in openings})
        self.whole = set(self.lowered)

    def __call__(self, ids: list[int]) -> str:
        return self.decode(ids)

    def _started(self, text: str) -> bool:
        return any(not text[i].isalnum() and text[:i] in self.whole for i in range(1, len(text)))

    def allows(self, text: str, final: bool = False) -> bool:
        text = text.lstrip().lower()
        if not text:
            return not final
        if text in self.whole or self._started(text):
            return True
        if final:
            return False
        at = bisect.bisect_left(self.lowered, text)
        return at < len(self.lowered) and self.lowered[at].startswith(text)


def opening_scores(model, tok, question: str, openings: list[str], ids_of: list[list[int]], device) -> torch.Tensor:
    """Sum of log P(opening tokens | prompt) for every opening, in batches, prompt read once per batch."""
    prompt = encode_prompt(tok, question)
    scores = []
    for start in range(0, len(openings), 512):
        chunk = ids_of[start:start + 512]
        width = len(prompt) + max(len(c) for c in chunk)
        batch = torch.full((len(chunk), width), tok.eos_id, dtype=torch.long)
        for row, ids in enumerate(chunk):
            batch[row, :len(prompt) + len(ids)] = torch.tensor(prompt + ids)
        with torch.inference_mode():
            logp = torch.log_softmax(model(batch.to(device)).float(), dim=-1).cpu()
        for row, ids in enumerate(chunk):
            positions = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(ids))
            scores.append(logp[row, positions, torch.tensor(ids)].sum())
    return torch.stack(scores)


def forced(model, tok, question: str, opening_text: str) -> str:
    """The answer that opens with ``opening_text``, the rest generated as answers are."""
    prompt = encode_prompt(tok, question) + tok.encode(" " + opening_text)
    sampling = answer_sampling(tok, ANSWER_SAMPLING)
    new_ids = list(model.generate(prompt, sampling, eos_id=tok.eos_id, decode=tok.decode))
    return answer_text(opening_text + tok.decode(new_ids), tok.decode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--articles", default="data/raw/articles.jsonl")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=0, help="questions per set (0 = all)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated natural sets")
    parser.add_argument("--arms", default="free,trie,scored,oracle", help="comma-separated ways to answer")
    parser.add_argument("--out", default="", help="also write the answers here (JSON, after each set)")
    args = parser.parse_args(argv)
    model, tok, cfg = load_run(args.run, device=args.device)
    device = next(model.parameters()).device
    articles = [a for a in read_articles(args.articles) if not is_heldout(a.id, cfg.data.heldout_fraction)]
    by_title = {a.title.lower(): opening(a.title, a.text) for a in read_articles(args.articles)}
    openings = sorted({opening(a.title, a.text) for a in articles})
    ids_of = [tok.encode(" " + o) for o in openings]
    trie = OpeningDecode(tok.decode, openings)
    generation.VOCABULARY_TRIES = tok.vocab_size  # the probe's trie may refuse many tokens at one step
    sampling = answer_sampling(tok, ANSWER_SAMPLING)
    report: dict = {"run": args.run, "openings": len(openings), "sets": {}}
    answers: list[dict] = []
    started = time.perf_counter()
    for name in args.sets.split(","):
        lines = natural_questions_path(NATURAL_SETS[name]).read_text().splitlines()
        questions = [json.loads(line) for line in lines if line.strip()]
        questions = questions[:args.limit] if args.limit else questions
        arms = args.arms.split(",")
        hits = dict.fromkeys(arms, 0)
        for q in questions:
            row = {"set": name, "question": q["question"], "title": q["title"]}
            if "free" in arms:
                row["free"] = answer(model, tok, q["question"], ANSWER_SAMPLING).text
            if "trie" in arms:
                prompt = encode_prompt(tok, q["question"])
                new_ids = list(model.generate(prompt, sampling, eos_id=tok.eos_id, decode=trie))
                row["trie"] = answer_text(tok.decode(new_ids), tok.decode)
            if "scored" in arms:
                scores = opening_scores(model, tok, q["question"], openings, ids_of, device)
                best = int(scores.argmax())
                row["scored_opening"], row["scored_logp"] = openings[best], float(scores[best])
                row["scored"] = forced(model, tok, q["question"], openings[best])
            if "oracle" in arms:
                gold = by_title.get(q["title"].lower())
                row["oracle"] = forced(model, tok, q["question"], gold) if gold else ""
            for kind in hits:
                row[kind + "_hit"] = keyword_hit(row[kind], q["keywords"])
                hits[kind] += row[kind + "_hit"]
            answers.append(row)
            if args.out and len(answers) % 10 == 0:  # a probe cut short by a time limit still says something
                Path(args.out).write_text(json.dumps({"report": report, "answers": answers}, indent=1))
        report["sets"][name] = {kind: round(n / len(questions), 3) for kind, n in hits.items()}
        report["sets"][name]["questions"] = len(questions)
        print(name, report["sets"][name], file=sys.stderr, flush=True)
        report["seconds"] = round(time.perf_counter() - started, 1)
        if args.out:
            Path(args.out).write_text(json.dumps({"report": report, "answers": answers}, indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
