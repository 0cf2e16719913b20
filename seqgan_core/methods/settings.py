"""Checks for the methods' frozen settings dataclasses: a bad value raises ValueError
naming the field, the value and what is allowed (called from ``__post_init__``)."""
from __future__ import annotations

import math
from collections.abc import Iterable


def check_choice(field: str, value: object, choices: Iterable[object]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{field} = {value!r} is not allowed: choose one of {', '.join(map(repr, choices))}")


def check_range(field: str, value: float, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, integer: bool = False) -> None:
    """``value`` must be a finite number (an int with ``integer``) within [low, high]
    (or ( / ) where open)."""
    kinds = int if integer else (int, float)
    ok = not isinstance(value, bool) and isinstance(value, kinds) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lower = "-inf" if low is None else f"{low:g}"
        upper = "inf" if high is None else f"{high:g}"
        bounds = f"{'(' if low_open or low is None else '['}{lower}, {upper}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{field} = {value!r} is outside the allowed range: {'an integer in ' if integer else ''}{bounds}")
