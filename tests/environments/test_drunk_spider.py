"""Tests for ``safeshield.environments.drunk_spider`` and its Gymnasium registration."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield.environments as envs
from safeshield.environments import ENV_IDS, DrunkSpiderEnv, classify_path, register_envs

PRETRAIN, TARGET = "safeshield/DrunkSpider-v0", "safeshield/DrunkSpiderTarget-v0"
SPIDER_IDS = (PRETRAIN, TARGET)
INFO_KEYS = {"failure", "cost", "is_success", "position"}


# ---------------------------------------------------------------- scripted policies


def toward(position: np.ndarray, waypoint, gain: float = 1.0) -> np.ndarray:
    """Proportional control toward ``waypoint``, clipped to the action box."""
    return np.clip(gain * (np.asarray(waypoint, dtype=np.float64) - position), -1.0, 1.0).astype(np.float32)


def bridge_policy():
    """Straight to the goal along the bridge (the y error is cancelled every step)."""

    def act(obs: np.ndarray, goal) -> np.ndarray:
        return toward(obs, goal)

    return act


def around_policy(height: float = 7.0, reach: float = 0.6):
    """Up above the top pit, across, then down to the goal."""
    waypoints = [(1.0, height), (9.0, height), None]  # None: the goal
    index = [0]

    def act(obs: np.ndarray, goal) -> np.ndarray:
        position = obs.astype(np.float64)
        target = waypoints[index[0]]
        if target is not None and np.linalg.norm(position - target) < reach:
            index[0] += 1
            target = waypoints[index[0]]
        return toward(position, goal if target is None else target)

    return act


def rollout(env_id: str, make_policy, seed: int):
    """One episode: (positions (T+1, 2), failure, success, return, steps)."""
    env = gym.make(env_id)
    obs, info = env.reset(seed=seed)
    policy = make_policy()
    positions = [info["position"]]
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs, env.unwrapped.goal))
        positions.append(info["position"])
        total += reward
        steps += 1
        if terminated or truncated:
            env.close()
            return np.array(positions), info["failure"], info["is_success"], total, steps


def rollouts(env_id: str, make_policy, n: int = 200):
    return [rollout(env_id, make_policy, seed) for seed in range(n)]


# ---------------------------------------------------------------- registration / API


@pytest.mark.parametrize("env_id", SPIDER_IDS)
def test_check_env_passes(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


def _changed(a: str, b: str) -> set[str]:
    ka, kb = gym.spec(a).kwargs, gym.spec(b).kwargs
    return {k for k in ka.keys() | kb.keys() if ka.get(k, "default") != kb.get(k, "default")}


def test_registration_is_idempotent_and_variants_differ_in_exactly_the_documented_parameter():
    register_envs()
    register_envs()
    assert ENV_IDS[:2] == SPIDER_IDS and len(set(ENV_IDS)) == len(ENV_IDS)
    assert all(env_id in gym.registry for env_id in ENV_IDS)
    specs = [gym.spec(env_id) for env_id in SPIDER_IDS]
    assert {s.entry_point for s in specs} == {"safeshield.environments.drunk_spider:DrunkSpiderEnv"}
    assert {s.max_episode_steps for s in specs} == {30}
    assert _changed(PRETRAIN, TARGET) == {"noise_std"}
    assert gym.make(PRETRAIN).unwrapped.noise_std == 0.1
    assert gym.make(TARGET).unwrapped.noise_std == 0.2
    assert set(envs.__all__) == {"DrunkSpiderEnv", "classify_path", "register_envs", "ENV_IDS"}


def test_spaces():
    env = DrunkSpiderEnv()
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    np.testing.assert_array_equal(env.observation_space.low, [-2, -8])
    np.testing.assert_array_equal(env.observation_space.high, [12, 8])
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (2,)
    assert np.all(np.abs(obs) <= 0.1)


# ---------------------------------------------------------------- determinism


def _trajectory(seed: int, actions: np.ndarray) -> np.ndarray:
    env = DrunkSpiderEnv(noise_std=0.2)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for action in actions:
        obs, *_ = env.step(action)
        out.append(obs)
    return np.array(out)


def test_determinism():
    actions = np.random.default_rng(123).uniform(-1, 1, (20, 2)).astype(np.float32)
    np.testing.assert_array_equal(_trajectory(7, actions), _trajectory(7, actions))
    assert not np.array_equal(_trajectory(7, actions), _trajectory(8, actions))


# ---------------------------------------------------------------- failure / success / info


def test_reset_info_is_safe():
    env = DrunkSpiderEnv()
    for seed in range(20):
        _, info = env.reset(seed=seed)
        assert set(info) == INFO_KEYS
        assert info["failure"] is False and info["cost"] == 0.0 and info["is_success"] is False
        assert not env.in_pit(info["position"])


def test_failure_when_stepping_into_a_pit():
    env = gym.make(PRETRAIN)
    env.reset(seed=0)
    env.unwrapped.position = (5.0, 0.0)  # middle of the bridge
    obs, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0], np.float32))
    assert set(info) == INFO_KEYS
    assert info["failure"] is True and info["cost"] == 1.0 and info["is_success"] is False
    assert terminated and not truncated
    assert env.unwrapped.in_pit(info["position"])
    np.testing.assert_allclose(obs[:2], info["position"], rtol=1e-6)
    # No pit penalty beyond the shaped reward.
    assert reward > -1.5


def test_no_failure_on_the_bridge_and_cost_iff_failure():
    env = DrunkSpiderEnv(noise_std=0.0)
    env.reset(seed=0)
    env.position = (3.0, 0.0)
    _, reward, terminated, _, info = env.step([1.0, 0.0])
    assert not terminated and info["failure"] is False and info["cost"] == 0.0
    assert reward == pytest.approx(1.0 - 0.1)
    # Closed rectangles: the pit border is lava.
    env.position = (3.0, 0.0)
    _, _, terminated, _, info = env.step([0.0, 0.5])
    assert terminated and info["failure"] and info["cost"] == 1.0


def test_goal_gives_success_termination_and_bonus():
    env = DrunkSpiderEnv(noise_std=0.0)
    env.reset(seed=0)
    env.position = (9.0, 0.0)
    _, reward, terminated, truncated, info = env.step([1.0, 0.0])
    assert terminated and not truncated
    assert info["is_success"] is True and info["failure"] is False and info["cost"] == 0.0
    assert reward == pytest.approx(1.0 - 0.1 + 10.0)


def test_in_pit_vectorised():
    env = DrunkSpiderEnv()
    points = np.array([[5, 0], [5, 0.5], [5, 3], [5, -6], [5, -6.01], [1.99, 3], [8, -3]], dtype=float)
    np.testing.assert_array_equal(env.in_pit(points), [False, True, True, True, False, False, True])
    assert env.in_pit(points.reshape(7, 1, 2)).shape == (7, 1)


def test_time_limit_truncates_at_30():
    env = gym.make(PRETRAIN)
    env.reset(seed=0)
    env.unwrapped.position = (-1.5, 7.5)
    for t in range(30):  # noqa: B007 (t is checked after the loop)
        _, _, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        assert not terminated
    assert truncated and t == 29


# ---------------------------------------------------------------- scripted behaviour


def test_bridge_policy_succeeds_with_noise_01():
    results = rollouts(PRETRAIN, bridge_policy)
    successes = sum(r[2] for r in results)
    assert successes >= 0.95 * len(results)
    for positions, _failure, success, _, _ in results:
        if success:
            assert classify_path(positions) == "bridge"


def test_around_policy_never_fails_and_reaches_goal():
    for env_id in SPIDER_IDS:
        results = rollouts(env_id, around_policy)
        assert not any(r[1] for r in results)
        assert sum(r[2] for r in results) >= 0.95 * len(results)
        for positions, _, _success, _, steps in results:
            assert classify_path(positions, gym.make(env_id)) == "around"
            assert steps <= 30


def test_bridge_is_riskier_with_more_noise():
    fail_01 = sum(r[1] for r in rollouts(PRETRAIN, bridge_policy))
    fail_02 = sum(r[1] for r in rollouts(TARGET, bridge_policy))
    assert fail_02 > fail_01
    assert fail_02 >= 5  # noticeably


def test_bridge_returns_more_than_around():
    bridge = [r[3] for r in rollouts(PRETRAIN, bridge_policy, 50) if r[2]]
    around = [r[3] for r in rollouts(PRETRAIN, around_policy, 50) if r[2]]
    assert np.mean(bridge) > np.mean(around)


def test_classify_path():
    assert classify_path(np.array([[0, 0], [1, 0]])) == "none"
    assert classify_path(np.array([[0, 0], [5, 0.2], [10, 0]])) == "bridge"
    assert classify_path(np.array([[0, 0], [1, 7], [9, 7], [10, 0]])) == "around"
    assert classify_path(np.array([[0, 0], [1, -7], [9, -7], [10, 0]])) == "around"
    assert classify_path(np.array([[0, 0], [5, 3]])) == "failed"
    # A segment that jumps across the span without a sample inside it still counts.
    assert classify_path(np.array([[1, 0], [9, 0]])) == "bridge"
    assert classify_path(np.array([[1, 7], [9, 7]])) == "around"
    # Mapping parameters.
    assert classify_path(np.array([[0, 0], [5, 3]]), {"bridge_half_width": 4.0}) == "bridge"
    with pytest.raises(ValueError, match="positions"):
        classify_path(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="env"):
        classify_path(np.zeros((3, 2)), object())


# ---------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.tuples(st.floats(-1, 1, width=32), st.floats(-1, 1, width=32)), min_size=1, max_size=40),
    noise=st.sampled_from([0.0, 0.1, 0.2, 3.0]),
)
def test_observation_stays_in_space(seed, actions, noise):
    env = DrunkSpiderEnv(noise_std=noise)
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for action in actions:
        obs, reward, terminated, _, info = env.step(np.array(action, dtype=np.float32))
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward)
        assert info["cost"] == (1.0 if info["failure"] else 0.0)
        if terminated:
            obs, _ = env.reset()


# ---------------------------------------------------------------- render


def test_render_rgb_array():
    env = gym.make(PRETRAIN, render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.array([1.0, 0.0], np.float32))
    image = env.render()
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3 and image.shape[:2] == (160, 140)
    assert (image == (220, 40, 30)).all(-1).any()  # lava is drawn


# ---------------------------------------------------------------- argument validation


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"action_scale": 0.0}, "action_scale"),
        ({"goal_radius": -1.0}, "goal_radius"),
        ({"goal": (5.0, 3.0)}, "goal"),
        ({"goal": (50.0, 0.0)}, "goal"),
        ({"goal": (1.0,)}, "goal"),
        ({"start": (5.0, -3.0)}, "start"),
        ({"start_jitter": -0.1}, "start_jitter"),
        ({"pit_x": (8.0, 2.0)}, "pit_x"),
        ({"bridge_half_width": 0.0}, "bridge_half_width"),
        ({"pit_outer_y": 0.2}, "pit_outer_y"),
        ({"arena_low": (12.0, -8.0)}, "arena_low"),
        ({"step_penalty": "a lot"}, "step_penalty"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DrunkSpiderEnv(**kwargs)


def test_bad_action_and_position_raise():
    env = DrunkSpiderEnv()
    with pytest.raises(gym.error.ResetNeeded):
        env.step([0.0, 0.0])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="action"):
        env.step([float("nan"), 0.0])
    with pytest.raises(ValueError, match="position"):
        env.position = (100.0, 0.0)
