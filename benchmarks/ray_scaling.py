"""Scaling of one shared shield learner over Ray runners: measured at 1 and 2 runners, projected to 60.

Run ``python benchmarks/ray_scaling.py [--quick] [--out benchmarks/results/ray_scaling]``.

Set-up: ``safeshield/DrunkSpider-v0`` (pure numpy), an SQRL shield with its default networks
(2 x 256) and schedule (one gradient step of batch 256 per stored transition), runners
(``ShieldRunner`` actors, one logical CPU each) proposing uniform random actions, one
``ShieldLearner`` actor. Local Ray, ``num_cpus=2``, one torch thread per process. Two regimes:

- ``collect``: the learner only stores (``learning_starts`` above the run): the pipeline's own
  cost (runner step + recording + shipping + storing);
- ``learn``: the default schedule, learning from the first timed step.

For each regime, number of runners (1, 2) and seed, a fresh learner and runners run an untimed
warm-up, then ``--steps`` steps per runner, timed by the driver from launch to the last
acknowledgement. Reported (mean ± 95 % CI over seeds): env steps/s (all runners), shield
updates/s, the learner's busy fraction and seconds per stored transition, the runner's own
seconds per step (its time minus waiting for acknowledgements and loading weights), and a
weight broadcast's cost (publish on the learner: ``state_dict`` -> numpy -> ``ray.put``; fetch
+ load on a runner). The projection to 60 runners combines these per-unit costs (model in
``docs/ray.md``). Outputs: ``<out>/results.json`` and ``<out>/scaling.png``.

The numbers are noisy: the 2 cores are shared with other work, and a second runner competes
with the learner for the same 2 cores, which a cluster would not.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import ray

from safeshield.experiments.runner import mean_ci, write_json
from safeshield.integrations import ray as safeshield_ray

ENV_ID = "safeshield/DrunkSpider-v0"
PROJECT_TO = (1, 2, 4, 8, 16, 32, 60)


def measure(regime: str, n_runners: int, seed: int, steps: int, warm: int, flush_every: int) -> dict:
    """One timed run of ``n_runners`` runners feeding a fresh learner."""
    options = {"learning_starts": 10**9} if regime == "collect" else {"learning_starts": 256}
    spec = safeshield_ray.ShieldSpec(ENV_ID, "sqrl", options=options, seed=seed)
    shared = safeshield_ray.SharedShield(spec, flush_every=flush_every)
    runners = shared.start_runners(n_runners)
    ray.get([runner.run.remote(max(warm, 256 // n_runners + flush_every)) for runner in runners])
    learner0, runners0 = shared.stats(), ray.get([r.stats.remote() for r in runners])
    start = time.perf_counter()
    runs = ray.get([runner.run.remote(steps) for runner in runners])
    wall = time.perf_counter() - start
    learner1 = shared.stats()
    payload = ray.get(ray.get(shared.learner.weights.remote())["weights"][0])
    for handle in (*runners, shared.learner):
        ray.kill(handle, no_restart=True)

    stored = learner1["total_added"] - learner0["total_added"]
    versions = learner1["version"] - learner0["version"]
    runner_own, fetch_per_version = [], []
    for before, after in zip(runners0, runs):
        loaded = len(after["versions"]) - len(before["versions"])
        fetch = (after["fetch_s"] + after["load_s"]) - (before["fetch_s"] + before["load_s"])
        wait = after["wait_s"] - before["wait_s"]
        runner_own.append((after["seconds"] - wait - fetch) / steps)
        if loaded:
            fetch_per_version.append(fetch / loaded)
    return {
        "regime": regime,
        "runners": n_runners,
        "seed": seed,
        "steps_per_runner": steps,
        "wall_s": wall,
        "env_steps_per_s": n_runners * steps / wall,
        "updates_per_s": (learner1["updates"] - learner0["updates"]) / wall,
        "learner_busy": (learner1["learn_s"] - learner0["learn_s"] + learner1["publish_s"] - learner0["publish_s"])
        / wall,
        "learner_s_per_transition": (learner1["learn_s"] - learner0["learn_s"]) / max(stored, 1),
        "versions_per_transition": versions / max(stored, 1),
        "publish_s_per_version": (learner1["publish_s"] - learner0["publish_s"]) / max(versions, 1),
        "runner_fetch_load_s_per_version": float(np.mean(fetch_per_version)) if fetch_per_version else math.nan,
        "runner_own_s_per_step": float(np.mean(runner_own)),
        "payload_bytes": int(sum(a.nbytes for a in payload["tensors"].values())),
        "transitions_stored": stored,
    }


def summarise(runs: list[dict]) -> dict:
    keys = [k for k, v in runs[0].items() if k not in ("regime", "runners", "seed", "steps_per_runner")]
    out = {}
    for key in keys:
        values = [float(r[key]) for r in runs if not math.isnan(r[key])]
        mean, half = mean_ci(values) if values else (math.nan, math.nan)
        out[key] = {"mean": mean, "ci95": half, "n": len(values)}
    return out


def project(summary: dict, flush_every: int, env_step_s: tuple[float, ...] = (0.0, 1e-3, 1e-2)) -> dict:
    """Per-unit costs -> throughput at N runners, each on its own core (model in docs/ray.md).

    The learner's second is spent on storing (``store`` per transition), updating (``update``
    per gradient step) and publishing (``publish`` per version; at most one version per chunk of
    ``flush_every`` transitions and one per update). With ``o`` transitions/s offered, the
    updates/s it can afford solve ``store o + update u + publish min(u, o / flush_every) = 1``.
    ``env_step_s``: extra env cost per step added to the measured runner step (0 = DrunkSpider as
    measured; 1 ms and 10 ms stand for MuJoCo- and PyBullet-robot-sized envs, an assumption).
    """

    def mean(regime: str, key: str) -> float:
        values = [summary[f"{regime}/{n}"][key]["mean"] for n in (1, 2) if f"{regime}/{n}" in summary]
        return float(np.nanmean(values))

    runner_step = mean("collect", "runner_own_s_per_step")  # a runner's own work per step, learner idle
    fetch = mean("learn", "runner_fetch_load_s_per_version")
    publish = mean("learn", "publish_s_per_version")
    store = mean("collect", "learner_s_per_transition")  # learner: store only
    update = max(mean("learn", "learner_s_per_transition") - store, 1e-12)  # default schedule: 1 update each
    payload = mean("learn", "payload_bytes")

    def affordable_updates(offered: float) -> float:
        left = 1.0 - store * offered
        few = left / (update + publish)  # a version per update
        if few <= offered / flush_every:
            return max(few, 0.0)
        return max((left - publish * offered / flush_every) / update, 0.0)  # a version per chunk

    scenarios = {}
    for extra in env_step_s:
        runner_rate = 1.0 / (runner_step + extra)
        table = {}
        for n in PROJECT_TO:
            offered = n * runner_rate
            # default schedule (one update per transition): runners wait for the learner beyond this
            steps = (
                offered if affordable_updates(offered) >= offered else 1.0 / (store + update + publish / flush_every)
            )
            updates = affordable_updates(offered)
            versions = min(updates, offered / flush_every)
            table[str(n)] = {
                "offered_env_steps_per_s": offered,
                "env_steps_per_s_default_schedule": steps,
                "affordable_updates_per_s": updates,
                "train_every_needed": math.ceil(offered / updates) if updates > 0 else None,
                "broadcast_mb_per_s": n * versions * payload / 1e6,  # every runner loads every version
                "runner_fetch_share": versions * fetch,  # of each runner's second
            }
        scenarios[f"env_step_+{extra * 1e3:g}ms"] = {"runner_env_steps_per_s": runner_rate, "by_runners": table}
    return {
        "per_unit": {
            "runner_s_per_step": runner_step,
            "runner_fetch_load_s_per_version": fetch,
            "learner_store_s_per_transition": store,
            "learner_update_s": update,
            "learner_publish_s_per_version": publish,
            "payload_bytes": payload,
            "flush_every": flush_every,
        },
        "learner_max_updates_per_s": 1.0 / (update + publish / flush_every),  # one version per chunk
        "learner_max_stored_transitions_per_s": 1.0 / store,
        "scenarios": scenarios,
    }


def plot(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for offset, regime in ((-0.15, "collect"), (0.15, "learn")):
        ns = [n for n in (1, 2) if f"{regime}/{n}" in document["summary"]]
        stats = [document["summary"][f"{regime}/{n}"]["env_steps_per_s"] for n in ns]
        left.bar(
            np.array(ns) + offset,
            [s["mean"] for s in stats],
            width=0.3,
            yerr=[s["ci95"] for s in stats],
            label=regime,
            capsize=4,
        )
    left.set(
        xlabel="runners",
        ylabel="env steps / s (all runners)",
        xticks=[1, 2],
        yscale="log",
        title="measured (2 shared cores), mean ± 95 % CI",
    )
    left.legend()
    for name, scenario in document["projection"]["scenarios"].items():
        table = scenario["by_runners"]
        ns = [int(n) for n in table]
        line = right.plot(ns, [table[str(n)]["offered_env_steps_per_s"] for n in ns], "o--", label=f"runners ({name})")
        right.plot(ns, [table[str(n)]["env_steps_per_s_default_schedule"] for n in ns], "-", color=line[0].get_color())
    right.set(
        xscale="log",
        yscale="log",
        xlabel="runners",
        ylabel="env steps / s",
        title="projection: dashed runners, solid + 1 update/step",
    )
    right.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 300 steps per runner (for 'does it run')")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500, help="timed steps per runner")
    parser.add_argument("--warm", type=int, default=300, help="untimed steps per runner first")
    parser.add_argument("--flush-every", type=int, default=64)
    parser.add_argument("--regimes", nargs="+", default=["collect", "learn"], choices=["collect", "learn"])
    parser.add_argument("--out", default="benchmarks/results/ray_scaling")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.warm = 1, 300, 100
    safeshield_ray.init(num_cpus=2)
    runs = []
    for seed in range(args.seeds):
        for regime in args.regimes:
            for n in (1, 2):
                runs.append(measure(regime, n, seed, args.steps, args.warm, args.flush_every))
                print(
                    f"{regime:7s} runners={n} seed={seed}: {runs[-1]['env_steps_per_s']:8.0f} env steps/s, "
                    f"{runs[-1]['updates_per_s']:6.0f} updates/s",
                    flush=True,
                )
    ray.shutdown()
    summary = {
        f"{r}/{n}": summarise([x for x in runs if x["regime"] == r and x["runners"] == n])
        for r in args.regimes
        for n in (1, 2)
    }
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "ray": ray.__version__,
            "load_average": os.getloadavg(),
        },
        "settings": {
            **vars(args),
            "env": ENV_ID,
            "shield": "sqrl (defaults: 2 x 256, batch 256, 1 update/step)",
            "ray_num_cpus": 2,
        },
        "note": "2 cores shared with other processes during the run: absolute numbers are noisy; "
        "the second runner competes with the learner for the same cores.",
        "runs": runs,
        "summary": summary,
    }
    if {"collect", "learn"} <= set(args.regimes):
        document["projection"] = project(summary, args.flush_every)
    out = Path(args.out)
    write_json(out / "results.json", document)
    if not args.no_plot and "projection" in document:
        plot(document, out / "scaling.png")
    return document


if __name__ == "__main__":
    main()
