"""SAFER vs SAC vs a PARROT-style prior on the 6 hardest Operation grasping tasks (SAFER Table 1, Fig. 4).

Run ``python benchmarks/safer_operation.py [--quick] [--out DIR] [--cache DIR]``.

1. Data: the scripted noisy grasp (``operation.ScriptedGrasp``) on all 40 tasks, the noise std
   cycling through ``NOISE_LEVELS`` per episode, in the ``safeshield-offline`` format; one cached
   file per task, keyed by what determines it (task, episodes, noise levels, seeds, ``DATA_VERSION``).
2. Labels: omega with a ``LOOKAHEAD``-step look-ahead (a step is unsafe when the container is
   touched at it or within the next ``LOOKAHEAD`` steps of its episode: the paper's "unsafe
   action" is one that leads to a violation; the env's omega marks only the contact step).
3. Priors (SAFER App. C / D): SAFER (safety variable c, per-action floored contrastive term) on
   D_safe (safe steps of successful episodes) and D_unsafe; PARROT (no c, lambda = 0) on the safe,
   successful steps only. Cached by the data's content digest and the config.
4. Diagnostics (``diagnostics.json``): both priors rolled out on the evaluation tasks with z = 0,
   z ~ N(0, I) and z ~ U(-eta, eta)^d for a grid of eta (success, contact rate); the posterior's
   context on safe vs unsafe windows; log-likelihood quantiles of safe and unsafe actions.
5. eta (Alg. 3, deterministic variant) on the labelled data for each of ``BOUNDS``; Fig. 4: for
   each bound the unsafe share of the steps of rollouts drawing z uniformly from the box on the
   6 evaluation tasks, checked against the bound with a one-sided binomial test
   (``rollout_bound_check``).
6. RL (Table 1): SAC in the env's action space; SAFER + SAC (in the box of ``TABLE1_BOUND``: 0 %,
   not the paper's 15 %, whose box is vacuous on this data; docs/safer.md) and PARROT + SAC acting
   in the prior's latent box (frozen prior). PARROT has no eta: its box is (-3, 3)^d, 3 sigma of
   the base N(0, I) (our choice). Success rate over the training episodes and violations per 1,000 steps, mean and
   95 % CI over seeds, per task. Each run is cached, so an interrupted benchmark resumes.

Scale: the paper used 1M data steps per task, 500k prior steps and 50k SAC steps per run on 6
tasks; this runs on a shared 2-core CPU, so every size is far smaller (``SCALES``, all written to
``results.json``): a CPU-scale reproduction of the *ordering*, not of the values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
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
from safeshield.shields.safer.calibration import rollout_bound_check
from safeshield.shields.safer.dataset import OfflineDataset, collect_episodes
from safeshield.wrappers.remap import RemapWrapper

NOISE_LEVELS = (0.5, 1.0, 1.5, 2.0)  # our choice: actuation noise std (before the tanh) of the scripted grasp
DATA_VERSION = 2  # bump when the env or the scripted policy changes what a collection holds
PRIOR_VERSION = 1  # bump when the library's SAFER defaults or training code change what a fit returns
LOOKAHEAD = 2  # our choice: a step is unsafe if the container is touched within it or the next 2 steps
BOUNDS = (0.0, 0.05, 0.10, 0.15, 0.30, 0.45)  # SAFER Fig. 4 (0, 15, 30, 45 %) and two tighter bounds
TABLE1_BOUND = (
    0.0  # the box SAFER + SAC acts in: no labelled unsafe action inside (Prop. 3.4; docs/safer.md says why not 15 %)
)
PARROT_ETA = 3.0  # our choice: PARROT has no latent bound; 3 sigma of N(0, I)
DIAGNOSTIC_ETAS = (0.5, 1.0, 1.5, 2.0, 3.0)
SCALES = {
    # data episodes per task (all 40 tasks), prior steps and batch, RL tasks, seeds, steps per run,
    # Fig. 4 episodes per bound and task, diagnostic episodes per setting and task
    "full": dict(
        data_tasks=N_TASKS,
        episodes_per_task=12,
        prior_steps=4000,
        prior_batch=128,
        tasks=6,
        seeds=3,
        rl_steps=2000,
        calib_episodes=4,
        diag_episodes=2,
    ),
    "quick": dict(
        data_tasks=3,
        episodes_per_task=2,
        prior_steps=30,
        prior_batch=32,
        tasks=2,
        seeds=1,
        rl_steps=120,
        calib_episodes=1,
        diag_episodes=1,
    ),
}
CONTRASTIVE_WEIGHT = 1.0  # lambda with the per-sample floor (docs/safer.md: the floor bounds the term)
CONTRASTIVE_MARGIN = 5.0  # nats below the safe batch mean where an unsafe action stops being pushed
SAC_CONFIG = SACConfig(hidden=(64, 64), batch_size=128, learning_starts=500, train_every=2)  # our choice: CPU scale


def prior_config(kind: str, batch: int) -> SAFERConfig:
    """SAFER (App. C) or PARROT (App. D: no c, lambda 0), both with Adam at lr 1e-3 and flow width 128.

    CPU scale: App. C's SGD at lr 1e-4 needs the paper's 500k steps (measured: after 2,500 steps
    log p(a_safe) was still ~0 against ~3 with Adam); both priors get the same optimiser so they
    differ only in c, the contrastive term and the unsafe data.
    """
    changes = prior_changes(kind, batch)
    return SAFERConfig(**changes) if kind == "safer" else SAFERConfig.parrot(**changes)


def prior_changes(kind: str, batch: int) -> dict:
    """What the benchmark sets on top of the library's defaults (part of the prior's cache key)."""
    common = dict(flow_hidden=(128, 128), batch_size=batch, optimizer="adam", lr=1e-3)
    if kind == "safer":
        return {
            **common,
            "contrastive_weight": CONTRASTIVE_WEIGHT,
            "divergence_margin": CONTRASTIVE_MARGIN,
            "unsafe_floor": True,
        }
    return common


# ---------------------------------------------------------------------------------------------
# caching


def content_key(**inputs) -> str:
    """A short sha256 of everything that determines a cached artefact (JSON, sorted keys)."""
    text = json.dumps(
        inputs, sort_keys=True, default=lambda value: list(value) if isinstance(value, tuple) else str(value)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def collect_task(task: int, episodes: int, cache: str, progress_queue=None) -> str:
    """Scripted data of one task, cached under ``cache`` by its inputs; returns the file's path."""
    key = content_key(version=DATA_VERSION, task=task, episodes=episodes, noise=NOISE_LEVELS, seed=10_000 * task)
    path = Path(cache) / f"data_task{task:02d}_{key}.npz"
    if path.exists():
        if progress_queue is not None:
            progress_queue.put(episodes * 40)
        return str(path)
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
    return str(OfflineDataset.concatenate(parts).save(path))


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def train_prior(kind: str, data_path: str, steps: int, batch: int, cache: str, progress_queue=None) -> dict:
    """Fit (or load from ``cache``) one prior; returns its directory, loss history and CPU time."""
    torch.set_num_threads(1)
    data = OfflineDataset.load(data_path)
    config = prior_config(kind, batch)
    key = content_key(
        version=PRIOR_VERSION, kind=kind, data=data.digest(), changes=prior_changes(kind, batch), steps=steps, seed=0
    )
    folder = Path(cache) / f"prior_{kind}_{key}"
    record = folder / "history.json"
    if record.exists():
        if progress_queue is not None:
            progress_queue.put(steps)
        return {**json.loads(record.read_text()), "path": str(folder), "cached": True}
    env = gym.make("safeshield/Operation00-v0")
    prior = SAFER(env.observation_space, env.action_space, config, seed=0)
    start = time.process_time()
    chunk = max(1, steps // 20)
    history: dict[str, list] = {}
    for done in range(0, steps, chunk):
        part = prior.fit(data, min(chunk, steps - done), progress=False, log_every=10)
        for name, values in part.items():
            history.setdefault(name, []).extend([v + done for v in values] if name == "step" else values)
        if progress_queue is not None:
            progress_queue.put(min(chunk, steps - done))
    seconds = time.process_time() - start
    prior.eta = PARROT_ETA
    prior.save(folder)
    result = {"history": history, "cpu_seconds": seconds}
    record.write_text(json.dumps(result))
    env.close()
    return {**result, "path": str(folder), "cached": False}


# ---------------------------------------------------------------------------------------------
# rollouts


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


def prior_rollouts(
    prior_path: str, task: int, eta: float, mode: str, episodes: int, seed: int, cache: str, progress_queue=None
) -> dict:
    """Roll the frozen prior out with z = 0 ("zero"), z ~ N(0, I) clipped to the box ("normal") or
    z ~ U(-eta, eta)^d ("uniform", Fig. 4); per rollout: unsafe steps, steps, success (cached)."""
    torch.set_num_threads(1)
    key = content_key(
        prior=file_digest(Path(prior_path) / "weights.safetensors"),
        task=task,
        eta=eta,
        mode=mode,
        episodes=episodes,
        seed=seed,
    )
    record = Path(cache) / f"rollouts_task{task:02d}_{mode}_{key}.json"
    if record.exists():
        if progress_queue is not None:
            progress_queue.put(episodes * 40)
        return json.loads(record.read_text())
    env = gym.make(f"safeshield/Operation{task:02d}-v0")
    prior = SAFER.load(prior_path, env)
    prior.eta = float(eta)
    shield = RemapWrapper(env, prior)
    rng = np.random.default_rng(seed)
    rollouts = []
    for episode in range(episodes):
        shield.reset(seed=seed + episode)
        unsafe = steps = 0
        done = success = False
        while not done:
            if mode == "zero":
                u = np.zeros(shield.action_space.shape)
            elif mode == "normal":
                u = np.clip(rng.standard_normal(shield.action_space.shape) / eta, -1, 1)
            else:
                u = rng.uniform(-1, 1, shield.action_space.shape)
            _, _, terminated, truncated, info = shield.step(u.astype(np.float32))
            unsafe += info["failure"] > 0.5
            steps += 1
            success = success or bool(info["success"])
            done = terminated or truncated
        rollouts.append({"unsafe": int(unsafe), "steps": steps, "success": success})
        if progress_queue is not None:
            progress_queue.put(steps)
    env.close()
    result = {"task": task, "eta": float(eta), "mode": mode, "rollouts": rollouts}
    record.write_text(json.dumps(result))
    return result


def rl_run(
    method: str, task: int, seed: int, steps: int, prior_path: str | None, eta: float, cache: str, progress_queue=None
) -> dict:
    torch.set_num_threads(1)
    weights = file_digest(Path(prior_path) / "weights.safetensors") if prior_path else None
    key = content_key(
        method=method,
        task=task,
        seed=seed,
        steps=steps,
        prior=weights,
        eta=eta,
        sac={**SAC_CONFIG.__dict__, "hidden": list(SAC_CONFIG.hidden)},
    )
    record = Path(cache) / f"rl_{method}_task{task:02d}_seed{seed}_{key}.json"
    if record.exists():
        if progress_queue is not None:
            progress_queue.put(steps)
        return json.loads(record.read_text())
    stats = _EpisodeStats(gym.make(f"safeshield/Operation{task:02d}-v0"))
    env: gym.Env = stats
    if method != "sac":
        prior = SAFER.load(prior_path, stats)
        prior.eta = float(eta)
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
    late = records[len(records) // 2 :]
    env.close()
    result = {
        "method": method,
        "task": task,
        "seed": seed,
        "records": records,
        "cpu_seconds": seconds,
        "episodes": len(records),
        "steps_in_episodes": steps_done,
        "success_rate": float(np.mean([r["success"] for r in records])) if records else 0.0,
        "success_rate_second_half": float(np.mean([r["success"] for r in late])) if late else 0.0,
        "violations": violations,
        "violations_per_1000": 1000.0 * violations / max(steps_done, 1),
    }
    record.write_text(json.dumps(result, default=float))
    return result


# ---------------------------------------------------------------------------------------------
# checks and diagnostics


@torch.inference_mode()
def likelihood_diagnostics(prior: SAFER, data: OfflineDataset, n: int = 2000, seed: int = 0) -> dict:
    """Safe vs unsafe log-likelihood quantiles at c = E[c | Lambda]; the posterior's context on both."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    means = {}
    for name, rows in (("safe", data.safe_rows(True)), ("unsafe", data.unsafe_rows())):
        rows = rng.choice(rows, min(n, rows.size), replace=False)
        windows, valid = (torch.as_tensor(x) for x in data.windows(rows, prior.window))
        _, mean, log_std = prior.posterior_params(windows, valid)
        log_p, _ = prior.log_prob(torch.as_tensor(data.actions[rows]), windows, valid, sample=False)
        out[f"log_p_{name}_quantiles_10_50_90"] = [float(q) for q in np.percentile(log_p.numpy(), [10, 50, 90])]
        if mean is not None:
            means[name] = mean.numpy()
            out[f"context_{name}"] = {
                "mean_abs_mean": float(np.abs(mean).mean()),
                "mean_std": float(log_std.exp().mean()),
            }
    if means:
        # linear probe: can E[c | Lambda] tell the safe windows from the unsafe ones?
        x = np.concatenate([means["safe"], means["unsafe"]])
        y = np.r_[np.zeros(len(means["safe"])), np.ones(len(means["unsafe"]))]
        x = np.c_[(x - x.mean(0)) / (x.std(0) + 1e-9), np.ones(len(x))]
        weights = np.linalg.lstsq(x, 2 * y - 1, rcond=None)[0]
        out["context_probe_accuracy"] = float(((x @ weights > 0) == y).mean())
        out["context_probe_chance"] = float(max(y.mean(), 1 - y.mean()))
    return out


def summarise_rollouts(entries: list[dict]) -> dict:
    rollouts = [r for e in entries for r in e["rollouts"]]
    steps = sum(r["steps"] for r in rollouts)
    return {
        "success": float(np.mean([r["success"] for r in rollouts])),
        "unsafe_share": sum(r["unsafe"] for r in rollouts) / max(steps, 1),
        "rollouts": len(rollouts),
    }


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a < 1 minute smoke run")
    parser.add_argument(
        "--out", default=None, help="results folder (default benchmarks/results/safer_operation[_quick])"
    )
    parser.add_argument(
        "--cache", default="benchmarks/.cache/safer_operation", help="cached data, priors and runs (git-ignored)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-rl", action="store_true", help="stop after the diagnostics and Fig. 4")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scale = SCALES["quick" if args.quick else "full"]
    out = Path(args.out or f"benchmarks/results/safer_operation{'_quick' if args.quick else ''}")
    cache = Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    wall = time.time()
    progress = sys.stderr.isatty()
    tasks = EVAL_TASKS[: scale["tasks"]]

    # 1. data (cached per task) and 2. look-ahead labels
    episodes = scale["episodes_per_task"]
    data_tasks = (
        range(N_TASKS) if scale["data_tasks"] == N_TASKS else sorted(set(range(scale["data_tasks"])) | set(tasks))
    )
    paths = run_jobs(
        [Job(collect_task, (t, episodes, str(cache))) for t in data_tasks],
        len(data_tasks) * episodes * 40,
        "data",
        args.workers,
        progress,
    )
    raw = OfflineDataset.concatenate([OfflineDataset.load(p) for p in paths])
    data = raw.with_lookahead(LOOKAHEAD)
    data_path = str(data.save(cache / f"data_lookahead{LOOKAHEAD}_{raw.digest()[:16]}.npz"))
    labelled = np.concatenate([data.safe_rows(), data.unsafe_rows()])
    data_summary = {
        "steps": len(data),
        "episodes": int(data.episode_ids.max() + 1),
        "contact_rate": float(raw.violations.mean()),
        "unsafe_rate_lookahead": float(data.violations.mean()),
        "successful_episode_steps": float(data.successes.mean()),
        "d_safe": int(data.safe_rows().size),
        "d_unsafe": int(data.unsafe_rows().size),
        "unsafe_share_of_labelled": float(data.violations[labelled].mean()),
        "lookahead": LOOKAHEAD,
    }
    print("data:", data_summary, flush=True)

    # 3. priors (cached by the data's digest and the config)
    steps, batch = scale["prior_steps"], scale["prior_batch"]
    kinds = ("safer", "parrot")
    trained = run_jobs(
        [Job(train_prior, (k, data_path, steps, batch, str(cache))) for k in kinds],
        2 * steps,
        "priors",
        args.workers,
        progress,
    )
    priors = dict(zip(kinds, trained))
    for kind, result in priors.items():
        shutil.copytree(result["path"], out / f"prior_{kind}", dirs_exist_ok=True)
    plot_prior_losses(priors, out / "prior_losses.png")
    safer = SAFER.load(priors["safer"]["path"])
    max_abs, unsafe = safer.labelled_latents(data)
    etas = {b: safer.calibrate(data, b) for b in BOUNDS}
    eta = etas[TABLE1_BOUND]
    safer.eta = eta
    safer.save(out / "prior_safer")
    labelled_calibration = {
        str(b): {
            "eta": e,
            "in_box_unsafe_fraction": in_box_unsafe_fraction(max_abs, unsafe, e),
            "in_box_points": int((max_abs < e).sum()),
        }
        for b, e in etas.items()
    }
    print("eta: SAFER", eta, "PARROT", PARROT_ETA, flush=True)

    # 4. diagnostics and 5. Fig. 4: prior rollouts
    n_diag, n_calib = scale["diag_episodes"], scale["calib_episodes"]
    settings = [(k, mode, e, n_diag) for k in kinds for mode in ("zero", "normal") for e in (1.0,)]
    settings += [(k, "uniform", e, n_diag) for k in kinds for e in DIAGNOSTIC_ETAS]
    settings += [("parrot", "uniform", eta, n_diag)]  # PARROT in SAFER's box: the box's share of the effect
    settings += [("safer", "uniform", etas[b], n_calib) for b in BOUNDS]
    jobs = [
        Job(prior_rollouts, (priors[k]["path"], t, e, mode, n, 100 * t + 7, str(cache)))
        for (k, mode, e, n) in settings
        for t in tasks
    ]
    rollouts = run_jobs(jobs, sum(s[3] for s in settings) * len(tasks) * 40, "prior rollouts", args.workers, progress)
    by_setting = [rollouts[i * len(tasks) : (i + 1) * len(tasks)] for i in range(len(settings))]
    diag_rollouts = [
        {
            "prior": k,
            "mode": mode,
            "eta": e,
            **summarise_rollouts(entries),
            "per_task": {str(x["task"]): summarise_rollouts([x]) for x in entries},
        }
        for (k, mode, e, _), entries in zip(settings, by_setting)
    ]
    calibration = []
    for b in BOUNDS:
        entries = by_setting[len(settings) - len(BOUNDS) + BOUNDS.index(b)]
        pooled = [r for x in entries for r in x["rollouts"]]
        check = rollout_bound_check(sum(r["unsafe"] for r in pooled), sum(r["steps"] for r in pooled), b)
        calibration.append(
            {
                "bound": b,
                "eta": etas[b],
                "check": check,
                "per_task": {str(x["task"]): [r["unsafe"] / r["steps"] for r in x["rollouts"]] for x in entries},
            }
        )
        print(
            f"Fig. 4 bound {b:.2f}: eta {etas[b]:.3f} rollout unsafe share {check['share']:.3f} "
            f"({check['unsafe_steps']}/{check['steps']} steps) p={check['p_value']:.3f} holds={check['holds']}",
            flush=True,
        )
    plot_calibration(calibration, out / "calibration.png")
    diagnostics = {
        "rollouts": diag_rollouts,
        "likelihood": {k: likelihood_diagnostics(SAFER.load(priors[k]["path"]), data) for k in kinds},
    }
    for entry in diag_rollouts:
        print(
            f"diag {entry['prior']:6s} {entry['mode']:7s} eta {entry['eta']:.2f}: success {entry['success']:.2f} "
            f"unsafe share {entry['unsafe_share']:.3f}",
            flush=True,
        )
    write_json(out / "diagnostics.json", diagnostics)

    results = {
        "settings": {
            "scale": scale,
            "noise_levels": NOISE_LEVELS,
            "lookahead": LOOKAHEAD,
            "table1_bound": TABLE1_BOUND,
            "contrastive_weight": CONTRASTIVE_WEIGHT,
            "contrastive_margin": CONTRASTIVE_MARGIN,
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
                "cpu_seconds": v["cpu_seconds"],
                "cached": v["cached"],
                "final": {key: vals[-1] for key, vals in v["history"].items()},
            }
            for k, v in priors.items()
        },
        "eta": {"safer": eta, "parrot": PARROT_ETA},
        "calibration_labelled": labelled_calibration,
        "calibration_rollouts": calibration,
        "paper_table1": {
            "success_mean_percent": {"safer": 60.6, "parrot": 15.8, "sac": 0.38},
            "violations_per_1000_mean": {"safer": 9.47, "parrot": 35.13, "sac": 32.19},
        },
    }
    if args.skip_rl:
        results["wall_seconds"] = time.time() - wall
        write_json(out / "results.json", results)
        return 0

    # 6. Table 1 at CPU scale (each run cached)
    methods = ("safer", "parrot", "sac")
    boxes = {
        "safer": (str(out / "prior_safer"), eta),
        "parrot": (priors["parrot"]["path"], PARROT_ETA),
        "sac": (None, 0.0),
    }
    rl_jobs = [
        Job(rl_run, (m, t, s, scale["rl_steps"], *boxes[m], str(cache)))
        for s in range(scale["seeds"])
        for t in tasks
        for m in methods
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
    results.update(
        table1=table,
        runs=[{k: v for k, v in r.items() if k != "records"} for r in runs],
        wall_seconds=time.time() - wall,
    )
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
            seeds = sorted({r["seed"] for r in chosen})
            values = {}
            for name in ("success_rate", "success_rate_second_half", "violations_per_1000"):
                if task == "all":  # per seed, the mean over tasks; then mean and CI over seeds
                    per_seed = [np.mean([r[name] for r in chosen if r["seed"] == s]) for s in seeds]
                else:
                    per_seed = [r[name] for r in chosen]
                scale = 1.0 if name == "violations_per_1000" else 100.0
                values[name] = mean_ci([scale * x for x in per_seed])
            row[str(task)] = {
                "success_percent": values["success_rate"][0],
                "success_ci": values["success_rate"][1],
                "success_second_half_percent": values["success_rate_second_half"][0],
                "violations_per_1000": values["violations_per_1000"][0],
                "violations_ci": values["violations_per_1000"][1],
                "seeds": len(seeds),
            }
        table[method] = row
    return table


def print_table(table, methods, tasks) -> None:
    print(f"{'method':8s} " + " ".join(f"{'task ' + str(t):>24s}" for t in list(tasks) + ["all"]))
    for method in methods:
        cells = [table[method][str(t)] for t in list(tasks) + ["all"]]
        print(
            f"{method:8s} "
            + " ".join(
                f"{c['success_percent']:5.1f}±{c['success_ci']:4.1f}% "
                f"{c['violations_per_1000']:5.0f}±{c['violations_ci']:3.0f}"
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
    fig, ax = plt.subplots(figsize=(6, 4.5))
    tasks = sorted({task for entry in calibration for task in entry["per_task"]}, key=int)
    for index, task in enumerate(tasks):
        x = [100 * e["bound"] + (index - (len(tasks) - 1) / 2) * 1.2 for e in calibration for _ in e["per_task"][task]]
        y = [100 * share for e in calibration for share in e["per_task"][task]]
        ax.scatter(x, y, s=14, alpha=0.7, color=f"C{index}", label=f"task {task}")
    ax.plot(
        [100 * e["bound"] for e in calibration],
        [100 * e["check"]["share"] for e in calibration],
        "k-o",
        lw=1.5,
        label="pooled",
    )
    ax.plot([0, 45], [0, 45], "k--", lw=1, label="bound")
    ax.legend(fontsize=7, ncol=2)
    ax.set(
        xlabel="allowed unsafe % (bound)",
        ylabel="unsafe % of steps in a rollout",
        title="Fig. 4: z ~ U(box), SAFER prior (one dot per rollout)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_table(table, methods, tasks, path: Path) -> None:
    plt = _pyplot()
    columns = [str(t) for t in tasks] + ["all"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
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
