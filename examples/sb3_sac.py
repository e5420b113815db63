"""Stable-Baselines3 SAC learning DrunkSpider with and without an SQRL shield (one line + one callback).

The shielded run changes two lines of a plain SB3 script: the env is wrapped
(``safeshield.wrap``) and ``learn`` gets ``ShieldCallback()``, which stores the action the shield
executed in SAC's replay buffer and draws the shield's candidates from SAC's own policy.
Prints failing episodes (the spider fell into the lava) for both runs. With ``--tensorboard DIR``
both runs log there (announced), the shielded one with the shield's ``shield/*`` tags next to
SB3's own. About a minute on one core; run: ``.venv/bin/python examples/sb3_sac.py [--steps 2000]``.
"""

import argparse

import gymnasium as gym
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

import safeshield
from safeshield.integrations.sb3 import ShieldCallback

ENV_ID = "safeshield/DrunkSpider-v0"


class CountFailures(BaseCallback):
    """Count steps whose ``info["failure"]`` is set (DrunkSpider reports falling into a pit)."""

    def __init__(self):
        super().__init__()
        self.failures = 0

    def _on_step(self) -> bool:
        self.failures += sum(bool(info.get("failure")) for info in self.locals["infos"])
        return True


def train(steps: int, shielded: bool, seed: int = 0, tensorboard: str | None = None) -> int:
    env = gym.make(ENV_ID)
    callbacks = [CountFailures()]
    if shielded:
        env = safeshield.wrap(env, "sqrl", seed=seed, learning_starts=200, hidden=(64, 64))  # the one line
        callbacks.append(ShieldCallback())  # the optional adapter
    model = SAC(
        "MlpPolicy",
        env,
        learning_starts=200,
        batch_size=64,
        gamma=0.95,
        policy_kwargs={"net_arch": [64, 64]},
        seed=seed,
        tensorboard_log=tensorboard,
    )
    model.learn(steps, callback=CallbackList(callbacks), tb_log_name="sac_sqrl" if shielded else "sac")
    if shielded:
        print(f"  shield: {env.total_interventions} interventions, {env.total_fallbacks} fallbacks")
    return callbacks[0].failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run (default 2000)")
    parser.add_argument(
        "--tensorboard", metavar="DIR", help="write TensorBoard logs of both runs to DIR (default: none)"
    )
    args = parser.parse_args()
    steps = args.steps
    torch.set_num_threads(1)
    if args.tensorboard:
        print(f"writing TensorBoard logs to {args.tensorboard}/ (tensorboard --logdir {args.tensorboard})")
    plain = train(steps, shielded=False, tensorboard=args.tensorboard)
    print(f"SAC without shield: {plain} failures in {steps} steps")
    shielded = train(steps, shielded=True, tensorboard=args.tensorboard)
    print(f"SAC inside an SQRL shield: {shielded} failures in {steps} steps")


if __name__ == "__main__":
    main()
