from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm.core.errors import InputError
from minillm.data.records import QAPair, normalize_question, read_qa_pairs
from minillm.data.split import split_qa_pairs, write_split

DOMAINS = ["astronomy", "anatomy", "animals", "geography", "chemistry", "weather"]


def make_pairs(n_articles=60, per_article=(1, 7), seed=0):
    import random

    rng = random.Random(seed)
    pairs = []
    for a in range(n_articles):
        domain = DOMAINS[a % len(DOMAINS)]
        for q in range(rng.randint(*per_article)):
            pairs.append(QAPair.create(article_id=f"art-{a}", domain=domain, question=f"Question {q} about {a}?",
                                       answer="One. Two.", context="ctx", kind="fact"))
    return pairs


def test_grouped_disjoint_and_complete():
    pairs = make_pairs()
    split = split_qa_pairs(pairs, 0.8, 0.1, 0.1, seed=1)
    parts = split.as_dict()
    ids = [p.id for part in parts.values() for p in part]
    assert sorted(ids) == sorted(p.id for p in pairs)
    articles = {name: {p.article_id for p in part} for name, part in parts.items()}
    assert not articles["train"] & articles["val"]
    assert not articles["train"] & articles["test"]
    assert not articles["val"] & articles["test"]


@settings(max_examples=40, deadline=None)
@given(st.integers(5, 80), st.floats(0, 1), st.floats(0, 1), st.integers(0, 1000))
def test_each_split_within_one_group_of_its_ratio(n_articles, a, b, seed):
    val, test = a * (1 - b) / 2, b / 2
    train = 1 - val - test
    pairs = make_pairs(n_articles, seed=seed)
    split = split_qa_pairs(pairs, train, val, test, seed=seed)
    largest = max(Counter(p.article_id for p in pairs).values())
    for name, ratio in (("train", train), ("val", val), ("test", test)):
        assert abs(len(split.as_dict()[name]) - ratio * len(pairs)) <= largest


def test_stratified_by_domain():
    pairs = make_pairs(600, per_article=(3, 3))
    split = split_qa_pairs(pairs, 0.8, 0.1, 0.1, seed=3)
    for domain in DOMAINS:
        n = sum(p.domain == domain for p in split.test)
        assert 25 <= n <= 35  # 300 pairs per domain, 10% -> 30, within a group or so


def test_identical_questions_never_in_two_splits():
    pairs = []
    for a in range(40):
        # every article shares one question with the next article (normalisation-insensitive)
        pairs.append(QAPair.create(article_id=f"a{a}", domain="astronomy", question=f"What is thing {a}?",
                                   answer="x. y.", context="c", kind="k"))
        pairs.append(QAPair.create(article_id=f"a{a}", domain="astronomy", question=f"what is THING {a + 1}",
                                   answer="x. y.", context="c", kind="k"))
    for group_by in ("article", "none"):
        split = split_qa_pairs(pairs, 0.5, 0.25, 0.25, group_by=group_by, seed=0)
        where = {}
        for name, part in split.as_dict().items():
            for p in part:
                q = normalize_question(p.question)
                assert where.setdefault(q, name) == name


def test_group_by_none_splits_articles():
    pairs = make_pairs(3, per_article=(30, 30))
    split = split_qa_pairs(pairs, 0.8, 0.1, 0.1, group_by="none", seed=0)
    assert len(split.test) == 9 and len(split.val) == 9
    assert {p.article_id for p in split.test} & {p.article_id for p in split.train}


def test_deterministic_and_seed_sensitive():
    pairs = make_pairs()
    assert split_qa_pairs(pairs, seed=5) == split_qa_pairs(pairs, seed=5)
    assert split_qa_pairs(pairs, seed=5).test != split_qa_pairs(pairs, seed=6).test


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.2), (1.2, -0.1, -0.1), (0.5, 0.5, float("nan")), (0.7, 0.1, 0.1)])
def test_bad_ratios(ratios):
    with pytest.raises(InputError, match="size"):
        split_qa_pairs(make_pairs(), *ratios)


def test_zero_ratio_gives_empty_split():
    split = split_qa_pairs(make_pairs(), 0.9, 0.0, 0.1)
    assert split.val == [] and split.test and split.train


def test_write_split(tmp_path):
    pairs = make_pairs()
    split = split_qa_pairs(pairs)
    write_split(split, tmp_path / "splits")
    assert read_qa_pairs(tmp_path / "splits" / "train.jsonl") == split.train
    assert read_qa_pairs(tmp_path / "splits" / "test.jsonl") == split.test
