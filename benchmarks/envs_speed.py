"""Steps per second of each safeshield robot env, raw and inside a frozen SQRL shield.

For every env: build time (first ``gym.make`` and ``reset`` in this process; robosuite's includes
its import and numba warm-up), then ``--steps`` uniform-random steps raw and the same number through
``safeshield.wrap(env, "sqrl", train=False)`` (SQRL's default 2 x 256 critic, untrained, so
the shield's rejections and resampling happen as they would early in training), with resets on
episode end. Reported per env: steps per wall-second and per CPU-second of this process (the
CPU figure is the one to compare across runs on a shared machine), the shield's slowdown, and
the share of steps where it intervened. One torch thread, one process.

    .venv/bin/python benchmarks/envs_speed.py            # 2000 steps per env and mode
    .venv/bin/python benchmarks/envs_speed.py --quick    # 100 steps, checks the plumbing

Writes ``results.json`` and ``envs_speed.png`` into ``benchmarks/results/envs_speed/``
(``.../quick/`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "envs_speed"
# (env id, the optional engine it needs)
ENVS = (
    ("safeshield/DrunkSpider-v0", None),
    ("safeshield/Minitaur-v0", "pybullet"),
    ("safeshield/MinitaurRandomized-v0", "pybullet"),
    ("safeshield/Laikago-v0", "pybullet"),
    ("safeshield/ShadowHandCubeRotate-v0", "gymnasium_robotics"),
    ("safeshield/PandaPushNoTopple-v0", "robosuite"),
)


def _run(env, steps: int, seed: int) -> dict:
    """``steps`` random steps with auto-reset: wall and CPU seconds, episodes, interventions."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    episodes = interventions = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        interventions += bool(info.get("shield", {}).get("intervened", False))
        if terminated or truncated:
            episodes += 1
            env.reset()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "steps": steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "steps_per_wall_s": steps / wall,
        "steps_per_cpu_s": steps / max(cpu, 1e-9),
        "episodes": episodes,
        "intervention_rate": interventions / steps,
    }


def measure(env_id: str, steps: int, seed: int = 0) -> dict:
    import gymnasium as gym

    import safeshield

    start = time.perf_counter()
    env = gym.make(env_id)
    env.reset(seed=seed)  # the PyBullet envs load their URDF on the first reset
    build_s = time.perf_counter() - start
    raw = _run(env, steps, seed)
    shielded_env = safeshield.wrap(env, "sqrl", train=False, seed=seed)
    shielded = _run(shielded_env, steps, seed)
    shielded_env.close()
    return {
        "env_id": env_id,
        "obs_dim": int(np.prod(env.observation_space.shape)),
        "act_dim": int(np.prod(env.action_space.shape)),
        "build_s": build_s,
        "raw": raw,
        "shielded": shielded,
        "shield_slowdown_cpu": raw["steps_per_cpu_s"] / shielded["steps_per_cpu_s"],
    }


def _plot(results: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["env_id"].split("/")[1] for r in results]
    x = np.arange(len(results))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(x - 0.2, [r["raw"]["steps_per_cpu_s"] for r in results], 0.4, label="raw")
    ax.bar(x + 0.2, [r["shielded"]["steps_per_cpu_s"] for r in results], 0.4, label="SQRL shield (frozen)")
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set(ylabel="env steps per CPU-second (1 thread)", title="safeshield envs: raw vs shielded speed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 steps per env and mode; writes to .../quick/")
    parser.add_argument("--steps", type=int, default=2000, help="random steps per env and mode")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from tqdm.auto import tqdm

    from safeshield.experiments.runner import write_json

    steps = 100 if args.quick else args.steps
    out = RESULTS / "quick" if args.quick else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    results, skipped = [], []
    for env_id, engine in tqdm(ENVS, desc="envs speed", disable=not sys.stderr.isatty()):
        if engine is not None and importlib.util.find_spec(engine) is None:
            skipped.append({"env_id": env_id, "missing": engine})
            continue
        results.append(measure(env_id, steps))
    document = {
        "steps_per_mode": steps,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "results": results,
        "skipped": skipped,
    }
    write_json(out / "results.json", document)
    plot = _plot(results, out / "envs_speed.png")
    print("env | build s | raw steps/CPU-s | shielded steps/CPU-s | slowdown | interventions | raw steps/wall-s")
    for r in results:
        print(
            f"{r['env_id']} | {r['build_s']:.1f} | {r['raw']['steps_per_cpu_s']:.0f} | "
            f"{r['shielded']['steps_per_cpu_s']:.0f} | "
            f"{r['shield_slowdown_cpu']:.2f}x | {r['shielded']['intervention_rate']:.0%} | "
            f"{r['raw']['steps_per_wall_s']:.0f}"
        )
    for s in skipped:
        print(f"{s['env_id']}: skipped, {s['missing']} not installed")
    print(f"wrote {out / 'results.json'} and {plot}")
    return document


if __name__ == "__main__":
    main()
