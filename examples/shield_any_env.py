"""Wrap any Gymnasium env in a learned SQRL shield, train an agent inside it, save and reload it.

Pendulum has no failure of its own, so this defines one with a callable indicator: spinning
faster than 6 rad/s counts as a failure. The same SAC (same seed) trains with and without the
shield and both runs' failing steps are printed; the shield is then saved under ``--out``
(announced) and reloaded frozen. Run: ``.venv/bin/python examples/shield_any_env.py [--steps N]``.
"""

import argparse
from pathlib import Path

import gymnasium as gym
import torch

import safeshield
from safeshield.agents import SAC, SACConfig


def spinning_too_fast(obs, reward, terminated, truncated, info) -> float:
    return float(abs(obs[2]) > 6.0)


class CountFailures(gym.Wrapper):
    """Counts failing steps with the same indicator, shielded or not."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.failing = 0

    def step(self, action):
        step = self.env.step(action)
        self.failing += int(spinning_too_fast(*step))
        return step


def train(shielded: bool, steps: int) -> tuple[SAC, gym.Env]:
    """SAC on Pendulum for ``steps`` steps, the same seed with or without the shield."""
    env = gym.make("Pendulum-v1")
    if shielded:
        env = safeshield.wrap(env, "sqrl", indicator=spinning_too_fast, seed=0, hidden=(64, 64))
    env = CountFailures(env)
    agent = SAC(env.observation_space, env.action_space, SACConfig(hidden=(64, 64), learning_starts=500), seed=0)
    if shielded:
        env.get_wrapper_attr("attach_policy")(agent.sample_actions)  # candidates from the agent's own policy
    agent.learn(env, steps, seed=0, progress=False)
    return agent, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps per run (default 3000)")
    parser.add_argument("--out", default="runs/examples", help="where the shield is saved (default runs/examples)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    _, plain = train(False, args.steps)
    agent, env = train(True, args.steps)
    print(f"SAC, no shield: {plain.failing} failing steps in {args.steps}")
    print(f"SAC + SQRL:     {env.failing} failing steps, {env.get_wrapper_attr('total_interventions')} interventions")
    print("(one seed, a few thousand steps: a demonstration, not evidence)")

    path = Path(args.out) / "pendulum_shield"
    print(f"saving the shield to {path}/")
    env.get_wrapper_attr("safety_model").save(path)
    deployed = safeshield.load(path, gym.make("Pendulum-v1"), indicator=spinning_too_fast)  # frozen
    obs, _ = deployed.reset(seed=1)
    obs, reward, terminated, truncated, info = deployed.step(agent.act(obs, deterministic=True))
    print("a frozen, reloaded shield reports:", {k: info["shield"][k] for k in ("intervened", "risk", "threshold")})


if __name__ == "__main__":
    main()
