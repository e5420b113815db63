"""The training shield's update-to-data ratio: failures during learning against wall-clock.

Run ``python benchmarks/update_ratio.py [--quick] [--out benchmarks/results/update_ratio]``.

SB3 SAC and SB3 PPO (their defaults) learn ``InvertedDoublePendulum-v5`` (a failure = the pole
falls: ``terminated``), without a shield and inside a training SQRL shield (defaults, candidates
from the agent's own policy through ``ShieldCallback``) whose critic takes ``updates_per_step``
gradient steps per env step, for each ratio in ``--ratios``. Per run: failures (terminated
episodes) during learning, episodes, the mean return of the last 10 episodes, the shield's
interventions, fallbacks and updates, and the wall-clock and process CPU time of ``model.learn``.

The trade-off: a lower ratio costs less time but the critic learns less per env step, so it may
stop protecting. The figure (``<out>/update_ratio.png``) shows failures and the time ratio
(shielded / plain, same seed) against the update ratio, mean ± 95 % CI over seeds.

Budget: a short run (``--sac-steps``, ``--ppo-steps``) on a shared 2-core machine, 3 seeds; the
runs go through ``run_jobs`` (spawned workers, one torch and one BLAS thread each). Wall-clock
ratios from parallel workers on a loaded machine are noisy; the CPU-time ratio is reported next
to them. ``benchmarks/overhead.py`` measures the wall-clock ratio of the chosen default alone.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
import time
from pathlib import Path
from typing import Any

from safeshield.experiments.runner import Job, mean_ci, run_jobs, write_json
from safeshield.experiments.sb3_cost import sb3_run

ENV_ID = "InvertedDoublePendulum-v5"
RATIOS = (1.0, 0.3, 0.1, 0.03)
SCALES = {
    "full": dict(sac_steps=2000, ppo_steps=6144, seeds=3),
    "quick": dict(sac_steps=300, ppo_steps=256, seeds=1),
}


def ratio_run(algo: str, seed: int, steps: int, shield: dict[str, Any] | None, progress_queue=None) -> dict[str, Any]:
    """One run of the sweep (``sb3_run`` on ``ENV_ID``, the whole run timed)."""
    return sb3_run(algo, ENV_ID, seed, steps, shield, progress_queue=progress_queue)


def summarise(runs: list[dict[str, Any]], algo: str, ratios: list[float], seeds: int) -> dict[str, Any]:
    """Per ratio: failures, time ratios against the plain run of the same seed (mean ± CI)."""
    plain = {r["seed"]: r for r in runs if r["algo"] == algo and r["shield"] is None}
    rows: dict[str, Any] = {}

    def stats(values):
        mean, half = mean_ci(values)
        return {"mean": mean, "ci95": half, "values": values}

    rows["plain"] = {
        key: stats([plain[s][key] for s in range(seeds)]) for key in ("failures", "episodes", "final_return", "seconds")
    }
    for ratio in ratios:
        mine = {
            r["seed"]: r
            for r in runs
            if r["algo"] == algo and r["shield"] is not None and r["shield"]["updates_per_step"] == ratio
        }
        row = {
            key: stats([mine[s][key] for s in range(seeds)])
            for key in (
                "failures",
                "episodes",
                "final_return",
                "interventions",
                "fallbacks",
                "shield_updates",
                "seconds",
            )
        }
        row["wall_ratio"] = stats([mine[s]["seconds"] / plain[s]["seconds"] for s in range(seeds)])
        row["cpu_ratio"] = stats([mine[s]["cpu_seconds"] / plain[s]["cpu_seconds"] for s in range(seeds)])
        row["failures_vs_plain"] = stats([mine[s]["failures"] / max(plain[s]["failures"], 1) for s in range(seeds)])
        rows[str(ratio)] = row
    return rows


def _errorbar(ax, ratios: list[float], stats: list[dict[str, Any]], label: str) -> None:
    """Means ± 95 % CI half-widths of ``stats`` (``summarise`` entries) against the ratios."""
    ax.errorbar(ratios, [v["mean"] for v in stats], yerr=[v["ci95"] for v in stats], marker="o", capsize=3, label=label)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(result["summary"])
    fig, axes = plt.subplots(2, len(algos), figsize=(5.5 * len(algos), 7), squeeze=False)
    for col, algo in enumerate(algos):
        summary = result["summary"][algo]
        ratios = [float(r) for r in summary if r != "plain"]
        fail = [summary[str(r)]["failures"] for r in ratios]
        ax = axes[0][col]
        _errorbar(ax, ratios, fail, "inside the shield")
        plain = summary["plain"]["failures"]
        ax.axhline(plain["mean"], color="k", ls="--", label=f"no shield ({plain['mean']:.0f} ± {plain['ci95']:.0f})")
        ax.set(
            xscale="log",
            xlabel="shield updates per env step",
            ylabel="failures during learning",
            title=f"SB3 {algo.upper()}, {result['env']}, {result['steps'][algo]} steps",
        )
        ax.legend(fontsize=8)
        ax = axes[1][col]
        for key, label in (("wall_ratio", "wall-clock"), ("cpu_ratio", "CPU time")):
            values = [summary[str(r)][key] for r in ratios]
            _errorbar(ax, ratios, values, label)
        target = result["targets"].get(algo)
        if target is not None:
            ax.axhline(target, color="r", ls=":", label=f"target ≤ {target}")
        ax.set(xscale="log", xlabel="shield updates per env step", ylabel="shielded / plain (same seed)")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"Update-to-data ratio trade-off (mean ± 95 % CI over {result['seeds']} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (1 seed, a few hundred steps)")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results/update_ratio[_quick])")
    parser.add_argument("--algos", nargs="+", default=["ppo", "sac"], choices=["ppo", "sac"])
    parser.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS), help="shield updates per env step")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--sac-steps", type=int, default=None)
    parser.add_argument("--ppo-steps", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    scale = dict(SCALES["quick" if args.quick else "full"])
    for key in ("seeds", "sac_steps", "ppo_steps"):
        if getattr(args, key) is not None:
            scale[key] = getattr(args, key)
    steps = {"sac": scale["sac_steps"], "ppo": scale["ppo_steps"]}
    out = Path(args.out or f"benchmarks/results/update_ratio{'_quick' if args.quick else ''}")
    jobs = []
    for seed in range(scale["seeds"]):
        for algo in args.algos:
            jobs.append(Job(ratio_run, (algo, seed, steps[algo], None)))
            jobs += [Job(ratio_run, (algo, seed, steps[algo], {"updates_per_step": r})) for r in args.ratios]
    jobs.sort(key=lambda job: -job.args[2])  # longest first: the pool ends together
    started = time.time()
    runs = run_jobs(
        jobs,
        total_steps=sum(j.args[2] for j in jobs),
        desc="update ratio",
        workers=args.workers,
        progress=not args.no_progress,
    )
    import stable_baselines3
    import torch

    result = {
        "schema": "safeshield/benchmarks/update_ratio/1",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/update_ratio.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "env": ENV_ID,
        "seeds": scale["seeds"],
        "steps": steps,
        "ratios": args.ratios,
        "workers": args.workers,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sb3": stable_baselines3.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "targets": {"sac": 1.15, "ppo": 1.5},
        "summary": {algo: summarise(runs, algo, args.ratios, scale["seeds"]) for algo in args.algos},
        "runs": runs,
        "elapsed_s": round(time.time() - started, 1),
    }
    write_json(out / "results.json", result)
    plot(result, out / "update_ratio.png")
    return result


if __name__ == "__main__":
    res = main()
    for algo, rows in res["summary"].items():
        print(algo)
        for ratio, row in rows.items():
            f = row["failures"]
            extra = (
                ""
                if ratio == "plain"
                else f"  wall x{row['wall_ratio']['mean']:.2f} cpu x{row['cpu_ratio']['mean']:.2f}"
            )
            print(f"  {ratio:>6}: failures {f['mean']:.1f} ± {f['ci95']:.1f}{extra}")
