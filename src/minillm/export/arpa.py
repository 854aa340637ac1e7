"""export arpa: the n-gram tables of a markov or hybrid run as an ARPA file, which kenlm and other n-gram
tools read (tests/test_markov.py scores it with kenlm).
"""

from __future__ import annotations

from pathlib import Path

from minillm.core.errors import InputError
from minillm.models.markov import MarkovChain
from minillm.training.config import load_config
from minillm.training.runs import CONFIG_FILE


def export_arpa(run_dir: str | Path, path: str | Path) -> int:
    """Write the n-gram tables of a markov or hybrid run as an ARPA file; returns the n-grams written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    arch = load_config(run_dir / CONFIG_FILE).arch
    if arch not in ("markov", "hybrid"):
        raise InputError(f"{run_dir}: a {arch} run has no n-gram tables; export arpa needs a markov or hybrid run")
    return MarkovChain.load(run_dir, model_name=arch).to_arpa(path)
