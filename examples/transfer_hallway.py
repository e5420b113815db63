"""Knight & Achiam's safe transfer in a few lines: pre-train where touching is cheap, fine-tune where it is not.

SAC-Lagrangian (cost critic + multiplier β) with the previous reward and cost in its input
learns the Walls hallway, is saved, and is carried to the Poles hallway: evaluated zero-shot,
then fine-tuned there. ``benchmarks/transfer_hallway.py`` runs the full protocol with seeds,
a from-scratch baseline and an SQRL-shield arm.
The agent is saved under ``--out`` (announced). Run: ``.venv/bin/python examples/transfer_hallway.py``
(a few minutes on one core).
"""

import argparse
from pathlib import Path

import gymnasium as gym
import torch

from safeshield.agents import SACLagrangian, SACLagrangianConfig
from safeshield.wrappers import PreviousRewardCost


def hallway(variant: str) -> gym.Env:
    # a short hallway (6 m, two obstacle slots) and 200-step episodes keep this CPU-friendly
    env = gym.make(f"safeshield/PointHallway{variant}-v0", length=6.0, spacing=2.0, max_episode_steps=200)
    return PreviousRewardCost(env)  # appends r_{t-1}, c_{t-1} to the observation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=8000, help="steps in Walls (default 8000)")
    parser.add_argument("--finetune-steps", type=int, default=4000, help="steps in Poles (default 4000)")
    parser.add_argument("--out", default="runs/examples", help="where the agent is saved (default runs/examples)")
    args = parser.parse_args()
    pretrain_steps, finetune_steps, path = args.pretrain_steps, args.finetune_steps, Path(args.out) / "hallway_agent"
    torch.set_num_threads(1)
    walls = hallway("Walls")
    config = SACLagrangianConfig(hidden=(64, 64), batch_size=128, train_every=2)
    agent = SACLagrangian(walls.observation_space, walls.action_space, config, seed=0)
    agent.learn(walls, pretrain_steps, seed=0)
    print(f"saving the agent to {path}/")
    agent.save(path)

    poles = hallway("Poles")
    agent = SACLagrangian.load(path, poles, seed=0)  # weights, critics and β
    obs, _ = poles.reset(seed=123)
    zero_shot_cost, done = 0.0, False
    while not done:
        obs, _, terminated, truncated, info = poles.step(agent.act(obs, deterministic=True))
        zero_shot_cost, done = zero_shot_cost + info["cost"], terminated or truncated
    records = agent.learn(poles, finetune_steps, seed=1)
    print(f"zero-shot episode cost in Poles: {zero_shot_cost:.0f}")
    print(
        f"lifetime cost while fine-tuning: {sum(r['cost'] for r in records):.0f} over {len(records)} episodes, β = "
        f"{agent.beta:.2f}"
    )


if __name__ == "__main__":
    main()
