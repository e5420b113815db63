"""SAFER's data errors say what to do next (issue 18's friction list)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import safeshield  # noqa: F401  (registers the ids)
from safeshield.shields.safer import SAFER, SAFERConfig
from safeshield.shields.safer.dataset import OfflineDataset, collect_episodes


def _random(obs, rng):
    return rng.uniform(-1, 1, 2).astype(np.float32)


def test_collect_episodes_refuses_to_label_steps_safe_without_the_failure_key():
    with pytest.raises(KeyError, match=r"reports no info\['crashed'\].*pass failure_key="):
        collect_episodes(gym.make("safeshield/DrunkSpider-v0"), _random, episodes=1, failure_key="crashed")


def test_collect_episodes_warns_when_no_episode_can_count_as_successful():
    with pytest.warns(UserWarning, match=r"no step reported info\['reached'\].*successful_only=False"):
        collect_episodes(gym.make("safeshield/DrunkSpider-v0"), _random, episodes=1, success_key="reached")


def test_no_successful_episode_suggests_successful_only_false():
    env = gym.make("safeshield/DrunkSpider-v0")
    n = 40
    data = OfflineDataset(
        np.zeros((n, *env.observation_space.shape), np.float32),
        np.zeros((n, 2), np.float32),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n, np.int64),
    )
    prior = SAFER(
        env.observation_space,
        env.action_space,
        SAFERConfig(flow_hidden=(8,), window=2, embed_dim=8, frame_hidden=(8,), transformer_heads=2),
        seed=0,
    )
    with pytest.raises(
        ValueError,
        match=r"0 in successful episodes \(no episode is marked successful: "
        r"SAFERConfig\(successful_only=False\)",
    ):
        prior.fit(data, steps=1, progress=False)
    relaxed = SAFER(
        env.observation_space,
        env.action_space,
        SAFERConfig(
            flow_hidden=(8,),
            window=2,
            embed_dim=8,
            frame_hidden=(8,),
            transformer_heads=2,
            successful_only=False,
            batch_size=8,
        ),
        seed=0,
    )
    relaxed.fit(data, steps=1, progress=False)
