"""Tianshou integration: the collector's buffer holds the executed action, and SAC trains on it.

Tianshou compiles its numba kernels when a buffer or policy is built (tens of seconds on a
loaded 2-core machine). These tests import Tianshou with numba's JIT disabled for that import
only, so its kernels run as plain Python on the few hundred transitions used here; numba's
setting is restored right after, for every other module.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

numba = pytest.importorskip("numba")
_jit_was_disabled = numba.config.DISABLE_JIT
numba.config.DISABLE_JIT = True
try:
    tianshou = pytest.importorskip("tianshou")
    from tianshou.algorithm import SAC
    from tianshou.algorithm.modelfree.sac import SACPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, ReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.utils.net.common import ModuleWithVectorOutput, Net
    from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
    from tianshou.utils.torch_utils import policy_within_training_step

    from safeshield.integrations.tianshou import attach, policy_sampler
finally:
    numba.config.DISABLE_JIT = _jit_was_disabled

import safeshield  # noqa: E402

DRUNK_SPIDER = "safeshield/DrunkSpider-v0"


def small_sac(env):
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_dim, hidden_sizes=[16, 16]),
        action_shape=act_dim,
        unbounded=True,
        conditioned_sigma=True,
    )
    critic = ContinuousCritic(
        preprocess_net=Net(state_shape=obs_dim, action_shape=act_dim, hidden_sizes=[16, 16], concat=True)
    )
    policy = SACPolicy(actor=actor, action_space=env.action_space, observation_space=env.observation_space)
    algorithm = SAC(
        policy=policy,
        policy_optim=AdamOptimizerFactory(lr=1e-3),
        critic=critic,
        critic_optim=AdamOptimizerFactory(lr=1e-3),
    )
    return policy, algorithm


def test_collector_buffer_holds_the_executed_action_and_sac_trains(far_from_point):
    torch.manual_seed(0)
    env = gym.make(DRUNK_SPIDER)
    model = far_from_point(env, n_candidates=8)
    envs = DummyVectorEnv([lambda: safeshield.ShieldWrapper(gym.make(DRUNK_SPIDER), model, train=False, seed=0)])
    policy, algorithm = small_sac(env)
    buffer = ReplayBuffer(500)
    collector = Collector(algorithm, envs, buffer)
    hook = attach(collector, policy)
    collector.reset()
    before = [p.detach().clone() for p in policy.actor.parameters()]
    for _ in range(8):
        with policy_within_training_step(policy):
            collector.collect(n_step=16)
            algorithm.update(buffer=buffer, sample_size=16)
    n = len(buffer)
    report = buffer.info.shield
    executed, proposed = report.executed_action[:n], report.proposed_action[:n]
    intervened = np.asarray(report.intervened[:n], dtype=bool)
    np.testing.assert_allclose(policy.map_action(buffer.act[:n]), executed, atol=1e-5)
    assert intervened.sum() > 5 and hook.rewritten == intervened.sum()
    assert (np.abs(proposed[intervened] - executed[intervened]).max(axis=1) > 1e-3).all()
    assert model.policy_sampler is not None, "candidates come from SAC's own policy"
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.actor.parameters())), "SAC trained"


def test_policy_sampler_is_reproducible_and_inside_the_box():
    env = gym.make(DRUNK_SPIDER)
    policy, _ = small_sac(env)
    sample = policy_sampler(policy)
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(3)]))
    first = sample(obs, 64, torch.Generator().manual_seed(0))
    torch.testing.assert_close(first, sample(obs, 64, torch.Generator().manual_seed(0)))
    assert first.shape == (3, 64, 2) and first.abs().max() <= 1.0


class GoalPoint(gym.Env):
    """A point and a goal as a Dict observation (a goal-conditioned task in miniature)."""

    observation_space = gym.spaces.Dict(
        {"goal": gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "point": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)}
    )
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


class ToGoal(ModuleWithVectorOutput):
    """A preprocess net that reads a Dict observation's parts by name, as a user's would."""

    def __init__(self):
        super().__init__(output_dim=4)
        self.seen = []

    def forward(self, obs, state=None):
        self.seen.append(obs)
        goal, point = torch.as_tensor(obs.goal), torch.as_tensor(obs.point)
        return torch.cat([goal - point, point], dim=-1), state


def test_policy_sampler_gives_a_dict_observation_to_the_actor_in_its_own_form():
    env = GoalPoint()
    preprocess = ToGoal()
    actor = ContinuousActorProbabilistic(preprocess_net=preprocess, action_shape=2, unbounded=True)
    policy = SACPolicy(actor=actor, action_space=env.action_space, observation_space=env.observation_space)
    parts = [env.observation_space.sample() for _ in range(3)]
    flat = torch.as_tensor(np.stack([gym.spaces.flatten(env.observation_space, p) for p in parts]))
    drawn = policy_sampler(policy)(flat, 5, torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 5, 2) and drawn.abs().max() <= 1.0
    seen = preprocess.seen[-1]
    np.testing.assert_allclose(seen.goal, np.stack([p["goal"] for p in parts]))
    np.testing.assert_allclose(seen.point, np.stack([p["point"] for p in parts]))
