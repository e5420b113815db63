"""Tianshou SAC learning DrunkSpider with and without an SQRL shield.

The shielded run wraps the env (``safeshield.wrap``) and calls ``attach(collector, policy)``,
which makes the collector's buffer store the action the shield executed and draws the
shield's candidates from SAC's own policy. Prints failures for both runs. Tianshou compiles
numba kernels on first use (several seconds). Run: ``.venv/bin/python examples/tianshou_sac.py``.
"""

import argparse

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm import SAC
from tianshou.algorithm.modelfree.sac import SACPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Collector, ReplayBuffer
from tianshou.env import DummyVectorEnv
from tianshou.utils.net.common import Net
from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
from tianshou.utils.torch_utils import policy_within_training_step

import safeshield
from safeshield.integrations.tianshou import attach

ENV_ID = "safeshield/DrunkSpider-v0"


def make_sac(env: gym.Env):
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_dim, hidden_sizes=[64, 64]),
        action_shape=act_dim,
        unbounded=True,
        conditioned_sigma=True,
    )
    critic = ContinuousCritic(
        preprocess_net=Net(state_shape=obs_dim, action_shape=act_dim, hidden_sizes=[64, 64], concat=True)
    )
    policy = SACPolicy(actor=actor, action_space=env.action_space, observation_space=env.observation_space)
    algorithm = SAC(
        policy=policy,
        policy_optim=AdamOptimizerFactory(lr=1e-3),
        critic=critic,
        critic_optim=AdamOptimizerFactory(lr=1e-3),
        gamma=0.95,
        alpha=0.1,
    )
    return policy, algorithm


def train(steps: int, shielded: bool, seed: int = 0) -> int:
    torch.manual_seed(seed)

    def make_env():
        env = gym.make(ENV_ID)
        if shielded:
            env = safeshield.wrap(env, "sqrl", seed=seed, learning_starts=200, hidden=(64, 64))  # the one line
        return env

    envs = DummyVectorEnv([make_env])
    envs.seed(seed)
    policy, algorithm = make_sac(gym.make(ENV_ID))
    buffer = ReplayBuffer(steps)
    collector = Collector(algorithm, envs, buffer)
    if shielded:
        attach(collector, policy)  # the optional adapter
    collector.reset()
    collector.collect(n_step=200, random=True)
    for _ in range(200, steps, 10):
        with policy_within_training_step(policy):
            collector.collect(n_step=10)
            for _ in range(10):
                algorithm.update(buffer=buffer, sample_size=64)
    return int(np.sum(buffer.info.failure[: len(buffer)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    steps = parser.parse_args().steps
    torch.set_num_threads(1)
    print(f"Tianshou SAC without shield: {train(steps, shielded=False)} failures in {steps} steps")
    print(f"Tianshou SAC inside an SQRL shield: {train(steps, shielded=True)} failures in {steps} steps")


if __name__ == "__main__":
    main()
