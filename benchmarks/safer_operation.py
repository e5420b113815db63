"""SAFER vs SAC vs a PARROT-style prior on the hardest Operation grasping tasks (SAFER Table 1, Fig. 4).

Run ``python benchmarks/safer_operation.py [--quick] [--out benchmarks/results/safer_operation]``.

1. Data: the scripted noisy grasp (``operation.ScriptedGrasp``) on all 40 tasks, the noise std
   cycling through ``NOISE_LEVELS`` per episode; written in the ``safeshield-offline`` format.
2. Priors (SAFER App. C / D): SAFER (safety variable c, contrastive lambda, SGD + momentum) on
   D_safe (safe steps of successful episodes) and D_unsafe (omega = 1); PARROT (no c, lambda = 0,
   Adam) on the safe, successful steps only. Loss curves -> ``prior_losses.png``.
3. eta (Alg. 3, deterministic variant) for <= 15 % unsafe on the labelled data; Fig. 4: for bounds
   0/15/30/45 % the empirical unsafe share of the steps of rollouts that draw z uniformly from the
   box on the evaluated tasks -> ``calibration.png``.
4. RL (Table 1): SAC in the env's action space; SAFER + SAC and PARROT + SAC acting in the prior's
   latent box (``RemapWrapper``, frozen prior). PARROT has no eta: its box is (-3, 3)^d, 3 sigma of
   the base N(0, I) (our choice). Success rate over all training episodes and violations per 1,000
   steps, mean and 95 % CI over seeds, per task -> ``results.json``, ``table1.png``, ``curves_*.png``.

Scale: the paper used 1M data steps per task, 500k prior steps and 50k SAC steps on 6 tasks; this
runs on 2 CPU cores (budget: 15 CPU-minutes on one core for the full run), so every size is far
smaller (``SCALES``) and the numbers are a CPU-scale reproduction of the *ordering*, not the values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import safeshield  # noqa: F401  (registers the envs)
from safeshield.agents.sac import SAC, SACConfig
from safeshield.environments.operation import EVAL_TASKS, N_TASKS, ScriptedGrasp
from safeshield.experiments.plots import plot_learning_curves
from safeshield.experiments.runner import Job, mean_ci, run_jobs, write_json
from safeshield.shields.safer import SAFER, SAFERConfig, in_box_unsafe_fraction
from safeshield.shields.safer.dataset import OfflineDataset, collect_episodes
from safeshield.wrappers.remap import RemapWrapper

NOISE_LEVELS = (0.5, 1.0, 1.5, 2.0)  # our choice: actuation noise std (before the tanh) of the scripted grasp
BOUNDS = (0.0, 0.15, 0.30, 0.45)  # SAFER Fig. 4
PARROT_ETA = 3.0  # our choice: PARROT has no latent bound; 3 sigma of N(0, I)
SCALES = {
    # data tasks and episodes per task, prior steps and batch, RL tasks, seeds, steps per run, Fig. 4 episodes per bound
    # and task
    "full": dict(
        data_tasks=N_TASKS,
        episodes_per_task=12,
        prior_steps=2000,
        prior_batch=128,
        tasks=2,
        seeds=3,
        rl_steps=4000,
        calib_episodes=5,
    ),
    "quick": dict(
        data_tasks=6,
        episodes_per_task=2,
        prior_steps=40,
        prior_batch=64,
        tasks=2,
        seeds=1,
        rl_steps=150,
        calib_episodes=1,
    ),
}
CONTRASTIVE_WEIGHT = 0.02  # lambda at CPU scale: the paper's lambda x steps (1e-4 x 500k = 50) over 2,500 steps
SAC_CONFIG = SACConfig(hidden=(64, 64), batch_size=128, learning_starts=500, train_every=2)  # our choice: CPU scale


def prior_config(kind: str, batch: int) -> SAFERConfig:
    """SAFER (App. C) or PARROT (App. D: no c, lambda 0), both with Adam at lr 1e-3 and flow width 128.

    CPU scale: App. C's SGD at lr 1e-4 needs the paper's 500k steps (measured here: after 2,500
    steps log p(a_safe) was still ~0 against ~3 with Adam, and lambda = 1e-4 left the unsafe
    likelihood *above* the safe one); both priors get the same optimiser so they differ only in
    c, lambda and the unsafe data.
    """
    common = dict(flow_hidden=(128, 128), batch_size=batch, optimizer="adam", lr=1e-3)
    if kind == "safer":
        return SAFERConfig(**common, contrastive_weight=CONTRASTIVE_WEIGHT)
    return SAFERConfig.parrot(**common)


def collect_task(task: int, episodes: int, progress_queue=None) -> OfflineDataset:
    env = gym.make(f"safeshield/Operation{task:02d}-v0")
    parts = []
    for episode in range(episodes):
        noise = NOISE_LEVELS[episode % len(NOISE_LEVELS)]
        part = collect_episodes(
            env, ScriptedGrasp(noise), 1, seed=10_000 * task + episode, metadata={"noise": list(NOISE_LEVELS)}
        )
        parts.append(part)
        if progress_queue is not None:
            progress_queue.put(len(part))
    env.close()
    return OfflineDataset.concatenate(parts)


def train_prior(kind: str, data_path: str, steps: int, batch: int, out: str, progress_queue=None) -> dict:
    torch.set_num_threads(1)
    data = OfflineDataset.load(data_path)
    env = gym.make("safeshield/Operation00-v0")
    prior = SAFER(env.observation_space, env.action_space, prior_config(kind, batch), seed=0)
    start = time.process_time()
    chunk = max(1, steps // 20)
    history: dict[str, list] = {}
    for done in range(0, steps, chunk):
        part = prior.fit(data, min(chunk, steps - done), progress=False, log_every=10)
        for key, values in part.items():
            history.setdefault(key, []).extend([v + done for v in values] if key == "step" else values)
        if progress_queue is not None:
            progress_queue.put(min(chunk, steps - done))
    seconds = time.process_time() - start
    if kind == "safer":
        prior.calibrate(data, 0.15)
    else:
        prior.eta = PARROT_ETA
    prior.save(Path(out) / f"prior_{kind}")
    env.close()
    return {"history": history, "cpu_seconds": seconds, "eta": prior.eta}


class _EpisodeStats(gym.Wrapper):
    """Counts omega and records success for the episode in progress (read by the SAC callback)."""

    def reset(self, **kwargs):
        self.violations, self.success = 0, False
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.violations += int(info["failure"] > 0.5)
        self.success = self.success or bool(info["success"])
        return obs, reward, terminated, truncated, info


def rl_run(method: str, task: int, seed: int, steps: int, out: str, progress_queue=None) -> dict:
    torch.set_num_threads(1)
    stats = _EpisodeStats(gym.make(f"safeshield/Operation{task:02d}-v0"))
    env: gym.Env = stats
    if method != "sac":
        prior = SAFER.load(Path(out) / f"prior_{method}", stats)
        env = RemapWrapper(stats, prior)
    agent = SAC(env.observation_space, env.action_space, SAC_CONFIG, seed=seed)

    def callback(record: dict) -> None:
        record.update(violations=stats.violations, success=stats.success, failure=stats.violations > 0)
        if progress_queue is not None:
            progress_queue.put(int(record["length"]))

    start = time.process_time()
    records = agent.learn(env, steps, seed=seed, progress=False, callback=callback)
    seconds = time.process_time() - start
    steps_done = sum(r["length"] for r in records)
    violations = sum(r["violations"] for r in records)
    env.close()
    return {
        "method": method,
        "task": task,
        "seed": seed,
        "records": records,
        "cpu_seconds": seconds,
        "episodes": len(records),
        "steps_in_episodes": steps_done,
        "success_rate": float(np.mean([r["success"] for r in records])) if records else 0.0,
        "violations": violations,
        "violations_per_1000": 1000.0 * violations / max(steps_done, 1),
    }


def calibration_rollouts(out: str, task: int, bound: float, data_path: str, episodes: int, progress_queue=None) -> dict:
    """Fig. 4: z ~ U(box) through the frozen SAFER prior; unsafe share of each rollout's steps."""
    torch.set_num_threads(1)
    env = gym.make(f"safeshield/Operation{task:02d}-v0")
    prior = SAFER.load(Path(out) / "prior_safer", env)
    data = OfflineDataset.load(data_path)
    eta = prior.calibrate(data, bound)
    shield = RemapWrapper(env, prior)
    rng = np.random.default_rng(int(1000 * bound) + task)
    shares = []
    for episode in range(episodes):
        shield.reset(seed=episode)
        unsafe = steps = 0
        done = False
        while not done:
            _, _, terminated, truncated, info = shield.step(
                rng.uniform(-1, 1, shield.action_space.shape).astype(np.float32)
            )
            unsafe += info["failure"] > 0.5
            steps += 1
            done = terminated or truncated
        shares.append(unsafe / steps)
        if progress_queue is not None:
            progress_queue.put(steps)
    env.close()
    return {"task": task, "bound": bound, "eta": eta, "unsafe_share": shares}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a < 1 minute smoke run")
    parser.add_argument(
        "--out", default=None, help="results folder (default benchmarks/results/safer_operation[_quick])"
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scale = SCALES["quick" if args.quick else "full"]
    out = Path(args.out or f"benchmarks/results/safer_operation{'_quick' if args.quick else ''}")
    out.mkdir(parents=True, exist_ok=True)
    wall = time.time()
    progress = sys.stderr.isatty()

    # 1. data
    episodes = scale["episodes_per_task"]
    data_tasks = (
        range(scale["data_tasks"])
        if scale["data_tasks"] == N_TASKS
        else sorted(set(range(scale["data_tasks"])) | set(EVAL_TASKS[: scale["tasks"]]))
    )
    parts = run_jobs(
        [Job(collect_task, (t, episodes)) for t in data_tasks],
        len(data_tasks) * episodes * 40,
        "data",
        args.workers,
        progress,
    )
    data = OfflineDataset.concatenate(parts)
    data_path = str(data.save(out / "data.npz"))
    labelled = np.concatenate([data.safe_rows(), data.unsafe_rows()])
    data_summary = {
        "steps": len(data),
        "episodes": int(data.episode_ids.max() + 1),
        "violation_rate": float(data.violations.mean()),
        "successful_episode_steps": float(data.successes.mean()),
        "d_safe": int(data.safe_rows().size),
        "d_unsafe": int(data.unsafe_rows().size),
        "unsafe_share_of_labelled": float(data.violations[labelled].mean()),
    }
    print("data:", data_summary, flush=True)

    # 2. priors
    steps, batch = scale["prior_steps"], scale["prior_batch"]
    priors = run_jobs(
        [Job(train_prior, (k, data_path, steps, batch, str(out))) for k in ("safer", "parrot")],
        2 * steps,
        "priors",
        args.workers,
        progress,
    )
    priors = dict(zip(("safer", "parrot"), priors))
    plot_prior_losses(priors, out / "prior_losses.png")
    print("eta: SAFER", priors["safer"]["eta"], "PARROT", priors["parrot"]["eta"], flush=True)

    # 3. Fig. 4 calibration
    tasks = EVAL_TASKS[: scale["tasks"]]
    calib_jobs = [
        Job(calibration_rollouts, (str(out), t, b, data_path, scale["calib_episodes"])) for b in BOUNDS for t in tasks
    ]
    calibration = run_jobs(calib_jobs, len(calib_jobs) * scale["calib_episodes"] * 40, "Fig. 4", args.workers, progress)
    prior = SAFER.load(out / "prior_safer")
    max_abs, unsafe = prior.labelled_latents(data)
    labelled_calibration = {
        str(b): {
            "eta": (eta := prior.calibrate(data, b)),
            "in_box_unsafe_fraction": in_box_unsafe_fraction(max_abs, unsafe, eta),
            "in_box_points": int((max_abs < eta).sum()),
        }
        for b in BOUNDS
    }
    plot_calibration(calibration, out / "calibration.png")

    # 4. Table 1 at CPU scale
    methods = ("safer", "parrot", "sac")
    rl_jobs = [
        Job(rl_run, (m, t, s, scale["rl_steps"], str(out)))
        for t in tasks
        for m in methods
        for s in range(scale["seeds"])
    ]
    runs = run_jobs(rl_jobs, len(rl_jobs) * scale["rl_steps"], "RL", args.workers, progress)
    table = summarise(runs, methods, tasks)
    for task in tasks:
        plot_learning_curves(
            {m: [r["records"] for r in runs if r["method"] == m and r["task"] == task] for m in methods},
            out / f"curves_task{task:02d}.png",
            f"Operation task {task}: episodes with a violation",
        )
    plot_table(table, methods, tasks, out / "table1.png")

    results = {
        "settings": {
            "scale": scale,
            "noise_levels": NOISE_LEVELS,
            "contrastive_weight": CONTRASTIVE_WEIGHT,
            "bounds": BOUNDS,
            "parrot_eta": PARROT_ETA,
            "sac": {**SAC_CONFIG.__dict__, "hidden": list(SAC_CONFIG.hidden)},
            "tasks": list(tasks),
            "safer_config": prior_config("safer", batch).to_json(),
            "parrot_config": prior_config("parrot", batch).to_json(),
        },
        "data": data_summary,
        "priors": {
            k: {
                "eta": v["eta"],
                "cpu_seconds": v["cpu_seconds"],
                "final": {key: vals[-1] for key, vals in v["history"].items()},
            }
            for k, v in priors.items()
        },
        "calibration_labelled": labelled_calibration,
        "calibration_rollouts": calibration,
        "table1": table,
        "paper_table1": {
            "success_mean_percent": {"safer": 60.6, "parrot": 15.8, "sac": 0.38},
            "violations_per_1000_mean": {"safer": 9.47, "parrot": 35.13, "sac": 32.19},
        },
        "runs": [{k: v for k, v in r.items() if k != "records"} for r in runs],
        "wall_seconds": time.time() - wall,
    }
    write_json(out / "results.json", results)
    print_table(table, methods, tasks)
    print(f"wall {time.time() - wall:.0f} s; results in {out}")
    return 0


def summarise(runs: list[dict], methods, tasks) -> dict:
    table: dict = {}
    for method in methods:
        row: dict = {}
        for task in list(tasks) + ["all"]:
            chosen = [r for r in runs if r["method"] == method and (task == "all" or r["task"] == task)]
            if task == "all":  # mean over tasks of per-seed values, seeds pooled per task
                per_seed = [
                    np.mean([r["success_rate"] for r in chosen if r["seed"] == s])
                    for s in sorted({r["seed"] for r in chosen})
                ]
                per_seed_v = [
                    np.mean([r["violations_per_1000"] for r in chosen if r["seed"] == s])
                    for s in sorted({r["seed"] for r in chosen})
                ]
            else:
                per_seed = [r["success_rate"] for r in chosen]
                per_seed_v = [r["violations_per_1000"] for r in chosen]
            success, success_ci = mean_ci([100 * x for x in per_seed])
            violations, violations_ci = mean_ci(per_seed_v)
            row[str(task)] = {
                "success_percent": success,
                "success_ci": success_ci,
                "violations_per_1000": violations,
                "violations_ci": violations_ci,
                "seeds": len(per_seed),
            }
        table[method] = row
    return table


def print_table(table, methods, tasks) -> None:
    print(f"{'method':8s} " + " ".join(f"{'task ' + str(t):>30s}" for t in list(tasks) + ["all"]))
    for method in methods:
        cells = [table[method][str(t)] for t in list(tasks) + ["all"]]
        print(
            f"{method:8s} "
            + " ".join(
                f"{c['success_percent']:5.1f}±{c['success_ci']:4.1f}% "
                f"{c['violations_per_1000']:6.1f}±{c['violations_ci']:5.1f}/1k"
                for c in cells
            )
        )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_prior_losses(priors: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for kind, result in priors.items():
        h = result["history"]
        axes[0].plot(h["step"], h["loss"], label=f"{kind} loss (Alg. 2 NLL)")
        axes[1].plot(h["step"], h["log_p_safe"], label=f"{kind} log p(a_safe)")
        if "log_p_unsafe" in h and kind == "safer":
            axes[1].plot(h["step"], h["log_p_unsafe"], label=f"{kind} log p(a_unsafe)")
    axes[0].set(xlabel="prior step", ylabel="loss", title="Prior training")
    axes[1].set(xlabel="prior step", ylabel="mean log-likelihood", title="Safe vs unsafe likelihood")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(calibration: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    tasks = sorted({entry["task"] for entry in calibration})
    for index, task in enumerate(tasks):
        entries = [e for e in calibration if e["task"] == task]
        x = [100 * e["bound"] + (index - (len(tasks) - 1) / 2) * 2.0 for e in entries for _ in e["unsafe_share"]]
        y = [100 * share for e in entries for share in e["unsafe_share"]]
        ax.scatter(x, y, s=16, alpha=0.7, color=f"C{index}", label=f"task {task} (one dot per rollout)")
        ax.plot(
            [100 * e["bound"] for e in entries],
            [100 * np.mean(e["unsafe_share"]) for e in entries],
            color=f"C{index}",
            lw=1,
        )
    ax.plot([0, 45], [0, 45], "k--", lw=1, label="bound")
    ax.legend(fontsize=8)
    ax.set(
        xlabel="allowed unsafe % (bound)",
        ylabel="unsafe % of steps in a rollout",
        title="Fig. 4: z ~ U(box), SAFER prior",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_table(table, methods, tasks, path: Path) -> None:
    plt = _pyplot()
    columns = [str(t) for t in tasks] + ["all"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        x = np.arange(len(columns)) + i * width
        for ax, key, ci in (
            (axes[0], "success_percent", "success_ci"),
            (axes[1], "violations_per_1000", "violations_ci"),
        ):
            ax.bar(
                x,
                [table[method][c][key] for c in columns],
                width,
                yerr=[table[method][c][ci] for c in columns],
                label=method,
                capsize=3,
            )
    for ax, title in ((axes[0], "success rate (%)"), (axes[1], "violations per 1,000 steps")):
        ax.set_xticks(
            np.arange(len(columns)) + 0.4 - width / 2, [f"task {c}" if c != "all" else "mean" for c in columns]
        )
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
