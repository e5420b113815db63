"""Failure indicators: turn one Gymnasium step into a failure probability in [0, 1].

- ``Indicator``: the callable type ``(obs, reward, terminated, truncated, info) -> float``.
- ``make_indicator``: build one from ``"cost"``, ``"terminated"``, ``"info:<key>"`` or a callable.

A shield never sees the environment's internals, only what ``step()`` returns, so the
failure signal has to be recoverable from that tuple. These are the conventions in use:

- ``"cost"``: ``info["cost"] > 0`` (Safety-Gymnasium's convention, also used by CSC).
- ``"terminated"``: ``terminated`` is true. Gymnasium separates time-limit truncation
  (``truncated``) from true termination, so a time limit never counts as a failure.
  Use it only where every termination is a failure (a robot that falls); an env that also
  terminates on success should expose ``info["failure"]`` and use ``"info:failure"``.
- ``"info:<key>"``: ``info[<key>]`` read as a number or boolean (``"info:failure"``).
- a callable ``(obs, reward, terminated, truncated, info) -> float in [0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from safeshield.core.validation import did_you_mean

__all__ = ["Indicator", "make_indicator", "describe_indicator"]

Indicator = Callable[[Any, float, bool, bool, dict], float]

_FORMS = (
    '"cost", "terminated", "info:<key>" or a callable (obs, reward, terminated, truncated, info) -> float in [0, 1]'
)


def _number(value: Any, what: str) -> float:
    """``value`` as a float if it is a number (bool, int, float, numpy or 0-d array); text is refused."""
    if isinstance(value, (str, bytes, bytearray)):
        raise ValueError(f"{what} returned {value!r:.80}, expected a number, not text")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{what} returned {value!r:.80}, expected a number in [0, 1]") from error


def _checked(value: Any, source: str) -> float:
    failure = _number(value, f"indicator {source}")
    if math.isnan(failure) or not 0.0 <= failure <= 1.0:
        raise ValueError(f"indicator {source} returned {failure!r}, expected a number in [0, 1]")
    return failure


def _from_cost(obs, reward, terminated, truncated, info) -> float:
    if "cost" not in info:
        raise KeyError('indicator="cost" needs info["cost"] on every step; this env does not report it')
    cost = _number(info["cost"], 'indicator "cost" (info["cost"])')
    if math.isnan(cost):
        raise ValueError('indicator "cost" read info["cost"] = nan, expected a number')
    return 1.0 if cost > 0.0 else 0.0


def _from_terminated(obs, reward, terminated, truncated, info) -> float:
    return 1.0 if terminated else 0.0


def _from_info_key(key: str) -> Indicator:
    def from_info(obs, reward, terminated, truncated, info) -> float:
        if key not in info:
            raise KeyError(f'indicator="info:{key}" needs info[{key!r}] on every step; this env does not report it')
        return _checked(info[key], f'"info:{key}"')

    return from_info


def _from_callable(fn: Callable) -> Indicator:
    def checked(obs, reward, terminated, truncated, info) -> float:
        return _checked(fn(obs, reward, terminated, truncated, info), repr(getattr(fn, "__name__", fn)))

    return checked


def make_indicator(indicator: str | Callable) -> Indicator:
    """Return the failure function for ``indicator``; raise ``ValueError`` for an unknown form."""
    if callable(indicator):
        return _from_callable(indicator)
    if indicator == "cost":
        return _from_cost
    if indicator == "terminated":
        return _from_terminated
    if isinstance(indicator, str) and indicator.startswith("info:") and len(indicator) > len("info:"):
        return _from_info_key(indicator[len("info:") :])
    hint = did_you_mean(indicator, ("cost", "terminated"))
    raise ValueError(f"unknown indicator={indicator!r}{hint}; expected {_FORMS}")


def describe_indicator(indicator: str | Callable) -> str:
    """A JSON-safe name for ``indicator`` (callables by qualified name) for checkpoints and logs."""
    if isinstance(indicator, str):
        return indicator
    return f"callable:{getattr(indicator, '__module__', '?')}.{getattr(indicator, '__qualname__', repr(indicator))}"
