"""Shadow mode (``enforce=False``): the shield scores, learns and reports, but never changes an action.

A shield built to refuse every proposal (``eps_safe=1e-6``, the absolute rule, no warm-up) makes the
difference visible: enforcing, it intervenes on most steps; in shadow, the same shield lets every
proposal run, still learns from the steps and reports what it would have refused.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield

torch.set_num_threads(1)

REFUSES_ALL = {"eps_safe": 1e-6, "regret": None, "warmup_failures": 0, "warmup_updates": 0, "guard": False}


def refusing_shield(enforce: bool, env_id: str = "Pendulum-v1", **options):
    options = {**REFUSES_ALL, **options}
    return safeshield.wrap(gym.make(env_id), "sqrl", indicator=lambda *a: 0.0, seed=0, enforce=enforce, **options)


def run(env, steps: int, seed: int = 0) -> list[dict]:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    infos = []
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        infos.append(info["shield"])
        if terminated or truncated:
            env.reset()
    return infos


def test_enforcing_shield_intervenes_and_the_same_shield_in_shadow_does_not():
    enforcing = run(refusing_shield(True), 60)
    shadow_env = refusing_shield(False)
    shadow = run(shadow_env, 60)
    assert sum(info["intervened"] for info in enforcing) > 30
    assert not any(info["intervened"] or info["fell_back"] for info in shadow)
    for info in shadow:
        np.testing.assert_array_equal(info["executed_action"], info["proposed_action"])
        assert info["risk"] == info["proposal_risk"] >= info["threshold"]  # it would have refused each one
    assert shadow_env.total_interventions == 0 and shadow_env.enforce is False


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-2.0, 2.0, allow_nan=False, width=32), min_size=1, max_size=12))
def test_shadow_executes_every_proposal_and_reports_the_models_risk(torques):
    env = refusing_shield(False)
    env.reset(seed=0)
    model = env.safety_model
    for torque in torques:
        obs = env.stepper.obs_flat[0].copy()
        action = np.array([torque], dtype=np.float32)
        _, _, _, _, info = env.step(action)
        report = info["shield"]
        np.testing.assert_array_equal(report["executed_action"], action)
        expected = model.risk(torch.from_numpy(obs[None]), torch.from_numpy(action[None])).item()
        assert report["proposal_risk"] == pytest.approx(expected, abs=1e-5)


def test_shadow_shield_learns_and_its_report_counts_would_be_rejections():
    env = refusing_shield(False, learning_starts=16, batch_size=16)
    run(env, 120)
    assert env.safety_model.updates > 0 and len(env.safety_model.buffer) == 120
    report = env.quality_report()
    assert report["intervention_rate"] == 0.0 and report["rejection_rate"] == 1.0
    assert report["first_rejection"] == 0


def test_threshold_does_not_adapt_in_shadow_and_does_once_enforced():
    env = safeshield.wrap(
        gym.make("Pendulum-v1"), "sqrl", indicator=lambda *a: 1.0, seed=0, enforce=False, budget=1.0, warmup_updates=0
    )
    run(env, 40)
    model = env.safety_model
    assert model.warmed_up and model.threshold == pytest.approx(model.config.eps_safe)
    env.enforce = True
    run(env, 40)
    assert model.threshold < model.config.eps_safe  # a failure on every step: far over a budget of 1 per 1000


def test_enforce_can_be_switched_through_outer_wrappers():
    env = gym.wrappers.RecordEpisodeStatistics(refusing_shield(False))
    assert not any(info["intervened"] for info in run(env, 20))
    env.set_wrapper_attr("enforce", True)
    assert env.get_wrapper_attr("enforce") is True
    assert sum(info["intervened"] for info in run(env, 20)) > 10


def test_discrete_and_vector_shadow_shields_never_intervene():
    discrete = refusing_shield(False, "CartPole-v1")
    assert not any(info["intervened"] for info in run(discrete, 50))
    assert discrete.total_interventions == 0
    vector = safeshield.wrap_vector(
        gym.make_vec("Pendulum-v1", num_envs=3), "sqrl", indicator=lambda *a: 0.0, seed=0, enforce=False, **REFUSES_ALL
    )
    vector.reset(seed=0)
    for _ in range(20):
        actions = vector.action_space.sample()
        _, _, _, _, infos = vector.step(actions)
        np.testing.assert_array_equal(infos["shield"]["executed_action"], actions)
    assert vector.total_interventions == 0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_check_env_passes_in_shadow_and_the_spec_keeps_the_mode():
    env = safeshield.make("safeshield/DrunkSpider-v0", enforce=False)
    check_env(env, skip_render_check=True)
    assert gym.make(env.spec).get_wrapper_attr("enforce") is False


def test_a_saved_shield_loads_in_shadow_mode(tmp_path):
    env = refusing_shield(True)
    env.safety_model.save(tmp_path / "shield")
    shadow = safeshield.load(tmp_path / "shield", gym.make("Pendulum-v1"), indicator=lambda *a: 0.0, enforce=False)
    assert not any(info["intervened"] for info in run(shadow, 20))
    enforcing = safeshield.load(tmp_path / "shield", gym.make("Pendulum-v1"), indicator=lambda *a: 0.0)
    assert sum(info["intervened"] for info in run(enforcing, 20)) > 10


@pytest.mark.parametrize("bad", ["no", 0, None])
def test_enforce_must_be_a_bool(bad):
    with pytest.raises(TypeError, match="enforce must be a bool"):
        refusing_shield(bad)
    env = refusing_shield(False)
    with pytest.raises(TypeError, match="enforce must be a bool"):
        env.enforce = bad


def test_a_remap_shield_refuses_shadow_mode():
    with pytest.raises(ValueError, match="enforce=False is for reject/resample methods"):
        safeshield.wrap(gym.make("Pendulum-v1"), "safer", indicator=lambda *a: 0.0, enforce=False)
