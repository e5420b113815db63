"""Safe transfer on the Hallway (Knight & Achiam (2021), "Safely Transferring to Unsafe Environments with Constrained
Reinforcement Learning") at CPU scale.

One command runs the paper's protocol (§4.1, Fig. 4, Table 1) for the Point robot:

1. Pre-train SAC-Lagrangian in the low-stakes Walls hallway, save it (safetensors + JSON).
2. Load it and evaluate it zero-shot in each high-stakes hallway (Poles, Humanoids).
3. Load it again and fine-tune it there (fresh replay buffer; weights, critics and β carried).
4. Baseline: the same agent trained from scratch in the high-stakes hallway, same seeds.
5. Beyond the paper: SAC-Lagrangian inside an SQRL shield, both pre-trained in Walls and both
   carried to Poles (``safeshield.load(path, env=...)``), then fine-tuned there.

Metric: lifetime cost in the high-stakes env (summed ``info["cost"]`` over every fine-tuning or
from-scratch training step; the zero-shot evaluation episodes are reported apart), plus return
and episodic cost of the deployed policy (deterministic actor) at the end.

Scale (our choice; the paper's Table 3 values in brackets): hallway 6 m [not stated], episodes
of 200 steps [1000] (10 s of control), 2 obstacle slots (x ≈ 2 and 4 m), ``sensing="state"`` (16 horizontal rays) [50x50
depth],
MLP 64x64 [CNN + GRU, 2.1e6 params], one update every 2 env steps [60 distributed actors],
``--pretrain`` / ``--finetune`` env steps per seed [unstated]. The reward is scaled so a full
traversal returns 1000 (Table 1's magnitude); the cost limit is the paper's 0.01 per step.

Usage:
    .venv/bin/python benchmarks/transfer_hallway.py            # full run: 17 CPU-minutes measured (1020 s)
    .venv/bin/python benchmarks/transfer_hallway.py --quick    # < 1 minute, checks the plumbing
Writes ``benchmarks/results/transfer_hallway/{results.json, lifetime_cost.png, learning_curves.png}``
(``--quick``: under ``quick/``); the saved agents and shields go to ``runs/transfer_hallway/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import safeshield
from safeshield.agents import SACLagrangian, SACLagrangianConfig
from safeshield.environments.hallway import HallwayEnv
from safeshield.experiments.plots import plot_learning_curves
from safeshield.experiments.runner import Job, episode_reporter, mean_ci, run_jobs, write_json
from safeshield.wrappers import PreviousRewardCost

OUT = Path(__file__).resolve().parent / "results" / "transfer_hallway"
TARGETS = ("poles", "humanoids")
# Knight & Achiam Table 1: (return, cost) per episode, from scratch / zero-shot (1000-step episodes)
PAPER_TABLE1 = {
    "P-Poles": {"scratch": (1090, 0.4), "zero_shot": (756, 1000)},
    "P-Humanoids": {"scratch": (1040, 16), "zero_shot": (935, 5.5)},
}


@dataclass(frozen=True)
class Settings:
    """CPU-scale knobs (see the module docstring for the paper's values)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    pretrain_steps: int = 16_000
    finetune_steps: int = 8_000
    sqrl_finetune_steps: int = 8_000  # the SQRL-shield arm (Poles only)
    episode_steps: int = 200
    length: float = 6.0
    spacing: float = 2.0
    hidden: tuple[int, ...] = (64, 64)
    batch_size: int = 128
    learning_starts: int = 1_000
    train_every: int = 2
    eval_episodes: int = 5
    previous_reward_cost: bool = True
    sqrl: bool = True

    def quick(self) -> "Settings":
        return dataclasses.replace(
            self,
            seeds=(0,),
            pretrain_steps=600,
            finetune_steps=300,
            sqrl_finetune_steps=300,
            episode_steps=60,
            learning_starts=200,
            batch_size=32,
            eval_episodes=1,
            hidden=(16, 16),
        )


def make_env(variant: str, s: Settings) -> gym.Env:
    env = gym.wrappers.TimeLimit(HallwayEnv(variant, length=s.length, spacing=s.spacing), s.episode_steps)
    return PreviousRewardCost(env) if s.previous_reward_cost else env


def make_agent(env: gym.Env, s: Settings, seed: int) -> SACLagrangian:
    config = SACLagrangianConfig(
        hidden=s.hidden,
        batch_size=s.batch_size,
        learning_starts=s.learning_starts,
        train_every=s.train_every,
        buffer_size=max(s.pretrain_steps, s.finetune_steps),
    )
    return SACLagrangian(env.observation_space, env.action_space, config, seed=seed)


def evaluate(agent: SACLagrangian, env: gym.Env, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic actor: mean episode return and cost, success rate (no learning)."""
    returns, costs, successes = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, cost, done, info = 0.0, 0.0, False, {}
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, deterministic=True))
            total, cost, done = total + float(reward), cost + float(info["cost"]), terminated or truncated
        returns.append(total), costs.append(cost), successes.append(bool(info.get("is_success")))
    return {"return": float(np.mean(returns)), "cost": float(np.mean(costs)), "success": float(np.mean(successes))}


def _curve(records: list[dict]) -> list[dict]:
    """Records for plotting: ``step`` counted from the run's first step in this env (a transferred
    agent's ``total_steps`` include pre-training), failure = the episode had any cost."""
    offset = records[0]["step"] - records[0]["length"] if records else 0
    return [{**r, "step": r["step"] - offset, "failure": r["cost"] > 0} for r in records]


def _summary(records: list[dict]) -> dict[str, Any]:
    costs = [r["cost"] for r in records]
    return {
        "episodes": len(records),
        "lifetime_cost": float(np.sum(costs)),
        "curve_steps": [int(r["step"]) for r in records],
        "curve_returns": [float(r["return"]) for r in records],
        "curve_costs": costs,
    }


def transfer_job(seed: int, s: Settings, out_dir: str, progress_queue=None) -> dict[str, Any]:
    """Pre-train in Walls, save; per target: zero-shot evaluation, then fine-tuning of a fresh load."""
    torch.set_num_threads(1)
    report = episode_reporter(progress_queue)
    walls = make_env("walls", s)
    agent = make_agent(walls, s, seed)
    pre_records = agent.learn(walls, s.pretrain_steps, seed=seed, progress=False, callback=report)
    path = Path(out_dir) / f"agent_seed{seed}"
    agent.save(path)
    result = {
        "seed": seed,
        "pretrain": _summary(pre_records),
        "pretrain_beta": agent.beta,
        "walls_eval": evaluate(agent, walls, s.eval_episodes, seed + 30_000),
    }
    for target in TARGETS:
        env = make_env(target, s)
        loaded = SACLagrangian.load(path, env, seed=seed)
        zero_shot = evaluate(loaded, env, s.eval_episodes, seed + 20_000)
        records = loaded.learn(env, s.finetune_steps, seed=seed + 10_000, progress=False, callback=report)
        result[target] = {
            "zero_shot": zero_shot,
            "finetune": _summary(records),
            "records": _curve(records),
            "final": evaluate(loaded, env, s.eval_episodes, seed + 20_000),
            "beta": loaded.beta,
        }
    return result


def scratch_job(seed: int, target: str, s: Settings, progress_queue=None) -> dict[str, Any]:
    """The baseline: the same agent trained from scratch in the high-stakes hallway."""
    torch.set_num_threads(1)
    env = make_env(target, s)
    agent = make_agent(env, s, seed)
    records = agent.learn(
        env, s.finetune_steps, seed=seed + 10_000, progress=False, callback=episode_reporter(progress_queue)
    )
    return {
        "seed": seed,
        "target": target,
        "finetune": _summary(records),
        "records": _curve(records),
        "final": evaluate(agent, env, s.eval_episodes, seed + 20_000),
        "beta": agent.beta,
    }


def sqrl_job(seed: int, s: Settings, out_dir: str, progress_queue=None) -> dict[str, Any]:
    """SAC-Lagrangian inside an SQRL shield: both pre-trained in Walls, both carried to Poles."""
    torch.set_num_threads(1)
    report = episode_reporter(progress_queue)
    options = dict(
        hidden=s.hidden,
        batch_size=s.batch_size,
        learning_starts=s.learning_starts,
        train_every=s.train_every,
        updates_per_step=1 / s.train_every,
    )
    walls = safeshield.wrap(make_env("walls", s), "sqrl", indicator="cost", seed=seed, pretraining=True, **options)
    agent = make_agent(walls, s, seed)
    walls.attach_policy(agent.sample_actions)
    pre_records = agent.learn(walls, s.pretrain_steps, seed=seed, progress=False, callback=report)
    shield_path = Path(out_dir) / f"sqrl_seed{seed}" / "shield"
    walls.safety_model.save(shield_path)
    agent.save(Path(out_dir) / f"sqrl_seed{seed}" / "agent")
    poles = safeshield.load(
        shield_path, make_env("poles", s), train=True, seed=seed, pretraining=False, selection="uniform"
    )
    loaded = SACLagrangian.load(Path(out_dir) / f"sqrl_seed{seed}" / "agent", poles, seed=seed)
    poles.attach_policy(loaded.sample_actions)
    records = loaded.learn(poles, s.sqrl_finetune_steps, seed=seed + 10_000, progress=False, callback=report)
    return {
        "seed": seed,
        "pretrain": _summary(pre_records),
        "finetune": _summary(records),
        "records": _curve(records),
        "final": evaluate(loaded, poles, s.eval_episodes, seed + 20_000),
        "beta": loaded.beta,
        "interventions": int(poles.total_interventions),
    }


def summarise(transfer: list[dict], scratch: list[dict], sqrl: list[dict], s: Settings) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for target in TARGETS:
        mine = [run for run in scratch if run["target"] == target]
        row = {
            "transfer_lifetime_cost": mean_ci([run[target]["finetune"]["lifetime_cost"] for run in transfer]),
            "scratch_lifetime_cost": mean_ci([run["finetune"]["lifetime_cost"] for run in mine]),
            "zero_shot_return": mean_ci([run[target]["zero_shot"]["return"] for run in transfer]),
            "zero_shot_cost": mean_ci([run[target]["zero_shot"]["cost"] for run in transfer]),
            "transfer_final_return": mean_ci([run[target]["final"]["return"] for run in transfer]),
            "transfer_final_cost": mean_ci([run[target]["final"]["cost"] for run in transfer]),
            "scratch_final_return": mean_ci([run["final"]["return"] for run in mine]),
            "scratch_final_cost": mean_ci([run["final"]["cost"] for run in mine]),
            "per_seed_lifetime_cost": {
                "transfer": [run[target]["finetune"]["lifetime_cost"] for run in transfer],
                "scratch": [run["finetune"]["lifetime_cost"] for run in mine],
            },
        }
        if target == "poles" and sqrl:
            row["sqrl_transfer_lifetime_cost"] = mean_ci([run["finetune"]["lifetime_cost"] for run in sqrl])
            row["sqrl_transfer_final_return"] = mean_ci([run["final"]["return"] for run in sqrl])
            row["sqrl_transfer_final_cost"] = mean_ci([run["final"]["cost"] for run in sqrl])
            row["per_seed_lifetime_cost"]["sqrl_transfer"] = [run["finetune"]["lifetime_cost"] for run in sqrl]
        table[target] = row
    table["walls_pretrained_eval"] = {
        "return": mean_ci([run["walls_eval"]["return"] for run in transfer]),
        "cost": mean_ci([run["walls_eval"]["cost"] for run in transfer]),
        "success": mean_ci([run["walls_eval"]["success"] for run in transfer]),
    }
    return table


def _plot_lifetime(transfer, scratch, sqrl, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TARGETS), figsize=(11, 4))
    for ax, target in zip(axes, TARGETS):
        arms = {
            "transfer (Walls -> fine-tune)": [run[target]["records"] for run in transfer],
            "from scratch": [run["records"] for run in scratch if run["target"] == target],
        }
        if target == "poles" and sqrl:
            arms["transfer + SQRL shield"] = [run["records"] for run in sqrl]
        for label, runs in arms.items():
            grid = np.linspace(0, max(r["step"] for run in runs for r in run) if any(runs) else 1, 100)
            curves = []
            for run in runs:
                steps = np.array([r["step"] for r in run], float)
                cumulative = np.cumsum([r["cost"] for r in run])
                index = np.searchsorted(steps, grid, side="right") - 1
                curves.append(np.where(index >= 0, cumulative[np.clip(index, 0, None)] if len(run) else 0.0, 0.0))
            curves = np.stack(curves)
            (line,) = ax.plot(grid, curves.mean(0), label=f"{label} ({len(runs)} seeds)")
            ax.fill_between(grid, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.2)
        ax.set(
            xlabel="env steps in the high-stakes hallway", ylabel="lifetime cost", title=f"Point-{target.capitalize()}"
        )
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(table: dict[str, Any], s: Settings) -> str:
    lines = [
        f"Point robot, {s.episode_steps}-step episodes, {len(s.seeds)} seeds (mean ± 95% CI); paper Table 1 in "
        "brackets (1000-step episodes)"
    ]
    for target, paper in zip(TARGETS, PAPER_TABLE1.values()):
        row = table[target]
        f = lambda key, row=row: f"{row[key][0]:.1f} ± {row[key][1]:.1f}"  # noqa: E731
        lines += [
            f"P-{target.capitalize()}:",
            f"  lifetime cost   transfer {f('transfer_lifetime_cost')}   scratch {f('scratch_lifetime_cost')}"
            + (f"   transfer+SQRL {f('sqrl_transfer_lifetime_cost')}" if "sqrl_transfer_lifetime_cost" in row else ""),
            f"  scratch final   return {f('scratch_final_return')}  cost {f('scratch_final_cost')}   "
            f"[{paper['scratch'][0]} / {paper['scratch'][1]}]",
            f"  zero-shot       return {f('zero_shot_return')}  cost {f('zero_shot_cost')}   [{paper['zero_shot'][0]} "
            f"/ {paper['zero_shot'][1]}]",
            f"  transfer final  return {f('transfer_final_return')}  cost {f('transfer_final_cost')}",
        ]
    walls = table["walls_pretrained_eval"]
    lines.append(
        f"Walls after pre-training: return {walls['return'][0]:.1f}, cost {walls['cost'][0]:.1f}, success "
        f"{walls['success'][0]:.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget, one seed (< 1 min): checks the plumbing")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2)")
    parser.add_argument("--pretrain", type=int, help="pre-training env steps per seed")
    parser.add_argument("--finetune", type=int, help="fine-tuning / from-scratch env steps per seed and target")
    parser.add_argument("--no-sqrl", action="store_true", help="skip the SQRL-shield arm")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--replot", action="store_true", help="redraw the plots and table from an existing results.json"
    )
    args = parser.parse_args(argv)
    if args.replot:
        return replot(args.out)
    s = Settings().quick() if args.quick else Settings()
    overrides = {
        k: v
        for k, v in (
            ("seeds", tuple(args.seeds) if args.seeds else None),
            ("pretrain_steps", args.pretrain),
            ("finetune_steps", args.finetune),
            ("sqrl_finetune_steps", args.finetune),
        )
        if v is not None
    }
    s = dataclasses.replace(s, **overrides, sqrl=not args.no_sqrl)
    out = args.out / "quick" if args.quick else args.out
    checkpoints = (
        Path("runs") / "transfer_hallway" / ("quick" if args.quick else "full")
    )  # saved agents/shields (git-ignored)

    jobs = [Job(transfer_job, (seed, s, str(checkpoints))) for seed in s.seeds]
    jobs += [Job(scratch_job, (seed, target, s)) for seed in s.seeds for target in TARGETS]
    if s.sqrl:
        jobs += [Job(sqrl_job, (seed, s, str(checkpoints))) for seed in s.seeds]
    n = len(s.seeds)
    total = n * (s.pretrain_steps + 2 * s.finetune_steps) + 2 * n * s.finetune_steps
    total += n * (s.pretrain_steps + s.sqrl_finetune_steps) if s.sqrl else 0
    start = time.perf_counter()
    results = run_jobs(jobs, total, desc="transfer_hallway", workers=args.workers, progress=sys.stderr.isatty())
    wall = time.perf_counter() - start
    transfer = results[:n]
    scratch = results[n : 3 * n]
    sqrl = results[3 * n :]
    table = summarise(transfer, scratch, sqrl, s)
    data = {
        "settings": dataclasses.asdict(s),
        "wall_seconds": wall,
        "table": table,
        "paper_table1": PAPER_TABLE1,
        "transfer": [{k: v for k, v in run.items()} for run in transfer],
        "scratch": scratch,
        "sqrl_transfer": sqrl,
    }
    write_json(out / "results.json", data)
    _plots(data, out)
    print(format_table(table, s))
    print(f"wall time {wall:.0f} s; results in {out}")
    return data


def _plots(data: dict[str, Any], out: Path) -> None:
    transfer, scratch, sqrl = data["transfer"], data["scratch"], data["sqrl_transfer"]
    _plot_lifetime(transfer, scratch, sqrl, out / "lifetime_cost.png")
    curves = {
        f"{arm} {target}": runs
        for target in TARGETS
        for arm, runs in (
            ("transfer", [run[target]["records"] for run in transfer]),
            ("scratch", [run["records"] for run in scratch if run["target"] == target]),
        )
    }
    plot_learning_curves(curves, out / "learning_curves.png", "Hallway high-stakes: costly episodes")


def replot(out: Path) -> dict[str, Any]:
    """Redraw the plots and print the table from ``out/results.json`` (steps re-based per run)."""
    import json

    data = json.loads((out / "results.json").read_text())
    for run in data["transfer"]:
        for target in TARGETS:
            run[target]["records"] = _curve(run[target]["records"])
    for run in data["scratch"] + data["sqrl_transfer"]:
        run["records"] = _curve(run["records"])
    _plots(data, out)
    s = Settings(
        **{**data["settings"], "seeds": tuple(data["settings"]["seeds"]), "hidden": tuple(data["settings"]["hidden"])}
    )
    print(format_table(data["table"], s))
    return data


if __name__ == "__main__":
    main()
