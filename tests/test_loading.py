"""Loading a saved shield the way a new user tries it (issue 18's friction list).

Each test is one step a user took that failed or surprised them: a checkpoint into a vector env,
a vector wrapper around a loaded model, a frozen model that a wrapper default unfroze, a function
indicator that a checkpoint cannot hold.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import safeshield

SPIDER = "safeshield/DrunkSpider-v0"


def fell_in_pit(obs, reward, terminated, truncated, info) -> float:
    return float(info["failure"])


@pytest.fixture
def saved(tmp_path):
    env = safeshield.wrap(gym.make(SPIDER), "sqrl", seed=0, hidden=(8,))
    env.get_wrapper_attr("safety_model").save(tmp_path / "shield")
    return tmp_path / "shield"


def test_a_checkpoint_loads_into_a_vector_env(saved):
    envs = gym.make_vec(SPIDER, num_envs=3, vectorization_mode="sync")
    shielded = safeshield.load(saved, envs)
    assert isinstance(shielded, safeshield.VectorShieldWrapper)
    assert shielded.safety_model.frozen  # load: frozen unless train=True
    shielded.reset(seed=0)
    info = shielded.step(shielded.action_space.sample())[4]
    assert info["shield"]["intervened"].shape == (3,)


def test_a_vector_wrapper_takes_the_indicator_the_checkpoint_names(saved):
    model = safeshield.load(saved)
    envs = gym.make_vec(SPIDER, num_envs=2, vectorization_mode="sync")  # a vector env declares no indicator
    shielded = safeshield.VectorShieldWrapper(envs, model)
    assert shielded.safety_model.indicator == "info:failure"


def test_a_wrapper_default_never_unfreezes_a_frozen_model(saved):
    frozen = safeshield.load(saved)
    assert frozen.frozen
    safeshield.ShieldWrapper(gym.make(SPIDER), frozen)
    assert frozen.frozen
    safeshield.VectorShieldWrapper(gym.make_vec(SPIDER, num_envs=2, vectorization_mode="sync"), frozen)
    assert frozen.frozen
    safeshield.ShieldWrapper(gym.make(SPIDER), frozen, train=True)  # asked for: it learns
    assert not frozen.frozen
    fresh = safeshield.ShieldWrapper(gym.make(SPIDER), "sqrl")  # a fresh model learns by default
    assert not fresh.safety_model.frozen


def test_a_function_indicator_is_named_and_must_be_passed_again(tmp_path):
    env = safeshield.wrap(gym.make(SPIDER), "sqrl", indicator=fell_in_pit, seed=0, hidden=(8,))
    env.get_wrapper_attr("safety_model").save(tmp_path / "shield")
    # the env declares its own indicator, but the shield learned another notion of failure: no silent swap
    with pytest.raises(ValueError, match=r"function indicator .*fell_in_pit, .*pass indicator=fell_in_pit again"):
        safeshield.load(tmp_path / "shield", gym.make(SPIDER))
    again = safeshield.load(tmp_path / "shield", gym.make(SPIDER), indicator=fell_in_pit)
    again.reset(seed=0)
    assert again.step(again.action_space.sample())[4]["shield"]["failure"] in (0.0, 1.0)


def test_import_safeshield_shows_only_its_public_names():
    public = {name for name in dir(safeshield) if not name.startswith("_")}
    assert public <= set(safeshield.__all__) | {
        "agents",
        "core",
        "environments",
        "experiments",
        "integrations",
        "shields",
        "wrappers",
    }
    for leaked in ("Any", "Callable", "gym", "os", "annotations"):
        assert leaked not in public
    assert set(safeshield.__all__) <= set(dir(safeshield))


def test_a_checkpoint_for_other_action_bounds_suggests_rescale_action(saved):
    env = gym.wrappers.RescaleAction(gym.make(SPIDER), -2.0, 2.0)
    with pytest.raises(
        safeshield.CheckpointError,
        match=r"only the bounds differ: wrap the env in "
        r"gymnasium.wrappers.RescaleAction\(env, -1, 1\)",
    ):
        safeshield.load(saved, env)


def test_a_checkpoint_for_another_action_dtype_says_only_the_dtype_differs(saved):
    import numpy as np

    env = gym.make(SPIDER)
    space = env.action_space
    env.action_space = gym.spaces.Box(space.low.astype(np.float64), space.high.astype(np.float64), dtype=np.float64)
    with pytest.raises(safeshield.CheckpointError, match="only the dtype differs: give the env a float32 action_space"):
        safeshield.load(saved, env)
