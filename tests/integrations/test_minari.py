"""SAFER's offline data to and from Minari datasets (issue 18)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("minari")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Minari asks for author, algorithm, eval env

import safeshield  # noqa: E402, F401  (registers the ids)
from safeshield.integrations.minari import from_minari, to_minari  # noqa: E402
from safeshield.shields.safer.dataset import collect_episodes  # noqa: E402


@pytest.fixture
def minari_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path


def _spider_data():
    env = gym.make("safeshield/DrunkSpider-v0")
    policy = lambda obs, rng: rng.uniform(-1, 1, 2).astype(np.float32)  # noqa: E731
    return collect_episodes(env, policy, episodes=6, seed=0)


def test_offline_data_round_trips_through_a_minari_dataset(minari_home):
    data = _spider_data()
    assert data.violations.any()  # the random walk falls into a pit: both labels present
    to_minari(data, "safeshield/spider-random-v0", env="safeshield/DrunkSpider-v0")
    again = from_minari("safeshield/spider-random-v0")
    for name in ("observations", "actions", "violations", "successes", "episode_ids"):
        np.testing.assert_array_equal(getattr(again, name), getattr(data, name), err_msg=name)
    assert again.metadata["source"] == "minari:safeshield/spider-random-v0"


def test_labels_come_from_terminations_or_a_callable_and_missing_keys_are_named(minari_home):
    data = _spider_data()
    to_minari(data, "safeshield/spider-labels-v0", env="safeshield/DrunkSpider-v0")
    by_callable = from_minari(
        "safeshield/spider-labels-v0", violation=lambda ep: ep.infos["violation"][1:], success=None
    )
    np.testing.assert_array_equal(by_callable.violations, data.violations)
    assert by_callable.successes.all()
    with pytest.raises(ValueError, match=r"needs infos\['cost'\]"):
        from_minari("safeshield/spider-labels-v0", violation="cost")
    with pytest.raises(ValueError, match="Pass success=None"):
        from_minari("safeshield/spider-labels-v0", success="info:goal")
