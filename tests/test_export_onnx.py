"""`minillm export onnx`: every neural rung's graph against minillm's own logits and greedy answers in
onnxruntime, with and without the KV cache; int8; the command and its bad inputs."""

import sys
from itertools import pairwise

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import tiny_articles, train_tiny_run

from minillm.cli import main
from minillm.export import neural_run
from minillm.export.onnx import cache_names, export_onnx, onnx_greedy, present_name
from minillm.models.generation import Sampling

SMALL = {"max_seq_len": 96, "emb_dim": 32, "num_layers": 2, "num_heads": 2}
RUNS = {
    "gpt2": {**SMALL, "position": "learned", "norm": "layernorm", "activation": "gelu"},
    "llama": {**SMALL, "position": "rotary", "norm": "rmsnorm", "activation": "swiglu", "bias": False},
    "copy_head": {**SMALL, "position": "rotary", "copy_head": True},
    "share_layers": {**SMALL, "share_layers": True},
    "attention": {"arch": "attention", "max_seq_len": 96, "emb_dim": 32, "num_heads": 2},
    "mlp": {"arch": "mlp", "max_seq_len": 96, "context": 4, "emb_dim": 16, "hidden_dim": 64},
}
TOL = 1e-4
PROMPT = "Question: What is the sun?\nAnswer:"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> a trained tiny run of RUNS[name], trained on first use."""
    trained = {}

    def get(name):
        if name not in trained:
            trained[name] = train_tiny_run(tmp_path_factory.mktemp(name), RUNS[name])
        return trained[name]
    return get


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    """name -> (path, export summary) of the run's float32 export, exported on first use."""
    done = {}

    def get(name):
        if name not in done:
            path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
            done[name] = path, export_onnx(runs(name), path)
        return done[name]
    return get


@pytest.fixture(scope="module", params=list(RUNS))
def exported(request, runs, exports):
    """(name, model, tokenizer, onnxruntime session, export summary) of each run."""
    path, summary = exports(request.param)
    model, tok, _ = neural_run(runs(request.param), "onnx")
    return request.param, model, tok, session(path), summary


def session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # tiny graphs: a second thread only spins (the test machine has 2 cores)
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def text_ids(tok, article=2):
    return tok.encode(tiny_articles()[article].text)


def empty_past(model, batch=1):
    """name -> empty past tensor (past length 0) for each cache input."""
    config = model.config
    past = {}
    for name in cache_names(model):
        if name.startswith("past_key_values."):
            past[name] = np.zeros((batch, config.num_heads, 0, config.head_dim), np.float32)
        elif name == "past_copy.key":
            past[name] = np.zeros((batch, 0, config.head_dim), np.float32)
        else:
            past[name] = np.zeros((batch, 0), np.int64)
    return past


def run_onnx(session, ids, past, mask=None):
    """Logits and the next call's past tensors for ids (batch, seq) after past."""
    past_len = past["past_key_values.0.key"].shape[2] if past else 0  # the mlp rung has no past
    mask = np.ones((ids.shape[0], past_len + ids.shape[1]), np.int64) if mask is None else mask
    outputs = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {"input_ids": ids, "attention_mask": mask, **past}), strict=True))
    return outputs["logits"], {name: outputs[present_name(name)] for name in past}


def torch_logits(model, ids):
    with torch.no_grad():
        return model(torch.from_numpy(ids)).numpy()


def test_graph_inputs_outputs_and_summary(exported):
    name, model, _, session, summary = exported
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    assert inputs["input_ids"].type == "tensor(int64)" and inputs["input_ids"].shape == ["batch_size",
                                                                                        "sequence_length"]
    assert inputs["attention_mask"].type == "tensor(int64)"
    assert outputs["logits"].shape == ["batch_size", "sequence_length", model.config.vocab_size]
    names = cache_names(model)
    assert list(inputs) == ["input_ids", "attention_mask", *names]
    assert list(outputs) == ["logits", *map(present_name, names)]
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["minillm.max_seq_len"] == "96"
    if name == "mlp":
        assert names == [] and "no KV cache" in summary
        return
    layers = model.config.num_layers
    assert len(names) == 2 * layers + 2 * (name == "copy_head")  # share_layers: still one slot per layer
    key = inputs["past_key_values.0.key"]
    assert key.type == "tensor(float)"
    assert key.shape == ["batch_size", model.config.num_heads, "past_sequence_length", model.config.head_dim]
    assert outputs[f"present.{layers - 1}.value"].shape[2] == "past_sequence_length + sequence_length"
    assert "KV cache: past_key_values.N.key/value" in summary and "onnxruntime loads it" in summary
    if name == "copy_head":
        assert inputs["past_copy.ids"].type == "tensor(int64)" and "past_copy.key/ids" in summary


def test_logits_without_cache_match_minillm(exported):
    """The whole sequence with empty past tensors: batch 1, batch 2, and an attention_mask that is not all
    ones, which the graph does not read (only all-ones masks are supported)."""
    _, model, tok, session, _ = exported
    ids = np.array([text_ids(tok)])
    logits, _ = run_onnx(session, ids, empty_past(model))
    np.testing.assert_allclose(logits, torch_logits(model, ids), atol=TOL, rtol=0)
    batch = np.array([text_ids(tok, 2)[:12], text_ids(tok, 3)[:12]])
    logits, _ = run_onnx(session, batch, empty_past(model, 2))
    np.testing.assert_allclose(logits, torch_logits(model, batch), atol=TOL, rtol=0)
    ignored, _ = run_onnx(session, batch, empty_past(model, 2), mask=np.zeros((2, 12), np.int64))
    np.testing.assert_array_equal(ignored, logits)


def test_cached_steps_match_the_full_sequence(exported):
    """Prefill (past 0, seq > 1), single tokens (past > 0, seq 1), a chunk (past > 0, seq > 1), and a one-token
    first call (past 0, seq 1, batch 1): each call's logits are the full sequence's at those positions."""
    name, model, tok, session, _ = exported
    if name == "mlp":
        pytest.skip("the mlp rung has no cache")
    ids = np.array([text_ids(tok, 2)[:20], text_ids(tok, 4)[:20]])  # a batch of two
    full = torch_logits(model, ids)
    cuts = [0, 6, 7, 8, 9, 13, 20]  # prefill 6, three single tokens, a chunk of 4, the rest
    past = empty_past(model, 2)
    for start, end in pairwise(cuts):
        logits, past = run_onnx(session, ids[:, start:end], past)
        np.testing.assert_allclose(logits, full[:, start:end], atol=TOL, rtol=0, err_msg=f"tokens {start}:{end}")
    assert past["past_key_values.0.key"].shape[2] == 20
    logits, _ = run_onnx(session, ids[:1, :1], empty_past(model))
    np.testing.assert_allclose(logits, full[:1, :1], atol=TOL, rtol=0)


def test_greedy_with_and_without_cache_equals_minillm(exported):
    _, model, tok, session, _ = exported
    for prompt in ([tok.bos_id] + tok.encode(PROMPT), [tok.bos_id]):
        expected = list(model.generate(prompt, Sampling(max_new_tokens=20), eos_id=tok.eos_id))
        assert onnx_greedy(session, prompt, 20, tok.eos_id) == expected
        assert onnx_greedy(session, prompt, 20, tok.eos_id, use_cache=False) == expected
    long_prompt = ([tok.bos_id] + text_ids(tok) * 10)[:90]  # 6 tokens short of max_seq_len
    expected = list(model.generate(long_prompt, Sampling(max_new_tokens=20), eos_id=tok.eos_id))
    assert onnx_greedy(session, long_prompt, 20, tok.eos_id) == expected
    with pytest.raises(ValueError, match="no room"):
        onnx_greedy(session, long_prompt + [tok.bos_id] * 6, 5)


def test_int8_loads_and_mostly_agrees_with_float32(runs, exports, tmp_path, capsys):
    run, (fp32, _) = runs("llama"), exports("llama")
    int8 = tmp_path / "int8.onnx"
    assert main(["export", "onnx", str(run), "--out", str(int8), "--int8"]) == 0
    assert "int8 weights" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["int8.onnx"]  # the float32 step left nothing behind
    assert int8.stat().st_size < fp32.stat().st_size
    model, tok, _ = neural_run(run, "onnx")
    sessions = [session(fp32), session(int8)]
    agree = total = 0
    for article in range(2, 7):
        ids = np.array([text_ids(tok, article)])
        top32, top8 = (run_onnx(s, ids, empty_past(model))[0].argmax(-1) for s in sessions)
        agree, total = agree + int((top32 == top8).sum()), total + ids.shape[1]
    print(f"int8 top-1 agreement with float32: {agree / total:.3f} over {total} positions")
    assert agree / total >= 0.8  # 0.97 measured on this run
    assert len(onnx_greedy(sessions[1], [tok.bos_id] + tok.encode(PROMPT), 10)) > 0


def test_cli_writes_the_file(runs, tmp_path, capsys):
    out = tmp_path / "sub" / "model.onnx"
    assert main(["export", "onnx", str(runs("mlp")), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {out} (") and captured.out.count("\n") == 1
    assert captured.err == ""
    assert [p.name for p in out.parent.iterdir()] == ["model.onnx"]


def test_failed_export_leaves_nothing(runs, tmp_path, monkeypatch):
    def half_written(model, path):
        path.write_bytes(b"half an onnx file")
        raise RuntimeError("export failed")

    monkeypatch.setattr("minillm.export.onnx._export", half_written)
    with pytest.raises(RuntimeError, match="export failed"):
        export_onnx(runs("mlp"), tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def bad_inputs(root, runs):
    pattern = root / "pattern_run"
    pattern.mkdir()
    (pattern / "config.toml").write_text('[model]\narch = "pattern"\nmax_seq_len = 256\n', encoding="utf-8")
    existing = root / "existing.onnx"
    existing.write_bytes(b"keep me")
    folder = root / "empty_folder"
    folder.mkdir()
    return {"pattern run": (pattern, root / "a.onnx"), "existing --out": (runs("mlp"), existing),
            "missing run": (root / "no_such_run", root / "b.onnx"), "--out is a folder": (runs("mlp"), folder)}


def test_cli_bad_inputs_exit_2_with_one_line_and_write_nothing(runs, tmp_path, capsys):
    for what, (run, out) in bad_inputs(tmp_path, runs).items():
        before = sorted(p.name for p in tmp_path.iterdir())
        assert main(["export", "onnx", str(run), "--out", str(out)]) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("minillm: error:"), (what, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, what
    assert (tmp_path / "existing.onnx").read_bytes() == b"keep me"
    assert list((tmp_path / "empty_folder").iterdir()) == []


def test_a_missing_onnx_package_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    assert main(["export", "onnx", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "export onnx needs the onnxscript package: pip install 'minillm[export]'" in err
    assert err.count("\n") == 1 and not (tmp_path / "m.onnx").exists()
