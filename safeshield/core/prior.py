"""The remap half of the model family: a prior that maps a latent box onto env actions (SAFER).

A reject/resample model (``core.critic.SafetyCritic``) keeps the agent's action space and
replaces unsafe proposals; a remap prior changes the action space and maps *every* action, so
it has no candidates and no fallback. ``safeshield.wrappers.RemapWrapper`` drives it.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from safeshield.core.model import SafetyModel

__all__ = ["RemapPrior"]


class RemapPrior(SafetyModel):
    """Base of every remap model: ``remap``, a latent bound ``eta``, a state ``window`` and online hooks."""

    kind: ClassVar[str] = "remap"
    window: int
    eta: float

    @abc.abstractmethod
    def remap(self, latent: np.ndarray, window: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, float]:
        """Env action for latent ``z`` (d,) given the window (w, *obs_shape) and its mask (w,); and -log p."""

    @abc.abstractmethod
    def observe(self, window: np.ndarray, valid: np.ndarray, action: np.ndarray, failure: float) -> None:
        """Store one labelled step for online fine-tuning."""

    @abc.abstractmethod
    def after_step(self) -> dict[str, float] | None:
        """Learn on the model's schedule (no-op when frozen)."""
