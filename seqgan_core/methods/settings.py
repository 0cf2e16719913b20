"""Method settings: frozen dataclasses with the papers' values as defaults, whose fields
declare their allowed ranges. `check_bounds` enforces the ranges for notebook users; the
params schema (`pipelines.config`) turns the same declarations into its constraints, so a
method's settings are defined once."""
from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

_BOUND_TESTS = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
                "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}

S = TypeVar("S", bound="Settings")


def bounded(default: Any, *, description: str = "", **bounds: float) -> Any:
    """A settings field with its allowed range (``ge``, ``gt``, ``le``, ``lt``) and a
    description, kept as field metadata."""
    unknown = set(bounds) - set(_BOUND_TESTS)
    if unknown:
        raise TypeError(f"unknown bounds {sorted(unknown)}")
    return dataclasses.field(default=default, metadata={"description": description, **bounds})


def nested(settings_class: type) -> Any:
    """A field holding another settings dataclass (its defaults unless given)."""
    return dataclasses.field(default_factory=settings_class)


def check_bounds(settings: Any) -> None:
    """ValueError naming the first field of a settings dataclass outside its declared range
    (or a non-finite float)."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{field.name} = {value} must be a finite number")
        for key, (ok, symbol) in _BOUND_TESTS.items():
            if key in field.metadata and not ok(value, field.metadata[key]):
                raise ValueError(f"{field.name} = {value!r} must be {symbol} {field.metadata[key]}")


def _settings_type(owner: type, field: dataclasses.Field) -> "type[Settings] | None":
    """The settings class a field holds, if it holds one (its annotation, resolved)."""
    hint = typing.get_type_hints(owner)[field.name]
    return hint if isinstance(hint, type) and issubclass(hint, Settings) else None


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of every method's settings (a method with nothing to set uses it as is)."""

    def __post_init__(self) -> None:
        check_bounds(self)

    @classmethod
    def from_dict(cls: type[S], values: Mapping[str, Any]) -> S:
        """Settings from plain values (e.g. a params section), nested settings included."""
        kwargs = {}
        for field in dataclasses.fields(cls):
            value = values[field.name]
            inner = _settings_type(cls, field)
            kwargs[field.name] = inner.from_dict(value) if inner is not None else value
        return cls(**kwargs)
