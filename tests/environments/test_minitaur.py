"""Tests for ``safeshield.environments.minitaur`` (PyBullet Minitaur, SQRL's goal-velocity task)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pybullet")
pytest.importorskip("pybullet_data")

import gymnasium as gym  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import safeshield  # noqa: E402, F401  (registers the ids)
from safeshield.environments.minitaur import MinitaurEnv, leg_model_to_motor_angles  # noqa: E402

PRETRAIN = "safeshield/Minitaur-v0"
VARIANTS = {
    "safeshield/MinitaurVelocity-v0": {"goal_velocity": 0.4},
    "safeshield/MinitaurFriction-v0": {"foot_friction": 1.25},
    "safeshield/MinitaurRandomized-v0": {"randomize_dynamics": True},
}
INFO_KEYS = {"failure", "cost", "base_position", "velocity"}


@pytest.fixture(scope="module")
def env():
    env = MinitaurEnv()
    yield env
    env.close()


@pytest.mark.parametrize("env_id", [PRETRAIN, *VARIANTS])
def test_check_env_and_registration(env_id):
    spec = gym.spec(env_id)
    assert spec.max_episode_steps == 500  # SQRL Table 2
    made = gym.make(env_id)
    check_env(made.unwrapped, skip_render_check=True)
    assert made.observation_space.shape == (28,) and made.action_space.shape == (8,)
    assert made.unwrapped.metadata["safeshield_indicator"] == "info:failure"
    made.close()


@pytest.mark.parametrize(("env_id", "changed"), VARIANTS.items())
def test_variants_differ_in_exactly_the_documented_parameter(env_id, changed):
    base, variant = gym.spec(PRETRAIN).kwargs, gym.spec(env_id).kwargs
    differing = {k for k in base.keys() | variant.keys() if base.get(k, "default") != variant.get(k, "default")}
    assert differing == set(changed)
    assert {k: variant[k] for k in changed} == changed


def test_friction_variant_sets_every_foot():
    env = gym.make("safeshield/MinitaurFriction-v0")
    env.reset(seed=0)
    assert env.unwrapped.foot_frictions() == pytest.approx([1.25] * 8)
    env.close()


def test_randomized_variant_draws_dynamics_per_reset_within_ranges():
    env = gym.make("safeshield/MinitaurRandomized-v0").unwrapped
    frictions, masses = [], []
    for seed in range(4):
        env.reset(seed=seed)
        frictions.append(env.foot_frictions()[0])
        masses.append(env.client.getDynamicsInfo(env.robot, -1)[0])
    assert len(set(frictions)) == 4 and all(0.8 <= f <= 1.25 for f in frictions)
    nominal = env._base_masses[-1]
    assert len(set(masses)) == 4 and all(0.8 * nominal <= m <= 1.2 * nominal for m in masses)
    env.reset(seed=0)
    assert env.foot_frictions()[0] == frictions[0]  # seeded
    env.close()


def _rollout(env: MinitaurEnv, seed: int, actions: np.ndarray) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for action in actions:
        obs, *_ = env.step(action)
        out.append(obs)
    return np.array(out)


def test_determinism_under_a_seed(env):
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, (15, 8)).astype(np.float32)
    np.testing.assert_array_equal(_rollout(env, 3, actions), _rollout(env, 3, actions))
    assert not np.array_equal(_rollout(env, 3, actions), _rollout(env, 4, actions))


def test_initial_state_is_safe_and_standing_still_never_fails(env):
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        assert set(info) == INFO_KEYS and info["failure"] is False and info["cost"] == 0.0
        assert env.observation_space.contains(obs)
    for _ in range(100):
        obs, reward, terminated, truncated, info = env.step(np.zeros(8, np.float32))
        assert not terminated and not truncated and info["failure"] is False and info["cost"] == 0.0


@pytest.mark.parametrize(
    ("position", "orientation"),
    [
        ((0.0, 0.0, 0.3), (math.sin(math.radians(40) / 2), 0.0, 0.0, math.cos(math.radians(40) / 2))),  # rolled 40 deg
        ((0.0, 0.0, 0.3), (0.0, 1.0, 0.0, 0.0)),  # upside down
        ((0.0, 0.0, 0.08), (0.0, 0.0, 0.0, 1.0)),  # base too low (below 0.13 m)
    ],
)
def test_failure_fires_in_a_fallen_state(env, position, orientation):
    env.reset(seed=0)
    env.set_base_pose(position, orientation)
    _, _, terminated, truncated, info = env.step(np.zeros(8, np.float32))
    assert terminated and not truncated
    assert info["failure"] is True and info["cost"] == 1.0


def test_random_actions_eventually_fall_and_terminate(env):
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(500):
        *_, terminated, _, info = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
        if terminated:
            break
    assert terminated and info["failure"]


def test_reward_tracks_goal_velocity_with_fixed_sign(env, monkeypatch):
    env.reset(seed=0)
    goal = env.goal_velocity
    action = np.zeros(8)
    rewards = {}
    for velocity in (goal, 0.0, 2 * goal, -goal):
        monkeypatch.setattr(env, "forward_velocity", lambda v=velocity: v)
        env._previous_actions[:] = 0.0
        rewards[velocity] = env._reward(action)
    assert rewards[goal] == pytest.approx(goal)  # best at the goal velocity
    assert rewards[0.0] == pytest.approx(0.0) and rewards[2 * goal] == pytest.approx(0.0)
    assert rewards[-goal] == pytest.approx(-goal)  # running backwards is punished (the paper's typo rewards it)
    # The acceleration penalty: 0.01 * ||a_t - 2 a_{t-1} + a_{t-2}||.
    monkeypatch.setattr(env, "forward_velocity", lambda: goal)
    env._previous_actions[:] = 0.0
    assert env._reward(np.full(8, 0.5)) == pytest.approx(goal - 0.01 * math.sqrt(8) * 0.5)


def test_leg_model():
    angles = leg_model_to_motor_angles(np.zeros(8))
    np.testing.assert_allclose(angles, math.pi - 3 * math.pi / 8)
    extended = leg_model_to_motor_angles(np.array([1, 0, 0, 0, 0, 0, 0, 0], float))
    # The two motors of leg 0 open symmetrically; the other legs do not move.
    assert extended[0] - angles[0] == pytest.approx(math.pi / 4) and extended[1] - angles[1] == pytest.approx(
        -math.pi / 4
    )
    np.testing.assert_allclose(extended[2:], angles[2:])


def test_bad_arguments_and_actions_raise(env):
    for kwargs, name in [
        ({"foot_friction": 0.0}, "foot_friction"),
        ({"goal_velocity": float("nan")}, "goal_velocity"),
        ({"friction_range": (1.0, 0.5)}, "friction_range"),
        ({"render_mode": "human"}, "render_mode"),
        ({"substeps": 0}, "substeps"),
    ]:
        with pytest.raises(ValueError, match=name):
            MinitaurEnv(**kwargs)
    fresh = MinitaurEnv()
    with pytest.raises(gym.error.ResetNeeded):
        fresh.step(np.zeros(8))
    fresh.close()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(7))
    with pytest.raises(ValueError, match="action"):
        env.step(np.full(8, np.nan))


def test_render_rgb_array():
    env = MinitaurEnv(render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8 and image.std() > 0
    env.close()


def test_importing_safeshield_does_not_import_pybullet():
    code = "import sys, safeshield; print('pybullet' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_making_an_env_prints_nothing_on_stdout(capfd):
    """PyBullet prints ``argv[0]=`` per physics server; a user's log must not get a line per env (issue 18)."""
    env = gym.make("safeshield/Minitaur-v0")
    env.reset(seed=0)
    env.close()
    assert "argv[0]" not in capfd.readouterr().out


def test_control_period_sets_a_shields_horizon_in_seconds():
    env = gym.make("safeshield/MinitaurVelocity-v0")
    assert env.unwrapped.dt == pytest.approx(0.01)  # one action per 2 x 0.005 s physics steps
    shielded = safeshield.wrap(env, "sqrl", indicator="info:failure", seed=0)
    assert shielded.safety_model.config.horizon == 50  # the default 0.5 s, not the 20-step fallback
    shielded.close()


def test_an_env_left_open_exits_without_a_traceback():
    """An env nobody closed is disconnected at exit, before PyBullet's own ``BulletClient.__del__``
    would print "Exception ignored ... TypeError" during the interpreter's teardown."""
    pytest.importorskip("gymnasium_robotics")
    code = (
        "import gymnasium as gym, safeshield\n"
        "hand = gym.make('safeshield/ShadowHandCubeRotate-v0')\n"  # with it loaded, the teardown printed it
        "envs = [gym.make(i) for i in ('safeshield/Operation-v0', 'safeshield/Minitaur-v0')]\n"
        "[env.reset(seed=0) for env in envs]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Exception ignored" not in out.stderr, out.stderr
