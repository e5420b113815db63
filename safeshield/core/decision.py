"""The decision core: given a risk model, observations and proposed actions, choose what runs.

- ``Decision``: what the core decided for a batch of environments (numpy arrays, one row each).
- ``decide``: proposal first, then batches of candidates for the rejected rows, then fallback.
- ``CandidateSampler``, ``PerturbationSampler``, ``PolicySampler``: where candidates come from.
- ``SELECTIONS``: how a safe candidate is chosen among several.

It is pure and batched over environments (one row per env), so the single-env wrapper, a
vector wrapper and library adapters all share it. The rule, for each row:

1. Score the proposal: one forward pass for the whole batch. A proposal with risk strictly
   below the threshold (Eq. 5 of SQRL uses ``<``) passes unchanged.
2. For the rejected rows only, draw ``k`` candidates per row and score all of them in one
   batched call (no Python loop over candidates). If any is below threshold, pick one of the
   safe ones by ``selection``. Rows still without a safe candidate get another round with a
   wider sampler, up to ``rounds`` rounds (the official SQRL code: 50 samples, up to 4 more
   rounds with the policy scale x1.5).
3. Otherwise fall back to the least risky action scored (candidates and the proposal) and
   flag ``fell_back``.

Why this is SQRL's masked policy and not an approximation of it: when the proposal and the
candidates are i.i.d. draws from the agent's policy pi (a ``PolicySampler``) and the
selection is ``"uniform"`` (the first safe draw), the executed action is the first draw of
pi that is safe, which is rejection sampling from pi(a|s) 1[Q(s,a) < eps] / Z(s), exactly
Eq. 3/5, truncated at ``rounds * k + 1`` draws. Scoring the proposal first therefore costs
one small forward pass in the common case, not k.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

__all__ = [
    "Decision",
    "decide",
    "CandidateSampler",
    "PerturbationSampler",
    "PolicySampler",
    "SELECTIONS",
    "RiskFunction",
]

RiskFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``risk(obs[B, obs_dim], actions[B, act_dim]) -> risk[B]``, in the units of the threshold."""

SELECTIONS = ("closest", "uniform", "riskiest")
"""How to choose among safe candidates.

- ``"closest"``: nearest to the proposal in bound-normalised distance (least intervention).
- ``"uniform"``: the first safe candidate in draw order; with candidates drawn from pi this is
  exactly SQRL's masked policy (Eq. 3). Picking "proportional to pi" among draws that already
  come from pi would sample pi squared: see the module docstring.
- ``"riskiest"``: the safe candidate with the highest risk, SQRL's pre-training rule (§6:
  "actions with a failure probability that are only just below the threshold").
"""


@dataclass(frozen=True)
class Decision:
    """One decision per row; ``action`` is what the environment executes."""

    action: np.ndarray  # (n, act_dim) executed actions
    risk: np.ndarray  # (n,) risk of the executed action
    proposal_risk: np.ndarray  # (n,) risk of the proposal
    intervened: np.ndarray  # (n,) bool: executed differs from the proposal
    fell_back: np.ndarray  # (n,) bool: no scored action was below threshold
    n_candidates: np.ndarray  # (n,) int: candidates scored besides the proposal


class CandidateSampler(Protocol):
    """Draw ``k`` candidate actions per row, inside the action bounds."""

    def __call__(
        self, obs: torch.Tensor, proposal: torch.Tensor, k: int, round_index: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Return a tensor of shape ``(rows, k, act_dim)``."""
        ...


class PerturbationSampler:
    """Gaussian perturbations of the proposal plus uniform draws over the box.

    The default when the agent's own distribution is unknown: most candidates stay near what
    the agent wanted (so ``"closest"`` changes little), a fraction covers the whole box so a
    safe action is found even when everything near the proposal is unsafe. Each round widens
    the perturbation by ``widen``.
    """

    def __init__(
        self,
        low: torch.Tensor,
        high: torch.Tensor,
        scale: float = 0.1,
        uniform_fraction: float = 0.25,
        widen: float = 1.5,
    ):
        if not 0.0 <= uniform_fraction <= 1.0:
            raise ValueError(f"uniform_fraction must be in [0, 1], got {uniform_fraction!r}")
        if scale <= 0 or widen < 1:
            raise ValueError(f"scale must be > 0 and widen >= 1, got scale={scale!r}, widen={widen!r}")
        self.low, self.high = low, high
        self.half_range = (high - low) / 2
        self.scale, self.uniform_fraction, self.widen = scale, uniform_fraction, widen

    def __call__(self, obs, proposal, k, round_index, generator):
        rows, act_dim = proposal.shape
        n_uniform = int(round(k * self.uniform_fraction))
        n_local = k - n_uniform
        std = self.half_range * (self.scale * self.widen**round_index)
        noise = torch.randn((rows, n_local, act_dim), generator=generator, dtype=proposal.dtype)
        local = proposal.unsqueeze(1) + noise * std
        uniform = torch.rand((rows, n_uniform, act_dim), generator=generator, dtype=proposal.dtype)
        uniform = self.low + uniform * (self.high - self.low)
        return torch.clamp(torch.cat([local, uniform], dim=1), self.low, self.high)


class PolicySampler:
    """Candidates drawn from the agent's own policy, as in both SQRL and CSC.

    ``sample(obs[m, obs_dim], n, generator) -> actions[m, n, act_dim]`` (or ``(actions,
    log_probs)``), in env units. An adapter attaches one of these when it knows the agent.
    """

    def __init__(self, sample: Callable, low: torch.Tensor, high: torch.Tensor):
        self.sample, self.low, self.high = sample, low, high

    def __call__(self, obs, proposal, k, round_index, generator):
        drawn = self.sample(obs, k, generator)
        actions = drawn[0] if isinstance(drawn, tuple) else drawn
        expected = (proposal.shape[0], k, proposal.shape[1])
        if tuple(actions.shape) != expected:
            raise ValueError(f"policy sampler returned shape {tuple(actions.shape)}, expected {expected}")
        return torch.clamp(actions.to(proposal.dtype), self.low, self.high)


def _choose_safe(risk, safe, candidates, proposal, half_range, selection):
    """Index per row of the chosen safe candidate (rows without one get an arbitrary index)."""
    if selection == "closest":
        key = (((candidates - proposal.unsqueeze(1)) / half_range) ** 2).sum(-1)
    elif selection == "uniform":
        key = torch.arange(risk.shape[1], dtype=risk.dtype).expand_as(risk)
    elif selection == "riskiest":
        key = -risk
    else:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    return torch.where(safe, key, torch.full_like(key, float("inf"))).argmin(dim=1)


def decide(
    risk_fn: RiskFunction,
    obs: torch.Tensor,
    proposal: torch.Tensor,
    threshold: float,
    sampler: CandidateSampler,
    generator: torch.Generator,
    *,
    k: int = 50,
    rounds: int = 1,
    selection: str = "closest",
    half_range: torch.Tensor | None = None,
) -> Decision:
    """Apply the proposal -> candidates -> fallback rule to every row (see module docstring).

    ``obs`` is ``(n, obs_dim)``, ``proposal`` ``(n, act_dim)`` and inside the bounds. Call it
    under ``torch.inference_mode()``; it never mutates its inputs.
    """
    proposal_risk = risk_fn(obs, proposal)
    n = proposal.shape[0]
    rejected_rows = torch.nonzero(proposal_risk >= threshold).flatten()
    action, risk = proposal, proposal_risk
    intervened = np.zeros(n, dtype=bool)
    fell_back = np.zeros(n, dtype=bool)
    n_candidates = np.zeros(n, dtype=np.int64)
    if rejected_rows.numel():
        action, risk = proposal.clone(), proposal_risk.clone()
        scale = half_range if half_range is not None else torch.ones(proposal.shape[1], dtype=proposal.dtype)
        found = _resample(
            risk_fn, obs, proposal, threshold, sampler, generator, rejected_rows,
            action, risk, n_candidates, k, rounds, selection, scale,
        )
        rows = rejected_rows.numpy()
        fell_back[rows] = ~found
        intervened[rows] = (action[rejected_rows] != proposal[rejected_rows]).any(dim=1).numpy()
    return Decision(
        action=action.numpy(),
        risk=risk.numpy(),
        proposal_risk=proposal_risk.numpy(),
        intervened=intervened,
        fell_back=fell_back,
        n_candidates=n_candidates,
    )


def _resample(risk_fn, obs, proposal, threshold, sampler, generator, rows, action, risk, n_candidates,
              k, rounds, selection, half_range) -> np.ndarray:
    """Fill ``action``/``risk`` for ``rows`` in place; return which of them found a safe action.

    Until a row finds a safe candidate, ``action``/``risk`` hold its least risky action so far
    (the proposal to start with), which is the fallback if no round succeeds.
    """
    found = np.zeros(rows.numel(), dtype=bool)
    for round_index in range(rounds):
        active = torch.from_numpy(np.flatnonzero(~found))
        if active.numel() == 0:
            break
        env_rows = rows[active]
        row_obs, row_proposal = obs[env_rows], proposal[env_rows]
        candidates = sampler(row_obs, row_proposal, k, round_index, generator)
        flat_obs = row_obs.repeat_interleave(k, dim=0)
        candidate_risk = risk_fn(flat_obs, candidates.reshape(-1, candidates.shape[-1])).reshape(-1, k)
        n_candidates[env_rows.numpy()] += k
        safe = candidate_risk < threshold
        has_safe = safe.any(dim=1)
        pick = torch.where(
            has_safe,
            _choose_safe(candidate_risk, safe, candidates, row_proposal, half_range, selection),
            candidate_risk.argmin(dim=1),
        )
        picked_risk = candidate_risk.gather(1, pick.unsqueeze(1)).squeeze(1)
        improves = has_safe | (picked_risk < risk[env_rows])
        update = env_rows[improves]
        action[update] = candidates[torch.arange(len(pick))[improves], pick[improves]]
        risk[update] = picked_risk[improves]
        found[active.numpy()] = has_safe.numpy()
    return found
