import json
from dataclasses import asdict

import pytest

from minillm.core.errors import InputError
from minillm.core.files import atomic_directory, atomic_write, repair_jsonl_tail, write_jsonl
from minillm.data.records import Article, QAPair, normalize_question, read_articles, read_qa_pairs


def article(title="Sun", **kw):
    fields = dict(source="offline", title=title, domain="astronomy", text="The Sun is a star. It is hot.",
                  url="https://en.wikipedia.org/wiki/Sun", retrieved_at="2026-01-01T00:00:00+00:00")
    fields.update(kw)
    return Article.create(**fields)


def test_article_id_is_stable_and_depends_on_source_and_title():
    assert article().id == article(text="other text").id
    assert article().id != article(title="Moon").id
    assert article().id != article(source="wikipedia").id
    assert article().id.startswith("offline-")


def test_round_trip(tmp_path):
    path = tmp_path / "a.jsonl"
    records = [article(), article("Moon", description=None), article("Mars", description="Planet")]
    assert write_jsonl(path, records) == 3
    assert read_articles(path) == records


def test_unknown_fields_are_ignored(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({**asdict(article()), "extra": 1}) + "\n")
    assert read_articles(path) == [article()]


@pytest.mark.parametrize(("line", "reason"), [
    ("{not json", "malformed JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({k: v for k, v in asdict(article()).items() if k != "title"}), "missing field 'title'"),
    (json.dumps({**asdict(article()), "text": 5}), "field 'text': expected string, got int"),
    (json.dumps({**asdict(article()), "description": ["x"]}), "field 'description': expected string or null"),
    (json.dumps({**asdict(article()), "title": "  "}), "field 'title': must not be empty"),
])
def test_bad_line_names_file_line_and_reason(tmp_path, line, reason):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(asdict(article())) + "\n\n" + line + "\n")
    with pytest.raises(InputError) as e:
        read_articles(path)
    assert str(e.value).startswith(f"{path}:3: ")
    assert reason in str(e.value)


def test_skip_invalid_counts_bad_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(asdict(article())) + "\n{bad\n" + json.dumps({"id": 1}) + "\n")
    skipped = []
    assert read_articles(path, skip_invalid=True, skipped=skipped) == [article()]
    assert skipped == [2, 3]


def test_missing_empty_and_all_invalid_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_articles(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(InputError, match="empty file"):
        read_articles(tmp_path / "empty.jsonl")
    (tmp_path / "bad.jsonl").write_text("{bad\n")
    with pytest.raises(InputError, match="no valid Article records"):
        read_articles(tmp_path / "bad.jsonl", skip_invalid=True)
    with pytest.raises(InputError, match="is a directory"):
        read_articles(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_articles(path)


def test_qa_pair_schema(tmp_path):
    pair = QAPair.create(article_id="offline-x", domain="astronomy", question="What is the Sun?",
                         answer="A star. A hot one.", context="ctx", kind="overview")
    path = tmp_path / "qa.jsonl"
    write_jsonl(path, [pair])
    assert read_qa_pairs(path) == [pair]
    path.write_text(json.dumps({**asdict(pair), "kind": None}) + "\n")
    with pytest.raises(InputError, match=r"qa.jsonl:1: field 'kind'"):
        read_qa_pairs(path)


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [article()])
    before = path.read_bytes()

    def records():
        yield article("Moon")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind


def test_atomic_write_creates_parent_dirs_and_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "a" / "b" / "x.txt"
    with pytest.raises(ValueError), atomic_write(path) as fh:
        fh.write("half")
        raise ValueError
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_repair_tail_drops_partial_last_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')
    repair_jsonl_tail(path)
    assert path.read_text() == '{"a": 1}\n'


def test_normalize_question():
    assert normalize_question("What  is the SUN?") == normalize_question("what is the sun")
    assert normalize_question("What's H2O?") == "what s h2o"


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os

    write_jsonl(tmp_path / "a.jsonl", [article()])
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_directory_swaps_in_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "new.txt").write_text("half")
        raise RuntimeError("crash while filling it")
    assert [p.name for p in target.iterdir()] == ["old.txt"] and [p.name for p in tmp_path.iterdir()] == ["out"]
    with atomic_directory(target) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["out"]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # the mode mkdir gives, not 0700
