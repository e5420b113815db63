"""Shared pieces of the integration tests: a frozen stub shield model that intervenes often."""

from __future__ import annotations

import pytest
import torch

from safeshield.core import CriticConfig, SafetyCritic


class FarFromPoint(SafetyCritic):
    """Frozen stub: risk = squared distance of the action from ``point`` in every dimension.

    With ``point=0.5`` and ``threshold=0.5`` about half of uniform proposals in [-1, 1]^2 are
    rejected, so the tests see both passed and replaced actions.
    """

    name = "test-far-from-point"

    def __init__(self, observation_space, action_space, point=0.5, threshold=0.5, **config):
        super().__init__(observation_space, action_space, CriticConfig(**config) if config else None)
        self.point, self._threshold = point, threshold

    def build(self) -> None:
        pass

    def risk(self, obs, actions):
        return ((actions - self.point) ** 2).sum(dim=1)

    @property
    def threshold(self):
        return self._threshold

    def learn_step(self, batch):
        return {}


@pytest.fixture
def far_from_point():
    """Build a ``FarFromPoint`` model for an env's spaces: ``far_from_point(env, **kwargs)``."""

    def build(env, **kwargs):
        return FarFromPoint(env.observation_space, env.action_space, **kwargs)

    torch.manual_seed(0)
    return build
