"""Tests of ``safeshield.agents.sac``: the reference SAC and SQRL's Eq. 4 actor objective."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from safeshield.agents import SAC, SACConfig
from safeshield.core.checkpoint import CheckpointError

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ASYM = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 3.0], np.float32))
SMALL = SACConfig(hidden=(32, 32), batch_size=32, learning_starts=0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These nets are tiny: a second intra-op thread only spins, and on a busy 2-core box it stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fill(agent: SAC, n: int = 200, seed: int = 0) -> np.ndarray:
    """Observe ``n`` random transitions (reward 0); return the observations."""
    rng = np.random.default_rng(seed)
    space = agent.action_space
    obs = rng.normal(size=(n + 1, *agent.observation_space.shape)).astype(np.float32)
    for i in range(n):
        action = rng.uniform(space.low, space.high).astype(np.float32)
        agent.observe(obs[i], action, 0.0, obs[i + 1], terminated=False)
    return obs[:n]


class PointToZero(gym.Env):
    """1-D point that must move to 0: x' = clip(x + 0.25 a), reward −|x'|, 15 steps, |x0| ∈ [1, 2]."""

    observation_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.choice([-1.0, 1.0]) * self.np_random.uniform(1.0, 2.0))
        self.t = 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.25 * float(action[0]), -2.0, 2.0))
        self.t += 1
        return np.array([self.x], np.float32), -abs(self.x), False, self.t >= 15, {}


class FixedActionShield(gym.Wrapper):
    """Stands in for a shield: executes ``fixed`` whatever is proposed and reports it in ``info``."""

    def __init__(self, env, fixed, failure_at: int | None = None, plain_failure: bool = False):
        super().__init__(env)
        self.fixed = np.asarray(fixed, np.float32)
        self.failure_at, self.plain_failure = failure_at, plain_failure
        self.proposals: list[np.ndarray] = []
        self.t = 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        self.proposals.append(np.array(action, copy=True))
        obs, reward, terminated, truncated, info = self.env.step(self.fixed)
        self.t += 1
        failed = self.failure_at is not None and self.t == self.failure_at
        if self.plain_failure:
            info["failure"] = failed
        else:
            info["shield"] = {"executed_action": self.fixed.copy(), "failure": float(failed)}
        return obs, reward, terminated, truncated, info


# ---------------------------------------------------------------- shapes, bounds, bad input
def test_act_and_sample_actions_respect_an_asymmetric_box():
    agent = SAC(OBS, ASYM, SACConfig(hidden=(16, 16), learning_starts=5), seed=0)
    obs = np.zeros(3, np.float32)
    warmup = np.stack([agent.act(obs) for _ in range(50)])  # uniform random phase
    assert warmup.shape == (50, 2) and warmup.dtype == np.float32
    assert np.all(warmup >= ASYM.low) and np.all(warmup <= ASYM.high)
    fill(agent, 5)
    policy = np.stack([agent.act(obs * i) for i in range(50)] + [agent.act(obs, deterministic=True)])
    assert np.all(policy >= ASYM.low) and np.all(policy <= ASYM.high)

    actions, log_probs = agent.sample_actions(torch.randn(7, 3) * 100, 11)  # large obs saturate tanh
    assert actions.shape == (7, 11, 2) and log_probs.shape == (7, 11)
    low, high = torch.as_tensor(ASYM.low), torch.as_tensor(ASYM.high)
    assert torch.all(actions >= low) and torch.all(actions <= high)
    assert torch.isfinite(log_probs).all()


def test_sample_actions_is_reproducible_with_a_generator():
    agent = SAC(OBS, ASYM, SMALL, seed=0)
    obs = torch.randn(4, 3)
    a1, lp1 = agent.sample_actions(obs, 5, torch.Generator().manual_seed(3))
    a2, lp2 = agent.sample_actions(obs, 5, torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2) and torch.equal(lp1, lp2)
    assert not torch.equal(a1[:, 0], a1[:, 1])  # n distinct draws per state


def test_act_keeps_the_action_space_dtype_and_shape():
    space = gym.spaces.Box(-1.0, 1.0, (2, 2), np.float64)
    agent = SAC(OBS, space, SMALL, seed=0)
    action = agent.act(np.zeros(3, np.float32), deterministic=True)
    assert action.shape == (2, 2) and action.dtype == np.float64


def test_bad_spaces_and_bad_observations_are_refused():
    with pytest.raises(TypeError, match="action_space"):
        SAC(OBS, gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="action_space"):
        SAC(OBS, gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    with pytest.raises(TypeError, match="observation_space"):
        SAC(gym.spaces.Discrete(4), ASYM)
    agent = SAC(OBS, ASYM, SMALL, seed=0)
    with pytest.raises(ValueError, match="obs"):
        agent.act(np.array([0.0, np.nan, 0.0], np.float32))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        agent.act(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="obs"):
        agent.sample_actions(torch.full((2, 3), float("nan")), 4)
    with pytest.raises(ValueError, match=r"\[m, 3\]"):
        agent.sample_actions(torch.zeros(2, 4), 4)
    with pytest.raises(ValueError, match="next_obs"):
        agent.observe(np.zeros(3), np.zeros(2), 0.0, np.full(3, np.nan), False)


# ---------------------------------------------------------------- determinism
def test_same_seed_same_data_gives_identical_parameters():
    def trained(seed):
        agent = SAC(OBS, ASYM, SMALL, seed=seed)
        fill(agent)
        for _ in range(15):
            agent.update()
        return agent

    a, b, c = trained(1), trained(1), trained(2)
    for name, net in a._modules().items():
        for p, q in zip(net.parameters(), b._modules()[name].parameters()):
            assert torch.equal(p, q), name
    assert torch.equal(a.log_alpha, b.log_alpha)
    assert not torch.equal(next(a.actor.parameters()), next(c.actor.parameters()))


def test_seeding_leaves_the_global_torch_rng_alone():
    state = torch.random.get_rng_state()
    agent = SAC(OBS, ASYM, SMALL, seed=0)
    fill(agent, 40)
    agent.update()
    agent.act(np.zeros(3, np.float32))
    assert torch.equal(state, torch.random.get_rng_state())


# ---------------------------------------------------------------- SQRL Eq. 4
def constant_critic(value: float):
    # differentiable in the action, as the contract asks, but with zero gradient
    return lambda obs, action: value + 0.0 * action.sum(-1)


def test_nu_rises_by_nu_lr_times_the_excess_risk():
    """One ν-step increases ν iff mean Q̂_safe(s, a') > ε_safe."""
    config = SACConfig(hidden=(16, 16), batch_size=32, learning_starts=0, eps_safe=0.1, nu_lr=0.01)
    agent = SAC(OBS, ASYM, config, safety_critic=constant_critic(0.5), seed=0)
    fill(agent, 50)
    info = agent.update()
    assert agent.nu == pytest.approx(0.01 * (0.5 - 0.1))
    assert info["nu"] == agent.nu and info["q_safe"] == pytest.approx(0.5)


def test_nu_stays_projected_at_zero_when_safe():
    config = SACConfig(hidden=(16, 16), batch_size=32, learning_starts=0, nu_lr=0.01)
    agent = SAC(OBS, ASYM, config, safety_critic=constant_critic(0.0), seed=0)
    fill(agent, 50)
    for _ in range(3):
        agent.update()
    assert agent.nu == 0.0


def test_nu_falls_when_the_risk_is_below_eps():
    config = SACConfig(hidden=(16, 16), batch_size=32, learning_starts=0, nu_lr=0.01, nu_init=1.0)
    agent = SAC(OBS, ASYM, config, safety_critic=constant_critic(0.05), seed=0)
    fill(agent, 50)
    agent.update()
    assert agent.nu == pytest.approx(1.0 - 0.01 * 0.05)


def test_set_safety_critic_attaches_later_and_overrides_eps():
    agent = SAC(OBS, ASYM, SMALL, seed=0)
    fill(agent, 50)
    assert "q_safe" not in agent.update() and agent.nu == 0.0
    agent.set_safety_critic(constant_critic(0.5), eps_safe=0.3)
    assert agent.config.eps_safe == 0.3
    agent.update()
    assert agent.nu == pytest.approx(SMALL.nu_lr * (0.5 - 0.3))


def test_a_live_eps_safe_is_read_before_every_nu_step():
    """``eps_safe`` as a callable (a shield's threshold in force): ν follows the limit it returns now;
    +inf (a shield still warming up) takes ν to 0."""
    agent = SAC(OBS, ASYM, SMALL, seed=0)
    fill(agent, 50)
    limit = [0.1]
    agent.set_safety_critic(constant_critic(0.5), eps_safe=lambda: limit[0])
    agent.update()
    assert agent.nu == pytest.approx(SMALL.nu_lr * (0.5 - 0.1))
    limit[0] = 0.7  # a failure budget raised the threshold: the actor's risk is now under it
    agent.update()
    assert agent.nu == pytest.approx(SMALL.nu_lr * (0.5 - 0.1) + SMALL.nu_lr * (0.5 - 0.7))
    limit[0] = float("inf")
    agent.update()
    assert agent.nu == 0.0
    for bad in (float("nan"), None):
        limit[0] = bad
        with pytest.raises(ValueError, match="eps_safe .*returned"):
            agent.update()


def test_actor_gradient_moves_actions_toward_lower_q_safe():
    """Eq. 4: + ν Q̂_safe(s, a') in the actor loss pushes a' down the safety critic's slope."""
    config = SACConfig(hidden=(32, 32), batch_size=64, learning_starts=0, lr=1e-3, nu_init=20.0, nu_lr=0.0)
    risky_when_positive = lambda obs, action: torch.sigmoid(3.0 * action[..., 0])  # noqa: E731
    plain = SAC(OBS, ASYM, config, seed=4)
    shielded = SAC(OBS, ASYM, config, safety_critic=risky_when_positive, seed=4)
    observations = fill(plain)
    fill(shielded)
    for _ in range(100):
        plain.update()
        shielded.update()
    mean_a0 = lambda agent: np.mean([agent.act(o, deterministic=True)[0] for o in observations])  # noqa: E731
    low_risk, unconstrained = mean_a0(shielded), mean_a0(plain)
    assert low_risk < unconstrained - 0.5, (low_risk, unconstrained)


def test_safety_critic_parameters_are_never_touched_by_the_actor_step():
    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(5, 1)

        def forward(self, obs, action):
            return torch.sigmoid(self.linear(torch.cat([obs, action], -1))).squeeze(-1)

    critic = Critic()
    before = [p.detach().clone() for p in critic.parameters()]
    agent = SAC(OBS, ASYM, SMALL, safety_critic=critic, seed=0)
    fill(agent, 50)
    for _ in range(5):
        agent.update()
    for p, p0 in zip(critic.parameters(), before):
        assert torch.equal(p, p0) and p.grad is None


# ---------------------------------------------------------------- learn()
def test_learn_stores_the_executed_action_not_the_proposal():
    fixed = np.array([0.5], np.float32)
    env = FixedActionShield(gym.make("Pendulum-v1"), fixed)
    agent = SAC(
        env.observation_space, env.action_space, SACConfig(hidden=(16, 16), batch_size=32, learning_starts=100), seed=0
    )
    records = agent.learn(env, 250, seed=0, progress=False)
    assert len(agent.buffer) == 250
    np.testing.assert_array_equal(agent.buffer.action[:250], np.tile(fixed, (250, 1)))
    assert not np.allclose(np.stack(env.proposals), fixed)  # the agent proposed other actions
    assert records == [{"step": 200, "return": records[0]["return"], "length": 200, "failure": False}]


@pytest.mark.parametrize("plain_failure", [False, True])
def test_learn_reports_failures_from_info(plain_failure):
    env = FixedActionShield(
        gym.make("Pendulum-v1", max_episode_steps=20), [0.0], failure_at=7, plain_failure=plain_failure
    )
    agent = SAC(env.observation_space, env.action_space, SACConfig(hidden=(16, 16), learning_starts=1000), seed=0)
    seen = []
    records = agent.learn(env, 40, seed=0, progress=False, callback=seen.append)
    assert [r["failure"] for r in records] == [True, True]
    assert seen == records and [r["step"] for r in records] == [20, 40]


def test_total_steps_carry_over_learn_calls_and_reset_buffer_empties_the_buffer():
    env = gym.make("Pendulum-v1", max_episode_steps=30)
    agent = SAC(
        env.observation_space, env.action_space, SACConfig(hidden=(16, 16), batch_size=16, learning_starts=20), seed=0
    )
    agent.learn(env, 60, seed=0, progress=False)
    agent.reset_buffer()
    assert len(agent.buffer) == 0 and agent.total_steps == 60
    records = agent.learn(env, 30, seed=1, progress=False)
    assert agent.total_steps == 90 and len(agent.buffer) == 30
    assert records[0]["step"] == 90


def test_learning_moves_a_point_to_zero():
    """Random actions score about −22 on PointToZero; a policy that heads to 0 scores about −5."""
    env = PointToZero()
    config = SACConfig(hidden=(32, 32), batch_size=64, learning_starts=300, lr=1e-3, gamma=0.9)
    agent = SAC(env.observation_space, env.action_space, config, seed=0)
    returns = np.array([r["return"] for r in agent.learn(env, 1500, seed=0, progress=False)])
    first, last = returns[:20].mean(), returns[-10:].mean()  # the first 20 episodes act at random
    assert last > first + 8.0, (first, last)


# ---------------------------------------------------------------- checkpoints
def test_save_load_round_trip_and_space_check(tmp_path):
    env = gym.make("Pendulum-v1", max_episode_steps=50)
    agent = SAC(
        env.observation_space,
        env.action_space,
        SACConfig(hidden=(16, 16), batch_size=16, learning_starts=20, nu_init=0.3),
        seed=0,
    )
    agent.learn(env, 60, seed=0, progress=False)
    path = agent.save(tmp_path / "sac")

    observations = np.random.default_rng(0).uniform(-1, 1, (20, 3)).astype(np.float32)
    for loaded in (SAC.load(path, env), SAC.load(path)):
        for o in observations:
            np.testing.assert_array_equal(loaded.act(o, deterministic=True), agent.act(o, deterministic=True))
        assert loaded.nu == agent.nu and torch.equal(loaded.log_alpha, agent.log_alpha)
        assert loaded.total_steps == 60 and loaded.config == agent.config
        assert len(loaded.buffer) == 0  # the replay buffer is not saved

    other = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    with pytest.raises(CheckpointError, match="action_space"):
        SAC.load(path, (env.observation_space, other))


def test_loaded_agent_trains_like_the_original(tmp_path):
    """Adam moments, targets and α travel with the checkpoint, so training resumes exactly."""
    agent = SAC(OBS, ASYM, SMALL, seed=0)
    fill(agent, 64)
    for _ in range(3):
        agent.update()
    loaded = SAC.load(agent.save(tmp_path / "sac"), (OBS, ASYM), seed=9)
    for a in (agent, loaded):
        a.reset_buffer()
        a.rng, a.generator = np.random.default_rng(5), torch.Generator().manual_seed(5)
        fill(a, 64, seed=1)
        for _ in range(3):
            a.update()
    for p, q in zip(agent.actor.parameters(), loaded.actor.parameters()):
        assert torch.equal(p, q)
