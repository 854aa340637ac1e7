"""Small value checks shared by every layer: JSON fields of the right type (with file:line in the message)
and the numbers a config dataclass validates in its ``__post_init__``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from minillm.core.errors import InputError


def comma_list(text: str | None) -> tuple[str, ...]:
    """A comma-separated option as its names: "a, b,," -> ('a', 'b'); None -> ()."""
    return tuple(name.strip() for name in text.split(",") if name.strip()) if text else ()


def string_field(obj: Any, name: str, where: str, required: bool = True) -> str | None:
    """A non-empty string field of a decoded JSON line, or None when optional and absent.

    For readers of free-form JSON Lines (local articles, question files); ``where`` is ``FILE:LINE``.
    """
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if name not in obj:
        if required:
            raise InputError(f"{where}: field '{name}': missing")
        return None
    value = obj[name]
    if not isinstance(value, str):
        raise InputError(f"{where}: field '{name}': expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InputError(f"{where}: field '{name}': must not be empty")
    return value


def string_list_field(obj: dict, name: str, where: str, least: int = 0) -> list[str]:
    """A list field of non-empty strings, with at least ``least`` of them (``where`` is ``FILE:LINE``)."""
    if name not in obj:
        raise InputError(f"{where}: field '{name}': missing")
    values = obj[name]
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise InputError(f"{where}: field '{name}': expected a list of non-empty strings")
    if len(values) < least:
        raise InputError(f"{where}: field '{name}': needs at least {least}, got {len(values)}")
    return values


def not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float) or value != value  # NaN


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def not_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def check_names(flag: str, given: Iterable[str], known: Sequence[str], what: str) -> None:
    """InputError naming every name of ``given`` not in ``known``: "--arms: unknown arm(s) x; choose from a, b"."""
    unknown = [name for name in given if name not in known]
    if unknown:
        raise InputError(f"{flag}: unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
