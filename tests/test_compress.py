"""`minillm compress quantize`: packing, error bounds, a quantized run that every command takes, bad inputs."""

import json

import pytest
import safetensors.torch
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm.cli import main
from minillm.compress.quantize import quantize_int4, quantize_int8
from minillm.models.weights import dequantize_int4, dequantize_int8
from minillm.training.runs import load_run

matrices = st.builds(lambda rows, groups, seed, scale: torch.randn(rows, groups * 8,
                                                                   generator=torch.Generator().manual_seed(seed))
                     * scale, st.integers(1, 6), st.integers(1, 4), st.integers(0, 10_000),
                     st.floats(1e-3, 1e3))


@given(matrices)
@settings(max_examples=50, deadline=None)
def test_int8_error_is_at_most_half_a_step_per_row(w):
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (w.size(0),) and q.abs().max() <= 127
    step = scale.float()[:, None]
    assert ((dequantize_int8(q, scale) - w).abs() <= step * 0.501 + 1e-6).all()


@given(matrices, st.sampled_from([2, 4, 8]))
@settings(max_examples=50, deadline=None)
def test_int4_packs_two_a_byte_and_errs_at_most_half_a_step_per_group(w, group_size):
    packed, scale = quantize_int4(w, group_size)
    assert packed.dtype == torch.uint8 and packed.shape == (w.size(0), w.size(1) // 2)
    assert scale.shape == (w.size(0), w.size(1) // group_size)
    step = scale.float().repeat_interleave(group_size, dim=1)
    assert ((dequantize_int4(packed, scale, group_size) - w).abs() <= step * 0.501 + 1e-6).all()


def test_int4_nibbles_round_trip_exactly():
    q = torch.tensor([[-7, 7, 0, 3, -1, 5, -7, 2]], dtype=torch.float32)  # already on the grid, scale 1
    packed, scale = quantize_int4(q, 8)
    assert torch.equal(dequantize_int4(packed, torch.ones_like(scale), 8), q)
    assert packed[0, 0] == (1 | (15 << 4))  # -7 + 8 = 1 in the low nibble, 7 + 8 = 15 in the high one
    with pytest.raises(ValueError, match="group size 3 must be even and divide the row length 8"):
        quantize_int4(q, 3)


@pytest.fixture
def run(open_tiny_run):
    return open_tiny_run


@pytest.mark.parametrize(("bits", "extra", "ratio", "tolerance"),
                         [(8, [], 0.3, 0.02), (4, ["--group-size", "8"], 0.21, 0.1)])  # tiny: vectors weigh more
def test_a_quantized_run_is_a_run(run, tmp_path, capsys, bits, extra, ratio, tolerance):
    out = tmp_path / f"int{bits}"
    assert main(["compress", "quantize", str(run), "--bits", str(bits), *extra, "--out", str(out)]) == 0
    assert f"to {bits} bits" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "index", "metrics.jsonl", "model.safetensors",
                                                      "tokenizer.json"]
    stored = safetensors.torch.load_file(str(out / "model.safetensors"))  # safetensors alone reads it
    assert stored["tok_emb.weight.q" if bits == 8 else "tok_emb.weight.q4"].dtype == (torch.int8 if bits == 8
                                                                                        else torch.uint8)
    original, tok, _ = load_run(run)
    model, out_tok, _ = load_run(out)
    assert model.size_bytes() <= ratio * original.size_bytes()
    # the same tokenizer, written without indentation
    assert (out / "tokenizer.json").stat().st_size < 0.7 * (run / "tokenizer.json").stat().st_size
    text = "The Sun is a star at the centre of the Solar System."
    assert out_tok.encode(text) == tok.encode(text) and out_tok.hf.get_vocab() == tok.hf.get_vocab()
    ids = torch.tensor([tok.encode("The Sun is a star at the centre of the Solar System.")])
    with torch.no_grad():
        assert (model(ids).softmax(-1) - original(ids).softmax(-1)).abs().max() < tolerance
    assert main(["ask", str(out), "What is the Sun?", "--json", "--max-new-tokens", "8"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["mode"] == "open" and reply["sources"][0]["title"] == "Sun"


@pytest.mark.parametrize(("args", "message"), [
    (["--bits", "4", "--group-size", "5"], "--group-size: must be an even number"),
    (["--bits", "4", "--group-size", "6"], "--group-size: 6 does not divide the rows of"),
    (["--bits", "4", "--group-size", "64"], "--group-size: 64 does not divide the rows of"),
    (["--group-size", "32"], "a group size is for --bits 4"),
])
def test_bad_options_exit_2_and_write_nothing(run, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["compress", "quantize", str(run), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_bad_runs_exit_2(run, tmp_path, capsys):
    assert main(["compress", "quantize", str(run), "--out", str(tmp_path / "q")]) == 0
    assert main(["compress", "quantize", str(tmp_path / "q"), "--out", str(tmp_path / "qq")]) == 2
    assert "already quantized (8-bit)" in capsys.readouterr().err
    assert main(["compress", "quantize", str(run), "--out", str(tmp_path / "q")]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("mine")
    assert main(["compress", "quantize", str(run), "--out", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err
    assert "a-file: already exists; choose a new --out" in err and err.count("\n") == 1
    assert (tmp_path / "a-file").read_text() == "mine"
    pattern = tmp_path / "pattern"
    pattern.mkdir()
    (pattern / "pattern.json").write_text("{}")
    assert main(["compress", "quantize", str(pattern), "--out", str(tmp_path / "p")]) == 2
    assert "only neural runs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", "quantize", str(run), "--bits", "3", "--out", str(tmp_path / "b")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "qq").exists() and not (tmp_path / "p").exists()


def test_a_broken_quantized_file_is_one_clear_error(run, tmp_path):
    from minillm.core.errors import InputError
    from minillm.models.weights import read_weights_metadata

    out = tmp_path / "q"
    assert main(["compress", "quantize", str(run), "--out", str(out)]) == 0
    weights = out / "model.safetensors"
    tensors = safetensors.torch.load_file(str(weights))
    metadata = read_weights_metadata(weights)
    del tensors["tok_emb.weight.scale"]
    safetensors.torch.save_file(tensors, str(weights), metadata=metadata)
    with pytest.raises(InputError, match="field 'quantization': not a quantized minillm model"):
        load_run(out)


def test_an_all_zero_row_quantizes_to_zeros_not_nan():
    w = torch.zeros(3, 8)
    w[1] = torch.linspace(-1, 1, 8)
    w[2] = 1e-9  # below float16's range: its scale is the smallest float16, not 0
    q, scale = quantize_int8(w)
    assert (scale > 0).all() and torch.isfinite(dequantize_int8(q, scale)).all()
    assert torch.equal(dequantize_int8(q, scale)[0], torch.zeros(8))
    packed, scale4 = quantize_int4(w, 4)
    assert (scale4 > 0).all() and torch.equal(dequantize_int4(packed, scale4, 4)[0], torch.zeros(8))
    assert (dequantize_int8(q, scale)[2] - w[2]).abs().max() < 1e-7
