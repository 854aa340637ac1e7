import json

import pytest

from minillm.core.errors import InputError
from minillm.data.fetch import (
    FetchReport,
    fetch_articles,
    local_articles,
    offline_articles,
    offline_data_path,
    parse_domains,
    select_articles,
    wikipedia_url,
)
from minillm.data.records import Article, read_articles

SIX = ["astronomy", "anatomy", "animals", "geography", "chemistry", "weather"]


@pytest.fixture(scope="module")
def offline():
    try:
        offline_data_path()
    except InputError as e:
        pytest.skip(str(e))
    return offline_articles()


def test_offline_corpus_has_every_domain_with_license_and_attribution(offline):
    assert len(offline) > 9000
    counts = {d: sum(a.domain == d for a in offline) for d in SIX}
    assert all(n >= 100 for n in counts.values()), counts
    assert sum(counts.values()) >= 2000
    sun = next(a for a in offline if a.title == "Sun")
    assert sun.domain == "astronomy"
    assert sun.license == "CC BY-SA 4.0" and sun.url == "https://en.wikipedia.org/wiki/Sun"
    assert sun.source == "offline" and sun.retrieved_at
    assert len({a.id for a in offline}) == len(offline)


def test_fetch_offline_default_domains_and_limit(offline, tmp_path):
    out = tmp_path / "articles.jsonl"
    report = fetch_articles("offline", out, limit=50, seed=1)
    articles = read_articles(out)
    assert len(articles) == 50 == report.total
    assert {a.domain for a in articles} <= set(SIX)
    fetch_articles("offline", tmp_path / "again.jsonl", limit=50, seed=1)
    assert [a.id for a in read_articles(tmp_path / "again.jsonl")] == [a.id for a in articles]
    fetch_articles("offline", tmp_path / "other.jsonl", limit=50, seed=2)
    assert [a.id for a in read_articles(tmp_path / "other.jsonl")] != [a.id for a in articles]


def test_fetch_offline_one_domain_and_all(offline, tmp_path):
    fetch_articles("offline", tmp_path / "astro.jsonl", domains=["astronomy"])
    assert {a.domain for a in read_articles(tmp_path / "astro.jsonl")} == {"astronomy"}
    report = fetch_articles("offline", tmp_path / "all.jsonl", domains=["all"])
    assert report.total == len(offline) and "other" in report.written


def test_parse_domains():
    assert parse_domains(None) == SIX
    assert parse_domains(["all"]) is None
    with pytest.raises(InputError, match="unknown domain.*cooking"):
        parse_domains(["astronomy", "cooking"])


def test_select_dedupes_and_counts():
    a = Article.create(source="local", title="A", domain="astronomy", text="t", url="u")
    b = Article.create(source="local", title="B", domain="other", text="t", url="u")
    report = FetchReport()
    assert select_articles([a, a, b], ["astronomy"], None, 0, report) == [a]
    assert report.skipped == {"duplicate": 1, "off-domain": 1}
    assert report.written == {"astronomy": 1}


def test_local_folder(tmp_path):
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "jupiter.md").write_text("# Jupiter\n\nJupiter is the largest planet in the Solar System.\n")
    (folder / "sub" / "Blue_whale.txt").write_text("The blue whale is a marine mammal.")
    (folder / "ignored.csv").write_text("x")
    articles = local_articles(folder, license="CC0")
    assert [a.title for a in articles] == ["Jupiter", "Blue whale"]
    assert articles[0].text == "Jupiter is the largest planet in the Solar System."
    assert all(a.source == "local" and a.license == "CC0" for a in articles)


def test_local_jsonl(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"title": "Mars", "text": "Mars is a planet.", "url": "http://x"}) + "\n")
    [mars] = local_articles(path)
    assert (mars.title, mars.url) == ("Mars", "http://x")


@pytest.mark.parametrize(("content", "message"), [
    ('{"title": "Mars"}\n', "1: field 'text'"),
    ('{"title": "Mars", "text": 3}\n', "1: field 'text'"),
    ('{"title": "Mars", "text": "x", "description": 1}\n', "1: field 'description'"),
    ('"just a string"\n', "1: expected a JSON object"),
    ("", "empty file"),
])
def test_local_jsonl_bad_input(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        local_articles(path)


def test_local_bad_paths(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        local_articles(tmp_path / "nope")
    with pytest.raises(InputError, match="no .txt or .md files"):
        local_articles(tmp_path)
    with pytest.raises(InputError, match="needs --input"):
        fetch_articles("local", tmp_path / "o.jsonl")
    with pytest.raises(InputError, match="--limit"):
        fetch_articles("local", tmp_path / "o.jsonl", input_path=tmp_path, limit=0)
    assert not (tmp_path / "o.jsonl").exists()


def test_wikipedia_url():
    assert wikipedia_url("Mercury (planet)") == "https://en.wikipedia.org/wiki/Mercury_(planet)"
    assert wikipedia_url("Cat's eye") == "https://en.wikipedia.org/wiki/Cat's_eye"
