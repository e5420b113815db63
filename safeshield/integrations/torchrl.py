"""TorchRL adapter: a shielded env as a TorchRL env, and the executed action in the collected data.

- ``ShieldInfoReader``: a TorchRL info-dict reader that copies ``info["shield"]``
  (``executed_action``, ``intervened``, ``fell_back``, ``risk``, ``failure``) into each step's
  tensordict under ``("next", "shield", ...)``.
- ``ShieldedGymEnv(env)``: ``torchrl.envs.GymWrapper`` around a ``safeshield.ShieldWrapper`` with that
  reader installed.
- ``executed_action(td)``: writes the executed action into ``td["action"]`` wherever the shield
  intervened; pass it as a collector's ``postproc`` (``Collector(..., postproc=
  executed_action)``) so the replay buffer and the loss modules see what the env executed, or
  call it on a ``rollout``.

- ``policy_sampler(actor, observation_space)``: candidates drawn from a ``ProbabilisticActor``'s own
  distribution (``actor.get_dist``) at the shield's observations, put back in the env's form
  (``"observation"`` for a Box, one entry per part of a ``Dict``), seeded by the shield's generator;
  ``attach(env, actor)`` installs it on the shield inside a ``ShieldedGymEnv``. Without it the
  shield draws perturbations of the proposal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import GymWrapper
from torchrl.envs.gym_like import BaseInfoDictReader

from safeshield.core.spaces import unflatten_batch
from safeshield.wrappers.shield import ShieldWrapper, find_shield

__all__ = ["ShieldInfoReader", "ShieldedGymEnv", "attach", "executed_action", "policy_sampler"]

_SCALARS = {"intervened": torch.bool, "fell_back": torch.bool, "risk": torch.float32, "failure": torch.float32}


class ShieldInfoReader(BaseInfoDictReader):
    """Read ``info["shield"]`` into ``("shield", key)`` entries; a reset step (no report) reads zeros."""

    def __init__(self, action_space: gym.spaces.Box):
        self._spec = Composite(
            shield=Composite(
                executed_action=Bounded(
                    torch.as_tensor(action_space.low),
                    torch.as_tensor(action_space.high),
                    shape=action_space.shape,
                    dtype=torch.float32,
                ),
                **{key: Unbounded((), dtype=dtype) for key, dtype in _SCALARS.items()},
            ),
            shape=[],
        )

    def __call__(self, info_dict: dict[str, Any], tensordict: TensorDictBase) -> TensorDictBase:
        report = info_dict.get("shield")
        if report is None:
            tensordict.set("shield", self._spec["shield"].zero())
            return tensordict
        values = {"executed_action": torch.as_tensor(report["executed_action"], dtype=torch.float32)}
        values.update({key: torch.as_tensor(report[key], dtype=dtype) for key, dtype in _SCALARS.items()})
        for key, value in values.items():
            tensordict.set(("shield", key), value)
        return tensordict

    def reset(self) -> None:
        pass

    @property
    def info_spec(self) -> Composite:
        return self._spec


def ShieldedGymEnv(env: ShieldWrapper, **kwargs: Any) -> GymWrapper:  # noqa: N802 (reads as a class at the call site)
    """A TorchRL ``GymWrapper`` around the shielded env ``env`` that reports ``("next", "shield", ...)``."""
    if find_shield(env) is None:
        raise TypeError(f"env must be shielded (safeshield.wrap(...)), got {type(env).__name__}")
    wrapped = GymWrapper(env, **kwargs)
    return wrapped.set_info_dict_reader(ShieldInfoReader(env.action_space))


def executed_action(td: TensorDictBase) -> TensorDictBase:
    """Replace ``td["action"]`` with ``td["next", "shield", "executed_action"]`` where the shield intervened."""
    shield = td.get(("next", "shield"))
    intervened = shield.get("intervened")
    action = td.get("action")
    executed = shield.get("executed_action").to(action.dtype)
    mask = intervened.reshape(*intervened.shape, *([1] * (action.dim() - intervened.dim())))
    td.set("action", torch.where(mask, executed, action))
    return td


def policy_sampler(actor: Any, observation_space: gym.Space) -> Callable:
    """Candidates from a TorchRL ``ProbabilisticActor``: ``n`` draws of ``actor.get_dist(td)`` per row, in env units.

    The shield hands the sampler flat observations; the actor reads them from a tensordict in the
    form ``GymWrapper`` gives them: ``"observation"`` for a Box, one entry per part of a ``Dict``
    space (a Discrete part as its index). TorchRL distributions take no generator, so each call
    seeds torch's global generator from the shield's inside ``torch.random.fork_rng``: reproducible,
    and the caller's random stream is left as it was.
    """
    get_dist = getattr(actor, "get_dist", None)
    if not callable(get_dist):
        raise TypeError(
            f"actor must be a TorchRL ProbabilisticActor (with get_dist), got {type(actor).__name__}; for another "
            "policy, attach your own sampler with attach_policy(sample) on the ShieldWrapper"
        )
    if isinstance(observation_space, gym.spaces.Tuple):
        raise TypeError(
            f"observation_space must be a Box or a Dict space for policy_sampler, got {observation_space}; "
            "for a Tuple space, attach your own sampler with attach_policy(sample) on the ShieldWrapper"
        )
    unflatten = unflatten_batch(observation_space)

    def sample(obs: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        m = obs.shape[0]
        parts = unflatten(np.asarray(obs, dtype=np.float32))
        fields = parts if isinstance(parts, dict) else {"observation": parts}
        td = TensorDict({key: torch.as_tensor(value) for key, value in fields.items()}, batch_size=[m])
        seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if generator is not None else None
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            drawn = get_dist(td).sample((n,))  # (n, m, act_dim)
        return drawn.transpose(0, 1).reshape(m, n, -1).to(torch.float32)

    return sample


def attach(env: GymWrapper, actor: Any) -> ShieldWrapper:
    """Draw the shield's candidates from ``actor`` (``policy_sampler``); ``env`` is a ``ShieldedGymEnv``.
    Returns the shield."""
    shield = find_shield(getattr(env, "_env", env))
    if shield is None:
        raise TypeError(f"env must be a ShieldedGymEnv around a shielded env, got {type(env).__name__}")
    shield.attach_policy(policy_sampler(actor, shield.observation_space))
    return shield
