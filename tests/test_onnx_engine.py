"""The onnxruntime engine (answering/engine.py, models/onnx_step.py): the same ids as minillm's engine, its
graphs exported once per weights, and a clean one-line fallback where onnxruntime is missing."""

import sys

import pytest
import torch

from minillm.answering.answer import ANSWER_SAMPLING, answer, answer_sampling
from minillm.answering.engine import OnnxRuntimeEngine, with_engine
from minillm.cli import main
from minillm.models import MiniTransformer, ModelConfig
from minillm.models.generation import Sampling
from minillm.models.markov import MarkovChain, MarkovConfig
from minillm.models.onnx_step import step_graphs
from minillm.tokenizer import train_tokenizer
from minillm.training.runs import load_run

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TEXT = "The Sun is a star. The Moon orbits the Earth. Mars is red? Yes! The heart pumps blood.\nQuestion: Answer:"
VARIANTS = [dict(position="rotary", norm="rmsnorm", activation="swiglu", copy_head=True),  # tiny-cpu's
            dict(position="learned", norm="layernorm", activation="gelu", tie_embeddings=True, share_layers=True)]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([TEXT], kind="char", vocab_size=200)


@pytest.mark.parametrize("variant", VARIANTS, ids=["quickstart-like", "gpt2-like-tied-shared"])
def test_onnxruntime_gives_minillms_ids(variant, tok, tmp_path):
    torch.manual_seed(2)
    model = MiniTransformer(ModelConfig(vocab_size=tok.vocab_size, max_seq_len=64, emb_dim=32, num_layers=2,
                                        num_heads=4, **variant)).eval()
    engine, note = with_engine(model, "auto", tmp_path)
    assert isinstance(engine, OnnxRuntimeEngine) and note is None
    rules = answer_sampling(tok, ANSWER_SAMPLING)
    for prompt in ([tok.bos_id], [tok.bos_id] + tok.encode("Question: What is the Sun?\nAnswer:")):
        for sampling in (Sampling(max_new_tokens=40), rules):
            kwargs = dict(eos_id=tok.eos_id, decode=tok.decode)
            assert list(engine.generate(prompt, sampling, **kwargs)) == list(model.generate(prompt, sampling, **kwargs))
    assert answer(engine, tok, "What is the Moon?", rules).text == answer(model, tok, "What is the Moon?", rules).text
    assert engine.num_parameters() == model.num_parameters()  # everything but generate is the model's


def test_graphs_are_exported_once_per_weights(tiny_run, tmp_path, monkeypatch):
    model, _, _ = load_run(tiny_run)
    first = step_graphs(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first)  # no temporary left

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    import minillm.models.onnx_step as onnx_step

    monkeypatch.setattr(onnx_step, "export_step_graph", no_export)
    monkeypatch.setattr(onnx_step, "export_prompt_graph", no_export)
    assert step_graphs(load_run(tiny_run)[0], tmp_path) == first  # same weights, same graphs
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0
    with pytest.raises(AssertionError, match="exported again"):
        step_graphs(model, tmp_path)  # other weights: another graph


def test_without_onnxruntime_auto_falls_back_with_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    model, _, _ = load_run(tiny_run)
    same, note = with_engine(model, "auto", tmp_path)
    assert same is model and note == "minillm's own engine answers: onnxruntime is not installed " \
                                     "(pip install 'minillm[export]')"
    with pytest.raises(ValueError, match="the onnxruntime engine cannot run: onnxruntime is not installed"):
        with_engine(model, "onnxruntime", tmp_path)
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path))
    assert main(["ask", str(tiny_run), "What is the Sun?", "--mode", "closed"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() and err == "minillm ask: minillm's own engine answers: onnxruntime is not installed " \
                                  "(pip install 'minillm[export]')\n"
    assert main(["ask", str(tiny_run), "What is the Sun?", "--engine", "onnxruntime"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_failed_export_falls_back_and_other_rungs_keep_their_generate(tiny_run, tmp_path, monkeypatch):
    import minillm.models.onnx_step as onnx_step

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'onnxscript'", name="onnxscript")

    monkeypatch.setattr(onnx_step, "export_prompt_graph", missing)
    model, _, _ = load_run(tiny_run)
    same, note = with_engine(model, "auto", tmp_path)
    assert same is model and note == "minillm's own engine answers: exporting the decode step needs onnxscript " \
                                     "(pip install 'minillm[export]')"
    assert not list(tmp_path.glob("*.onnx"))
    markov = MarkovChain(MarkovConfig(vocab_size=10, max_seq_len=16, order=2))
    assert with_engine(markov, "auto", tmp_path) == (markov, None)
    with pytest.raises(ValueError, match="decodes transformers on the CPU"):
        with_engine(markov, "onnxruntime", tmp_path)
    assert with_engine(model, "minillm", tmp_path) == (model, None)
