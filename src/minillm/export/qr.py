"""`minillm export qr RUN --out syneva.html [--png qr.png]`: a chatbot page small enough for one QR code.

    >>> export_qr("runs/quickstart", "syneva.html", "qr.png")
    'wrote syneva.html (2,949 of 2,953 bytes, 49 facts) and qr.png (version 40-L)'

A homage to SYNEVA, the MiniLMs seed's first implementation, which fit a chatbot in a QR code. The page is
one self-contained HTML file of at most 2,953 bytes (what a version-40 QR code holds at error correction L
in byte mode) that answers questions offline, opened from disk; the PNG is that file's bytes as a QR code
(the ``qrcode`` library), so a phone camera can carry the chatbot.

Rung: the page is the retrieval rung, shrunk to its bones: no language model, no generation. It answers with
the stored fact sentence that shares the most (inverse-document-frequency weighted) words with the question,
whatever the RUN's architecture: only the run's data is read (``data.articles`` and ``data.train_qa`` of its
config.toml), never its weights.

Design choices:
- Facts: the first sentence of an article (parentheses dropped, cut at a word boundary after
  ``FACT_CHARS`` characters), one per article. Nothing is hand-written: every fact comes from the run's
  articles.
- Which articles: the budget holds about fifty facts out of thousands, so articles are ranked by how
  central and rich they are in the run's own data: log(1 + number of other articles that mention the title)
  times the number of distinct question kinds (``QAPair.kind``) the run's QA pairs ask about the article.
  Domains take turns (round robin, each in its rank order) so that every domain of the run is covered;
  facts are added while the page still fits, a fact that does not fit is skipped for shorter later ones.
- Payload: the facts joined by newlines, deflate-raw compressed (zlib, level 9) and base64 encoded in the
  page, which inflates them with ``DecompressionStream("deflate-raw")``.
- Matching (``answer`` below re-implements the page's script exactly, tests check both agree): words are
  runs of [a-z0-9_] in the lowercased text, cut to their first ``STEM`` characters (a crude stemmer:
  "planets" meets "planet"); question words in ``STOP`` (question words, articles, auxiliaries) are
  dropped; each remaining distinct question stem found in a fact adds 1 / (number of facts holding it);
  the highest-scoring fact wins, the earliest on a tie; no shared stem gives "?".
- Safety: everything shown goes through ``textContent``, so a question or fact is never parsed as HTML.
- The PNG has 8-pixel modules and a 4-module quiet zone (1,480 px for version 40): OpenCV's
  QRCodeDetectorAruco decodes it at that size; at 4-pixel modules its classic QRCodeDetector did not.
- The page's text is ASCII (the payload is base64), so its size in bytes is its length in characters;
  ``InputError`` when not even one fact fits, for a missing run or data file, or an existing output.
"""

from __future__ import annotations

import base64
import io
import math
import re
import zlib
from collections import Counter, defaultdict
from pathlib import Path

from minillm.core.errors import InputError
from minillm.core.files import atomic_write
from minillm.data.records import read_articles, read_qa_pairs
from minillm.data.sentences import split_sentences
from minillm.training.config import load_config
from minillm.training.runs import CONFIG_FILE

BUDGET = 2953  # bytes of a version-40 QR code, error correction L, byte mode
FACT_CHARS = 110  # a fact sentence longer than this is cut at a word boundary
STEM = 5
STOP = ("what|which|who|whom|whose|where|when|why|how|does|did|do|is|are|was|were|the|a|an|of|in|on|to|"
        "and|for|it|its|has|have|can|you|tell|me|about")
_STOP_SET = frozenset(STOP.split("|"))
_WORD = re.compile(r"[a-z0-9_]+")

_PAGE = ('<!DOCTYPE html><title>SYNEVA</title><input id=q placeholder="Ask" autofocus><p id=answer></p>'
         '<small>Facts: Wikipedia, CC BY-SA 4.0 &middot; minillm retrieval rung</small><script>'
         'let F=[],S=[],s=t=>new Set((t.toLowerCase().match(/[a-z0-9_]+/g)||[]).map(w=>w.slice(0,%d))'
         '.filter(w=>!/^(%s)$/.test(w)));'
         'new Response(new Response(Uint8Array.from(atob("%s"),c=>c.charCodeAt())).body'
         '.pipeThrough(new DecompressionStream("deflate-raw"))).text().then(t=>{F=t.split("\\n");S=F.map(s)});'
         'q.onkeydown=e=>{if(e.key=="Enter"){let b=-1,m=0;S.forEach((x,i)=>{let v=0;s(q.value).forEach(w=>{'
         'if(x.has(w))v+=1/S.filter(y=>y.has(w)).length});if(v>m){m=v;b=i}});'
         'answer.textContent=b<0?"?":F[b]}}</script>\n')


def stems(text: str) -> dict[str, None]:
    """The page's ``s``: the distinct stems of text's non-stop words, in order (a dict as an ordered set)."""
    return dict.fromkeys(w[:STEM] for w in _WORD.findall(text.lower()) if w[:STEM] not in _STOP_SET)


def answer(facts: list[str], question: str) -> str:
    """What the page puts in #answer for question: the same sums in the same order, so the same floats."""
    sets = [stems(f) for f in facts]
    best, top = -1, 0.0
    for i, fact_stems in enumerate(sets):
        score = 0.0
        for w in stems(question):
            if w in fact_stems:
                score += 1 / sum(w in y for y in sets)
        if score > top:
            best, top = i, score
    return "?" if best < 0 else facts[best]


def render(facts: list[str]) -> bytes:
    """The page holding facts."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    payload = packer.compress("\n".join(facts).encode("utf-8")) + packer.flush()
    return (_PAGE % (STEM, STOP, base64.b64encode(payload).decode("ascii"))).encode("ascii")


def fact_sentence(text: str) -> str:
    """An article's first sentence, without parentheses, cut after FACT_CHARS characters at a word boundary."""
    sentences = split_sentences(text)
    first = sentences[0] if sentences else ""
    previous = None
    while previous != first:  # nested parentheses: innermost first
        previous, first = first, re.sub(r"\s*[(\[][^()\[\]]*[)\]]", "", first)
    first = " ".join(first.split())
    first = re.sub(r"^In [^,]{1,30}, (\w)", lambda m: m[1].upper(), first)  # "In biology, the ..." -> "The ..."
    first = re.sub(r", (?:officially|also|sometimes|historically|formerly|commonly|known)\b[^,;]*,", "", first)
    first = re.sub(r"\s+([,;.])", r"\1", first)
    if len(first) > FACT_CHARS:
        first = first[:FACT_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return first


def _title_words(title: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(re.sub(r"\s*\(.*?\)", "", title).lower()))


def rank_articles(articles, pairs) -> list:
    """Articles in the order the page takes them: domains in turn, each by log(1 + mentions) * QA kinds."""
    kinds: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        kinds[p.article_id].add(p.kind)
    titles = {_title_words(a.title) for a in articles}
    lengths = {len(t) for t in titles if t}
    mentions: Counter = Counter()
    for a in articles:
        words = _WORD.findall(a.text.lower())
        found = {tuple(words[i:i + n]) for n in lengths for i in range(len(words) - n + 1)} & titles
        found.discard(_title_words(a.title))  # other articles only
        mentions.update(found)
    by_domain: dict[str, list] = defaultdict(list)
    for a in articles:
        by_domain[a.domain].append(a)
    queues = [sorted(group, key=lambda a: (-math.log1p(mentions[_title_words(a.title)]) * len(kinds[a.id]),
                                           a.title))
              for _, group in sorted(by_domain.items())]
    ranked = []
    for i in range(max(map(len, queues))):
        ranked.extend(q[i] for q in queues if i < len(q))
    return ranked


def build_page(articles, pairs, budget: int = BUDGET) -> tuple[bytes, list[str]]:
    """The page (at most budget bytes) and its facts; InputError when not even one fact fits."""
    facts: list[str] = []
    page = None
    misses = 0
    for a in rank_articles(articles, pairs):
        fact = fact_sentence(a.text)
        if not fact or fact in facts:
            continue
        candidate = render(facts + [fact])
        if len(candidate) <= budget:
            facts.append(fact)
            page, misses = candidate, 0
        else:
            misses += 1
            if misses >= 40:
                break
    if page is None:
        raise InputError(f"the page does not fit in {budget:,} bytes even with one fact "
                         f"(the empty page takes {len(render([]))} bytes)")
    return page, facts


def qr_image(data: bytes):
    """A QR code of data (byte mode, error correction L, the smallest version that holds it)."""
    import qrcode

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, box_size=8, border=4)
    code.add_data(data, optimize=0)
    code.make(fit=True)
    return code.make_image(), code.version


def load_run_data(run: str | Path):
    run = Path(run)
    if not run.is_dir():
        raise InputError(f"{run}: no such run directory")
    cfg = load_config(run / CONFIG_FILE)
    if not cfg.data.articles:
        raise InputError(f"{run / CONFIG_FILE}: data.articles is empty; the page needs the run's articles")
    articles = read_articles(cfg.data.articles)
    pairs = read_qa_pairs(cfg.data.train_qa) if cfg.data.train_qa else []
    return articles, pairs


def export_qr(run: str | Path, out: str | Path, png: str | Path | None = None) -> str:
    """Write the page (and its QR code as a PNG); returns the summary line."""
    out = Path(out)
    for path in (out, png):
        if path is not None and Path(path).exists():
            raise InputError(f"{path}: already exists; not overwriting it")
    if png is not None and Path(png).resolve() == out.resolve():
        raise InputError(f"{png}: --png and --out are the same file")
    articles, pairs = load_run_data(run)
    page, facts = build_page(articles, pairs)
    image = version = None
    if png is not None:
        image, version = qr_image(page)
        buffer = io.BytesIO()
        image.save(buffer)
    with atomic_write(out, "wb") as fh:
        fh.write(page)
    summary = f"wrote {out} ({len(page):,} of {BUDGET:,} bytes, {len(facts)} facts)"
    if png is not None:
        with atomic_write(png, "wb") as fh:
            fh.write(buffer.getvalue())
        summary += f" and {png} (version {version}-L)"
    return summary
