"""Metric functions against outside references: SQuAD's normalisation and F1 cases as other evaluators
(T5, AllenNLP, torchmetrics) pin them, and hand computations for ROUGE-L, percentiles and bits per byte."""

import math

import pytest

from minillm.answering.attribution import content_words, faithfulness, sentence_sources
from minillm.evaluation.metrics import (
    bits_per_byte,
    degeneration,
    exact_match,
    fact_recall,
    fact_words,
    keyword_hit,
    normalize_answer,
    percentile,
    perplexity,
    rouge_l,
    sentence_count,
    token_f1,
    word_count,
)


@pytest.mark.parametrize("text, expected", [
    ("The Cat!", "cat"),
    ("   Rock    n  Roll.", "rock n roll"),
    # T5's qa_utils_test for normalize_squad: "_" and quotes are punctuation, "‘" (not ASCII) is not
    ("`Needs\tA_LOT of the 'normalization'.\"‘", "needs alot of normalization‘"),
    ("needs no normalization", "needs no normalization"),
    # articles go only as whole words: "theatre" and "another" keep their letters
    ("An anthem of the theatre, another play", "anthem of theatre another play"),
    ("a an the", ""),
])
def test_normalize_answer_matches_squad(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_after_normalisation():
    assert exact_match("the Denver Broncos", "Denver Broncos.") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    assert exact_match("The", "an") == 1.0  # both normalise to ""


@pytest.mark.parametrize("prediction, reference, expected", [
    ("this is the best span", "this is a good span", 0.75),  # AllenNLP's SquadEmAndF1 test
    ("2 時間 21 分", "2 時間", 2 / 3),  # torchmetrics' JSQuAD case: precision 2/4, recall 2/2
    ("rock", "rock n roll", 0.5),  # precision 1, recall 1/3
    ("1976", "1976", 1.0),
    ("nothing shared", "rock n roll", 0.0),
    ("the", "a", 1.0),  # SQuAD 2.0: both empty after normalisation
    ("", "rock", 0.0),
    ("rock rock roll", "rock roll roll", 2 / 3),  # bags of words: each token counts as often as in both
])
def test_token_f1_squad_cases(prediction, reference, expected):
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_rouge_l_hand_computed():
    # LCS of "the cat on mat" and "the cat sat on the mat" is 4 tokens: P = 4/4, R = 4/6, F = 0.8
    assert rouge_l("the cat on mat", "the cat sat on the mat") == pytest.approx(0.8)
    assert rouge_l("The CAT, on mat!", "the cat sat on the mat") == pytest.approx(0.8)  # case, punctuation
    # reversed order keeps a common subsequence of 2 ("cat ... the"): P = 2/4, R = 2/6, F = 0.4
    assert rouge_l("mat on cat the", "the cat sat on the mat") == pytest.approx(0.4)
    assert rouge_l("", "the cat") == 0.0


def test_keyword_hit_at_word_starts_ignoring_case():
    assert keyword_hit("The Sun is a STAR.", ["star"])
    assert keyword_hit("It performs detoxification.", ["detoxif"])  # keywords may be stems
    assert keyword_hit("An atom holds protons and neutrons.", ["proton"])
    assert keyword_hit("the concentration of water vapour", ["water vapo"])
    assert not keyword_hit("It is covered in dust.", ["red"])  # not inside a word, as substring search would
    assert not keyword_hit("A device", ["ice"])
    assert keyword_hit("Water (H2O) boils.", ["h2o"])
    assert keyword_hit("It is a red giant star.", ["white dwarf", "Red Giant"])
    assert keyword_hit("about 384,399 kilometres", ["384"])
    assert not keyword_hit("", ["star"])
    assert not keyword_hit("a star", [])


def test_sentence_and_word_counts():
    assert sentence_count("The Sun is a star. It is about 4.6 billion years old. It shines.") == 3
    assert sentence_count("Jupiter orbits at 5.20 AU from the Sun, e.g. in 11.86 years.") == 1
    assert sentence_count("") == 0
    assert word_count("  The Sun is\na star. ") == 5


def test_percentile_interpolates_like_numpy():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 95) == pytest.approx(3.85)  # rank 0.95 * 3 = 2.85: 3 + 0.85 * (4 - 3)
    assert math.isnan(percentile([], 50))


def test_bits_per_byte_and_perplexity_by_hand():
    # a uniform guess over 256 symbols costs ln 256 nats = 8 bits for each one-byte symbol
    assert bits_per_byte(3 * math.log(256), 3) == pytest.approx(8.0)
    # 10 tokens of 1.5 nats each over 20 bytes: 15 / ln 2 / 20 bits per byte
    assert bits_per_byte(15.0, 20) == pytest.approx(1.0820212806667)
    assert perplexity(math.log(50)) == pytest.approx(50.0)
    assert perplexity(1e4) == math.inf


@pytest.mark.parametrize(("answer", "flags"), [
    ("The Sun is a star. It is hot.", set()),
    ("Skin is the skin?k is the skin?k is the skin?k is the", {"repeated_4gram", "unfinished", "prompt_punctuation"}),
    ("ys doz\n, also known as the kidneys.", {"prompt_punctuation"}),
    ("It is a star and it is a star and it is a star.", {"repeated_4gram"}),
    ("The Moon orbits the Earth and", {"unfinished"}),
    ("Answer: the Moon.", {"prompt_punctuation"}),
    ("It ran 9.58 s (a record).", set()),
    ("", set()),
])
def test_degeneration_flags(answer, flags):
    assert {name for name, flagged in degeneration(answer).items() if flagged} == flags


def test_a_repetition_copied_from_the_passage_is_not_a_loop():
    answer = "The spinal cord is long. The center of the spinal cord is hollow. The spinal cord is covered."
    passage = answer + " It ends low."
    assert degeneration(answer)["repeated_4gram"]  # alone it looks like a loop
    assert not degeneration(answer, [passage])["repeated_4gram"]
    assert degeneration(answer + " The spinal cord is long.", [passage])["repeated_4gram"]  # four times: more than it
    assert degeneration(answer, ["The spinal cord is long."])["repeated_4gram"]


def test_faithfulness_counts_content_words_found_in_the_passages():
    passages = ["The Nile is a river in Africa.", "It is the longest river in the world."]
    assert content_words("The Nile is a river") == ["nile", "river"]
    assert faithfulness("The Nile is the longest river.", passages) == 1.0
    assert faithfulness("The Nile is purple.", passages) == pytest.approx(1 / 2)  # nile found, purple not
    assert faithfulness("It is the.", passages) is None  # no content words at all
    assert faithfulness("Nile", []) == 0.0
    sources = sentence_sources("The Nile is in Africa. It is the longest. Mars is red.", passages)
    assert [(s["passage"], s["share"]) for s in sources] == [(0, 1.0), (1, 1.0), (None, 0.0)]


def test_fact_words_are_what_the_reference_adds_to_the_question():
    reference = "Jupiter has 95 known moons. It is a gas giant."
    assert fact_words("How many moons does Jupiter have?", reference) == ["95", "known"]
    # the sentence sharing most words with the question holds the fact, wherever it stands
    assert fact_words("What family do walruses belong to?", "Walruses are big. They belong to the family "
                      "Odobenidae.") == ["odobenidae"]
    assert fact_words("What is Jupiter?", "Jupiter.") == []


def test_fact_recall_counts_the_fact_words_an_answer_holds():
    question, reference = "How many moons does Jupiter have?", "Jupiter has 95 known moons."
    assert fact_recall("Jupiter has 95 moons that are known.", question, reference) == 1.0
    assert fact_recall("Jupiter has 95 moons.", question, reference) == 0.5
    assert fact_recall("Jupiter has many moons, Jupiter has moons.", question, reference) == 0.0  # echoes earn 0
    assert fact_recall("Anything.", "What is Jupiter?", "Jupiter.") is None
