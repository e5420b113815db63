"""Conditional RealNVP + tanh bijector: the change-of-variables guarantees SAFER's Eq. 2 relies on.

Flow properties: invertibility, log-det = autograd Jacobian, the density integrates to 1,
and the closed-form KL matches ``torch.distributions``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.shields.safer.flow import (
    BoundedFlow,
    ConditionalRealNVP,
    TanhBijector,
    diagonal_gaussian_kl,
    standard_normal_log_prob,
)


def _randomised(module: torch.nn.Module, seed: int, scale: float = 0.5) -> torch.nn.Module:
    """Give every weight (also the zero-initialised output layers) a random value, in float64."""
    generator = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(scale * torch.randn(param.shape, generator=generator, dtype=torch.float64))
    return module


def _flow(dim: int, cond_dim: int, seed: int, scale: float = 0.5) -> BoundedFlow:
    low = -1.0 - np.arange(dim)
    high = 2.0 + 0.5 * np.arange(dim)
    return _randomised(BoundedFlow(dim, cond_dim, low, high, n_couplings=3, hidden=(16, 16)), seed, scale)


dims = st.integers(1, 4)
seeds = st.integers(0, 10_000)


@settings(max_examples=25, deadline=None)
@given(dim=dims, cond_dim=st.integers(0, 3), seed=seeds)
def test_realnvp_is_invertible_and_log_dets_are_opposite(dim, cond_dim, seed):
    """f(f^-1(y)) = y, f^-1(f(z)) = z, and log|det J_f| = -log|det J_f^-1|."""
    flow = _randomised(ConditionalRealNVP(dim, cond_dim, 3, (16,)), seed)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(32, dim, generator=generator, dtype=torch.float64)
    cond = torch.randn(32, cond_dim, generator=generator, dtype=torch.float64)
    y, log_det = flow(z, cond)
    z_back, log_det_inverse = flow.inverse(y, cond)
    torch.testing.assert_close(z_back, z, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(log_det_inverse, -log_det, atol=1e-9, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(dim=dims, seed=seeds)
def test_bounded_flow_maps_into_the_box_and_back(dim, seed):
    """Every latent, however large, executes an action inside [low, high] (tanh may round to a bound)."""
    flow = _flow(dim, 2, seed)
    generator = torch.Generator().manual_seed(seed)
    z = 3.0 * torch.randn(64, dim, generator=generator, dtype=torch.float64)
    cond = torch.randn(64, 2, generator=generator, dtype=torch.float64)
    a, _ = flow(z, cond)
    low, high = flow.center - flow.half_range, flow.center + flow.half_range
    assert torch.all(a >= low) and torch.all(a <= high)
    inside = ((a - flow.center) / flow.half_range).abs().max(-1).values < flow.boundary
    z_back, _ = flow.inverse(a, cond)
    torch.testing.assert_close(z_back[inside], z[inside], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_log_det_equals_the_autograd_jacobian(dim):
    """The inverse log-det of the whole bounded flow equals log|det| of autograd's Jacobian."""
    flow = _flow(dim, 2, seed=dim)
    cond = torch.tensor([0.3, -0.7], dtype=torch.float64)
    for point in torch.linspace(-0.8, 0.8, 5):
        a = flow.center + flow.half_range * torch.full((dim,), float(point), dtype=torch.float64) * torch.linspace(
            1, 0.5, dim, dtype=torch.float64
        )
        jacobian = torch.autograd.functional.jacobian(lambda x: flow.inverse(x[None], cond[None])[0][0], a)
        _, log_det = flow.inverse(a[None], cond[None])
        assert float(log_det[0]) == pytest.approx(float(torch.linalg.slogdet(jacobian)[1]), abs=1e-8)


def test_log_prob_is_the_change_of_variables_formula():
    """Eq. 2: log p(a) = log N(f^-1(a)) + log|det d f^-1 / d a|."""
    flow = _flow(2, 3, seed=7)
    generator = torch.Generator().manual_seed(0)
    cond = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    a, _ = flow(torch.randn(10, 2, generator=generator, dtype=torch.float64), cond)
    z, log_det = flow.inverse(a, cond)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) + log_det
    torch.testing.assert_close(flow.log_prob(a, cond), expected)


def _mass_inside_boundary(flow: BoundedFlow, cond: torch.Tensor, n: int = 400_000) -> float:
    """P(a in the inner box |x| < boundary) under the flow, by sampling z ~ N(0, I) forward.

    ``inverse`` clamps actions beyond +-boundary (0.999 of the half-range) onto it, so the density
    is exact only inside; its integral there must equal this probability (1 minus the tails).
    """
    generator = torch.Generator().manual_seed(123)
    z = torch.randn(n, flow.dim, generator=generator, dtype=torch.float64)
    a, _ = flow(z, cond.expand(n, -1))
    return float((((a - flow.center) / flow.half_range).abs().max(-1).values < flow.boundary).double().mean())


def test_density_integrates_to_one_in_one_dimension():
    """d = 1: quadrature of p(a | cond) over the box equals the probability mass there."""
    flow = _flow(1, 2, seed=3)
    cond = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    x = torch.linspace(-flow.boundary, flow.boundary, 400_001, dtype=torch.float64)
    a = (flow.center + flow.half_range * x)[:, None]
    density = torch.exp(flow.log_prob(a, cond.expand(x.numel(), 2)))
    mass = float(torch.trapezoid(density, a[:, 0]))
    expected = _mass_inside_boundary(flow, cond)
    assert expected > 0.3  # the test means something: most mass is inside
    assert mass == pytest.approx(expected, abs=5e-3)


def test_density_integrates_to_one_in_two_dimensions():
    """d = 2: grid quadrature over the box equals the probability mass there."""
    flow = _flow(2, 1, seed=11, scale=0.3)
    cond = torch.full((1, 1), 0.4, dtype=torch.float64)
    x = torch.linspace(-flow.boundary, flow.boundary, 1201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(x, x, indexing="ij"), dim=-1).reshape(-1, 2)
    a = flow.center + flow.half_range * grid
    density = torch.exp(flow.log_prob(a, cond.expand(a.shape[0], 1))).reshape(x.numel(), x.numel())
    a0, a1 = flow.center[0] + flow.half_range[0] * x, flow.center[1] + flow.half_range[1] * x
    mass = float(torch.trapezoid(torch.trapezoid(density, a1, dim=1), a0))
    expected = _mass_inside_boundary(flow, cond)
    assert expected > 0.8
    assert mass == pytest.approx(expected, abs=1e-2)


def test_untrained_flow_density_integrates_to_one():
    """With zero couplings the density is a squashed N(0, 1): nearly all mass lies inside the box."""
    flow = BoundedFlow(1, 1, [-2.0], [3.0], hidden=(8,)).double()
    x = torch.linspace(-flow.boundary, flow.boundary, 200_001, dtype=torch.float64)
    a = (flow.center + flow.half_range * x)[:, None]
    mass = float(torch.trapezoid(torch.exp(flow.log_prob(a, torch.zeros(x.numel(), 1, dtype=torch.float64))), a[:, 0]))
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_tanh_bijector_log_det_is_stable_when_saturated():
    y = torch.tensor([[-30.0, 0.0, 30.0]], dtype=torch.float64)
    x, log_det = TanhBijector.forward(y)
    assert torch.isfinite(log_det).all()
    expected = torch.log(1 - torch.tanh(torch.tensor([0.0], dtype=torch.float64)) ** 2).sum() + 2 * (math.log(4) - 60)
    assert float(log_det[0]) == pytest.approx(float(expected), rel=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    mean=st.lists(st.floats(-5, 5), min_size=1, max_size=8),
    log_std=st.floats(-3, 2),
)
def test_kl_matches_torch_distributions(mean, log_std):
    """Closed-form KL(N(mu, sigma^2) || N(0, I)) equals torch.distributions and is >= 0."""
    mean_t = torch.tensor(mean, dtype=torch.float64)
    log_std_t = torch.full_like(mean_t, log_std)
    ours = diagonal_gaussian_kl(mean_t, log_std_t)
    q = torch.distributions.Normal(mean_t, log_std_t.exp())
    p = torch.distributions.Normal(torch.zeros_like(mean_t), torch.ones_like(mean_t))
    assert float(ours) == pytest.approx(float(torch.distributions.kl_divergence(q, p).sum()), rel=1e-9, abs=1e-12)
    assert float(ours) >= 0


def test_kl_is_zero_only_at_the_prior():
    zero = diagonal_gaussian_kl(torch.zeros(8), torch.zeros(8))
    assert float(zero) == 0.0
    assert float(diagonal_gaussian_kl(torch.full((8,), 1e-2), torch.zeros(8))) > 0


def test_standard_normal_log_prob():
    z = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(standard_normal_log_prob(z), torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_untrained_flow_is_the_squashed_identity():
    """Zero-initialised couplings: a = c + h tanh(z), so an untrained prior is a plain squashing."""
    flow = BoundedFlow(2, 1, [-2.0, 0.0], [2.0, 1.0], hidden=(8,))
    z = torch.randn(4, 2)
    a, _ = flow(z, torch.zeros(4, 1))
    torch.testing.assert_close(a, flow.center + flow.half_range * torch.tanh(z))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="low and high"):
        BoundedFlow(2, 1, [-1.0], [1.0])
    with pytest.raises(ValueError, match="low < high"):
        BoundedFlow(1, 1, [1.0], [1.0])
    with pytest.raises(ValueError, match="boundary"):
        BoundedFlow(1, 1, [-1.0], [1.0], boundary=1.0)
    with pytest.raises(ValueError, match="dim"):
        ConditionalRealNVP(0, 1)
