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

TorchRL policies are tensordict modules of any shape, so no policy sampler is attached
automatically; the shield samples perturbations of the proposal unless you attach one with
``env.attach_policy(sample)`` on the ``ShieldWrapper``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from tensordict import TensorDictBase
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import GymWrapper
from torchrl.envs.gym_like import BaseInfoDictReader

from safeshield.wrappers.shield import ShieldWrapper, find_shield

__all__ = ["ShieldInfoReader", "ShieldedGymEnv", "executed_action"]

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
