"""Does a model know an article by its name, or by the article before it? (experiments/README.md)

    python experiments/extraction/recite_in_context.py runs/extraction/plain [--articles 100]

For the first articles of a run's pretraining text, the model is cued with the first four words of the
article, as pretraining text, in two ways: cold (after ``<eos>``, as a question would reach it) and after the
last 150 tokens of the article that precedes it in the pretraining stream. It continues greedily for one
sentence; a hit is a continuation holding at least half of the words the first sentence adds to its cue
(minillm.evaluation.metrics.fact_recall). A run whose articles are recited after their neighbour but not
cold has memorised the stream, not the facts.

Only for runs pretrained on the articles as written (no data.name_subject, data.orders or data.mix_qa):
there the stream is the articles in file order, so the neighbour is the article before in the file.
"""

import argparse
from dataclasses import replace

from minillm.answering.answer import ANSWER_SAMPLING, answer_sampling
from minillm.data.records import read_articles
from minillm.data.sentences import split_sentences
from minillm.evaluation.metrics import FACT_HIT, fact_recall
from minillm.training.data import augmenting, is_heldout
from minillm.training.runs import load_run

CUE_WORDS = 4
CONTEXT_TOKENS = 150


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--articles", type=int, default=100, help="articles to cue (default 100)")
    args = parser.parse_args()
    model, tok, cfg = load_run(args.run)
    if augmenting(cfg) or cfg.data.text:
        raise SystemExit(f"{args.run}: pretrained on augmented text or data.text; this probe reads plain runs")
    sampling = answer_sampling(tok, replace(ANSWER_SAMPLING, max_sentences=1, max_new_tokens=60))
    articles = [a for a in read_articles(cfg.data.articles) if not is_heldout(a.id, cfg.data.heldout_fraction)]
    hits = {"cold": [], "after the article before it": []}
    for before, article in zip(articles, articles[1:args.articles + 1], strict=False):  # the first has none before
        first = split_sentences(article.text)[0]
        cue = " ".join(first.split()[:CUE_WORDS])
        contexts = {"cold": [tok.eos_id],
                    "after the article before it": tok.encode(before.text)[-CONTEXT_TOKENS:] + [tok.eos_id]}
        for name, context in contexts.items():
            new = model.generate(context + tok.encode(cue), sampling, eos_id=tok.eos_id, decode=tok.decode)
            recall = fact_recall(tok.decode(list(new)), cue, first)
            if recall is not None:
                hits[name].append(recall >= FACT_HIT)
    for name, found in hits.items():
        print(f"{args.run}: first sentence recited {name}: {sum(found) / len(found):.3f} of {len(found)}")


if __name__ == "__main__":
    main()
