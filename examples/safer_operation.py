"""SAFER in four steps: collect labelled data, train the prior (Alg. 2), bound the latent box
(Alg. 3), and let an agent act inside it through the remap shield.

Data and prior are written under ``--out`` (announced). Random latent actions through the shield
are compared with random actions on the bare env. Run ``python examples/safer_operation.py``
(about a minute on one CPU core; tiny sizes, so the comparison shows the wiring, not the effect).
"""

import argparse
from pathlib import Path

import gymnasium as gym
import torch

import safeshield
from safeshield.environments.operation import EVAL_TASKS, ScriptedGrasp
from safeshield.shields.safer import SAFER, SAFERConfig
from safeshield.shields.safer.dataset import OfflineDataset, collect_episodes


def violations_of_random_actions(env: gym.Env, steps: int = 50, seed: int = 0) -> int:
    """omega summed over one episode (at most ``steps`` steps) of uniform actions in ``env``'s space."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    total = 0
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        total += int(info["shield"]["failure"] if "shield" in info else info["failure"])
        if terminated or truncated:
            break
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20, help="scripted episodes of data (default 20)")
    parser.add_argument("--out", default="runs/safer_example", help="folder for the data and the prior")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    task = EVAL_TASKS[0]
    env = gym.make(f"safeshield/Operation{task:02d}-v0")

    # 1. labelled data from a noisy scripted grasp (omega and success per step), in the documented format
    data = collect_episodes(env, ScriptedGrasp(noise=0.5), episodes=args.episodes, seed=0)
    print(f"writing the data to {out / 'data.h5'} and the prior to {out / 'prior'}/")
    data.save(out / "data.h5")
    print(
        f"{len(data)} steps, {data.violations.mean():.1%} violations, D_safe {data.safe_rows().size}, "
        f"D_unsafe {data.unsafe_rows().size}"
    )

    # 2. the prior (Alg. 2) and 3. the latent bound for <= 15 % unsafe (Alg. 3, exact variant)
    prior = SAFER(env.observation_space, env.action_space, SAFERConfig(flow_hidden=(64, 64), batch_size=64), seed=0)
    prior.fit(OfflineDataset.load(out / "data.h5"), steps=200, progress=False)
    print("eta =", prior.calibrate(data, max_unsafe_fraction=0.15))
    prior.save(out / "prior")

    # 4. any agent now acts in Box(-1, 1)^4; the shield executes a = f(eta * u; s, E[c | window])
    shielded = safeshield.load(out / "prior", gym.make(f"safeshield/Operation{task:02d}-v0"))
    print(
        "random actions, bare env:        "
        f"{violations_of_random_actions(gym.make(f'safeshield/Operation{task:02d}-v0'))} violations"
    )
    print(f"random latent actions, shielded: {violations_of_random_actions(shielded)} violations")


if __name__ == "__main__":
    main()
