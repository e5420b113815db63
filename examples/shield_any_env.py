"""Wrap any Gymnasium env in a learned SQRL shield, train an agent inside it, save and reload it.

Pendulum has no failure of its own, so this defines one with a callable indicator: spinning
faster than 6 rad/s counts as a failure. Run: ``.venv/bin/python examples/shield_any_env.py``.
"""

import gymnasium as gym
import torch

import safeshield
from safeshield.agents import SAC, SACConfig


def spinning_too_fast(obs, reward, terminated, truncated, info) -> float:
    return float(abs(obs[2]) > 6.0)


def main(steps: int = 3000) -> None:
    torch.set_num_threads(1)
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=spinning_too_fast, seed=0, hidden=(64, 64))
    agent = SAC(env.observation_space, env.action_space, SACConfig(hidden=(64, 64), learning_starts=500), seed=0)
    env.attach_policy(agent.sample_actions)  # candidates come from the agent's own policy
    records = agent.learn(env, steps, seed=0)
    shield = env.get_wrapper_attr("safety_model")
    print(f"{len(records)} episodes, {env.total_failures} failing steps, {env.total_interventions} interventions")

    shield.save("runs/examples/pendulum_shield")
    deployed = safeshield.load("runs/examples/pendulum_shield", gym.make("Pendulum-v1"), indicator=spinning_too_fast)
    obs, _ = deployed.reset(seed=1)
    obs, reward, terminated, truncated, info = deployed.step(agent.act(obs, deterministic=True))
    print("a frozen, reloaded shield reports:", {k: info["shield"][k] for k in ("intervened", "risk", "threshold")})


if __name__ == "__main__":
    main()
