"""CSC's conservative critic on tabular MDPs.

Eq. 2 of CSC minimises ½ E_D[(Q − B^π Q̂_k)²] + α (E_D[Q] − E_{a∼π}[Q]). Setting its gradient to
zero gives, pointwise, Q̂ = B^π Q̂ + α (π(a|s) / π_β(a|s) − 1), so V̂(s) = E_π Q̂(s, ·) solves
V̂ = c_π + γ P_π V̂ + α D(s) with D(s) = Σ_a π (π / π_β − 1) ≥ 0: the critic over-estimates V^π_C
pointwise for α ≥ 0, exactly when π = π_β, and more as α grows.

The tests minimise the package's own ``conservative_critic_loss`` (the function ``CSC.learn_step``
uses) over a Q table on exact expectations (one Newton step: the loss is quadratic) (each (s, a) repeated in proportion
to its
probability), iterate the backup to its fixed point, and compare with V^π_C from a linear solve.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.shields.csc import conservative_critic_loss

torch.set_num_threads(1)

N_STATES, N_ACTIONS, UNITS, GAMMA = 3, 3, 10, 0.5  # non-failure states; state N_STATES is the failure


def _composition(draw, minimum: int) -> np.ndarray:
    """A random split of UNITS into N_ACTIONS parts, each >= minimum (a probability in tenths)."""
    while True:
        parts = np.array([draw(st.integers(minimum, UNITS)) for _ in range(N_ACTIONS - 1)])
        if parts.sum() <= UNITS - minimum:
            return np.append(parts, UNITS - parts.sum())


@st.composite
def mdps(draw):
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    transitions = rng.dirichlet(np.ones(N_STATES + 1), size=(N_STATES, N_ACTIONS))  # P(s'|s,a), s' = N_STATES fails
    behaviour = np.stack([_composition(draw, 1) for _ in range(N_STATES)])  # π_β > 0 everywhere, in tenths
    policy = np.stack([_composition(draw, 0) for _ in range(N_STATES)])
    return transitions, behaviour, policy


def exact_q(transitions: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """Q^π_C by a linear solve (``policy`` in tenths): Q(s,a) = Σ_s' P(s'|s,a) [1{s' fails} + γ 1{s' safe} Σ_a' π(a'|s')
    Q(s',a')]."""
    n = N_STATES * N_ACTIONS
    p_safe = transitions[:, :, :N_STATES].reshape(n, N_STATES)
    to_pairs = np.zeros((N_STATES, n))
    for s in range(N_STATES):
        to_pairs[s, s * N_ACTIONS : (s + 1) * N_ACTIONS] = policy[s] / UNITS
    system = np.eye(n) - GAMMA * p_safe @ to_pairs
    return np.linalg.solve(system, transitions[:, :, N_STATES].reshape(n)).reshape(N_STATES, N_ACTIONS)


def _rows(counts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """State and action indices with each (s, a) repeated counts[s, a] times (d(s) uniform)."""
    states, actions = np.nonzero(counts)
    repeat = counts[states, actions]
    return torch.as_tensor(np.repeat(states, repeat)), torch.as_tensor(np.repeat(actions, repeat))


def conservative_fixed_point(transitions, behaviour, policy, alpha: float, iterations: int = 30) -> np.ndarray:
    """Iterate Q̂_{k+1} = argmin_Q conservative_critic_loss(Q; y = B^π Q̂_k) on exact expectations."""
    data_s, data_a = _rows(behaviour)
    pi_s, pi_a = _rows(policy)
    p = torch.as_tensor(transitions)
    pi = torch.as_tensor(policy / UNITS)
    q_hat = torch.zeros(N_STATES, N_ACTIONS, dtype=torch.float64)
    for _ in range(iterations):
        v_next = torch.cat([(pi * q_hat).sum(1), torch.ones(1, dtype=torch.float64)])  # V(fail) enters as c = 1
        backup = (p[:, :, :N_STATES] * GAMMA * v_next[:N_STATES]).sum(-1) + p[:, :, N_STATES]

        def loss(table: torch.Tensor, backup: torch.Tensor = backup) -> torch.Tensor:
            td, penalty = conservative_critic_loss(
                table[data_s, data_a][None], backup[data_s, data_a][None], table[pi_s, pi_a][None], alpha
            )
            return (td + penalty).sum()

        # the loss is quadratic in the table, so one Newton step from any point is its exact argmin
        start = torch.zeros(N_STATES * N_ACTIONS, dtype=torch.float64)
        flat = lambda x: loss(x.reshape(N_STATES, N_ACTIONS))  # noqa: E731
        gradient = torch.autograd.functional.jacobian(flat, start)
        hessian = torch.autograd.functional.hessian(flat, start)
        q_hat = (start - torch.linalg.solve(hessian, gradient)).reshape(N_STATES, N_ACTIONS)
    return q_hat.numpy()


def _values(q: np.ndarray, policy: np.ndarray) -> np.ndarray:
    return (policy / UNITS * q).sum(1)


@settings(max_examples=8, deadline=None)
@given(mdp=mdps(), alpha=st.sampled_from([0.05, 0.5, 2.0]))
def test_reversed_cql_over_estimates_the_policy_value_pointwise(mdp, alpha):
    """V̂ ≥ V^π_C in every state for α ≥ 0, and each step solves Q̂ = B^π Q̂ + α(π/π_β − 1)."""
    transitions, behaviour, policy = mdp
    q_hat = conservative_fixed_point(transitions, behaviour, policy, alpha)
    v_true = _values(exact_q(transitions, policy), policy)
    v_hat = _values(q_hat, policy)
    assert (v_hat >= v_true - 1e-7).all(), (v_hat, v_true)
    # the exact pointwise solution, with Q̂ at its fixed point
    bonus = alpha * (policy / behaviour - 1.0)
    pi = policy / UNITS
    v_next = np.append(_values(q_hat, policy), 1.0)
    backup = (transitions[:, :, :N_STATES] * GAMMA * v_next[:N_STATES]).sum(-1) + transitions[:, :, N_STATES]
    assert np.allclose(q_hat, backup + bonus, atol=1e-6)
    assert (pi * bonus).sum(1).min() >= -1e-12  # D(s) >= 0


@settings(max_examples=8, deadline=None)
@given(mdp=mdps(), alpha=st.sampled_from([0.05, 0.5, 2.0]))
def test_reversed_cql_is_exact_when_the_policy_is_the_behaviour_policy(mdp, alpha):
    """With π = π_β the penalty's gradient vanishes in expectation, so V̂ = V^π_C."""
    transitions, behaviour, _ = mdp
    q_hat = conservative_fixed_point(transitions, behaviour, behaviour, alpha)
    assert np.allclose(_values(q_hat, behaviour), _values(exact_q(transitions, behaviour), behaviour), atol=1e-7)


@settings(max_examples=6, deadline=None)
@given(mdp=mdps())
def test_over_estimate_grows_with_alpha(mdp):
    """Δ(α) = V̂ − V^π_C is non-decreasing in α in every state (and zero at α = 0)."""
    transitions, behaviour, policy = mdp
    v_true = _values(exact_q(transitions, policy), policy)
    gaps = [
        _values(conservative_fixed_point(transitions, behaviour, policy, a), policy) - v_true for a in (0.0, 0.5, 2.0)
    ]
    assert np.allclose(gaps[0], 0.0, atol=1e-7)
    assert (gaps[1] >= gaps[0] - 1e-7).all() and (gaps[2] >= gaps[1] - 1e-7).all()
