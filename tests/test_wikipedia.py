"""The live Wikipedia source against a fake MediaWiki server (real HTTP on 127.0.0.1, fake clock)."""

from __future__ import annotations

import json

import pytest
from fake_mediawiki import FakeMediaWiki, FakeTime, sample_wiki, titles_of

from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.fetch import wikipedia_url
from minillm.data.records import Article, read_articles
from minillm.data.wikipedia import (
    USER_AGENT,
    FetchError,
    PageResult,
    WikipediaClient,
    fetch_wikipedia,
    partial_path,
    read_topics_file,
    seed_topics,
)


@pytest.fixture
def fake_time():
    return FakeTime()


@pytest.fixture
def server(fake_time):
    with FakeMediaWiki(sample_wiki(), clock=fake_time.clock) as fake:
        yield fake


@pytest.fixture
def make_client(server, fake_time):
    def make(**options) -> WikipediaClient:
        settings = {"api_url": server.url, "sleep": fake_time.sleep, "clock": fake_time.clock,
                    "timeout": 5.0, "min_interval": 0.0, **options}
        return WikipediaClient(**settings)
    return make


def interrupt_at(n_done: int):
    """A progress callback that presses Ctrl-C once ``n_done`` topics are finished."""
    def progress(done, total):
        if done == n_done:
            raise KeyboardInterrupt
    return progress


def lines_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_happy_path_writes_articles_with_intro_text_and_metadata(tmp_path, server, make_client):
    output = tmp_path / "articles.jsonl"
    topics = {"astronomy": ["Sun", "Moon"], "animals": ["Elephant"], "chemistry": ["Ångström"]}
    report = fetch_wikipedia(topics, output, client=make_client())
    articles = read_articles(output)
    assert [a.title for a in articles] == ["Sun", "Moon", "Elephant", "Ångström"]
    sun = articles[0]
    assert sun.id == Article.create(source="wikipedia", title="Sun", domain="astronomy", text="x", url="u").id
    assert (sun.domain, sun.source, sun.license) == ("astronomy", "wikipedia", "CC BY-SA 4.0")
    assert sun.text == server.wiki.pages["Sun"].intro
    assert sun.description == "star at the centre of the Solar System"
    assert sun.url == "https://en.wikipedia.org/wiki/Sun"
    assert articles[3].url == wikipedia_url("Ångström")
    assert report.written == {"astronomy": 2, "animals": 1, "chemistry": 1} and not report.skipped
    assert len(server.requests) == 1  # four lead sections in one batch
    assert not partial_path(output).exists()


def test_request_parameters_and_user_agent(tmp_path, server, make_client):
    fetch_wikipedia({"weather": ["Rain"]}, tmp_path / "a.jsonl", client=make_client())
    seen = server.requests[0]
    assert seen.headers["User-Agent"] == USER_AGENT
    assert "minillm" in USER_AGENT and "https://" in USER_AGENT  # Wikimedia asks for a contact
    assert seen.params == {"action": "query", "format": "json", "formatversion": "2",
                           "prop": "extracts|description|pageprops", "explaintext": "1", "exlimit": "1",
                           "redirects": "1", "ppprop": "disambiguation", "titles": "Rain", "exintro": "1"}
    custom = make_client(user_agent="tester/1.0 (me@example.org)")
    custom.fetch_pages(["Rain"], full=False)
    assert server.requests[-1].headers["User-Agent"] == "tester/1.0 (me@example.org)"


def test_lead_sections_go_20_per_request_and_continuations_are_followed(tmp_path, server, make_client):
    server.extracts_per_response = 7  # the API stops early and answers "continue"
    titles = [t for domain in ("astronomy", "anatomy", "animals", "geography", "chemistry", "weather")
              for t in titles_of(domain)]
    assert len(titles) == 29
    report = fetch_wikipedia({"mixed": titles}, tmp_path / "a.jsonl", client=make_client())
    articles = read_articles(tmp_path / "a.jsonl")
    assert [a.title for a in articles] == titles
    assert all(a.text == server.wiki.pages[a.title].intro for a in articles)
    assert all(a.description == server.wiki.pages[a.title].description for a in articles)
    batches = [r.params["titles"].split("|") for r in server.requests if "excontinue" not in r.params]
    assert [len(b) for b in batches] == [20, 9]
    assert len(server.requests) == 3 + 2  # ceil(20/7) + ceil(9/7)
    assert report.total == 29


def test_full_text_is_one_title_per_request(tmp_path, server, make_client):
    fetch_wikipedia({"anatomy": ["Heart", "Lung"]}, tmp_path / "a.jsonl", full=True, client=make_client())
    articles = read_articles(tmp_path / "a.jsonl")
    assert articles[0].text == server.wiki.pages["Heart"].full_text and "== History ==" in articles[0].text
    assert [r.params["titles"] for r in server.requests] == ["Heart", "Lung"]
    assert all("exintro" not in r.params for r in server.requests)
    server.requests.clear()
    results = make_client().fetch_pages(["Brain", "Liver"], full=True)  # the client batches on its own
    assert [r.extract for r in results] == [server.wiki.pages[t].full_text for t in ("Brain", "Liver")]
    assert [r.params["titles"] for r in server.requests] == ["Brain", "Liver"]


def test_rate_limit_spaces_request_starts(tmp_path, server, make_client, fake_time):
    fetch_wikipedia({"astronomy": ["Sun", "Moon", "Mars", "Earth"]}, tmp_path / "a.jsonl", full=True,
                    client=make_client(min_interval=1.5))
    assert [r.at for r in server.requests] == [0.0, 1.5, 3.0, 4.5]
    assert fake_time.sleeps == [1.5, 1.5, 1.5]  # no wait before the first request


def test_retry_after_is_honoured(server, make_client, fake_time):
    server.retry_after = "7"
    server.fail("429")
    [result] = make_client(min_interval=1.0).fetch_pages(["Sun"], full=False)
    assert result.status == "ok" and result.extract
    assert fake_time.sleeps == [7.0]  # the server's wait, not our 1 s backoff, and no extra rate-limit wait
    assert [r.at for r in server.requests] == [0.0, 7.0]


@pytest.mark.parametrize("fault", ["500", "503", "drop", "slow", "short-body", "cut-json", "ratelimited"])
def test_each_transient_fault_is_retried_and_recovered(server, make_client, fake_time, fault):
    server.fail(fault)
    [result] = make_client(timeout=0.3, backoff=0.5).fetch_pages(["Octopus"], full=False)
    assert result == PageResult("Octopus", "Octopus", "ok", server.wiki.pages["Octopus"].intro, "cephalopod")
    assert [r.fault for r in server.requests] == [fault, "ok"]
    assert fake_time.sleeps == [0.5]


def test_backoff_doubles_and_429_without_retry_after_uses_it(server, make_client, fake_time):
    server.retry_after = None
    server.fail("500", "429", "503")
    make_client(backoff=1.0).fetch_pages(["Sun"], full=False)
    assert fake_time.sleeps == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("fault", ["403", "api-error"])
def test_errors_that_would_repeat_are_not_retried(server, make_client, fault):
    server.fail(fault)
    with pytest.raises(FetchError, match="not retried|badvalue"):
        make_client().fetch_pages(["Sun"], full=False)
    assert len(server.requests) == 1


def test_gives_up_after_max_retries_naming_the_titles(server, make_client, fake_time):
    server.fail("500", "503", "500")
    with pytest.raises(FetchError, match=r"gave up after 3 attempts for 'Sun', 'Moon'.*HTTP 500"):
        make_client(max_retries=2).fetch_pages(["Sun", "Moon"], full=False)
    assert len(server.requests) == 3 and fake_time.sleeps == [1.0, 2.0]


def test_redirects_and_normalisation_resolve_to_one_article(tmp_path, server, make_client):
    topics = {"astronomy": ["sun", "Sol (star)", "Earth (planet)", "Earth"], "anatomy": ["human_heart"]}
    report = fetch_wikipedia(topics, tmp_path / "a.jsonl", client=make_client())
    articles = read_articles(tmp_path / "a.jsonl")
    assert [(a.title, a.domain) for a in articles] == [("Sun", "astronomy"), ("Earth", "astronomy"),
                                                        ("Heart", "anatomy")]
    assert articles[2].url == "https://en.wikipedia.org/wiki/Heart"
    assert report.skipped == {"duplicate": 2}


def test_fetch_pages_reports_what_each_title_became(server, make_client):
    results = make_client().fetch_pages(["Hurricane", "Mercury", "Flurbo", "Foo<bar>", "List of comets"],
                                        full=False)
    assert [(r.requested, r.title, r.status) for r in results] == [
        ("Hurricane", "Tropical cyclone", "ok"), ("Mercury", "Mercury", "disambiguation"),
        ("Flurbo", "Flurbo", "missing"), ("Foo<bar>", "Foo<bar>", "invalid"),
        ("List of comets", "List of comets", "ok")]
    assert results[4].extract == ""
    with pytest.raises(ValueError, match="not a Wikipedia title"):
        make_client().fetch_pages(["A|B"], full=False)


def test_missing_disambiguation_and_empty_pages_are_skipped_and_counted(tmp_path, server, make_client):
    topics = {"chemistry": ["Water", "Mercury", "Flurbonian orbital mechanics", "List of comets", "Foo<bar>"]}
    report = fetch_wikipedia(topics, tmp_path / "a.jsonl", client=make_client())
    assert [a.title for a in read_articles(tmp_path / "a.jsonl")] == ["Water"]
    assert report.skipped == {"disambiguation": 1, "missing": 1, "empty": 1, "invalid": 1}


def test_no_article_at_all_is_an_error_and_writes_nothing(tmp_path, server, make_client):
    with pytest.raises(InputError, match=r"no article from 2 topic\(s\) \(disambiguation: 1, missing: 1\)"):
        fetch_wikipedia({"astronomy": ["Mercury", "Flurbo"]}, tmp_path / "a.jsonl", client=make_client())
    assert not (tmp_path / "a.jsonl").exists()


def test_unknown_domain_uses_the_classifier_or_other(tmp_path, server, make_client):
    calls = []

    def classify(title, description, text):
        calls.append((title, description, text))
        return "astronomy" if "star" in text else None

    fetch_wikipedia({None: ["Sun", "Elephant"]}, tmp_path / "a.jsonl", client=make_client(),
                    classify=classify)
    assert [(a.title, a.domain) for a in read_articles(tmp_path / "a.jsonl")] == [("Sun", "astronomy"),
                                                                                   ("Elephant", "other")]
    assert calls[0] == ("Sun", "star at the centre of the Solar System", server.wiki.pages["Sun"].intro)
    fetch_wikipedia({None: ["Moon"]}, tmp_path / "b.jsonl", client=make_client())
    assert read_articles(tmp_path / "b.jsonl")[0].domain == "other"


def test_give_up_keeps_the_partial_file_and_a_rerun_resumes(tmp_path, server, make_client):
    output = tmp_path / "a.jsonl"
    topics = {"anatomy": titles_of("anatomy")}  # 5 titles, one request each
    server.fail("ok", "ok", "500", "500", "500")
    with pytest.raises(FetchError, match="'Brain'"):
        fetch_wikipedia(topics, output, full=True, client=make_client(max_retries=2))
    assert not output.exists()
    assert [line["title"] for line in lines_of(partial_path(output))] == ["Heart", "Lung"]

    server.requests.clear()
    report = fetch_wikipedia(topics, output, full=True, client=make_client())
    assert server.requested_titles() == ["Brain", "Liver", "Skeleton"]
    assert [a.title for a in read_articles(output)] == titles_of("anatomy")
    assert report.written == {"anatomy": 5}
    assert not partial_path(output).exists()


def test_ctrl_c_mid_fetch_then_resume_with_output_written_only_at_the_end(tmp_path, server, make_client):
    output = tmp_path / "a.jsonl"
    topics = {"astronomy": ["Sun", "Moon", "Mercury", "Mars"], "weather": ["Rain"]}

    def interrupt(done, total):
        assert not output.exists()  # nothing is written to the output before completion
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_wikipedia(topics, output, full=True, client=make_client(), progress=interrupt)
    assert [line["topic"] for line in lines_of(partial_path(output))] == ["Sun", "Moon", "Mercury"]

    server.requests.clear()
    calls = []
    report = fetch_wikipedia(topics, output, full=True, client=make_client(),
                             progress=lambda done, total: calls.append((done, total)))
    assert server.requested_titles() == ["Mars", "Rain"]  # Mercury's skip was remembered too
    assert calls == [(3, 5), (4, 5), (5, 5)]
    assert [a.title for a in read_articles(output)] == ["Sun", "Moon", "Mars", "Rain"]
    assert report.written == {"astronomy": 3, "weather": 1} and report.skipped == {"disambiguation": 1}


def test_a_page_saved_under_another_topic_is_not_asked_again_on_resume(tmp_path, server, make_client):
    output, topics = tmp_path / "a.jsonl", {"astronomy": ["Earth (planet)", "Earth", "Moon"]}
    with pytest.raises(KeyboardInterrupt):
        fetch_wikipedia(topics, output, full=True, client=make_client(), progress=interrupt_at(1))
    server.requests.clear()
    report = fetch_wikipedia(topics, output, full=True, client=make_client())
    assert server.requested_titles() == ["Moon"]
    assert [a.title for a in read_articles(output)] == ["Earth", "Moon"]
    assert report.written == {"astronomy": 2} and report.skipped == {"duplicate": 1}


def test_truncated_partial_tail_is_repaired(tmp_path, server, make_client):
    output = tmp_path / "a.jsonl"
    topics = {"animals": titles_of("animals")}
    with pytest.raises(KeyboardInterrupt):
        fetch_wikipedia(topics, output, full=True, client=make_client(), progress=interrupt_at(2))
    partial = partial_path(output)
    whole = partial.read_text(encoding="utf-8").splitlines(keepends=True)
    partial.write_text(whole[0] + whole[1][:40], encoding="utf-8")  # a crash in the middle of line 2

    server.requests.clear()
    fetch_wikipedia(topics, output, full=True, client=make_client())
    assert server.requested_titles() == titles_of("animals")[1:]
    titles = [a.title for a in read_articles(output)]
    assert titles == titles_of("animals") and len({a.id for a in read_articles(output)}) == 5


def test_rerun_after_completion_adds_only_new_topics(tmp_path, server, make_client):
    output = tmp_path / "a.jsonl"
    fetch_wikipedia({"astronomy": ["Sun", "Moon"]}, output, client=make_client())
    server.requests.clear()
    topics = {"astronomy": ["Sun", "Moon", "Mars", "Sol (star)"]}
    report = fetch_wikipedia(topics, output, client=make_client())
    assert server.requested_titles() == ["Mars", "Sol (star)"]  # a redirect cannot be known unasked
    assert [a.title for a in read_articles(output)] == ["Sun", "Moon", "Mars"]
    assert report.written == {"astronomy": 1} and report.skipped == {"already fetched": 3}


def test_existing_output_is_kept_whole_and_untouched_on_failure(tmp_path, server, make_client):
    output = tmp_path / "a.jsonl"
    local = Article.create(source="local", title="Sun", domain="astronomy", text="Notes on the Sun.",
                           url="file:///notes/sun.md", license="unknown")
    write_jsonl(output, [local])
    before = output.read_bytes()
    server.fail("500", "500")
    with pytest.raises(FetchError):
        fetch_wikipedia({"astronomy": ["Sun"]}, output, client=make_client(max_retries=1))
    assert output.read_bytes() == before
    fetch_wikipedia({"astronomy": ["Sun"]}, output, client=make_client())
    assert [(a.source, a.title) for a in read_articles(output)] == [("local", "Sun"), ("wikipedia", "Sun")]


def test_an_article_in_both_output_and_partial_is_written_once(tmp_path, server, make_client):
    output, topics = tmp_path / "a.jsonl", {"astronomy": ["Sun", "Moon"]}
    with pytest.raises(KeyboardInterrupt):
        fetch_wikipedia(topics, output, client=make_client(), progress=interrupt_at(2))
    old_sun = Article.create(source="wikipedia", title="Sun", domain="astronomy", text="An older Sun.",
                             url=wikipedia_url("Sun"))
    write_jsonl(output, [old_sun])  # e.g. an earlier run to the same output finished meanwhile
    fetch_wikipedia(topics, output, client=make_client())
    assert [a.text for a in read_articles(output)] == ["An older Sun.", server.wiki.pages["Moon"].intro]


def test_bad_existing_output_is_reported_before_any_request(tmp_path, server, make_client):
    output = tmp_path / "a.jsonl"
    output.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"a\.jsonl:1: malformed JSON"):
        fetch_wikipedia({"astronomy": ["Sun"]}, output, client=make_client())
    assert not server.requests


def test_bad_partial_lines_are_input_errors(tmp_path, server, make_client):
    output = tmp_path / "a.jsonl"
    partial = partial_path(output)
    partial.write_text('{"topic": "Sun", "full": false, "skipped": "missing"}\n["junk"]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"a\.jsonl\.partial:2: not a progress line"):
        fetch_wikipedia({"astronomy": ["Sun"]}, output, client=make_client())
    partial.write_text('{"topic": "Sun", "full": false, "title": "Sun"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"a\.jsonl\.partial:1: missing field 'id'"):
        fetch_wikipedia({"astronomy": ["Sun"]}, output, client=make_client())
    assert not server.requests


def test_resuming_in_the_other_text_mode_is_refused(tmp_path, server, make_client):
    output = tmp_path / "a.jsonl"
    with pytest.raises(KeyboardInterrupt):
        fetch_wikipedia({"astronomy": ["Sun", "Moon"]}, output, full=True, client=make_client(),
                        progress=interrupt_at(1))
    with pytest.raises(InputError, match=r"partial:1: field 'full': this fetch was started with full=True"):
        fetch_wikipedia({"astronomy": ["Sun", "Moon"]}, output, full=False, client=make_client())


def test_bad_topics_are_input_errors(tmp_path, make_client):
    with pytest.raises(InputError, match="'A|B' is not a Wikipedia title"):
        fetch_wikipedia({"astronomy": ["A|B"]}, tmp_path / "a.jsonl", client=make_client())
    with pytest.raises(InputError, match="no titles"):
        fetch_wikipedia({"astronomy": []}, tmp_path / "a.jsonl", client=make_client())
    with pytest.raises(InputError, match="api_url"):
        WikipediaClient(api_url="ftp://example.org/api.php")


def test_read_topics_file(tmp_path):
    path = tmp_path / "topics.txt"
    path.write_text("\ufeff# astronomy\nSun\n\n  Moon   # Earth's satellite\nBlack hole\n", encoding="utf-8")
    assert read_topics_file(path) == ["Sun", "Moon", "Black hole"]


@pytest.mark.parametrize("content, message", [
    (None, r"topics\.txt: no such file"),
    ("# only comments\n\n", r"topics\.txt: no topics"),
    ("Sun\nA|B\n", r"topics\.txt:2: '\|' cannot appear"),
    (b"Sun\n\xff\n", r"topics\.txt: not UTF-8"),
])
def test_read_topics_file_bad_input(tmp_path, content, message):
    path = tmp_path / "topics.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_topics_file(path)


def test_seed_topics_reads_the_domain_lists(monkeypatch):
    monkeypatch.setattr("minillm.data.wikipedia.SEED_TOPICS", {"astronomy": ("Sun", "Moon"), "weather": ("Rain",)})
    assert seed_topics(["weather", "astronomy"]) == {"weather": ["Rain"], "astronomy": ["Sun", "Moon"]}
    with pytest.raises(InputError, match="no seed topics for cooking; choose from astronomy, weather"):
        seed_topics(["cooking"])


def test_limit_topics_is_a_seeded_sample():
    from minillm.data.wikipedia import limit_topics

    topics = {"astronomy": ["Sun", "Moon", "Mars", "Venus"], "animals": ["Lion", "Tiger"], None: ["X"]}
    limited = limit_topics(topics, 3, seed=1)
    assert sum(map(len, limited.values())) == 3
    assert limited == limit_topics(topics, 3, seed=1)
    assert limit_topics(topics, 10, seed=1) == topics
    for domain, titles in limited.items():
        assert titles == [t for t in topics[domain] if t in titles]
    with pytest.raises(InputError, match="--limit"):
        limit_topics(topics, 0, seed=1)
