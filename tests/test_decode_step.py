"""The decode step and batched decoding: DecodeStep.one gives the model's own logits to the bit, rows do not
depend on their batch-mates, and BatchDecoder's answers equal generate's for mixed lengths, stop rules and
sequences dropped on the way."""

import random
from dataclasses import replace

import pytest
import torch

from minillm.answering.answer import ANSWER_SAMPLING, answer_sampling
from minillm.models import MiniTransformer, ModelConfig
from minillm.models.batch import BatchDecoder
from minillm.models.decode_step import DecodeStep
from minillm.models.generation import Sampling, TokenPicker, forward_decoder, generate, greedy_picks, sample_token
from minillm.tokenizer import train_tokenizer

TEXT = "The Sun is a star. The Moon orbits the Earth. Mars is red? Yes! The heart pumps blood.\nQuestion: Answer:"
BASE = dict(position="learned", norm="layernorm", activation="gelu", bias=True, tie_embeddings=False,
            share_layers=False, copy_head=False)
QUICKSTART = dict(position="rotary", norm="rmsnorm", activation="swiglu", copy_head=True)  # tiny-cpu's choices
VARIANTS = [{}, QUICKSTART, dict(position="rotary"), dict(norm="rmsnorm"), dict(activation="swiglu"),
            dict(bias=False), dict(tie_embeddings=True), dict(share_layers=True), dict(copy_head=True)]


def tiny_model(vocab_size: int = 97, seed: int = 1, **variant) -> MiniTransformer:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab_size, max_seq_len=64, emb_dim=32, num_layers=2, num_heads=4,
                         **{**BASE, **variant})
    return MiniTransformer(config).eval()


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([TEXT], kind="char", vocab_size=200)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={v[k]}" for k in v) or "base")
def test_one_gives_the_models_logits_to_the_bit(variant):
    model = tiny_model(**variant)
    prompt = torch.randint(0, 97, (12,), generator=torch.Generator().manual_seed(0)).tolist()
    with torch.inference_mode():
        expected, forward_step = forward_decoder(model, prompt)
        step = DecodeStep(model)
        logits, cache = step.prefill(prompt)
        assert torch.equal(logits, expected)
        for _ in range(30):
            token = int(expected.argmax())
            expected, logits = forward_step(token), step.one(token, cache)
            assert torch.equal(logits, expected)


def test_model_generate_equals_the_reference_engine_under_every_rule(tok):
    model = tiny_model(tok.vocab_size, **QUICKSTART)
    prompt = [tok.bos_id] + tok.encode("Question: What is the Sun?\nAnswer:")
    for sampling in (answer_sampling(tok, ANSWER_SAMPLING), Sampling(max_new_tokens=40, temperature=1.3, top_p=0.9,
                                                                     seed=4, repetition_penalty=1.5)):
        expected = list(generate(model, prompt, sampling, eos_id=tok.eos_id, decode=tok.decode))
        assert list(model.generate(prompt, sampling, eos_id=tok.eos_id, decode=tok.decode)) == expected


def test_a_swapped_module_or_a_hook_sends_generate_through_the_forward():
    """The decode step reads the weights of the model's own module classes; a module swapped for another
    kind (bench_int8_kernels.py swaps in int8 linears) or a forward hook would go unseen, so then generate
    runs the model's forward."""
    model = tiny_model(**QUICKSTART)
    prompt, sampling = [1, 2, 3], Sampling(max_new_tokens=10)
    calls = []
    handle = model.blocks[0].mlp.register_forward_hook(lambda *args: calls.append(1))
    assert list(model.generate(prompt, sampling)) == list(generate(model, prompt, sampling))
    assert len(calls) == 2 * 10  # the prompt and 9 tokens, by each generate
    handle.remove()

    class Doubled(torch.nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            return 2 * self.linear(x)

    model.blocks[0].mlp.down = Doubled(model.blocks[0].mlp.down)
    assert list(model.generate(prompt, sampling)) == list(generate(model, prompt, sampling))


def test_greedy_picks_for_a_batch_are_sample_tokens_row_by_row():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 50, generator=generator) * 0.1
    logits[:, 10], logits[:, 11], logits[:, 12] = 2.0, 1.9, -0.5  # 10 is best, unless a penalty moves it
    logits[2] -= 3.0  # row 2: all negative, where a penalty below 1 raises the tokens held
    samplings = [Sampling(), Sampling(repetition_penalty=1.3), Sampling(repetition_penalty=0.7),
                 Sampling(temperature=1.0, seed=1), Sampling(repetition_penalty=1.3), Sampling()]
    held = [[10], [10, 3], [11, 5], [10], [11, 10], [10]]
    pickers = [TokenPicker(logits[0], 3, 64, sampling, None, None) for sampling in samplings]
    for picker, ids in zip(pickers, held, strict=True):  # an answer so far, marked seen as pick marks it
        picker.new_ids = ids
        picker.seen[ids] = True
    banned = [[], [3, 4], [], [1], [11], [10, 10]]
    expected = [None if picker.sampling.temperature else sample_token(row, picker.sampling, picker.seen, None, ban)
                for row, picker, ban in zip(logits, pickers, banned, strict=True)]
    assert expected == [10, 11, 11, None, 10, 11]  # penalties, bans and both at once decide
    assert greedy_picks(logits, pickers, banned) == expected


def read_prompts(step: DecodeStep, prompts: list[list[int]], steps: int) -> list[list[torch.Tensor]]:
    """Logits of ``steps`` greedy tokens of each prompt, every step one ``rows`` call for all of them."""
    batch = BatchDecoder(step.model, len(prompts))
    sequences = [batch.add(prompt, Sampling(max_new_tokens=steps + 1))[0] for prompt in prompts]
    tokens, positions = [s.next_token for s in sequences], [s.position for s in sequences]
    out: list[list[torch.Tensor]] = [[] for _ in prompts]
    for _ in range(steps):
        logits = step.rows(tokens, positions, batch.cache)
        for row in range(len(prompts)):
            out[row].append(logits[row].clone())
        tokens = [int(row_logits.argmax()) for row_logits in logits]
        positions = [p + 1 for p in positions]
    return out


@pytest.mark.parametrize("variant", [{}, QUICKSTART], ids=["base", "quickstart"])
def test_rows_do_not_depend_on_their_batch_mates_and_follow_the_model(variant):
    model = tiny_model(**variant)
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 97, (n,), generator=generator).tolist() for n in (5, 17, 9, 30, 2, 11, 3, 8, 20, 14)]
    with torch.inference_mode():
        step = DecodeStep(model)
        together = read_prompts(step, prompts, 12)
        for subset in ([3], [7, 3], list(range(8))):
            alone = read_prompts(step, [prompts[i] for i in subset], 12)
            assert all(torch.equal(a, b) for a, b in zip(alone[subset.index(3)], together[3], strict=True))
        expected, forward_step = forward_decoder(model, prompts[3])
        for logits in together[3]:  # another kernel than one row's: the same tokens, not the same bits
            expected = forward_step(int(expected.argmax()))
            torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4)
            assert int(logits.argmax()) == int(expected.argmax())


def batched_answers(model, tok, prompts, samplings, max_rows: int, drop: dict[int, int] | None = None):
    """Each prompt's tokens from a BatchDecoder of max_rows, prompts joining as rows free up; ``drop`` maps a
    prompt to the number of tokens after which it is dropped (a client gone)."""
    drop = drop or {}
    out: dict[int, list[int]] = {i: [] for i in range(len(prompts))}
    index: dict[int, int] = {}
    waiting = list(range(len(prompts)))
    with torch.inference_mode():
        batch = BatchDecoder(model, max_rows)
        while waiting or batch.sequences:
            while waiting and not batch.full:
                i = waiting.pop(0)
                sequence, token = batch.add(prompts[i], samplings[i], eos_id=tok.eos_id, decode=tok.decode)
                index[id(sequence)] = i
                out[i] += [] if token is None else [token]
            for sequence, token in batch.step():
                i = index[id(sequence)]
                out[i] += [] if token is None else [token]
                if i in drop and len(out[i]) >= drop[i] and not sequence.picker.done:
                    batch.remove(sequence)
    return out


def test_batched_answers_equal_unbatched_ones_for_mixed_lengths_rules_and_drops(tok):
    model = tiny_model(tok.vocab_size, **QUICKSTART)
    rng = random.Random(0)
    rules = answer_sampling(tok, ANSWER_SAMPLING)
    samplings = [replace(rules, max_new_tokens=rng.randint(3, 40)) for _ in range(12)]
    samplings[3] = Sampling(max_new_tokens=30, temperature=1.0, seed=5)  # its own seeded draws
    samplings[4] = Sampling(max_new_tokens=50)  # no rules: runs to the context's end
    prompts = [[tok.bos_id] + tok.encode(TEXT[:rng.randint(2, 40)]) for _ in range(12)]
    expected = [list(model.generate(p, s, eos_id=tok.eos_id, decode=tok.decode))
                for p, s in zip(prompts, samplings, strict=True)]
    assert len({len(ids) for ids in expected}) > 5  # they end at many different steps
    assert batched_answers(model, tok, prompts, samplings, max_rows=5) == dict(enumerate(expected))
    dropped = batched_answers(model, tok, prompts, samplings, max_rows=5, drop={0: 2, 6: 1})
    for i, ids in dropped.items():
        assert ids == (expected[i][:len(ids)] if i in (0, 6) else expected[i])
    assert len(dropped[0]) < len(expected[0]) and len(dropped[6]) < len(expected[6])


def test_batch_decoder_refuses_what_generate_refuses(tok):
    model = tiny_model(tok.vocab_size)
    with torch.inference_mode():
        batch = BatchDecoder(model, 1)
        with pytest.raises(ValueError, match="the prompt is empty"):
            batch.add([], Sampling())
        with pytest.raises(ValueError, match="need decode"):
            batch.add([1, 2], Sampling(max_sentences=1))
        batch.add([1, 2], Sampling(max_new_tokens=5))
        with pytest.raises(ValueError, match="the batch is full"):
            batch.add([1, 2], Sampling(max_new_tokens=5))
