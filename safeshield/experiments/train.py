"""``safeshield train``: any env, any shield (or none), an SB3 or reference agent, K seeds, one folder.

- ``check_run``: every argument error and the budget warnings, before any worker starts.
- ``run_train``: the seeds on the process pool with one progress bar; writes the run folder.
- ``train_seed``: one seed (picklable, for the pool): phases, logs, checkpoints, evaluation.
- ``make_run_env``: the wrapper stack of a phase (the same one ``safeshield eval`` rebuilds).
- ``resolve_indicator``: an indicator string, with ``module:function`` imported.
- ``make_agent`` / ``load_agent`` / ``agent_action``: the learners behind ``--agent``.

The run folder (``--out``)::

    run.json        the resolved config, the exact command, versions, warnings, the summary
    config.toml     the resolved config (``safeshield train --config RUN/config.toml`` repeats the run)
    seed<k>/        episodes.jsonl, episodes.csv, tb/ (TensorBoard), shield/ (the shield after
                    training; pretrain_shield/ after pre-training), agent.zip (SB3) or agent/,
                    summary.json (with the deployed agent's evaluation), quality.json (the
                    shield's quality report, where its wrapper keeps one)

Wrapper stack of a phase, inside out: the env, ``AgentSignals`` (failure and cost in ``info`` for
the reference agents), the shield, ``EpisodeRecorder`` (the logs), ``FlattenObservation`` for
Dict/Tuple observations (the shield and the indicator see the env's own observation).

Pre-train -> fine-tune (``--pretrain-env``): the agent and the shield learn in the pre-training
env; the shield is saved, loaded into the target env (still learning) and the agent continues.
For SQRL the pre-training shield explores the boundary (``pretraining=True``, SQRL §6) and the
reference SAC follows SQRL Alg. 2 in the target (replay buffer emptied, the safety critic in its
actor loss); SB3 agents keep their replay buffer.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import os
import platform
import shlex
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import safeshield
from safeshield.core.metrics import ShieldStats
from safeshield.environments._quiet import quiet_stdout
from safeshield.experiments.config import RunConfig, to_toml
from safeshield.experiments.runlog import AgentSignals, EpisodeRecorder, RunLog

__all__ = [
    "RunWarning",
    "agent_action",
    "check_run",
    "ensure_registered",
    "load_agent",
    "make_agent",
    "make_run_env",
    "resolve_indicator",
    "prepare_out",
    "read_run",
    "run_train",
    "train_seed",
]

# our rule of thumb: below this many training steps per seed, or with fewer than 3 seeds, a run is a
# smoke run whose failure ratios are noise (the DrunkSpider demo's 6000 fine-tuning steps are not)
SMOKE_STEPS = 5_000
SMOKE_SEEDS = 3


def is_smoke(steps: int, seeds: int) -> bool:
    """Whether a run of ``steps`` training steps per seed over ``seeds`` seeds is a smoke run."""
    return steps < SMOKE_STEPS or seeds < SMOKE_SEEDS


FALLBACK_WARN = 0.5  # fallbacks on more than this share of steps
SILENT_CRITIC_FAILURES = 10  # failures after which a shield that never rejected anything is suspicious


class RunWarning(UserWarning):
    """A run that will not measure what its user thinks it measures (small budget, silent shield)."""


# -- arguments -----------------------------------------------------------------------------------------
def ensure_registered(env_id: str) -> None:
    """Register ``env_id``'s family when it comes from a package gymnasium does not import itself.

    ``dm_control/<domain>-<task>-v0`` ids come from Shimmy (``pip install "shimmy[dm-control]"``).
    """
    if env_id in gym.registry:
        return
    if env_id.startswith("dm_control/"):
        try:
            import shimmy
        except ImportError as error:
            raise ValueError(f'{env_id!r} needs Shimmy: pip install "shimmy[dm-control]"') from error
        gym.register_envs(shimmy)
    if ":" in env_id:  # gymnasium's "module:Env-v0" form imports the module that registers it
        importlib.import_module(env_id.split(":", 1)[0])
        env_id = env_id.split(":", 1)[1]
    if env_id not in gym.registry:
        import difflib

        close = difflib.get_close_matches(env_id, list(gym.registry), n=5, cutoff=0.75)
        hint = f"; similar ids: {', '.join(close)}" if close else "; `safeshield envs` lists safeshield's"
        raise ValueError(f"env {env_id!r} is not a registered gymnasium id{hint}")


def resolve_indicator(text: str) -> str | Callable | None:
    """``""`` -> None (the env's declared one); ``"module.path:function"`` -> that function; the
    built-in forms (``"terminated"``, ``"cost"``, ``"info:<key>"``) as they are."""
    if not text:
        return None
    if ":" in text and not text.startswith("info:"):
        module, _, name = text.partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            raise ValueError(
                f"indicator {text!r}: cannot import {name!r} from module {module!r} ({error}); a function "
                "indicator is given as module.path:function, importable from where you run the command"
            ) from error
        if not callable(fn):
            raise ValueError(f"indicator {text!r} is not callable")
        return fn
    from safeshield.core.indicators import make_indicator

    make_indicator(text)  # a ValueError naming the accepted forms
    return text


def _declared_indicator(env: gym.Env) -> str | None:
    return (env.metadata or {}).get("safeshield_indicator")


def check_run(config: RunConfig) -> list[str]:
    """Raise ``ValueError`` for any argument that would fail inside a worker; return budget warnings.

    Builds each env once (spaces, declared indicator), the shield (its options) and the agent
    (its options) in this process, so a typo costs a second, not a crashed pool.
    """
    notes: list[str] = []
    indicator = resolve_indicator(config.indicator)
    shield_options = dict(config.shield)
    for phase, env_id, steps in config.phases:
        ensure_registered(env_id)
        with quiet_stdout():
            env = gym.make(env_id)
        try:
            if indicator is None and _declared_indicator(env) is None:
                raise ValueError(
                    f"env {env_id!r} declares no failure indicator: pass --indicator terminated (every "
                    "termination is a failure), cost (info['cost'] > 0), info:<key>, or module:function "
                    "(a function (obs, reward, terminated, truncated, info) -> float in [0, 1])"
                )
            _try_indicator(env, indicator if indicator is not None else _declared_indicator(env), env_id)
            if config.method != "none" and not isinstance(env.action_space, gym.spaces.Box):
                raise ValueError(
                    f"env {env_id!r} has {env.action_space} actions; the {config.method} shield needs Box "
                    "actions (or use --method none)"
                )
            if phase == config.phases[0][0]:
                env = _shielded(env, config, indicator, seed=0, phase=phase, options=shield_options)
                agent_env = gym.wrappers.FlattenObservation(env) if _needs_flat(env) else env
                agent = make_agent(config.agent, agent_env, config.agent_options, seed=0)
                notes += _budget_notes(config, agent, env, steps, phase)
        finally:
            env.close()
    if is_smoke(config.steps, config.seeds):
        notes.append(
            f"smoke run ({config.steps} steps x {config.seeds} seed(s)): its failure ratios are not evidence; "
            f"use >= {SMOKE_STEPS} steps and >= {SMOKE_SEEDS} seeds for a comparison"
        )
    return notes


def _try_indicator(env: gym.Env, indicator, env_id: str) -> None:
    """One reset and one random step through the indicator: a missing info key fails here, not in a worker."""
    from safeshield.core.indicators import make_indicator

    fn = make_indicator(indicator)
    with quiet_stdout():
        env.reset(seed=0)
        step = env.step(env.action_space.sample())
    try:
        fn(*step)
    except (KeyError, ValueError, TypeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ValueError(f"indicator on {env_id!r}: {message}") from error


def _budget_notes(config: RunConfig, agent: Any, env: gym.Env, steps: int, phase: str) -> list[str]:
    notes = []
    agent_starts, knob = _agent_learning_starts(agent)
    if agent_starts is not None and steps <= agent_starts:
        notes.append(
            f"{phase} budget {steps} steps: the agent's first update comes after {agent_starts + 1} steps, so it "
            f"never updates; raise --steps or lower it with --set agent.{knob}=..."
        )
    model = _safety_model(env)
    shield_starts = getattr(getattr(model, "config", None), "learning_starts", None)
    if model is not None and shield_starts is not None and steps <= shield_starts and not config.shield_checkpoint:
        notes.append(
            f"{phase} budget {steps} steps <= the shield's learning_starts {shield_starts}: the shield learns only "
            f"if its warm-up's failures come first; raise --steps or set --set shield.learning_starts=..."
        )
    return notes


def _agent_learning_starts(agent: Any) -> tuple[int | None, str]:
    """Steps before the agent's first update, and the option that sets it."""
    if hasattr(agent, "learning_starts"):  # SB3 off-policy
        return int(agent.learning_starts), "learning_starts"
    if hasattr(agent, "n_steps") and hasattr(agent, "rollout_buffer"):  # SB3 on-policy: one full rollout first
        return int(agent.n_steps) - 1, "n_steps"
    config = getattr(agent, "config", None)
    if hasattr(config, "learning_starts"):
        return int(config.learning_starts), "learning_starts"
    if hasattr(config, "steps_per_epoch"):
        return int(config.steps_per_epoch) - 1, "steps_per_epoch"
    return None, ""


# -- the env stack -------------------------------------------------------------------------------------
def _needs_flat(env: gym.Env) -> bool:
    return not isinstance(env.observation_space, gym.spaces.Box)


def _shielded(
    env: gym.Env,
    config: RunConfig,
    indicator,
    *,
    seed: int,
    phase: str,
    options: dict[str, Any],
    checkpoint: str = "",
    train: bool = True,
) -> gym.Env:
    """``env`` inside the run's shield: a fresh one, or one loaded from ``checkpoint``."""
    if config.method == "none":
        return env
    phase_options = dict(options)
    # shadow mode (it learns and reports, every action runs): the whole run, or its pre-training phase
    enforce = not config.shadow and (config.filter_pretraining or phase != "pretrain")
    if config.method == "sqrl" and config.pretrain_env:
        phase_options["pretraining"] = phase == "pretrain"  # SQRL §6: explore the boundary, then not
    checkpoint = checkpoint or (config.shield_checkpoint if phase == config.phases[0][0] else "")
    if checkpoint:
        if config.method == "safer":
            return safeshield.load(checkpoint, env, train=train, indicator=indicator, seed=seed)
        return safeshield.load(
            checkpoint,
            env,
            train=train,
            indicator=indicator,
            seed=seed,
            enforce=enforce,
            **_decision_options(phase_options),
        )
    return safeshield.wrap(env, config.method, indicator, train=train, seed=seed, enforce=enforce, **phase_options)


def _decision_options(options: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key in ("pretraining", "selection", "eps_safe")}


def make_run_env(
    config: RunConfig,
    env_id: str,
    phase: str,
    *,
    seed: int,
    on_episode: Callable | None = None,
    step_offset: int = 0,
    checkpoint: str = "",
    train: bool = True,
) -> tuple[gym.Env, ShieldStats | None]:
    """The phase's wrapper stack (module docstring); returns the env the agent sees and the shield's stats."""
    indicator = resolve_indicator(config.indicator)
    with quiet_stdout():
        env = gym.make(env_id)
    indicator = indicator if indicator is not None else _declared_indicator(env)
    env = AgentSignals(env, indicator)
    env = _shielded(
        env, config, indicator, seed=seed, phase=phase, options=dict(config.shield), checkpoint=checkpoint, train=train
    )
    stats = ShieldStats() if config.method != "none" else None
    env = EpisodeRecorder(
        env,
        indicator,
        phase,
        on_episode or (lambda record, stats: None),
        env_id=env_id,
        step_offset=step_offset,
        stats=stats,
    )
    if _needs_flat(env):
        env = gym.wrappers.FlattenObservation(env)
    return env, stats


def _shield_wrapper(env: gym.Env) -> Any:
    """The shield wrapper in ``env``'s chain (reject/resample or remap), or None."""
    from safeshield.wrappers import RemapWrapper, ShieldWrapper

    while isinstance(env, gym.Wrapper):
        if isinstance(env, (ShieldWrapper, RemapWrapper)):
            return env
        env = env.env
    return None


def _safety_model(env: gym.Env) -> Any:
    wrapper = _shield_wrapper(env)
    return None if wrapper is None else wrapper.safety_model


# -- agents --------------------------------------------------------------------------------------------
def _sb3_class(agent: str):
    try:
        import stable_baselines3
    except ImportError as error:
        raise ValueError(f"--agent {agent} needs Stable-Baselines3: pip install 'safeshield[sb3]'") from error
    return getattr(stable_baselines3, agent.split(":", 1)[1])


def _reference_classes(agent: str):
    from safeshield.agents import (
        SAC,
        SACConfig,
        SACLagrangian,
        SACLagrangianConfig,
        TRPOLagrangian,
        TRPOLagrangianConfig,
    )

    return {
        "sac": (SAC, SACConfig),
        "sac-lagrangian": (SACLagrangian, SACLagrangianConfig),
        "trpo-lagrangian": (TRPOLagrangian, TRPOLagrangianConfig),
    }[agent]


def make_agent(agent: str, env: gym.Env, options: dict[str, Any], *, seed: int) -> Any:
    """A fresh ``agent`` for ``env``; ``options`` are SB3 keywords or the reference agent's config fields."""
    if agent.startswith("sb3:"):
        cls = _sb3_class(agent)
        known = set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown [agent] option(s) {unknown} for {agent}; its keywords are {sorted(known)}")
        return cls("MlpPolicy", env, seed=seed, verbose=0, **options)
    cls, config_class = _reference_classes(agent)
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown [agent] option(s) {unknown} for {agent}; its options are {sorted(known)}")
    config = config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
    return cls(env.observation_space, env.action_space, config, seed=seed)


def _connect(agent: Any, agent_name: str, env: gym.Env, phase: str, config: RunConfig) -> None:
    """Candidates from the agent's policy (the papers' rule) and, for the reference agents, the
    shield's critic in their objective where the method has one."""
    wrapper = _shield_wrapper(env)
    if wrapper is None or agent_name.startswith("sb3:"):
        return  # SB3: ShieldCallback attaches the policy sampler
    model = _safety_model(env)
    if hasattr(wrapper, "attach_policy"):
        wrapper.attach_policy(agent.sample_actions)
    if agent_name == "sac" and config.method == "sqrl" and phase == "train" and config.pretrain_env:
        # SQRL Eq. 4 when fine-tuning, against the threshold the shield applies (eps_safe unless a
        # failure budget or the guard moves it)
        agent.set_safety_critic(model.q_safe, eps_safe=lambda: model.threshold)
    if agent_name == "trpo-lagrangian" and hasattr(model, "q_c"):
        agent.set_cost_critic(model.q_c)  # CSC Alg. 1: A_C from the conservative critic


def _learn(agent: Any, agent_name: str, env: gym.Env, steps: int, seed: int, first: bool, log_folder: Path) -> None:
    if agent_name.startswith("sb3:"):
        from safeshield.integrations.sb3 import ShieldCallback

        if first:
            from stable_baselines3.common.logger import configure

            agent.set_logger(configure(str(log_folder / "tb"), ["csv", "tensorboard"]))
        else:
            agent.set_env(env)
        # the episode recorder writes the shield/ scalars for every agent alike; SB3 adds its own tags
        agent.learn(steps, callback=ShieldCallback(log=False), reset_num_timesteps=first, progress_bar=False)
        return
    if not first and hasattr(agent, "reset_buffer"):
        agent.reset_buffer()  # SQRL Alg. 2: D_offline starts empty in the target task
    agent.learn(env, steps, seed=seed, progress=False)


def _save_agent(agent: Any, agent_name: str, folder: Path) -> Path:
    if agent_name.startswith("sb3:"):
        agent.save(folder / "agent.zip")
        return folder / "agent.zip"
    return Path(agent.save(folder / "agent"))


def load_agent(agent_name: str, path: str | os.PathLike, env: gym.Env, seed: int = 0) -> Any:
    """The agent saved by a run (``agent.zip`` for SB3, ``agent/`` otherwise)."""
    if agent_name.startswith("sb3:"):
        return _sb3_class(agent_name).load(str(path), env=None, device="cpu")
    cls, _ = _reference_classes(agent_name)
    return cls.load(path, env, seed=seed)


def agent_action(agent: Any, obs: Any) -> np.ndarray:
    """The deployed (deterministic) action of any supported agent."""
    if hasattr(agent, "predict"):
        return agent.predict(obs, deterministic=True)[0]
    return agent.act(obs, deterministic=True)


# -- one seed --------------------------------------------------------------------------------------------
def train_seed(config_json: dict[str, Any], seed: int, out_dir: str, progress_queue=None) -> dict[str, Any]:
    """Train one seed through every phase; write its folder; return its summary (module docstring)."""
    torch.set_num_threads(1)
    config = RunConfig(**config_json)
    folder = Path(out_dir) / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    log = RunLog(folder)
    live = {"failures": 0, "returns": []}

    def on_episode(record, stats):
        log.episode(record, stats)
        live["failures"] += bool(record["failure"])
        if progress_queue is not None:
            progress_queue.put(
                (int(record["length"]), {"failures": 1 if record["failure"] else 0, "return": float(record["return"])})
            )

    agent, offset, phases, checkpoint, stats = None, 0, [], "", None
    started = time.perf_counter()
    try:
        for index, (phase, env_id, steps) in enumerate(config.phases):
            env, stats = make_run_env(
                config, env_id, phase, seed=seed, on_episode=on_episode, step_offset=offset, checkpoint=checkpoint
            )
            if agent is None:
                agent = make_agent(config.agent, env, config.agent_options, seed=seed)
            _connect(agent, config.agent, env, phase, config)
            _learn(agent, config.agent, env, steps, seed + 10_000 * index, index == 0, folder)
            recorder = _recorder(env)
            offset = recorder.steps
            model = _safety_model(env)
            phase_summary = {"phase": phase, "env": env_id, "steps": steps, "episodes": recorder.episodes}
            if model is not None:
                checkpoint = str(folder / ("shield" if phase == "train" else f"{phase}_shield"))
                model.save(checkpoint)
                phase_summary.update(_shield_summary(stats), shield_updates=getattr(model, "updates", None))
                _write_quality(env, folder / ("quality.json" if phase == "train" else f"{phase}_quality.json"))
            phases.append(phase_summary)
            log.flush()
            env.close()
        agent_path = _save_agent(agent, config.agent, folder)
    finally:
        log.close()
    summary = {
        "seed": seed,
        "phases": phases,
        "agent": str(agent_path.relative_to(folder)),
        "shield": "shield" if config.method != "none" else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if config.eval_episodes:
        summary["eval"] = evaluate_seed(config, seed, folder, config.env, config.eval_episodes)
    from safeshield.experiments.runner import write_json

    write_json(folder / "summary.json", summary)
    return summary


def _write_quality(env: gym.Env, path: Path) -> None:
    """The shield's own quality report (ROC AUC of its risk, calibration, false-safe rate, ...),
    where its wrapper keeps one (``quality_report()``), for ``safeshield report``."""
    from safeshield.experiments.runner import write_json

    quality = getattr(_shield_wrapper(env), "quality_report", None)
    if callable(quality):
        write_json(path, quality())


def _recorder(env: gym.Env) -> EpisodeRecorder:
    while not isinstance(env, EpisodeRecorder):
        env = env.env
    return env


def _shield_summary(stats: ShieldStats | None) -> dict[str, Any]:
    if stats is None or not stats.steps:
        return {}
    return {
        "shield_steps": stats.steps,
        "interventions": stats.interventions,
        "fallbacks": stats.fallbacks,
        "shield_failures": stats.failures,
        "max_proposal_risk": stats.max_risk_seen,
        "threshold": stats.threshold,
    }


def evaluate_seed(config: RunConfig, seed: int, folder: Path, env_id: str, episodes: int) -> dict[str, Any]:
    """The saved agent, deterministic, through the saved shield frozen, for ``episodes`` episodes of ``env_id``."""
    records: list[dict] = []
    shield = folder / "shield"
    env, _ = make_run_env(
        config,
        env_id,
        "eval",
        seed=seed,
        on_episode=lambda record, stats: records.append(record),
        checkpoint=str(shield) if config.method != "none" else "",
        train=False,
    )
    try:
        agent = load_agent(
            config.agent, folder / ("agent.zip" if config.agent.startswith("sb3:") else "agent"), env, seed
        )
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed * 1_000_003 + episode)
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(agent_action(agent, obs))
                done = terminated or truncated
    finally:
        env.close()
    returns = [r["return"] for r in records]
    return {
        "env": env_id,
        "episodes": len(records),
        "mean_return": float(np.mean(returns)) if returns else math.nan,
        "failures": int(sum(r["failure"] for r in records)),
        "failure_rate": float(np.mean([r["failure"] for r in records])) if records else math.nan,
        "interventions": int(sum(r.get("interventions", 0) for r in records)),
        "steps": int(sum(r["length"] for r in records)),
    }


# -- the run -------------------------------------------------------------------------------------------------
def run_train(
    config: RunConfig,
    *,
    progress: bool = True,
    command: list[str] | None = None,
    notes: list[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Check, then train every seed; write ``run.json`` and ``config.toml``; return the run summary.

    ``notes`` are ``check_run``'s warnings when the caller already ran it (the CLI prints them
    before the bar starts); each is also issued once as a ``RunWarning``.
    """
    from safeshield.experiments.runner import Job, run_jobs, write_json

    notes = check_run(config) if notes is None else notes
    out = Path(config.out)
    prepare_out(out, overwrite)
    command_line = shlex.join(["safeshield", *command]) if command is not None else None
    (out / "config.toml").write_text(to_toml(config, header=f"resolved config of {out}\n{command_line or ''}"))
    document = {
        "config": dataclasses.asdict(config),
        "command": command_line,
        "versions": _versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "warnings": list(notes),
    }
    write_json(out / "run.json", document)
    jobs = [Job(train_seed, (dataclasses.asdict(config), seed, str(out))) for seed in range(config.seeds)]
    desc = f"{config.method}/{config.agent} {config.env}"
    try:
        seeds = run_jobs(jobs, config.total_steps * config.seeds, desc=desc, workers=config.workers, progress=progress)
    except BaseException as error:
        document["error"] = f"{type(error).__name__}: {error}"
        write_json(out / "run.json", document)
        raise
    after = _after_run_notes(seeds)
    for note in after:
        warnings.warn(note, RunWarning, stacklevel=2)
    document.update(
        seeds=seeds,
        summary=summarise_seeds(config, seeds),
        warnings=notes + after,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    write_json(out / "run.json", document)
    return document


def prepare_out(out: Path, overwrite: bool) -> None:
    """Make the run folder; refuse one that already holds a run unless ``overwrite`` (then clear it:
    a second run's episodes must never be appended to the first's)."""
    import shutil

    if (out / "run.json").exists():
        if not overwrite:
            raise ValueError(
                f"{str(out)!r} already holds a run; pass --overwrite to replace it or choose another --out"
            )
        for child in out.glob("seed*"):
            shutil.rmtree(child)
        for name in ("run.json", "config.toml"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _after_run_notes(seeds: list[dict[str, Any]]) -> list[str]:
    """Once each, over every seed: fallbacks on most steps; a shield that never rejected despite failures."""
    notes = []
    for phase in ("pretrain", "train"):
        rows = [p for s in seeds for p in s["phases"] if p["phase"] == phase and p.get("shield_steps")]
        if not rows:
            continue
        steps = sum(p["shield_steps"] for p in rows)
        fallbacks = sum(p["fallbacks"] for p in rows)
        if steps >= 200 and fallbacks / steps > FALLBACK_WARN:
            notes.append(
                f"{phase}: the shield fell back on {fallbacks / steps:.0%} of steps (no candidate passed its "
                "threshold): it is acting as a noisy controller, not a filter; see docs/tuning.md"
            )
        silent = [
            p
            for p in rows
            if p["shield_failures"] >= SILENT_CRITIC_FAILURES
            and p.get("shield_updates") != 0
            and p["max_proposal_risk"] < p["threshold"]
        ]
        if silent:
            worst = max(silent, key=lambda p: p["shield_failures"])
            notes.append(
                f"{phase}: after {worst['shield_failures']} failures no proposal's risk ever reached the threshold "
                f"{worst['threshold']:.3g} (max {worst['max_proposal_risk']:.3g}): the shield never rejected "
                "anything; see docs/tuning.md"
            )
    return notes


def summarise_seeds(config: RunConfig, seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase over seeds: failures, episodes, interventions and fallbacks (mean, 95 % half-width)."""
    from safeshield.experiments.runlog import read_episodes
    from safeshield.experiments.runner import mean_ci

    summary: dict[str, Any] = {"smoke": is_smoke(config.steps, config.seeds)}
    for phase, _, steps in config.phases:
        per_seed = []
        for seed in seeds:
            records = [r for r in read_episodes(Path(config.out) / f"seed{seed['seed']}") if r["phase"] == phase]
            per_seed.append(
                {
                    "failures": sum(r["failure"] for r in records),
                    "episodes": len(records),
                    "return": float(np.mean([r["return"] for r in records[-max(1, len(records) // 4) :]]))
                    if records
                    else math.nan,
                    "interventions": sum(r.get("interventions", 0) for r in records) / max(1, steps),
                    "fallbacks": sum(r.get("fallbacks", 0) for r in records) / max(1, steps),
                }
            )
        summary[phase] = {
            "steps": steps,
            "failures": mean_ci([s["failures"] for s in per_seed]),
            "episodes": mean_ci([s["episodes"] for s in per_seed]),
            "final_return": mean_ci([s["return"] for s in per_seed]),
            "intervention_rate": mean_ci([s["interventions"] for s in per_seed]),
            "fallback_rate": mean_ci([s["fallbacks"] for s in per_seed]),
        }
    evals = [s["eval"] for s in seeds if "eval" in s]
    if evals:
        summary["eval"] = {
            "env": evals[0]["env"],
            "episodes": evals[0]["episodes"],
            "mean_return": mean_ci([e["mean_return"] for e in evals]),
            "failure_rate": mean_ci([e["failure_rate"] for e in evals]),
        }
    return summary


def _versions() -> dict[str, str]:
    versions = {
        "safeshield": safeshield.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
    }
    try:
        import stable_baselines3

        versions["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        pass
    return versions


def read_run(folder: str | os.PathLike) -> dict[str, Any]:
    """``run.json`` of a run folder, with a clear error when ``folder`` is not one."""
    path = Path(folder) / "run.json"
    if not path.is_file():
        raise ValueError(
            f"{str(folder)!r} is not a safeshield run folder (no run.json); `safeshield train --out DIR` makes one"
        )
    return json.loads(path.read_text())
