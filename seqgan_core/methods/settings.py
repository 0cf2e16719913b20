"""Method settings: frozen dataclasses with the papers' values as defaults, whose fields
declare their allowed values: a range (`bounded`), a choice (``Literal[...]``), a type.
`check_bounds` enforces them for notebook users; the params schema (`pipelines.config`)
turns the same declarations into its constraints, so a method's settings are defined once."""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

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
    """ValueError naming the first field of a settings dataclass whose value is not of its
    declared kind (a choice of its ``Literal``, an integer, a number; None where the type
    allows it), is outside its declared range, or is a non-finite float."""
    hints = typing.get_type_hints(type(settings))
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is None and _allows_none(hints[field.name]):
            continue
        _check_kind(field.name, value, hints[field.name])
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{field.name} = {value} must be a finite number")
        for key, (ok, symbol) in _BOUND_TESTS.items():
            if key in field.metadata and not ok(value, field.metadata[key]):
                raise ValueError(f"{field.name} = {value!r} must be {symbol} {field.metadata[key]}")


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _check_kind(name: str, value: Any, hint: Any) -> None:
    if _allows_none(hint):  # X | None holding a value: check it as an X
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ValueError(f"{name} = {value!r} is not allowed: choose one of {', '.join(map(repr, choices))}")
    elif hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} = {value!r} must be an integer")
    elif hint is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{name} = {value!r} must be a number")
    elif hint is bool and not isinstance(value, bool):
        raise ValueError(f"{name} = {value!r} must be true or false")


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
        """Settings from plain values (e.g. a params section), nested settings included; a
        field left out keeps its default, and a key that names no field is a ValueError, so
        that a misspelt key cannot leave the default in place unnoticed."""
        fields = dataclasses.fields(cls)
        unknown = sorted(set(values) - {field.name for field in fields})
        if unknown:
            raise ValueError(f"{cls.__name__} has no setting {', '.join(map(repr, unknown))}; "
                             f"its settings are {', '.join(field.name for field in fields)}")
        kwargs = {}
        for field in fields:
            if field.name not in values:
                continue
            value = values[field.name]
            inner = _settings_type(cls, field)
            kwargs[field.name] = inner.from_dict(value) if inner is not None else value
        return cls(**kwargs)
