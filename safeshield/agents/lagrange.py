"""One Lagrange multiplier for constrained agents (SQRL's ν, TRPO-Lagrangian's λ, SAC-Lagrangian's β).

- ``LagrangeMultiplier``: projected dual ascent on a multiplier λ ≥ 0.

Every constrained learner in this package solves max_π min_{λ≥0} R(π) − λ (C(π) − d) for a
measured constraint value C and a limit d. The dual function's gradient in λ is −(C − d), so
gradient *descent* on the dual (ascent in the usual "λ grows when the constraint is violated"
reading) is

    λ ← max(0, λ + lr · (C − d)).

This is the *standard* sign. CSC prints the opposite sign for its dual step (seed 001,
Alg. 1 line "λ ← λ − η_λ (…)"): with it λ would shrink
exactly when the agent fails too often. The tests pin the standard sign.
"""

from __future__ import annotations

import math

from safeshield.core.validation import check_finite, check_interval, check_positive

__all__ = ["LagrangeMultiplier"]


class LagrangeMultiplier:
    """A multiplier λ ≥ 0 updated by projected dual ascent, λ ← max(0, λ + lr (C − d)).

    Example:
        >>> lam = LagrangeMultiplier(limit=0.05, lr=0.1)
        >>> round(lam.update(0.25), 6)   # constraint violated by 0.2: λ grows by lr · 0.2
        0.02
        >>> round(lam.update(0.0), 6)    # slack of 0.05: λ shrinks by lr · 0.05
        0.015
        >>> lam.update(-1.0)              # however large the slack, never below 0
        0.0
    """

    def __init__(self, limit: float, lr: float, init: float = 0.0, max_value: float | None = None):
        check_finite("LagrangeMultiplier.limit", limit)
        check_positive("LagrangeMultiplier.lr", lr, allow_zero=True)
        check_positive("LagrangeMultiplier.init", init, allow_zero=True)
        if max_value is not None:
            check_interval("LagrangeMultiplier.max_value", max_value, float(init), math.inf, closed="left")
        self.limit = float(limit)
        self.lr = float(lr)
        self.max_value = None if max_value is None else float(max_value)
        self.value = float(init)

    def update(self, measured: float) -> float:
        """One dual step from the measured constraint value C; returns the new λ."""
        measured = check_finite("LagrangeMultiplier.update measured", float(measured))
        value = max(0.0, self.value + self.lr * (measured - self.limit))
        self.value = value if self.max_value is None else min(value, self.max_value)
        return self.value

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"LagrangeMultiplier(value={self.value:.6g}, limit={self.limit:g}, lr={self.lr:g})"
