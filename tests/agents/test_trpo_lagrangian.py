"""TRPO-Lagrangian (CSC §4, App. A.1-A.2, A.6): GAE, the KL line search, the dual step's sign,
the cost advantage, the training loop with a CSC shield, checkpoints."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield
from safeshield.agents import TRPOLagrangian, TRPOLagrangianConfig
from safeshield.agents.policy_gradient import RolloutBuffer, discounted_cumsum, flat_parameters, kl_divergence

torch.set_num_threads(1)

OBS = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
SMALL = dict(hidden=(16,), steps_per_epoch=64, vf_iters=5)


def _agent(seed=0, critic=None, **options) -> TRPOLagrangian:
    return TRPOLagrangian(OBS, ACT, TRPOLagrangianConfig(**{**SMALL, **options}), cost_critic=critic, seed=seed)


# ---------------------------------------------------------------- advantages


def test_discounted_cumsum_matches_the_definition():
    x = np.random.default_rng(0).normal(size=7)
    expected = [sum(0.9**k * x[t + k] for k in range(7 - t)) for t in range(7)]
    assert np.allclose(discounted_cumsum(x, 0.9), expected)


def test_gae_with_lambda_one_is_return_minus_value_and_bootstraps_cut_paths():
    buffer = RolloutBuffer(5, 1, 1, gamma=0.9, lam=1.0)
    rewards, values = [1.0, 0.0, 2.0], [0.5, 0.2, 0.1]
    for r, v in zip(rewards, values):
        buffer.add([0.0], [0.0], r, v)
    buffer.finish_path(last_value=3.0)  # cut short: bootstrap with V(s_3)
    data = buffer.get()
    returns = discounted_cumsum(np.array(rewards + [3.0]), 0.9)[:-1]
    assert np.allclose(data["ret"].numpy(), returns, atol=1e-6)
    assert np.allclose(data["advantage"].numpy(), returns - np.array(values), atol=1e-6)


# ---------------------------------------------------------------- the line search


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), max_kl=st.sampled_from([1e-6, 1e-3, 0.01, 0.1]), check=st.booleans())
def test_accepted_step_keeps_mean_kl_within_delta_else_parameters_are_unchanged(seed, max_kl, check):
    """App. A.2: accept only if mean KL(π_old ‖ π_new) ≤ δ (within L = 20 shrinks), else φ ← φ_old."""
    agent = _agent(seed, max_kl=max_kl, check_improvement=check)
    gen = torch.Generator().manual_seed(seed)
    obs = torch.rand(64, 4, generator=gen) * 2 - 1
    actions = torch.rand(64, 2, generator=gen) * 4 - 2
    advantage = torch.randn(64, generator=gen)
    before = flat_parameters(agent.policy).clone()
    with torch.no_grad():
        old_mean, old_log_std = agent.policy.mean(obs), agent.policy.log_std.clone()
    stats = agent.trpo_step(obs, actions, advantage)
    with torch.no_grad():
        kl = float(kl_divergence(old_mean, old_log_std, agent.policy, obs))
    if stats["accepted"]:
        assert kl <= max_kl and stats["backtracks"] < 20
        assert not torch.equal(flat_parameters(agent.policy), before)
    else:
        assert torch.equal(flat_parameters(agent.policy), before)


def test_a_step_that_cannot_improve_is_rejected_and_changes_nothing():
    """Zero advantages: no surrogate gain is possible, so the improvement check rejects every shrink."""
    agent = _agent(0)
    before = flat_parameters(agent.policy).clone()
    stats = agent.trpo_step(torch.rand(32, 4), torch.rand(32, 2), torch.zeros(32))
    assert stats["accepted"] == 0.0 and torch.equal(flat_parameters(agent.policy), before)


def test_first_try_is_beta0_times_the_full_natural_step():
    """β_j = β0^(j+1) with β0 = 0.7: a generous δ accepts the first try, whose KL is ≈ 0.49 δ."""
    agent = _agent(0, max_kl=1e-4, check_improvement=False)
    obs, actions = torch.rand(64, 4) * 2 - 1, torch.rand(64, 2) * 4 - 2
    stats = agent.trpo_step(obs, actions, torch.randn(64))
    assert stats["accepted"] == 1.0 and stats["backtracks"] == 0.0
    assert 0.3e-4 < stats["kl"] < 0.6e-4  # quadratic model: KL ≈ β0² δ (damping lowers it a little)


# ---------------------------------------------------------------- the dual step


def _update_with(agent: TRPOLagrangian, v_hat: float) -> None:
    gen = torch.Generator().manual_seed(1)
    data = {
        "obs": torch.rand(32, 4, generator=gen),
        "action": torch.rand(32, 2, generator=gen),
        "advantage": torch.randn(32, generator=gen),
        "ret": torch.randn(32, generator=gen),
    }
    agent.update(data, v_hat=v_hat)


def constant_critic(obs, actions):
    return torch.full((obs.shape[0],), 0.25)  # exact in float32, so Â_C is exactly 0


def test_lambda_grows_when_failures_exceed_chi_standard_sign():
    """Eq. 9 with the standard sign: λ ← max(0, λ + η_λ (V̂_C + E[Â_C]/(1−γ) − χ)).

    The paper prints λ ← λ − η_λ(…) (Eq. 9 / Eq. 57), which would *lower* λ here,
    where the agent fails in every episode; this test pins the corrected sign.
    """
    agent = _agent(0, critic=constant_critic, chi=0.05)  # constant Q_C: Â_C = 0
    _update_with(agent, v_hat=1.0)
    assert agent.lam == pytest.approx(4e-2 * (1.0 - 0.05))
    _update_with(agent, v_hat=0.0)
    assert agent.lam == pytest.approx(4e-2 * (1.0 - 0.05) - 4e-2 * 0.05)


@settings(max_examples=30, deadline=None)
@given(v_hats=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8))
def test_lambda_is_never_negative(v_hats):
    agent = _agent(0, critic=constant_critic)
    for v_hat in v_hats:
        _update_with(agent, v_hat)
        assert agent.lam >= 0.0


def test_cost_advantage_is_q_minus_its_mean_under_pi_old():
    """Â_C(s, a) = Q_C(s, a) − E_{a'∼π_old} Q_C(s, a'): zero for a constant critic, and for a critic
    linear in the action it is the action's offset from π_old's mean (up to sampling noise)."""
    agent = _agent(0, critic=constant_critic)
    obs, actions = torch.rand(16, 4), torch.rand(16, 2)
    assert torch.allclose(agent.cost_advantage(obs, actions), torch.zeros(16))
    agent = _agent(0, critic=lambda o, a: a[:, 0], cost_samples=4000, init_log_std=-3.0)
    with torch.no_grad():
        mean = agent.policy.mean(obs)[:, 0]
    assert torch.allclose(agent.cost_advantage(obs, actions), actions[:, 0] - mean, atol=0.01)


# ---------------------------------------------------------------- acting, learning, checkpoints


def test_sampled_actions_stay_in_the_box():
    agent = _agent(0, init_log_std=1.0)
    drawn = agent.sample_actions(np.zeros((3, 4), np.float32), 50)
    assert drawn.shape == (3, 50, 2) and drawn.min() >= -2 and drawn.max() <= 2
    assert ACT.contains(agent.act(np.zeros(4, np.float32)))


def test_learns_with_a_csc_shield_on_point_traps():
    """Alg. 1 wiring: candidates from π_old, Â_C from the shield's critic, one update per epoch."""
    pytest.importorskip("mujoco")  # the [mujoco] extra
    env = safeshield.make("safeshield/PointTraps-v0", shield="csc", seed=0, hidden=(16, 16), learning_starts=50)
    agent = TRPOLagrangian.for_env(env, TRPOLagrangianConfig(hidden=(16,), steps_per_epoch=150, vf_iters=3), seed=0)
    env.attach_policy(agent.sample_actions)
    agent.set_cost_critic(env.safety_model.q_c)
    before = flat_parameters(agent.policy).clone()
    agent.learn(env, 300, progress=False, seed=0)
    assert agent.epochs == 2 and agent.total_steps == 300
    assert env.safety_model.updates > 0 and not torch.equal(flat_parameters(agent.policy), before)


def test_checkpoint_round_trip(tmp_path):
    agent = _agent(3, critic=constant_critic)
    _update_with(agent, v_hat=1.0)
    agent.save(tmp_path / "agent")
    loaded = TRPOLagrangian.load(tmp_path / "agent")
    obs = np.linspace(-1, 1, 4).astype(np.float32)
    assert np.array_equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    assert loaded.lam == agent.lam and loaded.epochs == 1
    with pytest.raises(ValueError, match="observation_space"):
        TRPOLagrangian.load(tmp_path / "agent", env=gym.make("Pendulum-v1"))


def test_bad_config_fails_naming_the_option():
    with pytest.raises(ValueError, match="backtrack_coef"):
        TRPOLagrangianConfig(backtrack_coef=1.0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        TRPOLagrangianConfig(steps_per_epoch=0)
    with pytest.raises(TypeError, match="bounded Box"):
        TRPOLagrangian(OBS, gym.spaces.Discrete(3))
