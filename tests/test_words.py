"""core/words.py: the closed vocabulary an open-book answer is decoded with, its browser twin words.js, and
the token picker's use of it (models/generation.TokenPicker)."""

import doctest
import json
import shutil
import subprocess

import pytest
import torch

from minillm.core import words
from minillm.core.words import BoundedDecode, Vocabulary
from minillm.export.web import STATIC
from minillm.models.generation import VOCABULARY_TRIES, Sampling, sample_tokens

TEXTS = ["Mars has two moons, Phobos and Deimos.", "Wrocław is a city; its Rynek is old.", "Straße ﬁne ² Ⅻ"]
PROBES = ["Mars has two moons", "mars HAS two moo", "Mars has two moonsies", "Mars has 2 moons.", "Wroc\ufffd",
          "Wrocław is", "wroclaw", "Deimos,", "STRASSE", "straße", "ﬁne", "² Ⅻ", "Ⅻx", "", "  ...  ", "Rynek's",
          "it is a city", "Phob", "Phobos and D", "Mars has two moo \x1c", "Two moons of Wroc\ufffd",
          "Wrocław\ufffd\ufffd", "zorbleflax", "Mars zorble", "Wroc\ufffd\ufffd", "micropre\ufffd\ufffd\ufffd",
          "Micropre\ufffd", "Wrocław is\ufffd", "Deimos\ufffd", "Mars has two moons, " * 12 + "Phob",
          "Mars has two moons, " * 12 + "Phobx", "x" * 230 + " Mars has", "zorble Mars has two moons"]


def test_docstring_examples():
    assert doctest.testmod(words).failed == 0


def test_a_word_is_refused_once_no_word_starts_so_and_a_last_word_must_be_whole():
    vocabulary = Vocabulary.of_texts(TEXTS)
    assert vocabulary.allows("Mars has two moo") and not vocabulary.allows("Mars has two moo", final=True)
    assert not vocabulary.allows("Mars hasin")  # two spans glued
    assert not vocabulary.allows("two zorble Mars") and vocabulary.allows("zorble Mars has two moons")  # the
    # picker asks of each text one token longer than one it allowed: only the last RECENT whole words count
    assert vocabulary.allows("MARS, 95 moons!") and vocabulary.allows("95 % - 3")  # numbers and signs pass
    assert vocabulary.allows("Wroc\ufffd") and vocabulary.allows("Wroc\ufffd", final=True)  # "ł" on its way
    assert not vocabulary.allows("Wroc.")  # ... but a word ended by a sign must be whole
    extra = Vocabulary.of_texts(["What is a zorbleflax?"])
    assert not vocabulary.allows("A zorbleflax") and vocabulary.allows("A zorbleflax", extra)
    assert BoundedDecode(lambda ids: "", vocabulary, ["zorbleflax"]).allows("zorble")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_browser_twin_allows_what_python_allows(tmp_path):
    """words.js (export/web_static), run by node, gives Python's answer for every probe."""
    script = tmp_path / "probe.mjs"
    script.write_text(
        f'import {{ Vocabulary }} from {json.dumps((STATIC / "words.js").as_uri())};\n'
        f"const v = Vocabulary.ofTexts({json.dumps(TEXTS)}), extra = Vocabulary.ofTexts(['zorbleflax']);\n"
        f"const probes = {json.dumps(PROBES)};\n"
        "const seen = probes.map((p) => [v.allows(p), v.allows(p, extra, true), v.finish(p, extra)]);\n"
        "console.log(JSON.stringify(seen));\n",
        encoding="utf-8")
    out = subprocess.run(["node", str(script)], capture_output=True, text=True, check=True).stdout
    vocabulary, extra = Vocabulary.of_texts(TEXTS), Vocabulary(["zorbleflax"])
    expected = [[vocabulary.allows(p), vocabulary.allows(p, extra, True), vocabulary.finish(p, extra)] for p in PROBES]
    assert json.loads(out) == expected
    assert sorted(json.loads(subprocess.run(
        ["node", "--input-type=module", "-e",
         f'import {{ letterWords }} from {json.dumps((STATIC / "words.js").as_uri())};'
         f"console.log(JSON.stringify(letterWords({json.dumps(' '.join(TEXTS))})))"],
        capture_output=True, text=True, check=True).stdout)) == sorted(words.letter_words(" ".join(TEXTS)))


class Spelling:
    """Token ids are letters: 0 = end, 1 = " ", 2.. = "a".."z", then 172 more "q"s; the logits always put
    ``favourite`` first."""

    def __init__(self, favourite: list[int]):
        self.favourite = favourite

    def decode(self, ids):
        return "".join(" " if i == 1 else chr(ord("a") + i - 2) if i < 28 else "q" for i in ids if i != 0)

    def logits(self, position: int) -> torch.Tensor:
        logits = torch.linspace(0, 1, 200)  # the later letters more likely, "z" most, the "q"s least
        logits[28:] = -1.0
        logits[0] = -2.0  # the end last
        logits[self.favourite[position % len(self.favourite)]] = 5.0
        return logits


def picked(spelling: Spelling, vocabulary: Vocabulary | None, max_new_tokens: int = 12) -> str:
    position = [0]

    def step(_token):
        position[0] += 1
        return spelling.logits(position[0])

    decode = spelling.decode if vocabulary is None else BoundedDecode(spelling.decode, vocabulary)
    ids = sample_tokens(spelling.logits(0), step, 0, 100, Sampling(max_new_tokens=max_new_tokens), 0, decode)
    return spelling.decode(list(ids))


def test_the_picker_spells_only_words_of_the_vocabulary():
    spelling = Spelling([ord(c) - ord("a") + 2 for c in "cat"] + [1])  # it wants to say "cat cat cat ..."
    assert picked(spelling, None).startswith("cat cat")
    kept = picked(spelling, Vocabulary(["cab", "zz"]))
    assert kept and all(w in {"cab", "zz"} for w in kept.split()[:-1])  # the last may be cut by max_new_tokens
    cut = picked(spelling, Vocabulary(["cab", "zz"]), max_new_tokens=5)  # the token limit cuts a word short
    assert cut == "cab c" and Vocabulary(["cab", "zz"]).finish(cut) == "cab"  # ... which the answer drops


def test_a_vocabulary_that_refuses_every_token_ends_the_answer_after_its_tries():
    spelling = Spelling([5])
    calls = []

    class Counting(BoundedDecode):
        def allows(self, text, final=False):
            if not text:
                return True  # nothing said yet: not inside a word
            calls.append(text)
            return False

    decode = Counting(spelling.decode, Vocabulary([]))
    ids = list(sample_tokens(spelling.logits(0), lambda t: spelling.logits(1), 0, 100, Sampling(max_new_tokens=8),
                             0, decode))
    assert ids == [] and len(calls) == VOCABULARY_TRIES + 1
