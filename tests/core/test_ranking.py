"""``safeshield.core.ranking``: its rank statistics by hand, rollouts that replay the simulator
exactly from a saved state, and a clear error for an env whose state cannot be restored."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import safeshield
from safeshield.core.ranking import BINS, action_ranking, average_ranks, mujoco_simulator, outcome, spearman

torch.set_num_threads(1)

PENDULUM = "InvertedPendulum-v5"  # MuJoCo, falls within a few dozen steps under a constant push


def test_average_ranks_share_ties():
    assert average_ranks(np.array([0.3, 0.1, 0.3, 0.9])).tolist() == [2.5, 1.0, 2.5, 4.0]


def test_spearman_by_hand():
    x = np.array([0.1, 0.2, 0.3, 0.4])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) against (1.5, 1.5, 4, 3): Pearson of the ranks, computed by hand
    y = np.array([0.0, 0.0, 0.9, 0.5])
    a, b = np.array([1, 2, 3, 4.0]), np.array([1.5, 1.5, 4, 3])
    expected = ((a - a.mean()) * (b - b.mean())).sum() / math.sqrt(
        ((a - a.mean()) ** 2).sum() * ((b - b.mean()) ** 2).sum()
    )
    assert spearman(x, y) == pytest.approx(expected)
    assert math.isnan(spearman(x, np.zeros(4)))  # a constant side has no ranking


def test_bins_cover_every_distance():
    for before in (0.01, 0.5, 0.51, 1.0, 1.5, 2.0, 2.5, math.inf):
        assert sum(low < before <= high for _, low, high in BINS) == 1


def push(obs, deterministic):
    return np.array([3.0], dtype=np.float32)  # the largest force, always one way: the pole falls


def test_outcome_replays_the_episode_from_the_saved_state():
    sim = mujoco_simulator(gym.make(PENDULUM))
    obs, _ = sim.reset(seed=0)
    for _ in range(3):
        obs, *_ = sim.step(push(obs, True))
    state = (sim.data.qpos.copy(), sim.data.qvel.copy(), obs.copy())
    fell_at = None
    for t in range(1, 200):  # the same actions from the same state, by hand
        if sim.step(push(None, True))[2]:
            fell_at = t
            break
    assert fell_at is not None
    gamma = 0.9
    assert outcome(sim, push, state, push(None, True), 200, gamma) == pytest.approx(gamma ** (fell_at - 1))
    assert outcome(sim, push, state, push(None, True), fell_at - 2, gamma) == 0.0  # too short to see it


def test_action_ranking_reports_every_bin_it_found():
    env = gym.make(PENDULUM)
    model = safeshield.model_for(env, seed=0).freeze()

    def noisy_push(obs, deterministic):
        return np.array([3.0 if deterministic else np.random.default_rng(int(obs[0] * 1e6) % 2**31).uniform(-3, 3)])

    report = action_ranking(model, env, noisy_push, per_bin=3, candidates=4, seed=0)
    assert report and set(report) <= {label for label, _, _ in BINS}
    for numbers in report.values():
        assert 1 <= numbers["states"] <= 3
        assert 0.0 <= numbers["proposal_outcome"] <= 1.0 and numbers["true_gap_of_best"] >= 0.0
        assert numbers["critic_gap"] >= 0.0
        assert numbers["spearman"] is None or -1.0 <= numbers["spearman"] <= 1.0


def test_an_env_that_cannot_restore_its_state_is_refused():
    with pytest.raises(TypeError, match="MuJoCo env whose state set_state"):
        mujoco_simulator(gym.make("CartPole-v1"))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"per_bin": 0}, "per_bin"), ({"candidates": -1}, "candidates"), ({"model": object()}, "model")],
)
def test_bad_arguments_name_what_is_wrong(options, message):
    env = gym.make(PENDULUM)
    arguments = {"model": safeshield.model_for(env).freeze(), "env": env, "policy": push, **options}
    with pytest.raises((TypeError, ValueError), match=message):
        action_ranking(**arguments)
