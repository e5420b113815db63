"""A failure that does not end the episode: a cost the env reports while the episode goes on.

A point drifts on a line under a controller that pushes it back and forth; every step it spends
outside |x| <= 1 costs 1 (``info["cost"]``) and the episode continues. The shield learns from
``indicator="cost"`` online and must keep the point inside far more often than the controller
alone; its quality report scores the executed action's risk, so the costs it averted do not count
as false alarms against it (they would against the refused proposal's risk). Judged afterwards on
episodes it never learned from (``safeshield.held_out_quality``), its risk ranks and is calibrated.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import torch

import safeshield
from safeshield.core.quality import ShieldQualityWarning

torch.set_num_threads(1)


class DriftingPoint(gym.Env):
    """x, v on a line; v <- 0.9 v + 0.05 a + noise; cost 1 on every step with |x| > 1."""

    observation_space = gym.spaces.Box(-5.0, 5.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.v = 0.0
        self.t = 0
        return np.array([self.x, self.v], np.float32), {}

    def step(self, action):
        self.t += 1
        self.v = 0.9 * self.v + 0.05 * float(action[0]) + 0.02 * float(self.np_random.normal())
        self.x = float(np.clip(self.x + self.v, -5.0, 5.0))
        cost = float(abs(self.x) > 1.0)
        return np.array([self.x, self.v], np.float32), -cost, False, self.t >= 200, {"cost": cost}


def costly_steps(env, steps: int) -> np.ndarray:
    """Run a controller that sweeps the point back and forth (it leaves |x| <= 1 on most sweeps)."""
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    costs = np.zeros(steps)
    for t in range(steps):
        action = np.clip([np.sin(t / 37.0) + 0.3 * rng.normal()], -1.0, 1.0).astype(np.float32)
        _, _, terminated, truncated, info = env.step(action)
        costs[t] = info["cost"]
        if terminated or truncated:
            env.reset()
    return costs


def test_a_shield_learns_to_avoid_a_cost_that_does_not_end_the_episode():
    plain = costly_steps(DriftingPoint(), 3000)
    shielded_env = safeshield.wrap(DriftingPoint(), "sqrl", indicator="cost", seed=0)
    with warnings.catch_warnings():
        # its first check (1 000 steps) covers its learning: it must not call a risk that works uninformative
        warnings.simplefilter("error", ShieldQualityWarning)
        shielded = costly_steps(shielded_env, 3000)
    late = slice(1500, None)
    assert plain[late].sum() > 500  # the controller alone leaves the safe interval often
    assert shielded[late].sum() <= plain[late].sum() / 3
    report = shielded_env.quality_report()
    assert report["total_failures"] == shielded.sum()
    # the averted costs: high proposal risk, no cost after the replacement; they no longer count against it
    assert report["auc"] > report["proposal_auc"]


def sweeping_controller(seed: int):
    """The drifting controller of the non-terminal-cost test, as a policy of its own."""
    rng = np.random.default_rng(seed)
    t = iter(range(10**9))
    return lambda obs: np.clip([np.sin(next(t) / 37.0) + 0.3 * rng.normal()], -1.0, 1.0).astype(np.float32)


def test_held_out_report_scores_unseen_episodes_without_learning_or_acting():
    trained_env = safeshield.wrap(DriftingPoint(), "sqrl", indicator="cost", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShieldQualityWarning)
        costly_steps(trained_env, 2000)
    model = trained_env.safety_model
    updates, stored = model.updates, len(model.buffer)
    report = safeshield.held_out_quality(model, DriftingPoint(), sweeping_controller(7), episodes=4, indicator="cost")
    assert report["episodes"] == 4 and report["total_steps"] == 800
    assert report["total_interventions"] == 0  # shadow mode: every proposal ran
    assert model.updates == updates and len(model.buffer) == stored  # nothing learned from the held-out steps
    assert not model.frozen  # and the training shield learns on
    assert report["auc"] == report["proposal_auc"]
    untrained = safeshield.model_for(DriftingPoint(), "sqrl", seed=1)
    baseline = safeshield.held_out_quality(
        untrained, DriftingPoint(), sweeping_controller(7), episodes=4, indicator="cost"
    )
    # an informative critic beats an untrained one: it ranks better and its risk is calibrated, here a count
    # of the cost steps within the horizon (it counts: the cost lasts), the untrained one's a probability
    assert report["auc"] > baseline["auc"] and report["auc"] > 0.9
    assert report["calibration_units"] == "count" and baseline["calibration_units"] == "probability"
    relative_ece = report["ece"] / report["calibration"]["edges"][-1]  # over the range of the counts
    assert relative_ece < 0.1 and baseline["ece"] > 0.2
