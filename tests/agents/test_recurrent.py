"""Tests of ``safeshield.agents.recurrent`` (Knight & Achiam §2.1)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.agents.recurrent import RecurrentSACLagrangian, RecurrentSACLagrangianConfig, SequenceBuffer

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = RecurrentSACLagrangianConfig(gru_hidden=8, hidden=(16,), batch_size=4, sequence_length=6, learning_starts=0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 12), min_size=1, max_size=12), st.integers(5, 40), st.integers(1, 8), st.integers(0, 1000)
)
def test_windows_never_cross_an_episode_boundary(lengths, capacity, length, seed):
    buffer = SequenceBuffer(capacity, 1, 1, 1)
    step = 0
    for episode, n in enumerate(lengths):
        for k in range(n):
            buffer.add([step], [0.0], 0.0, 0.0, [step + 1], k == n - 1, [step], episode)
            step += 1
    if len(buffer) < length:
        with pytest.raises(ValueError):
            buffer.sample(4, length, np.random.default_rng(seed))
        return
    batch = buffer.sample(16, length, np.random.default_rng(seed))
    assert batch["obs"].shape == (16, length, 1) and batch["mask"].shape == (16, length)
    for obs, mask, rows, hidden in zip(batch["obs"][..., 0], batch["mask"], batch["rows"], batch["hidden"]):
        assert mask[0] == 1 and np.all(np.diff(mask) <= 0)  # a prefix of ones
        kept = obs[mask == 1]
        assert np.all(np.diff(kept) == 1)  # consecutive steps of one episode
        assert len(set(buffer.episode[rows[mask == 1]])) == 1
        assert hidden[0] == obs[0]  # the state stored with the window's first step
        if mask[-1] == 0:  # cut short: the next row is another episode's step
            assert buffer.episode[rows[mask.argmin()]] != buffer.episode[rows[0]]
        assert step - len(buffer) <= obs[0]  # evicted steps are never sampled


def test_stored_states_are_the_ones_the_actor_used():
    env = gym.make("Pendulum-v1", max_episode_steps=20)
    config = RecurrentSACLagrangianConfig(gru_hidden=8, hidden=(16,), learning_starts=10_000)  # no updates
    agent = RecurrentSACLagrangian(env.observation_space, env.action_space, config, seed=0)
    agent.learn(env, 50, seed=0, progress=False)
    buf = agent.buffer
    for episode in np.unique(buf.episode[:50]):
        rows = np.flatnonzero(buf.episode[:50] == episode)
        assert np.all(buf.hidden[rows[0]] == 0)  # fresh state at each episode start
        with torch.no_grad():
            states, _ = agent.gru(torch.from_numpy(buf.obs[rows])[None], torch.zeros(1, 1, 8))
        np.testing.assert_allclose(buf.hidden[rows[1:]], states[0, :-1].numpy(), atol=1e-6)
    assert len(np.unique(buf.episode[:50])) == 3  # 20 + 20 + 10 steps


def test_update_trains_the_trunk_and_beta_stays_nonnegative():
    agent = RecurrentSACLagrangian(OBS, ACT, SMALL, seed=0)
    rng = np.random.default_rng(0)
    for t in range(40):
        agent.act(rng.normal(size=3))
        agent.observe(rng.normal(size=3), rng.uniform(-1, 1, 2), 1.0, rng.normal(size=3), t % 9 == 8, cost=float(t % 2))
        if t % 9 == 8:
            agent._episode_end({"length": 9}, 4.0)
    before = [p.clone() for p in agent.gru.parameters()]
    info = agent.update()
    assert 0 < info["steps"] <= 4 * 6
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.gru.parameters()))
    assert agent.beta > 0.0  # cost rate 4/9 > 0.01 per step


def test_save_load_reproduces_actions_q_values_and_beta_and_resets_the_state(tmp_path):
    agent = RecurrentSACLagrangian(OBS, ACT, SMALL, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(30):
        agent.observe(rng.normal(size=3), rng.uniform(-1, 1, 2), 0.5, rng.normal(size=3), False, cost=1.0)
    for _ in range(3):
        agent.update()
    agent.beta = 0.75
    agent.save(tmp_path / "rec")
    loaded = RecurrentSACLagrangian.load(tmp_path / "rec", (OBS, ACT))
    assert loaded.beta == 0.75 and torch.all(loaded.state == 0)
    agent.reset_state()
    observations = rng.normal(size=(5, 3)).astype(np.float32)
    a = [agent.act(o, deterministic=True) for o in observations]
    b = [loaded.act(o, deterministic=True) for o in observations]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    with torch.no_grad():
        f = torch.randn(4, 8)
        act = torch.rand(4, 2) * 2 - 1
        for name in ("q1", "q2", "qc", "qc_target"):
            assert torch.equal(getattr(agent, name)(f, act), getattr(loaded, name)(f, act))


def test_sample_actions_is_refused_and_configs_are_checked():
    agent = RecurrentSACLagrangian(OBS, ACT, SMALL, seed=0)
    with pytest.raises(TypeError, match="history"):
        agent.sample_actions(torch.zeros(1, 3), 4)
    with pytest.raises(ValueError, match="sequence_length"):
        RecurrentSACLagrangianConfig(sequence_length=0)
