"""SQRL's recipe in a few lines: pre-train a shield where failing is cheap, carry it to the risky task.

Pre-train SAC + SQRL in ``safeshield/DrunkSpider-v0`` (noise 0.1), then fine-tune in
``safeshield/DrunkSpiderTarget-v0`` (noise 0.2) with the saved shield, counting failures.
Run: ``.venv/bin/python examples/transfer_drunk_spider.py`` (about a minute).
"""

import gymnasium as gym
import torch

import safeshield
from safeshield.agents import SAC, SACConfig


def main(pretrain_steps: int = 4000, finetune_steps: int = 2000) -> None:
    torch.set_num_threads(1)
    pre = safeshield.make("safeshield/DrunkSpider-v0", "sqrl", seed=0, pretraining=True, gamma_safe=0.65, hidden=(64, 64))
    agent = SAC(pre.observation_space, pre.action_space, SACConfig(hidden=(64, 64)), seed=0)
    pre.attach_policy(agent.sample_actions)
    agent.learn(pre, pretrain_steps, seed=0)
    pre.get_wrapper_attr("safety_model").save("runs/examples/spider_shield")

    target = safeshield.load("runs/examples/spider_shield", gym.make("safeshield/DrunkSpiderTarget-v0"),
                             train=True, pretraining=False, selection="uniform")
    target.attach_policy(agent.sample_actions)
    agent.set_safety_critic(target.get_wrapper_attr("safety_model").q_safe)  # SQRL Eq. 4
    agent.reset_buffer()
    records = agent.learn(target, finetune_steps, seed=1)
    failed = sum(r["failure"] for r in records)
    print(f"fine-tuning: {failed} failed episodes out of {len(records)}")


if __name__ == "__main__":
    main()
