"""Tokenizer kinds, tokenizer.json parity with Hugging Face, prompt format, QA encoding and truncation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm.core.errors import InputError
from minillm.prompt import encode_prompt, encode_qa, format_prompt
from minillm.tokenizer import KINDS, MIN_VOCAB_SIZE, SPECIAL_TOKENS, Tokenizer, train_tokenizer

CORPUS = [
    "The Sun is the star at the centre of the Solar System. It is a nearly perfect sphere of hot plasma.",
    "The heart is a muscular organ that pumps blood through the blood vessels of the circulatory system.",
    "Paris (French: [paʁi]) is the capital of France; population 2,102,650 (2023).",
    "Water (H₂O) boils at 100 °C — at sea level — and freezes at 0 °C.",
    "Tokyo (東京) is the capital of Japan. Café, naïve, São Paulo, Zürich, Ελλάδα, Москва. 🌍🌞",
    "A hurricane is a rotating storm system.\nIt has a low-pressure centre and strong winds!",
    "Question: What is the Sun?\nAnswer: The Sun is a star. Context: open-book passages look like this?",
] * 3

TEXTS = [
    "The Sun is a star.",
    "  leading and trailing spaces  ",
    "Line one\nLine two\n\n\tTabbed",
    "Café naïve 東京 🌍 e\u0301",
    "Paris, France; (2023) — 100 °C!",
    "",
]

TOKS = {kind: train_tokenizer(CORPUS, kind=kind, vocab_size=400) for kind in KINDS}
BPE, CHAR, WORD = TOKS["bpe"], TOKS["char"], TOKS["word"]


# --- the three kinds ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_special_ids_and_sizes(kind):
    tok = TOKS[kind]
    assert tok.kind == kind
    assert [tok.hf.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.vocab_size == tok.hf.get_vocab_size() <= 400


@pytest.mark.parametrize("kind", KINDS)
def test_encode_adds_no_special_tokens(kind):
    tok = TOKS[kind]
    assert tok.encode("") == []
    ids = tok.encode("The Sun is a star.")
    assert ids and not set(ids) & {0, 1, 2, 3}


@pytest.mark.parametrize("kind", KINDS)
def test_encode_batch_matches_encode(kind):
    tok = TOKS[kind]
    assert tok.encode_batch(TEXTS) == [tok.encode(t) for t in TEXTS]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.sampled_from(list(SPECIAL_TOKENS) + [
    "😀", "👩‍👩‍👧", "東京", "e\u0301", "\u200d", "\x00", "\x7f", "\r\n", "\n", " ", "  ", "\t"]))))
def test_bpe_round_trips_any_unicode(pieces):
    text = "".join(pieces)
    assert BPE.decode(BPE.encode(text)) == text


def test_bpe_merges_common_words_and_260_is_pure_bytes():
    assert len(BPE.encode("The Sun is the star")) < len(b"The Sun is the star")
    pure = train_tokenizer(CORPUS, kind="bpe", vocab_size=MIN_VOCAB_SIZE["bpe"])
    assert pure.vocab_size == 260
    text = "Café 🌍"
    assert len(pure.encode(text)) == len(text.encode("utf-8"))
    assert pure.decode(pure.encode(text)) == text


_SEEN = sorted(set("".join(CORPUS)))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(_SEEN)))
def test_char_round_trips_seen_characters(text):
    ids = CHAR.encode(text)
    assert len(ids) == len(text)
    assert CHAR.decode(ids) == text


def test_char_newlines_are_one_token_each():
    assert CHAR.encode("a\n\n\nb") == CHAR.encode("a") + CHAR.encode("\n") * 3 + CHAR.encode("b")


def test_char_unknown_and_vocab_keeps_most_frequent():
    assert CHAR.encode("S\u2603") == [CHAR.hf.token_to_id("S"), CHAR.unk_id]
    assert CHAR.decode(CHAR.encode("S\u2603")) == "S"
    assert CHAR.decode(CHAR.encode("S\u2603"), skip_special=False) == "S<unk>"
    small = train_tokenizer(["aaaa bbb cc d"], kind="char", vocab_size=7)
    assert small.vocab_size == 7
    assert [small.hf.id_to_token(i) for i in range(4, 7)] == ["a", " ", "b"]


def test_word_splits_punctuation_and_decode_joins_with_spaces():
    ids = WORD.encode("The Sun, a star (zebra).")
    assert [WORD.hf.id_to_token(i) for i in ids] == ["The", "Sun", ",", "a", "star", "(", "<unk>", ")", "."]
    assert WORD.decode(ids) == "The Sun , a star ( ) ."
    small = train_tokenizer(["the cat the dog the cat"], kind="word", vocab_size=6)
    assert [small.hf.id_to_token(i) for i in range(small.vocab_size)] == list(SPECIAL_TOKENS) + ["the", "cat"]


# --- literal special-token strings stay text ------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_literal_markers_are_text_not_special_ids(tmp_path, kind):
    tok = TOKS[kind]
    ids = tok.encode("a <eos> b <bos>")
    assert not set(ids) & {1, 2}
    tok.save(tmp_path / "tokenizer.json")
    plain = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert 2 in plain.encode("a <eos> b", add_special_tokens=False).ids  # documented difference


def test_bpe_round_trips_literal_markers():
    text = "<pad><bos>x<eos> <unk>"
    assert BPE.decode(BPE.encode(text)) == text


# --- tokenizer.json: parity with Hugging Face, save/load, errors ----------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_saved_json_encodes_identically_in_hugging_face(tmp_path, kind):
    path = tmp_path / "tokenizer.json"
    TOKS[kind].save(path)
    plain = tokenizers.Tokenizer.from_file(str(path))
    loaded = Tokenizer.load(path)
    assert loaded.kind == kind and loaded.vocab_size == TOKS[kind].vocab_size
    for text in TEXTS + CORPUS[:7]:
        ids = loaded.encode(text)
        assert plain.encode(text).ids == ids == TOKS[kind].encode(text)
        assert plain.decode(ids) == loaded.decode(ids)
    assert json.loads(path.read_text())["post_processor"] is None


def test_save_and_load_accept_a_directory_and_leave_no_temp_files(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    BPE.save(run_dir)
    CHAR.save(run_dir)  # replaces the file whole
    assert sorted(p.name for p in run_dir.iterdir()) == ["tokenizer.json"]
    assert Tokenizer.load(run_dir).kind == "char"


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.json: no such file"):
        Tokenizer.load(tmp_path / "nope.json")
    with pytest.raises(InputError, match=r"tokenizer\.json: no such file"):
        Tokenizer.load(tmp_path)


@pytest.mark.parametrize("content", [b'{"version": "1.0", "model": {"type"', b"\xff\xfe garbage", b"{}", b""])
def test_load_corrupt_file(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"tokenizer\.json: not a valid tokenizer\.json \(") as info:
        Tokenizer.load(path)
    assert "\n" not in str(info.value)


def test_load_foreign_tokenizer_json(tmp_path):
    wordpiece = tokenizers.Tokenizer(tokenizers.models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    wordpiece.save(str(tmp_path / "wp.json"))
    with pytest.raises(InputError, match=r"wp\.json: not a minillm tokenizer \(model WordPiece"):
        Tokenizer.load(tmp_path / "wp.json")
    swapped = {"<bos>": 0, "<pad>": 1, "<eos>": 2, "<unk>": 3}
    shuffled = tokenizers.Tokenizer(tokenizers.models.WordLevel(swapped, unk_token="<unk>"))
    shuffled.save(str(tmp_path / "shuffled.json"))
    with pytest.raises(InputError, match=r"shuffled\.json: special token '<pad>' must have id 0, found 1"):
        Tokenizer.load(tmp_path / "shuffled.json")


# --- training: arguments and determinism ----------------------------------------------------------

def test_unknown_kind():
    with pytest.raises(InputError, match=r"tokenizer kind 'sentencepiece': expected one of bpe, char, word"):
        train_tokenizer(CORPUS, kind="sentencepiece")


@pytest.mark.parametrize(("kind", "too_small"), [("bpe", 259), ("char", 4), ("word", 4), ("word", 0)])
def test_vocab_size_too_small(kind, too_small):
    with pytest.raises(ValueError, match=rf"vocab_size {too_small}: kind '{kind}' needs at least"):
        train_tokenizer(CORPUS, kind=kind, vocab_size=too_small)
    smallest = MIN_VOCAB_SIZE[kind]
    assert train_tokenizer(CORPUS, kind=kind, vocab_size=smallest).vocab_size == smallest


@pytest.mark.parametrize("texts", [[], ["", "  \n"], iter([])])
def test_empty_corpus(texts):
    with pytest.raises(InputError, match="the corpus has no text"):
        train_tokenizer(texts, kind="bpe")


def test_training_accepts_a_generator():
    assert train_tokenizer((t for t in CORPUS), "bpe", 400).hf.to_str() == BPE.hf.to_str()


_TRAIN_SCRIPT = """
import sys
from minillm.tokenizer import train_tokenizer
texts = sys.stdin.read().split("\\x1e")
sys.stdout.write(train_tokenizer(texts, kind=sys.argv[1], vocab_size=400).hf.to_str(pretty=True))
"""


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_deterministic(tmp_path, kind):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    train_tokenizer(CORPUS, kind, 400).save(first)
    train_tokenizer(CORPUS, kind, 400).save(second)
    assert first.read_bytes() == second.read_bytes()
    # a fresh process has fresh hash seeds (Python's and Rust's)
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, kind], input="\x1e".join(CORPUS),
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": src})
    assert out.stdout == first.read_text(encoding="utf-8")


# --- prompt format and QA encoding ----------------------------------------------------------------

def test_prompt_strings():
    assert format_prompt("What is the Sun?") == "Question: What is the Sun?\nAnswer:"
    assert format_prompt("What is the Sun?", "The Sun is a star.") == (
        "Context: The Sun is a star.\nQuestion: What is the Sun?\nAnswer:")
    assert format_prompt("Q?", "") == format_prompt("Q?", None) == "Question: Q?\nAnswer:"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("context", [None, "The Sun is the star at the centre of the Solar System."])
def test_encode_qa_layout_and_mask(kind, context):
    tok = TOKS[kind]
    question, answer = "What is the Sun?", "The Sun is a star. It is hot."
    ids, mask = encode_qa(tok, question, answer, context)
    prompt = encode_prompt(tok, question, context)
    assert prompt == [1] + tok.encode(format_prompt(question, context))
    assert ids == prompt + tok.encode(" " + answer) + [2]
    assert mask == [0] * len(prompt) + [1] * (len(ids) - len(prompt))
    answer_ids = [i for i, m in zip(ids, mask, strict=True) if m]
    assert answer_ids[-1] == tok.eos_id
    if kind != "word":
        assert tok.decode(answer_ids) == " " + answer
        assert tok.decode(ids) == format_prompt(question, context) + " " + answer


def test_bpe_training_ids_are_the_encoding_of_the_whole_text():
    """Prompt and answer are encoded apart; that must equal encoding them as one string (what HF sees)."""
    for context in (None, "Paris is the capital of France."):
        for answer in ("The Sun is a star.", "(1) first; 2nd", "  spaced", "100 °C"):
            ids, _ = encode_qa(BPE, "What is it?", answer, context)
            whole = format_prompt("What is it?", context) + " " + answer
            assert ids == [1] + BPE.hf.encode(whole, add_special_tokens=False).ids + [2]


def test_truncation_shortens_context_first_then_answer():
    tok = train_tokenizer(["abcdefghijklmnopqrstuvwxyz ?:\nCQAQuestionContextAnswer"], "char", 100)
    question, answer, context = "q?", "the answer", "abcdefghij"
    full, _ = encode_qa(tok, question, answer, context)
    assert len(full) == 1 + len(format_prompt(question, context)) + len(" " + answer) + 1

    ids, mask = encode_qa(tok, question, answer, context, max_len=len(full) - 3)
    assert tok.decode(ids) == format_prompt(question, "abcdefg") + " " + answer
    assert len(ids) == len(full) - 3 and ids[-1] == tok.eos_id and mask[-1] == 1

    closed = 1 + len(format_prompt(question)) + len(" " + answer) + 1
    ids, _ = encode_qa(tok, question, answer, context, max_len=closed)
    assert tok.decode(ids) == format_prompt(question) + " " + answer

    ids, mask = encode_qa(tok, question, answer, context, max_len=closed - 4)
    assert tok.decode(ids) == format_prompt(question) + " the an"
    assert ids[-1] == tok.eos_id and sum(mask) == len(" the an") + 1

    minimal = 1 + len(format_prompt(question)) + 1
    ids, mask = encode_qa(tok, question, answer, context, max_len=minimal)
    assert ids[-1] == tok.eos_id and mask.count(1) == 1
    with pytest.raises(ValueError, match=f"max_len {minimal - 1} is too short"):
        encode_qa(tok, question, answer, context, max_len=minimal - 1)


@settings(max_examples=100, deadline=None)
@given(max_len=st.integers(min_value=0, max_value=120),
       context=st.one_of(st.none(), st.text(min_size=1, max_size=200)),
       answer=st.text(max_size=80))
def test_truncation_invariants(max_len, context, answer):
    question = "What is the capital of France?"
    full, _ = encode_qa(BPE, question, answer, context)
    try:
        ids, mask = encode_qa(BPE, question, answer, context, max_len=max_len)
    except ValueError:
        assert max_len < len(encode_prompt(BPE, question)) + 1
        return
    assert len(ids) == len(mask) <= max_len
    assert ids[-1] == BPE.eos_id and mask[-1] == 1
    n_prompt = mask.index(1)
    assert mask == [0] * n_prompt + [1] * (len(ids) - n_prompt)
    if len(full) <= max_len:
        assert ids == full
    answer_ids, closed = BPE.encode(" " + answer), encode_prompt(BPE, question)
    if ids[n_prompt:-1] != answer_ids:  # the answer is cut only once the whole context is gone
        assert ids[:n_prompt] == closed
        assert ids[n_prompt:-1] == answer_ids[:len(ids) - n_prompt - 1]
    elif ids[:n_prompt] != closed:  # what is left of the context is a prefix of it
        prompt = BPE.decode(ids[:n_prompt])
        assert prompt.startswith("Context: ")
        assert context.startswith(prompt[len("Context: "):prompt.rindex("\nQuestion:")])


def test_char_kind_trains_and_encodes_long_texts_in_pieces_with_the_ids_of_whole_texts(monkeypatch):
    """Long char texts are cut into pieces (HF parallelises a batch, never one text): the tokenizer and
    the ids are those of HF's own training and encoding of the whole texts."""
    from minillm import tokenizer as module

    monkeypatch.setattr(module, "CHAR_PIECE", 7)
    texts = ["The Sun is a star.\nIt shines — über alles.\n\n", "", "short", "Zwölf Boxkämpfer jagen Viktor." * 3]
    whole, trainer = module._untrained("char", 40)
    whole.train_from_iterator(texts, trainer)
    tok = train_tokenizer(texts, kind="char", vocab_size=40)
    assert tok.hf.to_str() == whole.to_str()
    expected = [e.ids for e in whole.encode_batch(texts + ["unseen ✓ text"], add_special_tokens=False)]
    assert tok.encode_batch(texts + ["unseen ✓ text"]) == expected
    assert list(module.char_pieces(["abcdefghij", ""])) == ["abcdefg", "hij", ""]
