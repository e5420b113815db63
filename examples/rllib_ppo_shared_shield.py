"""RLlib PPO on DrunkSpider with 2 local env runners, with and without one shared SQRL shield.

The shielded run changes one thing in a plain RLlib script: the env name. ``SharedShield``
starts one shield learner (a Ray actor) and registers an env whose runners each shield their
env with the learner's latest weights and send it every transition with its failure label.
Prints the failing episodes (the spider fell into the lava) of both runs, and what the shield
learner received. A few minutes on 2 cores; run:
``.venv/bin/python examples/rllib_ppo_shared_shield.py [--iterations 4]``.

RLlib trains PPO on the action its policy *proposed*; the shield's executed action is in each
step's ``info["shield"]`` (see ``docs/ray.md``: a remap shield suits on-policy learners better).
"""

import argparse

import gymnasium as gym
import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.tune.registry import register_env

from safeshield.integrations import ray as safeshield_ray

ENV_ID = "safeshield/DrunkSpider-v0"


class CountFailures(gym.Wrapper):
    """Count episodes and failing episodes (``info["failure"]``) of this env."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.episodes = self.failures = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.episodes += 1
            self.failures += bool(info.get("failure"))
        return obs, reward, terminated, truncated, info


def count(algo) -> tuple[int, int]:
    """(episodes, failing episodes) summed over the remote env runners' envs."""
    per_runner = algo.env_runner_group.foreach_env_runner(
        lambda runner: [
            (e.get_wrapper_attr("episodes"), e.get_wrapper_attr("failures")) for e in runner.env.unwrapped.envs
        ],
        local_env_runner=False,
    )
    pairs = [pair for runner in per_runner for pair in runner]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def train(env_name: str, iterations: int, seed: int) -> tuple[int, int]:
    config = (
        PPOConfig()
        .environment(env_name)
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1, rollout_fragment_length=150)
        .training(train_batch_size_per_learner=300, minibatch_size=100, num_epochs=3, lr=3e-4)
        .debugging(seed=seed, log_level="ERROR")
    )
    algo = config.build_algo()
    for _ in range(iterations):
        algo.train()
    episodes, failures = count(algo)
    algo.stop()
    return episodes, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4, help="PPO iterations (300 env steps each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--address", default=None, help="a Ray cluster's address; default: start Ray locally")
    args = parser.parse_args()
    safeshield_ray.init(args.address, num_cpus=None if args.address else 2)

    spec = safeshield_ray.ShieldSpec(
        ENV_ID, "sqrl", seed=args.seed, options=dict(learning_starts=200, hidden=(64, 64), batch_size=64)
    )
    register_env("spider", lambda config: CountFailures(spec.make_env()))  # imports safeshield in the runner
    shared = safeshield_ray.SharedShield(spec, flush_every=32)
    creator = shared.env_creator()
    register_env("shielded-spider", lambda config: CountFailures(creator(config)))  # the one change

    plain = train("spider", args.iterations, args.seed)
    shielded = train("shielded-spider", args.iterations, args.seed)
    stats = shared.stats()
    print(f"PPO, no shield:          {plain[1]:3d} failing episodes of {plain[0]}")
    print(f"PPO, shared SQRL shield: {shielded[1]:3d} failing episodes of {shielded[0]}")
    runners = {name: r["received"] for name, r in stats["runners"].items() if r["received"]}
    print(
        f"shield learner: {stats['total_added']} transitions from runners {runners}, "
        f"{stats['updates']} updates, weight version {stats['version']}"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
