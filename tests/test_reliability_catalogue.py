"""docs/reliability.md cannot rot: its table of handled bad inputs keeps at least 40 rows, each naming a test,
and every ``tests/FILE.py::test_name`` the page mentions exists (found with ast, never by importing the file;
a parametrized test counts by its function name)."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "docs" / "reliability.md"
MIN_ENTRIES = 40
TEST_REF = re.compile(r"tests/(?P<file>[\w/]+\.py)::(?P<name>\w+)")
COLUMNS = ["#", "Command", "Bad input", "Message (or pattern)", "Test"]


def cells(line: str) -> list[str]:
    """The cells of a markdown table row, split on the pipes that are not escaped (``\\|`` is a literal |)."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def catalogue_rows(text: str) -> list[list[str]]:
    """The data rows of the table whose header is COLUMNS."""
    rows: list[list[str]] = []
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        row = cells(line)
        if row == COLUMNS:
            in_table = True
        elif in_table and not set("".join(row)) <= set("-: "):
            rows.append(row)
    return rows


def defined_tests(path: Path) -> set[str]:
    """The names of the test functions of a test file, at module level or in classes."""
    return {node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")}


def test_the_table_has_enough_well_formed_entries():
    rows = catalogue_rows(CATALOGUE.read_text(encoding="utf-8"))
    assert len(rows) >= MIN_ENTRIES, f"{CATALOGUE}: {len(rows)} entries; at least {MIN_ENTRIES} are wanted"
    for number, row in enumerate(rows, 1):
        assert len(row) == len(COLUMNS), f"row {number}: {len(row)} cells, not {len(COLUMNS)}: {row}"
        assert row[0] == str(number), f"row {number} is numbered {row[0]!r}"
        assert all(row[1:4]), f"row {number}: an empty cell: {row}"
        assert TEST_REF.search(row[4]), f"row {number}: no tests/FILE.py::test_name in {row[4]!r}"


def test_every_referenced_test_exists():
    text = CATALOGUE.read_text(encoding="utf-8")
    references = {(m["file"], m["name"]) for m in TEST_REF.finditer(text)}
    assert references, "the catalogue names no test"
    names: dict[str, set[str]] = {}
    missing = []
    for file, name in sorted(references):
        path = REPO / "tests" / file
        if not path.is_file():
            missing.append(f"tests/{file} (no such file)")
            continue
        if file not in names:
            names[file] = defined_tests(path)
        if name not in names[file]:
            missing.append(f"tests/{file}::{name}")
    assert not missing, f"{CATALOGUE} names tests that do not exist: {', '.join(missing)}"


def test_the_checks_catch_a_rotten_reference(tmp_path):
    """The parser itself: an escaped pipe stays in its cell, and a renamed test would be noticed."""
    text = ("| # | Command | Bad input | Message (or pattern) | Test |\n|---|---|---|---|---|\n"
            "| 1 | data fetch | a `\\|` in a title | `'A\\|B' is not a Wikipedia title` | "
            "`tests/test_wikipedia.py::test_bad_topics_are_input_errors` |\n\nafter the table | not a row |\n")
    [row] = catalogue_rows(text)
    assert row[2] == "a `|` in a title" and row[3] == "`'A|B' is not a Wikipedia title`"
    assert "test_bad_topics_are_input_errors" in defined_tests(REPO / "tests" / "test_wikipedia.py")
    assert "test_no_such_test" not in defined_tests(REPO / "tests" / "test_wikipedia.py")
