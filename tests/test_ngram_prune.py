"""n-gram pruning (minillm.compress.ngram): which n-grams go, proper distributions after, Stolcke's criterion
against a brute-force divergence, kenlm parity on the pruned ARPA file, the CLI and its refusals."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import train_tiny_run

from minillm.cli import main
from minillm.compress.ngram import prune, prune_ngram_run, raw_counts, relative_entropy_changes
from minillm.core.errors import InputError
from minillm.evaluation.report import read_run
from minillm.models.base import FitData
from minillm.models.markov import BOS_ID, EOS_ID, UNK_ID, MarkovChain, MarkovConfig, sentences

V = 40


def source_text(seed: int, tokens: int) -> np.ndarray:
    """Sentences of a fixed random second-order source over ids 4..V-1: each pair of tokens is followed by
    one of a few tokens, so a trigram model has structure to learn and pruning has something to lose."""
    table = np.random.default_rng(0).integers(4, V, size=(V, V, 3))
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < tokens:
        sentence = list(rng.integers(4, V, size=2))
        for _ in range(rng.integers(4, 20)):
            sentence.append(int(table[sentence[-2], sentence[-1], rng.integers(3)]))
        out += sentence + [EOS_ID]
    return np.array(out)


def fitted(order: int = 3) -> tuple[MarkovChain, FitData]:
    data = FitData(tokenizer=None, text=source_text(1, 4000), val_text=None, qa=[], qa_answer_start=[])
    model = MarkovChain(MarkovConfig(vocab_size=V, order=order))
    model.fit(data)
    return model, data


def by_count(model: MarkovChain, data: FitData, min_count: int) -> MarkovChain:
    counts, _ = raw_counts(model, sentences(data))
    return prune(model, [c >= min_count for c in counts])


def by_entropy(model: MarkovChain, threshold: float) -> MarkovChain:
    return prune(model, [c >= threshold for c in relative_entropy_changes(model)])


def heldout_loss(model: MarkovChain) -> float:
    ids = torch.from_numpy(np.r_[EOS_ID, source_text(2, 2000)])[None]
    return float(-model.log_prob(ids).double().mean())


def test_counts_below_k_disappear_and_the_rest_stay():
    model, data = fitted(order=4)
    counts, total = raw_counts(model, sentences(data))
    assert total == sum(len(keys) for keys, _, _ in model.tables)  # the recount finds what fit counted
    for min_count in (2, 3):
        pruned = by_count(model, data, min_count)
        assert pruned.tables[0][0].tolist() == list(range(V))  # unigrams always stay
        assert np.array_equal(pruned.tables[0][1], model.tables[0][1])
        for (keys, log_probs, _), (new_keys, new_log_probs, _), c in zip(model.tables[1:], pruned.tables[1:],
                                                                          counts, strict=True):
            assert 0 < len(new_keys) < len(keys)
            assert np.array_equal(new_keys, keys[c >= min_count])  # nothing else added back for the hierarchy
            assert np.array_equal(new_log_probs, log_probs[c >= min_count])  # kept n-grams keep their p


def test_pruning_by_count_twice_is_pruning_once_by_the_larger_count():
    model, data = fitted()
    twice, once = by_count(by_count(model, data, 2), data, 3), by_count(model, data, 3)
    for (keys, log_probs, backoffs), (keys_1, log_probs_1, backoffs_1) in zip(twice.tables, once.tables, strict=True):
        assert np.array_equal(keys, keys_1) and np.array_equal(log_probs, log_probs_1)
        assert np.allclose(backoffs, backoffs_1, atol=1e-5)


@pytest.mark.parametrize("method", ["count 2", "count 3", "entropy 1e-4", "entropy 1e-2"])
def test_every_context_sums_to_one_and_keeps_the_hierarchy(method):
    model, data = fitted()
    kind, value = method.split()
    pruned = by_count(model, data, int(value)) if kind == "count" else by_entropy(model, float(value))
    assert sum(len(k) for k, _, _ in pruned.tables) < sum(len(k) for k, _, _ in model.tables)
    (_, _, _), (bigrams, _, _), (trigrams, _, _) = pruned.tables
    assert np.isin(trigrams // V, bigrams).all() and np.isin(trigrams % V ** 2, bigrams).all()
    pruned_contexts = [[int(k // V), int(k % V)] for k in model.tables[2][0][~np.isin(model.tables[2][0], trigrams)]]
    contexts = pruned_contexts[:4] + [[BOS_ID], [BOS_ID, 5], [EOS_ID], [7, 9], [UNK_ID, 8], [39, 38]]
    for context in contexts:
        log_probs = pruned.next_log_probs(context).double()
        assert log_probs.exp().sum().item() == pytest.approx(1.0, abs=1e-5), context
        rows = torch.tensor([context + [w] for w in range(V)])  # log_prob's batched path: the same numbers
        assert torch.allclose(pruned.log_prob(rows)[:, -1].double(), log_probs, atol=1e-6)


def test_stolcke_criterion_is_the_divergence_of_backing_off_one_ngram():
    model, _ = fitted()
    changes = relative_entropy_changes(model)
    keys = model.tables[2][0]
    after_bos = np.flatnonzero(keys // V ** 2 == BOS_ID)  # histories <s> a, weighted by p(</s>) p(a | <s>)
    inside = np.flatnonzero(keys // V ** 2 != BOS_ID)
    for i in np.r_[after_bos[::len(after_bos) // 3][:3], inside[::len(inside) // 3][:3]]:
        h = [int(keys[i] // V ** 2), int(keys[i] // V % V)]
        keep = [np.ones(len(c), bool) for c in changes]
        keep[1][i] = False
        without = prune(model, keep)
        p, q = model.next_log_probs(h).double(), without.next_log_probs(h).double()
        mask = p > -math.inf
        unigrams = model.next_log_probs([0])  # <pad> is never a context: the unigram distribution
        log_history = float(unigrams[EOS_ID if h[0] == BOS_ID else h[0]] + model.next_log_probs(h[:1])[h[1]])
        divergence = math.exp(log_history) * float((p[mask].exp() * (p[mask] - q[mask])).sum())
        assert changes[1][i] == pytest.approx(math.expm1(divergence), rel=2e-3, abs=1e-9)


def test_a_higher_entropy_threshold_prunes_more_and_loses_more():
    model, _ = fitted()
    sizes, losses, kept = [], [], None
    for threshold in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
        pruned = by_entropy(model, threshold)
        keys = set(np.concatenate([k for k, _, _ in pruned.tables[1:]]).tolist())
        assert kept is None or keys <= kept  # nested: a larger E removes a superset
        kept = keys
        sizes.append(sum(len(k) for k, _, _ in pruned.tables))
        losses.append(heldout_loss(pruned))
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert heldout_loss(model) <= losses[0] and losses == sorted(losses) and losses[0] < losses[-1]


@pytest.mark.parametrize("method", ["count 2", "entropy 1e-3"])
def test_kenlm_scores_the_pruned_arpa_file_as_minillm(tmp_path, method):
    kenlm = pytest.importorskip("kenlm")
    model, data = fitted(order=4)
    kind, value = method.split()
    pruned = by_count(model, data, int(value)) if kind == "count" else by_entropy(model, float(value))
    pruned.to_arpa(tmp_path / "pruned.arpa")
    lm = kenlm.Model(str(tmp_path / "pruned.arpa"))
    words = {BOS_ID: "<s>", EOS_ID: "</s>", UNK_ID: "<unk>"}
    heldout = source_text(2, 300).tolist()
    sentences_ = [heldout[:heldout.index(EOS_ID)], [5, 7, UNK_ID, 9, 33, 38, UNK_ID, 3, 6, 12, 7], [39]]
    for sentence in sentences_:
        expected = [score for score, _, _ in lm.full_scores(" ".join(words.get(t, f"t{t}") for t in sentence))]
        ours = pruned.log_prob(torch.tensor([[BOS_ID] + sentence + [EOS_ID]]))[0] / math.log(10)
        assert ours.tolist() == pytest.approx(expected, abs=1e-4)


# --- runs and the CLI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def markov_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("markov"), {"arch": "markov", "max_seq_len": 96})


def test_cli_prunes_a_markov_run_that_every_command_takes(markov_run, tmp_path, capsys):
    kenlm = pytest.importorskip("kenlm")
    out, again = tmp_path / "k2", tmp_path / "k2-e"
    assert main(["compress", "prune", str(markov_run), "--min-count", "2", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("pruned ") and "(count < 2)" in line and "val QA loss" in line and str(out) in line
    assert main(["ask", str(out), "What is the Sun?"]) == 0
    assert capsys.readouterr().out.strip()
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "fit.json", "metrics.jsonl",
                                                      "model.safetensors", "tokenizer.json"]
    fit = json.loads((out / "fit.json").read_text())
    assert fit["pruned"] == [{"min_count": 2, "ngrams": fit["ngrams"]}]
    assert fit["ngrams"] < json.loads((markov_run / "fit.json").read_text())["ngrams"]
    # an already pruned run prunes further
    assert main(["compress", "prune", str(out), "--entropy", "1e-3", "--out", str(again)]) == 0
    assert "Stolcke entropy" in capsys.readouterr().out
    assert main(["export", "arpa", str(again), "--out", str(tmp_path / "again.arpa")]) == 0
    model = MarkovChain.load(again)
    assert kenlm.Model(str(tmp_path / "again.arpa")).order == 3
    assert sum(len(k) for k, _, _ in model.tables) == json.loads((again / "fit.json").read_text())["ngrams"]
    assert read_run(again).parameters < read_run(out).parameters < read_run(markov_run).parameters  # compare
    # and again by count: the recount is checked against the n-grams of the original fit
    assert main(["compress", "prune", str(again), "--min-count", "3", "--out", str(tmp_path / "k3")]) == 0
    steps = json.loads((tmp_path / "k3" / "fit.json").read_text())["pruned"]
    assert [list(step)[0] for step in steps] == ["min_count", "entropy", "min_count"]


def test_a_hybrid_run_prunes_its_ngram_part_and_keeps_the_neural_one(tiny_run, tmp_path, capsys):
    from minillm.models.hybrid import HybridModel
    from minillm.training.config import config_from_dict, load_config
    from minillm.training.trainer import train

    data = {**vars(load_config(tiny_run / "config.toml").data), "tokenizer": str(tiny_run)}
    cfg = config_from_dict({"data": data, "model": {"arch": "hybrid", "max_seq_len": 96, "neural_run": str(tiny_run)},
                            "train": {"pretrain_steps": 1, "finetune_steps": 1}}, "hybrid")
    train(cfg, tmp_path / "hybrid", progress=False)
    out = tmp_path / "pruned"
    assert main(["compress", "prune", str(tmp_path / "hybrid"), "--min-count", "2", "--out", str(out)]) == 0
    assert "(count < 2)" in capsys.readouterr().out
    before, after = HybridModel.load(tmp_path / "hybrid"), HybridModel.load(out)
    assert after.weight == before.weight
    assert sum(len(k) for k, _, _ in after.markov.tables) < sum(len(k) for k, _, _ in before.markov.tables)
    for path in (tmp_path / "hybrid" / "neural").iterdir():
        assert (out / "neural" / path.name).read_bytes() == path.read_bytes()
    assert main(["ask", str(out), "What is the Sun?", "--max-new-tokens", "8"]) == 0


@pytest.mark.parametrize("arguments, message", [
    ({}, "give exactly one of --min-count"),
    ({"min_count": 2, "entropy": 1e-3}, "give exactly one of --min-count"),
    ({"min_count": 1}, "--min-count: must be an integer >= 2"),
    ({"min_count": 2.5}, "--min-count: must be an integer >= 2"),
    ({"min_count": True}, "--min-count: must be an integer >= 2"),
    ({"entropy": 0.0}, "--entropy: must be a finite number > 0"),
    ({"entropy": -1e-3}, "--entropy: must be a finite number > 0"),
    ({"entropy": math.nan}, "--entropy: must be a finite number > 0"),
    ({"entropy": math.inf}, "--entropy: must be a finite number > 0"),
], ids=str)
def test_bad_arguments_are_refused_before_anything_is_written(markov_run, tmp_path, arguments, message):
    with pytest.raises(InputError, match=message):
        prune_ngram_run(markov_run, tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


def test_bad_runs_and_outputs_exit_2_and_write_nothing(markov_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compress", "prune", str(tmp_path / "missing"), "--min-count", "2", "--out", str(out)]) == 2
    with pytest.raises(InputError, match="no such run directory"):
        prune_ngram_run(tmp_path / "missing", out, min_count=2)
    assert main(["compress", "prune", str(markov_run), "--out", str(out)]) == 2
    assert "give exactly one of --min-count" in capsys.readouterr().err
    assert main(["compress", "prune", str(markov_run), "--entropy", "nan", "--out", str(out)]) == 2
    with pytest.raises(SystemExit) as exit_:  # argparse: --min-count takes an integer
        main(["compress", "prune", str(markov_run), "--min-count", "2.5", "--out", str(out)])
    assert exit_.value.code == 2
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["compress", "prune", str(markov_run), "--min-count", "2", "--out", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert main(["compress", "prune", str(markov_run), "--min-count", "2", "--out", str(markov_run)]) == 2


def test_count_pruning_refuses_data_that_changed_since_the_fit(tmp_path):
    run = train_tiny_run(tmp_path, {"arch": "markov", "max_seq_len": 96})
    articles = tmp_path / "articles.jsonl"
    articles.write_text("\n".join(articles.read_text().splitlines()[:-1]) + "\n")  # one article fewer
    with pytest.raises(InputError, match="pruning by count needs that data"):
        prune_ngram_run(run, tmp_path / "out", min_count=2)
    assert not (tmp_path / "out").exists()
