"""Safety-Gymnasium: ``indicator="cost"`` on its Gymnasium-converted envs.

safety-gymnasium 1.0.0 does not install with its pins next to gymnasium 1.x; with
``pip install --no-deps safety-gymnasium xmltodict pyyaml`` and our compat shim it runs. The
test runs when the package is importable and skips otherwise (it is not in the project's
environment). Checked here with ``PYTHONPATH`` pointing at a ``pip install --target`` copy.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("safety_gymnasium") is None:
    pytest.skip("safety-gymnasium is not installed (optional; see docs/integrations.md)", allow_module_level=True)

import safeshield  # noqa: E402
from safeshield.integrations.safety_gymnasium import make  # noqa: E402


def test_cost_indicator_counts_every_costly_step_of_a_safety_gymnasium_task():
    env = safeshield.wrap(make("SafetyPointGoal1-v0"), "sqrl", indicator="cost", seed=0, learning_starts=10**6)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    costly = 0
    for _ in range(1000):  # one episode, driving forward while wandering: it crosses hazards
        _, _, terminated, truncated, info = env.step(np.array([1.0, rng.uniform(-0.3, 0.3)]))
        assert info["shield"]["failure"] == float(info["cost"] > 0)
        costly += info["cost"] > 0
        if terminated or truncated:
            env.reset()
    assert costly > 0, "this drive crosses hazards in PointGoal1 (seed 0)"
    assert env.total_failures == costly
    assert env.safety_model.buffer.total_added == 1000
    assert env.safety_model.buffer.all().failure.sum() == costly
