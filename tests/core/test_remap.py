"""The remap shield front end : space, executed actions, window, determinism, check_env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield
from safeshield.shields.safer import SAFER, SAFERConfig
from safeshield.wrappers.remap import RemapWrapper

SMALL = dict(flow_hidden=(16,), embed_dim=8, frame_hidden=(8,), transformer_heads=2, window=4, context_dim=2)
SPIDER = "safeshield/DrunkSpider-v0"


def _shield(env_id: str = SPIDER, seed: int = 0, **kwargs) -> RemapWrapper:
    return safeshield.wrap(gym.make(env_id), "safer", seed=seed, train=False, **{**SMALL, **kwargs})


def test_action_space_is_the_unit_box_and_executed_actions_fit_the_env():
    env = _shield("Pendulum-v1", indicator=lambda *step: 0.0, eta_init=50.0)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    env.reset(seed=0)
    for u in (-1.0, 0.0, 1.0, 0.3):
        _, _, _, _, info = env.step(np.array([u], np.float32))
        assert env.unwrapped.action_space.contains(info["shield"]["env_action"])
        assert info["shield"]["latent"][0] == pytest.approx(50.0 * u)
        # what the agent stores: its own action, in its own space (SAFER Alg. 1 stores z)
        assert env.action_space.contains(info["shield"]["executed_action"])
        assert info["shield"]["executed_action"][0] == pytest.approx(u)


@settings(max_examples=30, deadline=None)
@given(u=st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2))
def test_out_of_box_proposals_are_clipped_and_flagged(u):
    """A z outside the box is clipped onto it, and that is the intervention the shield reports."""
    env = _shield()
    env.reset(seed=1)
    _, _, _, _, info = env.step(np.asarray(u, np.float32))
    report = info["shield"]
    outside = bool(np.any(np.abs(np.asarray(u, np.float32)) > 1.0))
    assert report["intervened"] == outside
    assert np.all(np.abs(report["latent"]) <= env.safety_model.eta * (1 + 1e-6))
    assert 0.0 <= report["risk"] <= 1.0 + 1e-6
    assert env.unwrapped.action_space.contains(report["env_action"])
    np.testing.assert_array_equal(report["executed_action"], np.clip(np.asarray(u, np.float32), -1, 1))
    assert report["fell_back"] is False and report["threshold"] == 1.0


def test_window_is_zero_padded_at_reset_and_fifo():
    """Lambda holds the last w observations (current one last), zeros before the episode's start."""
    env = _shield()
    obs0, _ = env.reset(seed=0)
    window, valid = env.window
    assert window.shape == (4, 2) and valid.tolist() == [False, False, False, True]
    np.testing.assert_array_equal(window[:3], 0.0)
    np.testing.assert_allclose(window[-1], obs0)
    seen = [obs0]
    for _ in range(5):
        obs, *_ = env.step(np.zeros(2, np.float32))
        seen.append(obs)
    window, valid = env.window
    assert valid.all()
    np.testing.assert_allclose(window, np.stack(seen[-4:]))
    env.reset(seed=3)
    assert env.window[1].tolist() == [False, False, False, True]


def test_frozen_prior_is_deterministic_given_the_seed():
    runs = []
    for _ in range(2):
        env = _shield(seed=7)
        env.reset(seed=11)
        rng = np.random.default_rng(0)
        runs.append([env.step(rng.uniform(-1, 1, 2).astype(np.float32))[4]["shield"]["env_action"] for _ in range(10)])
    np.testing.assert_array_equal(np.stack(runs[0]), np.stack(runs[1]))


def test_check_env_passes_on_a_made_remap_shield():
    """Contract: check_env passes (it re-makes the env from its spec: method name + config)."""
    check_env(safeshield.make(SPIDER, shield="safer", train=False, **SMALL), skip_render_check=True)


def test_bad_actions_and_arguments_are_named():
    env = _shield()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(2, np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="2 entries"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0.0], np.float32))
    with pytest.raises(ValueError, match="indicator"):
        safeshield.wrap(gym.make("Pendulum-v1"), "safer", train=True)
    with pytest.raises(TypeError, match="remap model"):
        RemapWrapper(gym.make(SPIDER), object())
    with pytest.raises(TypeError, match="unknown option"):
        safeshield.wrap(gym.make(SPIDER), "safer", not_an_option=1)


def test_online_fine_tuning_learns_and_recalibrates_eta():
    """Optional online mode: Alg. 2 steps from the indicator and eta recomputed on the steps seen."""
    env = safeshield.wrap(
        gym.make(SPIDER),
        "safer",
        train=True,
        seed=0,
        **SMALL,
        learning_starts=20,
        batch_size=8,
        recalibrate_every=30,
        eta_init=2.0,
    )
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        if terminated or truncated:
            env.reset()
    assert env.safety_model.updates == 60 - 20 + 1
    assert env.safety_model.eta != 2.0


def test_save_and_load_round_trip_through_the_public_api(tmp_path):
    env = _shield(seed=3, eta_init=1.7)
    env.safety_model.save(tmp_path / "prior")
    loaded = safeshield.load(tmp_path / "prior", gym.make(SPIDER))
    assert isinstance(loaded, RemapWrapper) and loaded.safety_model.eta == pytest.approx(1.7)
    for shield in (env, loaded):
        shield.reset(seed=5)
    u = np.array([0.4, -0.2], np.float32)
    np.testing.assert_array_equal(env.step(u)[4]["shield"]["env_action"], loaded.step(u)[4]["shield"]["env_action"])
    assert isinstance(safeshield.load(tmp_path / "prior"), SAFER)


def test_loading_into_other_spaces_is_refused(tmp_path):
    SAFER(gym.make(SPIDER).observation_space, gym.make(SPIDER).action_space, SAFERConfig(**SMALL)).save(tmp_path / "p")
    with pytest.raises(safeshield.CheckpointError, match="observation_space"):
        safeshield.load(tmp_path / "p", gym.make("Pendulum-v1"))
