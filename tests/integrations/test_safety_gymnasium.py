"""Safety-Gymnasium: ``indicator="cost"`` on its Gymnasium-converted envs.

safety-gymnasium 1.0.0 does not install with its pins next to gymnasium 1.x; with
``pip install --no-deps safety-gymnasium xmltodict pyyaml`` and our compat shim it runs. The
tests that make a task run when the package is importable and skip otherwise (it is not in the
project's environment). Checked here with ``PYTHONPATH`` pointing at a ``pip install --target`` copy.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import safeshield
from safeshield.integrations.safety_gymnasium import make, task_control_period

needs_safety_gymnasium = pytest.mark.skipif(
    importlib.util.find_spec("safety_gymnasium") is None,
    reason="safety-gymnasium is not installed (optional; see docs/integrations.md)",
)


def _task(timestep: float, n: int, p: float) -> SimpleNamespace:
    """The parts of a Safety-Gymnasium task that fix its control period."""
    model = SimpleNamespace(opt=SimpleNamespace(timestep=timestep))
    return SimpleNamespace(
        agent=SimpleNamespace(engine=SimpleNamespace(model=model)),
        sim_conf=SimpleNamespace(frameskip_binom_n=n, frameskip_binom_p=p),
    )


def test_control_period_is_the_timestep_times_the_expected_substeps():
    assert task_control_period(_task(0.002, 10, 1.0)) == pytest.approx(0.02)
    assert task_control_period(_task(0.004, 10, 0.5)) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="control period"):
        task_control_period(_task(0.002, 10, 0.0))


@needs_safety_gymnasium
def test_make_declares_dt_so_the_default_horizon_is_half_a_second():
    env = make("SafetyPointGoal1-v0")
    assert env.unwrapped.dt == pytest.approx(0.02)  # 10 physics steps of 0.002 s
    shielded = safeshield.wrap(env, "sqrl", indicator="cost", seed=0)
    assert shielded.safety_model.config.horizon == 25  # 0.5 s


@needs_safety_gymnasium
def test_importing_safety_gymnasium_prints_no_notice_about_other_envs():
    code = "from safeshield.integrations.safety_gymnasium import make; make('SafetyPointGoal1-v0')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Adroit" not in out.stderr, out.stderr


@needs_safety_gymnasium
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
