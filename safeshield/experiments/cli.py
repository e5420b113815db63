"""The ``safeshield`` command.

- ``safeshield train --env ID --method M --agent A``: train inside a shield (or none); logs, checkpoints.
- ``safeshield eval RUN_DIR``: the saved agent through its frozen shield.
- ``safeshield report RUN_DIR...`` / ``plot``: compare runs (Markdown + HTML, figures).
- ``safeshield demo``: SQRL vs SAC transfer on DrunkSpider (+ Fig. 5), table + JSON + plots.
- ``safeshield transfer --pretrain ID --target ID``: the same SQRL-vs-SAC protocol on any env pair.
- ``safeshield envs [ID]``: the registered environments: engine, indicator, variants (spaces with an ID).
- ``safeshield methods [NAME]``: each shield's options with default, meaning and source.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from safeshield.experiments.demo import DemoSettings, run_demo

    settings = DemoSettings(workers=args.workers)
    if args.seeds is not None:
        settings = dataclasses.replace(settings, seeds=tuple(range(args.seeds)))
    if args.quick:
        settings = settings.scaled(0.1)
    if args.no_fig5:
        settings = dataclasses.replace(settings, sweep_eps=())
    run_demo(settings, args.out, progress=not args.no_progress)
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from safeshield.experiments.config import RunConfig
    from safeshield.experiments.runner import write_json
    from safeshield.experiments.train import check_run, ensure_registered
    from safeshield.experiments.transfer import TransferSettings, run_transfer

    try:
        for env_id in (args.pretrain, args.target):
            ensure_registered(env_id)
        settings = TransferSettings(
            pretrain_id=args.pretrain,
            target_id=args.target,
            pretrain_steps=args.pretrain_steps,
            finetune_steps=args.finetune_steps,
            eps_safe=args.eps_safe,
            gamma_safe=args.gamma_safe,
            indicator=args.indicator or "",
            filter_pretraining=not args.no_filter_pretraining,
        )
        # the same checks as `train` (env ids, indicator on a real step, budgets), before any worker starts
        notes = check_run(
            RunConfig(
                env=args.target,
                pretrain_env=args.pretrain,
                pretrain_steps=args.pretrain_steps,
                steps=args.finetune_steps,
                seeds=args.seeds,
                method="sqrl",
                agent="sac",
                indicator=args.indicator or "",
                agent_options={"learning_starts": settings.learning_starts, "hidden": [8]},
                shield={"learning_starts": settings.learning_starts, "hidden": [8]},
            )
        )
    except ValueError as error:
        raise SystemExit(f"safeshield transfer: {error}") from error
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    runs, table = run_transfer(
        settings, tuple(range(args.seeds)), args.out, workers=args.workers, progress=not args.no_progress
    )
    path = write_json(
        Path(args.out) / "results.json", {"settings": dataclasses.asdict(settings), "summary": table, "runs": runs}
    )
    for method in ("sqrl", "sac"):
        row = table[method]
        print(
            f"{method:5} fine-tune failures {row['finetune_failures'][0]:.1f} ± {row['finetune_failures'][1]:.1f}  "
            f"deployed return {row['final_return'][0]:.2f} ± {row['final_return'][1]:.2f}  "
            f"deployed failure rate {row['final_failure_rate'][0]:.0%}"
        )
    print(f"wrote {path}")
    return 0


# module of an env's entry point -> (engine, the extra that installs it, the declared indicator)
_ENGINES = {
    "drunk_spider": ("numpy", "", "info:failure"),
    "trap_navigation": ("MuJoCo", "mujoco", "info:failure"),
    "operation": ("PyBullet", "pybullet", "info:failure"),
    "hallway": ("MuJoCo", "mujoco", "cost"),
    "minitaur": ("PyBullet", "pybullet", "info:failure"),
    "laikago": ("PyBullet", "pybullet", "info:failure"),
    "shadow_hand": ("MuJoCo (gymnasium-robotics)", "robotics", "info:failure"),
    "panda_push": ("MuJoCo (robosuite)", "robosuite", "info:failure"),
}


def _env_rows() -> list[dict[str, str]]:
    """One row per env family member; ids differing only in a number (Operation00..39) are one row."""
    import re

    import gymnasium as gym

    from safeshield.environments import ENV_IDS

    rows: dict[str, dict[str, str]] = {}
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        module = str(spec.entry_point).split(":")[0].rsplit(".", 1)[-1]
        engine, extra, indicator = _ENGINES.get(module, ("?", "", "?"))
        key = re.sub(r"\d+-v", "<k>-v", env_id)
        row = rows.setdefault(
            key,
            {
                "id": key,
                "engine": engine,
                "extra": extra,
                "indicator": indicator,
                "steps": str(spec.max_episode_steps),
                "variants": [],
            },
        )
        if key != env_id:
            row["variants"].append(env_id)
    return list(rows.values())


def _envs(args: argparse.Namespace) -> int:
    if args.env_id:
        return _env_details(args.env_id)
    rows = _env_rows()
    print(f"{'id':42} {'engine':28} {'indicator':13} {'steps':>5}  install")
    for row in rows:
        variants = (
            f"  ({len(row['variants'])} tasks: {row['variants'][0]} .. {row['variants'][-1]})"
            if row["variants"]
            else ""
        )
        extra = f"safeshield[{row['extra']}]" if row["extra"] else "-"
        print(f"{row['id']:42} {row['engine']:28} {row['indicator']:13} {row['steps']:>5}  {extra}{variants}")
    print(
        "\nAny gymnasium id works too (indicator: --indicator terminated|cost|info:<key>|module:function);"
        "\ndm_control/<domain>-<task>-v0 through Shimmy. `safeshield envs ID` shows spaces."
    )
    return 0


def _env_details(env_id: str) -> int:
    import gymnasium as gym

    from safeshield.environments._quiet import quiet_stdout
    from safeshield.experiments.train import ensure_registered

    try:
        ensure_registered(env_id)
        with quiet_stdout():
            env = gym.make(env_id)
    except (ValueError, ImportError, gym.error.Error) as error:
        raise SystemExit(f"safeshield envs: {error}") from None
    spec = gym.spec(env_id)
    print(f"id:           {env_id}")
    print(f"entry point:  {spec.entry_point}  {spec.kwargs or ''}")
    print(f"observations: {env.observation_space}")
    print(f"actions:      {env.action_space}")
    print(f"episode:      {spec.max_episode_steps} steps")
    print(f"indicator:    {(env.metadata or {}).get('safeshield_indicator') or 'none declared: pass --indicator'}")
    env.close()
    return 0


def _methods(args: argparse.Namespace) -> int:
    from safeshield.experiments.methods import describe_methods, method_toml

    try:
        if args.toml:
            print(method_toml(args.toml), end="")
            return 0
        print(describe_methods(args.name))
    except ValueError as error:
        raise SystemExit(f"safeshield methods: {error}") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    import safeshield
    from safeshield.experiments.commands import add_commands

    parser = argparse.ArgumentParser(
        prog="safeshield",
        description="Learned safety shields for any Gymnasium agent: train, evaluate and compare shielded runs.",
        epilog="Start: safeshield train --env InvertedPendulum-v5 --indicator terminated --method sqrl --out runs/sqrl",
    )
    parser.add_argument("--version", action="version", version=f"safeshield {safeshield.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_commands(commands)

    defaults = argparse.ArgumentDefaultsHelpFormatter
    demo = commands.add_parser(
        "demo", help="SQRL vs SAC pre-train -> fine-tune on DrunkSpider (< 10 min on 2 cores)", formatter_class=defaults
    )
    demo.add_argument("--out", default="runs/demo", help="output folder for results.json and plots")
    demo.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    demo.add_argument("--workers", type=int, default=2, help="parallel processes (one torch thread each)")
    demo.add_argument("--quick", action="store_true", help="10%% of the step budgets: a smoke run")
    demo.add_argument("--no-fig5", action="store_true", help="skip the eps_safe 0.05 / 0.2 path experiment")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(run=_demo)

    transfer = commands.add_parser(
        "transfer", help="SQRL vs SAC pre-train -> fine-tune on any pair of env ids", formatter_class=defaults
    )
    transfer.add_argument("--pretrain", required=True, help="low-stakes env id (e.g. safeshield/Minitaur-v0)")
    transfer.add_argument("--target", required=True, help="high-stakes env id (e.g. safeshield/MinitaurVelocity-v0)")
    transfer.add_argument(
        "--indicator",
        help="failure indicator when the envs declare none: terminated, cost, info:<key> or module:function",
    )
    transfer.add_argument("--pretrain-steps", type=int, default=8_000, help="pre-training env steps")
    transfer.add_argument("--finetune-steps", type=int, default=6_000, help="fine-tuning env steps")
    transfer.add_argument("--eps-safe", type=float, default=0.1, help="SQRL threshold (paper Table 1: 0.1)")
    transfer.add_argument("--gamma-safe", type=float, default=0.7, help="safety discount (paper Table 1: 0.7)")
    transfer.add_argument(
        "--no-filter-pretraining",
        action="store_true",
        help="the shield only learns during pre-training (shadow mode: the agent explores unfiltered, as SAC "
        "does) and filters from fine-tuning on",
    )
    transfer.add_argument("--seeds", type=int, default=3, help="number of seeds")
    transfer.add_argument("--workers", type=int, default=2, help="parallel processes (one torch thread each)")
    transfer.add_argument("--out", default="runs/transfer", help="output folder (results.json, shields)")
    transfer.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    transfer.set_defaults(run=_transfer)

    envs = commands.add_parser("envs", help="registered environments: engine, indicator, variants (spaces with an ID)")
    envs.add_argument("env_id", nargs="?", help="show one env's spaces, indicator and episode length")
    envs.set_defaults(run=_envs)
    methods = commands.add_parser("methods", help="shield methods: each option's default, meaning and source")
    methods.add_argument("name", nargs="?", help="one method (default: all)")
    methods.add_argument("--toml", metavar="NAME", help="print a full, commented TOML config for method NAME")
    methods.set_defaults(run=_methods)

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    from safeshield.experiments.runner import pin_threads

    pin_threads(1)  # the jobs run one per process (``--workers``); more threads per process only contend
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
