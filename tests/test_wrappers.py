"""Tests of ``safeshield.wrappers.PreviousRewardCost`` (Knight & Achiam §2.1)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.wrappers import PreviousRewardCost


class Scripted(gym.Env):
    """Reward and cost drawn from a seeded RNG; obs is the step count."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float(self.np_random.normal())
        info = {"cost": float(self.np_random.random() < 0.5)} if self.t % 3 else {}
        return np.array([self.t, 1.0], np.float32), reward, False, self.t >= 7, info


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_observation_holds_the_previous_reward_and_cost_exactly(seed):
    env = PreviousRewardCost(Scripted())
    obs, _ = env.reset(seed=seed)
    assert obs[-2:].tolist() == [0.0, 0.0]
    for _ in range(2):  # two episodes: zeros again after the second reset
        for _ in range(7):
            inner_obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert inner_obs[:2].tolist() == [env.unwrapped.t, 1.0]
            assert inner_obs[-2] == np.float32(reward)
            assert inner_obs[-1] == np.float32(info.get("cost", 0.0))
            assert inner_obs in env.observation_space
        obs, _ = env.reset()
        assert obs[-2:].tolist() == [0.0, 0.0]


def test_check_env_passes_and_spec_remakes():
    env = PreviousRewardCost(gym.make("Pendulum-v1"))
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (5,)
    remade = gym.make(env.spec)
    assert remade.observation_space == env.observation_space


def test_custom_cost_key_and_bad_spaces():
    class KeyEnv(Scripted):
        def step(self, action):
            obs, reward, terminated, truncated, _ = super().step(action)
            return obs, reward, terminated, truncated, {"hazard": 2.5}

    env = PreviousRewardCost(KeyEnv(), cost_key="hazard")
    env.reset(seed=0)
    assert env.step(np.zeros(1, np.float32))[0][-1] == 2.5
    with pytest.raises(TypeError, match="1-D Box"):
        PreviousRewardCost(gym.make("FrozenLake-v1"))
    with pytest.raises(TypeError, match="cost_key"):
        PreviousRewardCost(Scripted(), cost_key=3)
