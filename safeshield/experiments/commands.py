"""The ``train``, ``eval``, ``report`` and ``plot`` subcommands of ``safeshield`` (parsers + handlers).

- ``add_commands(subparsers)``: registers the four subcommands on the CLI's parser.

Every argument is checked (``check_run``: env ids, indicator, shield and agent options, budgets)
before a worker starts; errors exit with ``safeshield <command>: <message>`` and no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from safeshield.experiments.config import AGENTS, METHODS, PRESETS, RunConfig

__all__ = ["add_commands"]

_DEFAULTS = RunConfig()


def _fail(command: str, error: Exception) -> SystemExit:
    return SystemExit(f"safeshield {command}: {error}")


# -- train ---------------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from safeshield.experiments.config import load_config, resolve
    from safeshield.experiments.train import check_run, prepare_out, run_train

    cli = {
        name: getattr(args, name)
        for name in (
            "env",
            "method",
            "agent",
            "indicator",
            "steps",
            "seeds",
            "pretrain_env",
            "pretrain_steps",
            "filter_pretraining",
            "shadow",
            "shield_checkpoint",
            "eval_episodes",
            "workers",
            "out",
        )
    }
    try:
        config = resolve(load_config(args.config) if args.config else None, cli, args.set or [])
        if not config.env:
            raise ValueError("--env is required (a gymnasium or safeshield id, e.g. InvertedPendulum-v5)")
        if (Path(config.out) / "run.json").exists() and not args.overwrite:
            prepare_out(Path(config.out), False)  # the clear "already holds a run" error, before the checks
        notes = check_run(config)
    except (ValueError, TypeError, KeyError) as error:
        raise _fail("train", error) from None
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    document = run_train(
        config, progress=not args.no_progress, command=args.argv, notes=notes, overwrite=args.overwrite
    )
    _print_summary(config, document["summary"])
    print(f"wrote {config.out}/  (run.json, config.toml, seed*/episodes.csv, seed*/tb/)")
    print(f"next: tensorboard --logdir {config.out}    safeshield report {config.out} [OTHER_RUN ...]")
    return 0


def _print_summary(config: RunConfig, summary: dict) -> None:
    for phase, env_id, _ in config.phases:
        row = summary[phase]
        line = (
            f"{phase:8} {env_id}: failures {row['failures'][0]:.1f} ± {row['failures'][1]:.1f} "
            f"in {row['episodes'][0]:.0f} episodes, final return {row['final_return'][0]:.3g}"
        )
        if config.method != "none":
            line += (
                f", interventions {row['intervention_rate'][0]:.1%} of steps, fallbacks {row['fallback_rate'][0]:.1%}"
            )
        print(line)
    if "eval" in summary:
        ev = summary["eval"]
        print(
            f"eval     {ev['env']}: return {ev['mean_return'][0]:.3g} ± {ev['mean_return'][1]:.2g}, "
            f"failure rate {ev['failure_rate'][0]:.0%} over {ev['episodes']} episode(s) per seed"
        )
    if summary.get("smoke"):
        print("(smoke run: fewer than 3 seeds or 5000 training steps; the numbers are not evidence)")


def _add_train(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train an agent inside a shield (or none) on any env, K seeds, logs + checkpoints",
        description="Train an agent inside a shield on any gymnasium or safeshield env. Writes OUT/run.json, "
        "OUT/config.toml and per seed: episodes.csv/.jsonl, TensorBoard events (tb/), the shield and the agent. "
        "Settings come from defaults < --config < options < --set.",
    )
    train.add_argument("--env", help="env id to train in (gymnasium, safeshield/..., dm_control/...)")
    train.add_argument(
        "--method", choices=METHODS, help=f"shield, or none for the unshielded baseline (default {_DEFAULTS.method})"
    )
    train.add_argument("--agent", choices=AGENTS, help=f"learner (default {_DEFAULTS.agent})")
    train.add_argument(
        "--indicator",
        help="failure indicator: terminated, cost, info:<key> or module:function (default: the env's declared one)",
    )
    train.add_argument("--steps", type=int, help=f"training env steps per seed (default {_DEFAULTS.steps})")
    train.add_argument("--seeds", type=int, help=f"number of seeds, 0..K-1 (default {_DEFAULTS.seeds})")
    train.add_argument("--pretrain-env", help="pre-train in this env first, then fine-tune in --env (default: none)")
    train.add_argument("--pretrain-steps", type=int, help="pre-training steps (default: --steps)")
    train.add_argument(
        "--no-filter-pretraining",
        dest="filter_pretraining",
        action="store_const",
        const=False,
        help="the shield only learns during pre-training (shadow mode: every action runs) and filters from "
        "the target env on",
    )
    train.add_argument(
        "--shadow",
        action="store_const",
        const=True,
        help="shadow mode: the shield learns and reports beside the agent but never changes an action (the "
        "agent trains as without a shield; pass the saved shield to a later run with --shield-checkpoint)",
    )
    train.add_argument("--shield-checkpoint", help="start from a saved shield (required for safer: its prior)")
    train.add_argument(
        "--eval-episodes", type=int, help=f"deterministic episodes after training (default {_DEFAULTS.eval_episodes})"
    )
    train.add_argument(
        "--workers", type=int, help=f"parallel processes; 0 = this process (default {_DEFAULTS.workers})"
    )
    train.add_argument(
        "--config",
        help=f"TOML file or preset ({', '.join(PRESETS)}); `safeshield methods --toml NAME` writes a full one",
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override one setting, e.g. shield.eps_safe=0.05 or agent.learning_starts=500 (repeatable)",
    )
    train.add_argument("--out", help=f"run folder (default {_DEFAULTS.out})")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(run=_train)


# -- eval ----------------------------------------------------------------------------------------------
def _eval(args: argparse.Namespace) -> int:
    from safeshield.experiments.runner import mean_ci, write_json
    from safeshield.experiments.train import check_run, evaluate_seed, read_run

    try:
        document = read_run(args.run_dir)
        config = RunConfig(**document["config"])
        env_id = args.env or config.env
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
        seeds = [seed for seed in range(config.seeds) if (Path(args.run_dir) / f"seed{seed}" / "summary.json").exists()]
        if not seeds:
            raise ValueError(f"{args.run_dir!r} has no finished seed (no seed*/summary.json)")
        check_run(
            dataclasses.replace(
                config, env=env_id, pretrain_env="", pretrain_steps=0, shield_checkpoint="", out=str(args.run_dir)
            )
        )
    except (ValueError, TypeError, KeyError) as error:
        raise _fail("eval", error) from None
    config = dataclasses.replace(config, out=str(args.run_dir))
    results = {
        seed: evaluate_seed(config, seed, Path(args.run_dir) / f"seed{seed}", env_id, args.episodes) for seed in seeds
    }
    for seed, result in results.items():
        print(
            f"seed {seed}: return {result['mean_return']:.3g}, failures {result['failures']}/{result['episodes']}, "
            f"interventions {result['interventions']} in {result['steps']} steps"
        )
    returns = mean_ci([r["mean_return"] for r in results.values()])
    rates = mean_ci([r["failure_rate"] for r in results.values()])
    print(
        f"{env_id}: return {returns[0]:.3g} ± {returns[1]:.2g}, failure rate {rates[0]:.0%} ± {rates[1]:.0%} "
        f"({len(seeds)} seed(s), frozen shield, deterministic agent)"
    )
    name = args.out or Path(args.run_dir) / f"eval-{env_id.replace('/', '_')}.json"
    path = write_json(
        name,
        {
            "env": env_id,
            "episodes": args.episodes,
            "seeds": {str(k): v for k, v in results.items()},
            "mean_return": returns,
            "failure_rate": rates,
        },
    )
    print(f"wrote {path}")
    return 0


def _add_eval(commands) -> None:
    ev = commands.add_parser(
        "eval",
        help="run a trained agent through its frozen shield",
        description="Deterministic episodes of each seed's saved agent through its saved shield "
        "(frozen), in the run's env or another (--env, same spaces).",
    )
    ev.add_argument("run_dir", help="a folder written by safeshield train")
    ev.add_argument("--env", help="env id (default: the run's training env)")
    ev.add_argument("--episodes", type=int, default=10, help="episodes per seed (default 10)")
    ev.add_argument("--out", help="results JSON (default RUN_DIR/eval-<env>.json)")
    ev.set_defaults(run=_eval)


# -- report and plot -------------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    from safeshield.experiments.report import write_report

    out = args.out or str(Path(args.run_dirs[0]).resolve().parent / "report")
    try:
        md, page = write_report(args.run_dirs, out)
    except (ValueError, KeyError) as error:
        raise _fail("report", error) from None
    print(f"wrote {md}\nwrote {page}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from safeshield.experiments.report import load_run, plot_metric

    try:
        path = plot_metric(
            [load_run(folder) for folder in args.run_dirs], args.metric, args.out or f"{args.metric}.png"
        )
    except (ValueError, KeyError) as error:
        raise _fail("plot", error) from None
    print(f"wrote {path}")
    return 0


_PLOT_METRICS = ("cumulative_failures", "return", "intervention_rate", "fallback_rate")  # report.METRICS


def _add_report_and_plot(commands) -> None:
    report = commands.add_parser(
        "report",
        help="one Markdown + HTML page comparing runs",
        description="Compare runs: failures, return curves with 95 % CI bands over seeds, "
        "intervention and fallback rates, the shield-quality report where present, the commands.",
    )
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by safeshield train")
    report.add_argument("--out", help="output folder (default: 'report' next to the first run)")
    report.set_defaults(run=_report)

    plot = commands.add_parser("plot", help="one figure of one metric over runs")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by safeshield train")
    plot.add_argument(
        "--metric",
        choices=_PLOT_METRICS,
        default="cumulative_failures",
        help="what to plot (default cumulative_failures)",
    )
    plot.add_argument("--out", help="image file (default <metric>.png)")
    plot.set_defaults(run=_plot)


def add_commands(commands) -> None:
    """Register ``train``, ``eval``, ``report`` and ``plot`` on the CLI's subparsers."""
    _add_train(commands)
    _add_eval(commands)
    _add_report_and_plot(commands)
