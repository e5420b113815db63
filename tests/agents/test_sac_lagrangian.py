"""Tests of ``safeshield.agents.sac_lagrangian`` (Knight & Achiam Alg. 1)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.agents import SAC, SACLagrangian, SACLagrangianConfig
from safeshield.core.checkpoint import CheckpointError

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = SACLagrangianConfig(hidden=(16, 16), batch_size=16, learning_starts=0)


def fill(agent, n=64, seed=0, cost=lambda rng: float(rng.random() < 0.3), terminal_every=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, 3)).astype(np.float32)
    for i in range(n):
        terminated = terminal_every > 0 and i % terminal_every == terminal_every - 1
        agent.observe(
            obs[i],
            rng.uniform(-1, 1, 2).astype(np.float32),
            float(rng.normal()),
            obs[i + 1],
            terminated,
            cost=cost(rng),
        )
    return obs[:n]


class CostlyPoint(gym.Env):
    """1-D point; reward +x' (go right), cost 1 where x' > 0.5: the unconstrained optimum is costly."""

    observation_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return np.array([self.x], np.float32), {"cost": 0.0}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.3 * float(action[0]), -2.0, 2.0))
        self.t += 1
        cost = float(self.x > 0.5)
        return np.array([self.x], np.float32), self.x, False, self.t >= 20, {"cost": cost}


# ---------------------------------------------------------------- β
@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.floats(0.0, 5.0), st.just(0.0) | st.floats(1e-3, 3.0))
def test_beta_never_negative_and_one_step_rises_iff_cost_exceeds_limit(rates, init, lr):
    agent = SACLagrangian(OBS, ACT, SACLagrangianConfig(hidden=(4,), beta_init=init, beta_lr=lr, cost_window=1), seed=0)
    for rate in rates:
        before = agent.beta
        agent._episode_end({"length": 100}, rate * 100)
        assert agent.beta >= 0.0
        if lr > 0 and rate > agent.config.cost_limit:
            assert agent.beta > before
        elif rate < agent.config.cost_limit:
            assert agent.beta <= before
        assert agent.beta == pytest.approx(max(0.0, before + lr * (rate - 0.01)))


def test_beta_waits_for_the_warmup():
    agent = SACLagrangian(OBS, ACT, SACLagrangianConfig(hidden=(4,), beta_warmup_steps=50), seed=0)
    agent._episode_end({"length": 10}, 10.0)
    assert agent.beta == 0.0
    fill(agent, 50)
    agent._episode_end({"length": 10}, 10.0)
    assert agent.beta > 0.0


def test_critic_mode_steps_beta_from_batch_q_c_against_the_discounted_limit():
    config = SACLagrangianConfig(hidden=(8,), batch_size=16, learning_starts=0, beta_update="critic", beta_lr=0.5)
    agent = SACLagrangian(OBS, ACT, config, seed=0)
    assert agent.beta_multiplier.limit == pytest.approx(0.01 / (1 - 0.99))
    fill(agent)
    info = agent.update()
    assert agent.beta == pytest.approx(max(0.0, 0.5 * (info["qc"] - 1.0)))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="beta_update"):
        SACLagrangianConfig(beta_update="adam")
    with pytest.raises(ValueError, match="cost_gamma"):
        SACLagrangianConfig(cost_gamma=1.0)
    with pytest.raises(TypeError, match="SACLagrangianConfig"):
        SACLagrangian(OBS, ACT, SMALL.__class__.__bases__[0](), seed=0)
    agent = SACLagrangian(OBS, ACT, SMALL, seed=0)
    with pytest.raises(ValueError, match="cost"):
        agent.observe(np.zeros(3), np.zeros(2), 0.0, np.zeros(3), False, cost=-1.0)


# ---------------------------------------------------------------- losses
def test_with_beta_zero_the_actor_loss_is_sacs():
    agent = SACLagrangian(OBS, ACT, SMALL, seed=0)
    obs = torch.as_tensor(fill(agent))
    alpha = agent.log_alpha.detach().exp()
    action, log_pi = agent.actor(obs, torch.Generator().manual_seed(1))
    ours, _ = agent._actor_loss(obs, action, log_pi, alpha)
    sacs, _ = SAC._actor_loss(agent, obs, action, log_pi, alpha)
    assert torch.equal(ours, sacs)
    agent.beta = 2.0
    weighted, _ = agent._actor_loss(obs, action, log_pi, alpha)
    expected = sacs + 2.0 * agent.qc(obs, action).mean()
    assert torch.allclose(weighted, expected)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_cost_target_is_nonnegative_and_does_not_bootstrap_at_terminals(seed):
    agent = SACLagrangian(OBS, ACT, SMALL, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    cost = (torch.rand(32, generator=gen) < 0.5).float()
    next_obs = torch.randn(32, 3, generator=gen) * 10
    next_action = torch.rand(32, 2, generator=gen) * 2 - 1
    terminated = (torch.rand(32, generator=gen) < 0.5).float()
    with torch.no_grad():  # push the target critic negative: the target must still be >= 0
        agent.qc_target.net[-1].weight.zero_()  # a constant output: random weights could undo the bias
        agent.qc_target.net[-1].bias.fill_(-5.0)
    target = agent.cost_target(cost, next_obs, next_action, terminated)
    assert torch.all(target >= 0)
    assert torch.equal(target[terminated == 1], cost[terminated == 1])
    with torch.no_grad():
        agent.qc_target.net[-1].bias.fill_(5.0)
    target = agent.cost_target(cost, next_obs, next_action, terminated)
    live = terminated == 0
    assert torch.all(target[live] > cost[live])


def test_cost_critic_learns_the_cost_not_the_reward():
    config = SACLagrangianConfig(hidden=(32, 32), batch_size=64, learning_starts=0, cost_gamma=0.0, lr=3e-3)
    agent = SACLagrangian(OBS, ACT, config, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(256):  # cost = 1 iff obs[0] > 0; reward is noise
        o = rng.normal(size=3).astype(np.float32)
        agent.observe(
            o, rng.uniform(-1, 1, 2), float(rng.normal() * 5), rng.normal(size=3), False, cost=float(o[0] > 0)
        )
    for _ in range(300):
        agent.update()
    probe = np.array([[2.0, 0, 0], [-2.0, 0, 0]], np.float32)
    qc = agent.cost_value(probe, np.zeros((2, 2)))
    assert qc[0] > 0.7 and qc[1] < 0.3


def test_constrained_agent_pays_less_cost_than_unconstrained():
    """On CostlyPoint β must rise and push the policy out of the costly region."""
    results = {}
    for lr in (0.0, 5.0):
        config = SACLagrangianConfig(
            hidden=(32,),
            batch_size=32,
            learning_starts=200,
            beta_lr=lr,
            init_alpha=0.05,
            gamma=0.9,
            cost_gamma=0.9,
            lr=1e-3,
        )
        agent = SACLagrangian(CostlyPoint.observation_space, CostlyPoint.action_space, config, seed=0)
        records = agent.learn(CostlyPoint(), 1200, seed=0, progress=False)
        results[lr] = (np.mean([r["cost"] for r in records[-20:]]), agent.beta)
    assert results[0.0][1] == 0.0 and results[5.0][1] > 0.0
    assert results[5.0][0] < 0.5 * results[0.0][0]


# ---------------------------------------------------------------- checkpoints
def test_save_load_reproduces_actions_q_values_and_beta(tmp_path):
    agent = SACLagrangian(OBS, ACT, SMALL, seed=0)
    obs = fill(agent)
    for _ in range(5):
        agent.update()
    agent.beta = 1.25
    agent._episode_end({"length": 10}, 3.0)
    agent.save(tmp_path / "agent")
    loaded = SACLagrangian.load(tmp_path / "agent", (OBS, ACT))
    assert loaded.beta == agent.beta and list(loaded.recent_cost_rates) == list(agent.recent_cost_rates)
    assert loaded.config == agent.config
    actions = np.stack([agent.act(o, deterministic=True) for o in obs])
    np.testing.assert_array_equal(actions, np.stack([loaded.act(o, deterministic=True) for o in obs]))
    np.testing.assert_array_equal(agent.cost_value(obs, actions), loaded.cost_value(obs, actions))
    with torch.no_grad():
        o, a = torch.as_tensor(obs), torch.as_tensor(actions)
        for name in ("q1", "q2", "q1_target", "qc_target"):
            assert torch.equal(getattr(agent, name)(o, a), getattr(loaded, name)(o, a))
    # both continue identically given the same seeded RNGs
    a1 = SACLagrangian.load(tmp_path / "agent", (OBS, ACT), seed=3)
    a2 = SACLagrangian.load(tmp_path / "agent", (OBS, ACT), seed=3)
    fill(a1, seed=5), fill(a2, seed=5)
    assert a1.update() == a2.update()


def test_checkpoint_kinds_do_not_mix(tmp_path):
    SAC(OBS, ACT, seed=0).save(tmp_path / "sac")
    with pytest.raises(CheckpointError):
        SACLagrangian.load(tmp_path / "sac")
    SACLagrangian(OBS, ACT, SMALL, seed=0).save(tmp_path / "lag")
    with pytest.raises(CheckpointError):
        SAC.load(tmp_path / "lag")
    other = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    with pytest.raises(CheckpointError):
        SACLagrangian.load(tmp_path / "lag", (OBS, other))
