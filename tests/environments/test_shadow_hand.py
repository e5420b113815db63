"""Tests for ``safeshield.environments.shadow_hand`` (gymnasium-robotics Shadow hand, SQRL's CubeRotate)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")
pytest.importorskip("mujoco")

import gymnasium as gym  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import safeshield  # noqa: E402, F401  (registers the ids)
from safeshield.environments.shadow_hand import GOAL_AXES, ShadowHandCubeRotateEnv, rotation_angle  # noqa: E402

PRETRAIN, TARGET = "safeshield/ShadowHandCubeRotate-v0", "safeshield/ShadowHandCubeRotateTarget-v0"


@pytest.fixture(scope="module")
def env():
    env = gym.make(PRETRAIN).unwrapped
    yield env
    env.close()


def test_check_env_and_registration(env):
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (65,) and env.action_space.shape == (20,)
    assert env.metadata["safeshield_indicator"] == "info:failure"
    assert gym.spec(PRETRAIN).max_episode_steps == gym.spec(TARGET).max_episode_steps == 100  # SQRL Table 2


def test_variants_differ_in_exactly_the_turn():
    base, target = gym.spec(PRETRAIN).kwargs, gym.spec(TARGET).kwargs
    assert {k for k in base.keys() | target.keys() if base.get(k) != target.get(k)} == {"turn"}
    assert (base["turn"], target["turn"]) == (1.0, 1.5)


@pytest.mark.parametrize(("env_id", "angle"), [(PRETRAIN, math.pi / 2), (TARGET, 3 * math.pi / 4)])
def test_goal_is_the_documented_turn_in_one_of_four_directions(env_id, angle):
    env = gym.make(env_id).unwrapped
    seen = set()
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        assert info["rotation_error"] == pytest.approx(angle, abs=1e-6)
        np.testing.assert_allclose(obs[-4:], env.goal, rtol=1e-6)
        seen.add(info["goal_index"])
    assert seen == set(range(len(GOAL_AXES)))
    env.close()


def test_determinism_under_a_seed(env):
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 20)).astype(np.float32)

    def rollout(seed):
        out = [env.reset(seed=seed)[0]]
        out += [env.step(a)[0] for a in actions]
        return np.array(out)

    np.testing.assert_array_equal(rollout(2), rollout(2))
    assert not np.array_equal(rollout(2), rollout(3))


def test_initial_state_safe_and_reward_is_scaled_rotation_error(env):
    _, info = env.reset(seed=0)
    assert info["failure"] is False and info["cost"] == 0.0
    for _ in range(10):
        _, reward, terminated, _, info = env.step(np.zeros(20, np.float32))
        assert not terminated and info["failure"] is False
        assert reward == pytest.approx(-7.0 * info["rotation_error"])


def test_failure_fires_when_the_block_is_dropped(env):
    env.reset(seed=0)
    pose = env.block_pose()
    pose[2] = 0.0  # well below the palm
    env.set_block_pose(pose)
    _, _, terminated, truncated, info = env.step(np.zeros(20, np.float32))
    assert terminated and not truncated and info["failure"] is True and info["cost"] == 1.0


def test_rotation_angle():
    identity = np.array([1.0, 0, 0, 0])
    half = np.array([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)])
    assert rotation_angle(identity, half) == pytest.approx(math.pi / 2)
    assert rotation_angle(identity, -identity) == pytest.approx(0.0)  # q and -q are one rotation


def test_bad_arguments_raise():
    for kwargs, name in [
        ({"turn": 0}, "turn"),
        ({"drop_height": float("nan")}, "drop_height"),
        ({"render_mode": "human"}, "render_mode"),
    ]:
        with pytest.raises(ValueError, match=name):
            ShadowHandCubeRotateEnv(**kwargs)


def test_making_the_env_prints_no_notice_about_other_envs():
    """gymnasium-robotics' import-time notice about its Adroit envs does not reach a user's log."""
    code = "import gymnasium as gym, safeshield; gym.make('safeshield/ShadowHandCubeRotate-v0').reset(seed=0)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Adroit" not in out.stderr, out.stderr


def test_without_notice_drops_only_the_named_lines(capsys):
    from safeshield.environments._quiet import without_notice

    with without_notice("known notice"):
        print("known notice: about something else", file=sys.stderr)
        print("a real warning", file=sys.stderr)
    assert capsys.readouterr().err == "a real warning\n"
