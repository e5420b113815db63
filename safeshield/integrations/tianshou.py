"""Tianshou (2.x) adapter: a collector whose buffer stores the action the shield executed.

- ``ExecutedActionHook``: a Tianshou ``on_step_hook`` (``Collector(..., on_step_hook=hook)``)
  that, for every sub-env whose ``info["shield"]`` says the shield intervened, replaces the
  rollout batch's ``act`` with the executed action mapped back into the policy's action range
  (``policy.map_action_inverse``), before the collector adds the batch to its buffer. Tianshou
  documents this hook as the place where the stored data may be changed.
- ``policy_sampler``: candidates from a Tianshou ``SACPolicy``'s own squashed Gaussian, in env
  units, seeded by the shield's generator; the actor gets observations in their space's form
  (a ``Dict`` space as a ``Batch``).
- ``attach``: both in one call, for a collector whose env holds ``safeshield.ShieldWrapper`` wrappers
  in this process (``DummyVectorEnv``); with ``SubprocVectorEnv`` the hook still works (the
  executed action travels in ``info``), the sampler does not (the shields live elsewhere).

The shields are ordinary per-env ``safeshield.ShieldWrapper`` wrappers: Tianshou's vector envs take a
list of env factories, so ``DummyVectorEnv([lambda: safeshield.wrap(gym.make(...), ...)] * n)``.
For one model shared by every sub-env, give each wrapper the same ``SafetyCritic`` instance.

On-policy Tianshou algorithms (PPO, A2C) recompute log-probabilities from the stored action at
update time. With the hook they learn from the executed action, which is off-policy where the
shield intervened: SB3's ``on_policy="executed"``. Without it (skip ``attach``; Tianshou's
SAC sampler does not apply to them anyway) the shield is part of the env and the rollout stays
on-policy: SB3's default, which measured better on CartPole (``docs/integrations.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tianshou.data import Batch, Collector

from safeshield.core.spaces import unflatten_batch
from safeshield.wrappers.shield import ShieldWrapper, find_shield

__all__ = ["ExecutedActionHook", "attach", "policy_sampler", "find_shields"]


class ExecutedActionHook:
    """``on_step_hook`` that makes the collector store the executed action where the shield intervened."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.rewritten = 0

    def __call__(self, action_batch: Batch, rollout_batch: Batch) -> None:
        info = rollout_batch.info
        if "shield" not in info.keys():
            return
        intervened = np.asarray(info.shield.intervened, dtype=bool)
        if not intervened.any():
            return
        executed = np.asarray(info.shield.executed_action, dtype=np.float32)[intervened]
        act = rollout_batch.act
        stored = self.policy.map_action_inverse(executed)
        if isinstance(act, torch.Tensor):
            act[torch.as_tensor(intervened)] = torch.as_tensor(stored, dtype=act.dtype, device=act.device)
        else:
            act[intervened] = stored.reshape(act[intervened].shape)
        self.rewritten += int(intervened.sum())


def policy_sampler(policy: Any, observation_space: gym.Space | None = None) -> Callable:
    """Candidates from a ``SACPolicy``-like policy: ``actor(obs) -> ((loc, scale), state)``, tanh-squashed,
    then mapped to env units with ``policy.map_action``.

    The shield hands the sampler flat observations; the actor gets them in the observation space's
    own form (``observation_space``, else the policy's): a Box in its shape, a ``Dict`` as a Tianshou
    ``Batch`` of its parts (as the collector gives it), each Discrete part as its index.
    """
    actor = getattr(policy, "actor", None)
    if actor is None or not hasattr(policy, "map_action"):
        raise TypeError(f"policy_sampler needs a Tianshou policy with an actor, got {type(policy).__name__}")
    space = observation_space if observation_space is not None else getattr(policy, "observation_space", None)
    unflatten = unflatten_batch(space) if space is not None else None

    def sample(obs: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        m = obs.shape[0]
        inputs = np.asarray(obs, dtype=np.float32)
        if unflatten is not None:
            inputs = unflatten(inputs)
            inputs = Batch(inputs) if isinstance(inputs, dict) else inputs
        with torch.no_grad():
            output, _ = actor(inputs)
            if not isinstance(output, tuple):
                raise TypeError("policy_sampler needs a probabilistic actor returning (loc, scale)")
            loc, scale = (torch.as_tensor(x, dtype=torch.float32).cpu() for x in output)
            noise = torch.randn((m, n, loc.shape[-1]), generator=generator)
            squashed = torch.tanh(loc.unsqueeze(1) + scale.unsqueeze(1) * noise)
        mapped = policy.map_action(squashed.reshape(m * n, -1).numpy())
        return torch.as_tensor(np.asarray(mapped, dtype=np.float32)).reshape(m, n, -1)

    return sample


def find_shields(env: Any) -> list[ShieldWrapper]:
    """``safeshield.ShieldWrapper`` wrappers reachable in this process from a Tianshou vector env's workers."""
    shields = (find_shield(getattr(worker, "env", None)) for worker in getattr(env, "workers", []))
    return [shield for shield in shields if shield is not None]


def attach(collector: Collector, policy: Any, *, sampler: bool = True) -> ExecutedActionHook:
    """Install the executed-action hook on ``collector`` and, where possible, the policy sampler."""
    hook = ExecutedActionHook(policy)
    collector.set_on_step_hook(hook)
    if sampler:
        for shield in find_shields(collector.env):
            shield.attach_policy(policy_sampler(policy, shield.observation_space))
    return hook
