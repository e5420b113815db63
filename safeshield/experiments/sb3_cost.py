"""What a shield costs an SB3 learner: one ``model.learn`` run, shielded or not, timed and counted.

- ``sb3_run``: SB3 ``SAC`` or ``PPO`` (their defaults) learns an env, optionally inside a training
  SQRL shield (candidates from the agent's policy through ``ShieldCallback``); returns the
  wall-clock and process CPU time of the timed ``learn`` call, failures (terminated episodes),
  episodes, the last episodes' mean return and the shield's counters.
- ``sb3_pair``: the plain and the shielded run of one seed, back to back (a wall-clock ratio).
- ``OutcomeCounter``: the wrapper that counts episodes, failures and returns under the shield.

Used by ``benchmarks/overhead.py`` (the SB3 wall-clock regimes) and ``benchmarks/update_ratio.py``
(failures against the shield's update-to-data ratio). Needs the ``sb3`` extra.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["OutcomeCounter", "sb3_run", "sb3_pair"]


class OutcomeCounter(gym.Wrapper):
    """Counts episodes, failures (``terminated``) and episode returns of the env it wraps."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.failures = self.episodes = 0
        self.returns: list[float] = []
        self._return = 0.0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if terminated or truncated:
            self.episodes += 1
            self.failures += int(bool(terminated))
            self.returns.append(self._return)
            self._return = 0.0
        return obs, reward, terminated, truncated, info


def sb3_run(
    algo: str,
    env_id: str,
    seed: int,
    steps: int,
    shield: dict[str, Any] | None,
    *,
    warm_steps: int = 0,
    algo_kwargs: dict[str, Any] | None = None,
    profile: str | None = None,
    progress_queue=None,
) -> dict[str, Any]:
    """``model.learn(warm_steps)`` untimed, then ``model.learn(steps)`` timed, of SB3 ``algo`` on ``env_id``.

    ``shield``: None for the plain run, else the SQRL options of a training shield (indicator
    ``"terminated"``). ``profile``: a path to write a cProfile summary of the timed call to.
    Failures, episodes and returns count the whole run (warm-up included).
    """
    import torch
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    import safeshield
    from safeshield.experiments.runner import write_profile
    from safeshield.integrations.sb3 import ShieldCallback

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            if progress_queue is not None and self.num_timesteps % 256 == 0:
                progress_queue.put(256)
            return True

    counter = OutcomeCounter(gym.make(env_id))
    env: gym.Env = counter
    callbacks: list[BaseCallback] = [Progress()]
    if shield is not None:
        env = safeshield.wrap(counter, "sqrl", indicator="terminated", seed=seed, **shield)
        callbacks.insert(0, ShieldCallback())
    cls = {"sac": SAC, "ppo": PPO}[algo]
    model = cls("MlpPolicy", env, seed=seed, device="cpu", **(algo_kwargs or {}))
    callback = CallbackList(callbacks)
    if warm_steps:
        model.learn(warm_steps, callback=callback)
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu_start, start = time.process_time(), time.perf_counter()
    model.learn(steps, callback=callback, reset_num_timesteps=not warm_steps)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if profiler is not None:
        profiler.disable()
        write_profile(
            profiler,
            profile,
            f"SB3 {algo.upper()} on {env_id}, {'shielded ' + str(shield) if shield is not None else 'plain'}, "
            f"{steps} timed steps after {warm_steps} warm-up steps",
        )
    result: dict[str, Any] = {
        "algo": algo,
        "env": env_id,
        "seed": seed,
        "steps": steps,
        "warm_steps": warm_steps,
        "shield": shield,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "failures": counter.failures,
        "episodes": counter.episodes,
        "final_return": float(np.mean(counter.returns[-10:])) if counter.returns else None,
        "torch_threads": torch.get_num_threads(),
    }
    if shield is not None:
        result.update(
            shield_updates=env.get_wrapper_attr("safety_model").updates,
            interventions=env.get_wrapper_attr("total_interventions"),
            fallbacks=env.get_wrapper_attr("total_fallbacks"),
        )
    return result


def sb3_pair(
    algo: str,
    env_id: str,
    seed: int,
    warm_steps: int,
    steps: int,
    algo_kwargs: dict[str, Any],
    shields: list[dict[str, Any] | None],
    progress_queue=None,
) -> list[dict[str, Any]]:
    """The runs of one seed (``shields``: None for the plain run, else shield options), back to back
    in one process; the order rotates with the seed so that a drift in machine load favours none."""
    shift = seed % len(shields)
    return [
        sb3_run(
            algo,
            env_id,
            seed,
            steps,
            shield,
            warm_steps=warm_steps,
            algo_kwargs=algo_kwargs,
            progress_queue=progress_queue,
        )
        for shield in shields[shift:] + shields[:shift]
    ]
