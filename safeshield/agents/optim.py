"""Optimiser helpers shared by the reference agents.

- ``adam``: Adam, fused where this torch and device support it.
- ``optimizer_tensors`` / ``load_optimizer_state``: an optimiser's state as flat named tensors
  (what a safetensors checkpoint holds) and back.
"""

from __future__ import annotations

import torch

from safeshield.core.networks import adam

__all__ = ["adam", "load_optimizer_state", "optimizer_tensors"]


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """``{prefix}{param index}.{field}`` -> tensor for every tensor in the optimiser's state."""
    return {
        f"{prefix}{index}.{key}": value
        for index, state in optimizer.state_dict()["state"].items()
        for key, value in state.items()
    }


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Put back the state ``optimizer_tensors`` wrote under ``prefix`` (nothing if there is none)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix) :].split(".", 1)
            state.setdefault(int(index), {})[field] = value
    if state:
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
