"""The ``wikipedia`` source: article text from the live MediaWiki action API, politely and resumably.

``WikipediaClient.fetch_pages`` asks https://en.wikipedia.org/w/api.php for the plain-text extract
(TextExtracts), the short description and the disambiguation flag of some titles, and says for each
title what it resolved to. ``fetch_wikipedia`` turns ``{domain: [titles]}`` into ``Article`` records.

    report = fetch_wikipedia({"astronomy": ["Sun", "Moon"], None: ["Octopus"]}, "data/articles.jsonl",
                             client=WikipediaClient(), classify=domains.classify)
    report.written  # Counter({'astronomy': 2, 'animals': 1})

Design choices:
- Standard library only (urllib, json). One GET per batch of at most 20 titles for lead sections (the
  API's ``exlimit``); one title per request for full text, the only way the API returns whole articles.
  When the API stops early and answers ``continue``, the rest is asked for and merged.
- Polite by default, as the Wikimedia API etiquette asks: a descriptive User-Agent, one request at a
  time, at least ``min_interval`` seconds between the starts of two requests.
- Retries with exponential backoff on HTTP 429 and 5xx, timeouts, refused, dropped or reset connections,
  truncated bodies and invalid JSON; a ``Retry-After`` header (seconds) wins over our own backoff. Other
  4xx and API errors are not retried (asking again gets the same answer). Giving up raises
  ``FetchError`` naming the titles.
- Resumable: every finished title is appended to ``<output>.partial`` as one flushed JSON line (the
  article, or why it was skipped) before the next request, so a rerun after a crash, Ctrl-C or give-up
  asks only for the rest. ``output`` is written once, atomically, at the end: the union of the old output,
  the partial file and the new articles, never the same article id twice.
- ``sleep`` and ``clock`` are parameters so the tests run against a fake server on a fake clock.

Left out: gzip, parallel requests, ``maxlag``, and refreshing articles already in ``output`` (a rerun
only adds titles it has not seen; to switch between lead sections and full text, write a new output).
A topic that is a redirect is asked again on a rerun after completion (the output keeps only resolved
titles) but never written twice.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from minillm.core.errors import InputError
from minillm.core.files import append_jsonl, iter_json_lines, repair_jsonl_tail, utc_now, write_jsonl
from minillm.data.domains import SEED_TOPICS
from minillm.data.fetch import OFF_DOMAIN, FetchReport, wikipedia_url
from minillm.data.records import Article, read_articles, record_from_dict

API_URL = "https://en.wikipedia.org/w/api.php"
USER_AGENT = ("minillm/0.1 (https://github.com/minillm/minillm; educational QA dataset builder) "
              "python-urllib")
SOURCE = "wikipedia"
INTRO_BATCH = 20  # the API's exlimit: at most 20 lead extracts per request
MAX_BACKOFF = 60.0
RETRIED_API_ERRORS = {"ratelimited", "maxlag"}  # the API's own "slow down" answers


class FetchError(RuntimeError):
    """The Wikipedia API failed for good: an error not worth retrying, or every retry used up."""


@dataclass(frozen=True)
class PageResult:
    """What one requested title turned out to be.

    ``title`` is the page's title after normalisation ("sun" -> "Sun") and redirects; ``status`` is
    ``ok``, ``missing``, ``disambiguation`` or ``invalid`` (not a possible title); ``extract`` is the
    plain text, possibly empty.
    """

    requested: str
    title: str
    status: str
    extract: str = ""
    description: str | None = None


class _Retryable(Exception):
    """One failed attempt worth repeating; ``delay`` is the server's Retry-After when it sent one."""

    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.delay = delay


def _retry_after(headers) -> float | None:
    try:
        seconds = float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None  # absent, or an HTTP date: our own backoff applies
    return seconds if 0 <= seconds < math.inf else None


def _names(titles: list[str]) -> str:
    shown = ", ".join(repr(t) for t in titles[:3])
    return shown + (f" and {len(titles) - 3} more" if len(titles) > 3 else "")


class WikipediaClient:
    """A polite MediaWiki API client: rate limited, retrying, one request at a time."""

    def __init__(self, api_url: str = API_URL, user_agent: str = USER_AGENT, min_interval: float = 1.0,
                 max_retries: int = 5, timeout: float = 30.0, backoff: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        if not api_url.startswith(("http://", "https://")):
            raise InputError(f"api_url: expected an http(s) URL, got {api_url!r}")
        self.api_url = api_url
        self.user_agent = user_agent
        self.min_interval = min_interval
        self.max_retries = max_retries  # retries after the first attempt
        self.timeout = timeout
        self.backoff = backoff
        self.sleep = sleep
        self.clock = clock
        self._last_start: float | None = None

    def fetch_pages(self, titles: list[str], full: bool) -> list[PageResult]:
        """One ``PageResult`` per title, in order: lead sections, or with ``full`` the whole plain text."""
        for title in titles:
            if not title.strip() or "|" in title:
                raise ValueError(f"not a Wikipedia title: {title!r}")  # '|' separates titles in the API
        size = 1 if full else INTRO_BATCH
        results: list[PageResult] = []
        for start in range(0, len(titles), size):
            results += self._query(titles[start:start + size], full)
        return results

    def _query(self, titles: list[str], full: bool) -> list[PageResult]:
        params = {"action": "query", "format": "json", "formatversion": "2",
                  "prop": "extracts|description|pageprops", "explaintext": "1", "exlimit": str(len(titles)),
                  "redirects": "1", "ppprop": "disambiguation", "titles": "|".join(titles)}
        if not full:
            params["exintro"] = "1"
        renamed: dict[str, str] = {}  # normalisations and redirects, from -> to
        pages: dict[str, dict] = {}
        resume: dict = {}
        try:
            while True:
                data = self._get({**params, **resume}, titles)
                query = data.get("query", {})
                for step in query.get("normalized", []) + query.get("redirects", []):
                    renamed[step["from"]] = step["to"]
                for page in query.get("pages", []):
                    pages.setdefault(page["title"], {}).update(page)  # a continuation adds fields
                if "continue" not in data:
                    break
                if data["continue"] == resume:
                    raise FetchError(f"Wikipedia API: repeated the same 'continue' for {_names(titles)}")
                resume = data["continue"]
        except (AttributeError, KeyError, TypeError) as e:
            raise FetchError(f"Wikipedia API: unexpected response for {_names(titles)} ({e!r})") from None
        return [self._result(title, renamed, pages) for title in titles]

    @staticmethod
    def _result(requested: str, renamed: dict[str, str], pages: dict[str, dict]) -> PageResult:
        title, seen = requested, {requested}
        while title in renamed and renamed[title] not in seen:  # redirect loops end where they close
            title = renamed[title]
            seen.add(title)
        page = pages.get(title)
        if page is None:
            raise FetchError(f"Wikipedia API: the response has no page for {requested!r}")
        if page.get("invalid"):
            return PageResult(requested, title, "invalid")
        if page.get("missing"):
            return PageResult(requested, title, "missing")
        if "disambiguation" in (page.get("pageprops") or {}):
            return PageResult(requested, title, "disambiguation")
        return PageResult(requested, title, "ok", (page.get("extract") or "").strip(),
                          page.get("description") or None)

    def _get(self, params: dict, titles: list[str]) -> dict:
        request = Request(self.api_url + "?" + urlencode(params),
                          headers={"User-Agent": self.user_agent, "Accept": "application/json"})
        for attempt in range(self.max_retries + 1):
            self._wait_turn()
            try:
                return self._attempt(request, titles)
            except _Retryable as failure:
                last = failure
            if attempt < self.max_retries:
                own = min(self.backoff * 2 ** attempt, MAX_BACKOFF)
                self.sleep(own if last.delay is None else last.delay)
        raise FetchError(f"Wikipedia API: gave up after {self.max_retries + 1} attempts for "
                         f"{_names(titles)}; last error: {last}")

    def _wait_turn(self) -> None:
        if self._last_start is not None:
            wait = self._last_start + self.min_interval - self.clock()
            if wait > 0:
                self.sleep(wait)
        self._last_start = self.clock()

    def _attempt(self, request: Request, titles: list[str]) -> dict:
        try:
            with urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except HTTPError as e:
            e.close()
            if e.code == 429 or e.code >= 500:
                raise _Retryable(f"HTTP {e.code}", _retry_after(e.headers)) from None
            raise FetchError(f"Wikipedia API: HTTP {e.code} {e.reason} for {_names(titles)} "
                             "(not retried)") from None
        except (OSError, http.client.HTTPException) as e:  # timeouts, connections, short bodies
            raise _Retryable(f"{type(e).__name__}: {e}") from None
        try:
            data = json.loads(body)
        except ValueError as e:  # also a body cut inside a UTF-8 character
            raise _Retryable(f"invalid JSON ({e})") from None
        if not isinstance(data, dict):
            raise _Retryable("invalid JSON (not an object)")
        error = data.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            if code in RETRIED_API_ERRORS:
                raise _Retryable(f"API error '{code}'")
            info = error.get("info") if isinstance(error, dict) else error
            raise FetchError(f"Wikipedia API: error '{code}' for {_names(titles)}: {info}")
        return data


def partial_path(output: str | Path) -> Path:
    """Where ``fetch_wikipedia`` keeps its progress until ``output`` is complete."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def _wanted_topics(topics: dict[str | None, list[str]], report: FetchReport) -> dict[str, str | None]:
    wanted: dict[str, str | None] = {}
    for domain, titles in topics.items():
        for title in titles:
            title = title.strip()
            if not title or "|" in title:
                raise InputError(f"topics: {title!r} is not a Wikipedia title")
            if title in wanted:
                report.skipped["duplicate"] += 1
            else:
                wanted[title] = domain
    if not wanted:
        raise InputError("topics: no titles to fetch")
    return wanted


def _read_partial(partial: Path, full: bool, report: FetchReport) -> tuple[list[Article], set[str]]:
    """Articles and finished topics recorded by an earlier, unfinished run; counted into ``report``."""
    repair_jsonl_tail(partial)
    if not partial.exists() or partial.stat().st_size == 0:
        return [], set()
    articles, done = [], set()
    for lineno, obj in iter_json_lines(partial):
        where = f"{partial}:{lineno}"
        if not (isinstance(obj, dict) and isinstance(obj.get("topic"), str)
                and isinstance(obj.get("full"), bool)):
            raise InputError(f"{where}: not a progress line of a Wikipedia fetch; "
                             "delete the file to start over")
        if obj["full"] != full:
            raise InputError(f"{where}: field 'full': this fetch was started with full={obj['full']}; "
                             f"rerun it the same way or delete {partial.name}")
        if "skipped" in obj:
            report.skipped[str(obj["skipped"])] += 1
        else:
            try:
                article = record_from_dict(Article, obj)
            except ValueError as e:
                raise InputError(f"{where}: {e}") from None
            articles.append(article)
            report.written[article.domain] += 1
        done.add(obj["topic"])
    return articles, done


def fetch_wikipedia(topics: dict[str | None, list[str]], output: str | Path, *, full: bool = False,
                    client: WikipediaClient, classify: Callable | None = None,
                    progress: Callable[[int, int], None] | None = None) -> FetchReport:
    """Fetch the titles of ``topics`` (domain -> titles) from Wikipedia and write them to ``output``.

    A domain of ``None`` means "unknown": ``classify(title, description, text)`` decides, else ``other``.
    ``report.written`` counts the articles this fetch added (a resumed run includes the ones its
    interrupted start saved); ``report.skipped`` counts topics by reason: missing, disambiguation,
    invalid, empty, duplicate (same page twice), already fetched (in ``output`` before).
    ``progress(n_done, n_total)`` is called at the start and after each request batch.
    """
    output = Path(output)
    partial = partial_path(output)
    report = FetchReport()
    wanted = _wanted_topics(topics, report)
    old = read_articles(output) if output.exists() else []
    resumed, done = _read_partial(partial, full, report)
    old_titles = {a.title for a in old if a.source == SOURCE}
    known = old_titles | {a.title for a in resumed}
    todo = []
    for title in wanted:
        if title in done:
            continue
        if title in known:
            report.skipped["already fetched" if title in old_titles else "duplicate"] += 1
        else:
            todo.append(title)
    n_done = len(wanted) - len(todo)
    if progress:
        progress(n_done, len(wanted))

    fetched: list[Article] = []
    stamp = utc_now()
    step = 1 if full else INTRO_BATCH
    for start in range(0, len(todo), step):
        batch = todo[start:start + step]
        lines = []
        for result in client.fetch_pages(batch, full):
            line: dict = {"topic": result.requested, "full": full}
            if result.status != "ok":
                line["skipped"] = result.status
            elif not result.extract:
                line["skipped"] = "empty"
            elif result.title in known:
                line["skipped"] = "already fetched" if result.title in old_titles else "duplicate"
            else:
                domain = wanted[result.requested]
                if domain is None:
                    domain = (classify(result.title, result.description, result.extract)
                              if classify else None) or OFF_DOMAIN
                article = Article.create(source=SOURCE, title=result.title, domain=domain,
                                         text=result.extract, url=wikipedia_url(result.title),
                                         retrieved_at=stamp, description=result.description)
                known.add(article.title)
                fetched.append(article)
                report.written[domain] += 1
                line.update(dataclasses.asdict(article))
            if "skipped" in line:
                report.skipped[line["skipped"]] += 1
            lines.append(line)
        append_jsonl(partial, lines)  # this batch is now safe from a crash
        n_done += len(batch)
        if progress:
            progress(n_done, len(wanted))

    unique: dict[str, Article] = {}
    for article in old + resumed + fetched:
        unique.setdefault(article.id, article)
    articles = list(unique.values())
    if not articles:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(report.skipped.items()))
        raise InputError(f"wikipedia source: no article from {len(wanted)} topic(s) ({reasons}); "
                         "nothing written")
    write_jsonl(output, articles)
    partial.unlink(missing_ok=True)
    return report


def read_topics_file(path: str | Path) -> list[str]:
    """Titles from a text file: one per line; blank lines and everything after '#' are ignored.

    ('#' cannot appear in a Wikipedia title, so it is safe as a comment marker anywhere on a line.)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    titles = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        title = line.split("#", 1)[0].strip()
        if "|" in title:
            raise InputError(f"{path}:{lineno}: '|' cannot appear in a Wikipedia title")
        if title:
            titles.append(title)
    if not titles:
        raise InputError(f"{path}: no topics (one Wikipedia title per line; '#' starts a comment)")
    return titles


def seed_topics(domains: list[str]) -> dict[str, list[str]]:
    """The built-in seed titles of each named domain."""
    unknown = [d for d in domains if d not in SEED_TOPICS]
    if unknown:
        raise InputError(f"--domains: no seed topics for {', '.join(unknown)}; "
                         f"choose from {', '.join(SEED_TOPICS)}")
    return {domain: list(SEED_TOPICS[domain]) for domain in domains}


def limit_topics(topics: dict[str | None, list[str]], limit: int, seed: int) -> dict[str | None, list[str]]:
    """At most ``limit`` titles in all, a seeded sample that keeps each domain's order."""
    if limit <= 0:
        raise InputError(f"--limit: must be a positive number, got {limit}")
    flat = [(domain, title) for domain, titles in topics.items() for title in titles]
    if len(flat) <= limit:
        return topics
    keep = set(random.Random(seed).sample(range(len(flat)), limit))
    limited: dict[str | None, list[str]] = {}
    for i, (domain, title) in enumerate(flat):
        if i in keep:
            limited.setdefault(domain, []).append(title)
    return limited
