"""The lean per-step path: the numpy forward equals the torch forward to float32 rounding."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.core.networks import StateActionNet
from safeshield.shields.sqrl import SQRL, SQRLConfig


def model(obs_dim: int, act_dim: int, seed: int, hidden=(32, 16)) -> SQRL:
    obs = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), dtype=np.float32)
    act = gym.spaces.Box(-1.0, 1.0, (act_dim,), dtype=np.float32)
    m = SQRL(obs, act, SQRLConfig(hidden=hidden, batch_size=16, learning_starts=0), seed=seed)
    with torch.no_grad():  # away from the optimistic initial output, so risks spread over (0, gamma)
        m.critic.net[-1].reset_parameters()
    return m


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 2 * StateActionNet.NUMPY_MAX_ROWS),  # both sides of the numpy/torch switch
    obs_dim=st.integers(1, 12),
    act_dim=st.integers(1, 4),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
)
def test_numpy_risk_equals_torch_risk(seed, rows, obs_dim, act_dim, scale):
    m = model(obs_dim, act_dim, seed)
    rng = np.random.default_rng(seed)
    obs = (rng.normal(size=(rows, obs_dim)) * scale).astype(np.float32)
    act = rng.uniform(-1, 1, (rows, act_dim)).astype(np.float32)
    with torch.inference_mode():
        expected = m.risk(torch.from_numpy(obs), torch.from_numpy(act)).numpy()
    lean = m.risk_numpy(obs, act)
    assert lean.dtype == np.float32 and lean.shape == (rows,)
    np.testing.assert_allclose(lean, expected, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(
        m.critic.forward_numpy(obs, act),
        m.critic(torch.from_numpy(obs), torch.from_numpy(act)).detach().numpy(),
        rtol=2e-5,
        atol=2e-5 * scale,
    )
    single = m.proposal_risk(obs[0], act[0])
    assert single == pytest.approx(float(expected[0]), rel=2e-5, abs=1e-7)


def test_numpy_path_follows_the_weights_as_they_learn():
    m = model(3, 2, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(64):
        m.buffer.add(
            rng.normal(size=3).astype(np.float32),
            rng.uniform(-1, 1, 2).astype(np.float32),
            rng.normal(size=3).astype(np.float32),
            float(rng.random() < 0.3),
            False,
        )
    obs, act = rng.normal(size=(4, 3)).astype(np.float32), rng.uniform(-1, 1, (4, 2)).astype(np.float32)
    before = m.risk_numpy(obs, act)
    m.learn(20)
    after = m.risk_numpy(obs, act)
    with torch.inference_mode():
        expected = m.risk(torch.from_numpy(obs), torch.from_numpy(act)).numpy()
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expected, rtol=2e-5, atol=1e-7)


def test_numpy_path_returns_fresh_arrays_and_nan_stays_nan():
    m = model(2, 1, seed=1)
    obs, act = np.zeros((3, 2), np.float32), np.zeros((3, 1), np.float32)
    first = m.risk_numpy(obs, act)
    second = m.risk_numpy(obs + 1, act)
    assert not np.shares_memory(first, second)  # the preallocated buffers never leak out
    obs[1, 0] = np.nan
    risk = m.risk_numpy(obs, act)
    assert np.isnan(risk[1]) and np.isfinite(risk[[0, 2]]).all()


def test_extreme_logits_give_the_torch_limits():
    m = model(1, 1, seed=2)
    with torch.no_grad():
        m.critic.net[-1].weight.zero_()
        m.critic.net[-1].bias.fill_(-1e4)
    assert m.risk_numpy(np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32)).tolist() == [0.0, 0.0]
    with torch.no_grad():
        m.critic.net[-1].bias.fill_(1e4)
    assert m.risk_numpy(np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32)) == pytest.approx(
        [m.risk_bound, m.risk_bound]
    )  # the upper bound of the risk
