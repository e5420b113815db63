"""Does the action a shield prefers avert the failure? Counterfactual rollouts from saved MuJoCo states.

The quality report's ROC AUC asks whether the proposal's risk foresees a failure: it ranks
*states*. A shield helps only if it also ranks the *actions* it can choose at a state, and if one
of them is safer than the agent's. A simulator whose state can be saved and restored answers
that directly (docs/effectiveness.md, "Does the action the shield prefers avert the failure?"):

- ``held_out_states``: states of the agent's own episodes (no shield), binned by how many steps
  before the episode's failure they came, in units of the shield's horizon H (``BINS``);
- ``outcome``: from a restored state, one action then the agent's deterministic policy for up to
  ``length`` steps; ``gamma ** (t - 1)`` for a failure at step t, else 0 (with gamma = 1 - 1/H,
  the units of the critic's ``"nstep"`` target);
- ``action_ranking``: per bin, the rank correlation of the critic's risk with the outcome across
  a state's actions (the proposal and uniform draws), the gap the critic sees, and the true gaps
  of its choice and of the best action (what a perfect one-step shield could buy).

``policy(obs, deterministic) -> action`` is the agent (an SB3 agent: ``lambda o, d:
agent.predict(o, deterministic=d)[0]``). The model should be frozen: nothing here trains it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from safeshield.core.critic import SafetyCritic
from safeshield.core.validation import check_count

__all__ = ["BINS", "action_ranking", "average_ranks", "held_out_states", "mujoco_simulator", "outcome", "spearman"]

BINS = (("0-0.5H", 0.0, 0.5), ("0.5-1H", 0.5, 1.0), ("1-2H", 1.0, 2.0), ("far", 2.0, math.inf))
"""Steps before the episode's failure, in units of the horizon H: (label, from, to]."""

Policy = Callable[[np.ndarray, bool], np.ndarray]
State = tuple[np.ndarray, np.ndarray, np.ndarray]  # (qpos, qvel, obs)


def mujoco_simulator(env: gym.Env):
    """``env``'s unwrapped MuJoCo env, whose state ``set_state(qpos, qvel)`` restores; else a TypeError."""
    sim = env.unwrapped
    data = getattr(sim, "data", None)
    if not callable(getattr(sim, "set_state", None)) or not hasattr(data, "qpos") or not hasattr(data, "qvel"):
        raise TypeError(
            f"env must be a MuJoCo env whose state set_state(qpos, qvel) restores (gymnasium's MujocoEnv), "
            f"got {type(sim).__name__}: action ranking replays actions from saved simulator states"
        )
    return sim


def held_out_states(
    sim, policy: Policy, rng: np.random.Generator, horizon: int, per_bin: int, max_episodes: int = 300
) -> dict[str, list[State]]:
    """Up to ``per_bin`` (qpos, qvel, obs) per bin from ``policy``'s stochastic episodes, no shield."""
    found: dict[str, list] = {label: [] for label, _, _ in BINS}
    for _ in range(max_episodes):
        obs, _ = sim.reset(seed=int(rng.integers(2**31)))
        trajectory = []
        for _ in range(1_000):
            trajectory.append((sim.data.qpos.copy(), sim.data.qvel.copy(), obs.copy()))
            obs, _, terminated, truncated, _ = sim.step(policy(obs, False))
            if terminated or truncated:
                break
        for i, state in enumerate(trajectory):
            before = (len(trajectory) - i) / horizon if terminated else math.inf
            label = next(label for label, low, high in BINS if low < before <= high)
            found[label].append(state)
        if all(len(v) >= 4 * per_bin for v in found.values()):
            break
    return {label: [v[i] for i in rng.permutation(len(v))[:per_bin]] for label, v in found.items()}


def outcome(sim, policy: Policy, state: State, first_action: np.ndarray, length: int, gamma: float) -> float:
    """gamma ** (t - 1) if ``first_action`` then ``policy`` (deterministic) fails at step t <= ``length``, else 0."""
    qpos, qvel, _ = state
    sim.set_state(qpos, qvel)
    obs, _, terminated, _, _ = sim.step(first_action)
    for t in range(1, length + 1):
        if terminated:
            return gamma ** (t - 1)
        obs, _, terminated, _, _ = sim.step(policy(obs, True))
    return 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation (average ranks for ties); nan when either side is constant."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(average_ranks(x), average_ranks(y))[0, 1])


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def action_ranking(
    model, env: gym.Env, policy: Policy, *, per_bin: int = 40, candidates: int = 16, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per bin of ``BINS``: how well ``model``'s risk ranks a state's actions by their true outcome.

    At each of up to ``per_bin`` held-out states per bin, the critic scores ``policy``'s
    (stochastic) proposal and ``candidates`` uniform actions; each is rolled out for ``2 H``
    steps (``outcome``). Returned per bin: ``states``; ``spearman`` (mean rank correlation of
    risk and outcome; None when no state's outcomes differ); ``proposal_risk``; ``critic_gap``
    (risk of the proposal - least risk); ``proposal_outcome``; ``true_gap_of_choice`` (outcome of
    the proposal - outcome of the least risky action) and ``true_gap_of_best`` (- the best
    outcome); ``best_avoids_failure`` / ``proposal_avoids_failure`` (share of states whose best /
    proposed action does not fail within 2 H).
    """
    if not isinstance(model, SafetyCritic):
        raise TypeError(f"model must be a reject/resample shield model (SafetyCritic), got {type(model).__name__}")
    check_count("per_bin", per_bin)
    check_count("candidates", candidates, minimum=0)
    sim = mujoco_simulator(env)
    horizon = model.config.horizon
    gamma = 1.0 - 1.0 / horizon
    rng = np.random.default_rng(seed)
    low, high = sim.action_space.low, sim.action_space.high
    out = {}
    for label, states in held_out_states(sim, policy, rng, horizon, per_bin).items():
        rows = []
        for state in states:
            obs = state[2]
            actions = np.vstack([policy(obs, False), rng.uniform(low, high, (candidates, low.size))]).astype(np.float32)
            with torch.inference_mode():
                risk = model.risk_numpy(np.repeat(obs[None], len(actions), 0), actions)
            truth = np.array([outcome(sim, policy, state, a, 2 * horizon, gamma) for a in actions])
            rows.append((risk, truth))
        if rows:
            out[label] = _bin_statistics(rows)
    return out


def _bin_statistics(rows: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """``action_ranking``'s numbers for one bin: ``rows`` of (risk, outcome), proposal first."""
    choice = [int(np.argmin(risk)) for risk, _ in rows]
    return {
        "states": len(rows),
        "spearman": float(np.nanmean([spearman(r, t) for r, t in rows]))
        if any(np.ptp(t) > 0 for _, t in rows)
        else None,
        "proposal_risk": float(np.mean([r[0] for r, _ in rows])),
        "critic_gap": float(np.mean([r[0] - r.min() for r, _ in rows])),
        "proposal_outcome": float(np.mean([t[0] for _, t in rows])),
        "true_gap_of_choice": float(np.mean([t[0] - t[c] for (_, t), c in zip(rows, choice)])),
        "true_gap_of_best": float(np.mean([t[0] - t.min() for _, t in rows])),
        "best_avoids_failure": float(np.mean([t.min() == 0.0 for _, t in rows])),
        "proposal_avoids_failure": float(np.mean([t[0] == 0.0 for _, t in rows])),
    }
