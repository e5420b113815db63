"""Does the action a shield prefers avert a failure? Counterfactual rollouts from restored MuJoCo states.

Run ``python benchmarks/action_ranking.py [--quick] [--cases NAME ...] [--out benchmarks/results/action_ranking]``.

The shield-quality report's ROC AUC asks whether the proposal's risk foresees a failure: it
ranks *states*. A shield helps only if it also ranks the *actions* it can choose at a state,
and if some action it can reach is safer than the agent's. This benchmark measures both on
gymnasium MuJoCo tasks, whose simulator state can be saved and restored.

Per case and seed, the SB3 agent learns inside an SQRL shield with default settings for the
case's steps; then agent and shield are frozen and two things are measured:

1. *Episodes from the same initial states* (``episodes`` of them), the agent's deterministic
   policy with and without the frozen shield: mean length, failures, share of steps steered.
2. *Counterfactual outcomes.* States are taken from the frozen agent's own episodes (stochastic
   policy, no shield) and binned by how many steps before the episode's failure they came
   (in units of the shield's horizon H; "no failure" states are binned as far). At each state the
   critic scores the agent's proposal and ``candidates`` actions drawn uniformly over the box;
   each action is then rolled out from the restored state: that action, then the agent's
   deterministic policy, for up to ``2 H`` steps. Its outcome is ``gamma ** (t - 1)`` for a
   failure at step t, else 0, with the shield's discount gamma = 1 - 1/H (the units of the
   critic's ``"nstep"`` target). Reported per bin: the mean Spearman correlation of the critic's
   risk with the outcome across the actions of a state; the gap the critic sees (risk of the
   proposal - least risk), and the true gaps (outcome of the proposal - outcome of the critic's
   least risky action, and - the best outcome of all actions: what a perfect one-step shield
   could buy).

Outputs in ``--out``: ``results.json`` (``cases``: per case and bin, mean ± 95 % CI over seeds;
``runs``: every seed's numbers) and ``action_ranking.png``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import safeshield
from safeshield.core.ranking import BINS, action_ranking
from safeshield.experiments.runner import Job, mean_ci, run_jobs, write_json


@dataclass(frozen=True)
class Case:
    name: str
    env_id: str
    agent: str  # "sac" or "ppo" (stable-baselines3)
    steps: int


CASES = [
    Case("idp_sac", "InvertedDoublePendulum-v5", "sac", 5_000),
    Case("idp_ppo", "InvertedDoublePendulum-v5", "ppo", 10_240),
    Case("hopper_sac", "Hopper-v5", "sac", 5_000),
    Case("hopper_ppo", "Hopper-v5", "ppo", 10_240),
    Case("walker_sac", "Walker2d-v5", "sac", 5_000),
]
QUICK = {"cases": ["idp_sac"], "steps": 1_000, "states": 8, "episodes": 3}


def train(case: Case, seed: int, steps: int, options: dict[str, Any], progress_queue=None):
    """The case's agent trained inside an SQRL shield (defaults + ``options``); returns (agent, frozen model)."""
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from safeshield.integrations.sb3 import ShieldCallback

    class Progress(BaseCallback):
        """Advances the shared progress bar every 500 env steps."""

        def _on_step(self) -> bool:
            if progress_queue is not None and self.num_timesteps % 500 == 0:
                progress_queue.put(500)
            return True

    env = safeshield.wrap(gym.make(case.env_id), "sqrl", indicator="terminated", seed=seed, **options)
    agent = {"sac": SAC, "ppo": PPO}[case.agent]("MlpPolicy", env, seed=seed, verbose=0, device="cpu")
    agent.learn(steps, callback=[ShieldCallback(), Progress()])
    return agent, env.stepper.model.freeze()


def episodes(case: Case, agent, model, seed: int, count: int, shielded: bool) -> dict[str, float]:
    """The frozen agent's deterministic policy from ``count`` fixed initial states, with or without the shield."""
    env = gym.make(case.env_id)
    if shielded:
        env = safeshield.wrap(env, model, indicator="terminated", seed=seed, train=False)
    lengths, failures, steered = [], 0, 0
    for i in range(count):
        obs, _ = env.reset(seed=10_000 + i)
        terminated = truncated = False
        length = 0
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(agent.predict(obs, deterministic=True)[0])
            steered += bool(shielded and info["shield"]["intervened"])
            length += 1
        lengths.append(length)
        failures += bool(terminated)
    return {"mean_length": float(np.mean(lengths)), "failures": failures, "steered": steered / sum(lengths)}


def counterfactual(case: Case, agent, model, seed: int, per_bin: int, candidates: int) -> dict[str, dict]:
    """``safeshield.core.ranking.action_ranking`` of the frozen agent and shield on the case's env."""

    def policy(obs, deterministic):
        return agent.predict(obs, deterministic=deterministic)[0]

    return action_ranking(model, gym.make(case.env_id), policy, per_bin=per_bin, candidates=candidates, seed=seed)


def run_seed(case: Case, seed: int, steps: int, settings: dict[str, Any], options: dict, progress_queue=None):
    """One seed of ``case``: train, then measure (``settings``: states, candidates, episodes)."""
    torch.set_num_threads(1)
    agent, model = train(case, seed, steps, options, progress_queue)
    return {
        "case": case.name,
        "seed": seed,
        "steps": steps,
        "horizon": model.config.horizon,
        "episodes_unshielded": episodes(case, agent, model, seed, settings["episodes"], shielded=False),
        "episodes_shielded": episodes(case, agent, model, seed, settings["episodes"], shielded=True),
        "bins": counterfactual(case, agent, model, seed, settings["states"], settings["candidates"]),
    }


def summarise(case: Case, runs: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": case.name, "env_id": case.env_id, "agent": f"sb3_{case.agent}"}
    out["seeds"] = [r["seed"] for r in runs]
    out["steps"], out["horizon"] = runs[0]["steps"], runs[0]["horizon"]
    for arm in ("episodes_unshielded", "episodes_shielded"):
        out[arm] = {k: mean_ci([r[arm][k] for r in runs]) for k in runs[0][arm]}
    out["bins"] = {}
    for label, _, _ in BINS:
        present = [r["bins"][label] for r in runs if label in r["bins"]]
        if present:
            out["bins"][label] = {"seeds": len(present)} | {
                k: mean_ci([p[k] for p in present if p[k] is not None and np.isfinite(p[k])])
                for k in present[0]
                if any(p[k] is not None and np.isfinite(p[k]) for p in present)
            }
    return out


def plot(summaries: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summaries), figsize=(4.2 * len(summaries), 3.6), squeeze=False)
    keys = (("critic_gap", "gap the critic sees"), ("true_gap_of_choice", "true gap, critic's choice"))
    keys += (("true_gap_of_best", "true gap, best action"),)
    for ax, summary in zip(axes[0], summaries):
        labels = list(summary["bins"])
        x = np.arange(len(labels))
        for i, (key, name) in enumerate(keys):
            mean = [summary["bins"][b].get(key, (np.nan, 0))[0] for b in labels]
            err = [summary["bins"][b].get(key, (np.nan, 0))[1] for b in labels]
            ax.bar(x + (i - 1) * 0.27, mean, 0.27, yerr=err, label=name)
        ax.set_xticks(x, labels)
        ax.set_xlabel("steps before the failure (H = shield horizon)")
        ax.set_title(f"{summary['name']} ({summary['steps']} steps)")
        ax.axhline(0, color="black", lw=0.5)
    axes[0][0].set_ylabel("proposal - action (discounted failure)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def measure(args: argparse.Namespace) -> list[dict]:
    """Run every (case, seed) the command line asks for; return their results."""
    names = QUICK["cases"] if args.quick and args.cases is None else args.cases
    cases = [c for c in CASES if names is None or c.name in names]
    settings = {
        "states": QUICK["states"] if args.quick else args.states,
        "candidates": args.candidates,
        "episodes": QUICK["episodes"] if args.quick else args.episodes,
    }
    steps_of = {c.name: QUICK["steps"] if args.quick else c.steps for c in cases}
    jobs = [
        Job(run_seed, (case, seed, steps_of[case.name], settings, args.options))
        for case in cases
        for seed in range(args.seeds)
    ]
    total = sum(steps_of[c.name] for c in cases) * args.seeds
    return run_jobs(jobs, total, desc="action ranking", workers=min(args.workers, len(jobs)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case, 1k steps, few states: a smoke run")
    parser.add_argument("--cases", nargs="*", default=None, help=f"subset of {[c.name for c in CASES]}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--states", type=int, default=40, help="held-out states per bin")
    parser.add_argument("--candidates", type=int, default=16, help="uniform actions per state besides the proposal")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per arm from fixed initial states")
    parser.add_argument("--options", type=json.loads, default={}, help="SQRL options as JSON (default: none)")
    parser.add_argument("--summarise", action="store_true", help="only redo the summary and plot of --out's runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/action_ranking")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.summarise:
        previous = json.loads((out / "results.json").read_text())
        runs, quick, options = previous["runs"], previous["quick"], previous["options"]
    else:
        runs, quick, options = measure(args), args.quick, args.options
    cases = [c for c in CASES if any(r["case"] == c.name for r in runs)]
    summaries = [summarise(case, [r for r in runs if r["case"] == case.name]) for case in cases]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", {"quick": quick, "options": options, "cases": summaries, "runs": runs})
    plot(summaries, out / "action_ranking.png")
    print(f"wrote {out / 'results.json'} and {out / 'action_ranking.png'}")


if __name__ == "__main__":
    main()
