"""minillm export hf, checked by the real transformers: every shape of run loads with AutoModelForCausalLM and
gives minillm's logits and greedy answers, the tokenizer and chat template give minillm's ids, and bad input
is one line on stderr with nothing written."""

import json

import pytest
import torch
from conftest import tiny_articles, train_tiny_run

from minillm.answering.answer import ANSWER_SAMPLING
from minillm.cli import main
from minillm.export.hf import CUSTOM, GPT2, LLAMA, export_hf, hf_class
from minillm.models import ModelConfig, model_class
from minillm.models.attention import AttentionConfig
from minillm.models.generation import Sampling, adjust_logits
from minillm.models.mlp import MLPConfig
from minillm.prompt import encode_prompt, encode_qa, format_prompt
from minillm.tokenizer import non_answer_ids
from minillm.training.runs import load_run

transformers = pytest.importorskip("transformers", reason="the [export] extra is not installed")

SMALL = {"max_seq_len": 96, "emb_dim": 32, "num_layers": 2, "num_heads": 2}
LLAMA_SHAPE = {"position": "rotary", "norm": "rmsnorm", "activation": "swiglu"}
CASES = {  # name: ([model] table, the transformers class it becomes)
    "llama": ({**SMALL, **LLAMA_SHAPE, "bias": False, "ffn_dim": 48}, LLAMA),
    "llama-tied": ({**SMALL, **LLAMA_SHAPE, "bias": False, "tie_embeddings": True}, LLAMA),
    "gpt2": ({**SMALL, "ffn_dim": 64}, GPT2),  # the defaults: learned positions, LayerNorm, GELU, biases
    "gpt2-no-bias-tied": ({**SMALL, "bias": False, "tie_embeddings": True}, GPT2),
    "copy-head": ({**SMALL, **LLAMA_SHAPE, "copy_head": True}, CUSTOM),  # tiny-cpu's shape
    "shared-layers": ({**SMALL, "share_layers": True, "position": "rotary"}, CUSTOM),  # and a mixed shape
    "attention": ({"arch": "attention", "max_seq_len": 96, "emb_dim": 32, "num_heads": 2}, CUSTOM),
    "mlp": ({"arch": "mlp", "max_seq_len": 96, "context": 4, "emb_dim": 16, "hidden_dim": 32}, CUSTOM),
}
TRAIN = {"pretrain_steps": 10, "finetune_steps": 10}  # few steps: the exported numbers only need to match
QUESTION, CONTEXT = "What is the sun?", "The Sun is a star."
NEW_TOKENS = 24


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (run dir, exported folder, export_hf's summary); each trained and exported on first use."""
    done = {}

    def get(name: str):
        if name not in done:
            root = tmp_path_factory.mktemp(name)
            run = train_tiny_run(root, CASES[name][0], **TRAIN)
            done[name] = run, root / "hf", export_hf(run, root / "hf")
        return done[name]

    return get


def load_hf(folder, custom: bool):
    return transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=custom)


def new_ids(output: torch.Tensor, prompt_len: int, eos_id: int) -> list[int]:
    """The generated ids of a transformers generate output, up to its eos (minillm never yields eos)."""
    ids = output[0, prompt_len:].tolist()
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


@pytest.mark.parametrize("name", CASES)
def test_transformers_gives_minillms_logits_and_greedy_answer(exported, name):
    table, expected_class = CASES[name]
    run, folder, summary = exported(name)
    custom = expected_class == CUSTOM
    model, tok, cfg = load_run(run)
    hf = load_hf(folder, custom)
    assert type(hf).__name__ == expected_class and hf.dtype == torch.float32
    assert summary.startswith(f"wrote {folder}: {expected_class}, ")
    assert ("trust_remote_code=True" in summary and "minillm installed" in summary) == custom
    assert (folder / "modeling_minillm.py").is_file() == custom
    if custom:
        assert isinstance(hf.model, model_class(cfg.arch))
    else:  # an untied head must stay untied in transformers, a tied one shares the embedding matrix
        tied = hf.lm_head.weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr()
        assert tied == table.get("tie_embeddings", False)

    prompt = encode_prompt(tok, QUESTION, CONTEXT)
    with torch.no_grad():
        for ids in (prompt, [tok.bos_id] + tok.encode(tiny_articles()[2].text)[:80]):
            ids = torch.tensor([ids])
            assert (hf(ids).logits - model(ids)).abs().max() < 1e-4

    ids = torch.tensor([prompt])
    expected = list(model.generate(prompt, Sampling(max_new_tokens=NEW_TOKENS), eos_id=tok.eos_id))
    output = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW_TOKENS,
                         repetition_penalty=1.0, suppress_tokens=None, eos_token_id=tok.eos_id)
    assert new_ids(output, len(prompt), tok.eos_id) == expected


def prompt_penalised_greedy(model, prompt: list[int], sampling: Sampling, eos_id: int) -> list[int]:
    """Greedy answer with the repetition penalty on the prompt's tokens as well as the answer's: minillm's
    sampling as transformers counts the penalty (minillm itself counts the answer's tokens only)."""
    ids = list(prompt)
    with torch.no_grad():
        while len(ids) - len(prompt) < sampling.max_new_tokens:
            logits = model(torch.tensor([ids]))[0, -1]
            seen = torch.zeros(logits.numel(), dtype=torch.bool)
            seen[ids] = True
            token = int(adjust_logits(logits, sampling, seen, list(sampling.suppress_tokens)).argmax())
            if token == eos_id:
                break
            ids.append(token)
    return ids[len(prompt):]


def test_shipped_generation_defaults_are_minillms_but_the_penalty_counts_the_prompt(exported):
    run, folder, _ = exported("copy-head")
    model, tok, _ = load_run(run)
    gen = transformers.GenerationConfig.from_pretrained(folder)
    assert (gen.do_sample, gen.max_new_tokens, gen.use_cache) == (False, ANSWER_SAMPLING.max_new_tokens, False)
    assert gen.repetition_penalty == ANSWER_SAMPLING.repetition_penalty
    assert gen.suppress_tokens == sorted(non_answer_ids(tok))
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (tok.bos_id, tok.eos_id, tok.pad_id)
    assert not gen.no_repeat_ngram_size  # it would count the prompt: see export/hf.py
    hf = load_hf(folder, custom=True)
    prompt = encode_prompt(tok, QUESTION, CONTEXT)
    ids = torch.tensor([prompt])
    sampling = Sampling(max_new_tokens=NEW_TOKENS, repetition_penalty=gen.repetition_penalty,
                        suppress_tokens=tuple(gen.suppress_tokens))

    # the defaults as shipped: transformers' repetition penalty also counts the prompt's tokens
    shipped = hf.generate(ids, max_new_tokens=NEW_TOKENS)
    assert new_ids(shipped, len(prompt), tok.eos_id) == prompt_penalised_greedy(model, prompt, sampling, tok.eos_id)
    # minillm's own answer: the same penalty with the prompt left out, as README.md shows
    penalty = transformers.RepetitionPenaltyLogitsProcessor(gen.repetition_penalty, prompt_ignore_length=len(prompt))
    output = hf.generate(ids, max_new_tokens=NEW_TOKENS, repetition_penalty=1.0,
                         logits_processor=transformers.LogitsProcessorList([penalty]))
    assert new_ids(output, len(prompt), tok.eos_id) == list(model.generate(prompt, sampling, eos_id=tok.eos_id))

    with pytest.raises(ValueError, match="no KV cache"):
        hf.generate(ids, max_new_tokens=2, use_cache=True)


def test_tokenizer_and_chat_template_give_minillms_ids(exported):
    run, folder, _ = exported("llama")
    _, tok, _ = load_run(run)
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert (hf_tok.pad_token_id, hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.unk_token_id) == (
        tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id)
    for question, context in [(QUESTION, None), (QUESTION, CONTEXT), ("Where does the Nile flow?", None),
                              ("Who named «Tornado Alley» — and when?", "Tornadoes form.\nThey rotate."),
                              ("How hot does water boil, in °C?", "")]:  # an empty passage counts as none
        messages = [{"role": "user", "content": question}]
        if context is not None:
            messages.insert(0, {"role": "system", "content": context})
        expected = encode_prompt(tok, question, context)
        assert hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"] == expected
        assert hf_tok(format_prompt(question, context)).input_ids == expected  # <bos> in front, as Llama's
        answer = [{"role": "assistant", "content": "It is a star."}]
        assert hf_tok.apply_chat_template(messages + answer, tokenize=True, return_dict=True)["input_ids"] == (
            encode_qa(tok, question, "It is a star.", context)[0])

    for text in [a.text for a in tiny_articles()] + ["Ünïcödé ✓ 漢字, tabs\tand\nnewlines  "]:
        ids = tok.encode(text)
        assert hf_tok(text, add_special_tokens=False).input_ids == ids
        assert hf_tok.decode(ids) == tok.decode(ids) == text
        assert hf_tok.decode([tok.bos_id, *ids, tok.eos_id], skip_special_tokens=True) == text


@pytest.mark.parametrize("arch, config, expected", [
    ("transformer", {**LLAMA_SHAPE, "bias": False}, LLAMA),
    ("transformer", {**LLAMA_SHAPE, "bias": False, "tie_embeddings": True, "norm_eps": 1e-6}, LLAMA),
    ("transformer", {**LLAMA_SHAPE, "bias": True}, CUSTOM),  # Llama-shaped means no biases here
    ("transformer", {}, GPT2),
    ("transformer", {"bias": False, "tie_embeddings": True, "ffn_dim": 128}, GPT2),
    ("transformer", {"position": "rotary"}, CUSTOM),  # mixed shapes
    ("transformer", {"norm": "rmsnorm"}, CUSTOM),
    ("transformer", {**LLAMA_SHAPE, "bias": False, "activation": "gelu"}, CUSTOM),
    ("transformer", {**LLAMA_SHAPE, "bias": False, "copy_head": True}, CUSTOM),
    ("transformer", {"share_layers": True}, CUSTOM),
    ("attention", None, CUSTOM),
    ("mlp", None, CUSTOM),
])
def test_each_shape_becomes_its_transformers_class(arch, config, expected):
    if arch == "attention":
        model_config = AttentionConfig(vocab_size=300, max_seq_len=96, emb_dim=32, num_heads=2)
    elif arch == "mlp":
        model_config = MLPConfig(vocab_size=300, max_seq_len=96)
    else:
        model_config = ModelConfig(vocab_size=300, **SMALL, **config)
    assert hf_class(arch, model_config) == expected


def test_cli_writes_the_folder_and_prints_one_line(exported, tmp_path, capsys):
    run, _, _ = exported("llama")
    out = tmp_path / "hf"
    assert main(["export", "hf", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: LlamaForCausalLM, ") and printed.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "auto_map" not in config
    card = (out / "README.md").read_text()
    assert "CC BY-SA 4.0" in card and str(run) in card and "trust_remote_code" not in card


@pytest.mark.parametrize("problem", ["pattern-run", "out-not-empty", "no-run-dir"])
def test_cli_bad_input_is_one_line_and_writes_nothing(exported, tmp_path, capsys, problem):
    run, out = exported("llama")[0], tmp_path / "hf"
    if problem == "pattern-run":
        run = train_tiny_run(tmp_path / "pattern", {"arch": "pattern", "max_seq_len": 96})
        expected = f"export hf: {run} is a pattern run"
    elif problem == "out-not-empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        expected = f"{out}: already exists and is not empty"
    else:
        run = tmp_path / "missing"
        expected = f"{run}: not a run directory"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", "hf", str(run), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and expected in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, no temporary left behind
    if problem == "out-not-empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
