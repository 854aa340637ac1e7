"""Generation engine: KV cache vs recomputation, sampling rules, stop rules, answers and streaming."""

import math

import pytest
import torch
from torch import nn

from minillm.answering.answer import Answer, answer, answer_sampling, stream_answer
from minillm.models import MiniTransformer, ModelConfig
from minillm.models.generation import (
    KVCache,
    Sampling,
    adjust_logits,
    generate,
    repeated_ngram_ends,
    repeats_word_ngram,
    sample_token,
    sentence_ends,
    whole_sentences,
    word_tail,
)
from minillm.prompt import encode_prompt, fit_prompt
from minillm.tokenizer import non_answer_ids, train_tokenizer, word_continuation_ids

TEXT = "The Sun is a star. The Moon orbits the Earth. Mars is red? Yes! Café.\nQuestion: Answer: Context:"


def tiny_model(vocab_size: int = 60, max_seq_len: int = 48, seed: int = 0, **overrides) -> MiniTransformer:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab_size, max_seq_len=max_seq_len, emb_dim=32, num_layers=2,
                         num_heads=4, **overrides)
    return MiniTransformer(config)


def run(model, prompt, sampling, **kwargs) -> list[int]:
    return list(generate(model, prompt, sampling, **kwargs))


class ScriptedModel(nn.Module):
    """Test double: after ``start`` prompt tokens it predicts ``tokens`` in order, then ``after`` forever."""

    name = "scripted"

    def __init__(self, tokens: list[int], start: int, vocab_size: int, after: int, max_seq_len: int = 64):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the engine a device
        self.tokens, self.start, self.vocab_size, self.after = tokens, start, vocab_size, after
        self.max_seq_len = max_seq_len

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(ids.size(0), ids.size(1), self.vocab_size)
        for t in range(ids.size(1)):
            i = t + 1 - self.start
            logits[:, t, self.tokens[i] if 0 <= i < len(self.tokens) else self.after] = 1.0
        return logits

    def generate(self, prompt_ids, sampling, *, eos_id=None, decode=None):
        return generate(self, prompt_ids, sampling, eos_id=eos_id, decode=decode, use_cache=False)


@pytest.mark.parametrize("position", ["learned", "rotary"])
def test_greedy_with_and_without_cache_gives_identical_ids(position):
    model = tiny_model(position=position)
    prompt = [1, 5, 9, 13, 2]
    cached = run(model, prompt, Sampling(max_new_tokens=30))
    recomputed = run(model, prompt, Sampling(max_new_tokens=30), use_cache=False)
    assert cached == recomputed and len(cached) == 30


def test_greedy_is_argmax_of_the_full_sequence_logits():
    model = tiny_model().eval()
    ids = [3, 4, 5]
    expected = []
    with torch.no_grad():
        for _ in range(8):
            token = int(model(torch.tensor([ids + expected]))[0, -1].argmax())
            expected.append(token)
    assert run(model, ids, Sampling(max_new_tokens=8)) == expected


def test_top_k_1_and_tiny_top_p_equal_greedy():
    model = tiny_model()
    prompt = [7, 8, 9]
    greedy = run(model, prompt, Sampling(max_new_tokens=20))
    assert run(model, prompt, Sampling(max_new_tokens=20, temperature=1.5, top_k=1, seed=3)) == greedy
    assert run(model, prompt, Sampling(max_new_tokens=20, temperature=1.5, top_p=1e-6, seed=3)) == greedy


def test_seeded_sampling_is_reproducible_and_seed_dependent():
    model = tiny_model()
    sampling = Sampling(max_new_tokens=40, temperature=1.5, seed=11)
    first = run(model, [1, 2], sampling)
    assert run(model, [1, 2], sampling) == first
    assert run(model, [1, 2], sampling, use_cache=False) == first
    assert run(model, [1, 2], Sampling(max_new_tokens=40, temperature=1.5, seed=12)) != first


def test_adjust_logits_top_k_top_p_temperature():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    none = torch.zeros(4, dtype=torch.bool)
    kept = adjust_logits(logits, Sampling(temperature=1.0, top_k=2), none).isfinite()
    assert kept.tolist() == [True, True, False, False]
    # top-p keeps the fewest most-likely tokens whose probability reaches top_p
    assert adjust_logits(logits, Sampling(temperature=1.0, top_p=0.8), none).isfinite().tolist() == \
        [True, True, False, False]
    assert adjust_logits(logits, Sampling(temperature=1.0, top_p=0.81), none).isfinite().tolist() == \
        [True, True, True, False]
    shuffled = logits[[2, 0, 3, 1]]  # order in the vocabulary does not matter
    assert adjust_logits(shuffled, Sampling(temperature=1.0, top_p=0.8), none).isfinite().tolist() == \
        [False, True, False, True]
    torch.testing.assert_close(adjust_logits(logits, Sampling(temperature=2.0), none), logits / 2)


def test_repetition_penalty_ctrl_style_lowers_seen_tokens():
    logits = torch.tensor([2.0, -1.0, 0.5, 1.5])
    seen = torch.tensor([True, True, False, False])
    adjusted = adjust_logits(logits, Sampling(repetition_penalty=2.0), seen)
    assert adjusted.tolist() == [1.0, -2.0, 0.5, 1.5]  # positive divided, negative multiplied
    before, after = logits.softmax(-1), adjusted.softmax(-1)
    assert after[0] < before[0] and after[1] < before[1]
    assert sample_token(logits, Sampling(repetition_penalty=2.0), seen) == 3  # greedy picks the unseen token
    assert sample_token(logits, Sampling(), seen) == 0


def test_repetition_penalty_breaks_a_greedy_loop():
    model = tiny_model(seed=5)
    plain = run(model, [1], Sampling(max_new_tokens=30))
    penalized = run(model, [1], Sampling(max_new_tokens=30, repetition_penalty=5.0))
    assert len(set(penalized)) > len(set(plain))


def test_repeated_ngram_ends():
    assert repeated_ngram_ends([5, 6, 7, 5, 6], 3) == [7]
    assert repeated_ngram_ends([5, 6, 7, 5, 6], 4) == []
    assert repeated_ngram_ends([5, 6, 5, 6, 5], 2) == [6, 6]
    assert repeated_ngram_ends([1, 2, 3], 1) == [1, 2, 3]  # n = 1: no token twice
    assert repeated_ngram_ends([1, 2], 0) == [] and repeated_ngram_ends([], 3) == []


def test_no_repeat_ngram_breaks_a_loop_and_suppressed_tokens_never_come():
    loop = ScriptedModel([], start=1, vocab_size=10, after=4)  # wants token 4 forever
    assert list(loop.generate([1], Sampling(max_new_tokens=6))) == [4] * 6
    # with no 2-gram twice, 4 4 is allowed once; then the runner-up (0: all others tie at 0) takes turns
    ids = list(loop.generate([1], Sampling(max_new_tokens=12, no_repeat_ngram=2)))
    pairs = list(zip(ids, ids[1:], strict=False))
    assert len(pairs) == len(set(pairs)) and ids[:2] == [4, 4]
    assert 4 not in list(loop.generate([1], Sampling(max_new_tokens=6, suppress_tokens=(4,))))
    # every token banned: the answer ends rather than emit a banned one
    assert list(loop.generate([1], Sampling(max_new_tokens=6, suppress_tokens=tuple(range(10))))) == []


def test_answers_never_hold_the_prompts_separators(char_tok):
    banned = non_answer_ids(char_tok)
    assert {char_tok.encode("?")[0], char_tok.encode("\n")[0], char_tok.bos_id, char_tok.pad_id} <= banned
    assert char_tok.eos_id not in banned and char_tok.encode(".")[0] not in banned
    question_mark = char_tok.encode("?")[0]
    prompt = encode_prompt(char_tok, "Why?")
    parrot = ScriptedModel([], start=len(prompt), vocab_size=char_tok.vocab_size, after=question_mark)
    result = answer(parrot, char_tok, "Why?", Sampling(max_new_tokens=5))
    assert result.token_ids == []  # "?" and every other special token suppressed: eos is the best left
    assert list(parrot.generate(prompt, Sampling(max_new_tokens=2))) == [question_mark] * 2  # generate alone: no rule


def test_sampling_draws_follow_softmax():
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([0.0, math.log(3.0)])
    none = torch.zeros(2, dtype=torch.bool)
    draws = [sample_token(logits, Sampling(temperature=1.0), none, generator) for _ in range(2000)]
    assert sum(draws) / 2000 == pytest.approx(0.75, abs=0.04)


def test_stops_at_eos_without_yielding_it_and_at_max_new_tokens():
    model = tiny_model(seed=2)
    tokens = run(model, [4, 5], Sampling(max_new_tokens=25))
    assert len(tokens) == 25
    cut = next(i for i, t in enumerate(tokens) if t not in tokens[:i] and i >= 2)
    assert run(model, [4, 5], Sampling(max_new_tokens=25), eos_id=tokens[cut]) == tokens[:cut]


@pytest.mark.parametrize("use_cache", [True, False])
def test_stops_when_the_context_is_full(use_cache):
    model = tiny_model(max_seq_len=24)
    tokens = run(model, list(range(20)), Sampling(max_new_tokens=100), use_cache=use_cache)
    assert len(tokens) == 4


WORDS = ["<pad>", "<eos>", "Q", "The", " record", " is", " 9", ".", "59", " s", " It", " was", " set", " in",
         " 2009", " Yes", "!", "\n"]


def decode_words(ids: list[int]) -> str:
    return "".join(WORDS[i] for i in ids)


def script(text_tokens: str) -> list[int]:
    return [WORDS.index(w) for w in text_tokens.split("|")]


def test_max_sentences_stops_after_complete_sentences():
    tokens = script("The| record| is| 9|.|59| s|.| It| was| set| in| 2009|.| Yes|!| It")
    model = ScriptedModel(tokens, start=1, vocab_size=len(WORDS), after=1)

    def say(max_sentences: int) -> str:
        sampling = Sampling(max_new_tokens=50, max_sentences=max_sentences)
        return decode_words(run(model, [2], sampling, decode=decode_words, eos_id=1, use_cache=False))

    assert say(1) == "The record is 9.59 s."  # "9." is not an end: a number may follow
    # "2009." only counts once " Yes" shows a space follows; that confirming token is not yielded
    assert say(2) == "The record is 9.59 s. It was set in 2009."
    assert say(3) == "The record is 9.59 s. It was set in 2009. Yes!"
    assert say(0) == "The record is 9.59 s. It was set in 2009. Yes! It"


def test_sentence_ends():
    assert sentence_ends("It is 9.59 s. Yes") == [13]
    assert sentence_ends("Hi! Why? Fine.") == [3, 8, 14]
    assert sentence_ends("born in 1990.") == []  # may still become 1990.5
    assert sentence_ends('He said "stop." Then') == [15]
    assert sentence_ends("Wait...\nok") == [7]
    assert sentence_ends("no end here") == []


@pytest.mark.parametrize("values, message", [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 0.0}, "top_p must be in \\(0, 1\\]"),
    ({"top_p": 1.5}, "top_p must be in"),
    ({"top_k": -1}, "top_k must be an integer >= 0"),
    ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0"),
    ({"max_new_tokens": 0}, "max_new_tokens must be a positive integer"),
    ({"max_new_tokens": 2.5}, "max_new_tokens must be a positive integer"),
    ({"max_sentences": -1}, "max_sentences must be an integer >= 0"),
    ({"temperature": float("nan")}, "temperature must be >= 0"),
    ({"seed": "7"}, "seed must be an integer or None"),
    ({"no_repeat_ngram": -1}, "no_repeat_ngram must be an integer >= 0"),
    ({"no_repeat_ngram": True}, "no_repeat_ngram must be an integer >= 0"),
    ({"stop_repeat": -2}, "stop_repeat must be an integer >= 0"),
    ({"suppress_tokens": [3]}, "suppress_tokens must be a tuple of token ids"),
    ({"suppress_tokens": (3, -1)}, "suppress_tokens must be a tuple of token ids"),
    ({"word_continuations": [3]}, "word_continuations must be a tuple of token ids"),
])
def test_bad_sampling_values_rejected(values, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**values)


def test_bad_prompts_rejected_at_call_time():
    model = tiny_model(max_seq_len=16)
    with pytest.raises(ValueError, match="the prompt is empty"):
        generate(model, [], Sampling())
    with pytest.raises(ValueError, match="the prompt has 16 tokens but max_seq_len is 16"):
        generate(model, list(range(16)), Sampling())
    with pytest.raises(ValueError, match="max_sentences and stop_repeat need decode"):
        generate(model, [1], Sampling(max_sentences=1))


def test_kv_cache_refuses_to_overflow():
    cache = KVCache(batch_size=1, num_layers=1, num_heads=2, head_dim=4, max_len=5)
    k = torch.zeros(1, 2, 6, 4)
    with pytest.raises(ValueError, match="KV cache holds 5 positions; 6 needed"):
        cache.update(0, k, k)


def test_generation_runs_in_inference_mode_without_leaking_and_restores_train_mode():
    model = tiny_model().train()
    tokens = generate(model, [1, 2, 3], Sampling(max_new_tokens=5))
    next(tokens)
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()
    assert not model.training  # eval while generating: no dropout
    list(tokens)
    assert model.training


@pytest.fixture(scope="module")
def char_tok():
    return train_tokenizer([TEXT], kind="char", vocab_size=200)


def test_answer_and_stream_answer_agree(char_tok):
    model = tiny_model(vocab_size=char_tok.vocab_size, max_seq_len=64)
    sampling = Sampling(max_new_tokens=20)
    result = answer(model, char_tok, "What is the Sun?", sampling)
    assert isinstance(result, Answer)
    assert result.prompt_tokens == len(encode_prompt(char_tok, "What is the Sun?"))
    assert result.new_tokens == len(result.token_ids) <= 20
    assert char_tok.decode(result.token_ids).strip().startswith(result.text)
    assert result.seconds > 0
    assert result.tokens_per_second == pytest.approx(result.new_tokens / result.seconds)
    assert "".join(stream_answer(model, char_tok, "What is the Sun?", sampling)).rstrip() == result.text


def test_long_prompt_cut_like_fine_tuning_cuts_it(char_tok):
    question, context = "What is Mars?", "The Sun is a star. The Moon orbits the Earth. Mars is red."
    full = encode_prompt(char_tok, question, context)
    assert fit_prompt(char_tok, question, context, len(full)) == full
    cut = fit_prompt(char_tok, question, context, len(full) - 10)
    assert cut == encode_prompt(char_tok, question, "The Sun is a star. The Moon orbits the Earth.")
    closed = encode_prompt(char_tok, question)
    assert fit_prompt(char_tok, question, context, len(closed) + 2) == closed  # no whole word fits
    tail = fit_prompt(char_tok, question, None, 12)
    assert len(tail) == 12 and tail[0] == char_tok.bos_id and char_tok.decode(tail).endswith("?\nAnswer:")
    # answer() leaves min(max_new_tokens, max_seq_len // 2) positions for the answer
    model = tiny_model(vocab_size=char_tok.vocab_size, max_seq_len=64)
    result = answer(model, char_tok, question, Sampling(max_new_tokens=100), context=context)
    assert result.prompt_tokens <= 32 and result.prompt_tokens + result.new_tokens <= 64


def test_stream_answer_keeps_multibyte_characters_whole():
    byte_tok = train_tokenizer([TEXT], kind="bpe", vocab_size=260)  # bytes only: "é" is two tokens
    question = "Q?"
    words = byte_tok.encode(" Café, crème brûlée.")
    assert len(words) > len(" Café, crème brûlée.")
    model = ScriptedModel(words, start=len(encode_prompt(byte_tok, question)), vocab_size=byte_tok.vocab_size,
                          after=byte_tok.eos_id)
    pieces = list(stream_answer(model, byte_tok, question, Sampling(max_new_tokens=40)))
    assert pieces == ["Café, crème brûlée."]
    assert answer(model, byte_tok, question, Sampling(max_new_tokens=40)).text == "Café, crème brûlée."


def test_answers_stream_a_sentence_at_a_time_and_drop_one_cut_off(char_tok):
    byte_tok = train_tokenizer([TEXT], kind="bpe", vocab_size=260)
    question = "Q?"
    words = byte_tok.encode(" It is 9.59 s. Yes, it is. It was set in")
    model = ScriptedModel(words, start=len(encode_prompt(byte_tok, question)), vocab_size=byte_tok.vocab_size,
                          after=byte_tok.encode("a")[0], max_seq_len=128)
    sampling = Sampling(max_new_tokens=len(words) + 3)  # cut off inside "It was set inaaa"
    assert list(stream_answer(model, byte_tok, question, sampling)) == ["It is 9.59 s.", " Yes, it is."]
    result = answer(model, byte_tok, question, sampling)
    assert result.text == "It is 9.59 s. Yes, it is."
    assert byte_tok.decode(result.token_ids).startswith(" It is 9.59 s. Yes, it is. It was set ina")
    # no complete sentence at all: the text is kept as it is, there is nothing better to show
    sampling = Sampling(max_new_tokens=6)
    assert answer(model, byte_tok, question, sampling).text == byte_tok.decode(words[:6]).strip() == "It is"
    assert "".join(stream_answer(model, byte_tok, question, sampling)) == "It is"


def test_no_repeat_ngram_never_cuts_a_word():
    # ".", "59" was said once already: a bigram ban forbids "59" again, unless "59" continues a word
    model = ScriptedModel(script("The| record| is| 9|.|59| s|.| It|.|59"), start=1, vocab_size=len(WORDS), after=1)
    plain = run(model, [2], Sampling(max_new_tokens=11, no_repeat_ngram=2), use_cache=False)
    spared = run(model, [2], Sampling(max_new_tokens=11, no_repeat_ngram=2,
                                      word_continuations=(WORDS.index("59"),)), use_cache=False)
    assert plain[:10] == spared[:10] and plain[10] != WORDS.index("59") and spared[10] == WORDS.index("59")


STUTTER = ["<pad>", "<eos>", "Q", " Ser", "ian", " Answer", ":", " It", " is", "."]


def test_no_token_pair_comes_twice_inside_a_word():
    """The no-repeat ban spares the tokens inside words, so a word could stutter to the token limit
    ("Serianianian..."): inside one word no pair of tokens comes twice."""
    model = ScriptedModel([3, 4, 4, 4, 4, 4], start=1, vocab_size=len(STUTTER), after=1)
    plain = run(model, [2], Sampling(max_new_tokens=6, no_repeat_ngram=3), use_cache=False)
    assert plain[:4] == [3, 4, 4, 4]  # the 3-gram ban alone lets "ian" come a third time
    spared = run(model, [2], Sampling(max_new_tokens=6, no_repeat_ngram=3, word_continuations=(4,)),
                 use_cache=False)
    assert spared[:3] == [3, 4, 4] and spared[3] != 4
    assert word_tail([7, 3, 4, 4], frozenset({4})) == [3, 4, 4] and word_tail([4], frozenset({4})) == [4]


def test_an_answer_never_writes_the_prompts_labels():
    model = ScriptedModel([5, 6, 7, 8, 9], start=1, vocab_size=len(STUTTER), after=1)

    def decode(ids):
        return "".join(STUTTER[i] for i in ids)

    free = run(model, [2], Sampling(max_new_tokens=5, max_sentences=1), decode=decode, eos_id=1, use_cache=False)
    assert decode(free) == " Answer: It is."
    answer_like = Sampling(max_new_tokens=5, max_sentences=1, suppress_tokens=(0,))
    said = run(model, [2], answer_like, decode=decode, use_cache=False)
    assert said[0] == 5 and said[1] != 6 and ":" not in decode(said) and decode(said).endswith(" It is.")


def test_answers_spare_the_tokens_inside_words(char_tok):
    bpe = train_tokenizer([TEXT], kind="bpe", vocab_size=300)
    inside = word_continuation_ids(bpe)
    assert all(bpe.decode([i])[:1].isalnum() for i in inside)
    assert not any(bpe.decode([i]).startswith(" ") for i in inside) and len(inside) > 26
    assert answer_sampling(bpe, Sampling()).word_continuations == tuple(sorted(inside))


def test_repeats_word_ngram_and_whole_sentences():
    assert repeats_word_ngram("the skin is the skin is ", 3)
    assert not repeats_word_ngram("the skin is the skin is", 3)  # "is" may still become "island"
    assert repeats_word_ngram("The Skin. the skin.", 2) and not repeats_word_ngram("the skin", 1)
    assert not repeats_word_ngram("a b c d e", 2) and not repeats_word_ngram("", 4)
    assert whole_sentences("It is big. It is the sk") == "It is big."
    assert whole_sentences("It is 9.59 s. Yes.") == "It is 9.59 s. Yes."
    assert whole_sentences("no end here") == "no end here"


def test_stop_repeat_stops_after_a_sentence_and_steers_before_one():
    looping = ScriptedModel(script("The| record| is| 9|.|59| s|.| It| record| is| 9|.|59| s|."), start=1,
                            vocab_size=len(WORDS), after=1)
    said = run(looping, [2], Sampling(max_new_tokens=30, stop_repeat=2), decode=decode_words, eos_id=1,
               use_cache=False)
    # " 9" would confirm that "is" is a whole word, repeating "record is": stopped before it
    assert decode_words(said) == "The record is 9.59 s. It record is"
    stuck = ScriptedModel(script(" It| record| is| It| record| is| 9"), start=1, vocab_size=len(WORDS), after=1)
    said = run(stuck, [2], Sampling(max_new_tokens=6, stop_repeat=2), decode=decode_words, eos_id=1,
               use_cache=False)
    # no sentence out yet: " is" would repeat "it record", so the next best token comes instead
    assert decode_words(said[:5]) == " It record is It record" and said[5] != WORDS.index(" is")
    with pytest.raises(ValueError, match="stop_repeat need decode"):
        run(looping, [2], Sampling(stop_repeat=2))
