"""Conditional normalising flows: a conditional RealNVP with a bounded (tanh + affine) output.

- ``ConditionalRealNVP``: affine coupling layers (Dinh et al. 2017) whose scale and shift nets
  see the unmasked coordinates and a conditioning vector; base N(0, I).
- ``TanhBijector``: y -> tanh(y) and its log-det, written to stay finite when tanh saturates.
- ``BoundedFlow``: RealNVP, then tanh, then the affine map of (-1, 1) onto a Box's [low, high],
  so every generated action lies inside the action space: ``forward(z, cond) -> (a, log_det)``,
  ``inverse(a, cond) -> (z, log_det_inverse)``, ``log_prob(a, cond)``.
- ``standard_normal_log_prob`` and ``diagonal_gaussian_kl`` (KL(N(mu, diag sigma^2) || N(0, I))).

Change of variables (SAFER Eq. 2): with z = f^{-1}(a; cond),

    log p(a | cond) = sum_i log N(z_i; 0, 1) + log |det d f^{-1}(a; cond) / d a|.

Each coupling with binary mask m computes y = m*x + (1-m)*(x*exp(s(m*x, cond)) + t(m*x, cond)),
log-det sum((1-m)*s). Masks alternate between even and odd coordinates, so with three layers
every coordinate is transformed at least once for any d >= 2 (for d = 1 every other layer is
the identity and the rest depend on the condition only). The log-scale is soft-clamped,
s = s_max * tanh(raw / s_max), and each layer's output layer starts at zero, so an untrained
flow is the identity map (before the tanh) and training starts from a stable point.

Why a tanh bijector: RealNVP is unbounded but env actions are bounded. Clipping
at execution would break f^{-1} at the bound (and with it the latent bound eta of SAFER's
Alg. 3); a final tanh keeps the map a bijection onto the open box. Data on the bound are moved
inside by ``BoundedFlow.inverse`` to +-``boundary`` (0.999 of the half-range, our choice:
atanh(0.999) = 3.8 keeps saturated actions from becoming latent outliers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from safeshield.core.networks import mlp

__all__ = [
    "ConditionalRealNVP",
    "TanhBijector",
    "BoundedFlow",
    "standard_normal_log_prob",
    "diagonal_gaussian_kl",
]

_LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``sum_i log N(z_i; 0, 1)`` over the last dimension."""
    return -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)


def diagonal_gaussian_kl(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, diag exp(log_std)^2) || N(0, I))`` per row: 0.5 sum(sigma^2 + mu^2 - 1 - log sigma^2)."""
    # expm1: sigma^2 - 1 - log sigma^2 without cancellation near sigma = 1 (it stays >= 0)
    return 0.5 * (torch.expm1(2.0 * log_std) - 2.0 * log_std + mean.pow(2)).sum(-1)


class _Coupling(nn.Module):
    """One affine coupling layer; the coordinates where ``mask`` is 1 pass unchanged."""

    def __init__(self, mask: torch.Tensor, cond_dim: int, hidden: Sequence[int], max_log_scale: float):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask)
        self.net = mlp(dim + cond_dim, 2 * dim, hidden)
        self.max_log_scale = max_log_scale
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, kept: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_scale, shift = self.net(torch.cat([kept, cond], dim=-1)).chunk(2, dim=-1)
        log_scale = self.max_log_scale * torch.tanh(raw_scale / self.max_log_scale)
        free = 1.0 - self.mask
        return log_scale * free, shift * free

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_scale, shift = self._scale_shift(x * self.mask, cond)
        return x * torch.exp(log_scale) + shift, log_scale.sum(-1)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_scale, shift = self._scale_shift(y * self.mask, cond)
        return (y - shift) * torch.exp(-log_scale), -log_scale.sum(-1)


class ConditionalRealNVP(nn.Module):
    """``y = f(z; cond)`` through ``n_couplings`` affine couplings with alternating masks."""

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        n_couplings: int = 3,
        hidden: Sequence[int] = (256, 256),
        max_log_scale: float = 3.0,
    ):
        super().__init__()
        if dim < 1 or cond_dim < 0 or n_couplings < 1:
            raise ValueError(f"need dim >= 1, cond_dim >= 0, n_couplings >= 1; got {dim}, {cond_dim}, {n_couplings}")
        if not max_log_scale > 0:
            raise ValueError(f"max_log_scale must be > 0, got {max_log_scale!r}")
        even = (torch.arange(dim) % 2 == 0).to(torch.get_default_dtype())
        masks = [even.clone() if k % 2 == 0 else 1.0 - even for k in range(n_couplings)]
        self.dim, self.cond_dim = dim, cond_dim
        self.layers = nn.ModuleList(_Coupling(m, cond_dim, hidden, max_log_scale) for m in masks)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log|det dy/dz|)``."""
        log_det = z.new_zeros(z.shape[:-1])
        for layer in self.layers:
            z, ld = layer(z, cond)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, y: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|det dz/dy|)``."""
        log_det = y.new_zeros(y.shape[:-1])
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y, cond)
            log_det = log_det + ld
        return y, log_det


class TanhBijector:
    """``x = tanh(y)``, ``log|dx/dy| = sum log(1 - tanh(y)^2) = sum 2 (log 2 - y - softplus(-2y))``."""

    @staticmethod
    def forward(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(y), (2.0 * (math.log(2.0) - y - F.softplus(-2.0 * y))).sum(-1)

    @staticmethod
    def inverse(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.atanh(x)
        return y, -(2.0 * (math.log(2.0) - y - F.softplus(-2.0 * y))).sum(-1)


class BoundedFlow(nn.Module):
    """``a = low + (high - low) / 2 * (tanh(RealNVP(z; cond)) + 1)``: a flow onto the open box (low, high).

    Example:
        >>> import torch
        >>> flow = BoundedFlow(2, cond_dim=3, low=[-1, -1], high=[1, 1], hidden=(16,))
        >>> a, _ = flow(torch.zeros(5, 2), torch.zeros(5, 3))
        >>> bool((a.abs() < 1).all())
        True
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        low: Sequence[float] | np.ndarray,
        high: Sequence[float] | np.ndarray,
        n_couplings: int = 3,
        hidden: Sequence[int] = (256, 256),
        max_log_scale: float = 3.0,
        boundary: float = 0.999,
    ):
        super().__init__()
        # checked in numpy: the tensors may live on the meta device (core.checkpoint.restore's shadow build)
        low_np, high_np = np.asarray(low, dtype=np.float64).reshape(-1), np.asarray(high, dtype=np.float64).reshape(-1)
        if low_np.size != dim or high_np.size != dim:
            raise ValueError(f"low and high must have {dim} entries, got {low_np.size} and {high_np.size}")
        if not (np.isfinite(low_np).all() and np.isfinite(high_np).all() and (high_np > low_np).all()):
            raise ValueError(f"low < high must be finite bounds, got low={low_np.tolist()}, high={high_np.tolist()}")
        low_t = torch.as_tensor(low_np, dtype=torch.get_default_dtype())
        high_t = torch.as_tensor(high_np, dtype=torch.get_default_dtype())
        if not 0.0 < boundary < 1.0:
            raise ValueError(f"boundary must be in (0, 1), got {boundary!r}")
        self.core = ConditionalRealNVP(dim, cond_dim, n_couplings, hidden, max_log_scale)
        self.register_buffer("center", (high_t + low_t) / 2)
        self.register_buffer("half_range", (high_t - low_t) / 2)
        self.boundary = boundary
        self.dim = dim

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, log|det da/dz|)``."""
        y, log_det = self.core(z, cond)
        x, tanh_log_det = TanhBijector.forward(y)
        return self.center + self.half_range * x, log_det + tanh_log_det + torch.log(self.half_range).sum()

    def inverse(self, a: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|det dz/da|)``; ``a`` on or past the bounds is first moved to +-``boundary``."""
        x = ((a - self.center) / self.half_range).clamp(-self.boundary, self.boundary)
        y, tanh_log_det = TanhBijector.inverse(x)
        z, log_det = self.core.inverse(y, cond)
        return z, log_det + tanh_log_det - torch.log(self.half_range).sum()

    def log_prob(self, a: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """SAFER Eq. 2: ``log N(f^{-1}(a); 0, I) + log|det d f^{-1} / d a|``."""
        z, log_det = self.inverse(a, cond)
        return standard_normal_log_prob(z) + log_det
