import json
import math

import pytest
import safetensors.torch
import tokenizers
import torch

from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.records import Article, QAPair
from minillm.models import MiniTransformer
from minillm.prompt import encode_qa
from minillm.tokenizer import Tokenizer, train_tokenizer
from minillm.training import data as train_data
from minillm.training import trainer as train_mod
from minillm.training.config import config_from_dict, load_config
from minillm.training.data import IGNORE_INDEX, QAExamples, fixed_text_batches, is_heldout, qa_batch
from minillm.training.runs import TrainingDiverged, load_run
from minillm.training.steps import lm_loss, lr_at, param_groups
from minillm.training.trainer import train

FACTS = [
    ("Sun", "astronomy", "The Sun is a star. It is hot and bright. Planets orbit the Sun."),
    ("Moon", "astronomy", "The Moon orbits the Earth. It has no air. Its light is reflected sunlight."),
    ("Mars", "astronomy", "Mars is a red planet. It has two moons. It is cold and dry."),
    ("Heart", "anatomy", "The heart pumps blood. It has four chambers. It beats all day."),
    ("Lung", "anatomy", "The lungs take in air. They give oxygen to the blood. We have two lungs."),
    ("Cat", "animals", "A cat is a small animal. It hunts mice. It likes to sleep."),
    ("Dog", "animals", "A dog is a loyal animal. It barks. It likes to run and play."),
    ("Nile", "geography", "The Nile is a long river. It flows north. It ends in the sea."),
    ("Alps", "geography", "The Alps are high mountains. They have snow. Many people ski there."),
    ("Water", "chemistry", "Water is made of hydrogen and oxygen. It boils at one hundred degrees."),
    ("Salt", "chemistry", "Salt is made of sodium and chlorine. It dissolves in water."),
    ("Rain", "weather", "Rain falls from clouds. It waters plants. Storms bring heavy rain."),
]


def write_data(tmp_path, n_val=3):
    articles = [Article.create(source="offline", title=t, domain=d, text=x, url=f"https://x/{t}",
                               retrieved_at="2026-01-01T00:00:00+00:00") for t, d, x in FACTS]
    pairs = [QAPair.create(article_id=a.id, domain=a.domain, question=f"What is {a.title}?",
                           answer=a.text.split(". ")[0] + ".", context=a.text, kind="definition")
             for a in articles]
    write_jsonl(tmp_path / "articles.jsonl", articles)
    write_jsonl(tmp_path / "train.jsonl", pairs[n_val:])
    write_jsonl(tmp_path / "val.jsonl", pairs[:n_val])
    return articles, pairs


def tiny_config(tmp_path, model=None, **train):
    """A config for a model of a few thousand parameters on the FACTS data (word tokenizer)."""
    tables = {
        "data": {"articles": str(tmp_path / "articles.jsonl"), "train_qa": str(tmp_path / "train.jsonl"),
                 "val_qa": str(tmp_path / "val.jsonl"), "heldout_fraction": 0.3},
        "tokenizer": {"kind": "word", "vocab_size": 200},
        "model": {"max_seq_len": 32, "emb_dim": 32, "num_layers": 2, "num_heads": 2, "dropout": 0.1,
                  **(model or {})},
        "train": {"seed": 7, "device": "cpu", "batch_size": 4, "pretrain_steps": 12, "finetune_steps": 8,
                  "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 3, "eval_interval": 4, "eval_batches": 2,
                  "log_interval": 2, "checkpoint_interval": 5, **train},
    }
    return config_from_dict(tables, "test")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path)


def weights(path):
    return safetensors.torch.load_file(str(path))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_contents(tmp_path, data):
    cfg = tiny_config(tmp_path)
    run = tmp_path / "run"
    result = train(cfg, run, progress=False)
    assert {p.name for p in run.iterdir()} == {"config.toml", "tokenizer.json", "model.safetensors",
                                               "last.safetensors", "train_state.pt", "metrics.jsonl"}
    assert result.steps == 20 and result.out_dir == run
    assert set(result.final_losses) == {"train", "val_text", "val_qa"}
    assert result.tokens_per_s > 0
    # config.toml rebuilds the run: the same config with the tokenizer's vocab_size filled in
    saved = load_config(run / "config.toml")
    hf = tokenizers.Tokenizer.from_file(str(run / "tokenizer.json"))
    assert saved.model["vocab_size"] == hf.get_vocab_size() > 4
    assert saved.model == {**cfg.model, "vocab_size": hf.get_vocab_size()}
    assert (saved.data, saved.tokenizer, saved.train) == (cfg.data, cfg.tokenizer, cfg.train)
    # safetensors weights load into the model the config describes, and so does the model's own loader
    model = MiniTransformer(saved.model_config())
    assert weights(run / "model.safetensors").keys() == model.state_dict().keys()
    assert MiniTransformer.load(run).config == saved.model_config()
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert (state["phase"], state["step"]) == ("finetune", 8)
    assert_same_weights(state["model"], weights(run / "last.safetensors"))
    events = metrics(run)
    assert {e["event"] for e in events} == {"train", "eval"}
    assert all({"phase", "step", "global_step", "elapsed"} <= e.keys() for e in events)
    assert all({"loss", "lr", "tokens_per_s", "ms_per_step"} <= e.keys() for e in events if e["event"] == "train")
    assert all({"val_text_loss", "val_qa_loss"} <= e.keys() for e in events if e["event"] == "eval")


def test_best_model_is_the_lowest_val_qa_loss_of_finetuning(tmp_path, data):
    run = tmp_path / "run"
    result = train(tiny_config(tmp_path, lr=1e-2, finetune_steps=16), run, progress=False)
    evals = [e for e in metrics(run) if e["event"] == "eval" and e["phase"] == "finetune"]
    assert result.best_val_loss == min(e["val_qa_loss"] for e in evals)
    model, tok, cfg = load_run(run)
    val = train_data.qa_examples(cfg.data.val_qa, cfg, tok, (run / "tokenizer.json").read_bytes())
    x, y = qa_batch(val, range(len(val)), tok.pad_id)
    with torch.no_grad():
        loss = lm_loss(model(x), y, reduction="sum") / (y != IGNORE_INDEX).sum()
    assert loss.item() == pytest.approx(result.best_val_loss, rel=1e-5)


@pytest.mark.parametrize("split_at", [7, 15])  # in pretraining, in fine-tuning
def test_resume_continues_exactly(tmp_path, data, split_at):
    cfg = tiny_config(tmp_path, grad_accum=2)
    straight = train(cfg, tmp_path / "straight", progress=False)
    first = train(cfg, tmp_path / "split", progress=False, max_steps=split_at)
    assert first.steps == split_at
    assert torch.load(tmp_path / "split" / "train_state.pt", weights_only=True)["step"] == split_at % 12
    resumed = train(None, tmp_path / "split", resume=True, progress=False)
    assert resumed.steps == straight.steps == 20
    assert_same_weights(weights(tmp_path / "straight" / "last.safetensors"),
                        weights(tmp_path / "split" / "last.safetensors"))
    assert resumed.best_val_loss == straight.best_val_loss
    # metrics.jsonl reads like one uninterrupted run (timings aside)
    assert strip_timing(metrics(tmp_path / "straight")) == strip_timing(metrics(tmp_path / "split"))


def interrupt_on_call(monkeypatch, n, exc):
    """Make the n-th training loss computation raise ``exc`` (or return it, if it is a tensor)."""
    calls = []
    real = train_mod.summed_nll

    def loss(forward, model, x, y):
        if model.training:
            calls.append(1)
            if len(calls) == n:
                if isinstance(exc, torch.Tensor):
                    return real(forward, model, x, y) * exc
                raise exc
        return real(forward, model, x, y)

    monkeypatch.setattr(train_mod, "summed_nll", loss)


def test_ctrl_c_saves_a_checkpoint_and_resume_is_exact(tmp_path, data, monkeypatch):
    cfg = tiny_config(tmp_path, grad_accum=2, checkpoint_interval=0)
    train(cfg, tmp_path / "straight", progress=False)
    with monkeypatch.context() as patch:
        interrupt_on_call(patch, 2 * 9 + 2, KeyboardInterrupt())  # in the middle of step 10
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "split", progress=False)
    state = torch.load(tmp_path / "split" / "train_state.pt", weights_only=True)
    assert (state["phase"], state["step"]) == ("pretrain", 9)
    train(None, tmp_path / "split", resume=True, progress=False)
    assert_same_weights(weights(tmp_path / "straight" / "last.safetensors"),
                        weights(tmp_path / "split" / "last.safetensors"))


def strip_timing(events):
    return [{k: v for k, v in e.items() if k not in ("elapsed", "tokens_per_s", "ms_per_step")} for e in events]


def test_resume_after_a_crash_redoes_the_steps_after_the_checkpoint(tmp_path, data, monkeypatch):
    cfg = tiny_config(tmp_path, checkpoint_interval=5)
    train(cfg, tmp_path / "straight", progress=False)
    with monkeypatch.context() as patch:
        interrupt_on_call(patch, 9, RuntimeError("power cut"))  # no checkpoint after step 5
        with pytest.raises(RuntimeError, match="power cut"):
            train(cfg, tmp_path / "crashed", progress=False)
    assert max(e["global_step"] for e in metrics(tmp_path / "crashed")) == 8
    train(None, tmp_path / "crashed", resume=True, progress=False)
    assert_same_weights(weights(tmp_path / "straight" / "last.safetensors"),
                        weights(tmp_path / "crashed" / "last.safetensors"))
    # steps 6-8 were logged twice; the resumed run dropped the first copies
    assert strip_timing(metrics(tmp_path / "straight")) == strip_timing(metrics(tmp_path / "crashed"))


def test_finetuning_starts_a_new_best(tmp_path, data, monkeypatch):
    """However low pretraining's validation loss was, model.safetensors ends as the best fine-tuned one."""
    steps = []
    real = train_mod.summed_nll

    def loss(forward, model, x, y):
        if model.training:
            steps.append(1)
            return real(forward, model, x, y)
        return real(forward, model, x, y) * (0.01 if len(steps) <= 12 else 1.0)  # pretraining evals

    monkeypatch.setattr(train_mod, "summed_nll", loss)
    result = train(tiny_config(tmp_path), tmp_path / "run", progress=False)
    evals = [e for e in metrics(tmp_path / "run") if e["event"] == "eval"]
    assert min(e["val_text_loss"] for e in evals if e["phase"] == "pretrain") < 0.1
    assert result.best_val_loss == min(e["val_qa_loss"] for e in evals if e["phase"] == "finetune") > 0.1


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data, monkeypatch):
    cfg = tiny_config(tmp_path, checkpoint_interval=2)
    interrupt_on_call(monkeypatch, 5, torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged, match="pretrain step 5: loss is nan; stopped, .* keeps the last good"):
        train(cfg, tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(t).all() for t in weights(tmp_path / "run" / "last.safetensors").values())
    assert_same_weights(state["model"], weights(tmp_path / "run" / "last.safetensors"))


def test_huge_learning_rate_diverges_with_a_clear_error(tmp_path, data):
    cfg = tiny_config(tmp_path, lr=1e30, min_lr=0.0, warmup_steps=0, grad_clip=0.0)
    with pytest.raises(TrainingDiverged, match="loss is (nan|inf); stopped, no checkpoint was saved before"):
        train(cfg, tmp_path / "run", progress=False)


def test_same_seed_same_loss_curve_other_seed_another(tmp_path, data):
    def losses(run, seed):
        train(tiny_config(tmp_path, seed=seed), tmp_path / run, progress=False)
        return [e.get("loss", e.get("val_qa_loss")) for e in metrics(tmp_path / run)]

    a = losses("a", 1)
    assert a == losses("b", 1)
    assert a != losses("c", 2)


def test_loss_is_masked_to_answer_tokens(tmp_path):
    tok = train_tokenizer([q for q, _, t in FACTS] + [t for _, _, t in FACTS] + ["Question: Answer:?"],
                          kind="char", vocab_size=100)
    ids, mask = encode_qa(tok, "What is the Sun?", "A star.")
    examples = QAExamples(ids=torch.tensor(ids).numpy(), mask=torch.tensor(mask, dtype=torch.uint8).numpy(),
                          offsets=torch.tensor([0, len(ids)]).numpy())
    x, y = qa_batch(examples, [0], tok.pad_id)
    assert x[0].tolist() == ids[:-1]
    # targets are exactly the answer and <eos>; every prompt position is ignored
    scored = y[0] != IGNORE_INDEX
    assert y[0][scored].tolist() == tok.encode(" A star.") + [tok.eos_id]
    assert not scored[:len(ids) - len(tok.encode(" A star.")) - 2].any()
    # so the prompt positions' predictions cannot change the loss
    logits = torch.randn(1, x.size(1), tok.vocab_size)
    changed = logits.clone()
    changed[0, ~scored] = torch.randn(int((~scored).sum()), tok.vocab_size) * 10
    assert torch.equal(lm_loss(logits, y), lm_loss(changed, y))
    expected = torch.nn.functional.cross_entropy(logits[0, scored], y[0, scored])
    assert torch.allclose(lm_loss(logits, y), expected)


def test_padded_batch_ignores_padding(tmp_path):
    examples = QAExamples(ids=torch.tensor([1, 5, 6, 2, 1, 5, 6, 7, 8, 2]).numpy(),
                          mask=torch.tensor([0, 0, 1, 1, 0, 0, 0, 1, 1, 1], dtype=torch.uint8).numpy(),
                          offsets=torch.tensor([0, 4, 10]).numpy())
    x, y = qa_batch(examples, [0, 1], pad_id=0)
    assert x.tolist() == [[1, 5, 6, 0, 0], [1, 5, 6, 7, 8]]
    assert y.tolist() == [[-100, 6, 2, -100, -100], [-100, -100, 7, 8, 2]]


def test_finetuning_lowers_the_val_qa_loss(tmp_path):
    articles, pairs = write_data(tmp_path, n_val=0)
    write_jsonl(tmp_path / "val.jsonl", pairs[::3])  # answers seen in training: it can learn them
    cfg = tiny_config(tmp_path, pretrain_steps=0, finetune_steps=60, lr=1e-2, eval_interval=5,
                      model={"dropout": 0.0})
    result = train(cfg, tmp_path / "run", progress=False)
    evals = [e["val_qa_loss"] for e in metrics(tmp_path / "run") if e["event"] == "eval"]
    vocab = load_config(tmp_path / "run" / "config.toml").model["vocab_size"]
    assert evals[0] < math.log(vocab)  # already learning after 5 steps
    assert result.final_losses["val_qa"] < evals[0] * 0.6


def test_second_run_reads_tokens_from_the_cache(tmp_path, data, cache, monkeypatch):
    cfg = tiny_config(tmp_path, pretrain_steps=2, finetune_steps=2)
    train(cfg, tmp_path / "first", progress=False)
    assert len(list((cache / "tokens").glob("*.npy"))) == 2 + 3 + 3  # text train/val, 2 QA splits
    assert len(list((cache / "tokenizers").glob("*.json"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("tokenized again")

    for name in ("encode", "encode_batch"):
        monkeypatch.setattr(Tokenizer, name, boom)
    monkeypatch.setattr(train_data, "encode_qa", boom)
    monkeypatch.setattr(train_data, "train_tokenizer", boom)
    second = train(cfg, tmp_path / "second", progress=False)
    assert second.steps == 4
    # a changed input file is a cache miss
    write_jsonl(tmp_path / "val.jsonl", data[1][:2])
    with pytest.raises(AssertionError, match="tokenized again"):
        train(cfg, tmp_path / "third", progress=False)


def test_a_given_tokenizer_is_used_as_it_is(tmp_path, data):
    cfg = tiny_config(tmp_path, pretrain_steps=2, finetune_steps=0)
    train(cfg, tmp_path / "first", progress=False)
    for i, given in enumerate([tmp_path / "first", tmp_path / "first" / "tokenizer.json"]):  # run dir or file
        cfg.data.tokenizer = str(given)
        train(cfg, tmp_path / f"again{i}", progress=False)
        assert (tmp_path / f"again{i}" / "tokenizer.json").read_bytes() == \
            (tmp_path / "first" / "tokenizer.json").read_bytes()


def test_pretraining_on_a_plain_text_file(tmp_path):
    text = "\n".join(t for _, _, t in FACTS) * 3
    (tmp_path / "input.txt").write_text(text, encoding="utf-8")
    cfg = tiny_config(tmp_path, finetune_steps=0)
    cfg.data.text = str(tmp_path / "input.txt")
    cfg.data.articles = str(tmp_path / "missing.jsonl")  # never read
    result = train(cfg, tmp_path / "run", progress=False)
    assert set(result.final_losses) == {"train", "val_text"}


def test_heldout_articles_are_stable_and_near_the_fraction():
    ids = [f"offline-{i:04d}" for i in range(4000)]
    held = [i for i in ids if is_heldout(i, 0.1)]
    assert 0.08 < len(held) / len(ids) < 0.12
    assert held == [i for i in ids if is_heldout(i, 0.1)]
    assert set(held) <= {i for i in ids if is_heldout(i, 0.2)}  # growing the fraction only adds articles


def test_validation_windows_are_fixed():
    tokens = torch.arange(100).numpy()
    a = [x.tolist() for x, _ in fixed_text_batches(tokens, 2, 3, 8)]
    assert a == [x.tolist() for x, _ in fixed_text_batches(tokens, 2, 3, 8)]
    assert a[0][0] == list(range(8)) and a[-1][-1] == list(range(91, 99))


def test_learning_rate_schedule():
    assert lr_at(0, 100, 1.0, 0.1, 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 0.1, 10) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, 0.1, 10) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, 0.1, 10) == pytest.approx(0.55)
    assert lr_at(100, 100, 1.0, 0.1, 10) == pytest.approx(0.1)
    assert lr_at(0, 3, 1.0, 0.0, 10) == pytest.approx(1 / 3)  # warmup never outlasts the phase


@pytest.mark.parametrize("tied", [False, True])
def test_weight_decay_only_on_matrices_that_are_not_embeddings(tmp_path, tied):
    cfg = tiny_config(tmp_path, model={"vocab_size": 50, "tie_embeddings": tied})
    model = MiniTransformer(cfg.model_config())
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert all(n.endswith("weight") and "norm" not in n and "emb" not in n for n in decayed)
    assert ("lm_head.weight" in decayed) == (not tied)
    assert "blocks.0.attn.q_proj.weight" in decayed and "blocks.0.mlp.up.weight" in decayed


def test_resume_errors_name_the_file(tmp_path, data):
    run = tmp_path / "run"
    with pytest.raises(InputError, match="config.toml: no such config file"):
        train(None, run, resume=True, progress=False)
    train(tiny_config(tmp_path, pretrain_steps=2, finetune_steps=0), run, progress=False)
    with pytest.raises(InputError, match="already holds a run"):
        train(tiny_config(tmp_path), run, progress=False)
    with pytest.raises(InputError, match=r"\[model\] differs"):
        train(tiny_config(tmp_path, model={"emb_dim": 64}), run, resume=True, progress=False)
    (run / "train_state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="train_state.pt: corrupt checkpoint"):
        train(None, run, resume=True, progress=False)
    torch.save({"step": 3}, run / "train_state.pt")
    with pytest.raises(InputError, match="train_state.pt: not a minillm checkpoint"):
        train(None, run, resume=True, progress=False)
    (run / "train_state.pt").unlink()
    with pytest.raises(InputError, match="train_state.pt: no such file"):
        train(None, run, resume=True, progress=False)


def test_resume_may_extend_training(tmp_path, data):
    run = tmp_path / "run"
    train(tiny_config(tmp_path, finetune_steps=4), run, progress=False)
    result = train(tiny_config(tmp_path, finetune_steps=8), run, resume=True, progress=False)
    assert result.steps == 20
    assert load_config(run / "config.toml").train.finetune_steps == 4  # the file records the first run


def test_load_run_and_its_errors(tmp_path, data):
    run = tmp_path / "run"
    with pytest.raises(InputError, match="no such run directory"):
        load_run(run)
    train(tiny_config(tmp_path, pretrain_steps=2, finetune_steps=0), run, progress=False)
    model, tok, cfg = load_run(run)
    assert not model.training and tok.vocab_size == cfg.model["vocab_size"]
    assert_same_weights(model.state_dict(), weights(run / "model.safetensors"))
    (run / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(InputError, match="model.safetensors: not a safetensors file"):
        load_run(run)
    (run / "model.safetensors").unlink()
    with pytest.raises(InputError, match="model.safetensors: no such file"):
        load_run(run)
    (run / "tokenizer.json").write_text("{")
    with pytest.raises(InputError, match="tokenizer.json: not a valid tokenizer.json"):
        load_run(run)
    (run / "config.toml").write_text("[train]\nlr = -1\n")
    with pytest.raises(InputError, match="config.toml: "):
        load_run(run)


def test_bad_inputs_name_the_file_and_the_reason(tmp_path, data):
    articles, _ = data
    assert all(is_heldout(a.id, 0.999) for a in articles)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    cases = [
        ({"tokenizer": str(tmp_path / "nope.json")}, {}, {}, "nope.json: no such file"),
        ({"text": str(tmp_path / "latin1.txt")}, {}, {}, "latin1.txt: not UTF-8 text"),
        ({"heldout_fraction": 0.999}, {}, {}, "articles.jsonl: every article is held out"),
        ({}, {"max_seq_len": 1024}, {}, "articles.jsonl: .* tokens of pretraining text, need at least"),
        ({}, {}, {"kind": "bpe", "vocab_size": 100}, "articles.jsonl: cannot train a bpe tokenizer"),
    ]
    for i, (data_table, model_table, tokenizer_table, message) in enumerate(cases):
        cfg = tiny_config(tmp_path, model=model_table)
        for key, value in data_table.items():
            setattr(cfg.data, key, value)
        for key, value in tokenizer_table.items():
            setattr(cfg.tokenizer, key, value)
        with pytest.raises(InputError, match=message):
            train(cfg, tmp_path / f"run{i}", progress=False)


def test_resume_of_a_hand_edited_run_is_an_input_error(tmp_path, data):
    run = tmp_path / "run"
    train(tiny_config(tmp_path, pretrain_steps=2, finetune_steps=0), run, progress=False)
    text = (run / "config.toml").read_text().replace("emb_dim = 32", "emb_dim = 64")
    (run / "config.toml").write_text(text)
    with pytest.raises(InputError, match="train_state.pt: does not match config.toml"):
        train(None, run, resume=True, progress=False)


def test_bad_data_is_an_input_error(tmp_path, data):
    cfg = tiny_config(tmp_path)
    cfg.data.articles = str(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="missing.jsonl: no such file"):
        train(cfg, tmp_path / "a", progress=False)
    cfg = tiny_config(tmp_path, model={"max_seq_len": 4})
    with pytest.raises(InputError, match="train.jsonl: no QA pair has an answer token"):
        train(cfg, tmp_path / "b", progress=False)
    cfg = tiny_config(tmp_path)
    cfg.model["vocab_size"] = 6
    with pytest.raises(InputError, match=r"tokenizers/\w+.json: \d+ tokens do not fit model.vocab_size = 6"):
        train(cfg, tmp_path / "c", progress=False)


def test_a_device_this_machine_lacks_is_an_input_error(tmp_path, data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for name in ("cuda", "cuda:1", "mps"):
        with pytest.raises(InputError, match=f"device '{name}': .* not available on this machine"):
            train(tiny_config(tmp_path), tmp_path / "run", device=name, progress=False)
    assert not (tmp_path / "run").exists()  # nothing was done
    assert train_mod.resolve_device("auto") == torch.device("cpu")


def test_qa_context_learns_each_pair_closed_and_open_book(tmp_path, data):
    from dataclasses import replace

    tok = train_tokenizer([a.text for a in data[0]], kind="word", vocab_size=200)
    tok_bytes = tok.hf.to_str().encode()
    cfg = tiny_config(tmp_path, model={"max_seq_len": 64})
    path = str(tmp_path / "train.jsonl")
    closed = train_data.qa_examples(path, cfg, tok, tok_bytes)
    both = train_data.qa_examples(path, replace(cfg, data=replace(cfg.data, qa_context=True)), tok, tok_bytes)
    pairs = data[1][3:]
    assert len(both.offsets) - 1 == 2 * (len(closed.offsets) - 1) == 2 * len(pairs)
    closed_first = both.ids[both.offsets[0]:both.offsets[1]].tolist()
    open_first = both.ids[both.offsets[1]:both.offsets[2]].tolist()
    assert closed_first == encode_qa(tok, pairs[0].question, pairs[0].answer)[0]
    assert open_first == encode_qa(tok, pairs[0].question, pairs[0].answer, context=pairs[0].context)[0]


def test_qa_retrieved_learns_each_pair_with_the_passages_retrieval_finds(tmp_path, data):
    from dataclasses import replace

    from minillm.retrieval.index import Index, passages_context

    tok = train_tokenizer([a.text for a in data[0]], kind="word", vocab_size=200)
    tok_bytes = tok.hf.to_str().encode()
    cfg = tiny_config(tmp_path, model={"max_seq_len": 200})
    cfg = replace(cfg, data=replace(cfg.data, qa_retrieved=2))
    path = str(tmp_path / "train.jsonl")
    examples = train_data.qa_examples(path, cfg, tok, tok_bytes)
    pairs = data[1][3:]
    assert len(examples.offsets) - 1 == 2 * len(pairs)  # closed book, then with the retrieved passages
    index = Index.build(data[0])
    for i, pair in enumerate(pairs):
        passages = index.search(pair.question, 2)
        contexts = train_data.retrieved_contexts(cfg, [pair])
        if pair.article_id in {p.article_id for p in passages}:
            assert contexts[pair.id] == passages_context(passages)  # what an open-book answer reads
        else:  # retrieval missed the pair's passage: it takes the last place
            assert contexts[pair.id].endswith(pair.context.strip())
        got = examples.ids[examples.offsets[2 * i + 1]:examples.offsets[2 * i + 2]].tolist()
        assert got == encode_qa(tok, pair.question, pair.answer, context=contexts[pair.id], max_len=201)[0]


def test_training_pairs_about_held_out_articles_are_left_out(tmp_path, data):
    tok = train_tokenizer([a.text for a in data[0]], kind="word", vocab_size=200)
    tok_bytes = tok.hf.to_str().encode()
    cfg = tiny_config(tmp_path, model={"max_seq_len": 64})  # heldout_fraction 0.3
    path = str(tmp_path / "train.jsonl")
    pairs = data[1][3:]
    kept = [p for p in pairs if not is_heldout(p.article_id, 0.3)]
    assert 0 < len(kept) < len(pairs)  # the fixture holds some out, else this test proves nothing
    assert len(train_data.qa_examples(path, cfg, tok, tok_bytes, training=True)) == len(kept)
    assert len(train_data.qa_examples(path, cfg, tok, tok_bytes)) == len(pairs)  # validation keeps them all


@pytest.mark.parametrize("mode, compiled_as", [("default", None), ("reduce-overhead", None),
                                               ("max-autotune", "max-autotune-no-cudagraphs"),
                                               ("max-autotune-no-cudagraphs", "max-autotune-no-cudagraphs")])
def test_compile_modes_leave_cuda_graphs_out_off_cuda(tmp_path, monkeypatch, mode, compiled_as):
    write_data(tmp_path)
    modes = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: modes.append(kwargs.get("mode")))
    cfg = tiny_config(tmp_path, compile=True, compile_mode=mode, pretrain_steps=1, finetune_steps=1)
    result = train(cfg, tmp_path / "run", progress=False)
    assert modes == [compiled_as] and result.steps == 2
