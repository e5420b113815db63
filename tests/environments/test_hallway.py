"""Tests of the Hallway environments (Knight & Achiam §3)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield  # noqa: F401  (registers the ids)
from safeshield.environments import hallway_people
from safeshield.environments.hallway import HallwayEnv

SHORT = dict(length=6.0, spacing=1.5)


def rollout(env, seed, steps, policy=None):
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    out = {"obs": [obs], "reward": [], "cost": [], "info": [info]}
    for t in range(steps):
        action = policy(t) if policy else rng.uniform(-1, 1, 2).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        for key, value in (("obs", obs), ("reward", reward), ("cost", info["cost"]), ("info", info)):
            out[key].append(value)
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize(
    "env_id",
    [f"safeshield/{robot}Hallway{v}-v0" for robot in ("Point", "Doggo") for v in ("Walls", "Poles", "Humanoids")],
)
def test_registered_envs_pass_check_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == 1000
    assert env.unwrapped.metadata["safeshield_indicator"] == "cost"


def test_depth_sensing_passes_check_env_and_sees_a_wall_ahead():
    env = HallwayEnv("walls", sensing="depth", depth_shape=(6, 8), **SHORT)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (7 + 48,) and np.all((obs[7:] >= 0) & (obs[7:] <= 1))
    image = obs[7:].reshape(6, 8)
    assert image[-1].mean() < image[0].mean()  # pitched down: the bottom row sees the floor, nearer


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["walls", "poles"]))
def test_wall_and_pole_cost_per_step_is_zero_or_one(seed, variant):
    env = gym.wrappers.TimeLimit(HallwayEnv(variant, **SHORT), 150)
    data = rollout(env, seed, 150, policy=lambda t: np.array([1.0, 0.4 * np.sin(t / 7)], np.float32))
    assert set(data["cost"]) <= {0.0, 1.0}
    assert sum(data["cost"]) <= len(data["cost"])
    assert all(info["failure"] == (info["cost"] > 0) for info in data["info"])


def test_driving_straight_into_walls_costs():
    total = 0.0
    for seed in range(3):
        total += sum(
            rollout(HallwayEnv("walls", **SHORT), seed, 120, policy=lambda t: np.array([1.0, 0.0], np.float32))["cost"]
        )
    assert total > 0


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 10_000))
def test_humanoid_cost_counts_each_person_once(seed):
    env = HallwayEnv("humanoids", **SHORT)
    data = rollout(env, seed, 200, policy=lambda t: np.array([0.6, np.sin(t / 5)], np.float32))
    n_people = len(env.slots)
    assert sum(data["cost"]) <= n_people
    assert sum(data["cost"]) == data["info"][-1]["touched"]
    assert all(c == int(c) and c >= 0 for c in data["cost"])


def test_a_person_in_the_way_costs_exactly_once():
    env = HallwayEnv("humanoids", **SHORT)
    env.reset(seed=0)
    env._drift[:] = 0.0  # park every person, put the robot against person 0's torso
    env._move_people(0.0)
    x, y = env._anchor[0]
    env.robot.set_pose(env.data, x - 0.25, y, 0.0)
    costs, contact_steps = [], 0
    for _ in range(30):  # keep pushing into the person: contact persists, cost is paid once
        costs.append(env.step(np.array([1.0, 0.0], np.float32))[4]["cost"])
        contact_steps += any(env._obstacle_of[g] == 0 for pair in env.data.contact.geom[: env.data.ncon] for g in pair)
    assert sum(costs) == 1.0 and env._touched[0] and contact_steps > 1


def test_reward_is_scaled_forward_progress_and_seeds_reproduce():
    env = HallwayEnv("poles", **SHORT)
    a, b = rollout(env, 7, 60), rollout(env, 7, 60)
    np.testing.assert_array_equal(np.stack(a["obs"]), np.stack(b["obs"]))
    progress = a["info"][-1]["x"] - a["info"][0]["x"]
    assert sum(a["reward"]) == pytest.approx(env.reward_scale * progress, rel=1e-6, abs=1e-6)
    assert env.reward_scale == pytest.approx(1000 / 6.0)


def test_reaching_the_end_terminates_with_success():
    env = HallwayEnv("walls", length=4.0, spacing=5.0)  # one slot at x ≈ 2
    env.reset(seed=0)
    env.robot.set_pose(env.data, 3.5, 0.0, 0.0)
    env._x = 3.5
    for _ in range(20):
        _, _, terminated, _, info = env.step(np.array([1.0, 0.0], np.float32))
        if terminated:
            break
    assert terminated and info["is_success"]


def test_bad_arguments_are_refused():
    for kwargs, match in (
        ({"variant": "lava"}, "variant"),
        ({"robot": "car"}, "robot"),
        ({"sensing": "rgb"}, "sensing"),
        ({"length": -1.0}, "length"),
        ({"depth_shape": (0, 4)}, "depth_shape"),
        ({"render_mode": "human"}, "render_mode"),
    ):
        with pytest.raises(ValueError, match=match):
            HallwayEnv(**kwargs)
    with pytest.raises(gym.error.ResetNeeded):
        HallwayEnv().step(np.zeros(2, np.float32))


def test_mocap_clips_load_with_human_proportions():
    for clip in hallway_people.CLIPS:
        times, joints = hallway_people.load_clip(clip)
        assert joints.shape[1:] == (18, 3) and np.all(np.diff(times) > 0)
        head = joints[:, list(hallway_people._NAMES).index("head"), 2]
        assert 1.0 < np.median(head) < 2.0  # metres, z-up
    mid, quat, half = hallway_people.pose_bones("walk", 0.5, np.array([3.0, 1.0]), 1.0)
    assert mid.shape == (hallway_people.N_BONES, 3) and np.allclose(np.linalg.norm(quat, axis=1), 1.0)
    assert np.all(half > 0.01)


def test_doggo_has_twelve_motors_and_its_legs_count_as_robot_for_cost():
    env = HallwayEnv("walls", robot="doggo", **SHORT)
    obs, _ = env.reset(seed=0)
    assert env.action_space.shape == (12,) and obs.shape == (32 + 16,)
    assert env._robot_geom.sum() == 2 + 8  # torso, head, 4 x (thigh, shin)
    data = rollout(env, 0, 100, policy=lambda t: np.full(12, np.sin(t / 3), np.float32))
    assert set(data["cost"]) <= {0.0, 1.0}
    np.testing.assert_allclose(obs[7 + 24], 1.0, atol=1e-6)  # upright at reset
