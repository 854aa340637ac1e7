"""Train/val/test split of QA pairs: grouped, stratified by domain, leak-free, deterministic.

Design choices:
- Groups, not pairs, are assigned to splits. With ``group_by="article"`` (default) a group is every pair of
  one article, so test questions are about articles whose pairs were never trained on. With ``"none"`` each
  pair is its own group (the original behaviour). Either way, pairs whose normalised questions are identical
  are merged into one group (union-find), so the same question never lands in two splits.
- Stratified by systematic sampling: each domain's groups are shuffled with the seed and spread evenly over
  [0, 1); all groups are then sorted by that position, so any prefix of the list holds every domain in
  proportion. Walking that list, a group goes to the split whose share of the pair count holds the group's
  midpoint. Each split therefore ends within one group of its requested size.
- Order of the test, val and train blocks is fixed, so a seed fully determines the output.
"""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from minillm.core.errors import InputError
from minillm.core.files import atomic_write, to_json_line
from minillm.data.records import QAPair, normalize_question

SPLITS = ("train", "val", "test")
GROUP_BY = ("article", "none")


@dataclass
class Split:
    train: list[QAPair]
    val: list[QAPair]
    test: list[QAPair]

    def as_dict(self) -> dict[str, list[QAPair]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def check_ratios(train_size: float, val_size: float, test_size: float) -> None:
    ratios = {"train": train_size, "val": val_size, "test": test_size}
    for name, value in ratios.items():
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise InputError(f"--{name}-size: must be between 0 and 1, got {value}")
    total = train_size + val_size + test_size
    if abs(total - 1.0) > 1e-6:
        raise InputError(f"--train-size {train_size} + --val-size {val_size} + --test-size {test_size} "
                         f"= {total:g}; the ratios must sum to 1")


def _groups(pairs: Sequence[QAPair], group_by: str) -> list[list[int]]:
    """Indices of pairs grouped by article (or alone), merged across identical normalised questions."""
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_by_key: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(pairs):
        keys = [("q", normalize_question(pair.question))]
        if group_by == "article":
            keys.append(("a", pair.article_id))
        for key in keys:
            j = first_by_key.setdefault(key, i)
            parent[find(i)] = find(j)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(pairs)):
        members[find(i)].append(i)
    return list(members.values())


def split_qa_pairs(pairs: Sequence[QAPair], train_size: float = 0.8, val_size: float = 0.1,
                   test_size: float = 0.1, group_by: str = "article", seed: int = 0) -> Split:
    check_ratios(train_size, val_size, test_size)
    if group_by not in GROUP_BY:
        raise InputError(f"--group-by: unknown value '{group_by}', choose from {', '.join(GROUP_BY)}")
    groups = _groups(pairs, group_by)
    by_domain: dict[str, list[list[int]]] = defaultdict(list)
    for group in groups:
        by_domain[pairs[group[0]].domain].append(sorted(group))
    rng = random.Random(seed)
    placed = []
    for domain in sorted(by_domain):
        domain_groups = sorted(by_domain[domain], key=lambda g: pairs[g[0]].id)
        rng.shuffle(domain_groups)
        n = len(domain_groups)
        placed += [((k + 0.5) / n, domain, group) for k, group in enumerate(domain_groups)]
    placed.sort(key=lambda item: (item[0], item[1]))

    total = len(pairs)
    bounds = (test_size * total, (test_size + val_size) * total)
    out: dict[str, list[QAPair]] = {name: [] for name in SPLITS}
    seen = 0
    for _, _, group in placed:
        middle = seen + len(group) / 2
        name = "test" if middle <= bounds[0] else "val" if middle <= bounds[1] else "train"
        out[name].extend(pairs[i] for i in group)
        seen += len(group)
    return Split(**out)


def write_split(split: Split, output_dir) -> dict[str, str]:
    """Write train/val/test.jsonl together: all three are complete, or none is replaced."""
    paths = {}
    with contextlib.ExitStack() as stack:
        for name, pairs in split.as_dict().items():
            path = f"{output_dir}/{name}.jsonl"
            fh = stack.enter_context(atomic_write(path))
            fh.writelines(to_json_line(p) for p in pairs)
            paths[name] = path
    return paths
