"""Tests for ``safeshield.wrappers.ShieldWrapper``: Gymnasium compatibility, reporting, bad input, indicators."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import safeshield
from safeshield import ShieldWrapper
from safeshield.core.decision import PolicySampler

torch.set_num_threads(1)

DRUNK_SPIDER = "safeshield/DrunkSpider-v0"
SHIELD_KEYS = {
    "proposed_action": np.ndarray,
    "executed_action": np.ndarray,
    "intervened": bool,
    "risk": float,
    "proposal_risk": float,
    "threshold": float,
    "regret": float,
    "fell_back": bool,
    "n_candidates": int,
    "failure": float,
}


def pendulum_shield(**kwargs):
    return safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=lambda *a: 0.0, **kwargs)


def dive(env, first=(1.0, 0.0), then=(0.0, 1.0), max_steps=30):
    """Walk onto the bridge, then step sideways into the upper pit; return the infos."""
    infos = []
    env.reset(seed=0)
    for t in range(max_steps):
        action = np.array(first if t < 4 else then, np.float32)
        _, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            break
    return infos


# ---------------------------------------------------------------- Gymnasium compatibility


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_check_env_passes_on_a_made_shield():
    """Contract: check_env passes on every shielded env (it re-makes the env from its spec)."""
    check_env(safeshield.make(DRUNK_SPIDER), skip_render_check=True)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_check_env_passes_on_a_wrapped_pendulum():
    check_env(pendulum_shield(), skip_render_check=True)


def test_spec_records_the_shield_so_gym_make_can_rebuild_it():
    env = safeshield.make(DRUNK_SPIDER, eps_safe=0.05)
    remade = gym.make(env.spec)
    assert isinstance(remade, ShieldWrapper)
    assert remade.safety_model.config == env.safety_model.config
    assert remade.safety_model.config.eps_safe == 0.05


def test_info_shield_reports_keys_and_types():
    env = safeshield.make(DRUNK_SPIDER)
    env.reset(seed=0)
    proposal = np.array([0.5, -0.25], np.float32)
    _, _, _, _, info = env.step(proposal)
    report = info["shield"]
    assert set(report) == set(SHIELD_KEYS)
    for key, kind in SHIELD_KEYS.items():
        assert type(report[key]) is kind or isinstance(report[key], kind), (key, type(report[key]))
    for key in ("proposed_action", "executed_action"):
        assert report[key].shape == env.action_space.shape and report[key].dtype == env.action_space.dtype
    assert np.array_equal(report["proposed_action"], proposal)
    assert report["threshold"] == env.safety_model.threshold  # +inf until the warm-up is over
    assert 0.0 <= report["risk"] <= 1.0
    # The env's own info survives next to the shield's report.
    assert {"failure", "cost", "is_success", "position"} <= set(info)


def test_proposed_action_is_a_copy_not_the_callers_array():
    env = safeshield.make(DRUNK_SPIDER)
    env.reset(seed=0)
    proposal = np.array([0.5, 0.0], np.float32)
    _, _, _, _, info = env.step(proposal)
    proposal[:] = 9.0
    assert np.array_equal(info["shield"]["proposed_action"], [0.5, 0.0])


def test_out_of_bounds_proposal_is_clipped_and_reported_as_proposed():
    env = safeshield.make(DRUNK_SPIDER)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([3.0, -7.0], np.float32))
    assert np.array_equal(info["shield"]["proposed_action"], [3.0, -7.0])
    assert np.array_equal(info["shield"]["executed_action"], [1.0, -1.0])
    assert env.action_space.contains(info["shield"]["executed_action"])


def test_counters_count_failures_and_interventions():
    """total_failures counts indicator failures; total_interventions counts intervened steps."""
    # Untrained critic: risk ≈ 0.01 < 0.1 everywhere, so the dive runs and fails.
    env = safeshield.make(DRUNK_SPIDER, train=False, seed=0)
    infos = dive(env)
    assert infos[-1]["shield"]["failure"] == 1.0 and infos[-1]["failure"]
    assert env.total_failures == 1 and env.episode_failures == 1
    assert env.total_interventions == 0
    infos += dive(env)
    assert env.total_failures == 2
    # eps_safe below every risk of the untrained critic: every proposal is rejected.
    strict = safeshield.make(DRUNK_SPIDER, train=False, seed=0, eps_safe=0.001, regret=None)  # absolute rule
    strict_infos = dive(strict, max_steps=10)
    intervened = sum(i["shield"]["intervened"] for i in strict_infos)
    assert intervened == len(strict_infos) == strict.total_interventions
    assert strict.total_fallbacks == len(strict_infos)
    assert all(i["shield"]["fell_back"] for i in strict_infos)
    assert strict.total_failures == sum(i["shield"]["failure"] > 0.5 for i in strict_infos)


def test_reset_clears_episode_failures_only():
    env = safeshield.make(DRUNK_SPIDER, train=False, seed=0)
    dive(env)
    assert env.episode_failures == 1
    env.reset(seed=1)
    assert env.episode_failures == 0 and env.total_failures == 1


def test_vector_env_with_shield_wrappers_steps():
    venv = gym.make_vec(
        DRUNK_SPIDER, num_envs=2, vectorization_mode="sync", wrappers=[lambda e: safeshield.wrap(e, "sqrl")]
    )
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 2)
    for _ in range(35):  # past one 30-step episode: autoreset works through the shield
        obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
    assert obs.shape == (2, 2) and reward.shape == (2,)
    assert info["shield"]["executed_action"].shape == (2, 2)
    assert info["shield"]["intervened"].dtype == bool
    venv.close()


def test_record_episode_statistics_around_a_shield():
    env = gym.wrappers.RecordEpisodeStatistics(safeshield.make(DRUNK_SPIDER, train=False, seed=0))
    env.reset(seed=0)
    total, length = 0.0, 0
    for _ in range(40):
        _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        total += reward
        length += 1
        if terminated or truncated:
            break
    assert "episode" in info
    assert info["episode"]["l"] == length
    assert info["episode"]["r"] == pytest.approx(total)
    assert "shield" in info


def test_gym_make_with_additional_wrapper_spec_round_trip():
    """A shielded env's spec lists the ShieldWrapper, and gym.make(spec) re-creates it."""
    env = safeshield.make(DRUNK_SPIDER, seed=3)
    names = [w.name for w in env.spec.additional_wrappers]
    assert "ShieldWrapper" in names
    remade = gym.make(env.spec)
    remade.reset(seed=0)
    _, _, _, _, info = remade.step(remade.action_space.sample())
    assert "shield" in info


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_raises_value_error_naming_action(bad):
    env = safeshield.make(DRUNK_SPIDER)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([0.0, bad], np.float32))


@pytest.mark.parametrize("bad", [np.zeros(3, np.float32), np.zeros((2, 1), np.float32), np.float32(0.5)])
def test_wrong_shape_action_raises_value_error_naming_the_shape(bad):
    env = safeshield.make(DRUNK_SPIDER)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(2,\)"):
        env.step(bad)


def test_non_numeric_action_raises_value_error_naming_action():
    env = safeshield.make(DRUNK_SPIDER)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step("left")


def test_bad_action_does_not_step_the_env_or_store_anything():
    env = safeshield.make(DRUNK_SPIDER)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.array([np.nan, 0.0], np.float32))
    assert env.safety_model.buffer.total_added == 0
    assert np.array_equal(env.unwrapped.position.astype(np.float32), obs[:2])


def test_unknown_indicator_string_raises_value_error_naming_indicator():
    with pytest.raises(ValueError, match="indicator"):
        safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator="explodes")


@pytest.mark.parametrize("value", [2.0, -0.5, float("nan"), "yes"])
def test_indicator_returning_a_value_outside_0_1_raises_at_step(value):
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=lambda *a: value)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="indicator"):
        env.step(env.action_space.sample())


def test_unknown_method_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="nosuchshield"):
        safeshield.wrap(gym.make("Pendulum-v1"), "nosuchshield", indicator="terminated")


def test_unknown_config_option_raises_type_error_naming_it():
    with pytest.raises(TypeError, match="eps_unsafe"):
        safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator="terminated", eps_unsafe=0.2)
    with pytest.raises(TypeError, match="eps_unsafe"):
        safeshield.make(DRUNK_SPIDER, eps_unsafe=0.2)


def test_box_candidates_come_from_the_attached_policy_whatever_the_selection():
    """``selection`` says which candidate runs, not where candidates come from: with an agent's
    sampler attached, a Box shield draws from it under every rule, "safest" included."""
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=lambda *step: 0.0, seed=0)
    env.attach_policy(lambda obs, n, generator: torch.zeros(obs.shape[0], n, 1))
    for selection in ("safest", "closest", "uniform"):
        env.safety_model.reconfigure(selection=selection)
        assert isinstance(env.stepper.sampler, PolicySampler), selection


def test_a_mistyped_name_gets_the_closest_valid_one_suggested():
    with pytest.raises(TypeError, match=r"'horizn' \(did you mean 'horizon'\?\)"):
        safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator="terminated", horizn=5)
    with pytest.raises(ValueError, match=r"'sqlr' \(did you mean 'sqrl'\?\)"):
        safeshield.wrap(gym.make("Pendulum-v1"), "sqlr", indicator="terminated")
    with pytest.raises(ValueError, match=r"'termianted' \(did you mean 'terminated'\?\)"):
        safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator="termianted")
    with pytest.raises(ValueError, match=r"got 'safes' \(did you mean 'safest'\?\)"):
        safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator="terminated", selection="safes")


def test_a_name_like_no_valid_one_gets_no_suggestion():
    with pytest.raises(ValueError) as error:
        safeshield.wrap(gym.make("Pendulum-v1"), "nosuchshield", indicator="terminated")
    assert "did you mean" not in str(error.value)
    with pytest.raises(TypeError) as error:
        safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator="terminated", zzz=1)
    assert "did you mean" not in str(error.value)


def test_config_and_options_together_raise_type_error():
    with pytest.raises(TypeError, match="config"):
        safeshield.wrap(
            gym.make("Pendulum-v1"), "sqrl", indicator="terminated", config=safeshield.SQRLConfig(), eps_safe=0.2
        )


def test_double_shielding_raises():
    env = safeshield.make(DRUNK_SPIDER)
    with pytest.raises(ValueError, match="already shielded"):
        safeshield.wrap(env, "sqrl")
    with pytest.raises(ValueError, match="already shielded"):
        safeshield.wrap(gym.wrappers.RecordEpisodeStatistics(env), "sqrl")


def test_unsupported_action_space_raises_type_error_naming_what_works():
    env = gym.make("CartPole-v1")
    env.action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(2)))
    with pytest.raises(TypeError, match="Box, Discrete, MultiDiscrete or MultiBinary"):
        safeshield.wrap(env, "sqrl", indicator="terminated")


def test_missing_indicator_on_an_env_that_does_not_declare_one_raises():
    with pytest.raises(ValueError, match="indicator"):
        safeshield.wrap(gym.make("Pendulum-v1"), "sqrl")


def test_declared_indicator_is_used_when_none_is_given():
    env = safeshield.make(DRUNK_SPIDER)
    assert env.safety_model.indicator == "info:failure"


def test_step_before_reset_raises_reset_needed():
    env = safeshield.make(DRUNK_SPIDER)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(2, np.float32))


def test_non_env_raises_type_error():
    with pytest.raises(TypeError, match="gymnasium.Env"):
        ShieldWrapper("Pendulum-v1", "sqrl", indicator="terminated")


# ---------------------------------------------------------------- indicators


def test_cost_indicator_reads_info_cost():
    env = safeshield.make(DRUNK_SPIDER, indicator="cost", train=False, seed=0)
    infos = dive(env)
    assert [i["shield"]["failure"] for i in infos] == [i["cost"] for i in infos]
    assert infos[-1]["shield"]["failure"] == 1.0


def test_cost_indicator_on_an_env_without_cost_raises_naming_cost():
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator="cost")
    env.reset(seed=0)
    with pytest.raises(KeyError, match="cost"):
        env.step(env.action_space.sample())


def test_terminated_indicator_ignores_time_limit_truncation():
    """A time-limit truncation is not a failure (Gymnasium's terminated/truncated split)."""
    env = safeshield.wrap(gym.make("Pendulum-v1", max_episode_steps=5), "sqrl", indicator="terminated", train=False)
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["shield"]["failure"] == 0.0
    assert truncated and not terminated
    assert env.total_failures == 0


def test_terminated_indicator_counts_termination():
    env = safeshield.make(DRUNK_SPIDER, indicator="terminated", train=False, seed=0)
    infos = dive(env)
    assert infos[-1]["shield"]["failure"] == 1.0


def test_info_key_indicator():
    env = safeshield.make(DRUNK_SPIDER, indicator="info:failure", train=False, seed=0)
    infos = dive(env)
    assert [i["shield"]["failure"] for i in infos] == [float(i["failure"]) for i in infos]
    assert infos[-1]["shield"]["failure"] == 1.0
    missing = safeshield.make(DRUNK_SPIDER, indicator="info:nope")
    missing.reset(seed=0)
    with pytest.raises(KeyError, match="nope"):
        missing.step(np.zeros(2, np.float32))


def test_callable_indicator_receives_the_step_tuple():
    seen = []

    def indicator(obs, reward, terminated, truncated, info):
        seen.append((obs.copy(), reward, terminated, truncated, dict(info)))
        return 0.25

    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=indicator)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert info["shield"]["failure"] == 0.25
    assert len(seen) == 1
    assert np.array_equal(seen[0][0], obs) and seen[0][1] == reward
    assert seen[0][2] == terminated and seen[0][3] == truncated
    assert "shield" not in seen[0][4], "the indicator sees the env's info, before the shield's report"
    assert env.safety_model.buffer.failure[0] == np.float32(0.25)


def test_training_shield_learns_on_schedule_and_frozen_one_does_not():
    env = safeshield.make(DRUNK_SPIDER, seed=0, learning_starts=10, batch_size=8, hidden=(8,))
    env.reset(seed=0)
    for _ in range(15):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    assert env.safety_model.updates == 6  # steps 10..15
    frozen = safeshield.make(DRUNK_SPIDER, seed=0, train=False, learning_starts=1)
    frozen.reset(seed=0)
    before = {k: v.clone() for k, v in frozen.safety_model.state_dict().items()}
    for _ in range(5):
        frozen.step(frozen.action_space.sample())
    assert frozen.safety_model.updates == 0 and frozen.safety_model.buffer.total_added == 0
    assert all(torch.equal(before[k], v) for k, v in frozen.safety_model.state_dict().items())


def test_doctest_example_runs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = pendulum_shield()
        env.reset(seed=0)
        _, _, _, _, info = env.step(env.action_space.sample())
    assert sorted(info["shield"])[:3] == ["executed_action", "failure", "fell_back"]


def test_a_default_shield_may_reject_from_the_step_that_stores_its_fifth_failure():
    """The warm-up ends with its evidence: a random CartPole fails about every 20 steps, so the default shield
    (5 failures, 100 updates) is ready around step 100, not after learning_starts (256) + 100 steps."""
    env = safeshield.wrap(gym.make("CartPole-v1"), "sqrl", indicator="terminated", seed=0)
    env.reset(seed=0)
    env.action_space.seed(0)
    failures, thresholds = [], []
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        failures.append(bool(terminated))
        thresholds.append(info["shield"]["threshold"])
        if terminated or truncated:
            env.reset()
    fifth = int(np.flatnonzero(failures)[4])  # index of the step that stored the fifth failure
    assert fifth < 150
    assert all(math.isinf(t) for t in thresholds[: fifth + 1])  # the threshold a step used was set before it
    assert all(math.isfinite(t) for t in thresholds[fifth + 1 :])
    assert env.safety_model.updates >= 100 and env.safety_model.warmed_up


@pytest.mark.parametrize("enforce", [True, False])
def test_info_reports_the_threshold_and_regret_the_decision_used_not_the_ones_after_learning(enforce):
    """A budget moves the threshold (and regret) after each step; the report holds the values the step compared with."""
    env = safeshield.wrap(
        gym.make("CartPole-v1"), "sqrl", indicator="terminated", seed=0, budget=1.0, enforce=enforce, hidden=(8,)
    )
    env.reset(seed=0)
    env.action_space.seed(0)
    moved = 0
    for _ in range(300):
        before = (np.float32(env.safety_model.threshold), np.float32(env.safety_model.regret or np.nan))
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["shield"]["threshold"] == float(before[0])
        assert info["shield"]["regret"] == float(before[1]) or (
            np.isnan(before[1]) and np.isnan(info["shield"]["regret"])
        )
        moved += np.float32(env.safety_model.threshold) != before[0]
        if terminated or truncated:
            env.reset()
    # it moved after a step (the warm-up's end; in enforce mode the budget after most steps), so the test can tell
    assert moved > (100 if enforce else 0)
