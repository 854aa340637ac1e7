"""N-gram pruning of a markov or hybrid run: count cut-offs or Stolcke entropy pruning, into a new run directory.

    minillm compress prune runs/markov --min-count 2 --out runs/markov-k2
    minillm compress prune runs/markov --entropy 1e-6 --out runs/markov-e6

    >>> prune_ngram_run("runs/markov", "runs/markov-k2", min_count=2)
    'pruned 65,162 of 321,944 n-grams (count < 2): tables 4.2 MB -> 3.4 MB, held-out bits/byte 1.8475 -> 1.8593
    -> runs/markov-k2'

Both methods choose n-grams of orders >= 2 to remove from the run's tables, then recompute backoff weights
in one way. The result is the markov format unchanged: ``ask``, ``eval``, ``compare``, ``ladder`` and
``export arpa`` take the new run as it is, and kenlm scores its ARPA file as minillm's ``log_prob`` does.

Design choices:
- The tables are in ARPA backoff form (models/markov.py): a kept n-gram ``h w`` keeps its probability
  p(w | h); a removed one backs off, p(w | h) = bow(h) p(w | h'), h' being h without its oldest token. The
  backoff weight of each context that lost n-grams becomes what makes its distribution sum to one, SRILM's
      bow(h) = (1 - sum_{w kept after h} p(w | h)) / (1 - sum_{w kept after h} p(w | h'))
  (on the unpruned interpolated Kneser-Ney tables this is each context's interpolation weight). It is
  computed as (bow(h) B(h) + sum_removed p(w | h)) / (B(h) + sum_removed p(w | h')), with
  B(h) = 1 - sum of p(w | h') over the context's n-grams before pruning, which stays accurate where the kept
  mass is close to one. Discounts are not re-estimated: a kept n-gram keeps the probability the full counts
  gave it, and the mass of the removed ones goes to the context's backoff, spread over the words it backs
  off for in proportion to the lower order.
- The hierarchy stays whole: from the highest order down, a kept n-gram's prefix (its context, which KenLM
  requires) and its suffix (h' w: ``next_log_probs`` and kenlm reach longer matches through it) are kept
  too, whatever their own score. Count pruning never needs this (an n-gram's prefix and suffix are seen at
  least as often); entropy pruning does. SRILM keeps prefixes the same way; keeping suffixes is minillm's
  addition. Unigrams always stay.
- ``--min-count K`` (an integer >= 2) removes the n-grams of orders >= 2 seen fewer than K times in the
  training text, by raw counts at every order (not the continuation counts Kneser-Ney smooths lower orders
  with): SRILM's ``-gtNmin K``, KenLM's ``--prune K-1`` (which removes counts <= its threshold). The tables
  hold probabilities, not counts, so the run's data (config.toml's [data], read as ``fit`` read it) is
  counted again; it must give the n-grams the fit counted, else InputError.
- ``--entropy E`` (a number > 0) is Stolcke (1998) relative-entropy pruning as SRILM's ``ngram -prune E``.
  Each n-gram h w is scored alone against the model as it is: D(h w), the Kullback-Leibler divergence of
  the model with h w backed off from the model, i.e. the growth of its (self-weighted) conditional entropy:
      D(h w) = p(h) [ p(w | h) log(p(w | h) / (bow'(h) p(w | h')))  +  bow(h) B(h) log(bow(h) / bow'(h)) ]
      bow'(h) = (bow(h) B(h) + p(w | h)) / (B(h) + p(w | h'))
  where bow(h) B(h) is the mass of the words h already backs off for, which all move to bow'(h). The
  n-grams with exp(D) - 1 < E, the relative growth of training-set perplexity, go together, and the
  backoffs are recomputed, as in the paper. p(h) stands for the training distribution of histories, as in
  Stolcke and SRILM: the model's own chain-rule probability of h, its first token's unigram probability
  (for ``<s>``, never predicted, that of ``</s>``, as SRILM does) times the conditionals of the rest. So no
  data is needed. This is exact Stolcke, not an approximation of it: minillm holds its interpolated
  Kneser-Ney model in backoff form, the form the method is defined on. A larger E removes a superset.
- A pruned run can be pruned again, by either method (count cut-offs compose: K = 2 then 3 is K = 3); the
  model file's header records the steps (``pruned``) and the n-grams the fit counted, for the recount check.
- The new run takes config.toml, tokenizer.json, metrics.jsonl and the retrieval index from the original;
  fit.json is the fit's record with the new n-gram total and the steps (its losses stay the fit's). A hybrid
  run keeps its neural part (neural/) and its mixing weight w unchanged: w is not re-tuned for the pruned
  n-gram part.
- The summary gives held-out bits per byte as ``minillm eval`` computes them (its default first 50,000
  tokens), before and after; for a run that held out no text, the val QA loss (nats per answer token). Both
  read the run's data, so pruning a run whose data is gone is refused either way.
- Measured on the bundled data (configs/markov.toml: 321,944 n-grams, 4.2 MB, 1.8475 held-out bits/byte):
  K = 2 keeps 256,782 (3.4 MB, 1.8593 bits/byte), K = 3 221,100 (2.9 MB, 1.8575); E = 1e-6 keeps 265,130
  (3.5 MB, 1.8393), E = 1e-5 97,821 (1.4 MB, 1.8638). Entropy pruning is the better trade: half the size
  of K = 3 for 0.006 bits/byte more, and at E = 1e-6 smaller than K = 2 and better than unpruned.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import torch

from minillm.compress import copy_kept
from minillm.core.errors import InputError
from minillm.core.files import atomic_directory, atomic_write, check_new_output
from minillm.evaluation.perplexity import heldout_score
from minillm.models.base import FitData, LanguageModel
from minillm.models.markov import BOS_ID, EOS_ID, MarkovChain, count_ngrams, find_sorted, sentences
from minillm.models.weights import WEIGHTS_FILE, read_weights_metadata
from minillm.tokenizer import Tokenizer
from minillm.training.config import Config, load_config
from minillm.training.data import fit_data
from minillm.training.runs import CONFIG_FILE, FIT_FILE, TOKENIZER_FILE, load_run

HELDOUT_TOKENS = 50_000  # held-out tokens scored for the summary: minillm eval's default --max-tokens


# --- which n-grams ---------------------------------------------------------------------------------------


def raw_counts(model: MarkovChain, stream: np.ndarray) -> tuple[list[np.ndarray], int]:
    """How often each n-gram of orders 2.. of the tables occurs in ``stream`` (``sentences`` of the fit's data;
    0: not there), and how many n-grams the stream has, as ``fit`` reports them (unigrams: the vocabulary)."""
    V = model.config.vocab_size
    counts, total = [], V
    for n, (keys, _, _) in enumerate(model.tables[1:], 2):
        seen, seen_counts = count_ngrams(stream, n, V)
        found, index = find_sorted(seen, keys)
        counts.append(np.where(found, seen_counts[index], 0))
        total += len(seen)
    return counts, total


def _order(model: MarkovChain, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the n-grams h w of order n >= 2: log p(w | h), log p(w | h'), the index of h in order n - 1's table,
    and per entry of that table B = 1 - sum of p(w | h') over its n-grams."""
    V = model.config.vocab_size
    keys, log_probs, _ = model.tables[n - 1]
    lower_keys, lower_log_probs, _ = model.tables[n - 2]
    has_context, context = find_sorted(lower_keys, keys // V)
    has_suffix, suffix = find_sorted(lower_keys, keys % V ** (n - 1))
    assert has_context.all() and has_suffix.all(), "the tables hold every n-gram's prefix and suffix"
    log_lower = lower_log_probs[suffix].astype(np.float64)
    free = 1 - np.bincount(context, weights=np.exp(log_lower), minlength=len(lower_keys))
    return log_probs.astype(np.float64), log_lower, context, np.maximum(free, 0.0)


def relative_entropy_changes(model: MarkovChain) -> list[np.ndarray]:
    """exp(D) - 1 of every n-gram of orders 2.., D its Stolcke relative entropy (see the module docstring)."""
    changes = []
    log_history = model.tables[0][1].astype(np.float64)  # log p(h) of the contexts of order 2: the unigrams,
    log_history[BOS_ID] = log_history[EOS_ID]               # <s> as likely as a sentence end
    for n in range(2, model.config.order + 1):
        log_p, log_lower, context, free = _order(model, n)
        log_bow = model.tables[n - 2][2][context].astype(np.float64)
        backed_off = np.exp(log_bow) * free[context]  # mass of the words h backs off for now
        log_new_bow = np.log(backed_off + np.exp(log_p)) - np.log(free[context] + np.exp(log_lower))
        divergence = np.exp(log_history[context]) * (np.exp(log_p) * (log_p - log_lower - log_new_bow)
                                                     + backed_off * (log_bow - log_new_bow))
        changes.append(np.expm1(divergence))
        log_history = log_history[context] + log_p  # log p(h w): the contexts of order n + 1
    return changes


# --- pruning ---------------------------------------------------------------------------------------------


def prune(model: MarkovChain, keep: list[np.ndarray]) -> MarkovChain:
    """A copy of ``model`` with only the n-grams ``keep`` marks (one mask per order 2..), those a kept n-gram
    needs (its prefix and suffix) and all unigrams; backoff weights recomputed (see the module docstring)."""
    V, N = model.config.vocab_size, model.config.order
    keep = [np.ones(V, bool)] + [np.asarray(k, bool).copy() for k in keep]
    for n in range(N, 2, -1):  # from the top: a kept n-gram's prefix and suffix stay
        kept = model.tables[n - 1][0][keep[n - 1]]
        lower_keys = model.tables[n - 2][0]
        for needed in (kept // V, kept % V ** (n - 1)):
            keep[n - 2][find_sorted(lower_keys, needed)[1]] = True
    log_bows = [backoffs.astype(np.float64) for _, _, backoffs in model.tables]
    for n in range(2, N + 1):
        log_p, log_lower, context, free = _order(model, n)
        removed = ~keep[n - 1]
        size = len(free)
        mass = np.bincount(context[removed], weights=np.exp(log_p[removed]), minlength=size)
        lower_mass = np.bincount(context[removed], weights=np.exp(log_lower[removed]), minlength=size)
        changed = np.bincount(context[removed], minlength=size) > 0
        log_bows[n - 2][changed] = (np.log(np.exp(log_bows[n - 2][changed]) * free[changed] + mass[changed])
                                    - np.log(free[changed] + lower_mass[changed]))
    pruned = MarkovChain(model.config)
    pruned.tables = [(keys[k], log_probs[k], log_bow[k].astype(np.float32))
                     for (keys, log_probs, _), log_bow, k in zip(model.tables, log_bows, keep, strict=True)]
    return pruned


def _ngrams(model: MarkovChain) -> int:
    return sum(len(keys) for keys, _, _ in model.tables)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.1f} kB"


# --- runs ------------------------------------------------------------------------------------------------


def _check_arguments(min_count: int | None, entropy: float | None) -> None:
    if (min_count is None) == (entropy is None):
        raise InputError("give exactly one of --min-count K (drop n-grams seen fewer than K times) and --entropy E "
                         "(Stolcke relative-entropy pruning)")
    if min_count is not None and (isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 2):
        raise InputError(f"--min-count: must be an integer >= 2 (1 keeps every n-gram), got {min_count!r}")
    if entropy is not None and (isinstance(entropy, bool) or not isinstance(entropy, (int, float))
                                or not math.isfinite(entropy) or entropy <= 0):
        raise InputError(f"--entropy: must be a finite number > 0 (the relative perplexity growth below which an "
                         f"n-gram goes, e.g. 1e-7), got {entropy!r}")


def _score(model: LanguageModel, tok: Tokenizer, cfg: Config, data: FitData) -> tuple[str, float] | None:
    """The summary's quality figure: held-out bits per byte as minillm eval gives them, else the val QA loss."""
    heldout = heldout_score(model, tok, cfg, max_tokens=HELDOUT_TOKENS)
    if heldout is not None:
        return "held-out bits/byte", heldout.bits_per_byte
    pairs = [(seq[:model.max_seq_len + 1], start) for seq, start in zip(data.val_qa, data.val_qa_answer_start,
                                                                         strict=True)]
    losses = [-model.log_prob(torch.tensor([seq]))[0, start - 1:].double() for seq, start in pairs if start < len(seq)]
    return ("val QA loss", float(torch.cat(losses).mean())) if losses else None


def prune_ngram_run(run_dir: str | Path, out_dir: str | Path, min_count: int | None = None,
                    entropy: float | None = None) -> str:
    """Write ``out_dir``: the markov or hybrid run in ``run_dir`` with its n-grams pruned by count (``min_count``)
    or by Stolcke's criterion (``entropy``); returns a one-line summary. Raises InputError for both or neither,
    a bad threshold, a missing run, a run of another arch, an ``out_dir`` that is not empty, or (by count) data
    that no longer gives the run's n-grams; nothing is written then."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    _check_arguments(min_count, entropy)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    arch = load_config(run_dir / CONFIG_FILE).arch
    if arch not in ("markov", "hybrid"):
        raise InputError(f"{run_dir}: a {arch} run has no n-grams; n-gram pruning needs a markov or hybrid run")
    check_new_output(out_dir)
    model, tok, cfg = load_run(run_dir)
    markov = model if arch == "markov" else model.markov
    metadata = read_weights_metadata(run_dir / WEIGHTS_FILE)
    history = (json.loads(metadata["pruned"]) if "pruned" in metadata
               else {"fitted_ngrams": _ngrams(markov), "steps": []})
    data = fit_data(cfg, tok, (run_dir / TOKENIZER_FILE).read_bytes())

    if min_count is not None:
        counts, total = raw_counts(markov, sentences(data))
        if total != history["fitted_ngrams"] or any((c == 0).any() for c in counts):
            raise InputError(f"{run_dir}: its data ([data] in config.toml) is not what it was fitted on ({total:,} "
                             f"n-grams now, {history['fitted_ngrams']:,} then); pruning by count needs that data")
        pruned = prune(markov, [c >= min_count for c in counts])
        step, rule = {"min_count": min_count}, f"count < {min_count}"
    else:
        pruned = prune(markov, [c >= entropy for c in relative_entropy_changes(markov)])
        step, rule = {"entropy": entropy}, f"Stolcke entropy, threshold {entropy:g}"
    if arch == "markov":
        after = pruned
    else:
        after = copy.copy(model)  # the same neural part and weight w
        after.markov = pruned
    before_score, after_score = _score(model, tok, cfg, data), _score(after, tok, cfg, data)
    history["steps"].append({**step, "ngrams": _ngrams(pruned)})

    with atomic_directory(out_dir) as staging:
        copy_kept(run_dir, staging)
        pruned.save(staging, {**metadata, "pruned": json.dumps(history)})
        fit = json.loads((run_dir / FIT_FILE).read_text(encoding="utf-8"))
        with atomic_write(staging / FIT_FILE, "w") as fh:
            json.dump({**fit, "ngrams": _ngrams(pruned), "pruned": history["steps"]}, fh, indent=2)
        bytes_before, bytes_after = (run_dir / WEIGHTS_FILE).stat().st_size, (staging / WEIGHTS_FILE).stat().st_size
    removed = _ngrams(markov) - _ngrams(pruned)
    score = f", {before_score[0]} {before_score[1]:.4f} -> {after_score[1]:.4f}" if before_score else ""
    return (f"pruned {removed:,} of {_ngrams(markov):,} n-grams ({rule}): tables {_size(bytes_before)} -> "
            f"{_size(bytes_after)}{score} -> {out_dir}")
