"""Tests for ``safeshield.environments.laikago`` (PyBullet Laikago, CSC's walk-without-falling task)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet")
pytest.importorskip("pybullet_data")

import gymnasium as gym  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import safeshield  # noqa: E402, F401  (registers the ids)
from safeshield.environments.laikago import LaikagoEnv, _tilt_quaternion  # noqa: E402

ENV_ID = "safeshield/Laikago-v0"


@pytest.fixture(scope="module")
def env():
    env = gym.make(ENV_ID).unwrapped
    yield env
    env.close()


def test_check_env_and_registration(env):
    assert gym.spec(ENV_ID).max_episode_steps == 500  # CSC: 500-step episodes
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (34,) and env.action_space.shape == (12,)
    assert env.metadata["safeshield_indicator"] == "info:failure"


def _rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for action in actions:
        out.append(env.step(action)[0])
    return np.array(out)


def test_determinism_under_a_seed(env):
    actions = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 12)).astype(np.float32)
    np.testing.assert_array_equal(_rollout(env, 5, actions), _rollout(env, 5, actions))
    assert not np.array_equal(_rollout(env, 5, actions), _rollout(env, 6, actions))


def test_standing_start_holds_under_zero_action(env):
    obs, info = env.reset(seed=0)
    assert info["failure"] is False and info["cost"] == 0.0
    assert 0.3 < info["base_position"][2] < 0.4
    for _ in range(100):  # 2 s
        _, reward, terminated, _, info = env.step(np.zeros(12, np.float32))
        assert not terminated and info["failure"] is False
    assert abs(reward) < 0.05 and info["base_position"][2] > 0.3


@pytest.mark.parametrize(
    ("height", "roll", "pitch"),
    [(0.5, 0.9, 0.0), (0.5, 0.0, -0.9), (0.15, 0.0, 0.0)],
)
def test_failure_fires_when_fallen(env, height, roll, pitch):
    env.reset(seed=0)
    env.set_base_pose((0.0, 0.0, height), _tilt_quaternion(roll, pitch))
    _, _, terminated, truncated, info = env.step(np.zeros(12, np.float32))
    assert terminated and not truncated and info["failure"] is True and info["cost"] == 1.0


def test_reward_is_forward_velocity(env):
    env.reset(seed=0)
    env.client.resetBaseVelocity(env.robot, [0.7, 0.0, 0.0], [0.0, 0.0, 0.0])
    assert env._reward(np.zeros(12)) == pytest.approx(0.7)


def test_bad_arguments_raise():
    for kwargs, name in [
        ({"action_scale": 0}, "action_scale"),
        ({"max_tilt": -1}, "max_tilt"),
        ({"render_mode": "human"}, "render_mode"),
    ]:
        with pytest.raises(ValueError, match=name):
            LaikagoEnv(**kwargs)
