"""dm-control suite tasks shielded in one line through Shimmy, with a callable indicator (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("shimmy")
pytest.importorskip("dm_control")

import gymnasium as gym  # noqa: E402

import safeshield  # noqa: E402
from safeshield.integrations import dm_control  # noqa: E402


def test_walker_is_shielded_in_one_line_and_its_falls_are_failures():
    env = dm_control.make("walker-walk", "sqrl", seed=0)
    assert isinstance(env.observation_space, gym.spaces.Dict)  # the shield flattens it; the indicator sees the dict
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    failures, heights = [], []
    for _ in range(100):  # random actions: the walker collapses within a few dozen steps
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        failures.append(info["shield"]["failure"])
        heights.append(float(obs["height"]))
        assert env.action_space.contains(info["shield"]["executed_action"])
    np.testing.assert_array_equal(failures, np.asarray(heights) < dm_control.WALKER_FALL_HEIGHT)
    assert failures[0] == 0.0 and max(failures) == 1.0
    env.close()


def test_obs_below_names_itself_and_reads_the_key():
    below = dm_control.obs_below("height", 1.0)
    assert below({"height": np.array(0.5)}, 0.0, False, False, {}) == 1.0
    assert below({"height": np.array(1.5)}, 0.0, False, False, {}) == 0.0
    assert below.__name__ == "height_below_1"


def test_train_cli_takes_the_walker_and_its_importable_indicator(tmp_path):
    from safeshield.experiments.cli import main

    assert (
        main(
            [
                "train",
                "--env",
                "dm_control/walker-walk-v0",
                "--indicator",
                "safeshield.integrations.dm_control:walker_fell",
                "--agent",
                "sac",
                "--steps",
                "40",
                "--seeds",
                "1",
                "--workers",
                "0",
                "--eval-episodes",
                "0",
                "--out",
                str(tmp_path / "w"),
                "--no-progress",
                "--set",
                "agent.hidden=[8]",
                "--set",
                "shield.hidden=[8]",
            ]
        )
        == 0
    )
    saved = (tmp_path / "w" / "seed0" / "shield" / "config.json").read_text()
    assert '"indicator": "callable:safeshield.integrations.dm_control.walker_fell"' in saved  # by name only
    env = gym.make("dm_control/walker-walk-v0")
    loaded = safeshield.load(tmp_path / "w" / "seed0" / "shield", env, indicator=dm_control.walker_fell)
    obs, _ = loaded.reset(seed=0)
    assert loaded.step(loaded.action_space.sample())[4]["shield"]["failure"] == 0.0
