"""The ``safeshield`` command.

- ``safeshield demo``: SQRL vs SAC transfer on DrunkSpider (+ Fig. 5), table + JSON + plots.
- ``safeshield transfer --pretrain ID --target ID``: the same SQRL-vs-SAC protocol on any env pair.
- ``safeshield envs``: the registered safeshield environment ids.
- ``safeshield methods``: the installed shield methods and their default configs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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

    from safeshield.experiments.runner import write_json
    from safeshield.experiments.transfer import TransferSettings, run_transfer

    try:
        settings = TransferSettings(
            pretrain_id=args.pretrain, target_id=args.target, pretrain_steps=args.pretrain_steps,
            finetune_steps=args.finetune_steps, eps_safe=args.eps_safe, gamma_safe=args.gamma_safe,
        )
    except ValueError as error:
        raise SystemExit(f"safeshield transfer: {error}") from error
    runs, table = run_transfer(settings, tuple(range(args.seeds)), args.out, workers=args.workers,
                               progress=not args.no_progress)
    path = write_json(Path(args.out) / "results.json",
                      {"settings": dataclasses.asdict(settings), "summary": table, "runs": runs})
    for method in ("sqrl", "sac"):
        row = table[method]
        print(f"{method:5} fine-tune failures {row['finetune_failures'][0]:.1f} ± {row['finetune_failures'][1]:.1f}  "
              f"deployed return {row['final_return'][0]:.2f} ± {row['final_return'][1]:.2f}  "
              f"deployed failure rate {row['final_failure_rate'][0]:.0%}")
    print(f"wrote {path}")
    return 0


def _envs(args: argparse.Namespace) -> int:
    from safeshield.environments import ENV_IDS

    print("\n".join(ENV_IDS))
    return 0


def _methods(args: argparse.Namespace) -> int:
    import safeshield

    print(json.dumps(safeshield.methods(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="safeshield", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="SQRL vs SAC pre-train -> fine-tune on DrunkSpider (< 10 min on 2 cores)")
    demo.add_argument("--out", default="runs/demo", help="output folder for results.json and plots")
    demo.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    demo.add_argument("--workers", type=int, default=2, help="parallel processes (one torch thread each)")
    demo.add_argument("--quick", action="store_true", help="10%% of the step budgets: a smoke run")
    demo.add_argument("--no-fig5", action="store_true", help="skip the eps_safe 0.05 / 0.2 path experiment")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(run=_demo)

    transfer = commands.add_parser("transfer", help="SQRL vs SAC pre-train -> fine-tune on any pair of env ids")
    transfer.add_argument("--pretrain", required=True, help="low-stakes env id (e.g. safeshield/Minitaur-v0)")
    transfer.add_argument("--target", required=True, help="high-stakes env id (e.g. safeshield/MinitaurVelocity-v0)")
    transfer.add_argument("--pretrain-steps", type=int, default=8_000)
    transfer.add_argument("--finetune-steps", type=int, default=6_000)
    transfer.add_argument("--eps-safe", type=float, default=0.1, help="SQRL threshold (paper Table 1: 0.1)")
    transfer.add_argument("--gamma-safe", type=float, default=0.7, help="safety discount (paper Table 1: 0.7)")
    transfer.add_argument("--seeds", type=int, default=3, help="number of seeds")
    transfer.add_argument("--workers", type=int, default=2, help="parallel processes (one torch thread each)")
    transfer.add_argument("--out", default="runs/transfer", help="output folder (results.json, shields)")
    transfer.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    transfer.set_defaults(run=_transfer)

    commands.add_parser("envs", help="list registered environment ids").set_defaults(run=_envs)
    commands.add_parser("methods", help="list shield methods and their defaults").set_defaults(run=_methods)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
