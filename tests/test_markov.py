"""Rung 1, the Kneser-Ney n-gram model: proper distributions, hand-computed counts, kenlm parity, the CLI."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_articles, tiny_pairs

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.models import MODELS
from minillm.models.base import FitData
from minillm.models.generation import Sampling
from minillm.models.markov import BOS_ID, EOS_ID, UNK_ID, MarkovChain, MarkovConfig, kneser_ney_counts
from minillm.tokenizer import train_tokenizer
from minillm.training.config import config_from_dict, load_config, save_config, shipped_config

V = 40  # ids 4..24 in articles, 4..29 in QA pairs; 30..39 never seen


def synthetic_data() -> FitData:
    rng = np.random.default_rng(0)
    docs = [list(rng.integers(UNK_ID, 25, size=rng.integers(3, 30))) for _ in range(60)]  # <unk> included
    text = np.array([t for doc in docs for t in doc + [EOS_ID]])
    qa = [[BOS_ID] + list(rng.integers(4, 30, size=10)) + [EOS_ID] for _ in range(20)]
    return FitData(tokenizer=None, text=text, val_text=None, qa=qa, qa_answer_start=[3] * len(qa))


@pytest.fixture(scope="module", params=[1, 2, 3, 4])
def fitted(request) -> MarkovChain:
    model = MarkovChain(MarkovConfig(vocab_size=V, order=request.param))
    model.fit(synthetic_data())
    return model


def test_registered_and_shipped():
    assert MODELS["markov"] is MarkovChain and MarkovChain.trained_by == "fit"
    cfg = load_config(shipped_config("markov"))
    assert cfg.arch == "markov" and cfg.model["order"] == 3


@pytest.mark.parametrize("context", [[BOS_ID], [BOS_ID, 5, 7], [EOS_ID], [9, 9, 9, 9], [5, UNK_ID, 8],
                                     [BOS_ID, 5, 33], [39, 38, 31]], ids=str)
def test_distribution_over_the_vocabulary_sums_to_one(fitted, context):
    log_probs = fitted.next_log_probs(context).double()
    assert log_probs.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert log_probs[BOS_ID] == -math.inf  # <s> is never predicted
    rows = torch.tensor([context + [w] for w in range(V)])  # log_prob's batched path gives the same numbers
    assert torch.allclose(fitted.log_prob(rows)[:, -1].double(), log_probs, atol=1e-6)


def test_kneser_ney_counts_by_hand():
    a, b, c = 4, 5, 6  # <s> a b </s>  <s> c b </s>  <s> a b </s>
    stream = np.array([BOS_ID, a, b, EOS_ID, BOS_ID, c, b, EOS_ID, BOS_ID, a, b, EOS_ID])
    (_, unigrams), (bigram_keys, bigrams), (trigram_keys, trigrams) = kneser_ney_counts(stream, 3, vocab_size=7)
    # continuation counts: b follows a and c; a, c follow <s>; </s> follows b
    assert unigrams.tolist() == [0, 0, 1, 0, 1, 2, 1]
    found = dict(zip(((k // 7, k % 7) for k in bigram_keys.tolist()), bigrams.tolist(), strict=True))
    # "<s> x" keeps its raw count; "a b" and "c b" follow only <s>; "b </s>" follows a and c
    assert found == {(BOS_ID, a): 2, (BOS_ID, c): 1, (a, b): 1, (c, b): 1, (b, EOS_ID): 2}
    found = dict(zip(((k // 49, k // 7 % 7, k % 7) for k in trigram_keys.tolist()), trigrams.tolist(), strict=True))
    assert found == {(BOS_ID, a, b): 2, (a, b, EOS_ID): 2, (BOS_ID, c, b): 1, (c, b, EOS_ID): 1}  # raw counts


def test_probabilities_by_hand():
    a, b, c = 4, 5, 6  # order 2 on <s> a b </s> <s> c b </s>, vocabulary of 7 (6 predictable: no <s>)
    model = MarkovChain(MarkovConfig(vocab_size=7, order=2))
    model.fit(FitData(tokenizer=None, text=np.array([a, b, EOS_ID, c, b, EOS_ID]), val_text=None, qa=[],
                      qa_answer_start=[]))
    # unigrams: continuation counts eos 1, a 1, b 2, c 1 (total 5); n1 = 3, n2 = 1: D = 3 / 5 = 0.6,
    # gamma = 0.6 * 4 / 5 = 0.48; p(b) = (2 - 0.6) / 5 + 0.48 / 6 = 0.36, p(<pad>) = 0.08
    unigram = model.next_log_probs([0]).double().exp()  # <pad> was never a context: plain unigrams
    assert unigram[b].item() == pytest.approx(0.36, abs=1e-6)
    assert unigram[0].item() == pytest.approx(0.08, abs=1e-6)
    # bigrams (raw): <s>a 1, <s>c 1, ab 1, cb 1, b</s> 2; n1 = 4, n2 = 1: D = 4 / 6; after a, gamma = 2/3
    assert model.next_log_probs([a]).double().exp()[b].item() == pytest.approx(1 / 3 + 2 / 3 * 0.36, abs=1e-6)


def test_held_out_perplexity_beats_uniform():
    articles = tiny_articles()
    tok = train_tokenizer([x.text for x in articles], kind="char", vocab_size=100)

    def stream(texts):
        return np.array([t for text in texts for t in tok.encode(text) + [tok.eos_id]])

    data = FitData(tokenizer=tok, text=stream([x.text for x in articles[1:]]),
                   val_text=stream([articles[0].text]), qa=[], qa_answer_start=[])
    model = MarkovChain(MarkovConfig(vocab_size=tok.vocab_size, order=3))
    loss = model.fit(data)["val_text_loss"]
    assert loss < 0.7 * math.log(tok.vocab_size - 1)


@pytest.mark.parametrize("order", [1, 3])
def test_save_load_gives_identical_scores_and_answers(tmp_path, order):
    model = MarkovChain(MarkovConfig(vocab_size=V, max_seq_len=24, order=order))
    model.fit(synthetic_data())
    model.save(tmp_path)
    loaded = MarkovChain.load(tmp_path)
    ids = torch.randint(0, V, (4, 20))
    assert torch.equal(model.log_prob(ids), loaded.log_prob(ids))
    prompt = [BOS_ID, 5, 7]
    for sampling in (Sampling(max_new_tokens=30), Sampling(max_new_tokens=30, temperature=1.0, top_k=10, seed=3)):
        answer = list(model.generate(prompt, sampling, eos_id=EOS_ID))
        assert answer == list(loaded.generate(prompt, sampling, eos_id=EOS_ID))
        assert len(prompt) + len(answer) <= 24 and BOS_ID not in answer
    assert (loaded.num_parameters(), loaded.size_bytes()) == (model.num_parameters(), model.size_bytes())
    assert model.size_bytes() < (tmp_path / "model.safetensors").stat().st_size < model.size_bytes() + 4096


@pytest.mark.parametrize("order", [2, 3, 4])
def test_arpa_file_scores_the_same_in_kenlm(tmp_path, order):
    kenlm = pytest.importorskip("kenlm")
    model = MarkovChain(MarkovConfig(vocab_size=V, order=order))
    model.fit(synthetic_data())
    path = tmp_path / "model.arpa"
    assert model.to_arpa(path) == sum(len(keys) for keys, _, _ in model.tables)
    lm = kenlm.Model(str(path))
    words = {BOS_ID: "<s>", EOS_ID: "</s>", UNK_ID: "<unk>"}
    sentences = [[5, 7, UNK_ID, 9, 33, 38, UNK_ID, 3, 6, 12, 7],  # unseen words (33, 38) and n-grams
                 [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
                 [39]]
    for sentence in sentences:
        expected = [score for score, _, _ in lm.full_scores(" ".join(words.get(t, f"t{t}") for t in sentence))]
        ours = model.log_prob(torch.tensor([[BOS_ID] + sentence + [EOS_ID]]))[0] / math.log(10)
        assert ours.tolist() == pytest.approx(expected, abs=1e-4)
    # a stream of sentences scores like kenlm sentence by sentence: after </s> comes <s>
    stream = [BOS_ID] + sentences[0] + [EOS_ID] + sentences[1] + [EOS_ID]
    ours = model.log_prob(torch.tensor([stream]))[0] / math.log(10)
    expected = [s for sentence in sentences[:2]
                for s, _, _ in lm.full_scores(" ".join(words.get(t, f"t{t}") for t in sentence))]
    assert ours.tolist() == pytest.approx(expected, abs=1e-4)


def write_markov_config(tmp_path, extra: str = "") -> str:
    articles = tiny_articles()
    write_jsonl(tmp_path / "articles.jsonl", articles)
    pairs = tiny_pairs(articles)
    write_jsonl(tmp_path / "train.jsonl", pairs[2:])
    write_jsonl(tmp_path / "val.jsonl", pairs[:2])
    path = tmp_path / "markov.toml"
    path.write_text(f"""
[data]
articles = "{tmp_path / 'articles.jsonl'}"
train_qa = "{tmp_path / 'train.jsonl'}"
val_qa = "{tmp_path / 'val.jsonl'}"
heldout_fraction = 0.0

[tokenizer]
kind = "bpe"
vocab_size = 300

[model]
arch = "markov"
max_seq_len = 96
{extra}

[train]
pretrain_steps = 1
finetune_steps = 1
""")
    return str(path)


def test_train_ask_and_export_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    config = write_markov_config(tmp_path)
    run = str(tmp_path / "run")
    assert main(["train", "--config", config, "--out", run, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["ask", run, "What is the sun?"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["export", "arpa", run, "--out", str(tmp_path / "run.arpa")]) == 0
    assert (tmp_path / "run.arpa").read_text().startswith("\\data\\\nngram 1=")


def test_order_zero_is_a_config_error(tmp_path):
    with pytest.raises(InputError, match=r"markov.toml: model: order must be a positive integer, got 0"):
        load_config(write_markov_config(tmp_path, "order = 0"))


def test_export_arpa_of_a_neural_run_exits_2(tmp_path, capsys):
    run = tmp_path / "transformer"  # export reads only config.toml before it refuses
    save_config(config_from_dict({"model": {"max_seq_len": 16, "emb_dim": 8, "num_layers": 1, "num_heads": 1}}),
                run / "config.toml")
    out = tmp_path / "x.arpa"
    assert main(["export", "arpa", str(run), "--out", str(out)]) == 2
    assert "has no n-gram tables" in capsys.readouterr().err
    assert not out.exists()
