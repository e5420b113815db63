"""SQRL theory -> property tests.

Each test names the statement of the SQRL paper (Srinivasan, Eysenbach, Ha, Tan, Finn (2020), "Learning to be Safe: Deep
RL with a Safety Critic", arXiv:2010.14603) or the
derived property (``docs/sqrl.md``) it holds ``safeshield.shields.sqrl`` to:

- Bellman target range: y in [0, gamma_safe], and y = gamma_safe iff the next state fails
  (the next-state label convention documented in ``sqrl.py``; the paper's y = 1 iff I(s) = 1).
- tabular fixed point: on a deterministic chain failing j steps after (s, a),
  Q_safe = gamma_safe**j; eps 0.1 accepts iff j >= 7 at gamma 0.7 and iff j >= 6 at gamma 0.65.
  Also on random finite MDPs, iterating the target converges to the solution of Eq. 2's linear system.
- The same chain *learned* by the actual SQRL model reaches gamma_safe**j.
- threshold monotonicity: accepted(eps1) ⊆ accepted(eps2) for eps1 < eps2.
- The label convention of ``sqrl.py``: a transition into failure has risk gamma_safe, not 1.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield import SQRL, SQRLConfig
from safeshield.core import decide
from safeshield.shields.sqrl import bellman_target

torch.set_num_threads(1)

SETTINGS = settings(max_examples=50, deadline=None)
# (gamma_safe, smallest accepted j at eps_safe = 0.1):
CHAIN_CASES = [(0.7, 7), (0.65, 6)]


# ---------------------------------------------------------------- target range


@SETTINGS
@given(
    failure=st.floats(0.0, 1.0),
    terminated=st.booleans(),
    next_q=st.floats(0.0, 1.0),
    gamma=st.floats(0.01, 1.0),
)
def test_bellman_target_lies_in_0_gamma(failure, terminated, next_q, gamma):
    """With Q̄ in [0, 1] and a failure probability in [0, 1], y in [0, gamma_safe]."""
    y = bellman_target(
        torch.tensor([failure], dtype=torch.float64),
        torch.tensor([float(terminated)], dtype=torch.float64),
        torch.tensor([next_q], dtype=torch.float64),
        gamma,
    )
    assert 0.0 <= float(y[0]) <= gamma


@SETTINGS
@given(
    failure=st.booleans(),
    terminated=st.booleans(),
    next_q=st.floats(0.0, 0.999),
    gamma=st.floats(0.01, 1.0),
)
def test_bellman_target_equals_gamma_iff_failure(failure, terminated, next_q, gamma):
    """In the next-state convention: y = gamma_safe iff s' is a failure (Q̄ < 1)."""
    terminated = terminated or failure  # failures are terminal
    y = bellman_target(
        torch.tensor([float(failure)], dtype=torch.float64),
        torch.tensor([float(terminated)], dtype=torch.float64),
        torch.tensor([next_q], dtype=torch.float64),
        gamma,
    )
    assert (float(y[0]) == gamma) == failure


def test_bellman_target_of_a_safe_termination_is_zero():
    """A termination that is not a failure (success) ends the risk: y = 0 whatever Q̄ says."""
    y = bellman_target(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([0.9]), 0.7)
    assert float(y[0]) == 0.0


def test_bellman_target_is_batched_elementwise():
    failure = torch.tensor([0.0, 1.0, 0.0, 0.0])
    terminated = torch.tensor([0.0, 1.0, 1.0, 0.0])
    next_q = torch.tensor([0.5, 0.3, 0.9, 0.0])
    y = bellman_target(failure, terminated, next_q, 0.5)
    assert torch.allclose(y, torch.tensor([0.25, 0.5, 0.0, 0.0]))


# ---------------------------------------------------------------- tabular fixed point


def iterate_chain(length: int, gamma: float, iterations: int = 200) -> np.ndarray:
    """Q over a deterministic chain s_0 -> ... -> s_{length-1} -> failure, by iterating the target.

    Row i is the single action at s_i, which fails j = length - i steps later.
    """
    q = torch.rand(length + 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    failure = torch.zeros(length, dtype=torch.float64)
    failure[-1] = 1.0  # the last action lands in the failure state
    terminated = failure.clone()
    for _ in range(iterations):
        new = bellman_target(failure, terminated, q[1:], gamma)
        q = torch.cat([new, q[-1:]])
    return q[:-1].numpy()


@pytest.mark.parametrize("gamma, first_accepted", CHAIN_CASES)
def test_tabular_chain_fixed_point_is_gamma_to_the_j(gamma, first_accepted):
    """Q_safe = gamma_safe**j on a chain that fails j steps later; eps 0.1 accepts iff j >= 7 (6)."""
    length = 12
    q = iterate_chain(length, gamma)
    j = length - np.arange(length)
    np.testing.assert_allclose(q, gamma**j, rtol=1e-12, atol=0)
    accepted = q < 0.1
    assert np.array_equal(accepted, j >= first_accepted), (gamma, dict(zip(j, q)))
    assert q[-1] == pytest.approx(gamma), "one step before failure: gamma_safe, not 1"


def test_tabular_thresholds_quoted_in_the_sqrl_docs():
    """The boundary numbers of the tabular fixed point (guards the accept/reject pattern above against typos)."""
    assert round(0.7**6, 4) == 0.1176 and round(0.7**7, 4) == 0.0824
    assert round(0.65**5, 4) == 0.1160 and round(0.65**6, 4) == 0.0754


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iterating_the_target_on_a_random_mdp_solves_eq_2(seed):
    """On a random finite MDP under a fixed policy, the iterated target converges to
    the solution of Eq. 2's linear system Q = gamma (P_fail + P_cont Pi Q)."""
    rng = np.random.default_rng(seed)
    n_states, n_actions, gamma = 6, 3, 0.7
    fail_states = np.zeros(n_states + 2, dtype=bool)
    fail_states[n_states] = True  # absorbing failure
    goal_states = np.zeros(n_states + 2, dtype=bool)
    goal_states[n_states + 1] = True  # absorbing success (terminated, not a failure)
    transition = rng.dirichlet(np.ones(n_states + 2), size=(n_states, n_actions))  # P(s' | s, a)
    policy = rng.dirichlet(np.ones(n_actions), size=n_states)  # pi(a' | s')
    q = torch.zeros(n_states, n_actions, dtype=torch.float64)
    failure = torch.as_tensor(fail_states, dtype=torch.float64)
    terminated = torch.as_tensor(fail_states | goal_states, dtype=torch.float64)
    p = torch.as_tensor(transition)
    for _ in range(500):
        v = torch.cat([(torch.as_tensor(policy) * q).sum(1), torch.zeros(2, dtype=torch.float64)])  # V(s')
        y = bellman_target(failure, terminated, v, gamma)  # (S'+2,), linear in V for 0/1 labels
        q = (p * y).sum(-1)
    # Linear system over the (s, a) pairs of non-terminal states.
    pairs = n_states * n_actions
    p_fail = transition[:, :, n_states].reshape(pairs)
    p_next = transition[:, :, :n_states].reshape(pairs, n_states)
    pi = np.zeros((n_states, pairs))
    for s in range(n_states):
        pi[s, s * n_actions : (s + 1) * n_actions] = policy[s]
    exact = np.linalg.solve(np.eye(pairs) - gamma * p_next @ pi, gamma * p_fail)
    np.testing.assert_allclose(q.numpy().reshape(pairs), exact, rtol=1e-10, atol=1e-12)
    assert ((exact >= 0) & (exact <= gamma)).all()


# ---------------------------------------------------------------- the chain, learned


def one_hot(i: int, n: int) -> np.ndarray:
    v = np.zeros(n, np.float32)
    v[i] = 1.0
    return v


@pytest.mark.parametrize("gamma, first_accepted", CHAIN_CASES)
def test_sqrl_model_learns_the_chain_fixed_point(gamma, first_accepted):
    """The actual SQRL critic, trained on the chain's transitions, reaches gamma_safe**j (tol 0.03)
    and the same accept/reject pattern at eps_safe = 0.1.

    Action -0.5 walks down the chain; action +0.5 exits safely (terminated, not a failure: Q = 0).
    """
    length = 10
    dim = length + 2
    config = SQRLConfig.paper(hidden=(64, 64), lr=1e-3, tau=0.05, gamma_safe=gamma, batch_size=64, buffer_capacity=64)
    model = SQRL(
        gym.spaces.Box(0.0, 1.0, (dim,), np.float32), gym.spaces.Box(-1.0, 1.0, (1,), np.float32), config, seed=0
    )
    walk, leave = np.array([-0.5], np.float32), np.array([0.5], np.float32)
    for i in range(length):
        fails = i == length - 1
        row = model.buffer.add(one_hot(i, dim), walk, one_hot(i + 1, dim), float(fails), fails)
        model.buffer.set_next_action(row, walk)  # SARSA: the chain keeps walking
        model.buffer.add(one_hot(i, dim), leave, one_hot(length + 1, dim), 0.0, True)
    untrained = model.risk_numpy(np.stack([one_hot(i, dim) for i in range(length)]), np.tile(walk, (length, 1)))
    model.learn(800)
    obs = np.stack([one_hot(i, dim) for i in range(length)])
    risk = model.risk_numpy(obs, np.tile(walk, (length, 1)))
    j = length - np.arange(length)
    np.testing.assert_allclose(risk, gamma**j, atol=0.03)
    assert np.array_equal(risk < config.eps_safe, j >= first_accepted), dict(zip(j, np.round(risk, 4)))
    assert (model.risk_numpy(obs, np.tile(leave, (length, 1))) < 0.03).all(), "a safe exit has no risk"
    # Not vacuous: before training the critic accepts everything.
    assert (untrained < config.eps_safe).all()


def test_transition_into_failure_has_risk_gamma_safe_not_one():
    """Label convention of ``sqrl.py``: "an action whose next state fails for sure has risk gamma_safe"."""
    gamma = 0.65
    config = SQRLConfig.paper(hidden=(32, 32), lr=3e-3, tau=0.05, gamma_safe=gamma, batch_size=16, buffer_capacity=16)
    model = SQRL(
        gym.spaces.Box(-1.0, 1.0, (2,), np.float32), gym.spaces.Box(-1.0, 1.0, (1,), np.float32), config, seed=0
    )
    obs = np.array([0.3, -0.2], np.float32)
    model.buffer.add(obs, np.array([1.0], np.float32), np.zeros(2, np.float32), 1.0, True)
    model.learn(400)
    risk = float(model.risk_numpy(obs[None], np.array([[1.0]]))[0])
    assert risk == pytest.approx(gamma, abs=0.03)
    assert risk < 0.9, "the next-state label must not be used as the risk itself (that would give 1)"
    # And exactly so in the target the critic is trained on.
    y = bellman_target(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0.0]), gamma)
    assert float(y[0]) == pytest.approx(gamma)


@pytest.mark.parametrize("bootstrap", ["executed", "policy"])
def test_bootstrap_judges_the_policy_that_acts_or_the_agents_own(bootstrap):
    """``bootstrap``: Q̄(s', a') at the executed next action (the shielded agent's risk) or at a draw of pi.

    s0 --walk--> s1; at s1 the shield ran "leave" (a safe exit) while the agent's pi always walks
    into a failure. The executed next action makes walking from s0 safe (0); pi's makes it
    gamma_safe**2, as if nothing would intervene at s1. Only "policy" asks the sampler.
    """
    gamma, dim = 0.7, 4
    config = SQRLConfig.paper(
        hidden=(32, 32), lr=3e-3, tau=0.05, batch_size=8, buffer_capacity=8, gamma_safe=gamma, bootstrap=bootstrap
    )  # TD(0): the fixed point is exact
    model = SQRL(
        gym.spaces.Box(0.0, 1.0, (dim,), np.float32), gym.spaces.Box(-1.0, 1.0, (1,), np.float32), config, seed=0
    )
    walk, leave = np.array([-0.5], np.float32), np.array([0.5], np.float32)
    row = model.buffer.add(one_hot(0, dim), walk, one_hot(1, dim), 0.0, False)
    model.buffer.set_next_action(row, leave)
    model.buffer.add(one_hot(1, dim), walk, one_hot(2, dim), 1.0, True)
    model.buffer.add(one_hot(1, dim), leave, one_hot(3, dim), 0.0, True)
    calls = []

    def always_walk(obs, n, generator):
        calls.append(obs.shape[0])
        return torch.full((obs.shape[0], n, 1), -0.5)

    model.attach_policy(always_walk)
    model.learn(600)
    risk = float(model.risk_numpy(one_hot(0, dim)[None], walk[None])[0])
    if bootstrap == "executed":
        assert risk < 0.05 and not calls
    else:
        assert risk == pytest.approx(gamma**2, abs=0.05) and calls
    assert SQRLConfig().bootstrap == "policy" == SQRLConfig.paper().bootstrap


def test_bootstrap_rejects_an_unknown_choice():
    with pytest.raises(ValueError, match="bootstrap.*'pi'"):
        SQRLConfig(bootstrap="pi")


# ---------------------------------------------------------------- threshold monotonicity


class FixedCandidates:
    """Candidates that ignore the generator: the same lattice for every call."""

    def __call__(self, obs, proposal, k, round_index, generator):
        lattice = torch.linspace(-1.0, 1.0, k, dtype=proposal.dtype) * (1.0 - 0.1 * round_index)
        return lattice.reshape(1, k, 1).expand(proposal.shape[0], k, 1).clone()


def shifted_risk(obs, actions):
    """Row r's proposal (action 0) has risk obs[r, 0]; candidates shift it by 0.3 * action."""
    return torch.clamp(obs[:, 0] + 0.3 * actions[:, 0], 0.0, 1.0)


@SETTINGS
@given(
    risks=st.lists(st.floats(0.0, 1.0, width=32), min_size=1, max_size=30),
    eps=st.lists(st.floats(0.0, 1.0, width=32), min_size=2, max_size=2, unique=True),
)
def test_threshold_monotonicity(risks, eps):
    """Accepted(eps1) ⊆ accepted(eps2) for eps1 < eps2, for proposals and for
    rows that found a safe candidate (with the same candidates)."""
    eps1, eps2 = sorted(eps)
    obs = torch.tensor(risks, dtype=torch.float32).unsqueeze(1)
    proposal = torch.zeros(len(risks), 1)

    def run(threshold):
        with torch.inference_mode():
            return decide(shifted_risk, obs, proposal, threshold, FixedCandidates(), torch.Generator(), k=5, rounds=2)

    low, high = run(eps1), run(eps2)
    accepted_low, accepted_high = low.n_candidates == 0, high.n_candidates == 0
    assert np.array_equal(accepted_low, np.asarray(risks, np.float32) < np.float32(eps1))
    assert not (accepted_low & ~accepted_high).any()
    safe_low, safe_high = ~low.fell_back, ~high.fell_back
    assert not (safe_low & ~safe_high).any()
    assert (low.risk[safe_low] < np.float32(eps1)).all()


def test_a_config_saved_before_bootstrap_existed_keeps_the_target_it_learned():
    """A checkpoint written before ``bootstrap`` existed learned with a' ~ pi; it goes on doing so."""
    legacy = SQRLConfig(bootstrap="executed").to_json()
    del legacy["bootstrap"]
    assert SQRLConfig.from_json(legacy).bootstrap == "policy"
    assert SQRLConfig.from_json(SQRLConfig(bootstrap="executed").to_json()).bootstrap == "executed"
