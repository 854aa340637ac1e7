"""A fake MediaWiki action API for tests: the ``action=query`` subset minillm's Wikipedia client uses,
served over real HTTP on 127.0.0.1 from a small in-memory wiki, with faults injected on demand.

It copies the real API where the client depends on it (formatversion=2 shapes): titles are normalised
("sun" -> "Sun", underscores to spaces) and redirects followed, both reported; missing and invalid
titles are flagged; disambiguation pages carry the pageprop; TextExtracts gives lead sections for up to
``exlimit`` pages but a whole article for one page only, and answers ``continue`` when it stops early
(``extracts_per_response`` makes it stop early on purpose); the continuation repeats no description
or pageprops, as the real one does. Requests with other parameters get an API ``badvalue`` error.

    with FakeMediaWiki(sample_wiki()) as server:
        server.fail("429", "drop")   # the next two requests fail, the third is served
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

FAULTS = ("ok", "429", "403", "500", "503", "drop", "slow", "short-body", "cut-json", "ratelimited",
          "api-error")
EXPECTED = {"action": "query", "format": "json", "formatversion": "2", "explaintext": "1",
            "redirects": "1", "ppprop": "disambiguation", "prop": "extracts|description|pageprops"}
FORBIDDEN = set("#<>[]{}|")


@dataclass
class Page:
    title: str
    intro: str
    description: str | None = None
    sections: str = ""
    disambiguation: bool = False

    @property
    def full_text(self) -> str:
        return f"{self.intro}\n\n{self.sections}".strip()


@dataclass
class FakeWiki:
    pages: dict[str, Page] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)

    def add(self, title: str, intro: str, description: str | None = None, **kw) -> None:
        sections = kw.pop("sections", f"== History ==\nThe study of {title} has a long history.")
        self.pages[title] = Page(title, intro, description, sections, **kw)


def normalise(title: str) -> str | None:
    """MediaWiki's title normalisation for the main namespace; None for an invalid title."""
    title = " ".join(title.replace("_", " ").split())
    if not title or FORBIDDEN & set(title):
        return None
    return title[0].upper() + title[1:]


_ENTRIES = {
    "astronomy": [("Sun", "star at the centre of the Solar System",
                   "The Sun is the star at the centre of the Solar System. It is a hot ball of plasma."),
                  ("Moon", "natural satellite of Earth", "The Moon is Earth's only natural satellite."),
                  ("Earth", "third planet from the Sun", "Earth is the third planet from the Sun."),
                  ("Mars", "fourth planet from the Sun", "Mars is the fourth planet from the Sun."),
                  ("Jupiter", "fifth planet from the Sun", "Jupiter is the largest planet."),
                  ("Comet", "icy small Solar System body", "A comet is an icy body that sheds gas."),
                  ("Galaxy", "system of stars", "A galaxy is a system of stars, gas and dust.")],
    "anatomy": [("Heart", "organ that pumps blood", "The heart is a muscular organ that pumps blood."),
                ("Lung", "respiratory organ", "The lungs are the primary organs of respiration."),
                ("Brain", "organ of the nervous system", "The brain is the centre of the nervous system."),
                ("Liver", "digestive organ", "The liver is an organ that filters the blood."),
                ("Skeleton", "frame of the body", "The skeleton is the frame of bones of the body.")],
    "animals": [("Elephant", "large mammal", "Elephants are the largest living land animals."),
                ("Octopus", "cephalopod", "An octopus is a soft-bodied mollusc with eight limbs."),
                ("Penguin", "flightless seabird", "Penguins are flightless birds of the south."),
                ("Honey bee", "eusocial insect", "A honey bee is an insect that makes honey."),
                ("Blue whale", "marine mammal", "The blue whale is the largest animal known.")],
    "geography": [("Mount Everest", "highest mountain", "Mount Everest is Earth's highest mountain."),
                  ("Amazon River", "river in South America", "The Amazon is a river in South America."),
                  ("Sahara", "desert in Africa", "The Sahara is a desert on the African continent."),
                  ("Pacific Ocean", "largest ocean", "The Pacific Ocean is the largest ocean.")],
    "chemistry": [("Water", "chemical compound", "Water is a compound of hydrogen and oxygen."),
                  ("Oxygen", "chemical element", "Oxygen is a chemical element with symbol O."),
                  ("Carbon", "chemical element", "Carbon is a chemical element with symbol C."),
                  ("Ångström", "unit of length", "The ångström is a unit of length of 0.1 nm.")],
    "weather": [("Tornado", "rotating column of air", "A tornado is a violently rotating column of air."),
                ("Rain", "liquid precipitation", "Rain is water droplets that fall from clouds."),
                ("Cloud", "aerosol in the atmosphere", "A cloud is a mass of tiny water droplets."),
                ("Tropical cyclone", "storm system", "A tropical cyclone is a rotating storm system.")],
}


def sample_wiki() -> FakeWiki:
    """30 articles in six domains, four redirects, a disambiguation page and an empty extract."""
    wiki = FakeWiki()
    for entries in _ENTRIES.values():
        for title, description, intro in entries:
            wiki.add(title, intro, description)
    wiki.add("Mercury", "Mercury may refer to:", disambiguation=True, sections="Mercury (planet)")
    wiki.add("List of comets", "", "Wikimedia list article", sections="")
    wiki.redirects.update({"Earth (planet)": "Earth", "Sol (star)": "Sun", "Human heart": "Heart",
                           "Hurricane": "Tropical cyclone"})
    return wiki


def titles_of(domain: str) -> list[str]:
    return [title for title, _, _ in _ENTRIES[domain]]


class FakeTime:
    """A clock that only moves when someone sleeps: tests see every wait and take none."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@dataclass
class Seen:
    """One request as the server saw it; ``at`` is the test's clock when it arrived."""

    params: dict[str, str]
    headers: dict[str, str]
    at: float | None
    fault: str


class FakeMediaWiki:
    def __init__(self, wiki: FakeWiki, clock=None, retry_after: str | None = "3", slow_seconds: float = 2.0,
                 extracts_per_response: int = 20):
        self.wiki = wiki
        self.clock = clock
        self.retry_after = retry_after  # the 429 fault's Retry-After header; None sends none
        self.slow_seconds = slow_seconds
        self.extracts_per_response = extracts_per_response
        self.requests: list[Seen] = []
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)  # a short poll makes shutdown quick

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/w/api.php"

    def fail(self, *faults: str) -> None:
        """Answer the next requests with these faults, one each, in order ("ok" serves normally)."""
        unknown = set(faults) - set(FAULTS)
        assert not unknown, f"unknown fault(s) {unknown}"
        self._faults.extend(faults)

    def requested_titles(self) -> list[str]:
        """Every title asked for, in order, once per attempt (continuations of an answer aside)."""
        return [t for r in self.requests if "excontinue" not in r.params
                for t in r.params["titles"].split("|")]

    def __enter__(self) -> FakeMediaWiki:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _arrive(self, handler: BaseHTTPRequestHandler) -> tuple[dict[str, str], str]:
        params = dict(parse_qsl(urlsplit(handler.path).query, keep_blank_values=True))
        with self._lock:
            fault = self._faults.popleft() if self._faults else "ok"
            self.requests.append(Seen(params, dict(handler.headers.items()),
                                      self.clock() if self.clock else None, fault))
        return params, fault

    def answer(self, params: dict[str, str]) -> dict:
        """The API's JSON answer to a query (a dict), as the real api.php would give it."""
        for name, value in EXPECTED.items():
            if params.get(name) != value:
                return {"error": {"code": "badvalue", "info": f"fake: expected {name}={value}"}}
        requested = params.get("titles", "").split("|")
        if len(requested) > 50:
            return {"error": {"code": "toomanyvalues", "info": "Too many values for parameter titles"}}
        normalized, redirects, pages = [], [], {}
        for raw in requested:
            title = normalise(raw)
            if title is None:
                pages[raw] = {"title": raw, "invalidreason": "The requested page title is invalid",
                              "invalid": True}
                continue
            if title != raw:
                normalized.append({"fromencoded": False, "from": raw, "to": title})
            if title in self.wiki.redirects:
                redirects.append({"from": title, "to": self.wiki.redirects[title]})
                title = self.wiki.redirects[title]
            if title in self.wiki.pages:
                pages[title] = {"pageid": list(self.wiki.pages).index(title) + 1, "ns": 0, "title": title}
            else:
                pages[title] = {"ns": 0, "title": title, "missing": True}
        existing = sorted((p for p in pages.values() if "pageid" in p), key=lambda p: p["pageid"])
        intro = params.get("exintro") == "1"
        limit = min(int(params.get("exlimit", 20)), 20) if intro else 1
        offset = int(params.get("excontinue", 0))
        end = offset + min(limit, self.extracts_per_response)
        for item in existing[offset:end]:
            page = self.wiki.pages[item["title"]]
            item["extract"] = page.intro if intro else page.full_text
        if offset == 0:
            for item in existing:
                page = self.wiki.pages[item["title"]]
                if page.description:
                    item["description"] = page.description
                    item["descriptionsource"] = "central"
                if page.disambiguation:
                    item["pageprops"] = {"disambiguation": ""}
        query = {"normalized": normalized, "redirects": redirects, "pages": list(pages.values())}
        query = {key: value for key, value in query.items() if value}
        if end < len(existing):
            return {"continue": {"excontinue": end, "continue": "||description|pageprops"}, "query": query}
        return {"batchcomplete": True, "query": query}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        fake: FakeMediaWiki = self.server.fake
        params, fault = fake._arrive(self)
        self.close_connection = True
        try:
            if fault == "drop":
                return  # close the socket without a word
            if fault == "slow":
                fake._stopping.wait(fake.slow_seconds)
            if fault in ("429", "403", "500", "503"):
                extra = {"Retry-After": fake.retry_after} if fault == "429" and fake.retry_after else {}
                self._send(int(fault), b"<html><body>error</body></html>", "text/html", extra)
                return
            if fault == "ratelimited":
                answer = {"error": {"code": "ratelimited", "info": "You've exceeded your rate limit."}}
            elif fault == "api-error":
                answer = {"error": {"code": "badvalue", "info": "Unrecognized value for parameter."}}
            else:
                answer = fake.answer(params)
            body = json.dumps(answer, ensure_ascii=False).encode("utf-8")
            if fault == "cut-json":
                self._send(200, body[: len(body) // 2], "application/json; charset=utf-8")
            elif fault == "short-body":  # promise more bytes than are sent, then hang up
                self._send(200, body, "application/json; charset=utf-8", {}, length=len(body) + 100)
            else:
                self._send(200, body, "application/json; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the slow fault)

    def _send(self, code: int, body: bytes, content_type: str, headers: dict | None = None,
              length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
