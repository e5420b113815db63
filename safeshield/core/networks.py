"""Small network builders shared by every shield and agent.

- ``mlp``: a plain multi-layer perceptron.
- ``StateActionNet``: an MLP over the concatenation ``[obs, action]`` (critics, risk models).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["mlp", "StateActionNet"]


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256),
    activation: type[nn.Module] = nn.ReLU,
    output_activation: type[nn.Module] | None = None,
) -> nn.Sequential:
    """Return ``Linear -> activation`` blocks for each hidden size, then a linear output layer."""
    if in_dim <= 0 or out_dim <= 0:
        raise ValueError(f"mlp needs positive in_dim and out_dim, got in_dim={in_dim}, out_dim={out_dim}")
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [nn.Linear(last, int(width)), activation()]
        last = int(width)
    layers.append(nn.Linear(last, out_dim))
    if output_activation is not None:
        layers.append(output_activation())
    return nn.Sequential(*layers)


class StateActionNet(nn.Module):
    """``f(obs, action) -> (batch,)``: an MLP on ``[obs, action]`` with one scalar output per row."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, 1, hidden)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)
