"""SQRL vs SAC on Minitaur velocity, at CPU scale: pre-train at 0.3 m/s, fine-tune at 0.4 m/s.

Paper (SQRL, Srinivasan et al. 2020, seed ``000_...``, §7.1 / Fig. 4): on Minitaur SQRL "falls
around only 5 % of the time during learning, while the unconstrained SAC policy fell about 3x as
often" (the variant is not named; this benchmark uses MinitaurVelocity, 0.3 -> 0.4 m/s).

This run is about 1 % of the paper's scale (paper: up to 1e6 pre-training and 5e5 fine-tuning
steps, Tables 1-2; here ``PRETRAIN_STEPS`` + ``FINETUNE_STEPS`` per seed), so that the full run
needs at most about 15 minutes of CPU on one core. It measures, per method and over seeds
(mean ± 95 % Student-t half-width): falls during fine-tuning (count and per-episode rate), falls
during pre-training, the deployed policy's return and fall rate on MinitaurVelocity.

    .venv/bin/python benchmarks/minitaur_sqrl.py            # full run, about 15 CPU-minutes
    .venv/bin/python benchmarks/minitaur_sqrl.py --quick    # under a minute, checks the plumbing
    .venv/bin/python benchmarks/minitaur_sqrl.py --gamma-safe 0.95   # the critic's horizon test (see below)

gamma_safe: at 100 Hz control, Table 1's 0.7 gives the safety critic an effective horizon of
1 / (1 - 0.7) ~ 3 steps (30 ms), far shorter than a Minitaur fall takes to develop (a few hundred
ms); ``--gamma-safe 0.95`` (20 steps, 0.2 s) tests whether that horizon is what limits SQRL here.

Writes ``results.json`` and ``finetune_curves.png`` (cumulative falls and return against
fine-tuning steps) into ``benchmarks/results/minitaur_sqrl/`` (``.../quick/`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from safeshield.experiments.plots import plot_learning_curves
from safeshield.experiments.runner import write_json
from safeshield.experiments.transfer import MINITAUR_CPU, run_transfer

RESULTS = Path(__file__).resolve().parent / "results" / "minitaur_sqrl"
SEEDS = (0, 1, 2)
PAPER = {
    "sqrl_fall_rate_during_learning": 0.05,  # §7.1, "around only 5 %"
    "sac_to_sqrl_fall_ratio": 3.0,  # §7.1, SAC "fell about 3x as often"
    "pretrain_steps": "up to 1e6 (Table 2)",
    "finetune_steps": "5e5 (Table 1)",
}

SETTINGS = MINITAUR_CPU
QUICK = dataclasses.replace(
    SETTINGS, pretrain_steps=500, finetune_steps=400, learning_starts=200, batch_size=64, eval_episodes=1
)


def _records(phase: dict, offset: int) -> list[dict]:
    """Episode records back from a ``summarise_episodes`` dict (steps counted from ``offset``)."""
    cumulative = [0, *phase["curve_cumulative_failures"]]
    return [
        {"step": step - offset, "return": ret, "failure": cumulative[i + 1] > cumulative[i]}
        for i, (step, ret) in enumerate(zip(phase["curve_steps"], phase["curve_returns"]))
    ]


def format_table(table: dict) -> str:
    lines = [
        "method | pre-train falls | fine-tune falls | fine-tune fall rate | deployed return | deployed fall rate",
        "-------|-----------------|-----------------|---------------------|-----------------|-------------------",
    ]
    for method in ("sqrl", "sac"):
        row = table[method]
        cell = lambda key, fmt, row=row: f"{row[key][0]:{fmt}} ± {row[key][1]:{fmt}}"  # noqa: E731
        lines.append(
            f"{method:6} | {cell('pretrain_failures', '.1f'):15} | {cell('finetune_failures', '.1f'):15} | "
            f"{cell('finetune_failure_rate', '.1%'):19} | {cell('final_return', '.1f'):15} | "
            f"{cell('final_failure_rate', '.0%')}"
        )
    ratio = table.get("sac_to_sqrl_failure_ratio")
    lines.append(
        f"SAC/SQRL fine-tuning falls: {ratio:.2f}x"
        if ratio is not None
        else "SAC/SQRL ratio undefined (SQRL never fell)"
    )
    lines.append("paper (§7.1): SQRL falls ~5 % of the time during learning, SAC ~3x as often")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget, one seed (< 1 min); writes to .../quick/")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one torch thread each)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default benchmarks/results/minitaur_sqrl)"
    )
    parser.add_argument(
        "--gamma-safe",
        type=float,
        default=None,
        help="override gamma_safe (Table 1: 0.7); results go to .../gamma_safe_<value>/ unless --out is given",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings, seeds = (QUICK, (0,)) if args.quick else (SETTINGS, SEEDS)
    default_out = RESULTS / "quick" if args.quick else RESULTS
    if args.gamma_safe is not None:
        settings = dataclasses.replace(settings, gamma_safe=args.gamma_safe)
        default_out = default_out / f"gamma_safe_{args.gamma_safe:g}"
    out = args.out or default_out
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    runs, table = run_transfer(
        settings, seeds, str(out / "shields"), workers=args.workers, progress=sys.stderr.isatty(), desc="minitaur sqrl"
    )
    wall = time.perf_counter() - start
    curves = {
        method.upper(): [_records(run["finetune"], settings.pretrain_steps) for run in runs if run["method"] == method]
        for method in ("sqrl", "sac")
    }
    plot = plot_learning_curves(curves, out / "finetune_curves.png", "Minitaur 0.3 -> 0.4 m/s: falls while fine-tuning")
    document = {
        "settings": dataclasses.asdict(settings),
        "seeds": list(seeds),
        "wall_seconds": wall,
        "workers": args.workers,
        "summary": table,
        "paper": PAPER,
        "runs": runs,
    }
    write_json(out / "results.json", document)
    print(format_table(table))
    print(f"wall time {wall:.0f} s; wrote {out / 'results.json'} and {plot}")
    return document


if __name__ == "__main__":
    main()
