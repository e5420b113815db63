"""SQRL's pre-train -> fine-tune transfer against plain SAC, for any pair of registered env ids.

- ``TransferSettings``: the two env ids and the experiment's knobs (steps, networks, eps_safe, ...).
- ``transfer_job``: one (method, seed) run, picklable for ``safeshield.experiments.runner.run_jobs``.
- ``run_transfer``: every (method, seed) job on the process pool with one progress bar.
- ``summarise_transfer``: per-method means with 95 % CIs and the SAC/SQRL failure ratio.
- ``make_sac``, ``shield_options``, ``evaluate``: the pieces the jobs are made of (the DrunkSpider
  demo's Fig. 5 sweep reuses them).

The protocol is SQRL §5 and Algorithms 1-2 (Srinivasan, Eysenbach, Ha, Tan, Finn (2020), "Learning to be Safe: Deep RL
with a Safety Critic", arXiv:2010.14603):

1. Pre-train in ``pretrain_id`` (safe to fail): SAC inside a training SQRL shield whose
   candidates come from the SAC policy and which prefers the riskiest safe candidate (§6, the
   ``pretraining`` option). The shield is saved (safetensors + JSON) under ``out_dir``.
2. Fine-tune in ``target_id``: the saved shield is loaded into the new env and keeps learning
   online, SAC's replay buffer D_offline is emptied, the actor loss gains Eq. 4's
   ``nu * Q_safe`` term, and safe candidates are drawn uniformly among the policy's own
   draws (the masked policy, Eq. 3).
3. The baseline ("sac") is the same SAC with the same seeds, pre-trained and fine-tuned with no
   shield (the paper's "ablation without safety-critic training").

The headline metric is the paper's: failed episodes during fine-tuning, plus the return of the
deployed policy (deterministic actor, through the frozen shield for SQRL) over ``eval_episodes``
episodes of the target env.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import safeshield
from safeshield.agents import SAC, SACConfig
from safeshield.experiments.runner import Job, episode_reporter, mean_ci, run_jobs, summarise_episodes
from safeshield.experiments.train import resolve_indicator

__all__ = [
    "TransferSettings",
    "MINITAUR_CPU",
    "transfer_job",
    "run_transfer",
    "summarise_transfer",
    "make_sac",
    "shield_options",
    "evaluate",
    "METHODS",
]

METHODS = ("sqrl", "sac")


@dataclass(frozen=True)
class TransferSettings:
    """One transfer experiment; defaults are the DrunkSpider demo's CPU-scale values."""

    pretrain_id: str = "safeshield/DrunkSpider-v0"  # the low-stakes task
    target_id: str = "safeshield/DrunkSpiderTarget-v0"  # the high-stakes task
    pretrain_steps: int = 8_000  # paper: 5e4 (DrunkSpider) to 1e6 (Table 2)
    finetune_steps: int = 6_000  # paper: 5e5 (Table 1)
    hidden: tuple[int, ...] = (64, 64)  # paper: 2 x 256 (Table 1); our choice for CPU budgets
    eps_safe: float = 0.05  # paper Fig. 5 / Fig. 10a (Table 1: 0.1)
    gamma_safe: float = 0.65  # paper Table 2 (DrunkSpider; 0.7 elsewhere)
    learning_starts: int = 1_000  # our choice: SAC and shield warm-up
    sac_gamma: float = 0.95  # our choice (paper silent)
    sac_init_alpha: float = 0.1  # our choice
    batch_size: int = 256  # our choice (paper silent): SAC's and the shield's minibatch
    train_every: int = 1  # SQRL Alg. 2: one update per env step (SAC and shield)
    eval_episodes: int = 20  # deterministic episodes scoring the deployed policy
    path_dims: int = 0  # leading observation entries recorded per evaluation step (2: DrunkSpider's x, y)
    indicator: str = ""  # "" = the envs' declared one; "terminated", "cost", "info:<key>" or "module:function"
    shield_preset: str = "paper"  # "paper": SQRL as published (eps/gamma above); "default": the shield's defaults
    shield_budget: float | None = None  # failures per 1000 env steps the shield's threshold adapts to (None: fixed)
    # SQRL Alg. 2 filters pre-training too; False: the shield only learns there (shadow mode), from the agent's
    # unfiltered exploration (failures are cheap in the low-stakes task), and filters from fine-tuning on
    filter_pretraining: bool = True

    def __post_init__(self) -> None:
        for name in ("pretrain_steps", "finetune_steps", "batch_size", "train_every", "eval_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TransferSettings.{name} must be an int >= 1, got {value!r}")
        if not 0.0 <= self.eps_safe <= 1.0 or not 0.0 < self.gamma_safe < 1.0:
            raise ValueError(
                f"TransferSettings needs eps_safe in [0, 1] and gamma_safe in (0, 1), got {self.eps_safe!r}, "
                f"{self.gamma_safe!r}"
            )
        if not isinstance(self.filter_pretraining, bool):
            raise ValueError(f"TransferSettings.filter_pretraining must be a bool, got {self.filter_pretraining!r}")
        for name in ("pretrain_id", "target_id"):
            if getattr(self, name) not in gym.registry:
                raise ValueError(f"TransferSettings.{name} must be a registered env id, got {getattr(self, name)!r}")


MINITAUR_CPU = TransferSettings(
    pretrain_id="safeshield/Minitaur-v0",  # 0.3 m/s (App. C)
    target_id="safeshield/MinitaurVelocity-v0",  # 0.4 m/s (App. C)
    pretrain_steps=8_000,  # paper: up to 1e6; CPU budget
    finetune_steps=6_000,  # paper: 5e5; CPU budget
    hidden=(64, 64),  # paper: 2 x 256 (Table 1); CPU budget
    eps_safe=0.1,  # paper Table 1
    gamma_safe=0.7,  # paper Table 1
    learning_starts=1_000,  # our choice: uniform warm-up for SAC and the critic
    sac_gamma=0.99,  # our choice: standard SAC discount (paper silent)
    sac_init_alpha=0.1,  # our choice: the demo's value; alpha is learned from there
    batch_size=128,  # our choice (paper silent)
    train_every=2,  # our choice: one update every 2 env steps halves the CPU cost
    eval_episodes=3,  # deterministic 500-step episodes of the deployed policy
)
"""SQRL's Minitaur goal-velocity transfer (Srinivasan et al. 2020, arXiv:2010.14603, §7.1, App. C) at about 1 % of
the paper's scale, so that one seed and method needs under 10 CPU-minutes here."""


def make_sac(env: gym.Env, settings: TransferSettings, seed: int, eps_safe: float | None = None) -> SAC:
    """The SAC agent both methods use (``eps_safe`` overrides the settings' value)."""
    config = SACConfig(
        hidden=settings.hidden,
        learning_starts=settings.learning_starts,
        eps_safe=settings.eps_safe if eps_safe is None else eps_safe,
        gamma=settings.sac_gamma,
        init_alpha=settings.sac_init_alpha,
        batch_size=settings.batch_size,
        train_every=settings.train_every,
    )
    return SAC(env.observation_space, env.action_space, config, seed=seed)


def shield_options(settings: TransferSettings, **extra: Any) -> dict[str, Any]:
    """SQRL config options from the settings, ``extra`` overriding them.

    ``shield_preset="paper"`` (the demo's): SQRL as published with the settings' eps_safe and
    gamma_safe; ``"default"``: the shield's default target and threshold (docs/effectiveness.md).
    """
    paper = settings.shield_preset == "paper"
    options = dict(
        preset=settings.shield_preset,
        **({"gamma_safe": settings.gamma_safe, "eps_safe": settings.eps_safe} if paper else {}),
        hidden=settings.hidden,
        learning_starts=settings.learning_starts,
        batch_size=settings.batch_size,
        train_every=settings.train_every,
        updates_per_step=1 / settings.train_every,  # one update per train_every steps, as the agent
    )
    if settings.shield_budget is not None:
        options["budget"] = settings.shield_budget
    return {**options, **extra}


def evaluate(agent: SAC, env: gym.Env, episodes: int, seed: int, path_dims: int = 0) -> dict[str, Any]:
    """Deterministic actor for ``episodes`` episodes: mean return, failures and (``path_dims`` > 0) paths."""
    returns, failures, paths = [], 0, []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        path, total, done = [np.asarray(obs[:path_dims], dtype=float)], 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, deterministic=True))
            total += float(reward)
            path.append(np.asarray(obs[:path_dims], dtype=float))
            done = terminated or truncated
        failures += bool(info.get("failure", False))
        returns.append(total)
        if path_dims > 0:
            paths.append(np.stack(path).round(3).tolist())
    return {"mean_return": float(np.mean(returns)), "failures": failures, "episodes": episodes, "paths": paths}


def _signalled(env: gym.Env, indicator) -> gym.Env:
    """``info["failure"]`` from the indicator where the env reports none, so both methods count
    failures the same way (a gymnasium env that only terminates reports none)."""
    from safeshield.experiments.runlog import AgentSignals
    from safeshield.experiments.train import _declared_indicator

    indicator = indicator if indicator is not None else _declared_indicator(env)
    return AgentSignals(env, indicator) if indicator is not None else env


def transfer_job(
    method: str, seed: int, settings: TransferSettings, out_dir: str, progress_queue=None
) -> dict[str, Any]:
    """Pre-train in ``settings.pretrain_id``, fine-tune in ``settings.target_id``; ``method`` "sqrl" or "sac"."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    torch.set_num_threads(1)
    report = episode_reporter(progress_queue)
    indicator = resolve_indicator(settings.indicator)
    pre_env = _signalled(gym.make(settings.pretrain_id), indicator)
    agent = make_sac(pre_env, settings, seed)
    if method == "sqrl":
        # filter_pretraining=False: shadow mode, every proposal runs while the shield learns from it
        pre_options = shield_options(settings, pretraining=True)
        pre_env = safeshield.wrap(
            pre_env, "sqrl", indicator, seed=seed, enforce=settings.filter_pretraining, **pre_options
        )
        pre_env.attach_policy(agent.sample_actions)
    pre_records = agent.learn(pre_env, settings.pretrain_steps, seed=seed, progress=False, callback=report)

    target_env = _signalled(gym.make(settings.target_id), indicator)
    if method == "sqrl":
        shield_path = Path(out_dir) / f"sqrl_seed{seed}" / "shield"
        pre_env.safety_model.save(shield_path)
        target_env = safeshield.load(
            shield_path,
            target_env,
            train=True,
            seed=seed,
            indicator=indicator,
            pretraining=False,
            selection="uniform",
        )
        target_env.attach_policy(agent.sample_actions)
        model = target_env.safety_model
        # Eq. 4 against the threshold the shield applies: eps_safe in the paper preset; a failure
        # budget raises it while failures stay under the budget
        agent.set_safety_critic(model.q_safe, eps_safe=lambda: model.threshold)
    agent.reset_buffer()  # SQRL Alg. 2: D_offline starts empty in the target task
    fine_records = agent.learn(target_env, settings.finetune_steps, seed=seed + 10_000, progress=False, callback=report)

    eval_env = _signalled(gym.make(settings.target_id), indicator)
    if method == "sqrl":
        eval_env = safeshield.ShieldWrapper(
            eval_env, target_env.safety_model.freeze(), indicator, train=False, seed=seed
        )
    evaluation = evaluate(agent, eval_env, settings.eval_episodes, seed=seed + 20_000, path_dims=settings.path_dims)
    for env in (pre_env, target_env, eval_env):
        env.close()
    quality = {"quality": target_env.quality_report()} if method == "sqrl" and settings.shield_preset != "paper" else {}
    return {
        **quality,
        "method": method,
        "seed": seed,
        "pretrain": summarise_episodes(pre_records),
        "finetune": summarise_episodes(fine_records),
        "final": evaluation,
        "nu": agent.nu,
    }


def summarise_transfer(runs: list[dict]) -> dict[str, Any]:
    """Per method: failures (pre-training, fine-tuning), fine-tuning failure rate, final return and
    deployed failure rate, each as (mean, 95 % half-width) over seeds; plus SAC/SQRL fine-tuning failures."""
    table: dict[str, Any] = {}
    for method in sorted({run["method"] for run in runs}):
        mine = [run for run in runs if run["method"] == method]
        table[method] = {
            "seeds": [run["seed"] for run in mine],
            "pretrain_failures": mean_ci([run["pretrain"]["failures"] for run in mine]),
            "finetune_failures": mean_ci([run["finetune"]["failures"] for run in mine]),
            "finetune_failure_rate": mean_ci([run["finetune"]["failure_rate"] for run in mine]),
            "final_return": mean_ci([run["final"]["mean_return"] for run in mine]),
            "final_failure_rate": mean_ci([run["final"]["failures"] / run["final"]["episodes"] for run in mine]),
        }
    if "sqrl" in table and "sac" in table and table["sqrl"]["finetune_failures"][0] > 0:
        table["sac_to_sqrl_failure_ratio"] = (
            table["sac"]["finetune_failures"][0] / table["sqrl"]["finetune_failures"][0]
        )
    return table


def run_transfer(
    settings: TransferSettings,
    seeds: tuple[int, ...],
    out_dir: str,
    *,
    workers: int = 2,
    progress: bool = True,
    desc: str = "transfer",
) -> tuple[list[dict], dict[str, Any]]:
    """Run SQRL and SAC for every seed; return (runs in job order, ``summarise_transfer`` of them)."""
    jobs = [Job(transfer_job, (method, seed, settings, str(out_dir))) for seed in seeds for method in METHODS]
    total = len(jobs) * (settings.pretrain_steps + settings.finetune_steps)
    runs = run_jobs(jobs, total, desc=desc, workers=workers, progress=progress)
    return runs, summarise_transfer(runs)
