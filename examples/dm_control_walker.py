"""Shield a dm-control suite task in one line: the walker, failing when its torso falls below 0.6 m.

dm-control tasks never terminate and report no cost, so the failure is read from the observation
with a callable indicator (``safeshield.integrations.dm_control.walker_fell``: ``obs["height"]``
below 0.6 m, where the task's standing reward has dropped to a tenth). The same SB3 SAC trains
with and without the shield on the same seed; the script prints both runs' fallen steps and the
shield's interventions. It writes nothing to disk.

Needs ``pip install "shimmy[dm-control]" stable-baselines3``. The same from the command line:
``safeshield train --env dm_control/walker-walk-v0 --indicator safeshield.integrations.dm_control:walker_fell``.
"""

import argparse

import gymnasium as gym
import torch
from stable_baselines3 import SAC

from safeshield.integrations import dm_control
from safeshield.integrations.sb3 import ShieldCallback


def train(shielded: bool, steps: int, seed: int) -> tuple[int, int]:
    """Fallen steps and interventions of SB3 SAC on walker-walk for ``steps`` steps."""
    if shielded:
        env = dm_control.make("walker-walk", "sqrl", seed=seed)  # the one line
    else:
        dm_control.register()
        env = gym.make("dm_control/walker-walk-v0")
    fallen = Fallen(env)
    flat = gym.wrappers.FlattenObservation(fallen)  # SB3's MlpPolicy wants a Box; the shield saw the dict
    callback = ShieldCallback() if shielded else None
    SAC("MlpPolicy", flat, learning_starts=500, seed=seed, verbose=0).learn(steps, callback=callback)
    return fallen.count, callback.stats.interventions if shielded else 0


class Fallen(gym.Wrapper):
    """Counts the steps the walker spends fallen, with the shield's own indicator."""

    def __init__(self, env):
        super().__init__(env)
        self.count = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += int(dm_control.walker_fell(obs, reward, terminated, truncated, info))
        return obs, reward, terminated, truncated, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps per run (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both runs (default 0)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for shielded in (False, True):
        fallen, interventions = train(shielded, args.steps, args.seed)
        name = "SAC + SQRL shield" if shielded else "SAC, no shield   "
        print(f"{name}: fallen on {fallen / args.steps:.0%} of {args.steps} steps, {interventions} interventions")
    print("(one seed and a few thousand steps: a demonstration of the wiring, not evidence of an effect)")


if __name__ == "__main__":
    main()
