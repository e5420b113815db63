"""``safeshield.model_for``: the model ``wrap`` builds, available before wrapping, so that a shield
pre-trained on logged steps learns over the horizon the wrapper will use; and the warning when a
shield that has learned is carried to an env whose dt changes its horizon."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import safeshield

torch.set_num_threads(1)

IDP = "InvertedDoublePendulum-v5"  # dt = 0.05 s: the 0.5 s default horizon is 10 steps


def _logged(model: safeshield.SafetyCritic, steps: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((steps, model.obs_dim)).astype(np.float32)
    low, high = model.action_space.low, model.action_space.high
    actions = rng.uniform(low, high, (steps, *model.action_space.shape)).astype(np.float32)
    ends = np.zeros(steps, dtype=np.float32)
    ends[15::16] = 1.0
    return dict(obs=obs, actions=actions, next_obs=obs, failure=ends, terminated=ends, truncated=0 * ends)


def test_it_is_the_model_wrap_builds():
    env = gym.make(IDP)
    model = safeshield.model_for(env, "sqrl", seed=3, eps_safe=0.2)
    wrapped = safeshield.wrap(gym.make(IDP), "sqrl", seed=3, eps_safe=0.2, indicator="terminated").safety_model
    assert model.config == wrapped.config and model.config.horizon == 10
    for name, value in model.state_dict().items():
        assert torch.equal(value, wrapped.state_dict()[name]), name


def test_an_env_without_dt_keeps_the_step_horizon_and_a_vector_env_gives_its_single_spaces():
    assert safeshield.model_for(gym.make("CartPole-v1")).config.horizon == 20  # CartPole declares no dt
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(IDP)] * 2)
    model = safeshield.model_for(envs, "csc", target="nstep", horizon_seconds=0.25)
    assert model.observation_space == envs.single_observation_space and model.config.horizon == 5


def test_a_pre_trained_model_for_its_env_wraps_without_changing_its_horizon():
    model = safeshield.model_for(gym.make(IDP), seed=0, learning_starts=0, batch_size=16)
    model.learn_offline(**_logged(model), updates=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = safeshield.wrap(gym.make(IDP), model.freeze(), indicator="terminated", train=False)
    assert env.safety_model.config.horizon == 10


def test_a_shield_that_learned_over_another_horizon_warns_and_says_what_to_do():
    env = gym.make(IDP)
    model = safeshield.SQRL(env.observation_space, env.action_space, seed=0)  # no dt: 20 steps
    fresh = safeshield.SQRL(env.observation_space, env.action_space, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing learned yet: the horizon just follows the env
        assert safeshield.wrap(gym.make(IDP), fresh, indicator="terminated").safety_model.config.horizon == 10
    model.reconfigure(learning_starts=0, batch_size=16).learn_offline(**_logged(model), updates=2)
    with pytest.warns(UserWarning, match=r"horizon of 20 steps.*10 steps.*safeshield\.model_for"):
        safeshield.wrap(env, model.freeze(), indicator="terminated", train=False)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda env: safeshield.model_for(env, "sqlr"), ValueError, "did you mean 'sqrl'"),
        (lambda env: safeshield.model_for(env, object()), TypeError, "method must be a method name"),
        (lambda env: safeshield.model_for(env, "sqrl", horizn=5), TypeError, "did you mean 'horizon'"),
        (
            lambda env: safeshield.model_for(env, "sqrl", config=safeshield.SQRLConfig(), eps_safe=0.2),
            TypeError,
            "either config",
        ),
    ],
)
def test_bad_arguments_name_what_is_wrong(call, error, message):
    with pytest.raises(error, match=message):
        call(gym.make("Pendulum-v1"))
