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
Eq. 3/5, truncated at ``rounds * k + 1`` draws (unless ``widen_policy`` makes the later
rounds widen beyond pi: see ``PolicySampler``). Scoring the proposal first therefore costs
one small forward pass in the common case, not k.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

__all__ = [
    "Decision",
    "decide",
    "decide_discrete",
    "CandidateSampler",
    "PerturbationSampler",
    "PolicySampler",
    "SELECTIONS",
    "RiskFunction",
]

RiskFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``risk(obs[B, obs_dim], actions[B, act_dim]) -> risk[B]``, in the units of the threshold."""

SELECTIONS = ("closest", "uniform", "riskiest", "safest")
"""How to choose among safe candidates.

- ``"closest"``: nearest to the proposal in bound-normalised distance (least intervention).
- ``"uniform"``: the first safe candidate in draw order; with candidates drawn from pi this is
  exactly SQRL's masked policy (Eq. 3). Picking "proportional to pi" among draws that already
  come from pi would sample pi squared: see the module docstring.
- ``"riskiest"``: the safe candidate with the highest risk, SQRL's pre-training rule (§6:
  "actions with a failure probability that are only just below the threshold").
- ``"safest"``: the least risky candidate: once the proposal is refused, act as a recovery
  policy that minimises the risk (Recovery RL, Thananjeyan et al. 2021, arXiv:2010.15920, §4),
  rather than as the smallest change that only just passes.
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

    @classmethod
    def accepted(cls, proposal: np.ndarray, proposal_risk: np.ndarray) -> Decision:
        """Every row's proposal passes unchanged (the common case, built without scoring more).

        Its flags and counts are shared read-only zeros, one set per batch size: nothing to allocate.
        """
        none, zero = _zeros(proposal.shape[0])
        return cls(proposal, proposal_risk, proposal_risk, none, none, zero)


_ZEROS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _zeros(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``(n,)`` False flags and int64 zero counts, made once per ``n``."""
    pair = _ZEROS.get(n)
    if pair is None:
        flags, counts = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
        flags.flags.writeable = counts.flags.writeable = False
        pair = _ZEROS[n] = (flags, counts)
    return pair


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
        self.span = high - low
        self.half_range = self.span / 2
        self.scale, self.uniform_fraction, self.widen = scale, uniform_fraction, widen
        self._std: dict[int, torch.Tensor] = {}  # round -> the perturbation's std, made once per round

    def __call__(self, obs, proposal, k, round_index, generator):
        rows, act_dim = proposal.shape
        n_uniform = int(round(k * self.uniform_fraction))
        n_local = k - n_uniform
        std = self._std.get(round_index)
        if std is None:
            std = self._std[round_index] = self.half_range * (self.scale * self.widen**round_index)
        noise = torch.randn((rows, n_local, act_dim), generator=generator, dtype=proposal.dtype)
        local = proposal.unsqueeze(1) + noise * std
        uniform = torch.rand((rows, n_uniform, act_dim), generator=generator, dtype=proposal.dtype)
        uniform = self.low + uniform * self.span
        return torch.clamp(torch.cat([local, uniform], dim=1), self.low, self.high)


class PolicySampler:
    """Candidates drawn from the agent's own policy, as in both SQRL and CSC.

    ``sample(obs[m, obs_dim], n, generator) -> actions[m, n, act_dim]`` (or ``(actions,
    log_probs)``), in env units. An adapter attaches one of these when it knows the agent.

    The first round draws from pi. Later rounds, reached only when no draw from pi was safe,
    draw from ``wider`` when given: the official SQRL code widens the policy's scale x1.5 per
    extra round, which a black-box policy does not allow, so the shield passes Gaussian
    perturbations of the proposal (itself a draw from pi) whose scale grows each round.
    Without them a confident policy heading for danger offers nothing safe, and the shield
    falls back to the least risky of its own bad ideas. The shield enables this only with
    ``widen_policy=True``: measured on DrunkSpider (``safeshield demo``), widening, with or
    without uniform candidates, cut SQRL's fine-tuning failures to 0-1 in 6k steps but the
    agent then never made progress on the task (final return -3.7 to -5 against 4.7 without),
    because a critic made pessimistic by early exploration could always find a "safe" move
    away from the goal. Off, the paper's rule holds: k draws from pi, else the least risky.
    """

    def __init__(self, sample: Callable, low: torch.Tensor, high: torch.Tensor, wider: CandidateSampler | None = None):
        self.sample, self.low, self.high, self.wider = sample, low, high, wider

    def __call__(self, obs, proposal, k, round_index, generator):
        if round_index > 0 and self.wider is not None:
            return self.wider(obs, proposal, k, round_index, generator)
        drawn = self.sample(obs, k, generator)
        actions = drawn[0] if isinstance(drawn, tuple) else drawn
        expected = (proposal.shape[0], k, proposal.shape[1])
        if tuple(actions.shape) != expected:
            raise ValueError(f"policy sampler returned shape {tuple(actions.shape)}, expected {expected}")
        return torch.clamp(actions.to(proposal.dtype), self.low, self.high)


def _choose_safe(
    risk: np.ndarray,
    safe: np.ndarray,
    candidates: np.ndarray,
    proposal: np.ndarray,
    half_range: np.ndarray,
    selection: str,
) -> np.ndarray:
    """Index per row of the chosen safe candidate (rows without one get an arbitrary index)."""
    if selection == "closest":
        key = (((candidates - proposal[:, None, :]) / half_range) ** 2).sum(-1)
    elif selection == "uniform":
        key = np.broadcast_to(np.arange(risk.shape[1], dtype=np.float32), risk.shape)
    elif selection == "riskiest":
        key = -risk
    elif selection == "safest":
        key = risk
    else:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    return np.where(safe, key, np.inf).argmin(axis=1)


def decide(
    risk_fn: RiskFunction,
    obs: torch.Tensor,
    proposal: torch.Tensor,
    threshold: float,
    sampler: CandidateSampler,
    generator: torch.Generator | Sequence[torch.Generator],
    *,
    k: int = 50,
    rounds: int = 1,
    selection: str = "closest",
    half_range: np.ndarray | None = None,
    proposal_risk: np.ndarray | None = None,
    regret: float | None = None,
) -> Decision:
    """Apply the proposal -> candidates -> fallback rule to every row (see module docstring).

    ``obs`` is ``(n, obs_dim)``, ``proposal`` ``(n, act_dim)`` and inside the bounds. Call it
    under ``torch.inference_mode()``; it never mutates its inputs. A front end that already
    scored the proposals (a leaner single-row path) passes ``proposal_risk`` to skip that pass.
    Risks are compared in float32, the dtype the models compute in.

    ``generator``: one ``torch.Generator`` for every row, or one per row. With one per row,
    each row's candidates are drawn with its own generator (the sampler is called row by row;
    scoring stays one batched call per round), so a row decides the same whatever the other
    rows do: what lets N environments share one model and decide as N single shields would.
    """
    threshold = np.float32(threshold)
    if proposal_risk is None:
        proposal_risk = risk_fn(obs, proposal).numpy()
    proposal_np = proposal.numpy()
    rejected = np.flatnonzero(~(np.asarray(proposal_risk) < threshold))  # a NaN risk is never safe
    if rejected.size == 0:
        return Decision.accepted(proposal_np, np.asarray(proposal_risk, dtype=np.float32))
    n = proposal_np.shape[0]
    if not isinstance(generator, torch.Generator) and len(generator) != n:
        raise ValueError(f"generator must be one torch.Generator or one per row ({n}), got {len(generator)}")
    search = _Search(
        risk_fn,
        obs,
        proposal,
        threshold,
        sampler,
        generator,
        k,
        rounds,
        selection,
        half_range if half_range is not None else np.ones(proposal_np.shape[1], dtype=np.float32),
    )
    state = _Best(proposal_np.copy(), np.asarray(proposal_risk, dtype=np.float32).copy(), np.zeros(n, dtype=np.int64))
    found = search.run(rejected, state) if regret is None else search.run_relative(rejected, state, np.float32(regret))
    intervened = np.zeros(n, dtype=bool)
    fell_back = np.zeros(n, dtype=bool)
    fell_back[rejected] = ~found
    intervened[rejected] = (state.action[rejected] != proposal_np[rejected]).any(axis=1)
    return Decision(
        action=state.action,
        risk=state.risk,
        proposal_risk=np.asarray(proposal_risk),
        intervened=intervened,
        fell_back=fell_back,
        n_candidates=state.n_candidates,
    )


@dataclass
class _Best:
    """Per row: the action chosen so far, its risk, and how many candidates were scored."""

    action: np.ndarray  # (n, act_dim)
    risk: np.ndarray  # (n,) float32
    n_candidates: np.ndarray  # (n,) int64


@dataclass(frozen=True)
class _Search:
    """The fixed inputs of the resampling rounds (what ``decide`` was called with)."""

    risk_fn: RiskFunction
    obs: torch.Tensor
    proposal: torch.Tensor
    threshold: np.float32
    sampler: CandidateSampler
    generator: torch.Generator | Sequence[torch.Generator]
    k: int
    rounds: int
    selection: str
    half_range: np.ndarray

    def draw(
        self, rows: np.ndarray, row_obs: torch.Tensor, row_proposal: torch.Tensor, round_index: int
    ) -> torch.Tensor:
        """``(len(rows), k, act_dim)`` candidates: one call for all rows, or row by row with each row's generator."""
        if isinstance(self.generator, torch.Generator):
            return self.sampler(row_obs, row_proposal, self.k, round_index, self.generator)
        if rows.size == 1:  # one env: its generator, nothing to concatenate
            return self.sampler(row_obs, row_proposal, self.k, round_index, self.generator[rows[0]])
        return torch.cat(
            [
                self.sampler(row_obs[i : i + 1], row_proposal[i : i + 1], self.k, round_index, self.generator[row])
                for i, row in enumerate(rows)
            ]
        )

    def run(self, rows: np.ndarray, best: _Best) -> np.ndarray:
        """Fill ``best`` for ``rows`` in place; return which of them found a safe action.

        Until a row finds a safe candidate, ``best`` holds its least risky action so far (the
        proposal to start with), which is the fallback if no round succeeds. Sampling and
        scoring are one batched torch call per round; the bookkeeping is numpy on small arrays.
        """
        k = self.k
        found = np.zeros(rows.size, dtype=bool)
        for round_index in range(self.rounds):
            active = np.flatnonzero(~found)
            if active.size == 0:
                break
            env_rows = rows[active]
            index = torch.from_numpy(env_rows)
            row_obs, row_proposal = self.obs[index], self.proposal[index]
            candidates_t = self.draw(env_rows, row_obs, row_proposal, round_index)
            act_dim = candidates_t.shape[-1]
            flat_obs = row_obs.unsqueeze(1).expand(-1, k, -1).reshape(-1, row_obs.shape[-1])
            candidate_risk = self.risk_fn(flat_obs, candidates_t.reshape(-1, act_dim)).numpy().reshape(-1, k)
            candidates = candidates_t.numpy()
            best.n_candidates[env_rows] += k
            safe = candidate_risk < self.threshold  # NaN: never safe
            has_safe = safe.any(axis=1)
            pick = np.where(
                has_safe,
                _choose_safe(candidate_risk, safe, candidates, row_proposal.numpy(), self.half_range, self.selection),
                np.where(np.isnan(candidate_risk), np.inf, candidate_risk).argmin(axis=1),  # NaN: never the least risky
            )
            lines = np.arange(pick.size)
            picked_risk = candidate_risk[lines, pick]
            best_risk = best.risk[env_rows]
            improves = has_safe | (picked_risk < best_risk) | (np.isnan(best_risk) & ~np.isnan(picked_risk))
            best.action[env_rows[improves]] = candidates[lines[improves], pick[improves]]
            best.risk[env_rows[improves]] = picked_risk[improves]
            found[active] = has_safe
        return found

    def run_relative(self, rows: np.ndarray, best: _Best, regret: np.float32) -> np.ndarray:
        """The relative rule for ``rows`` (rejected by the threshold): score every round's candidates,
        then allow any action within ``regret`` of the least risk found, max(threshold, least + regret).

        The proposal stays when it is within that limit; otherwise the allowed candidate chosen by
        ``selection`` runs. The least risky action scored is always allowed, so a row falls back
        (returns False) only when no risk could be computed (NaN everywhere).
        """
        index = torch.from_numpy(rows)
        row_obs, row_proposal = self.obs[index], self.proposal[index]
        candidates_t = torch.cat([self.draw(rows, row_obs, row_proposal, r) for r in range(self.rounds)], dim=1)
        count, act_dim = candidates_t.shape[1], candidates_t.shape[2]
        flat_obs = row_obs.unsqueeze(1).expand(-1, count, -1).reshape(-1, row_obs.shape[-1])
        risk = self.risk_fn(flat_obs, candidates_t.reshape(-1, act_dim)).numpy().reshape(-1, count)
        candidates = candidates_t.numpy()
        best.n_candidates[rows] += count
        own = best.risk[rows]
        least = np.minimum(np.where(np.isnan(risk), np.inf, risk).min(axis=1), np.where(np.isnan(own), np.inf, own))
        limit = np.maximum(self.threshold, least + regret)
        keep = own <= limit  # NaN: never kept
        allowed = risk <= limit[:, None]  # NaN: never allowed; the least risky always is
        has_allowed = allowed.any(axis=1)
        pick = _choose_safe(risk, allowed, candidates, row_proposal.numpy(), self.half_range, self.selection)
        change = ~keep & has_allowed
        lines = np.flatnonzero(change)
        best.action[rows[change]] = candidates[lines, pick[change]]
        best.risk[rows[change]] = risk[lines, pick[change]]
        return keep | has_allowed


DiscretePolicy = Callable[[np.ndarray], tuple[str, np.ndarray]]
"""``policy(rows) -> ("probs", p[len(rows), n])`` or ``("draws", a[len(rows), k])`` for a Discrete space:
the agent's action probabilities at those rows' observations, or ``k`` of its draws (indices, in order)."""


def decide_discrete(
    risk_all: np.ndarray,
    proposal: np.ndarray,
    threshold: float,
    generators: list[torch.Generator],
    policy: DiscretePolicy | None = None,
    regret: float | None = None,
    selection: str = "uniform",
) -> Decision:
    """Mask a Discrete action space exactly, given the risk of every action of every row.

    ``risk_all`` is ``(m, n)`` (one forward pass scores all ``n`` actions), ``proposal`` the
    ``(m,)`` proposed indices (0-based), ``generators`` one per row. An action is *allowed* when
    its risk is strictly below the threshold or, with ``regret`` set (the relative rule of
    ``decide``), at most max(threshold, the row's least risk + ``regret``). For each row:

    1. an allowed proposal passes unchanged;
    2. else, if some action is allowed: with the agent's probabilities (``policy`` returning
       ``"probs"``), one draw of pi restricted to the allowed set, pi(a|s) 1[allowed] / Z(s) exactly
       (SQRL Eq. 3 with nothing truncated); with only draws of pi (``"draws"``), the first allowed
       draw (rejection sampling), else the safest action; with no policy, or with ``selection``
       ``"safest"``, the safest action (every other rule draws from pi, as SQRL Eq. 3 does);
    3. else the least risky action, flagged ``fell_back`` (with ``regret`` set, only when every
       risk of the row is NaN: the least risky action is always allowed).

    A NaN risk is never allowed and never the least risky. ``action`` holds indices (int64).
    """
    threshold = np.float32(threshold)
    risk_all = np.asarray(risk_all, dtype=np.float32)
    m, n = risk_all.shape
    lines = np.arange(m)
    proposal = np.asarray(proposal, dtype=np.int64).reshape(m)
    ordered = np.where(np.isnan(risk_all), np.inf, risk_all)  # NaN: never the least risky
    allowed = risk_all < threshold  # NaN: never allowed
    if regret is not None:  # the relative rule, as ``decide``'s: allow up to max(threshold, least + regret)
        allowed |= risk_all <= np.maximum(threshold, ordered.min(axis=1, keepdims=True) + np.float32(regret))
    proposal_risk = risk_all[lines, proposal]
    action = proposal.copy()
    rejected = np.flatnonzero(~allowed[lines, proposal])
    fell_back = np.zeros(m, dtype=bool)
    n_candidates = np.zeros(m, dtype=np.int64)
    if rejected.size:
        n_candidates[rejected] = n - 1
        safest = ordered[rejected].argmin(axis=1)
        unknown = np.isnan(risk_all[rejected]).all(axis=1)  # nothing could be scored: keep the proposal
        action[rejected] = np.where(
            unknown, proposal[rejected], safest
        )  # the safest: allowed if any is, else the fallback
        has_allowed = allowed[rejected].any(axis=1)
        fell_back[rejected] = ~has_allowed
        masked = rejected[has_allowed]
        if masked.size and policy is not None and selection != "safest":
            kind, values = policy(masked)
            values = np.asarray(values)
            for j, row in enumerate(masked):
                choice = _from_policy(kind, values[j], allowed[row], generators[row])
                if choice is not None:
                    action[row] = choice
    risk = risk_all[lines, action]
    return Decision(action, risk, proposal_risk, action != proposal, fell_back, n_candidates)


def _from_policy(kind: str, values: np.ndarray, safe: np.ndarray, generator: torch.Generator) -> int | None:
    """One row's safe action from the agent's probabilities or draws; None if pi gives the safe set no mass."""
    if kind == "probs":
        weights = np.where(safe, np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0).clip(min=0.0), 0.0)
        total = weights.sum()
        if not total > 0:
            return None
        u = float(torch.rand((), generator=generator, dtype=torch.float64)) * total
        return int(min(np.searchsorted(np.cumsum(weights), u, side="right"), np.flatnonzero(weights)[-1]))
    if kind == "draws":
        draws = np.asarray(values, dtype=np.int64).reshape(-1)
        valid = draws[(draws >= 0) & (draws < safe.size)]
        hits = valid[safe[valid]]
        return int(hits[0]) if hits.size else None
    raise ValueError(f"a discrete policy returns 'probs' or 'draws', got {kind!r}")
