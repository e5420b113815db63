"""Operation grasping suite: registration, Gymnasium correctness, the violation signal, tasks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("pybullet")

from gymnasium.utils.env_checker import check_env  # noqa: E402

import safeshield  # noqa: E402,F401  (registers the ids)
from safeshield.environments.operation import EVAL_TASKS, N_TASKS, ScriptedGrasp, task_spec  # noqa: E402


def test_forty_task_ids_and_the_six_hardest_for_evaluation():
    ids = [f"safeshield/Operation{k:02d}-v0" for k in range(N_TASKS)]
    assert N_TASKS == 40 and all(i in gym.registry for i in ids)
    difficulty = sorted((task_spec(k).difficulty for k in range(N_TASKS)), reverse=True)
    assert len(EVAL_TASKS) == 6 and sorted(task_spec(k).difficulty for k in EVAL_TASKS)[0] == difficulty[5]
    assert len({task_spec(k).object_index for k in range(N_TASKS)}) > 20  # many distinct objects


def test_check_env_and_declared_indicator():
    env = gym.make("safeshield/Operation05-v0")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.metadata["safeshield_indicator"] == "info:failure"
    assert env.spec.max_episode_steps == 50


def test_same_seed_same_trajectory():
    trajectories = []
    for _ in range(2):
        env = gym.make("safeshield/Operation03-v0")
        obs, _ = env.reset(seed=4)
        rng = np.random.default_rng(0)
        steps = [obs]
        for _ in range(5):
            steps.append(env.step(rng.uniform(-1, 1, 4).astype(np.float32))[0])
        trajectories.append(np.stack(steps))
        env.close()
    np.testing.assert_array_equal(*trajectories)


def test_scripted_grasp_extracts_the_object_on_an_easy_task():
    """Reward +1 on extraction, -1 per step before; the noiseless script succeeds on an easy task."""
    easy = min(range(N_TASKS), key=lambda k: task_spec(k).difficulty)
    env = gym.make(f"safeshield/Operation{easy:02d}-v0")
    policy, rng = ScriptedGrasp(noise=0.0), np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    rewards, violations = [], 0
    for _ in range(50):
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, rng))
        rewards.append(reward)
        violations += info["failure"]
        if terminated or truncated:
            break
    assert terminated and info["success"] and rewards[-1] == 1.0 and set(rewards[:-1]) == {-1.0}
    assert violations == 0


def test_touching_the_container_is_a_violation_and_does_not_end_the_episode():
    """omega = 1 at any substep where the arm touches the box: drive the hand down onto a rim."""
    env = gym.make("safeshield/Operation00-v0")
    env.reset(seed=0)
    spec = task_spec(0)
    base = env.unwrapped
    ee = base.state_vector()[:3]
    wall_y = 0.0 + spec.inner_half[1] + 0.005  # centre line of the +y wall
    touched = False
    for _ in range(40):
        ee = base.state_vector()[:3]
        target = np.array([0.55, wall_y, 0.0])
        action = np.append(np.clip((target - ee) / 0.02, -1, 1), -1.0).astype(np.float32)
        _, _, terminated, _, info = env.step(action)
        touched |= info["failure"] == 1.0
        assert info["cost"] == info["failure"] and not terminated
    assert touched


def test_image_observations_are_48_by_48_rgb():
    env = gym.make("safeshield/Operation01-v0", obs_mode="image")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (48, 48, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert obs.std() > 5  # not a blank frame


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="task"):
        task_spec(40)
    with pytest.raises(ValueError, match="obs_mode"):
        gym.make("safeshield/Operation00-v0", obs_mode="depth")
    env = gym.make("safeshield/Operation00-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="4 finite"):
        env.step(np.zeros(3, np.float32))
