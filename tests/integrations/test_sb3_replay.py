"""Pre-training a shield on an SB3 agent's replay buffer: the steps arrive in env units, in order,
with failures told from time limits, across the ring's wrap; unusable buffers are refused clearly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3 import DQN, SAC  # noqa: E402

import safeshield  # noqa: E402
from safeshield.integrations.sb3 import learn_from_replay_buffer  # noqa: E402
from safeshield.shields.sqrl import SQRLConfig  # noqa: E402


class Log(gym.Wrapper):
    """Every step as the env saw it: obs, action (env units), next obs, terminated, truncated."""

    def __init__(self, env):
        super().__init__(env)
        self.rows: list[tuple] = []

    def reset(self, **kwargs):
        self.obs, info = self.env.reset(**kwargs)
        return self.obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.rows.append((self.obs, np.asarray(action), obs, terminated, truncated))
        self.obs = obs
        return obs, reward, terminated, truncated, info


def pendulum(max_steps: int = 6) -> Log:
    """Box actions in [-3, 3], short time limits: both terminations and truncations happen."""
    return Log(gym.make("InvertedPendulum-v5", max_episode_steps=max_steps))


def stored(model, count):
    buffer = model.buffer
    return buffer.obs[:count], buffer.action[:count], buffer.next_obs[:count], buffer.failure[:count]


def test_the_buffer_arrives_in_env_units_in_order_with_failures_apart_from_time_limits():
    env = pendulum()
    agent = SAC("MlpPolicy", env, buffer_size=150, learning_starts=400, seed=0, device="cpu")
    agent.learn(230)  # the ring wrapped: it holds the last 150 steps, oldest at agent.replay_buffer.pos
    model = safeshield.SQRL(env.observation_space, env.action_space, SQRLConfig(hidden=(8,), batch_size=16), seed=0)
    learn_from_replay_buffer(model, agent, updates=2)
    logged = env.rows[-150:]
    obs, action, next_obs, failure = stored(model, 150)
    np.testing.assert_allclose(obs, [row[0] for row in logged], rtol=1e-6)
    np.testing.assert_allclose(action, [row[1] for row in logged], atol=1e-5)  # [-1, 1] back to [-3, 3]
    np.testing.assert_allclose(next_obs, [row[2] for row in logged], rtol=1e-6)
    np.testing.assert_array_equal(failure, [float(row[3]) for row in logged])
    assert any(row[4] for row in logged) and any(row[3] for row in logged)  # both kinds of episode end seen
    assert np.abs(action).max() > 1.0 and len(model.buffer) == 150 and model.updates == 2


def test_a_failure_function_labels_the_steps_and_discrete_actions_stay_indices():
    env = Log(gym.make("CartPole-v1"))
    agent = DQN("MlpPolicy", env, learning_starts=1000, seed=0, device="cpu")
    agent.learn(120)
    model = safeshield.SQRL(env.observation_space, env.action_space, SQRLConfig(hidden=(8,), batch_size=16), seed=0)
    far = lambda next_obs, reward, terminated: (np.abs(next_obs[:, 0]) > 0.1).astype(np.float32)  # noqa: E731
    learn_from_replay_buffer(model, agent.replay_buffer, updates=1, failure=far)
    logged = env.rows
    one_hot = np.eye(2)[[int(row[1]) for row in logged]]
    np.testing.assert_array_equal(model.buffer.action[:120], one_hot)
    np.testing.assert_array_equal(model.buffer.failure[:120], [float(abs(row[2][0]) > 0.1) for row in logged])


def test_a_dict_observation_buffer_arrives_flattened_as_the_shield_sees_it():
    """A DictReplayBuffer (MultiInputPolicy agents): each observation is gymnasium.spaces.flatten's layout."""
    space = gym.spaces.Dict(
        {"pose": gym.spaces.Box(-np.inf, np.inf, (4,), np.float64), "mode": gym.spaces.Discrete(3, start=1)}
    )
    box = gym.make("InvertedPendulum-v5", max_episode_steps=6)
    env = Log(gym.wrappers.TransformObservation(box, lambda o: {"pose": o, "mode": 1 + int(o[0] > 0)}, space))
    agent = SAC("MultiInputPolicy", env, learning_starts=400, seed=0, device="cpu")
    agent.learn(60)
    model = safeshield.model_for(env, "sqrl", seed=0, hidden=(8,), batch_size=16)
    learn_from_replay_buffer(model, agent, updates=1)
    obs, _, next_obs, failure = stored(model, 60)
    np.testing.assert_allclose(obs, [gym.spaces.flatten(space, row[0]) for row in env.rows], rtol=1e-6)
    np.testing.assert_allclose(next_obs, [gym.spaces.flatten(space, row[2]) for row in env.rows], rtol=1e-6)
    np.testing.assert_array_equal(failure, [float(row[3]) for row in env.rows])


def test_unusable_buffers_are_refused_with_what_to_do():
    env = pendulum()
    model = safeshield.SQRL(env.observation_space, env.action_space, SQRLConfig(hidden=(8,)), seed=0)
    with pytest.raises(ValueError, match="empty"):
        learn_from_replay_buffer(model, SAC("MlpPolicy", env, buffer_size=100, device="cpu"), updates=1)
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        lean = SAC(
            "MlpPolicy",
            env,
            buffer_size=100,
            device="cpu",
            optimize_memory_usage=True,
            replay_buffer_kwargs={"handle_timeout_termination": False},
        )
        learn_from_replay_buffer(model, lean, updates=1)
    blind = SAC(
        "MlpPolicy", env, buffer_size=100, device="cpu", replay_buffer_kwargs={"handle_timeout_termination": False}
    )
    with pytest.raises(ValueError, match="handle_timeout_termination"):
        learn_from_replay_buffer(model, blind, updates=1)
    with pytest.raises(TypeError, match="off-policy SB3 agent or its replay buffer"):
        learn_from_replay_buffer(model, object(), updates=1)


def test_each_env_of_a_vector_arrives_as_its_own_ordered_stream():
    from stable_baselines3.common.vec_env import DummyVecEnv

    envs = [pendulum(), pendulum()]
    agent = SAC("MlpPolicy", DummyVecEnv([lambda e=e: e for e in envs]), learning_starts=400, seed=0, device="cpu")
    agent.learn(80)  # 40 steps of each env
    model = safeshield.SQRL(envs[0].observation_space, envs[0].action_space, SQRLConfig(hidden=(8,)), seed=0)
    learn_from_replay_buffer(model, agent, updates=1)
    logged = envs[0].rows + envs[1].rows
    np.testing.assert_allclose(model.buffer.obs[:80], [row[0] for row in logged], rtol=1e-6)
    np.testing.assert_array_equal(model.buffer.failure[:80], [float(row[3]) for row in logged])
    assert (model.buffer.next_id[:39] != -1).any()  # steps of an episode are linked ...
    assert model.buffer.next_id[39] == -1  # ... but env 0's last step never to env 1's first
