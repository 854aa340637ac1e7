"""`minillm export gguf`: a Llama-shaped run read back by the gguf package and run by llama.cpp itself."""

import numpy as np
import pytest
import torch
from conftest import train_tiny_run

from minillm.cli import main
from minillm.export.gguf import interleave_heads
from minillm.models.generation import Sampling
from minillm.prompt import encode_prompt
from minillm.training.runs import load_run

gguf = pytest.importorskip("gguf")

LLAMA = {"max_seq_len": 96, "emb_dim": 32, "num_layers": 2, "num_heads": 2, "ffn_dim": 48, "position": "rotary",
         "norm": "rmsnorm", "activation": "swiglu", "bias": False}


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("gguf_llama"), LLAMA)


@pytest.fixture(scope="module")
def exported(llama_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf_out") / "model.gguf"
    assert main(["export", "gguf", str(llama_run), "--out", str(path)]) == 0
    return path


def test_interleave_heads_pairs_each_heads_halves():
    w = torch.arange(8.0)[:, None]  # 2 heads of head_dim 4: rows 0..3, 4..7
    assert interleave_heads(w, 2).flatten().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_gguf_holds_the_runs_config_tokenizer_and_weights(llama_run, exported):
    model, tok, _ = load_run(llama_run)
    reader = gguf.GGUFReader(exported)

    def field(name):
        f = reader.fields[name]
        return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]].tolist()

    assert field("general.architecture") == "llama"
    assert field("llama.block_count") == 2 and field("llama.embedding_length") == 32
    assert field("llama.feed_forward_length") == 48 and field("llama.context_length") == 96
    assert field("tokenizer.ggml.bos_token_id") == tok.bos_id and field("tokenizer.ggml.eos_token_id") == tok.eos_id
    assert len(field("tokenizer.ggml.tokens")) == tok.vocab_size
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    assert np.allclose(tensors["token_embd.weight"], model.tok_emb.weight.detach().numpy())
    q = interleave_heads(model.blocks[1].attn.q_proj.weight, 2).detach().numpy()
    assert np.allclose(tensors["blk.1.attn_q.weight"], q)
    assert np.allclose(tensors["output.weight"], model.lm_head.weight.detach().numpy())


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, llama_run, capsys):
    gpt2_shaped = train_tiny_run(tmp_path / "gpt2", {"max_seq_len": 64, "emb_dim": 16, "num_layers": 1,
                                                      "num_heads": 2}, pretrain_steps=2, finetune_steps=0)
    out = tmp_path / "x.gguf"
    assert main(["export", "gguf", str(gpt2_shaped), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not Llama-shaped" in err and "position is 'learned'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".x.gguf*"))
    out.write_text("keep me")
    assert main(["export", "gguf", str(llama_run), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main(["export", "gguf", str(tmp_path / "missing"), "--out", str(tmp_path / "y.gguf")]) == 2
    assert not (tmp_path / "y.gguf").exists()


def test_llama_cpp_gives_minillms_logits_tokens_and_greedy_answer(llama_run, exported):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (it builds llama.cpp "
                                                        "from source: pip install llama-cpp-python)")
    model, tok, _ = load_run(llama_run)
    llm = llama_cpp.Llama(model_path=str(exported), n_ctx=96, logits_all=True, n_threads=2, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)  # f16 by default
    text = "Question: What is the Sun?\nAnswer:"
    assert llm.tokenize(text.encode(), add_bos=False, special=False) == tok.encode(text)

    prompt = encode_prompt(tok, "What is the Sun?")
    llm.eval(prompt)
    ours = model(torch.tensor([prompt]))[0].detach().numpy()
    theirs = np.asarray(llm.scores[:len(prompt)])
    assert np.abs(theirs - ours).max() < 1e-4

    expected = list(model.generate(prompt, Sampling(max_new_tokens=12), eos_id=tok.eos_id))
    llm.reset()
    greedy, ids = [], list(prompt)
    llm.eval(ids)
    for _ in range(12):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if nxt == tok.eos_id:
            break
        greedy.append(nxt)
        llm.eval([nxt])
    assert greedy == expected
