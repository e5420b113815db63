"""On-policy building blocks: a Gaussian policy, rollout storage with GAE, conjugate gradient.

- ``GaussianPolicy``: an MLP mean and a state-independent log-std (Schulman et al. 2015's TRPO
  policy), with log-probabilities, KL divergences and a candidate sampler for shields.
- ``RolloutBuffer``: one epoch of on-policy transitions; ``finish_path`` computes GAE(γ, λ)
  advantages and reward-to-go targets per trajectory, bootstrapping cut trajectories.
- ``discounted_cumsum``: y_t = Σ_k (γλ)^k x_{t+k}.
- ``kl_divergence``: mean KL(π_old ‖ π) of diagonal Gaussians, differentiable in π.
- ``conjugate_gradient``: solve F x = g with Fisher-vector products only.
- ``flat_parameters`` / ``set_flat_parameters`` / ``flat_grad``: the flat view TRPO steps in.

Used by ``trpo_lagrangian``; nothing here knows about costs or shields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from safeshield.core.networks import mlp

__all__ = [
    "GaussianPolicy",
    "RolloutBuffer",
    "discounted_cumsum",
    "kl_divergence",
    "conjugate_gradient",
    "flat_parameters",
    "set_flat_parameters",
    "flat_grad",
]


class GaussianPolicy(nn.Module):
    """π(a|s) = N(μ_θ(s), diag(exp(2 log σ))): a tanh MLP mean and a learned, state-free log σ."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], init_log_std: float):
        super().__init__()
        self.mean = mlp(obs_dim, act_dim, hidden, activation=nn.Tanh)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mean(obs), self.log_std.exp())

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.distribution(obs).log_prob(actions).sum(-1)

    def sample(self, obs: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(batch, n, act_dim)`` draws of π(·|s) for each row of ``obs``."""
        mean = self.mean(obs).unsqueeze(1)
        noise = torch.randn((obs.shape[0], n, mean.shape[-1]), generator=generator, dtype=mean.dtype)
        return mean + noise * self.log_std.exp()


def kl_divergence(
    old_mean: torch.Tensor, old_log_std: torch.Tensor, policy: GaussianPolicy, obs: torch.Tensor
) -> torch.Tensor:
    """Mean over states of KL(π_old(·|s) ‖ π(·|s)) for diagonal Gaussians (differentiable in π)."""
    mean, log_std = policy.mean(obs), policy.log_std
    var_old, var = (2 * old_log_std).exp(), (2 * log_std).exp()
    kl = log_std - old_log_std + (var_old + (old_mean - mean) ** 2) / (2 * var) - 0.5
    return kl.sum(-1).mean()


def discounted_cumsum(x: np.ndarray, discount: float) -> np.ndarray:
    """``y_t = Σ_k discount^k x_{t+k}`` along a 1-D array."""
    out = np.zeros_like(x, dtype=np.float64)
    running = 0.0
    for t in range(len(x) - 1, -1, -1):
        running = x[t] + discount * running
        out[t] = running
    return out


class RolloutBuffer:
    """One epoch of on-policy experience, with GAE computed per finished trajectory."""

    def __init__(self, size: int, obs_dim: int, act_dim: int, gamma: float, lam: float):
        self.obs = np.zeros((size, obs_dim), dtype=np.float32)
        self.action = np.zeros((size, act_dim), dtype=np.float32)
        self.reward = np.zeros(size, dtype=np.float32)
        self.value = np.zeros(size, dtype=np.float32)
        self.advantage = np.zeros(size, dtype=np.float32)
        self.ret = np.zeros(size, dtype=np.float32)
        self.gamma, self.lam, self.size = gamma, lam, size
        self.ptr = self.path_start = 0

    @property
    def full(self) -> bool:
        return self.ptr == self.size

    def add(self, obs, action, reward: float, value: float) -> None:
        if self.full:
            raise RuntimeError("rollout buffer is full; call get() before adding more")
        self.obs[self.ptr], self.action[self.ptr] = obs, action
        self.reward[self.ptr], self.value[self.ptr] = reward, value
        self.ptr += 1

    def finish_path(self, last_value: float = 0.0) -> None:
        """Close the current trajectory: 0 after a termination, V(s_T) when it was cut short."""
        path = slice(self.path_start, self.ptr)
        rewards = np.append(self.reward[path], last_value)
        values = np.append(self.value[path], last_value)
        deltas = rewards[:-1] + self.gamma * values[1:] - values[:-1]
        self.advantage[path] = discounted_cumsum(deltas, self.gamma * self.lam)
        self.ret[path] = discounted_cumsum(rewards, self.gamma)[:-1]
        self.path_start = self.ptr

    def get(self) -> dict[str, torch.Tensor]:
        """Everything stored (every path must be finished), as tensors; empties the buffer."""
        if self.path_start != self.ptr:
            raise RuntimeError("finish_path() the current trajectory before get()")
        n = self.ptr
        self.ptr = self.path_start = 0
        return {
            "obs": torch.from_numpy(self.obs[:n].copy()),
            "action": torch.from_numpy(self.action[:n].copy()),
            "advantage": torch.from_numpy(self.advantage[:n].copy()),
            "ret": torch.from_numpy(self.ret[:n].copy()),
        }


def flat_parameters(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def set_flat_parameters(module: nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def flat_grad(output: torch.Tensor, module: nn.Module, **kwargs) -> torch.Tensor:
    grads = torch.autograd.grad(output, list(module.parameters()), **kwargs)
    return torch.cat([g.reshape(-1) for g in grads])


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, tol: float = 1e-10
) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``x -> A x``."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        ap = matvec(p)
        step = rr / (p @ ap)
        x += step * p
        r -= step * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x
