"""`minillm export gguf RUN --out model.gguf`: a Llama-shaped run as a GGUF file that llama.cpp runs.

    >>> export_gguf("runs/llama", "llama.gguf")
    'wrote llama.gguf (5.9 MB, llama, 2 layers, float32) — llama.cpp loads it (llama-cli -m llama.gguf)'

Only Llama-shaped transformer runs export (``minillm.export.llama_shape_problems``: rotary positions,
RMSNorm, SwiGLU, no biases, no copy head, one block per layer): llama.cpp's ``llama`` architecture is
exactly that model, so the file needs no code of ours. Everything else raises InputError naming what stands in the way.

Design choices:
- Tensors keep float32: the models are a few MB, and llama.cpp's own ``llama-quantize`` makes the Q8_0 or
  Q4 variants from this file if wanted.
- Rotary layout: minillm rotates the halves of each head (x[i], x[i + d/2]), as Hugging Face's Llama does;
  llama.cpp's ``llama`` rotates neighbours (x[2i], x[2i + 1]). Permuting the rows of the query and key
  projections inside each head (``interleave_heads``) turns one into the other; attention scores, and so
  the logits, are unchanged (q.k sums the same products).
- The tokenizer goes in as llama.cpp's ``gpt2`` model (byte-level BPE: the vocabulary in byte-level
  characters, the merges in order) with the ``gpt-2`` pre-tokenizer regex, which is what minillm's
  ByteLevel(use_regex=True) pre-tokenizer applies. <pad>, <bos>, <eos>, <unk> are control tokens.
- The file is written to a temporary name beside ``--out`` and renamed at the end.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from minillm.core.errors import InputError, disk_full_names
from minillm.core.files import check_new_output
from minillm.export import llama_shape_problems, neural_run, require

ROPE_BASE = 10000.0  # minillm.models.transformer.rotary_tables' default


def interleave_heads(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Rows of a query/key projection (heads * head_dim, in) reordered within each head from halves
    (0, 1, ..., d/2 - 1 | d/2, ..., d - 1) to pairs (0, d/2, 1, d/2 + 1, ...)."""
    rows, cols = weight.shape
    return weight.reshape(num_heads, 2, rows // num_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def export_gguf(run_dir: str | Path, out: str | Path) -> str:
    gguf = require("gguf", "gguf")
    out = check_new_output(out)
    model, tok, cfg = neural_run(run_dir, "gguf")
    config = model.config
    if cfg.arch != "transformer" or llama_shape_problems(config):
        why = "; ".join(llama_shape_problems(config)) if cfg.arch == "transformer" else f"it is a {cfg.arch} run"
        raise InputError(f"export gguf: {run_dir} is not Llama-shaped ({why}); gguf takes rotary + rmsnorm + "
                         "swiglu transformers without biases, copy head or shared layers; use export hf or onnx")

    out.parent.mkdir(parents=True, exist_ok=True)
    with disk_full_names(out):  # a full disk: one line naming out, the temporary file deleted
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        try:
            writer = gguf.GGUFWriter(tmp, "llama")
            writer.add_name(Path(run_dir).resolve().name)
            writer.add_context_length(config.max_seq_len)
            writer.add_embedding_length(config.emb_dim)
            writer.add_block_count(config.num_layers)
            writer.add_feed_forward_length(config.hidden_dim)
            writer.add_head_count(config.num_heads)
            writer.add_head_count_kv(config.num_heads)
            writer.add_rope_dimension_count(config.head_dim)
            writer.add_rope_freq_base(ROPE_BASE)
            writer.add_layer_norm_rms_eps(config.norm_eps)
            writer.add_vocab_size(config.vocab_size)
            writer.add_file_type(gguf.LlamaFileType.ALL_F32)
            _add_tokenizer(writer, tok, config.vocab_size)
            for name, tensor in _llama_tensors(model):
                writer.add_tensor(name, tensor.detach().float().contiguous().numpy())
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return (f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, llama, {config.num_layers} layers, float32) — "
            f"llama.cpp loads it (llama-cli -m {out})")


def _llama_tensors(model) -> list[tuple[str, torch.Tensor]]:
    """(GGUF name, tensor) of every weight, in llama.cpp's ``llama`` naming."""
    heads = model.config.num_heads
    tensors = [("token_embd.weight", model.tok_emb.weight)]
    for i, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        tensors += [
            (f"blk.{i}.attn_norm.weight", block.norm1.weight),
            (f"blk.{i}.attn_q.weight", interleave_heads(attn.q_proj.weight, heads)),
            (f"blk.{i}.attn_k.weight", interleave_heads(attn.k_proj.weight, heads)),
            (f"blk.{i}.attn_v.weight", attn.v_proj.weight),
            (f"blk.{i}.attn_output.weight", attn.out_proj.weight),
            (f"blk.{i}.ffn_norm.weight", block.norm2.weight),
            (f"blk.{i}.ffn_gate.weight", mlp.gate.weight),
            (f"blk.{i}.ffn_up.weight", mlp.up.weight),
            (f"blk.{i}.ffn_down.weight", mlp.down.weight),
        ]
    tensors.append(("output_norm.weight", model.norm_f.weight))
    if model.lm_head is not None:  # tied models project with token_embd, as llama.cpp does without output
        tensors.append(("output.weight", model.lm_head.weight))
    return tensors


def _add_tokenizer(writer, tok, vocab_size: int) -> None:
    gguf = require("gguf", "gguf")
    spec = json.loads(tok.hf.to_str())
    vocab = spec["model"]["vocab"]
    by_id = {i: token for token, i in vocab.items()}
    by_id.update({added["id"]: added["content"] for added in spec.get("added_tokens", [])})
    specials = {tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id}
    tokens, types = [], []
    for i in range(vocab_size):
        tokens.append(by_id.get(i, f"[PAD{i}]"))
        types.append(gguf.TokenType.CONTROL if i in specials else
                     gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED)
    merges = [" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tok.bos_id)
    writer.add_eos_token_id(tok.eos_id)
    writer.add_unk_token_id(tok.unk_id)
    writer.add_pad_token_id(tok.pad_id)
    writer.add_add_bos_token(True)
