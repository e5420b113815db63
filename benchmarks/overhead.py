"""Per-step overhead of a safeshield shield, measured against the env and the critic's forward pass.

Run ``python benchmarks/overhead.py [--quick] [--out benchmarks/results]``. With ONE torch thread it
times, on ``safeshield/DrunkSpider-v0`` (its declared indicator) and Gymnasium ``Hopper-v5``
(indicator ``"terminated"``):

- ``raw``: ``env.step`` of the env as ``gym.make`` returns it (its usual wrappers);
- ``frozen_safe[k]``: ``safeshield.wrap(env, "sqrl", train=False, n_candidates=k, resample_rounds=1)``
  with a critic that deems every action safe (output layer weights 0, bias -20, ``eps_safe=1``),
  so each step scores the proposal once and executes it;
- ``frozen_rejected[k]``: the same shield with bias +20 (risk at its maximum, sigmoid(20) = 1 times
  ``gamma_safe`` where the model scales by it, >= ``eps_safe`` = 0.1), so each
  step scores the proposal, then exactly one batch of ``k`` candidates, finds none safe and falls
  back (one round, so the extra cost is one k-batch);
- ``train_collect`` / ``train_learning``: a training shield in the safe regime with the default
  schedule (one gradient step of batch 256 per env step after ``learning_starts``), timed before
  learning would start (storing transitions only) and once learning has started;
- ``floor[b]``: a bare forward of the same critic (``model.risk``: MLP + sigmoid) under
  ``torch.inference_mode()`` at batch ``b`` in {1, k}, in a tight loop: what the shield cannot avoid
  paying. ``floor_after_step[b]`` times the same forward right after an untimed raw env step, i.e.
  with the caches as a shield meets them (informative: it shows how much of an "overhead" is the
  forward running cache-cold rather than the shield's own code).

Method. Actions are pre-generated (uniform in the box, fixed seed). Every case is calibrated so
that one block takes about ``--block-seconds``; the cases are then run round-robin, in a freshly
shuffled order each round, for ``--blocks`` rounds, so a load change on the machine hits every case
alike. A case's time is the median over blocks of the block's mean time per step. Env resets are
not timed (the clock runs over each stretch of steps between resets). The ratios are computed from
timings of the same run, never compared with absolute times.

Outputs (written atomically): ``<out>/overhead.json`` (machine info, settings, every block, medians,
ratios, targets and whether each is met) and ``<out>/overhead.png`` (per-step time vs k; ratios vs
their targets). ``--profile`` also writes cProfile summaries of the shield step
(``<out>/profile_<env>_<regime>.txt``). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import os

# One BLAS thread before numpy loads (pin_threads below also limits an already loaded BLAS).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import datetime as _dt  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import safeshield  # noqa: E402
from safeshield.core.step import default_indicator  # noqa: E402
from safeshield.experiments.runner import (  # noqa: E402
    Job,
    TimedCase,
    atomic_write,
    block_stats,
    calibrate,
    machine_info,
    mean_ci,
    pin_threads,
    round_robin,
    run_jobs,
    write_json,
    write_profile,
)
from safeshield.experiments.sb3_cost import sb3_pair, sb3_run  # noqa: E402

SCHEMA = "safeshield/benchmarks/overhead/2"
ENVS: dict[str, str | None] = {
    "safeshield/DrunkSpider-v0": None,
    "Hopper-v5": "terminated",
}  # id -> indicator (None: declared)
KS: tuple[int, ...] = (1, 10, 50, 100, 250)
SAFE_BIAS, REJECT_BIAS = -20.0, 20.0
TARGETS = {
    "safe_overhead": 1.2,  # (frozen safe step - raw step) / bare batch-1 forward
    "rejected_overhead": 1.2,  # (frozen rejected step - frozen safe step) / bare batch-k forward, each k >= 10
    "rejected_overhead_k1": 2.0,  # the same at k = 1
    "hopper_shielded_over_raw": 1.3,  # frozen safe Hopper step / raw Hopper step
    "vector_scaling": 4.0,  # shield cost per env-step at N = 1 / at N = 16, each regime: >= 4
    "sb3_sac": 1.15,  # SB3 SAC inside a training shield / plain, wall-clock
    "sb3_ppo": 1.5,  # SB3 PPO inside a training shield / plain, wall-clock
}
AT_LEAST = {"vector_scaling"}  # targets met by a value >= the target; every other one by <=
VECTOR_ENV = "safeshield/DrunkSpider-v0"
VECTOR_NS = (1, 2, 4, 8, 16)
VECTOR_REGIMES = ("accept", "collect", "reject", "sb3_accept")
SB3_REGIMES = {  # algo: (env id, warm-up steps, timed steps); quick: (warm, timed, algo kwargs)
    "sac": ("Hopper-v5", 600, 1000),
    "ppo": ("InvertedPendulum-v5", 2048, 4096),
}
SB3_QUICK = {"sac": (110, 20, {}), "ppo": (64, 64, {"n_steps": 64, "batch_size": 32, "n_epochs": 1})}
HOPPER = "Hopper-v5"


# ------------------------------------------------------------------------------------ cases


class EnvLoop:
    """Steps an env (raw or shielded) through pre-generated actions; resets are not timed."""

    def __init__(self, env: gym.Env, actions: np.ndarray, seed: int):
        self.env, self.actions, self.cursor, self.steps = env, actions, 0, 0
        env.reset(seed=seed)

    def __call__(self, n: int) -> float:
        step, actions, count = self.env.step, self.actions, len(self.actions)
        clock, cpu_clock = time.perf_counter, time.thread_time
        cursor, done, wall, cpu = self.cursor, 0, 0.0, 0.0
        while done < n:
            ended = False
            cpu_start, start = cpu_clock(), clock()
            while done < n:
                _, _, terminated, truncated, _ = step(actions[cursor])
                cursor = cursor + 1 if cursor + 1 < count else 0
                done += 1
                if terminated or truncated:
                    ended = True
                    break
            wall += clock() - start
            cpu += cpu_clock() - cpu_start
            if ended:
                self.env.reset()
        self.cursor = cursor
        self.steps += n
        return wall, cpu


class Forward:
    """A bare ``model.risk`` forward at a fixed batch size, under ``torch.inference_mode()``."""

    def __init__(self, risk: Callable, obs: torch.Tensor, actions: torch.Tensor):
        self.risk, self.obs, self.actions = risk, obs, actions

    def __call__(self, n: int) -> float:
        risk, obs, actions = self.risk, self.obs, self.actions
        with torch.inference_mode():
            cpu_start, start = time.thread_time(), time.perf_counter()
            for _ in range(n):
                risk(obs, actions)
            return time.perf_counter() - start, time.thread_time() - cpu_start


class ForwardAfterStep:
    """The same forward, but each call right after an (untimed) raw env step: the cache state it meets in a shield.

    A tight loop of forwards keeps the critic's weights and torch's code hot in the caches; inside a
    shield the forward follows an env step (MuJoCo physics, Python bookkeeping) that evicts them.
    Only the forward is timed; it is reported as an informative second floor, not graded.
    """

    def __init__(self, env: gym.Env, env_actions: np.ndarray, risk: Callable, obs: torch.Tensor, actions: torch.Tensor):
        self.env, self.env_actions, self.cursor = env, env_actions, 0
        self.risk, self.obs, self.actions = risk, obs, actions
        env.reset(seed=0)

    def __call__(self, n: int) -> tuple[float, float]:
        risk, obs, actions, step = self.risk, self.obs, self.actions, self.env.step
        env_actions, count, cursor = self.env_actions, len(self.env_actions), self.cursor
        clock, cpu_clock = time.perf_counter, time.thread_time
        wall = cpu = 0.0
        with torch.inference_mode():
            for _ in range(n):
                _, _, terminated, truncated, _ = step(env_actions[cursor])
                cursor = cursor + 1 if cursor + 1 < count else 0
                if terminated or truncated:
                    self.env.reset()
                cpu_start, start = cpu_clock(), clock()
                risk(obs, actions)
                wall += clock() - start
                cpu += cpu_clock() - cpu_start
        self.cursor = cursor
        return wall, cpu


def set_critic_output(shield: safeshield.ShieldWrapper, bias: float) -> None:
    """Make the critic's risk a constant ``sigmoid(bias)`` (same compute, known decisions)."""
    output = shield.safety_model.critic.net[-1]
    with torch.no_grad():
        output.weight.zero_()
        output.bias.fill_(bias)


def make_shield(
    env_id: str, indicator: str | None, *, regime: str, k: int, train: bool, **options
) -> safeshield.ShieldWrapper:
    eps = 1.0 if regime == "safe" else 0.1
    shield = safeshield.wrap(
        gym.make(env_id),
        "sqrl",
        indicator=indicator,
        train=train,
        seed=0,
        n_candidates=k,
        resample_rounds=1,
        eps_safe=eps,
        regret=None,  # the absolute rule: a rejected step runs every round and falls back (its worst case)
        **options,
    )
    set_critic_output(shield, SAFE_BIAS if regime == "safe" else REJECT_BIAS)
    return shield


def counters_check(
    shield: safeshield.ShieldWrapper, loop: EnvLoop, expect: str, k: int
) -> Callable[[], dict[str, Any]]:
    """Verify after timing that the shield stayed in its regime (all safe, or all fallen back)."""

    def check() -> dict[str, Any]:
        steps = loop.steps
        result = {
            "steps": steps,
            "interventions": shield.total_interventions,
            "fallbacks": shield.total_fallbacks,
            "n_candidates_per_rejected_step": k if expect == "rejected" else 0,
        }
        if expect == "safe":
            ok = shield.total_interventions == 0 and shield.total_fallbacks == 0
        else:
            ok = shield.total_fallbacks == steps
        result["regime_ok"] = bool(ok)
        return result

    return check


def build_cases(
    env_id: str,
    indicator: str | None,
    ks: Sequence[int],
    block_seconds: float,
    train_block_seconds: float,
    warm_steps: int,
) -> tuple[list[TimedCase], dict[str, Any]]:
    """Every case for one env, warmed up (training shield past ``learning_starts``)."""
    probe = gym.make(env_id)
    space = probe.action_space
    resolved = default_indicator(probe.unwrapped, indicator)
    obs, _ = probe.reset(seed=0)
    probe.close()
    rng = np.random.default_rng(0)
    actions = rng.uniform(space.low, space.high, size=(4096, *space.shape)).astype(space.dtype)
    cases: list[TimedCase] = []

    raw = EnvLoop(gym.make(env_id), actions, seed=0)
    cases.append(TimedCase("raw", raw, block_seconds))
    for regime in ("safe", "rejected"):
        for k in ks:
            shield = make_shield(env_id, indicator, regime=regime, k=k, train=False)
            loop = EnvLoop(shield, actions, seed=0)
            cases.append(
                TimedCase(f"frozen_{regime}[{k}]", loop, block_seconds, check=counters_check(shield, loop, regime, k))
            )

    # Training shield, safe regime: one collecting only (learning_starts out of reach), one learning.
    collect = make_shield(
        env_id, indicator, regime="safe", k=ks[0], train=True, learning_starts=10**12, warmup_failures=0
    )
    collect_loop = EnvLoop(collect, actions, seed=0)
    cases.append(
        TimedCase("train_collect", collect_loop, block_seconds, check=counters_check(collect, collect_loop, "safe", 0))
    )
    learner = make_shield(env_id, indicator, regime="safe", k=ks[0], train=True)
    learn_loop = EnvLoop(learner, actions, seed=0)
    starts = learner.safety_model.config.learning_starts
    learn_loop(starts + warm_steps)  # untimed: fill the buffer and take the first gradient steps
    learn_loop.steps = 0
    updates_before = learner.safety_model.updates

    def learning_check() -> dict[str, Any]:
        result = counters_check(learner, learn_loop, "safe", 0)()
        result["updates_in_timed_steps"] = learner.safety_model.updates - updates_before
        expected = learn_loop.steps * learner.safety_model.config.updates_per_step  # the schedule, to one burst
        slack = learner.safety_model.config.train_every * learner.safety_model.config.updates_per_step + 1
        result["regime_ok"] = bool(result["regime_ok"] and abs(result["updates_in_timed_steps"] - expected) <= slack)
        return result

    cases.append(TimedCase("train_learning", learn_loop, train_block_seconds, check=learning_check))

    # Floors: the same critic (architecture and dims) at the batch shapes the shield uses.
    model = collect.safety_model
    obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1))
    for batch in sorted({1, *ks}):
        act_t = torch.from_numpy(actions[:batch].reshape(batch, -1).astype(np.float32, copy=True))
        if batch > len(actions):
            act_t = act_t.repeat(math.ceil(batch / len(actions)), 1)[:batch]
        cases.append(TimedCase(f"floor[{batch}]", Forward(model.risk, obs_t.repeat(batch, 1), act_t), block_seconds))
        cases.append(
            TimedCase(
                f"floor_after_step[{batch}]",
                ForwardAfterStep(gym.make(env_id), actions, model.risk, obs_t.repeat(batch, 1), act_t),
                block_seconds,
            )
        )

    info = {
        "indicator": resolved,
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "hidden": list(model.config.hidden),
        "batch_size": model.config.batch_size,
        "learning_starts": starts,
        "train_every": model.config.train_every,
        "updates_per_step": model.config.updates_per_step,
    }
    return cases, info


# ------------------------------------------------------------------------------------ analysis


def ratio_entry(value: float | None, target: float | None, at_least: bool = False) -> dict[str, Any]:
    """``{"value", "target", "met"}``: met when ``value <= target`` (``>=`` with ``at_least``)."""
    entry: dict[str, Any] = {"value": value, "target": target}
    if at_least:
        entry["direction"] = ">="
    met = None if (target is None or value is None) else (value >= target if at_least else value <= target)
    entry["met"] = None if met is None else bool(met)
    return entry


def env_ratios(t: dict[str, Any], ks: Sequence[int]) -> dict[str, Any]:
    raw, floor1 = t["raw"], t["floor"]["1"]
    safe = t["frozen_safe_pooled"]
    ratios: dict[str, Any] = {
        "safe_overhead": ratio_entry((safe - raw) / floor1, TARGETS["safe_overhead"]),
        "safe_overhead_per_k": {
            str(k): ratio_entry((t["frozen_safe"][str(k)] - raw) / floor1, TARGETS["safe_overhead"]) for k in ks
        },
        "rejected_overhead": {
            str(k): ratio_entry(
                (t["frozen_rejected"][str(k)] - safe) / t["floor"][str(k)],
                TARGETS["rejected_overhead_k1"] if k == 1 else TARGETS["rejected_overhead"],
            )
            for k in ks
        },
        "frozen_safe_over_raw": ratio_entry(safe / raw, None),
        "train_collect_over_raw": ratio_entry(t["train_collect"] / raw, None),
        "train_learning_over_raw": ratio_entry(t["train_learning"] / raw, None),
        "safe_overhead_us": (safe - raw),
        "safe_overhead_vs_floor_after_step": ratio_entry((safe - raw) / t["floor_after_step"]["1"], None),
        "rejected_overhead_vs_floor_after_step": {
            str(k): ratio_entry((t["frozen_rejected"][str(k)] - safe) / t["floor_after_step"][str(k)], None) for k in ks
        },
    }
    return ratios


def analyse(
    cases: list[TimedCase], ks: Sequence[int], attribute: str = "blocks"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Medians per case (``attribute``: ``"blocks"`` for wall time, ``"cpu_blocks"`` for CPU time)."""
    by_name = {c.name: c for c in cases}
    stats = {c.name: block_stats(getattr(c, attribute)) for c in cases}
    med = {name: s["median_us"] for name, s in stats.items()}
    safe_blocks = [b for k in ks for b in getattr(by_name[f"frozen_safe[{k}]"], attribute)]
    timings = {
        "raw": med["raw"],
        "frozen_safe": {str(k): med[f"frozen_safe[{k}]"] for k in ks},
        "frozen_safe_pooled": block_stats(safe_blocks)["median_us"],
        "frozen_rejected": {str(k): med[f"frozen_rejected[{k}]"] for k in ks},
        "train_collect": med["train_collect"],
        "train_learning": med["train_learning"],
        "floor": {name[len("floor[") : -1]: v for name, v in med.items() if name.startswith("floor[")},
        "floor_after_step": {
            name[len("floor_after_step[") : -1]: v for name, v in med.items() if name.startswith("floor_after_step[")
        },
    }
    return timings, stats


# ------------------------------------------------------------------------------------ vector


TIMING_CURVES = [  # (timings group, line style, alpha, legend) of the per-k timing plot
    ("frozen_safe", "-o", 1.0, "frozen, safe"),
    ("frozen_rejected", "-s", 0.7, "frozen, rejected"),
    ("floor", ":^", 0.7, "floor: bare k-batch forward"),
    ("floor_after_step", ":v", 0.45, "same forward after an env step"),
]


def constant_sqrl(env_id: str, bias: float, **options) -> safeshield.SQRL:
    """An SQRL model whose risk is constant: ~0 (bias -20, every action safe) or gamma_safe (+20)."""
    env = gym.make(env_id)
    config = safeshield.SQRLConfig(
        **{"resample_rounds": 1, "learning_starts": 10**9, "buffer_capacity": 200_000, "regret": None, **options}
    )
    model = safeshield.SQRL(env.observation_space, env.action_space, config, seed=0)
    with torch.no_grad():
        model.critic.net[-1].weight.zero_()
        model.critic.net[-1].bias.fill_(bias)
    return model


class VectorLoop:
    """Steps a vector env (``gym.make_vec`` sync or an SB3 ``DummyVecEnv``, shielded or not) through
    pre-drawn actions; the clock runs over every step (autoresets included, alike for all cases)."""

    def __init__(self, env_id: str, n: int, regime: str | None, sb3: bool):
        if sb3:
            from stable_baselines3.common.vec_env import DummyVecEnv

            from safeshield.integrations.sb3 import ShieldedVecEnv

            env = DummyVecEnv([lambda: gym.make(env_id)] * n)
            if regime is not None:
                env = ShieldedVecEnv(env, constant_sqrl(env_id, -20.0), train=False, seed=0)
            env.seed(0)
            env.reset()
        else:
            env = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync")
            if regime is not None:
                model = constant_sqrl(env_id, 20.0 if regime == "reject" else -20.0)
                env = safeshield.VectorShieldWrapper(env, model, train=regime == "collect", seed=0)
            env.reset(seed=0)
        space = gym.make(env_id).action_space
        self.actions = (
            np.random.default_rng(0).uniform(space.low, space.high, (512, n, *space.shape)).astype(space.dtype)
        )
        self.step, self.cursor, self.env = env.step, 0, env

    def __call__(self, n: int) -> tuple[float, float]:
        step, actions, count, cursor = self.step, self.actions, len(self.actions), self.cursor
        cpu_start, start = time.thread_time(), time.perf_counter()
        for _ in range(n):
            step(actions[cursor])
            cursor = cursor + 1 if cursor + 1 < count else 0
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
        self.cursor = cursor
        return wall, cpu


def vector_cases(ns: Sequence[int], block_seconds: float) -> list[TimedCase]:
    cases = []
    for n in ns:
        cases.append(TimedCase(f"vec_plain@{n}", VectorLoop(VECTOR_ENV, n, None, sb3=False), block_seconds))
        cases.append(TimedCase(f"vec_sb3_plain@{n}", VectorLoop(VECTOR_ENV, n, None, sb3=True), block_seconds))
        for regime in VECTOR_REGIMES:
            cases.append(
                TimedCase(
                    f"vec_{regime}@{n}", VectorLoop(VECTOR_ENV, n, regime, sb3=regime.startswith("sb3")), block_seconds
                )
            )
    return cases


def vector_analysis(cases: list[TimedCase], ns: Sequence[int], attribute: str) -> dict[str, Any]:
    """Shield cost per env-step ``(t_shielded - t_plain) / N`` per regime and N; the N=1/N=16 ratio."""
    median = {c.name: block_stats(getattr(c, attribute))["median_us"] for c in cases}
    cost = {}
    for regime in VECTOR_REGIMES:
        plain = "sb3_plain" if regime.startswith("sb3") else "plain"
        cost[regime] = {str(n): (median[f"vec_{regime}@{n}"] - median[f"vec_{plain}@{n}"]) / n for n in ns}
    first, last = str(ns[0]), str(ns[-1])
    return {
        "median_vector_step_us": median,
        "shield_cost_per_env_step_us": cost,
        "scaling": {
            r: ratio_entry(
                cost[r][first] / cost[r][last] if cost[r][last] > 0 else None, TARGETS["vector_scaling"], at_least=True
            )
            for r in VECTOR_REGIMES
        },
        "n2_not_slower_than_n1": {r: bool(cost[r]["2"] <= cost[r]["1"]) for r in VECTOR_REGIMES}
        if "2" in cost[VECTOR_REGIMES[0]]
        else {},
    }


# ------------------------------------------------------------------------------------ SB3


def sb3_section(
    algos: Sequence[str],
    seeds: int,
    quick: bool,
    progress: bool,
    tuned: float | None,
    timed: dict[str, int | None] | None = None,
) -> dict[str, Any]:
    """Wall-clock (and process CPU) of SB3 ``learn`` inside a training shield / plain, per seed: the
    default shield, and (``tuned``) one with ``updates_per_step=tuned``."""
    shields: list[dict[str, Any] | None] = [None, {}]
    if tuned is not None:
        shields.append({"updates_per_step": tuned})
    jobs, total = [], 0
    for algo in algos:
        env_id, warm, steps = SB3_REGIMES[algo]
        steps = (timed or {}).get(algo) or steps
        kwargs: dict[str, Any] = {}
        if quick:
            warm, steps, kwargs = SB3_QUICK[algo]
        for seed in range(seeds):
            jobs.append(Job(sb3_pair, (algo, env_id, seed, warm, steps, kwargs, shields)))
            total += len(shields) * (warm + steps)
    # one worker: the runs being compared never compete with each other for the cores
    pairs = run_jobs(jobs, total_steps=total, desc="SB3 wall-clock", workers=1, progress=progress)
    section: dict[str, Any] = {}
    for algo in algos:
        runs = [run for pair in pairs for run in pair if run["algo"] == algo]
        plain = {run["seed"]: run for run in runs if run["shield"] is None}
        entry: dict[str, Any] = {
            "env": runs[0]["env"],
            "warm_steps": runs[0]["warm_steps"],
            "timed_steps": runs[0]["steps"],
        }
        for label, options in (("default", {}), ("tuned", {"updates_per_step": tuned})):
            mine = {run["seed"]: run for run in runs if run["shield"] == options}
            if not mine:
                continue
            wall = [mine[s]["seconds"] / plain[s]["seconds"] for s in sorted(mine)]
            cpu = [mine[s]["cpu_seconds"] / plain[s]["cpu_seconds"] for s in sorted(mine)]
            entry[label] = {
                "shield": options,
                "wall_ratio_per_seed": wall,
                "cpu_ratio_per_seed": cpu,
                "wall_ratio_median": statistics.median(wall),
                "cpu_ratio_median": statistics.median(cpu),
                "wall_ratio_mean_ci95": mean_ci(wall),
                "cpu_ratio_mean_ci95": mean_ci(cpu),
                "ratio": ratio_entry(statistics.median(wall), TARGETS[f"sb3_{algo}"]),
                "failures_per_seed": [mine[s]["failures"] for s in sorted(mine)],
            }
        entry["plain_failures_per_seed"] = [plain[s]["failures"] for s in sorted(plain)]
        entry["runs"] = runs
        section[algo] = entry
    return section


# ------------------------------------------------------------------------------------ threads


def threads_section(repeats: int) -> dict[str, Any]:
    """Before/after pinning, in this process: the default thread counts against one thread, interleaved.

    Times the shield's batch-1 numpy proposal path (BLAS), a batch-50 torch critic forward and one
    critic gradient step (torch), medians over ``repeats`` interleaved rounds.
    """
    from threadpoolctl import threadpool_limits

    torch_default = torch.get_num_threads()
    blas_default = os.cpu_count() or 1
    model = constant_sqrl(HOPPER, 0.0, buffer_capacity=2_000)
    model.critic.net[-1].reset_parameters()
    rng = np.random.default_rng(0)
    for _ in range(600):
        model.buffer.add(
            rng.normal(size=model.obs_dim).astype(np.float32),
            rng.uniform(-1, 1, model.act_dim).astype(np.float32),
            rng.normal(size=model.obs_dim).astype(np.float32),
            0.0,
            False,
        )
    obs, act = rng.normal(size=model.obs_dim).astype(np.float32), rng.uniform(-1, 1, model.act_dim).astype(np.float32)
    obs_b, act_b = torch.randn(50, model.obs_dim), torch.rand(50, model.act_dim)

    def per_call(fn, n):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    probes = {
        "numpy_proposal_batch1": (lambda: model.proposal_risk(obs, act), 300),
        "torch_forward_batch50": (lambda: model.risk(obs_b, act_b), 100),
        "critic_gradient_step": (lambda: model.learn(1), 10),
    }
    samples: dict[str, list[float]] = {f"{name}_{mode}": [] for name in probes for mode in ("default", "pinned")}
    try:
        for _ in range(repeats):
            for mode in ("default", "pinned"):
                threads = 1 if mode == "pinned" else None
                torch.set_num_threads(1 if threads else torch_default)
                with threadpool_limits(1 if threads else blas_default), torch.inference_mode(False):
                    for name, (fn, n) in probes.items():
                        if name != "critic_gradient_step":
                            with torch.inference_mode():
                                samples[f"{name}_{mode}"].append(per_call(fn, n))
                        else:
                            samples[f"{name}_{mode}"].append(per_call(fn, n))
    finally:
        torch.set_num_threads(1)
    medians = {key: statistics.median(v) for key, v in samples.items()}
    return {
        "default_threads": {"torch": torch_default, "blas": blas_default},
        "median_us": medians,
        "slowdown_default_over_pinned": {
            name: medians[f"{name}_default"] / medians[f"{name}_pinned"] for name in probes
        },
        "samples_us": samples,
    }


# ------------------------------------------------------------------------------------ Panda push


def panda_section(steps: int) -> dict[str, Any]:
    """``decide`` per step on the Panda push task (frozen default SQRL, safe and all-rejected critics)
    against its raw env step; skipped when robosuite is not installed."""
    env_id = "safeshield/PandaPushNoTopple-v0"
    try:
        raw = gym.make(env_id)
    except Exception as error:  # noqa: BLE001 - optional engine
        return {"skipped": f"{type(error).__name__}: {error}"}
    space = raw.action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, (steps, *space.shape)).astype(space.dtype)
    raw_wall, _ = EnvLoop(raw, actions, seed=0)(steps)
    result: dict[str, Any] = {"env": env_id, "raw_step_ms": raw_wall / steps * 1e3}
    for regime, bias in (("safe", -20.0), ("rejected", 20.0)):
        model = constant_sqrl(env_id, bias, resample_rounds=5)  # default rounds: the worst case rejects all 5
        shield = safeshield.wrap(gym.make(env_id), model, train=False, seed=0)
        shield.reset(seed=0)
        stepper = shield.stepper
        proposal = actions[:1].reshape(1, -1).astype(np.float32)
        stepper.decide(proposal)
        start = time.perf_counter()
        for i in range(steps):
            stepper.decide(actions[i : i + 1].reshape(1, -1).astype(np.float32))
        result[f"decide_{regime}_ms"] = (time.perf_counter() - start) / steps * 1e3
    result["decide_rejected_over_raw_step"] = result["decide_rejected_ms"] / result["raw_step_ms"]
    return result


# ------------------------------------------------------------------------------------ output


def short(env_id: str) -> str:
    return env_id.split("/")[-1]


def plot(path: str, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = result["settings"]["ks"]
    envs = [e for e, v in result["envs"].items() if "timings_us" in v]
    colours = dict(zip(envs, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    fig, (ax_t, ax_r, ax_s) = plt.subplots(1, 3, figsize=(17, 6.5), gridspec_kw={"width_ratios": [1.2, 1, 1]})

    for env in envs:
        t, c = result["envs"][env]["timings_us"], colours[env]
        for group, style, alpha, what in TIMING_CURVES:
            ax_t.plot(ks, [t[group][str(k)] for k in ks], style, color=c, alpha=alpha, label=f"{short(env)} {what}")
        ax_t.axhline(t["raw"], color=c, ls="--", lw=1, label=f"{short(env)} raw env step")
        ax_t.axhline(t["train_learning"], color=c, ls="-.", lw=1, label=f"{short(env)} training shield (learning)")
    ax_t.set(
        xscale="log",
        yscale="log",
        xlabel="candidates per round k",
        ylabel="µs per step (median of block means)",
        title="Per-step wall time, 1 torch thread",
    )
    ax_t.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax_t.grid(True, which="both", alpha=0.3)

    for env in envs:
        r = result["ratios"][env]["rejected_overhead"]
        ax_r.plot(ks, [r[str(k)]["value"] for k in ks], "-s", color=colours[env], label=f"{short(env)}")
    ax_r.axhline(TARGETS["rejected_overhead"], color="k", ls="--", label=f"target ≤ {TARGETS['rejected_overhead']}")
    ax_r.set(
        xscale="log",
        xlabel="k",
        ylabel="(rejected − safe) / bare k-batch forward",
        title="Rejected-proposal overhead vs target",
    )
    ax_r.set_ylim(bottom=0)
    ax_r.legend(fontsize=8)
    ax_r.grid(True, which="both", alpha=0.3)

    labels, values, targets, bar_colours = [], [], [], []
    for env in envs:
        r = result["ratios"][env]
        for key, label in (
            ("safe_overhead", "safe overhead\n/ batch-1 fwd"),
            ("frozen_safe_over_raw", "frozen safe\n/ raw"),
            ("train_learning_over_raw", "training\n/ raw"),
        ):
            entry = r[key]
            target = (
                TARGETS["hopper_shielded_over_raw"]
                if (env == HOPPER and key == "frozen_safe_over_raw")
                else entry["target"]
            )
            labels.append(f"{short(env)}\n{label}")
            values.append(entry["value"])
            targets.append(target)
            bar_colours.append(colours[env])
    x = np.arange(len(values))
    ax_s.bar(x, values, color=bar_colours, alpha=0.75)
    for i, (v, target) in enumerate(zip(values, targets)):
        ax_s.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
        if target is not None:
            ax_s.hlines(target, i - 0.45, i + 0.45, colors="k", linestyles="--")
            ax_s.text(i + 0.45, target, f"target {target}", fontsize=6, va="bottom", ha="right")
    ax_s.set_xticks(x, labels, fontsize=6.5)
    ax_s.set_yscale("log")
    ax_s.set(ylabel="ratio (log)", title="Ratios vs targets (dashed; training has none)")
    ax_s.grid(True, axis="y", which="both", alpha=0.3)

    fig.suptitle(
        f"safeshield shield overhead ({result['mode']} run, {result['machine']['cpu_model']}, "
        f"torch {result['machine']['torch']}, {result['machine']['torch_threads']} thread)",
        fontsize=10,
    )
    fig.tight_layout()

    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    atomic_write(path, write)
    plt.close(fig)


# ------------------------------------------------------------------------------------ profile


def profile_regimes(
    plans: Sequence[str], out: str, steps: int, k: int, sb3_algos: Sequence[str], quick: bool
) -> list[str]:
    """One cProfile summary per regime: frozen safe and rejected (each env), the learning shield
    (each env), the vector shield at N = 16 (accept), and SB3 SAC / PPO inside a training shield."""
    written = []

    def profile_loop(loop, n: int, name: str, title: str) -> None:
        loop(min(n, 200))
        profiler = cProfile.Profile()
        profiler.enable()
        loop(n)
        profiler.disable()
        written.append(
            str(
                write_profile(
                    profiler, os.path.join(out, f"profile_{name}.txt"), title + ", 1 torch thread, 1 BLAS thread"
                )
            )
        )

    for env_id in plans:
        indicator = ENVS[env_id]
        space = gym.make(env_id).action_space
        actions = (
            np.random.default_rng(1).uniform(space.low, space.high, size=(steps, *space.shape)).astype(space.dtype)
        )
        for regime in ("safe", "rejected"):
            shield = make_shield(env_id, indicator, regime=regime, k=k, train=False)
            profile_loop(
                EnvLoop(shield, actions, seed=0),
                steps,
                f"{short(env_id)}_{regime}",
                f"{steps} frozen shield steps, {env_id}, regime={regime}, k={k}",
            )
        learner = make_shield(env_id, indicator, regime="safe", k=k, train=True)
        loop = EnvLoop(learner, actions, seed=0)
        loop(learner.safety_model.config.learning_starts)
        profile_loop(
            loop,
            max(steps // 5, 20),
            f"{short(env_id)}_train_learning",
            f"training shield steps once learning has started, {env_id}, "
            f"updates_per_step={learner.safety_model.config.updates_per_step}",
        )
    vector = VectorLoop(VECTOR_ENV, 16, "accept", sb3=False)
    profile_loop(
        vector, max(steps // 10, 20), "vector_accept_N16", f"vector shield steps, {VECTOR_ENV}, N = 16, accept"
    )
    for algo in sb3_algos:
        env_id, warm, timed = SB3_REGIMES[algo]
        kwargs: dict[str, Any] = {}
        if quick:
            warm, timed, kwargs = SB3_QUICK[algo]
        path = os.path.join(out, f"profile_sb3_{algo}.txt")
        sb3_run(algo, env_id, 0, timed, {}, warm_steps=warm, algo_kwargs=kwargs, profile=path)
        written.append(path)
    return written


# ------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized run (a few seconds): short blocks, few rounds")
    parser.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "overhead"),
        help="output folder (default: benchmarks/results/overhead next to this script)",
    )
    parser.add_argument("--envs", nargs="+", default=list(ENVS), help=f"env ids (default: {' '.join(ENVS)})")
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS), help="candidate counts k")
    parser.add_argument("--blocks", type=int, default=None, help="round-robin rounds (default 25; quick 5)")
    parser.add_argument(
        "--block-seconds", type=float, default=None, help="target seconds per block (default 0.06; quick 0.004)"
    )
    parser.add_argument(
        "--train-block-seconds", type=float, default=None, help="same for the learning shield (default 0.1; quick 0.01)"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="cap on steps per block (default 20000; quick 500)")
    parser.add_argument("--min-steps", type=int, default=None, help="floor on steps per block (default 20; quick 3)")
    parser.add_argument(
        "--warm-steps", type=int, default=None, help="untimed steps per case before timing (default 200; quick 10)"
    )
    parser.add_argument("--no-plot", action="store_true", help="skip overhead.png")
    parser.add_argument("--no-vector", action="store_true", help="skip the vector-shield scaling cases")
    parser.add_argument(
        "--sb3",
        nargs="*",
        default=["sac", "ppo"],
        choices=list(SB3_REGIMES),
        help="SB3 wall-clock regimes (default: sac ppo; none: skip)",
    )
    parser.add_argument("--sb3-seeds", type=int, default=None, help="seeds per SB3 regime (default 3; quick 1)")
    parser.add_argument(
        "--sac-timed", type=int, default=None, help=f"timed SAC steps (default {SB3_REGIMES['sac'][2]})"
    )
    parser.add_argument(
        "--ppo-timed", type=int, default=None, help=f"timed PPO steps (default {SB3_REGIMES['ppo'][2]})"
    )
    parser.add_argument(
        "--sb3-updates-per-step",
        type=float,
        default=None,
        help="also time a shield with this update-to-data ratio (besides the default one)",
    )
    parser.add_argument("--no-threads", action="store_true", help="skip the thread-pinning before/after check")
    parser.add_argument("--panda", action="store_true", help="also time decide on the Panda push task (robosuite)")
    parser.add_argument("--profile", action="store_true", help="also write one cProfile summary per regime")
    parser.add_argument("--profile-k", type=int, default=10, help="k for --profile (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "blocks": (25, 5),
        "block_seconds": (0.06, 0.004),
        "train_block_seconds": (0.1, 0.01),
        "max_steps": (20000, 500),
        "min_steps": (20, 3),
        "warm_steps": (200, 10),
    }
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if args.blocks < 1 or args.min_steps < 1 or args.warm_steps < 1:
        parser.error("--blocks, --min-steps and --warm-steps must be >= 1")
    if any(k < 1 for k in args.ks):
        parser.error("--ks must be positive")
    args.ks = sorted(set(args.ks))
    if args.sb3_seeds is None:
        args.sb3_seeds = 1 if quick else 3
    unknown = [e for e in args.envs if e not in ENVS]
    if unknown:
        parser.error(f"unknown env(s) {unknown}; choose from {list(ENVS)}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; write ``overhead.json`` (and ``overhead.png``); return the JSON document."""
    from tqdm import tqdm

    args = parse_args(argv)
    threads = threads_section(3 if args.quick else 9) if not args.no_threads else None
    pinned = pin_threads(1)
    started = time.time()
    load_before = machine_info()["load_average"]
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "command": "python benchmarks/overhead.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {**machine_info(), "pinned": pinned},
        "settings": {
            "ks": args.ks,
            "blocks": args.blocks,
            "block_seconds": args.block_seconds,
            "train_block_seconds": args.train_block_seconds,
            "min_steps": args.min_steps,
            "max_steps": args.max_steps,
            "warm_steps": args.warm_steps,
            "resample_rounds": 1,
            "safe_regime": f"critic output weight 0, bias {SAFE_BIAS} (risk ~2e-9), eps_safe 1.0",
            "rejected_regime": f"critic output weight 0, bias {REJECT_BIAS} (risk at its maximum: sigmoid = 1, "
            f"times gamma_safe "
            "if the model scales by it), eps_safe 0.1: every step falls back after one k-batch",
            "floor": "model.risk (critic MLP + sigmoid) on preallocated tensors, in a tight loop inside one "
            "torch.inference_mode() block",
            "floor_after_step": "the same forward timed alone right after an untimed raw env step (caches as a "
            "shield meets them); informative",
            "statistic": "median over blocks of the block's mean time per step; cases run round-robin in "
            "shuffled order",
            "clocks": "timings_us / ratios: wall time (perf_counter), which the targets grade; cpu_timings_us / "
            "ratios_cpu: the same from this thread's CPU time (thread_time), less sensitive to other "
            "processes competing for the CPU, reported as a cross-check",
        },
        "targets": dict(TARGETS),
        "definitions": {
            "safe_overhead": "(frozen_safe_pooled - raw) / floor[1]",
            "rejected_overhead[k]": "(frozen_rejected[k] - frozen_safe_pooled) / floor[k]",
            "hopper_shielded_over_raw": "Hopper frozen_safe_pooled / Hopper raw",
            "frozen_safe_pooled": "median of the block means of frozen_safe[k] pooled over all k (k does not "
            "enter the safe path)",
            "train_learning_over_raw": "training shield once learning has started (the default schedule: "
            "updates_per_step "
            "gradient steps of batch 256 per env step) / raw",
            "vector.scaling[regime]": "shield cost per env-step (t_shielded - t_plain) / N at N = 1 over the "
            "same at N = 16 "
            f"({VECTOR_ENV}, frozen constant critics; collect = training before learning_starts)",
            "sb3[algo].ratio": "median over seeds of the wall-clock of model.learn(timed steps) inside a "
            "default training "
            "shield / plain, after an untimed warm-up past both learning_starts (SB3 defaults)",
            "train_collect_over_raw": "training shield before learning_starts (stores transitions only) / raw",
            "*_vs_floor_after_step": "the same overheads divided by floor_after_step instead of floor "
            "(informative, no target)",
        },
        "envs": {},
        "ratios": {},
        "ratios_cpu": {},
    }

    plans = []
    for env_id in args.envs:
        try:
            gym.make(env_id).close()
        except (gym.error.DependencyNotInstalled, ImportError) as error:
            result["envs"][env_id] = {"skipped": f"{type(error).__name__}: {error}"}
            continue
        plans.append(env_id)

    rng = random.Random(0)
    n_cases = 1 + 2 * len(args.ks) + 2 + 2 * len({1, *args.ks})
    n_vector = 0 if args.no_vector else len(VECTOR_NS) * (2 + len(VECTOR_REGIMES))
    progress = tqdm(
        total=(len(plans) * n_cases + n_vector) * (args.blocks + 1),
        desc="overhead",
        unit="block",
        disable=args.no_progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for env_id in plans:
        progress.set_postfix_str(f"{short(env_id)}: build")
        cases, info = build_cases(
            env_id, ENVS[env_id], args.ks, args.block_seconds, args.train_block_seconds, args.warm_steps
        )
        for case in cases:
            progress.set_postfix_str(f"{short(env_id)}: calibrate {case.name}")
            calibrate(
                case,
                args.warm_steps if not case.name.startswith("train_learning") else max(1, args.warm_steps // 10),
                args.min_steps,
                args.max_steps,
            )
            progress.update(1)
        progress.set_postfix_str(f"{short(env_id)}: rounds")
        round_robin(cases, args.blocks, rng, on_block=lambda name: progress.update(1))
        timings, stats = analyse(cases, args.ks)
        cpu_timings, cpu_stats = analyse(cases, args.ks, "cpu_blocks")
        checks = {c.name: c.check() for c in cases if c.check is not None}
        result["envs"][env_id] = {
            **info,
            "timings_us": timings,
            "stats_us": stats,
            "steps_per_block": {c.name: c.steps for c in cases},
            "blocks_us": {c.name: [b * 1e6 for b in c.blocks] for c in cases},
            "cpu_timings_us": cpu_timings,
            "cpu_stats_us": cpu_stats,
            "cpu_blocks_us": {c.name: [b * 1e6 for b in c.cpu_blocks] for c in cases},
            "regime_checks": checks,
            "regimes_ok": all(c["regime_ok"] for c in checks.values()),
        }
        result["ratios"][env_id] = env_ratios(timings, args.ks)
        result["ratios_cpu"][env_id] = env_ratios(cpu_timings, args.ks)
    if not args.no_vector:
        progress.set_postfix_str("vector: build")
        cases = vector_cases(VECTOR_NS, args.block_seconds)
        for case in cases:
            calibrate(case, max(1, args.warm_steps // 10), args.min_steps, args.max_steps)
            progress.update(1)
        progress.set_postfix_str("vector: rounds")
        round_robin(cases, args.blocks, rng, on_block=lambda name: progress.update(1))
        result["vector"] = {
            "env": VECTOR_ENV,
            "ns": list(VECTOR_NS),
            **vector_analysis(cases, VECTOR_NS, "blocks"),
            "cpu": vector_analysis(cases, VECTOR_NS, "cpu_blocks"),
            "steps_per_block": {c.name: c.steps for c in cases},
        }
    progress.close()
    if args.sb3:
        result["sb3"] = sb3_section(
            args.sb3,
            args.sb3_seeds,
            args.quick,
            progress=not args.no_progress,
            tuned=args.sb3_updates_per_step,
            timed={"sac": args.sac_timed, "ppo": args.ppo_timed},
        )
    if threads is not None:
        result["threads"] = threads
    if args.panda:
        result["panda_push"] = panda_section(30 if args.quick else 200)

    summary: dict[str, Any] = {}
    for env_id in plans:
        r = result["ratios"][env_id]
        summary[f"safe_overhead[{short(env_id)}]"] = r["safe_overhead"]
        for k in args.ks:
            summary[f"rejected_overhead[{short(env_id)},k={k}]"] = r["rejected_overhead"][str(k)]
    if HOPPER in plans:
        t = result["envs"][HOPPER]["timings_us"]
        entry = ratio_entry(t["frozen_safe_pooled"] / t["raw"], TARGETS["hopper_shielded_over_raw"])
        result["ratios"]["hopper_shielded_over_raw"] = entry
        summary["hopper_shielded_over_raw"] = entry
        t = result["envs"][HOPPER]["cpu_timings_us"]
        result["ratios_cpu"]["hopper_shielded_over_raw"] = ratio_entry(
            t["frozen_safe_pooled"] / t["raw"], TARGETS["hopper_shielded_over_raw"]
        )
    if "vector" in result:
        for regime, entry in result["vector"]["scaling"].items():
            summary[f"vector_scaling[{regime}] (N=1/N=16, >=)"] = entry
        for regime, ok in result["vector"]["n2_not_slower_than_n1"].items():
            summary[f"vector_n2_not_slower[{regime}]"] = {"value": ok, "target": True, "met": ok}
    for algo, section in result.get("sb3", {}).items():
        summary[f"sb3_{algo}_wall_ratio[{section['env']}]"] = section["default"]["ratio"]
        if "tuned" in section:
            summary[f"sb3_{algo}_wall_ratio[{section['env']}, updates_per_step={args.sb3_updates_per_step}]"] = section[
                "tuned"
            ]["ratio"]
    for env_id in plans:
        summary[f"train_learning_over_raw[{short(env_id)}] (informative)"] = result["ratios"][env_id][
            "train_learning_over_raw"
        ]
    result["summary"] = summary
    graded = [e["met"] for e in summary.values() if e["met"] is not None]
    result["all_targets_met"] = bool(graded) and all(graded)
    result["targets_met"] = sum(graded)
    result["targets_graded"] = len(graded)
    result["load_average"] = {"before": load_before, "after": machine_info()["load_average"]}
    result["elapsed_s"] = round(time.time() - started, 2)

    if args.profile:
        result["profiles"] = [
            os.path.relpath(p, out)
            for p in profile_regimes(plans, out, 300 if args.quick else 3000, args.profile_k, args.sb3, args.quick)
        ]

    write_json(os.path.join(out, "overhead.json"), result)
    if not args.no_plot and plans:
        plot(os.path.join(out, "overhead.png"), result)
    return result


def _print_summary(result: dict[str, Any]) -> None:
    for env_id, env in result["envs"].items():
        if "skipped" in env:
            print(f"{env_id}: skipped ({env['skipped']})")
            continue
        t = env["timings_us"]
        print(
            f"\n{env_id}  (indicator {env['indicator']!r}, obs {env['obs_dim']}, act {env['act_dim']}; regimes "
            f"ok: {env['regimes_ok']})"
        )
        print(f"  raw step            {t['raw']:9.1f} µs")
        print(f"  training, collect   {t['train_collect']:9.1f} µs")
        print(f"  training, learning  {t['train_learning']:9.1f} µs")
        print(f"  floor[1] {t['floor']['1']:.1f} µs, after a step {t['floor_after_step']['1']:.1f} µs")
        print(f"  {'k':>5} {'safe':>10} {'rejected':>10} {'floor[k]':>10} {'after step':>11}")
        for k in result["settings"]["ks"]:
            print(
                f"  {k:>5} {t['frozen_safe'][str(k)]:10.1f} {t['frozen_rejected'][str(k)]:10.1f} "
                f"{t['floor'][str(k)]:10.1f} {t['floor_after_step'][str(k)]:11.1f}"
            )
    for algo, section in result.get("sb3", {}).items():
        for label in ("default", "tuned"):
            if label in section:
                row = section[label]
                print(
                    f"\nSB3 {algo.upper()} on {section['env']} ({label} shield {row['shield']}): wall ratio per seed "
                    f"{[round(r, 3) for r in row['wall_ratio_per_seed']]}, CPU "
                    f"{[round(r, 3) for r in row['cpu_ratio_per_seed']]}"
                )
    if "threads" in result:
        print(f"\nthreads: default / pinned slowdown {result['threads']['slowdown_default_over_pinned']}")
    print("\nratios (target; met):")
    for name, entry in result["summary"].items():
        direction = entry.get("direction", "≤")
        target = "-" if entry["target"] is None else f"{direction} {entry['target']}"
        met = "" if entry["met"] is None else ("met" if entry["met"] else "NOT met")
        value = (
            entry["value"] if isinstance(entry["value"], bool) or entry["value"] is None else round(entry["value"], 3)
        )
        print(f"  {name:<52} {value!s:>8}  {target:>7}  {met}")
    print(f"\n{result['targets_met']}/{result['targets_graded']} targets met; {result['elapsed_s']} s")


if __name__ == "__main__":
    _print_summary(main())
