"""SQRL's recipe in a few lines: pre-train a shield where failing is cheap, carry it to the risky task.

Pre-train SAC + SQRL in ``safeshield/DrunkSpider-v0`` (noise 0.1), then fine-tune in
``safeshield/DrunkSpiderTarget-v0`` (noise 0.2) with the saved shield (written under ``--out``),
counting failed episodes; the same SAC without a shield runs the same two phases for comparison.
Run: ``.venv/bin/python examples/transfer_drunk_spider.py`` (about two minutes).
The same from the command line: ``safeshield train --config drunkspider-demo --out runs/spider``.
"""

import argparse
from pathlib import Path

import gymnasium as gym
import torch

import safeshield
from safeshield.agents import SAC, SACConfig


def shielded_run(pretrain_steps: int, finetune_steps: int, out: Path) -> list[dict]:
    pre = safeshield.make(
        "safeshield/DrunkSpider-v0", "sqrl", seed=0, pretraining=True, gamma_safe=0.65, hidden=(64, 64)
    )
    agent = SAC(pre.observation_space, pre.action_space, SACConfig(hidden=(64, 64)), seed=0)
    pre.attach_policy(agent.sample_actions)
    agent.learn(pre, pretrain_steps, seed=0, progress=False)
    print(f"saving the pre-trained shield to {out}/")
    pre.get_wrapper_attr("safety_model").save(out)

    target = safeshield.load(
        out, gym.make("safeshield/DrunkSpiderTarget-v0"), train=True, pretraining=False, selection="uniform"
    )
    target.attach_policy(agent.sample_actions)
    agent.set_safety_critic(target.get_wrapper_attr("safety_model").q_safe)  # SQRL Eq. 4
    agent.reset_buffer()
    return agent.learn(target, finetune_steps, seed=1, progress=False)


def plain_run(pretrain_steps: int, finetune_steps: int) -> list[dict]:
    pre = gym.make("safeshield/DrunkSpider-v0")
    agent = SAC(pre.observation_space, pre.action_space, SACConfig(hidden=(64, 64)), seed=0)
    agent.learn(pre, pretrain_steps, seed=0, progress=False)
    agent.reset_buffer()
    return agent.learn(gym.make("safeshield/DrunkSpiderTarget-v0"), finetune_steps, seed=1, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=4000, help="pre-training steps (default 4000)")
    parser.add_argument("--finetune-steps", type=int, default=2000, help="fine-tuning steps (default 2000)")
    parser.add_argument("--out", default="runs/examples", help="where the shield is saved (default runs/examples)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, records in (
        ("SAC + SQRL", shielded_run(args.pretrain_steps, args.finetune_steps, Path(args.out) / "spider_shield")),
        ("SAC alone ", plain_run(args.pretrain_steps, args.finetune_steps)),
    ):
        print(f"{name} fine-tuning: {sum(r['failure'] for r in records)} failed episodes out of {len(records)}")
    print("(one seed: `safeshield demo` runs 3 seeds with confidence intervals)")


if __name__ == "__main__":
    main()
