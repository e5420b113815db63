"""Shadow mode: a shield learns beside a controller you already run, reports, then acts.

A noisy hand-written PD controller balances ``InvertedPendulum-v5`` and drops the pole now and
then. The shield first runs in shadow (``enforce=False``): every action runs unchanged while the
shield scores it, learns from the falls and keeps its quality report. The report says how well
its risk foresees a fall and what it would have refused. Then it is switched on
(``env.set_wrapper_attr("enforce", True)``) and the same controller runs on. Each phase is
compared with the controller alone on the same seed: in shadow the two runs are the same steps.
Run:
``.venv/bin/python examples/shadow_mode.py [--steps N]``.
"""

import argparse

import gymnasium as gym
import numpy as np
import torch

import safeshield

GAINS = (1.0, 10.0, 1.0, 2.0)  # cart position, pole angle, cart velocity, pole angular velocity
NOISE = 2.0  # the controller's actuation noise (N): enough to drop the pole about once in 60 steps


def run(env: gym.Env, steps: int, seed: int) -> int:
    """The noisy PD controller for ``steps`` steps; returns the falls (terminations)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    falls = 0
    for _ in range(steps):
        force = np.clip(np.dot(GAINS, obs) + NOISE * rng.standard_normal(), -3.0, 3.0)
        obs, _, terminated, truncated, _ = env.step(np.array([force], dtype=np.float32))
        falls += int(terminated)
        if terminated or truncated:
            obs, _ = env.reset()
    return falls


def per_1000(falls: int, steps: int) -> float:
    return 1000.0 * falls / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="steps of each phase (default 5000)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    alone = [run(gym.make("InvertedPendulum-v5"), args.steps, seed) for seed in (0, 1)]
    env = safeshield.wrap(gym.make("InvertedPendulum-v5"), "sqrl", indicator="terminated", seed=0, enforce=False)
    shadow = run(env, args.steps, seed=0)
    report = env.quality_report()
    print(
        f"shield in shadow:  {per_1000(shadow, args.steps):5.1f} falls per 1000 steps; "
        f"the controller alone, same seed: {per_1000(alone[0], args.steps):5.1f} (shadow changes nothing)"
    )
    print(
        f"  its report: AUC {report['auc']:.2f} for a fall within {report['horizon']} steps; it would have refused "
        f"{report['rejection_rate']:.0%} of the actions, of which {report['failure_rate_rejected']:.0%} were "
        f"followed by a fall, against {report['failure_rate_passed']:.0%} of the ones it would have passed"
    )
    env.set_wrapper_attr("enforce", True)
    enforced = run(env, args.steps, seed=1)
    print(
        f"shield enforcing:  {per_1000(enforced, args.steps):5.1f} falls per 1000 steps; "
        f"the controller alone, same seed: {per_1000(alone[1], args.steps):5.1f} "
        f"({env.get_wrapper_attr('total_interventions')} actions replaced)"
    )
    print("(one seed: a demonstration, not evidence)")


if __name__ == "__main__":
    main()
