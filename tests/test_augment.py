"""Knowledge augmentation: sentences that name their subject, shuffled orders, QA pairs mixed into pretraining."""

from collections import Counter
from dataclasses import replace

import pytest

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.augment import augment_article, augment_articles, name_sentence, units
from minillm.data.records import Article, QAPair
from minillm.data.subject import find_subject
from minillm.prompt import encode_qa
from minillm.tokenizer import train_tokenizer
from minillm.training import data as train_data
from minillm.training.config import config_from_dict, config_to_dict, load_config, save_config
from minillm.training.data import augmented_documents, is_heldout, pretrain_tokens
from minillm.training.trainer import train

ARTICLES = [
    ("Jupiter", "Fifth planet from the Sun", "astronomy",
     "Jupiter is the fifth planet from the Sun. It has 95 known moons. The Galilean moons are the largest. "
     "Its atmosphere is mostly hydrogen. It was named after the Roman god. Jupiter is a gas giant."),
    ("Adana", "City in Turkey", "geography",
     "Adana is a city in southern Turkey. The city is situated on the Seyhan River. It has a population of "
     "two million. Cotton grows on the plain around it."),
    ("Heart", "Organ that pumps blood", "anatomy",
     "The heart is a muscular organ that pumps blood. It has four chambers. This organ beats about seventy "
     "times a minute."),
    ("Lion", "Species of big cat", "animals",
     "The lion is a large cat of Africa and India. It lives in groups called prides. Male lions have a mane."),
    ("Water", "Chemical compound", "chemistry",
     "Water is a compound of hydrogen and oxygen. Its formula is H2O. It boils at one hundred degrees."),
    ("Tornado", "Rotating column of air", "weather",
     "A tornado is a rotating column of air. It reaches from a thunderstorm to the ground. Tornadoes can "
     "destroy buildings."),
]


def articles():
    return [Article.create(source="offline", title=t, domain=dom, text=x, url=f"https://x/{t}", description=d,
                           retrieved_at="2026-01-01T00:00:00+00:00") for t, d, dom, x in ARTICLES]


def pairs(items):
    return [QAPair.create(article_id=a.id, domain=a.domain, question=f"What is {a.title}?",
                          answer=a.text.split(". ")[0] + ".", context=a.text, kind="overview") for a in items]


def test_every_sentence_about_the_subject_names_it():
    jupiter = articles()[0]
    subject = find_subject(jupiter.title, jupiter.description, [jupiter.text.split(". ")[0] + "."], "astronomy")
    assert name_sentence(subject, "It has 95 known moons.") == "Jupiter has 95 known moons."
    assert name_sentence(subject, "Its atmosphere is mostly hydrogen.") == "Jupiter's atmosphere is mostly hydrogen."
    assert name_sentence(subject, "The Galilean moons are the largest.") == "The Galilean moons are the largest."
    assert name_sentence(subject, "It is thought that it formed first.") == "It is thought that it formed first."
    assert name_sentence(subject, "It is possible to see it by eye.") == "It is possible to see it by eye."
    assert name_sentence(subject, "It is visible to the naked eye.") == "Jupiter is visible to the naked eye."
    panda = find_subject("Giant panda", "Species of bear", ["The giant panda is a bear species."], "animals")
    assert name_sentence(panda, "It is native to China.") == "The giant panda is native to China."
    adana = find_subject("Adana", "City in Turkey", ["Adana is a city in southern Turkey."], "geography")
    assert name_sentence(adana, "The city is situated on the Seyhan River.") == \
        "Adana is situated on the Seyhan River."
    island = find_subject("Socotra", "Largest of the six islands of an archipelago", ["Socotra is an island."],
                          "geography")
    sentence = "The largest of the six islands is green."  # a head that is no noun: left alone
    assert name_sentence(island, sentence) == sentence


def test_units_keep_a_sentence_that_does_not_name_the_subject_with_the_one_before():
    jupiter = articles()[0]
    assert units(jupiter) == [
        "Jupiter is the fifth planet from the Sun.",
        "Jupiter has 95 known moons. The Galilean moons are the largest.",
        "Jupiter's atmosphere is mostly hydrogen.", "Jupiter was named after the Roman god.",
        "Jupiter is a gas giant."]
    assert units(jupiter, name_subject=False)[1] == "It has 95 known moons. The Galilean moons are the largest."


def test_shuffled_orders_hold_the_same_units_in_other_orders_deterministically():
    jupiter = articles()[0]
    docs = augment_article(jupiter, orders=3, seed=0)
    assert len(docs) == 4 and docs[0] == " ".join(units(jupiter))
    parts = units(jupiter)
    for doc in docs[1:]:
        assert doc != docs[0]
        assert Counter(p for p in parts if p in doc) == Counter(parts)  # every unit once, whole
        assert len(doc) == len(docs[0])
    assert augment_article(jupiter, orders=3, seed=0) == docs
    assert augment_article(jupiter, orders=3, seed=1) != docs
    one_unit = replace(jupiter, text="Jupiter is a planet.")
    assert augment_article(one_unit, orders=2) == ["Jupiter is a planet."] * 3  # seen as often as the others
    assert len(augment_articles(articles(), orders=2)) == 3 * len(ARTICLES)
    with pytest.raises(ValueError, match="orders"):
        augment_article(jupiter, orders=-1)


def write_data(tmp_path):
    items = articles()
    write_jsonl(tmp_path / "articles.jsonl", items)
    write_jsonl(tmp_path / "train.jsonl", pairs(items)[1:])
    write_jsonl(tmp_path / "val.jsonl", pairs(items)[:1])
    return items


def tiny_config(tmp_path, seq_len=48, **data):
    tables = {
        "data": {"articles": str(tmp_path / "articles.jsonl"), "train_qa": str(tmp_path / "train.jsonl"),
                 "val_qa": str(tmp_path / "val.jsonl"), "heldout_fraction": 0.2, **data},
        "tokenizer": {"kind": "word", "vocab_size": 300},
        "model": {"max_seq_len": seq_len, "emb_dim": 32, "num_layers": 1, "num_heads": 2},
        "train": {"seed": 3, "device": "cpu", "batch_size": 2, "pretrain_steps": 3, "finetune_steps": 2,
                  "warmup_steps": 1, "eval_interval": 0, "eval_batches": 1, "log_interval": 1,
                  "checkpoint_interval": 0},
    }
    return config_from_dict(tables, "test")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))


def test_augmented_stream_holds_each_kept_article_in_every_order_and_the_mixed_pairs(tmp_path):
    items = write_data(tmp_path)
    tok = train_tokenizer([a.text for a in items], kind="word", vocab_size=300)
    cfg = tiny_config(tmp_path, name_subject=True, orders=2, mix_qa=2)
    kept = [a for a in items if not is_heldout(a.id, 0.2)]
    assert 0 < len(kept) < len(items)  # the fixture holds one out, else this test proves nothing
    docs = augmented_documents(cfg, tok)
    qa_docs = [d for d in docs if d[0] == tok.bos_id]
    text_docs = [d for d in docs if d[0] != tok.bos_id]
    assert len(text_docs) == 3 * len(kept)
    expected = sorted(tok.encode(t) + [tok.eos_id] for t in augment_articles(kept, orders=2, seed=3))
    assert sorted(text_docs) == expected
    trained = [p for p in pairs(items)[1:] if not is_heldout(p.article_id, 0.2)]
    assert sorted(qa_docs) == sorted(encode_qa(tok, p.question, p.answer)[0] for p in trained for _ in range(2))
    assert docs != text_docs + qa_docs  # interleaved, not appended
    assert augmented_documents(cfg, tok) == docs  # the same for a seed ...
    other_seed = replace(cfg, train=replace(cfg.train, seed=4))
    assert augmented_documents(other_seed, tok) != docs  # ... and another order for another
    plain = augmented_documents(tiny_config(tmp_path, mix_qa=1), tok)  # mixing alone keeps the text as written
    assert sorted(d for d in plain if d[0] != tok.bos_id) == sorted(tok.encode(a.text) + [tok.eos_id] for a in kept)


def test_augmentation_changes_the_cached_stream_and_trains(tmp_path):
    items = write_data(tmp_path)
    tok = train_tokenizer([a.text for a in items], kind="word", vocab_size=300)
    tok_bytes = tok.hf.to_str().encode()
    plain, plain_val = pretrain_tokens(tiny_config(tmp_path, seq_len=8), tok, tok_bytes)
    named, named_val = pretrain_tokens(tiny_config(tmp_path, seq_len=8, name_subject=True), tok, tok_bytes)
    assert plain.tolist() != named.tolist()
    assert plain_val.tolist() == named_val.tolist()  # validation text stays as written
    shuffled, _ = pretrain_tokens(tiny_config(tmp_path, seq_len=8, orders=2), tok, tok_bytes)
    assert len(shuffled) > 2.5 * len(plain)
    result = train(tiny_config(tmp_path, name_subject=True, orders=1, mix_qa=1), tmp_path / "run", progress=False)
    assert result.steps == 5
    saved = load_config(tmp_path / "run" / "config.toml")
    assert (saved.data.name_subject, saved.data.orders, saved.data.mix_qa) == (True, 1, 1)


def test_augmentation_settings_are_checked_and_saved(tmp_path):
    with pytest.raises(InputError, match=r"data.orders: must be >= 0, got -1"):
        tiny_config(tmp_path, orders=-1)
    with pytest.raises(InputError, match=r"data.mix_qa: expected int"):
        tiny_config(tmp_path, mix_qa="two")
    with pytest.raises(InputError, match=r"data.name_subject: augments articles; data.text is a plain text"):
        tiny_config(tmp_path, name_subject=True, text="input.txt")
    cfg = tiny_config(tmp_path, name_subject=True, orders=3, mix_qa=1)
    assert {k: config_to_dict(cfg)["data"][k] for k in ("name_subject", "orders", "mix_qa")} == \
        {"name_subject": True, "orders": 3, "mix_qa": 1}
    save_config(cfg, tmp_path / "config.toml")
    assert load_config(tmp_path / "config.toml") == cfg


def test_a_missing_train_split_for_mixing_is_one_line(tmp_path):
    items = write_data(tmp_path)
    tok = train_tokenizer([a.text for a in items], kind="word", vocab_size=300)
    cfg = tiny_config(tmp_path, mix_qa=1, train_qa=str(tmp_path / "missing.jsonl"))
    with pytest.raises(InputError, match=r"missing.jsonl: no such file \(data.train_qa"):
        pretrain_tokens(cfg, tok, tok.hf.to_str().encode())
    assert train_data.augmenting(cfg) and not train_data.augmenting(tiny_config(tmp_path))


def test_data_augment_command_writes_the_documents_and_refuses_bad_input(tmp_path, capsys):
    write_data(tmp_path)
    out = tmp_path / "augmented.txt"
    assert main(["data", "augment", "--input", str(tmp_path / "articles.jsonl"), "--output", str(out),
                 "--orders", "1", "--seed", "5"]) == 0
    assert out.read_text().split("\n\n") == [*augment_articles(articles(), orders=1, seed=5)[:-1],
                                             augment_articles(articles(), orders=1, seed=5)[-1] + "\n"]
    (tmp_path / "bad.jsonl").write_text('{"title": "x"}\n')
    assert main(["data", "augment", "--input", str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "b.txt")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err and not (tmp_path / "b.txt").exists()
    assert main(["data", "augment", "--input", str(tmp_path / "articles.jsonl"), "--output", str(out),
                 "--orders", "-2"]) == 2
