"""The learning path under docs/: figures agree with the results, code references exist, exercises check out."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from minillm.cli import main
from minillm.docs import COMPRESS_RESULTS, LADDER_RESULTS, OPEN, build

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXERCISES = DOCS / "exercises"
PAGES = sorted(DOCS.glob("*.md"))


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_exercise_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_root(tmp_path: Path) -> Path:
    """A repository root holding only what ``docs build`` reads: docs/ and the two results files."""
    root = tmp_path / "repo"
    shutil.copytree(DOCS, root / "docs")
    for rel in (LADDER_RESULTS, COMPRESS_RESULTS):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    return root


def test_committed_pages_agree_with_the_results(capsys):
    assert main(["docs", "build", "--check", "--root", str(ROOT)]) == 0
    assert "every figures block agrees" in capsys.readouterr().out


def test_a_hand_edited_figure_fails_the_check_and_build_restores_it(tmp_path, capsys):
    root = copy_root(tmp_path)
    page = root / "docs" / "markov.md"
    text = page.read_text(encoding="utf-8")
    assert "| 0.155 |" in text  # markov's closed F1 in results.json is 0.155278
    page.write_text(text.replace("| 0.155 |", "| 0.999 |", 1), encoding="utf-8")
    before = {p: p.read_bytes() for p in (root / "docs").rglob("*") if p.is_file()}

    assert main(["docs", "build", "--check", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "markov.md" in err[0] and "figures:markov" in err[0], err
    assert {p: p.read_bytes() for p in (root / "docs").rglob("*") if p.is_file()} == before  # --check writes nothing

    assert main(["docs", "build", "--root", str(root)]) == 0
    assert page.read_text(encoding="utf-8") == text
    assert main(["docs", "build", "--check", "--root", str(root)]) == 0


def test_results_that_change_make_the_pages_stale(tmp_path, capsys):
    root = copy_root(tmp_path)
    results = json.loads((root / LADDER_RESULTS).read_text(encoding="utf-8"))
    results["rungs"][0]["closed_f1"] = 0.5  # the first rung: pattern
    (root / LADDER_RESULTS).write_text(json.dumps(results), encoding="utf-8")
    assert main(["docs", "build", "--check", "--root", str(root)]) == 2
    assert "figures:" in capsys.readouterr().err
    changed = build(root / "docs", root=root)
    assert root / "docs" / "pattern.md" in changed and root / "docs" / "index.md" in changed
    assert "| 0.500 |" in (root / "docs" / "pattern.md").read_text(encoding="utf-8")


def test_an_unknown_or_unclosed_block_is_one_line_naming_the_page(tmp_path, capsys):
    root = copy_root(tmp_path)
    (root / "docs" / "extra.md").write_text("# x\n\n<!-- figures:nosuchrung -->\n<!-- /figures -->\n")
    assert main(["docs", "build", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "extra.md" in err and "nosuchrung" in err
    (root / "docs" / "extra.md").write_text("# x\n\n<!-- figures:markov -->\n")
    assert main(["docs", "build", "--root", str(root)]) == 2
    assert "no closing" in capsys.readouterr().err


def test_every_rung_has_a_page_with_its_figures_block():
    rungs = [r["rung"] for r in json.loads((ROOT / LADDER_RESULTS).read_text(encoding="utf-8"))["rungs"]]
    blocks = {m["key"]: page.name for page in PAGES for m in OPEN.finditer(page.read_text(encoding="utf-8"))}
    missing = [r for r in rungs if r not in blocks]
    assert not missing, f"rungs without a figures block in docs/: {missing}"


def test_the_nav_lists_every_page_in_the_path_order():
    nav = re.findall(r"^\s*- .*: (\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    assert nav == ["index.md", "pattern.md", "markov.md", "mlp.md", "hybrid.md", "attention.md", "transformer.md",
                   "modern.md", "open-book.md", "compression.md", "edge.md", "scaling.md", "reliability.md"]
    assert sorted(nav) == sorted(p.name for p in PAGES)


def defined_names(path: Path) -> set[str]:
    """Top-level functions, classes and assignments of a module, and ``Class.method`` for each class's defs."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{n.name}" for n in node.body
                      if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


CODE_ITEM = re.compile(r"^- `(?P<path>src/[\w/.-]+\.py)`: (?P<rest>.*)$")


def code_claims(text: str) -> list[tuple[str, list[str]]]:
    """(path, names) of each item of the page's "Code:" list(s): a path, a colon, then `name`s up to a '('."""
    claims, inside = [], False
    for line in text.splitlines():
        if line.strip() == "Code:":
            inside = True
            continue
        if inside and line.startswith("- "):
            m = CODE_ITEM.match(line)
            if m:
                claims.append((m["path"], re.findall(r"`([\w.]+)`", m["rest"].split("(")[0])))
        elif inside and line.strip():
            inside = False
    return claims


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_paths_and_names_a_page_claims_exist(page):
    text = page.read_text(encoding="utf-8")
    for rel in set(re.findall(r"\bsrc/[\w/.-]+?\.py\b", text)):
        assert (ROOT / rel).is_file(), f"{page.name} names {rel}, which does not exist"
    for rel in set(re.findall(r"`((?:configs|experiments|benchmarks|docs)/[\w/.-]+\.\w+)`", text)):
        assert (ROOT / rel).is_file(), f"{page.name} names {rel}, which does not exist"
    claims = code_claims(text)
    if page.name != "reliability.md":
        assert claims, f"{page.name} has no 'Code:' list"
    for rel, names in claims:
        defined = defined_names(ROOT / rel)
        missing = [n for n in names if n not in defined]
        assert not missing, f"{page.name}: {rel} defines no {missing}"


EXERCISE_CASES = [("smoothing", "check_smoothing"), ("causal_mask", "check_causal_mask")]


@pytest.mark.parametrize(("stub", "checks"), EXERCISE_CASES)
def test_exercise_checks_pass_on_the_reference_and_fail_on_the_stub(stub, checks):
    check = load(EXERCISES / f"{checks}.py").check
    check(load(EXERCISES / f"{stub}_solution.py"))
    with pytest.raises(NotImplementedError):
        check(load(EXERCISES / f"{stub}.py"))


@pytest.mark.parametrize(("stub", "checks"), EXERCISE_CASES)
def test_exercise_checks_catch_a_wrong_answer(stub, checks, tmp_path):
    """A plausible mistake (the sentence boundary counted; the mask flipped) fails the checks too."""
    source = (EXERCISES / f"{stub}_solution.py").read_text(encoding="utf-8")
    wrong = {"smoothing": ("inside = (first != EOS_ID) & (second != BOS_ID)", "inside = first >= 0"),
             "causal_mask": (".tril()", ".triu()")}[stub]
    assert wrong[0] in source
    path = tmp_path / f"{stub}_wrong.py"
    path.write_text(source.replace(wrong[0], wrong[1]), encoding="utf-8")
    with pytest.raises(AssertionError):
        load(EXERCISES / f"{checks}.py").check(load(path))


@pytest.mark.parametrize("page", ["markov.md", "transformer.md"])
def test_exercise_pages_point_at_their_files(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    stub = {"markov.md": "smoothing", "transformer.md": "causal_mask"}[page]
    assert f"docs/exercises/{stub}.py" in text and f"docs/exercises/check_{stub}.py" in text


def test_mkdocs_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[dev]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[dev]')")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "markov" / "index.html").is_file()
    assert "<table" in (tmp_path / "site" / "markov" / "index.html").read_text(encoding="utf-8")
