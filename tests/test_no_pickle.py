"""No code in data: no module of src/minillm or benchmarks/ may load a file in a way that can run code.

Loading a pickle runs whatever the file says, so a downloaded checkpoint, index or data file would be a
program. The scan reads each module with ``ast`` (not grep: comments, strings and docstrings that
mention pickle are fine, and aliases such as ``import numpy as np`` or ``from torch import load`` are
followed) and refuses:
- an import of ``pickle``, ``cPickle``, ``_pickle``, ``dill``, ``joblib`` or ``cloudpickle``, also through
  ``__import__``/``importlib.import_module`` with a literal name;
- ``torch.load`` (or ``torch.serialization.load``) without the literal keyword ``weights_only=True``;
- ``numpy.load`` with ``allow_pickle`` set to anything but the literal ``False`` (its default is False).

A call through ``**kwargs`` cannot be read statically, so it counts as unsafe. ``ALLOWED`` lists the few
reviewed exceptions, each with its reason; an entry that no longer matches anything fails the test too,
so the list cannot silently outlive the code it excuses.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [ROOT / "src" / "minillm", ROOT / "benchmarks"]
PICKLE_MODULES = frozenset({"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle"})
TORCH_LOADS = frozenset({"torch.load", "torch.serialization.load"})
NUMPY_LOADS = frozenset({"numpy.load"})
IMPORTERS = frozenset({"__import__", "importlib.import_module"})
# (path relative to the repository, the finding) -> why it is accepted
ALLOWED: dict[tuple[str, str], str] = {}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import in the module."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``np.load`` -> "numpy.load" (through the aliases); None for anything not a dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def _keyword_is(call: ast.Call, name: str, value: bool) -> bool:
    """Whether the call passes ``name=value`` as a literal (a **kwargs could hold anything: no)."""
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value
               for k in call.keywords)


def _pickle_import(node: ast.AST, aliases: dict[str, str]) -> str | None:
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
        names = [node.module]
    elif isinstance(node, ast.Call) and _dotted(node.func, aliases) in IMPORTERS and node.args \
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        names = [node.args[0].value]
    bad = [n for n in names if n.split(".")[0] in PICKLE_MODULES]
    return f"imports {bad[0]}" if bad else None


def _unsafe_load(node: ast.AST, aliases: dict[str, str]) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    name = _dotted(node.func, aliases)
    has_kwargs = any(k.arg is None for k in node.keywords)
    if name in TORCH_LOADS and not _keyword_is(node, "weights_only", True):
        return "torch.load without weights_only=True"
    if name in NUMPY_LOADS and (has_kwargs or any(k.arg == "allow_pickle" for k in node.keywords)) \
            and not _keyword_is(node, "allow_pickle", False):
        return "numpy.load with allow_pickle"
    return None


def findings(source: str) -> list[tuple[int, str]]:
    """(line, what) for each way the source could load code from data."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        problem = _pickle_import(node, aliases) or _unsafe_load(node, aliases)
        if problem:
            found.append((node.lineno, problem))
    return sorted(found)


def _modules() -> list[Path]:
    return sorted(path for folder in SCANNED if folder.is_dir() for path in folder.rglob("*.py"))


def test_no_module_loads_code_from_data():
    seen, problems = set(), []
    for path in _modules():
        relative = path.relative_to(ROOT).as_posix()
        for line, what in findings(path.read_text(encoding="utf-8")):
            if (relative, what) in ALLOWED:
                seen.add((relative, what))
            else:
                problems.append(f"{relative}:{line}: {what}")
    assert not problems, "loading that can run code:\n" + "\n".join(problems)
    stale = set(ALLOWED) - seen
    assert not stale, f"ALLOWED entries that match nothing any more (remove them): {sorted(stale)}"


def test_the_scan_covers_the_package():
    names = {path.relative_to(ROOT).as_posix() for path in _modules()}
    assert "src/minillm/training/checkpoint.py" in names and "src/minillm/serve/app.py" in names
    assert any(name.startswith("benchmarks/") for name in names)


UNSAFE = [
    ("import pickle", "imports pickle"),
    ("import cPickle as cp", "imports cPickle"),
    ("import dill.settings", "imports dill.settings"),
    ("from joblib import load", "imports joblib"),
    ("from _pickle import loads", "imports _pickle"),
    ("m = __import__('pickle')", "imports pickle"),
    ("import importlib\nm = importlib.import_module('dill')", "imports dill"),
    ("import torch\ntorch.load('x.pt')", "torch.load without weights_only=True"),
    ("import torch\ntorch.load('x.pt', weights_only=False)", "torch.load without weights_only=True"),
    ("import torch\nsafe = True\ntorch.load('x.pt', weights_only=safe)", "torch.load without weights_only=True"),
    ("import torch\ntorch.load('x.pt', **options)", "torch.load without weights_only=True"),
    ("import torch as T\nT.load('x.pt')", "torch.load without weights_only=True"),
    ("from torch import load\nload('x.pt')", "torch.load without weights_only=True"),
    ("import torch.serialization\ntorch.serialization.load('x.pt')", "torch.load without weights_only=True"),
    ("import numpy as np\nnp.load('x.npy', allow_pickle=True)", "numpy.load with allow_pickle"),
    ("import numpy\nnumpy.load('x.npy', allow_pickle=flag)", "numpy.load with allow_pickle"),
    ("from numpy import load as L\nL('x.npy', allow_pickle=True)", "numpy.load with allow_pickle"),
    ("import numpy as np\nnp.load('x.npy', **options)", "numpy.load with allow_pickle"),
]
SAFE = [
    "import torch\ntorch.load('x.pt', map_location='cpu', weights_only=True)",
    "import numpy as np\nnp.load('x.npy')\nnp.load('x.npy', allow_pickle=False, mmap_mode='r')",
    "import safetensors.torch\nsafetensors.torch.load_file('m.safetensors')",
    '"""Weights are safetensors, never pickle."""\n# import pickle\nx = "torch.load(path)"',
    "import json\njson.load(open('x.json'))",
    "model.load('x')  # some other object's load",
]


@pytest.mark.parametrize("source,problem", UNSAFE)
def test_the_scan_catches_unsafe_loading(source, problem):
    assert [what for _, what in findings(source)] == [problem]


@pytest.mark.parametrize("source", SAFE)
def test_the_scan_passes_safe_loading(source):
    assert findings(source) == []
