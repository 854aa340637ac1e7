"""Numbers as the tables and the CLI print them: counts (1.2M), bytes (3.4 MB), seconds, and a missing
value as a dash.
"""

from __future__ import annotations

DASH = "—"


def human_count(n: float) -> str:
    """3360256 -> '3.36M', 20544 -> '20.5k'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


def human_bytes(n: float) -> str:
    """12_900_000 -> '12.9 MB' (decimal units, as file managers show them)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def human_seconds(s: float) -> str:
    """312.4 -> '5m 12s'."""
    if s < 60:
        return f"{s:.1f}s"
    minutes, seconds = divmod(round(s), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {seconds:02d}s"


def format_number(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return DASH if value is None else f"{value:.{digits}f}{suffix}"
