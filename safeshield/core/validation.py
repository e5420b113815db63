"""Argument checks for configs, models, agents and env constructors, with one message form.

Every check raises ``ValueError("<name> must be <what>, got <value>")`` (``TypeError`` for a
wrong kind of object, in the same form) and returns the value converted (float, int, tuple).

- ``check_finite``: a finite real number (bools refused).
- ``check_positive``: a finite number > 0, or >= 0 with ``allow_zero``.
- ``check_count``: an integer >= ``minimum`` (bools refused).
- ``check_interval``: a finite number in an interval such as (0, 1] (``closed`` says which ends).
- ``check_choice``: one of a fixed set of values.
- ``check_pair``: a pair of finite numbers (a 2-D point or an interval).
- ``check_widths``: a non-empty tuple of positive layer widths (``hidden=(256, 256)``).
- ``check_instance``: an object of the expected type (``TypeError``).
- ``check_field_types``: every field of a config dataclass has its default's type (an integer, a
  finite number, a bool, a string, a tuple of integers), so a NaN, an inf, a bool or a string never
  reaches a model, from a user or from a checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "as_float32",
    "check_choice",
    "check_field_types",
    "check_count",
    "check_finite",
    "check_instance",
    "check_interval",
    "check_pair",
    "check_positive",
    "check_widths",
    "did_you_mean",
]

_REAL = (int, float, np.integer, np.floating)


def _fail(name: str, what: str, value: Any, error: type[Exception] = ValueError, hint: str = "") -> Exception:
    return error(f"{name} must be {what}, got {value!r}{hint}")


def did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    """``" (did you mean 'x'?)"`` for the choice closest to a mistyped string ``value``, else ``""``."""
    if not isinstance(value, str):
        return ""
    names = {str(choice): choice for choice in choices}
    close = difflib.get_close_matches(value, list(names), n=1, cutoff=0.6)
    return f" (did you mean {names[close[0]]!r}?)" if close else ""


def _is_real(value: Any) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, _REAL) and math.isfinite(value)


def check_finite(name: str, value: Any) -> float:
    """``value`` as a finite float; ValueError naming ``name`` otherwise."""
    if not _is_real(value):
        raise _fail(name, "a finite number", value)
    return float(value)


def as_float32(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float32 array, else a ValueError naming ``name`` and the ``shape`` it should have."""
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a numeric array of shape {shape}, got {value!r:.200}") from error


def check_float_array(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a finite float32 array of exactly ``shape``, else a ValueError naming ``name``."""
    array = as_float32(name, value, shape)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (in float32), got {value!r:.200}")
    return array


def check_probabilities(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``check_float_array`` for failure labels: also every value in [0, 1], else a ValueError naming
    ``name``, the first value outside, where it is and how many are."""
    array = check_float_array(name, value, shape)
    outside = np.flatnonzero((array < 0) | (array > 1))
    if outside.size:
        raise ValueError(
            f"{name} must lie in [0, 1] (the shield's indicator), got {float(array.flat[outside[0]])!r} at index "
            f"{outside[0]} ({outside.size} outside); map the signal to 0/1 or a probability first"
        )
    return array


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``); ValueError naming ``name``."""
    what = f"a finite number {'>=' if allow_zero else '>'} 0"
    if not _is_real(value) or value < 0 or (value == 0 and not allow_zero):
        raise _fail(name, what, value)
    return float(value)


def check_count(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; ValueError naming ``name`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _fail(name, f"an integer >= {minimum}", value)
    return int(value)


def check_interval(name: str, value: Any, low: float, high: float, *, closed: str = "both") -> float:
    """``value`` as a float in the interval from ``low`` to ``high``.

    ``closed`` is ``"both"`` ([low, high]), ``"left"`` ([low, high)), ``"right"`` ((low, high])
    or ``"neither"`` ((low, high)).
    """
    left, right = closed in ("both", "left"), closed in ("both", "right")
    inside = _is_real(value) and (value >= low if left else value > low) and (value <= high if right else value < high)
    if not inside:
        raise _fail(name, f"in {'[' if left else '('}{low:g}, {high:g}{']' if right else ')'}", value)
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` itself if it is one of ``choices``; ValueError naming ``name`` otherwise."""
    choices = tuple(choices)
    if value not in choices:
        raise _fail(name, f"one of {choices}", value, hint=did_you_mean(value, choices))
    return value


def check_pair(name: str, value: Any, what: str = "(x, y)") -> tuple[float, float]:
    """``value`` as a pair of finite floats; ValueError naming ``name`` otherwise."""
    try:
        items = tuple(value)
    except TypeError:
        raise _fail(name, f"a pair of finite numbers {what}", value) from None
    if len(items) != 2 or not all(_is_real(item) for item in items):
        raise _fail(name, f"a pair of finite numbers {what}", value)
    return float(items[0]), float(items[1])


def check_widths(name: str, value: Any) -> tuple[int, ...]:
    """``value`` as a non-empty tuple of positive ints (network layer widths)."""
    try:
        widths = tuple(value)
    except TypeError:
        raise _fail(name, "a non-empty tuple of positive layer widths", value) from None
    if not widths or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in widths):
        raise _fail(name, "a non-empty tuple of positive layer widths", value)
    return tuple(int(w) for w in widths)


def check_instance(name: str, value: Any, kind: type | tuple[type, ...], what: str | None = None) -> Any:
    """``value`` itself if it is a ``kind``; TypeError naming ``name`` and the type it got otherwise."""
    if not isinstance(value, kind):
        expected = what or (kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind))
        raise TypeError(f"{name} must be a {expected}, got {type(value).__name__}")
    return value


def check_field_types(config: Any) -> None:
    """Every field of the dataclass ``config`` has its default's type: an int field an integer (not a
    bool), a float field a finite number, a bool field a bool, a str field a str, a tuple field a tuple
    (or list) of integers; an optional field (``X | None``) may be None. ValueError naming
    ``<Config>.<field>`` otherwise."""
    for field in dataclasses.fields(config):
        value, default = getattr(config, field.name), field.default
        if value is None and "None" in str(field.type):  # an optional field left unset
            continue
        if isinstance(default, bool):
            ok, what = isinstance(value, (bool, np.bool_)), "a bool"
        elif isinstance(default, int):
            ok, what = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)), "an integer"
        elif isinstance(default, float):
            ok, what = _is_real(value), "a finite number"
        elif isinstance(default, str):
            ok, what = isinstance(value, str), "a string"
        elif isinstance(default, tuple):
            ok = isinstance(value, (tuple, list)) and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in value
            )
            what = "a tuple of integers"
        else:
            continue
        if not ok:
            raise _fail(f"{type(config).__name__}.{field.name}", what, value)
