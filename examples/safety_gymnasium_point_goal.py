"""A shield learning from Safety-Gymnasium's cost signal (``indicator="cost"``) on SafetyPointGoal1.

The agent is a fixed wanderer (full thrust, small random turns), so the comparison isolates
the shield: the same drive with and without an SQRL shield that learns online which
(observation, action) pairs lead into hazards. Prints costly steps for both.

safety-gymnasium is optional and not in the project's environment; install it next to
gymnasium 1.x with ``pip install --no-deps safety-gymnasium xmltodict pyyaml`` (its own pins would
downgrade gymnasium); ``safeshield.integrations.safety_gymnasium.make`` applies the compat shim.
Run: ``.venv/bin/python examples/safety_gymnasium_point_goal.py [--steps 4000]``.
"""

import argparse
import importlib.util
import sys

import numpy as np
import torch

import safeshield


def drive(env, steps: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    costly = 0
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(np.array([1.0, rng.uniform(-0.3, 0.3)]))
        costly += info["cost"] > 0
        if terminated or truncated:
            env.reset()
    return int(costly)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    steps = parser.parse_args().steps
    if importlib.util.find_spec("safety_gymnasium") is None:
        sys.exit("safety-gymnasium is not installed: pip install --no-deps safety-gymnasium xmltodict pyyaml")
    from safeshield.integrations.safety_gymnasium import make

    torch.set_num_threads(1)
    print(f"without shield: {drive(make('SafetyPointGoal1-v0'), steps)} costly steps in {steps}")
    shielded = safeshield.wrap(
        make("SafetyPointGoal1-v0"), "sqrl", indicator="cost", seed=0, learning_starts=500, hidden=(64, 64)
    )
    print(
        f"inside an SQRL shield: {drive(shielded, steps)} costly steps in {steps} "
        f"({shielded.total_interventions} interventions)"
    )


if __name__ == "__main__":
    main()
