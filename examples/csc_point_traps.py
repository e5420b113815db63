"""CSC in a few lines: a TRPO-Lagrangian agent learns Point trap navigation inside a CSC shield.

Run ``python examples/csc_point_traps.py [--steps 5000] [--paper]``.

The shield resamples the agent's own actions (``attach_policy``) when its conservative critic
Q_C rates the proposal above ε = χ − V̂_C and a draw is materially safer (the defaults; ``--paper``:
until Q_C is below ε = (1 − γ)(χ − V̂_C), Alg. 1 as published), and the agent folds the critic's Â_C
into its advantage (``set_cost_critic``). The same TRPO without a shield runs next, on the same seed, for
comparison; ``benchmarks/csc_nav.py`` does this over several seeds with a Q-ensemble arm.
"""

import argparse

import gymnasium as gym
import torch

import safeshield
from safeshield.agents import TRPOLagrangian, TRPOLagrangianConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="env steps per run (default 5000)")
    parser.add_argument("--paper", action="store_true", help="CSC exactly as published (preset='paper')")
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = safeshield.wrap(
        gym.make("safeshield/PointTraps-v0"),
        "csc",
        seed=0,
        chi=0.05,
        preset="paper" if args.paper else "default",
        train_every=10,
        updates_per_step=0.1,
    )  # one critic update per 10 steps, as the benchmark
    agent = TRPOLagrangian.for_env(env, TRPOLagrangianConfig(chi=0.05), seed=0)
    env.attach_policy(agent.sample_actions)
    agent.set_cost_critic(env.safety_model.q_c)
    records = agent.learn(env, args.steps, seed=0)

    failures = sum(r["failure"] for r in records)
    print(
        f"TRPO-Lagrangian + CSC: {len(records)} episodes, {failures} failures, threshold now "
        f"{env.safety_model.threshold:.2e} "
        f"(V̂_C = {env.safety_model.v_hat:.2f}), {env.total_fallbacks} fallbacks, λ = {agent.lam:.3f}"
    )

    plain = TRPOLagrangian.for_env(gym.make("safeshield/PointTraps-v0"), TRPOLagrangianConfig(chi=0.05), seed=0)
    records = plain.learn(gym.make("safeshield/PointTraps-v0"), args.steps, seed=0)
    print(f"TRPO, no shield:       {len(records)} episodes, {sum(r['failure'] for r in records)} failures")


if __name__ == "__main__":
    main()
