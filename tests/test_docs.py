"""The learning path under docs/: figures agree with the results, code references exist, exercises check out,
and every page can be reached from the README."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import pytest

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.workflows.docs import COMPRESS_RESULTS, EXTRACTION_RESULTS, LADDER_RESULTS, OPEN, build

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXERCISES = DOCS / "exercises"
PAGES = sorted(DOCS.glob("*.md"))  # the path's pages; the development log's are under devlog/
ALL_PAGES = sorted(DOCS.rglob("*.md"))
NAV = ["index.md", "pattern.md", "markov.md", "mlp.md", "hybrid.md", "attention.md", "transformer.md", "modern.md",
       "open-book.md", "knowledge.md", "compression.md", "edge.md", "scaling.md", "reliability.md", "devlog/index.md",
       "devlog/01-foundation.md", "devlog/02-copy-head.md", "devlog/03-ladder.md", "devlog/04-gpu.md",
       "devlog/05-decoding.md", "devlog/06-reader.md", "devlog/07-compression.md", "devlog/08-exports.md",
       "devlog/09-reliability.md", "devlog/10-learning-path.md", "devlog/11-bert-reader.md",
       "devlog/12-reading.md"]


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_exercise_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_root(tmp_path: Path) -> Path:
    """A repository root holding only what ``docs build`` reads: docs/, the three results files, the GPU logs."""
    from minillm.workflows.docs import GPU_LOGS

    root = tmp_path / "repo"
    shutil.copytree(DOCS, root / "docs")
    for rel in (LADDER_RESULTS, COMPRESS_RESULTS, EXTRACTION_RESULTS):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    shutil.copytree(ROOT / GPU_LOGS, root / GPU_LOGS, ignore=shutil.ignore_patterns("*.jsonl"))
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
    next(r for r in results["rungs"] if r["rung"] == "pattern")["closed_f1"] = 0.5
    (root / LADDER_RESULTS).write_text(json.dumps(results), encoding="utf-8")
    assert main(["docs", "build", "--check", "--root", str(root)]) == 2
    assert "figures:" in capsys.readouterr().err
    changed = build(root / "docs", root=root)
    assert root / "docs" / "pattern.md" in changed and root / "docs" / "index.md" in changed
    assert "| 0.500 |" in (root / "docs" / "pattern.md").read_text(encoding="utf-8")


def test_gpu_figures_come_from_the_bench_logs_and_a_bad_log_is_one_line(tmp_path, capsys):
    from minillm.workflows.docs import GPU_LOGS, load_results

    root = copy_root(tmp_path)
    logs = sorted((root / GPU_LOGS).glob("*.bench.json"))
    assert logs and len(load_results(root)["gpu"]) == len(logs)
    first = json.loads(logs[0].read_text(encoding="utf-8"))
    phase = next(k for k in ("full", "pretrain") if k in first)
    first[phase]["tokens_per_s"] = 123
    logs[0].write_text(json.dumps(first), encoding="utf-8")
    assert main(["docs", "build", "--check", "--root", str(root)]) == 2
    assert "figures:gpu" in capsys.readouterr().err
    build(root / "docs", root=root)
    assert "| 123 |" in (root / "docs" / "scaling.md").read_text(encoding="utf-8")
    logs[0].write_text("{not json", encoding="utf-8")
    assert main(["docs", "build", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert logs[0].name in err and len(err.splitlines()) == 1


def test_sample_answers_are_shown_as_plain_text_never_as_markup():
    from minillm.workflows.docs import rung_block

    row = {"rung": "copy", "model": "m", "what": "w", "questions": 3, "parameters": 10, "size_bytes": 40,
           "natural_questions": 2, "natural_open_keyword": 0.5,
           "sample": {"question": "What is <b>*this*</b>?", "closed": "```\n<script>alert(1)</script>",
                      "open": "The Sun is a star."}}
    block = rung_block(row)
    assert "*What is bthis/b?*" in block and "<b>" not in block
    closed = block.split("closed book:")[1].split("open book:")[0]
    assert closed.count("```") == 2 and "''' <script>alert(1)</script>" in closed  # inside one text block
    assert "The Sun is a star." in block and "| 0.500 |" in block


def test_extraction_figures_are_one_row_an_arm_with_the_plan_in_the_caption():
    from minillm.workflows.docs import extraction_block, fill

    results = {"budget": "tiny", "plan": {"articles": 16, "pretrain_steps": 6, "finetune_steps": 4, "extraction": 0,
                                          "paraphrased": 4, "trained": 4},
               "questions": {"train": 9, "test": 5, "paraphrased": 12, "trained_paraphrased": 20},
               "arms": [{"arm": "plain", "what": "articles as written", "parameters": 1486337, "extraction": 0.2,
                         "paraphrased": 0.25, "chance": 0.0, "trained": 0.75, "trained_paraphrased": 0.5,
                         "recited": None, "choice": 0.6, "training_seconds": 12.5}]}
    block = extraction_block(results)
    assert "| `plain` | articles as written | 1.49M | 12.5s | 0.200 | 0.250 | 0.000 | 0.750 | 0.500 | — | 0.600 |" \
        in block, block
    assert "16 articles, 6 pretraining + 4 fine-tuning steps" in block and "extraction all 5" in block
    assert "paraphrased 4 of 12" in block and EXTRACTION_RESULTS in block
    page = "<!-- figures:extraction -->\n<!-- /figures -->\n"
    assert fill(page, {"ladder": [], "compress": [], "gpu": [], "extraction": results})[0].count("`plain`") == 1
    with pytest.raises(InputError, match="known: .*extraction"):
        fill(page, {"ladder": [], "compress": [], "gpu": [], "extraction": {}})


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
    assert nav == NAV
    assert sorted(nav) == sorted(p.relative_to(DOCS).as_posix() for p in ALL_PAGES)


MD_LINK = re.compile(r"\]\((?P<target>[^)\s#]+\.md)(?:#[^)]*)?\)")


def linked_pages(path: Path) -> set[Path]:
    """The Markdown files that ``path`` links to with relative links, resolved."""
    text = path.read_text(encoding="utf-8")
    return {(path.parent / m["target"]).resolve() for m in MD_LINK.finditer(text) if "://" not in m["target"]}


def test_every_page_is_reached_from_the_readme_by_following_links():
    docs = DOCS.resolve()
    todo = [p for p in linked_pages(ROOT / "README.md") if p.is_relative_to(docs)]
    assert docs / "index.md" in todo, "README.md does not link docs/index.md"
    seen = set()
    while todo:
        page = todo.pop()
        if page not in seen and page.is_file():
            seen.add(page)
            todo.extend(p for p in linked_pages(page) if p.is_relative_to(docs))
    missed = [p.relative_to(DOCS).as_posix() for p in ALL_PAGES if p.resolve() not in seen]
    assert not missed, f"pages no link leads to from README.md: {missed}"


def test_each_page_ends_with_a_link_to_the_next_in_the_nav():
    for page, following in pairwise(NAV):
        text = (DOCS / page).read_text(encoding="utf-8")
        m = re.search(r"^Next: \[[^\]]+\]\((?P<target>[^)]+)\)\s*$", text, re.M)
        assert m, f"{page} has no 'Next: [title](page)' line"
        assert text.rstrip().endswith(m.group(0).strip()), f"{page}: the Next link is not its last line"
        target = ((DOCS / page).parent / m["target"]).resolve()
        assert target == (DOCS / following).resolve(), f"{page}: Next: leads to {m['target']}, not {following}"
    assert not re.search(r"^Next:", (DOCS / NAV[-1]).read_text(encoding="utf-8"), re.M), f"{NAV[-1]} is the last"


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
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
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


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_paths_and_names_a_page_claims_exist(page):
    text = page.read_text(encoding="utf-8")
    for rel in set(re.findall(r"\bsrc/[\w/.-]+?\.py\b", text)):
        assert (ROOT / rel).is_file(), f"{page.name} names {rel}, which does not exist"
    for rel in set(re.findall(r"`((?:configs|experiments|benchmarks|docs)/[\w/.-]+\.\w+)`", text)):
        assert (ROOT / rel).is_file(), f"{page.name} names {rel}, which does not exist"
    claims = code_claims(text)
    if page in PAGES and page.name != "reliability.md":
        assert claims, f"{page.name} has no 'Code:' list"
    for rel, names in claims:
        defined = defined_names(ROOT / rel)
        missing = [n for n in names if n not in defined]
        assert not missing, f"{page.name}: {rel} defines no {missing}"


# page -> (exercise: STUB.py, STUB_solution.py, check_STUB.py; a plausible mistake: text of the solution, replaced)
EXERCISE_PAGES = {
    "pattern.md": ("question_shapes", ("(?P<subject>.+?)(?: (?:located", "(?P<subject>.+)(?: (?:located")),  # greedy
    "markov.md": ("smoothing", ("inside = (first != EOS_ID) & (second != BOS_ID)", "inside = first >= 0")),
    "mlp.md": ("bengio_mlp", ("for i in range(context)]", "for i in reversed(range(context))]")),  # newest first
    "hybrid.md": ("interpolate", ("torch.logaddexp(log_p_ngram + log_w, log_p_neural + log_rest)",  # underflows
                                  "torch.log(w * log_p_ngram.exp() + (1 - w) * log_p_neural.exp())")),
    "attention.md": ("causal_mask", (".tril()", ".triu()")),  # the mask flipped
    "transformer.md": ("transformer_block", ('return x + linear(F.gelu(', 'return linear(F.gelu(')),  # no residual
    "modern.md": ("rmsnorm_rope", ("[a * cos - b * sin, a * sin + b * cos]",  # rotated the wrong way
                                   "[a * cos + b * sin, b * cos - a * sin]")),
    "open-book.md": ("bm25", ("math.log(1 + (n - df[q] + 0.5)", "math.log((n - df[q] + 0.5)")),  # Robertson's idf
    "knowledge.md": ("name_subject", ('"(It|They|Its|Their)(?= )"', '"(It|They|Its|Their)"')),  # "Its" read as "It"
    "compression.md": ("quantize", ("nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)",  # nibbles swapped
                                    "nibbles[:, 1::2] | (nibbles[:, 0::2] << 4)")),
    "edge.md": ("greedy_decode", ("logits, past = step([token], past)", "logits, past = step(list(prompt_ids) + "
                                  "new_ids, None)")),  # the whole sequence every step, no cache
    "scaling.md": ("flat_gradients", ("torch.stack(buffers).sum(dim=0) / len(buffers)",
                                      "torch.stack(buffers).sum(dim=0)")),  # summed, not averaged
}
EXERCISE_STUBS = [stub for stub, _ in EXERCISE_PAGES.values()]


def test_every_page_of_the_path_has_an_exercise_and_every_exercise_file_a_page():
    assert sorted(EXERCISE_PAGES) == sorted(p.name for p in PAGES if p.name not in ("index.md", "reliability.md"))
    files = {p.name for p in EXERCISES.glob("*.py")}
    expected = {f"{prefix}{stub}{suffix}.py" for stub in EXERCISE_STUBS
                for prefix, suffix in (("", ""), ("", "_solution"), ("check_", ""))}
    assert files == expected, \
        f"missing: {sorted(expected - files)}; not part of an exercise: {sorted(files - expected)}"


@pytest.mark.parametrize("stub", EXERCISE_STUBS)
def test_exercise_checks_pass_on_the_reference_and_fail_on_the_stub(stub):
    check = load(EXERCISES / f"check_{stub}.py").check
    check(load(EXERCISES / f"{stub}_solution.py"))
    with pytest.raises(NotImplementedError):
        check(load(EXERCISES / f"{stub}.py"))


@pytest.mark.parametrize(("stub", "wrong"), EXERCISE_PAGES.values(), ids=EXERCISE_STUBS)
def test_exercise_checks_catch_a_wrong_answer(stub, wrong, tmp_path):
    """A plausible mistake (see EXERCISE_PAGES) fails the checks too."""
    source = (EXERCISES / f"{stub}_solution.py").read_text(encoding="utf-8")
    assert source.count(wrong[0]) == 1, f"{stub}_solution.py no longer holds {wrong[0]!r}"
    path = tmp_path / f"{stub}_wrong.py"
    path.write_text(source.replace(wrong[0], wrong[1]), encoding="utf-8")
    with pytest.raises(AssertionError):
        load(EXERCISES / f"check_{stub}.py").check(load(path))


@pytest.mark.parametrize("page", EXERCISE_PAGES)
def test_exercise_pages_point_at_their_files(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    stub = EXERCISE_PAGES[page][0]
    assert "## Exercise" in text, f"{page} has no Exercise section"
    for rel in (f"docs/exercises/{stub}.py", f"docs/exercises/check_{stub}.py",
                f"docs/exercises/{stub}_solution.py", f"(exercises/{stub}.py)"):
        assert rel in text, f"{page} does not name {rel}"


COMMIT = re.compile(r"`([0-9a-f]{7})`")


def test_the_development_log_names_commits_that_exist():
    pages = sorted((DOCS / "devlog").glob("*.md"))
    hashes = {h for page in pages for h in COMMIT.findall(page.read_text(encoding="utf-8"))}
    assert len(hashes) > 30, "the development log should name the commits each milestone draws on"
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "cat-file", "--batch-check"], cwd=ROOT, capture_output=True, text=True,
                          input="".join(f"{h}^{{commit}}\n" for h in sorted(hashes)), timeout=60)
    missing = [line.split()[0] for line in done.stdout.splitlines() if line.endswith("missing")]
    assert done.returncode == 0 and not missing, f"commits the log names that git does not know: {missing}"


def test_mkdocs_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[dev]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[dev]')")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "markov" / "index.html").is_file()
    assert "<table" in (tmp_path / "site" / "markov" / "index.html").read_text(encoding="utf-8")
