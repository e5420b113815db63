"""Vector-shield scaling and SB3 SAC wall-clock inside a training shield.

Run ``python benchmarks/vector_and_agents.py [--quick] [--out benchmarks/results/vector_and_agents]``.
With ONE torch thread, on ``safeshield/DrunkSpider-v0`` (its declared indicator) and the default
SQRL critic (2 x 256 hidden units):

Part A, scaling (issue target: the per-env-step shield cost falls >= 4x from N = 1 to N = 16).
For N in {1, 2, 4, 8, 16} sub-envs it times one step of the bare vector env and of the shielded
one, both on the same pre-drawn uniform actions, and reports the shield's cost per env-step,
``(t_shielded - t_plain) / N``. Regimes (front ends):

- ``accept`` (``VectorShieldWrapper``, frozen): a critic that deems every action safe (output layer
  weights 0, bias -20), so each step makes the one batched proposal query and executes;
- ``collect`` (``VectorShieldWrapper``, training, before ``learning_starts``): the same plus storing
  every sub-env's transition and the SARSA link (the bookkeeping of a training shield without
  its gradient steps, which cost the same per env-step whatever N is);
- ``reject`` (``VectorShieldWrapper``, frozen): bias +20, so every proposal is rejected, one batch of
  k = 50 candidates per sub-env is scored (one round, ``resample_rounds=1``) and the shield
  falls back: the worst case;
- ``sb3_accept`` (``ShieldedVecEnv`` around an SB3 ``DummyVecEnv``): the ``accept`` regime.

Method (as ``benchmarks/overhead.py``): every case is calibrated to about ``--block-seconds``
per block, then all cases run round-robin in a freshly shuffled order for ``--blocks`` rounds,
so a load change on the shared machine hits every case alike; a case's time is the median over
blocks of its mean time per vector step.

Part B, SB3 SAC (issue target: wall-clock inside a training shield <= 1.35x outside). SB3 SAC
with its defaults (2 x 256 networks, batch 256, one gradient step per env step,
``learning_starts=100``) learns ``--sac-steps`` steps of DrunkSpider, outside and inside a
training SQRL shield (defaults: one critic update of batch 256 per env step from 500 stored
transitions) with ``ShieldCallback`` (candidates from SAC's own policy, executed actions stored).
Same seeds, the two runs of a seed back to back in alternating order. Ratio = shielded / plain
wall-clock of ``model.learn`` per seed; reported as mean and range over seeds.

One torch thread and one BLAS thread (``OPENBLAS_NUM_THREADS=1``, set before numpy loads).

Outputs: ``<out>/results.json`` (settings, machine, every block, medians, ratios, targets and
whether each is met) and ``<out>/scaling.png`` (per-env-step cost vs N; SAC wall-clock).
"""

from __future__ import annotations

import os

# One BLAS thread, like one torch thread: the single-pair numpy path of the critic (N = 1) runs a
# 256 x 256 mat-vec, which OpenBLAS's default two threads make 4-5x slower on a loaded 2-core box.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import safeshield  # noqa: E402
from safeshield.experiments.runner import Job, mean_ci, run_jobs, write_json  # noqa: E402

ENV_ID = "safeshield/DrunkSpider-v0"
NS = (1, 2, 4, 8, 16)
REGIMES = ("accept", "collect", "reject", "sb3_accept")
SCALING_TARGET = 4.0  # issue: per-env-step shield cost falls >= 4x from 1 to 16 envs
SAC_TARGET = 1.35  # issue: SAC inside a training shield <= 1.35x outside


# ---------------------------------------------------------------- part A: scaling


def critic_with_bias(bias: float) -> safeshield.SQRL:
    """An SQRL model whose risk is constant: ~0 (bias -20, all safe) or gamma_safe (bias +20)."""
    env = gym.make(ENV_ID)
    model = safeshield.SQRL(
        env.observation_space,
        env.action_space,
        safeshield.SQRLConfig(resample_rounds=1, learning_starts=10**9, warmup_failures=0, buffer_capacity=200_000),
        seed=0,
    )
    with torch.no_grad():
        model.critic.net[-1].weight.zero_()
        model.critic.net[-1].bias.fill_(bias)
    return model


def make_case(regime: str | None, n: int, sb3: bool) -> Callable[[np.ndarray], None]:
    """A ``step(actions)`` function for one case; ``regime=None`` is the unshielded env."""
    if sb3:
        from stable_baselines3.common.vec_env import DummyVecEnv

        from safeshield.integrations.sb3 import ShieldedVecEnv

        env = DummyVecEnv([lambda: gym.make(ENV_ID)] * n)
        if regime is not None:
            env = ShieldedVecEnv(env, critic_with_bias(-20.0), train=False, seed=0)
        env.seed(0)
        env.reset()
        return lambda actions: env.step(actions)
    env = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="sync")
    if regime is not None:
        model = critic_with_bias(20.0 if regime == "reject" else -20.0)
        env = safeshield.VectorShieldWrapper(env, model, train=regime == "collect", seed=0)
    env.reset(seed=0)
    return lambda actions: env.step(actions)


def time_block(step, actions: np.ndarray) -> float:
    start = time.perf_counter()
    for a in actions:
        step(a)
    return (time.perf_counter() - start) / len(actions)


def scaling(blocks: int, block_seconds: float, ns, progress: bool) -> dict:
    from tqdm.auto import tqdm

    cases = {}
    for n in ns:
        for regime in REGIMES:
            cases[(regime, n)] = make_case(regime, n, sb3=regime.startswith("sb3"))
        cases[("plain", n)] = make_case(None, n, sb3=False)
        cases[("sb3_plain", n)] = make_case(None, n, sb3=True)
    rng = np.random.default_rng(0)
    lengths, samples = {}, {key: [] for key in cases}
    for key, step in cases.items():  # calibrate (and warm up) every case
        probe = rng.uniform(-1, 1, (20, key[1], 2)).astype(np.float32)
        per_step = time_block(step, probe)
        lengths[key] = max(5, int(block_seconds / per_step))
    order = list(cases)
    with tqdm(total=blocks * len(order), desc="scaling blocks", disable=not progress) as bar:
        for _ in range(blocks):
            random.shuffle(order)
            for key in order:
                actions = rng.uniform(-1, 1, (lengths[key], key[1], 2)).astype(np.float32)
                samples[key].append(time_block(cases[key], actions))
                bar.update(1)
    median = {key: statistics.median(v) for key, v in samples.items()}
    per_env_step = {}
    for regime in REGIMES:
        plain = "sb3_plain" if regime.startswith("sb3") else "plain"
        per_env_step[regime] = {n: (median[(regime, n)] - median[(plain, n)]) / n for n in ns}
    ratios = {regime: per_env_step[regime][ns[0]] / per_env_step[regime][ns[-1]] for regime in REGIMES}
    return {
        "ns": list(ns),
        "steps_per_block": {f"{k[0]}@{k[1]}": v for k, v in lengths.items()},
        "blocks": {f"{k[0]}@{k[1]}": v for k, v in samples.items()},
        "median_vector_step_s": {f"{k[0]}@{k[1]}": v for k, v in median.items()},
        "shield_cost_per_env_step_us": {r: {str(n): c * 1e6 for n, c in v.items()} for r, v in per_env_step.items()},
        "ratio_first_to_last": ratios,
        "target": SCALING_TARGET,
        "met": {regime: ratio >= SCALING_TARGET for regime, ratio in ratios.items()},
    }


# ---------------------------------------------------------------- part B: SB3 SAC


def sac_run(seed: int, steps: int, shielded: bool, progress_queue=None) -> dict:
    """Wall-clock of SB3 SAC's ``learn(steps)`` on DrunkSpider, optionally inside a training SQRL shield."""
    torch.set_num_threads(1)
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from safeshield.integrations.sb3 import ShieldCallback

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            if progress_queue is not None and self.num_timesteps % 100 == 0:
                progress_queue.put(100)
            return True

    env = gym.make(ENV_ID)
    callbacks = [Progress()]
    if shielded:
        env = safeshield.wrap(env, "sqrl", seed=seed)
        callbacks.insert(0, ShieldCallback())
    model = SAC("MlpPolicy", env, learning_starts=100, seed=seed, device="cpu")
    start = time.perf_counter()
    model.learn(steps, callback=CallbackList(callbacks))
    seconds = time.perf_counter() - start
    result = {"seed": seed, "shielded": shielded, "steps": steps, "seconds": seconds, "sac_updates": model._n_updates}
    if shielded:
        result.update(
            shield_updates=env.safety_model.updates,
            interventions=env.total_interventions,
            failures=env.total_failures,
            fallbacks=env.total_fallbacks,
        )
    return result


def sac_overhead(seeds: int, steps: int, progress: bool) -> dict:
    jobs = []
    for seed in range(seeds):
        first_shielded = seed % 2 == 1  # alternate which run of a seed goes first
        for shielded in (first_shielded, not first_shielded):
            jobs.append(Job(sac_run, (seed, steps, shielded)))
    # one worker: the two runs being compared must not compete for the same cores
    runs = run_jobs(jobs, total_steps=len(jobs) * steps, desc="SB3 SAC", workers=1, progress=progress)
    ratios = []
    for seed in range(seeds):
        pair = {r["shielded"]: r["seconds"] for r in runs if r["seed"] == seed}
        ratios.append(pair[True] / pair[False])
    mean, half = mean_ci(ratios)
    return {
        "runs": runs,
        "ratios": ratios,
        "ratio_mean": mean,
        "ratio_ci95_half_width": half,
        "target": SAC_TARGET,
        "met": mean <= SAC_TARGET,
    }


# ---------------------------------------------------------------- report


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale, sac = results["scaling"], results["sac"]
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11, 4))
    ns = scale["ns"]
    for regime, costs in scale["shield_cost_per_env_step_us"].items():
        values = [costs[str(n)] for n in ns]
        ax_a.plot(ns, values, marker="o", label=f"{regime} ({scale['ratio_first_to_last'][regime]:.1f}x)")
    first = scale["shield_cost_per_env_step_us"]["accept"][str(ns[0])]
    ax_a.plot(
        [ns[-1]], [first / SCALING_TARGET], "k_", markersize=20, label=f"accept target (N=1 cost / {SCALING_TARGET:g})"
    )
    ax_a.set(
        xscale="log",
        yscale="log",
        xlabel="sub-envs N",
        ylabel="shield cost per env-step (µs)",
        title="Vector shield: cost per env-step",
    )
    ax_a.set_xticks(ns, [str(n) for n in ns])
    ax_a.legend(fontsize=8)
    seeds = sorted({r["seed"] for r in sac["runs"]})
    for offset, shielded in ((-0.2, False), (0.2, True)):
        seconds = [
            next(r["seconds"] for r in sac["runs"] if r["seed"] == s and r["shielded"] == shielded) for s in seeds
        ]
        ax_b.bar(np.array(seeds) + offset, seconds, width=0.4, label="inside SQRL shield" if shielded else "plain SAC")
    ax_b.set(
        xlabel="seed",
        ylabel="wall-clock of learn() (s)",
        title=f"SB3 SAC: ratio {sac['ratio_mean']:.2f}x (target <= {SAC_TARGET})",
    )
    ax_b.set_xticks(seeds)
    ax_b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a check that runs in under a minute")
    parser.add_argument("--out", default="benchmarks/results/vector_and_agents")
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--block-seconds", type=float, default=0.25)
    parser.add_argument("--sac-steps", type=int, default=3000)
    parser.add_argument("--sac-seeds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.blocks, args.block_seconds, args.sac_steps, args.sac_seeds = 3, 0.05, 300, 1
    torch.set_num_threads(1)
    random.seed(0)
    progress = sys.stderr.isatty()
    started = time.perf_counter()
    results = {
        "benchmark": "vector_and_agents",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "settings": vars(args),
        "scaling": scaling(args.blocks, args.block_seconds, NS, progress),
        "sac": sac_overhead(args.sac_seeds, args.sac_steps, progress),
    }
    results["wall_seconds"] = time.perf_counter() - started
    out = Path(args.out)
    write_json(out / "results.json", results)
    plot(results, out / "scaling.png")
    scale, sac = results["scaling"], results["sac"]
    print(f"shield cost per env-step (µs) for N = {NS}:")
    for regime, costs in scale["shield_cost_per_env_step_us"].items():
        row = "  ".join(f"{costs[str(n)]:8.1f}" for n in NS)
        print(
            f"  {regime:11s} {row}   N=1/N=16: {scale['ratio_first_to_last'][regime]:.2f}x "
            f"(target >= {SCALING_TARGET}: {'met' if scale['met'][regime] else 'not met'})"
        )
    print(
        f"SB3 SAC inside/outside a training shield: {sac['ratio_mean']:.3f}x ± {sac['ratio_ci95_half_width']:.3f} "
        f"over {len(sac['ratios'])} seed(s) (target <= {SAC_TARGET}: {'met' if sac['met'] else 'not met'})"
    )
    print(f"wrote {out / 'results.json'} and {out / 'scaling.png'} in {results['wall_seconds']:.0f} s")
    return results


if __name__ == "__main__":
    main()
