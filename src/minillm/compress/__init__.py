"""Make a trained run smaller: ``quantize`` (8- and 4-bit weights), ``prune`` (weights, FFN neurons or
n-grams), ``distill`` (a smaller student), and ``sweep`` (all of them measured on one frontier). A compressed
run is an ordinary run directory that every command takes unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

from minillm.training.runs import CONFIG_FILE, FIT_FILE, METRICS_FILE, TOKENIZER_FILE

# what a compressed run takes from the original as it is; "neural" is a hybrid run's neural part, fit.json
# marks a fitted run (bert) as finished
KEEP = (CONFIG_FILE, TOKENIZER_FILE, METRICS_FILE, FIT_FILE, "index", "neural")


def copy_kept(run_dir: Path, staging: Path) -> None:
    """Copy the original run's KEEP files and folders (those it has) into the new run's staging folder;
    tokenizer.json without its indentation: the same tokenizer in 0.4x the bytes (265 KB -> 104 KB at
    4,096 tokens), which matters next to 4-bit weights."""
    import tokenizers

    for name in KEEP:
        source = run_dir / name
        if source.is_dir():
            shutil.copytree(source, staging / name)
        elif name == TOKENIZER_FILE and source.is_file():
            (staging / name).write_text(tokenizers.Tokenizer.from_file(str(source)).to_str(pretty=False),
                                        encoding="utf-8")
        elif source.is_file():
            shutil.copy2(source, staging / name)
