"""Point/Car trap navigation (CSC §5.1, App. A.5): Gymnasium correctness, health and failure,
goals, lidar, seeding, and the shielded env."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import safeshield

pytest.importorskip("mujoco")  # the [mujoco] extra

from safeshield.environments.trap_navigation import TrapNavigationEnv  # noqa: E402

POINT, CAR = "safeshield/PointTraps-v0", "safeshield/CarTraps-v0"


def test_check_env_passes_on_the_bare_and_the_shielded_point_env():
    check_env(gym.make(POINT).unwrapped, skip_render_check=True)
    shielded = safeshield.make(POINT, shield="csc", seed=0)
    check_env(shielded, skip_render_check=True)
    assert shielded.spec.max_episode_steps == 500 if shielded.spec else True


def test_health_drains_one_per_step_in_a_trap_and_failure_terminates_at_zero():
    """App. A.5: health starts at 25, -1 per step inside a trap; failure (terminal) at 0."""
    env = TrapNavigationEnv()
    _, info = env.reset(seed=1)
    assert info["health"] == 25 and not info["failure"]
    env.robot.set_pose(env.data, *env.traps[0], 0.0)
    for step in range(1, 26):
        obs, _, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        assert info["in_trap"] and info["health"] == 25 - step
        assert obs[-1] == pytest.approx((25 - step) / 25)
        assert terminated == (step == 25) and info["failure"] == (step == 25) and not truncated
        assert info["cost"] == (1.0 if step == 25 else 0.0)


def test_health_does_not_drain_outside_traps():
    env = TrapNavigationEnv(n_traps=0)
    env.reset(seed=0)
    for _ in range(40):
        _, _, terminated, _, info = env.step(env.action_space.sample())
        assert info["health"] == 25 and not terminated


def test_reaching_the_goal_pays_one_and_draws_a_new_goal():
    env = TrapNavigationEnv(n_traps=0)
    env.reset(seed=2)
    goal = env.goal.copy()
    env.robot.set_pose(env.data, goal[0] + 0.1, goal[1], 0.0)
    env._goal_distance = 0.1  # as if the robot had just arrived
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert info["goals_reached"] == 1 and not terminated
    assert reward == pytest.approx(1.0, abs=0.01)
    assert np.linalg.norm(env.goal - goal) > 0 and np.linalg.norm(env.goal - info["position"]) >= 1.0


def test_driving_toward_the_goal_is_rewarded_by_progress():
    env = TrapNavigationEnv(n_traps=0)
    env.reset(seed=4)
    x, y, _ = env.robot.pose(env.data)
    heading = math.atan2(env.goal[1] - y, env.goal[0] - x)
    env.robot.set_pose(env.data, x, y, heading)
    total = sum(env.step(np.array([1.0, 0.0], np.float32))[1] for _ in range(30))
    assert total > 0.2


def test_goal_lidar_points_at_the_goal():
    """The goal straight ahead lights the first lidar bin (angle 0 = the robot's heading)."""
    env = TrapNavigationEnv(n_traps=0)
    env.reset(seed=5)
    x, y, _ = env.robot.pose(env.data)
    env.robot.set_pose(env.data, x, y, math.atan2(env.goal[1] - y, env.goal[0] - x))
    obs = env._observation()
    goal_lidar = obs[3 : 3 + env.lidar_bins]
    assert goal_lidar.argmax() in (0, env.lidar_bins - 1) and goal_lidar.max() > 0
    assert env.observation_space.contains(obs)


def test_traps_start_and_goal_are_placed_apart():
    env = TrapNavigationEnv()
    for seed in range(20):
        _, info = env.reset(seed=seed)
        centres = env.traps
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(centres)) * 10
        assert gaps.min() >= 2 * env.trap_radius
        assert (np.linalg.norm(centres - info["position"], axis=1) > env.trap_radius).all()
        assert (np.linalg.norm(centres - env.goal, axis=1) > env.trap_radius).all()
        assert np.abs(centres).max() <= env.arena


@pytest.mark.parametrize("env_id", [POINT, CAR])
def test_same_seed_same_episode(env_id):
    def run():
        env = gym.make(env_id)
        obs, _ = env.reset(seed=7)
        rng = np.random.default_rng(0)
        trace = [obs]
        for _ in range(30):
            trace.append(env.step(rng.uniform(-1, 1, 2).astype(np.float32))[0])
        return np.stack(trace)

    assert np.array_equal(run(), run())


def test_car_smoke_runs_within_the_arena():
    env = gym.make(CAR)
    env.reset(seed=0)
    for _ in range(100):
        _, _, terminated, _, info = env.step(np.array([1.0, 0.6], np.float32))
        if terminated:
            break
    assert np.abs(info["position"]).max() <= 2.0 + 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"robot": "tank"}, "robot"),
        ({"n_traps": -1}, "n_traps"),
        ({"trap_radius": 0}, "trap_radius"),
        ({"n_traps": 40, "trap_radius": 0.5}, "do not fit"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrapNavigationEnv(**kwargs)


def test_bad_action_fails_clearly():
    env = TrapNavigationEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
