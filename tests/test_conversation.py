"""Conversation memory: follow-ups resolved against earlier turns (conversation.py), in chat, the OpenAI
API, and ``minillm eval --followups`` (evaluate_followups.py)."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import open_copy

from minillm.answering.conversation import Turn, noun_phrase, resolve
from minillm.cli import main
from minillm.data.records import read_articles
from minillm.evaluation.followups import followups_path, read_followups

VENUS = Turn("What is Venus?", answer="Venus is the second planet from the Sun.", titles=("Venus",))


@pytest.mark.parametrize("turns, question, resolved, subject", [
    # a pronoun with no name before it gets the conversation's subject
    ([VENUS], "How hot is it there?", "How hot is it on Venus?", "Venus"),
    ([VENUS], "What is its atmosphere made of?", "What is the atmosphere of Venus made of?", "Venus"),
    ([VENUS], "How far is it from the Sun?", "How far is Venus from the Sun?", "Venus"),
    ([VENUS], "How many moons does it have?", "How many moons does Venus have?", "Venus"),
    ([Turn("Where is Japan?")], "What is its capital city?", "What is the capital city of Japan?", "Japan"),
    ([Turn("Who was Marie Curie?")], "What did she discover?", "What did Marie Curie discover?", "Marie Curie"),
    ([VENUS], "How many moons are there?", "How many moons are there on Venus?", "Venus"),
    ([VENUS], "What about its moons?", "What about the moons of Venus?", "Venus"),
    ([Turn("What is a blizzard?")], "How long does this storm last?", "How long does a blizzard last?",
     "a blizzard"),
    ([Turn("What is Iceland?")], "What language do they speak there?", "What language do they speak in Iceland?",
     "Iceland"),
    # the subject as the conversation named it, from the title or from the question
    ([Turn("What do the kidneys do?", titles=("Kidney",))], "How long are they?", "How long are the kidneys?",
     "the kidneys"),
    ([Turn("What do the kidneys do?")], "What are their parts?", "What are the parts of the kidneys?", "the kidneys"),
    # a question that names its answer only through retrieval or the answer
    ([Turn("Which planet is the second largest?", titles=("Saturn",))], "How far is it from the Sun?",
     "How far is Saturn from the Sun?", "Saturn"),
    ([Turn("Which planet is the second largest?", answer="Saturn is the sixth planet from the Sun.")],
     "How far is it from the Sun?", "How far is Saturn from the Sun?", "Saturn"),
    # elliptical: the last question again, about the new subject
    ([VENUS], "And Mars?", "What is Mars?", "Mars"),
    ([Turn("What do the kidneys do?")], "What about the lungs?", "What do the lungs do?", "the lungs"),
    ([Turn("Which planet is the second largest?", titles=("Saturn",))], "And Mars?", "Tell me about Mars.", "Mars"),
    # a question that names its own subject is kept, and so is the first question
    ([VENUS], "What is Mars?", "What is Mars?", None),
    ([VENUS], "What is the Sun made of and how hot is it?", "What is the Sun made of and how hot is it?", None),
    ([], "How hot is it there?", "How hot is it there?", None),
    ([], "And Mars?", "And Mars?", None),
])
def test_resolution_rules(turns, question, resolved, subject):
    assert (resolve(turns, question).question, resolve(turns, question).subject) == (resolved, subject)


def test_subject_carries_through_a_resolved_turn_and_changes_with_an_ellipsis():
    turns = [VENUS, Turn("How hot is it there?", titles=("Temperature",))]  # a resolved turn keeps Venus
    assert resolve(turns, "What is its atmosphere made of?").question == "What is the atmosphere of Venus made of?"
    assert resolve(turns, "And Mars?").question == "How hot is it on Mars?"
    turns.append(Turn("And Mars?", titles=("Mars",)))
    assert resolve(turns, "How big is it?").question == "How big is Mars?"


def test_noun_phrase():
    assert noun_phrase("What do the kidneys do?") == "the kidneys"
    assert noun_phrase("What is the chemical formula of water?") == "water"
    assert noun_phrase("How many chambers does the heart have?") == "the heart"
    assert noun_phrase("Tell me about the Moon.") == "the Moon"
    assert noun_phrase("How big is it?") is None and noun_phrase("What about its moons?") is None


# --- chat and the API on the tiny run with an index --------------------------------------------------------


@pytest.fixture(scope="module")
def open_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run with a retrieval index over the tiny articles."""
    return open_copy(tiny_run, tmp_path_factory.mktemp("conversation") / "run")


def test_chat_resolves_follow_ups(open_run, monkeypatch, capsys):
    import minillm.answering.answer

    lines = iter(["What is the sun?", "What is it made of?", "What is the heart?", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    asked = []
    stream_answer = minillm.answering.answer.stream_answer

    def spy(model, tok, question, sampling, context=None, vocabulary=None, open_book=False):
        asked.append((question, context))
        assert vocabulary is not None and open_book  # chat reads open book with the index's vocabulary
        return stream_answer(model, tok, question, sampling, context=context, vocabulary=vocabulary,
                             open_book=open_book)

    monkeypatch.setattr(minillm.answering.answer, "stream_answer", spy)
    assert main(["chat", str(open_run), "--max-new-tokens", "6"]) == 0
    out = capsys.readouterr().out
    assert [q for q, _ in asked] == ["What is the sun?", "What is the sun made of?", "What is the heart?"]
    assert out.count("(about: ") == 1 and "(about: the sun)" in out
    assert asked[1][1].startswith("The Sun is the star")  # retrieval found the Sun for the follow-up


def test_api_resolves_the_last_user_message(open_run):
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    from fastapi.testclient import TestClient

    from minillm.serve import create_app
    from minillm.serve.openai_api import ChatCompletionRequest

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the Moon?"},
                {"role": "assistant", "content": "The Moon is the only natural satellite of the Earth."},
                {"role": "user", "content": [{"type": "text", "text": "What is its light?"}]}]
    assert ChatCompletionRequest(messages=messages).question() == "What is the light of the Moon?"
    assert ChatCompletionRequest(messages=messages[:2]).question() == "What is the Moon?"

    def reply(client, messages):
        response = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 8})
        assert response.status_code == 200
        return response.json()["choices"][0]["message"]["content"]

    with TestClient(create_app(open_run), base_url="http://127.0.0.1") as client:  # a loopback Host
        assert reply(client, messages) == reply(client, [{"role": "user", "content": "What is the light of the Moon?"}])


# --- minillm eval --followups -----------------------------------------------------------------------------


FOLLOWUPS = [
    {"domain": "astronomy", "turns": ["What is the sun?", "What is it made of?"], "keywords": ["plasma"],
     "subject": "Sun"},
    {"domain": "anatomy", "turns": ["What is the heart?", "How many chambers does it have?"],
     "keywords": ["four"], "subject": "Heart"},
]


def write_lines(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture
def run_copy(open_run, tmp_path):
    return Path(shutil.copytree(open_run, tmp_path / "run"))


def test_eval_followups_with_and_without_memory(run_copy, tmp_path, capsys):
    qa = write_lines(tmp_path / "qa.jsonl", [{"question": "What is the Sun?", "answer": "A star."}])
    followups = write_lines(tmp_path / "followups.jsonl", FOLLOWUPS)
    assert main(["eval", str(run_copy), "--qa", str(qa), "--followups", str(followups), "--max-new-tokens", "8",
                 "--no-progress"]) == 0
    result = json.loads((run_copy / "eval.json").read_text(encoding="utf-8"))
    assert result["qa"]["count"] == 1
    f = result["followups"]
    assert f["file"] == str(followups) and f["mode"] == "open" and f["count"] == 2
    assert set(f["by_domain"]) == {"astronomy", "anatomy"}
    rows = f["conversations"]
    assert [r["memory"]["question"] for r in rows] == ["What is the sun made of?",
                                                       "How many chambers does the heart have?"]
    assert [r["alone"]["question"] for r in rows] == ["What is it made of?", "How many chambers does it have?"]
    assert [r["memory"]["top_title"] for r in rows] == ["Sun", "Heart"]
    assert f["memory"]["retrieval_hit_rate"] == 1.0 and f["alone"]["retrieval_hit_rate"] < 1.0
    for way in ("memory", "alone"):
        hits = [r[way]["keyword_hit"] for r in rows]
        assert f[way]["keyword_hit_rate"] == sum(hits) / 2
    out = capsys.readouterr().out
    assert "follow-ups, open book" in out and "keyword memory" in out


def test_eval_followups_without_a_file_reads_the_shipped_set(run_copy, tmp_path, monkeypatch):
    import minillm.evaluation.followups

    shipped = write_lines(tmp_path / "shipped.jsonl", FOLLOWUPS[:1])  # stands in for the 36, to stay fast
    monkeypatch.setattr(minillm.evaluation.followups, "followups_path", lambda: shipped)
    qa = write_lines(tmp_path / "qa.jsonl", [{"question": "What is the Sun?", "answer": "A star."}])
    assert main(["eval", str(run_copy), "--qa", str(qa), "--max-new-tokens", "2", "--no-progress",
                 "--followups"]) == 0
    result = json.loads((run_copy / "eval.json").read_text(encoding="utf-8"))["followups"]
    assert result["file"] == str(shipped) and result["count"] == 1


def test_shipped_followups_are_six_per_domain_about_corpus_articles():
    conversations = read_followups(followups_path())
    domains = [c.domain for c in conversations]
    assert len(conversations) >= 36 and all(domains.count(d) >= 6 for d in
                                            ("astronomy", "anatomy", "animals", "geography", "chemistry", "weather"))
    corpus = Path(__file__).resolve().parents[1] / "data" / "raw" / "articles.jsonl"
    if not corpus.is_file():
        pytest.skip(f"{corpus} is absent (minillm data fetch)")
    articles = {a.title: a for a in read_articles(corpus)}
    from minillm.evaluation.metrics import keyword_hit

    for c in conversations:
        assert c.subject in articles and articles[c.subject].domain == c.domain
        assert keyword_hit(articles[c.subject].text, c.keywords), c  # the keywords are facts of its lead


@pytest.mark.parametrize("line, message", [
    ("not json", "malformed JSON"),
    ({"domain": "weather", "keywords": ["x"], "subject": "Hail"}, "field 'turns': missing"),
    ({"domain": "weather", "turns": [], "keywords": ["x"], "subject": "Hail"}, "field 'turns': needs at least 2"),
    ({"domain": "weather", "turns": ["What is hail?", ""], "keywords": ["x"], "subject": "Hail"},
     "field 'turns': expected a list of non-empty strings"),
    ({"domain": "weather", "turns": "What is hail?", "keywords": ["x"], "subject": "Hail"},
     "field 'turns': expected a list"),
    ({"domain": "weather", "turns": ["What is hail?", "Why?"], "keywords": "x", "subject": "Hail"},
     "field 'keywords': expected a list"),
    ({"domain": 3, "turns": ["What is hail?", "Why?"], "keywords": ["x"], "subject": "Hail"},
     "field 'domain': expected a string"),
    ({"domain": "weather", "turns": ["What is hail?", "Why?"], "keywords": ["x"]}, "field 'subject': missing"),
])
def test_bad_followups_file_exits_2_and_writes_nothing(run_copy, tmp_path, capsys, line, message):
    bad = write_lines(tmp_path / "bad.jsonl", [FOLLOWUPS[0], line])
    assert main(["eval", str(run_copy), "--followups", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"minillm: error: {bad}:2: ") and message in err and err.count("\n") == 1
    assert not (run_copy / "eval.json").exists()
