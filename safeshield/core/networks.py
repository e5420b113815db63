"""Small network builders shared by every shield and agent.

- ``mlp``: a plain multi-layer perceptron.
- ``StateActionNet``: an MLP over the concatenation ``[obs, action]`` (critics, risk models).
- ``ActionHeadsNet``: an MLP over ``obs`` with one output per action of a ``Discrete`` space, so
  one forward pass scores every action (critics of discrete-action shields).
- ``CriticEnsemble``: ``n`` independent critics of either shape, evaluated in one batched call.
- ``InputScaler``, ``RunningMoments``: optional standardisation of both nets' observation inputs by
  the statistics of every stored observation, refit without changing the network's function.
- ``adam``: Adam with torch's fused kernel where it exists (one kernel for all parameters).
- ``polyak``: a target network's soft update in one fused call.
- ``start_optimistic``, ``rescale_output``: a critic's output layer set to a small initial risk, and
  shifted when the risk's upper bound changes (a shield that starts counting failure steps).

Why the last two: a shield's gradient step on a 2 x 256 critic at batch 256 costs a few ms on
one CPU thread, and the per-parameter Python loops of the default Adam and of a hand-written
soft update are a tenth of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "mlp",
    "RunningMoments",
    "InputScaler",
    "StateActionNet",
    "ActionHeadsNet",
    "CriticEnsemble",
    "one_hot_index",
    "to_device",
    "adam",
    "polyak",
    "output_layer",
    "start_optimistic",
    "rescale_output",
]

INITIAL_LOGIT = -4.6  # sigmoid(-4.6) ≈ 0.01: a fresh critic's risk is about 1 % of its bound (start_optimistic)


def adam(parameters, lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam`` with ``fused=True`` (CPU and CUDA since torch 2.4), else the default
    (measured: ~10-13 % off a CPU critic or SAC update; the agents use it too)."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(parameters, lr=lr)


@torch.no_grad()
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau source`` for every parameter, in one foreach call."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


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


class RunningMoments:
    """Mean and variance of every row ever added (Chan et al.'s parallel update, float64)."""

    STD_FLOOR = 1e-3  # below it a feature has not varied yet: it keeps its raw units

    def __init__(self, dim: int):
        self.count = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)  # sum of squared deviations from the mean

    def add(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        rows = np.asarray(rows, dtype=np.float64)
        n, mean = len(rows), rows.mean(axis=0)
        delta, total = mean - self.mean, self.count + n
        self.m2 += ((rows - mean) ** 2).sum(axis=0) + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    def standardiser(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, 1 / std)`` as float32 tensors; 1 where std < ``STD_FLOOR``.

        A feature that has not varied has no scale to learn from: amplifying it by 1 / std would
        turn the first variation the shield meets after a transfer into an input thousands of
        units wide, so it stays in raw units until it varies.
        """
        std = np.sqrt(self.m2 / max(self.count, 1))
        inv_std = np.where(std < self.STD_FLOOR, 1.0, 1.0 / np.maximum(std, self.STD_FLOOR))
        return torch.as_tensor(self.mean, dtype=torch.float32), torch.as_tensor(inv_std, dtype=torch.float32)

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    def load_state(self, state: dict[str, Any]) -> None:
        try:
            mean, m2 = np.asarray(state["mean"], dtype=np.float64), np.asarray(state["m2"], dtype=np.float64)
            count = state["count"]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"observation moments must be a mapping with 'count', 'mean' and 'm2', got {state!r:.200}"
            ) from error
        if (
            mean.shape != self.mean.shape
            or m2.shape != self.m2.shape
            or isinstance(count, bool)
            or not isinstance(count, int)
            or count < 0
            or not (np.isfinite(mean).all() and np.isfinite(m2).all() and (m2 >= 0).all())
        ):
            raise ValueError(
                f"observation moments must hold a count >= 0 and finite mean and m2 >= 0 of shape {self.mean.shape}, "
                f"got count={count!r}, shapes {mean.shape} and {m2.shape}"
            )
        self.count, self.mean, self.m2 = count, mean, m2


class InputScaler(nn.Module):
    """``obs -> (obs - shift) * scale``: observations standardised before a network's first layer.

    Raw observations mix units (joint velocities in tens of rad/s beside a base tilt in hundredths),
    and a small network trained by SGD on them learns the small features slowly. ``refit`` moves
    the standardisation to new statistics and rewrites the first layer so that the network's
    function is unchanged: only the parametrisation SGD works in changes, never a decision.

    Standardised values are clipped to ``±CLIP`` standard deviations (SB3's ``VecNormalize``
    default): a state far outside everything stored, as after a transfer, reaches the network
    as an extreme but bounded input instead of one that swamps every other feature. A refit
    preserves the function for inputs inside that range under both standardisations.
    """

    CLIP = 10.0

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp((obs - self.shift) * self.scale, -self.CLIP, self.CLIP)

    @torch.no_grad()
    def refit(self, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor) -> None:
        """Standardise with ``(mean, inv_std)`` from now on; the first layer absorbs the change.

        ``weight`` is the first layer's weight laid out ``(..., in, out)`` (``linear.weight.T``, or a
        stacked ensemble's ``(n, in, out)``), whose first ``dim`` inputs are the scaled observations,
        and ``bias`` its bias: b += (scale * (mean - shift)) W_obs, W_obs *= scale / inv_std, in place.
        """
        mean, inv_std = mean.to(self.shift), inv_std.to(self.shift)  # the statistics come from the CPU buffer
        obs_weight = weight[..., : self.shift.shape[0], :]
        bias += ((self.scale * (mean - self.shift)) @ obs_weight).reshape(bias.shape)
        obs_weight *= (self.scale / inv_std).unsqueeze(-1)
        self.shift.copy_(mean)
        self.scale.copy_(inv_std)


class StateActionNet(nn.Module):
    """``f(obs, action) -> (batch,)``: an MLP on ``[obs, action]`` with one scalar output per row.

    ``forward_numpy`` evaluates the same function on small numpy batches without torch's
    dispatch, in buffers allocated once per batch size: a shield scores one proposal per env per
    step, and below about ``NUMPY_MAX_ROWS`` rows the module machinery costs more than the
    arithmetic (measured on one thread, 2 x 256 critic: numpy 3x faster at 1-4 rows, on a par
    at 50-64, torch ahead from 128; ``benchmarks/overhead.py`` times both in the shield).
    ``forward_single`` is the one-pair case, as a float.
    """

    NUMPY_MAX_ROWS = 32

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), *, scale_inputs: bool = False):
        super().__init__()
        self.inputs = InputScaler(obs_dim) if scale_inputs else None
        self.net = mlp(obs_dim + act_dim, 1, hidden)
        self._linears = [layer for layer in self.net if isinstance(layer, nn.Linear)]
        self._numpy_layers: list[tuple[np.ndarray, np.ndarray]] = []
        self._numpy_pointers: list[int] = []
        self._numpy_buffers: dict[int, list[np.ndarray]] = {}  # rows -> [input, hidden..., output]

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if self.inputs is not None:
            obs = self.inputs(obs)
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)

    def refit_inputs(self, mean: torch.Tensor, inv_std: torch.Tensor) -> None:
        """``InputScaler.refit`` on the first layer (a no-op without ``scale_inputs``)."""
        if self.inputs is not None:
            first = self.net[0]
            self.inputs.refit(first.weight.T, first.bias, mean, inv_std)

    def forward_single(self, obs: np.ndarray, action: np.ndarray) -> float:
        """``forward`` for one flat float32 ``(obs, action)`` pair, in numpy (CPU weights only)."""
        return float(self._forward_buffers(obs.reshape(1, -1), action.reshape(1, -1))[0])

    def forward_numpy(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """``forward`` for float32 ``(rows, obs_dim)``, ``(rows, act_dim)`` numpy batches (CPU weights
        only): float32 ``(rows,)``, equal to the torch forward to float32 rounding."""
        return self._forward_buffers(obs, action).copy()

    def _forward_buffers(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The numpy forward into this batch size's preallocated buffers; returns a view of the output."""
        layers = self._layers_as_numpy()
        rows = obs.shape[0]
        buffers = self._numpy_buffers.get(rows)
        if buffers is None:
            widths = [layers[0][0].shape[1]] + [weight.shape[0] for weight, _ in layers]
            buffers = self._numpy_buffers[rows] = [np.empty((rows, width), dtype=np.float32) for width in widths]
        x = buffers[0]
        split = obs.shape[1]
        x[:, :split] = obs
        if self.inputs is not None:
            scaled = x[:, :split]
            scaled -= self.inputs.shift.numpy()
            scaled *= self.inputs.scale.numpy()
            np.clip(scaled, -InputScaler.CLIP, InputScaler.CLIP, out=scaled)
        x[:, split:] = action
        last = len(layers) - 1
        for index, (weight, bias) in enumerate(layers):
            out = buffers[index + 1]
            np.matmul(x, weight.T, out=out)
            out += bias
            if index < last:
                np.maximum(out, 0.0, out=out)
            x = out
        return x[:, 0]

    def _layers_as_numpy(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Numpy views of the live weights (optimiser steps and load_state_dict write in place)."""
        pointers = [layer.weight.data_ptr() for layer in self._linears]
        if pointers != self._numpy_pointers:
            self._numpy_layers = [
                (layer.weight.detach().numpy(), layer.bias.detach().numpy()) for layer in self._linears
            ]
            self._numpy_pointers = pointers
        return self._numpy_layers


def to_device(module: nn.Module, device: torch.device | str) -> nn.Module:
    """``module.to(device)``, except for a module built on the ``meta`` device, which stays there.

    ``core.checkpoint.restore`` builds every model and agent once on ``meta`` (no memory) to check
    a checkpoint's tensor shapes before the real build; a meta module cannot be copied to a device.
    """
    if any(p.is_meta for p in module.parameters()):
        return module
    return module.to(device)


def one_hot_index(actions: torch.Tensor) -> torch.Tensor:
    """``(batch, 1)`` int64 indices of one-hot ``(batch, n)`` action rows (as the buffer stores them)."""
    return actions.argmax(dim=-1, keepdim=True)


class ActionHeadsNet(nn.Module):
    """``f(obs) -> (batch, n)``: one output per action of a Discrete space (a DQN-style head).

    ``forward(obs, actions)`` takes one-hot ``actions`` (what the buffer stores for a Discrete
    space, ``gymnasium.spaces.flatten``'s encoding) and returns the chosen action's output, so
    a method's learning code is the same for Box and Discrete actions; ``all_actions(obs)``
    scores every action in one pass, which is what the shield's exact mask needs. The output
    layer is ``net[-1]``, as in ``StateActionNet``.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (256, 256), *, scale_inputs: bool = False):
        super().__init__()
        self.inputs = InputScaler(obs_dim) if scale_inputs else None
        self.net = mlp(obs_dim, n_actions, hidden)

    def all_actions(self, obs: torch.Tensor) -> torch.Tensor:
        return self._heads(obs)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self._heads(obs).gather(-1, one_hot_index(action)).squeeze(-1)

    def _heads(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs if self.inputs is None else self.inputs(obs))

    refit_inputs = StateActionNet.refit_inputs


class CriticEnsemble(nn.Module):
    """``n`` independent MLP critics on ``[obs, action]``, evaluated in one batched call.

    Weights are stacked ``(n, in, out)`` so the ensemble costs one ``baddbmm`` per layer, not a
    Python loop; ``forward`` returns logits of shape ``(n, batch)``. Each member is initialised
    like ``nn.Linear``, independently.
    """

    def __init__(
        self, in_dim: int, n: int, hidden: tuple[int, ...], n_actions: int | None = None, *, scaled_obs: int = 0
    ):
        super().__init__()
        # n_actions: a Discrete-like action space; the input is then obs only, with one output per action
        self.n_actions = n_actions
        # scaled_obs: how many leading inputs (the observation) are standardised (normalize_obs)
        self.inputs = InputScaler(scaled_obs) if scaled_obs else None
        dims = [in_dim, *map(int, hidden), 1 if n_actions is None else int(n_actions)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)
            self.weights.append(nn.Parameter(torch.empty(n, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, d_out).uniform_(-bound, bound)))

    @property
    def size(self) -> int:
        return self.weights[0].shape[0]

    def _layers(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).expand(self.size, -1, -1)
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if index < last:
                x = torch.relu(x)
        return x

    def all_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """``(n, batch, n_actions)`` logits of every action (Discrete-like spaces), one pass."""
        return self._layers(self._scaled(obs))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        obs = self._scaled(obs)
        if self.n_actions is not None:  # one-hot actions select their head
            index = one_hot_index(actions).unsqueeze(0).expand(self.size, -1, -1)
            return self._layers(obs).gather(-1, index).squeeze(-1)
        return self._layers(torch.cat([obs, actions], dim=-1)).squeeze(-1)

    def _scaled(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.inputs is None else self.inputs(obs)

    def refit_inputs(self, mean: torch.Tensor, inv_std: torch.Tensor) -> None:
        """``InputScaler.refit`` on every member's first layer at once (a no-op without ``scaled_obs``)."""
        if self.inputs is not None:
            self.inputs.refit(self.weights[0], self.biases[0], mean, inv_std)


def output_layer(critic: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` of the output layer: a ``CriticEnsemble``'s (every member) or ``net[-1]``'s."""
    if isinstance(critic, CriticEnsemble):
        return critic.weights[-1], critic.biases[-1]
    return critic.net[-1].weight, critic.net[-1].bias


def start_optimistic(critic: nn.Module) -> None:
    """Scale the critic's output layer down and set its bias to ``INITIAL_LOGIT``: risk ≈ 0.01 everywhere.

    An untrained critic that starts there, rather than at sigmoid(0) = 0.5, lets the agent act and
    learns from what happens, instead of rejecting every action and executing the argmin of random
    weights. ``critic``: a ``CriticEnsemble`` (every member) or a network whose output layer is ``net[-1]``.
    """
    weight, bias = output_layer(critic)
    with torch.no_grad():
        weight.mul_(0.1)
        bias.fill_(INITIAL_LOGIT)


def rescale_output(critic: nn.Module, old_scale: float, new_scale: float) -> None:
    """Shift the output bias by log(old / new) so that ``scale * sigmoid(logit)`` keeps its small risks
    (sigmoid(z) ≈ e^z there) when the risk's upper bound changes from ``old_scale`` to ``new_scale``."""
    with torch.no_grad():
        output_layer(critic)[1].add_(math.log(old_scale / new_scale))
