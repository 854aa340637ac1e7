"""The layout's rules (README, "Where things live"), checked on every module's syntax tree and by import-linter.

- The layers contract in pyproject.toml holds (`lint-imports`), and breaks when a lower layer imports a
  higher one: a copy of the package with `from minillm.training.trainer import train` added to a model fails it.
- No `minillm` import inside a function outside cli/ (imports under a module-level `if TYPE_CHECKING:` are
  fine), and no private name imported from another module.
- At most four modules flat at the top; no module outside cli/ over 500 lines, no function over 80.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "minillm"
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def in_cli(path: Path) -> bool:
    return path.relative_to(PACKAGE).parts[0] == "cli"


def type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes under a module-level ``if TYPE_CHECKING:``."""
    return {id(node) for top in tree.body if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)
            for node in ast.walk(top)}


def minillm_imports(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "minillm":
            yield node
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "minillm" for a in node.names):
            yield node


def test_no_minillm_import_inside_a_function_outside_cli():
    found = []
    for path in modules():
        if in_cli(path):
            continue
        tree = ast.parse(path.read_text())
        allowed = {id(node) for node in tree.body} | type_checking_nodes(tree)
        found += [f"{path.relative_to(PACKAGE)}:{node.lineno}" for node in minillm_imports(tree)
                  if id(node) not in allowed]
    assert not found, f"function-level minillm imports outside cli/: {found}"


def test_no_private_name_is_imported_from_another_module():
    found = []
    for path in [*modules(), *PACKAGE.parents[1].joinpath("tests").glob("*.py")]:
        for node in minillm_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                found += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, f"private names imported across modules: {found}"


def test_at_most_four_modules_are_flat_at_the_top():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(flat) <= 4, flat


def test_modules_and_functions_stay_readable_in_one_sitting():
    long_modules, long_functions = [], []
    for path in modules():
        text = path.read_text()
        if not in_cli(path) and len(text.splitlines()) > 500:
            long_modules.append(str(path.relative_to(PACKAGE)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80:
                long_functions.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert not long_modules, f"modules over 500 lines: {long_modules}"
    assert not long_functions, f"functions over 80 lines: {long_functions}"


def lint_imports(package_parent: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """lint-imports with the project's contract, on the package found in ``package_parent``."""
    if shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (the [dev] extra)")
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    shutil.copy(PYPROJECT, cwd / "pyproject.toml")  # the contract, read from the working directory
    return subprocess.run(["lint-imports", "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_layers_contract_holds(tmp_path):
    done = lint_imports(PACKAGE.parent, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_a_model_importing_training_breaks_the_contract(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "minillm", ignore=shutil.ignore_patterns("__pycache__"))
    mlp = copy / "minillm" / "models" / "mlp.py"
    mlp.write_text(mlp.read_text() + "\nfrom minillm.training.trainer import train  # noqa: E402\n")
    done = lint_imports(copy, tmp_path)
    assert done.returncode != 0
    assert "minillm.models is not allowed to import minillm.training" in done.stdout
    assert "minillm.models.mlp -> minillm.training.trainer" in done.stdout

