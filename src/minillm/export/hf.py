"""`minillm export hf RUN --out DIR`: a neural run as a Hugging Face folder that transformers loads.

    >>> print(export_hf("runs/tiny-cpu", "hf-tiny-cpu"))
    wrote hf-tiny-cpu: MinillmForCausalLM, 1.48M parameters (AutoModelForCausalLM with trust_remote_code=True; ...)

The folder: config.json, model.safetensors, generation_config.json, tokenizer.json, tokenizer_config.json,
special_tokens_map.json, README.md (a model card), and for custom code configuration_minillm.py and
modeling_minillm.py.

Design choices:
- Three shapes. A transformer run with rotary positions, RMSNorm, SwiGLU and no biases becomes a standard
  ``LlamaForCausalLM``; one with learned positions, LayerNorm and GELU a standard ``GPT2LMHeadModel``. Every
  other neural run (a copy head, shared layers, a mixed shape, the attention and mlp rungs) ships the code
  in export/hf_remote/, which runs minillm's own model class: loading needs ``trust_remote_code=True`` and
  minillm installed.
- Weights are renamed (for GPT-2 also transposed and fused), never changed, so logits agree to float
  rounding: minillm's rotary pairs (x[i], x[i + head_dim/2]) as HF Llama's rotate_half does, with base
  10000, and minillm's GELU is the exact one (GPT-2's ``activation_function = "gelu"``, not "gelu_new").
  A GPT-2-shaped run without biases gets zero biases: GPT-2 always has them, and zeros change nothing.
- Exporting needs no transformers: every file is JSON, safetensors or text written here (the tests load
  each shape with the real transformers).
- The tokenizer is the run's tokenizer.json plus a post-processor that puts ``<bos>`` in front, as Llama's
  tokenizers do (transformers 5 ignores ``add_bos_token`` in tokenizer_config.json when there is a
  tokenizer.json), so ``tok(format_prompt(question))`` gives ``encode_prompt``'s ids. The chat template
  starts with ``<bos>`` itself: transformers tokenizes a rendered template without adding special tokens.
  A literal "<eos>" in text becomes the special id, which minillm's own wrapper never does (tokenizer.py);
  any other text gets the same ids.
- The chat template is minillm's one prompt format: the last user message is the question, a system
  message the retrieved passage(s) (open book), an assistant message after the question its answer (then
  it renders ``encode_qa``'s training sequence, ``<eos>`` included).
- generation_config.json holds minillm's answer defaults (engine.ANSWER_SAMPLING) as far as transformers
  has them: ``generation_config`` says which it lacks and where its repetition penalty differs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import tokenizers
import torch
from tokenizers import processors

from minillm.answering.answer import ANSWER_SAMPLING
from minillm.core.files import atomic_directory, check_new_output
from minillm.core.numbers import human_count
from minillm.export import llama_shape_problems, neural_run
from minillm.models.weights import write_safetensors
from minillm.tokenizer import SPECIAL_TOKENS, TOKENIZER_FILE, non_answer_ids
from minillm.training.runs import WEIGHTS_FILE

REMOTE_CODE = Path(__file__).parent / "hf_remote"  # configuration_minillm.py, modeling_minillm.py
LLAMA, GPT2, CUSTOM = "LlamaForCausalLM", "GPT2LMHeadModel", "MinillmForCausalLM"
PAD, BOS, EOS, UNK = SPECIAL_TOKENS
SPECIAL_TOKENS_MAP = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK}

# tokenizer.format_prompt (and encode_qa's answer) as a Jinja chat template
CHAT_TEMPLATE = (
    "{%- set ns = namespace(context='', question='', answer=none) -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{%- set ns.context = message['content'] -%}"
    "{%- elif message['role'] == 'user' -%}{%- set ns.question = message['content'] -%}"
    "{%- set ns.answer = none -%}"
    "{%- elif message['role'] == 'assistant' -%}{%- set ns.answer = message['content'] -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- bos_token -}}"
    "{%- if ns.context -%}{{- 'Context: ' + ns.context + '\\n' -}}{%- endif -%}"
    "{{- 'Question: ' + ns.question -}}"
    "{%- if ns.answer is not none -%}{{- '\\nAnswer: ' + ns.answer + eos_token -}}"
    "{%- elif add_generation_prompt -%}{{- '\\nAnswer:' -}}"
    "{%- endif -%}"
)


def hf_class(arch: str, config: Any) -> str:
    """The transformers class a run's model becomes: LLAMA, GPT2 or CUSTOM."""
    if arch != "transformer" or config.copy_head or config.share_layers:
        return CUSTOM
    if not llama_shape_problems(config):
        return LLAMA
    if (config.position, config.norm, config.activation) == ("learned", "layernorm", "gelu"):
        return GPT2
    return CUSTOM


def llama(model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """LlamaConfig's fields and LlamaForCausalLM's weights for a Llama-shaped MiniTransformer."""
    c = model.config
    config = {"model_type": "llama", "vocab_size": c.vocab_size, "hidden_size": c.emb_dim,
              "intermediate_size": c.hidden_dim, "num_hidden_layers": c.num_layers,
              "num_attention_heads": c.num_heads, "num_key_value_heads": c.num_heads, "head_dim": c.head_dim,
              "hidden_act": "silu", "max_position_embeddings": c.max_seq_len, "rms_norm_eps": c.norm_eps,
              "rope_theta": 10000.0,
              "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": c.tie_embeddings}
    weights = {"model.embed_tokens.weight": model.tok_emb.weight, "model.norm.weight": model.norm_f.weight}
    for i, block in enumerate(model.blocks):
        layer = f"model.layers.{i}"
        weights |= {f"{layer}.input_layernorm.weight": block.norm1.weight,
                    f"{layer}.self_attn.q_proj.weight": block.attn.q_proj.weight,
                    f"{layer}.self_attn.k_proj.weight": block.attn.k_proj.weight,
                    f"{layer}.self_attn.v_proj.weight": block.attn.v_proj.weight,
                    f"{layer}.self_attn.o_proj.weight": block.attn.out_proj.weight,
                    f"{layer}.post_attention_layernorm.weight": block.norm2.weight,
                    f"{layer}.mlp.gate_proj.weight": block.mlp.gate.weight,
                    f"{layer}.mlp.up_proj.weight": block.mlp.up.weight,
                    f"{layer}.mlp.down_proj.weight": block.mlp.down.weight}
    if model.lm_head is not None:  # tied: no lm_head.weight, transformers ties it to embed_tokens
        weights["lm_head.weight"] = model.lm_head.weight
    return config, weights


def gpt2(model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """GPT2Config's fields and GPT2LMHeadModel's weights for a GPT-2-shaped MiniTransformer. GPT-2's Conv1D
    layers store weights as (in, out), nn.Linear's transposed; c_attn holds q, k and v side by side."""
    c = model.config
    config = {"model_type": "gpt2", "vocab_size": c.vocab_size, "n_positions": c.max_seq_len,
              "n_embd": c.emb_dim, "n_layer": c.num_layers, "n_head": c.num_heads, "n_inner": c.hidden_dim,
              "activation_function": "gelu", "layer_norm_epsilon": c.norm_eps, "resid_pdrop": c.dropout,
              "embd_pdrop": c.dropout, "attn_pdrop": c.dropout, "tie_word_embeddings": c.tie_embeddings}

    def bias(module: torch.nn.Module) -> torch.Tensor:
        return module.bias if module.bias is not None else torch.zeros(module.weight.size(0))

    weights = {"transformer.wte.weight": model.tok_emb.weight, "transformer.wpe.weight": model.pos_emb.weight,
               "transformer.ln_f.weight": model.norm_f.weight, "transformer.ln_f.bias": bias(model.norm_f)}
    for i, block in enumerate(model.blocks):
        layer, attn, mlp = f"transformer.h.{i}", block.attn, block.mlp
        qkv = (attn.q_proj, attn.k_proj, attn.v_proj)
        weights |= {f"{layer}.ln_1.weight": block.norm1.weight, f"{layer}.ln_1.bias": bias(block.norm1),
                    f"{layer}.attn.c_attn.weight": torch.cat([p.weight for p in qkv]).T,
                    f"{layer}.attn.c_attn.bias": torch.cat([bias(p) for p in qkv]),
                    f"{layer}.attn.c_proj.weight": attn.out_proj.weight.T,
                    f"{layer}.attn.c_proj.bias": bias(attn.out_proj),
                    f"{layer}.ln_2.weight": block.norm2.weight, f"{layer}.ln_2.bias": bias(block.norm2),
                    f"{layer}.mlp.c_fc.weight": mlp.up.weight.T, f"{layer}.mlp.c_fc.bias": bias(mlp.up),
                    f"{layer}.mlp.c_proj.weight": mlp.down.weight.T, f"{layer}.mlp.c_proj.bias": bias(mlp.down)}
    if model.lm_head is not None:  # tied: no lm_head.weight, transformers ties it to wte
        weights["lm_head.weight"] = model.lm_head.weight
    return config, weights


def custom(model: torch.nn.Module, arch: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """MinillmConfig's fields (hf_remote/) and the model's own state dict under ``model.``."""
    config = {"model_type": "minillm", "arch": arch, "minillm_config": dataclasses.asdict(model.config),
              "use_cache": False,
              "auto_map": {"AutoConfig": "configuration_minillm.MinillmConfig",
                           "AutoModelForCausalLM": f"modeling_minillm.{CUSTOM}"}}
    return config, {f"model.{name}": t for name, t in model.state_dict().items()}


def generation_config(tok: Any, hf_name: str) -> dict[str, Any]:
    """minillm's answer defaults (engine.ANSWER_SAMPLING with engine.answer_sampling's suppressed tokens).

    Left out: minillm's ``no_repeat_ngram`` bans repeats of the answer's own n-grams, while transformers'
    ``no_repeat_ngram_size`` counts the prompt too and would forbid copying from the passage; minillm's
    stop rules on the answer's text (``max_sentences``, ``stop_repeat``, no prompt labels) and its ban on a token
    pair said twice inside one word have no transformers equivalent.
    Kept, though it differs: transformers' repetition penalty counts the prompt's tokens too, minillm's only
    the answer's (models/generation.py says why); README.md shows how to get minillm's. The custom code keeps no KV
    cache."""
    config = {"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id,
              "do_sample": False, "max_new_tokens": ANSWER_SAMPLING.max_new_tokens,
              "repetition_penalty": ANSWER_SAMPLING.repetition_penalty,
              "suppress_tokens": sorted(non_answer_ids(tok))}
    if hf_name == CUSTOM:
        config["use_cache"] = False
    return config


def tokenizer_json(tok: Any) -> str:
    """The run's tokenizer.json with a post-processor that puts <bos> in front when special tokens are added."""
    hf = tokenizers.Tokenizer.from_str(tok.hf.to_str())
    hf.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, tok.bos_id)])
    return hf.to_str(pretty=True)


def tokenizer_config(max_seq_len: int) -> dict[str, Any]:
    return {"tokenizer_class": "PreTrainedTokenizerFast", **SPECIAL_TOKENS_MAP,
            "clean_up_tokenization_spaces": False, "model_max_length": max_seq_len,
            "chat_template": CHAT_TEMPLATE}


def readme(run_dir: Path, out: Path, cfg: Any, hf_name: str, parameters: int) -> str:
    """The model card: where the model came from, how to load it, how its generation differs from minillm's."""
    trust = ", trust_remote_code=True" if hf_name == CUSTOM else ""
    custom_note = (" The modeling code ships in this folder and runs minillm's own model class: loading needs "
                   "`trust_remote_code=True` (the tokenizer's too, as transformers reads config.json first) and "
                   "minillm installed (`pip install minillm`). It keeps no KV cache: each generation step "
                   "reads the whole sequence.") if hf_name == CUSTOM else ""
    if cfg.data.text:
        license_, data = "unknown", f"pretrained on the text file `{cfg.data.text}` (see its license)"
    else:
        license_ = "cc-by-sa-4.0"
        data = "trained on Wikipedia lead summaries, CC BY-SA 4.0 (by the articles' authors)"
    sampling = ANSWER_SAMPLING
    return "\n".join([
        "---", f"license: {license_}", "library_name: transformers", "pipeline_tag: text-generation", "---", "",
        f"# {out.name}", "",
        f"A {human_count(parameters)}-parameter minillm `{cfg.arch}` model, exported from the run `{run_dir}` "
        f"with `minillm export hf`; {data}.", "",
        f"Class: `{hf_name}`.{custom_note} It reads at most {cfg.model['max_seq_len']} tokens, prompt and "
        "answer together.", "",
        "## Use", "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tok = AutoTokenizer.from_pretrained("{out.name}"{trust})',
        f'model = AutoModelForCausalLM.from_pretrained("{out.name}"{trust})',
        'messages = [{"role": "system", "content": "The Sun is the star at the centre of the Solar System."},',
        '            {"role": "user", "content": "What is the Sun?"}]  # without the system message: closed book',
        'inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, '
        'return_tensors="pt")',
        "new = model.generate(**inputs, max_new_tokens=64)[0, inputs[\"input_ids\"].shape[1]:]",
        "print(tok.decode(new, skip_special_tokens=True))",
        "```", "",
        "The prompt is minillm's, `<bos>Context: {passage}\\nQuestion: {question}\\nAnswer:` (closed book "
        "without the context line): the chat template writes it, and `tok(text)` puts the `<bos>` in front.", "",
        f"generation_config.json holds minillm's answer defaults: greedy, at most {sampling.max_new_tokens} new "
        f"tokens, repetition penalty {sampling.repetition_penalty}, the prompt's separators (newlines, \"?\") "
        "suppressed. Where `minillm ask` differs:", "",
        "- transformers' repetition penalty counts the prompt's tokens too, minillm's only the answer's (a "
        "penalty on the passage keeps the model from copying it). minillm's, for a prompt of n tokens: "
        "`model.generate(..., repetition_penalty=1.0, logits_processor=[RepetitionPenaltyLogitsProcessor("
        f"{sampling.repetition_penalty}, prompt_ignore_length=n)])`.",
        f"- minillm's other answer rules have no transformers equivalent: it stops after {sampling.max_sentences} "
        f"sentences, never repeats a {sampling.no_repeat_ngram}-gram of the answer's own tokens (transformers' "
        f"`no_repeat_ngram_size` counts the prompt too), stops once the answer repeats a word "
        f"{sampling.stop_repeat}-gram, drops a sentence cut off by a stop, and stops when prompt and answer fill "
        f"{cfg.model['max_seq_len']} tokens.", "",
    ])


def export_hf(run_dir: str | Path, out: str | Path) -> str:
    """Write the Hugging Face folder ``out`` for a neural run; return a one-line summary."""
    run_dir, out = Path(run_dir), check_new_output(out)
    model, tok, cfg = neural_run(run_dir, "hf")
    hf_name = hf_class(cfg.arch, model.config)
    if hf_name == LLAMA:
        config, weights = llama(model)
    elif hf_name == GPT2:
        config, weights = gpt2(model)
    else:
        config, weights = custom(model, cfg.arch)
    config |= {"architectures": [hf_name], "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id,
               "pad_token_id": tok.pad_id, "dtype": "float32"}
    with atomic_directory(out) as tmp:
        _write_json(tmp / "config.json", config)
        write_safetensors(tmp / WEIGHTS_FILE, {name: t.detach().contiguous() for name, t in weights.items()},
                          {"format": "pt"})
        _write_json(tmp / "generation_config.json", generation_config(tok, hf_name))
        (tmp / TOKENIZER_FILE).write_text(tokenizer_json(tok), encoding="utf-8")
        _write_json(tmp / "tokenizer_config.json", tokenizer_config(model.max_seq_len))
        _write_json(tmp / "special_tokens_map.json", SPECIAL_TOKENS_MAP)
        if hf_name == CUSTOM:
            for source in sorted(REMOTE_CODE.glob("*.py")):
                shutil.copyfile(source, tmp / source.name)
        card = readme(run_dir, out, cfg, hf_name, model.num_parameters())
        (tmp / "README.md").write_text(card, encoding="utf-8")
    if hf_name == CUSTOM:
        how = "AutoModelForCausalLM with trust_remote_code=True; needs minillm installed"
    else:
        how = "transformers loads it with AutoModelForCausalLM"
    return f"wrote {out}: {hf_name}, {human_count(model.num_parameters())} parameters ({how})"


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
