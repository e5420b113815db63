"""Tests for ``safeshield.environments.panda_push`` (robosuite Panda, CSC's push tasks).

robosuite is slow to import and to build (numba JIT on the first run), so one env serves the
whole module; the boundary variant is exercised by switching that env's ``failure`` attribute,
the one parameter in which the registered variants differ."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("robosuite")

import gymnasium as gym  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import safeshield  # noqa: E402, F401  (registers the ids)
from safeshield.environments.panda_push import GOAL_X, PandaPushEnv, tilt_angle  # noqa: E402

TOPPLE, BOUNDARY = "safeshield/PandaPushNoTopple-v0", "safeshield/PandaPushBoundary-v0"
UPRIGHT = (1.0, 0.0, 0.0, 0.0)


def _tilted(degrees: float) -> tuple[float, float, float, float]:
    half = math.radians(degrees) / 2
    return (math.cos(half), math.sin(half), 0.0, 0.0)  # about the x axis


@pytest.fixture(scope="module")
def env():
    env = gym.make(TOPPLE).unwrapped
    yield env
    env.failure = "topple"
    env.close()


def test_check_env_and_registration(env):
    check_env(env, skip_render_check=True, skip_close_check=True)  # a second robosuite build costs seconds
    assert env.action_space.shape == (3,) and env.observation_space.shape[0] > 20
    assert env.metadata["safeshield_indicator"] == "info:failure"
    assert gym.spec(TOPPLE).max_episode_steps == gym.spec(BOUNDARY).max_episode_steps == 500  # CSC


def test_variants_differ_in_exactly_the_failure():
    a, b = gym.spec(TOPPLE).kwargs, gym.spec(BOUNDARY).kwargs
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {"failure"}
    assert (a["failure"], b["failure"]) == ("topple", "boundary")


def test_determinism_under_a_seed(env):
    actions = np.random.default_rng(0).uniform(-1, 1, (10, 3)).astype(np.float32)

    def rollout(seed):
        out = [env.reset(seed=seed)[0]]
        out += [env.step(a)[0] for a in actions]
        return np.array(out)

    np.testing.assert_array_equal(rollout(1), rollout(1))
    assert not np.array_equal(rollout(1), rollout(2))


def test_initial_state_is_safe_and_block_starts_upright_in_the_workspace(env):
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        assert info["failure"] is False and info["cost"] == 0.0 and not info["toppled"] and not info["out_of_bounds"]
        x, y, z = info["block_position"]
        assert abs(x) <= 0.10 and abs(y) <= 0.20 and z == pytest.approx(0.05, abs=0.005)
        assert GOAL_X[0] <= env.goal[0] <= GOAL_X[1]
    for _ in range(10):
        *_, terminated, _, info = env.step(np.zeros(3, np.float32))
        assert not terminated and info["failure"] is False


@pytest.mark.parametrize("variant", ["topple", "boundary"])
def test_each_variant_fails_on_its_own_condition_only(env, variant):
    env.failure = variant
    try:
        env.reset(seed=0)
        env.set_block_pose((0.0, -0.05, 0.04), _tilted(80))  # toppled, inside the region
        _, _, terminated, _, info = env.step(np.zeros(3, np.float32))
        assert info["toppled"] and not info["out_of_bounds"]
        assert terminated == info["failure"] == (variant == "topple")

        env.reset(seed=0)
        env.set_block_pose((0.09, 0.0, 0.051), UPRIGHT)  # upright, outside the 15 x 35 cm region
        _, _, terminated, _, info = env.step(np.zeros(3, np.float32))
        assert info["out_of_bounds"] and not info["toppled"]
        assert terminated == info["failure"] == (variant == "boundary")
        assert info["cost"] == (1.0 if info["failure"] else 0.0)
    finally:
        env.failure = "topple"


def test_reward_is_higher_with_the_block_at_the_goal(env):
    env.reset(seed=0)
    _, far, *_ = env.step(np.zeros(3, np.float32))
    env.set_block_pose((*env.goal, 0.051), UPRIGHT)
    _, near, _, _, info = env.step(np.zeros(3, np.float32))
    assert info["is_success"] and near > far


def test_tilt_angle():
    assert tilt_angle(np.array(UPRIGHT)) == pytest.approx(0.0)
    assert tilt_angle(np.array(_tilted(60))) == pytest.approx(math.radians(60))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="failure"):
        PandaPushEnv(failure="slip")
    with pytest.raises(ValueError, match="render_mode"):
        PandaPushEnv(render_mode="human")
