"""Soak: a learning shield over >= 1M steps keeps its memory flat once its buffer is full.

Run ``nice -n 5 python benchmarks/soak.py [--quick] [--steps 1000000] [--seeds 3] [--out benchmarks/results/soak]``.

Each seed runs in its own process (so one run's resident memory is not another's; the seeds run
side by side): an SQRL
shield (32x32 critic, 50k-row buffer, one update per 1,000 stored steps: a slowly learning
shield, so the run fits in minutes on a shared CPU) around ``safeshield/DrunkSpider-v0`` (pure
numpy, ~7 us a step) steps ``--steps`` times with uniformly random actions. Every
``--nonfinite-every`` steps the observation is replaced by NaN and the shield, built with
``on_nonfinite="risky"``, must treat the step as risky and store nothing of it: at the end every
stored value and every weight must be finite. Resident memory (``/proc/self/statm``) and
Python's object count are sampled every ``--sample-every`` steps.

Writes ``results.json``: per seed, the samples, steps per second, RSS growth after the buffer is
full (last sample minus the first sample after ``fill + warm`` steps, in MB) and its least-squares
slope (MB per million steps); over seeds, mean and 95 % CI of those. ``rss.png``: RSS against
steps, one line per seed, the buffer-full point marked.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from safeshield.experiments.runner import write_json

CAPACITY = 50_000
ENV_ID = "safeshield/DrunkSpider-v0"


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def nan_every(env, every: int):
    """``env`` with every ``every``-th observation replaced by NaN (the shield must shrug it off)."""
    import gymnasium as gym

    class NaNEvery(gym.Wrapper):
        t = 0

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.t += 1
            if every and self.t % every == 0:
                obs = np.full_like(obs, np.nan)
            return obs, reward, terminated, truncated, info

    return NaNEvery(env)


def worker(seed: int, steps: int, sample_every: int, nonfinite_every: int) -> dict:
    import gymnasium as gym
    import torch

    import safeshield

    torch.set_num_threads(1)
    options = dict(hidden=(32, 32), buffer_capacity=CAPACITY, learning_starts=CAPACITY // 2, train_every=1000)
    if "updates_per_step" in safeshield.methods()["sqrl"]:  # the learning-schedule API of issue 16
        options["updates_per_step"] = 1 / 1000
    poisoned = nan_every(gym.make(ENV_ID), nonfinite_every)
    env = safeshield.wrap(poisoned, "sqrl", seed=seed, on_nonfinite="risky", **options)
    model = env.get_wrapper_attr("safety_model")
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    samples, block = [], 10_000
    start = time.perf_counter()
    done_steps = 0
    risky = 0
    while done_steps < steps:
        actions = rng.uniform(-1, 1, (block, 2)).astype(np.float32)
        for action in actions[: steps - done_steps]:
            _, _, terminated, truncated, info = env.step(action)
            risky += info["shield"]["risk"] == math.inf
            if terminated or truncated:
                env.reset()
            done_steps += 1
            if done_steps % sample_every == 0:
                samples.append(
                    {
                        "step": done_steps,
                        "rss_mb": rss_mb(),
                        "objects": len(gc.get_objects()),
                        "stored": int(model.buffer.total_added),
                        "updates": int(model.updates),
                    }
                )
    seconds = time.perf_counter() - start
    stored = len(model.buffer)
    finite = bool(
        np.isfinite(model.buffer.obs[:stored]).all()
        and np.isfinite(model.buffer.next_obs[:stored]).all()
        and all(bool(torch.isfinite(p).all()) for p in model.parameters())
    )
    return {
        "seed": seed,
        "steps": steps,
        "seconds": seconds,
        "steps_per_second": steps / seconds,
        "samples": samples,
        "nonfinite_observations": poisoned.t // nonfinite_every if nonfinite_every else 0,
        "steps_reported_risky": int(risky),
        "all_stored_values_and_weights_finite": finite,
    }


def growth(samples: list[dict], after: int) -> tuple[float, float]:
    """RSS growth (MB) and slope (MB per 1M steps) over the samples at ``step >= after``."""
    tail = [s for s in samples if s["step"] >= after]
    if len(tail) < 2:
        return math.nan, math.nan
    steps = np.array([s["step"] for s in tail], dtype=np.float64)
    rss = np.array([s["rss_mb"] for s in tail])
    slope = np.polyfit(steps / 1e6, rss, 1)[0]
    return float(rss[-1] - rss[0]), float(slope)


def mean_ci(values) -> tuple[float, float]:
    from safeshield.experiments.runner import mean_ci as runner_mean_ci

    return runner_mean_ci(values)


def plot(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in document["runs"]:
        ax.plot([s["step"] for s in run["samples"]], [s["rss_mb"] for s in run["samples"]], label=f"seed {run['seed']}")
    ax.axvline(document["settings"]["flat_after_step"], color="grey", ls="--", lw=1, label="buffer full + warm-up")
    ax.set_xlabel("env steps")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title(
        f"Soak: SQRL shield on DrunkSpider, NaN observation every {document['settings']['nonfinite_every']} steps"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 100k steps (about a minute)")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sample-every", type=int, default=10_000)
    parser.add_argument("--nonfinite-every", type=int, default=10_007)
    parser.add_argument(
        "--warm", type=int, default=100_000, help="steps after the buffer fills before memory must be flat"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "soak")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps, seeds = (100_000, 1) if args.quick else (args.steps, args.seeds)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, steps, args.sample_every, args.nonfinite_every)))
        return {}
    flat_after = min(CAPACITY + args.warm, steps // 2)
    commands = [
        [
            sys.executable,
            __file__,
            "--worker",
            str(seed),
            "--steps",
            str(steps),
            "--sample-every",
            str(args.sample_every),
            "--nonfinite-every",
            str(args.nonfinite_every),
        ]
        for seed in range(seeds)
    ]
    # the seeds run side by side (each in its own process, so each one's resident memory is its own)
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        for command in commands
    ]
    runs = []
    for seed, child in enumerate(children):
        output, _ = child.communicate()
        if child.returncode:
            raise RuntimeError(f"soak worker for seed {seed} failed with exit status {child.returncode}")
        run = json.loads(output.strip().splitlines()[-1])
        run["rss_growth_mb"], run["rss_slope_mb_per_million_steps"] = growth(run["samples"], flat_after)
        print(
            f"seed {seed}: {run['steps_per_second']:.0f} steps/s, RSS growth after step {flat_after}: "
            f"{run['rss_growth_mb']:.2f} MB, slope {run['rss_slope_mb_per_million_steps']:.2f} MB/1M steps",
            flush=True,
        )
        runs.append(run)
    summary = {}
    for key in ("rss_growth_mb", "rss_slope_mb_per_million_steps", "steps_per_second"):
        mean, half = mean_ci([r[key] for r in runs]) if len(runs) > 1 else (runs[0][key], math.nan)
        summary[key] = {"mean": mean, "ci95": half}
    document = {
        "benchmark": "soak",
        "settings": {
            "env": ENV_ID,
            "method": "sqrl",
            "buffer_capacity": CAPACITY,
            "steps": steps,
            "seeds": seeds,
            "sample_every": args.sample_every,
            "nonfinite_every": args.nonfinite_every,
            "flat_after_step": flat_after,
            "quick": args.quick,
        },
        "summary": summary,
        "all_finite": all(r["all_stored_values_and_weights_finite"] for r in runs),
        "runs": runs,
    }
    write_json(args.out / "results.json", document)
    plot(document, args.out / "rss.png")
    return document


if __name__ == "__main__":
    main()
