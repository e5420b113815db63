"""The reject/resample half of the model family: a risk critic every candidate is scored by.

- ``CriticConfig``: the decision and learning-schedule knobs common to SQRL, CSC and QEnsemble.
- ``SafetyCritic``: scores ``(obs, actions)`` batches, stores transitions, learns on a schedule
  and knows its threshold; the wrappers (``safeshield.wrappers.ShieldWrapper`` and its vector
  twin) run it through ``core.step.ShieldStepper`` and ``core.decision.decide``.

A method subclasses ``SafetyCritic`` and its config subclasses ``CriticConfig``; it implements
``build``, ``risk`` (batched, differentiable outside ``inference_mode``), ``threshold`` and
``learn_step``. Everything else (buffer, schedule, seeding, checkpoints, space checks) lives here
and in ``core.model.SafetyModel`` once.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from safeshield.core.buffer import Batch, TransitionBuffer
from safeshield.core.decision import SELECTIONS
from safeshield.core.model import SafetyConfig, SafetyModel
from safeshield.core.networks import CriticEnsemble, RunningMoments, rescale_output
from safeshield.core.spaces import action_codec, check_observation_space
from safeshield.core.targets import (
    SettledTargets,
    balanced_rows,
    doubling_lengths,
    horizon_gamma,
    horizon_steps,
    prefix_targets,
)
from safeshield.core.threshold import BudgetThreshold, WarmUp
from safeshield.core.validation import (
    check_choice,
    check_count,
    check_float_array,
    check_interval,
    check_positive,
    check_probabilities,
)

__all__ = [
    "BOOTSTRAPS",
    "BUDGET_UNITS",
    "ENSEMBLE_RISKS",
    "FAILURES",
    "TARGETS",
    "CriticConfig",
    "SafetyCritic",
    "flat_dim",
]

GUARD_SHARE = 0.25  # our choice: the guard backs off while more than a quarter of recent steps fell back
BUDGET_UNITS = ("steps", "episode")
"""What ``budget`` counts: failures per 1000 env steps, or failures per episode (a cost limit per
episode, CSC's χ); ``core.threshold.BudgetThreshold`` adapts the threshold to either."""
ADAPTIVE_FLOOR = 0.01  # the lowest threshold a budget may set (or the nominal one, where that is lower but > 0)
GUARD_CEILING = 1.01  # x the risk's upper bound: above every risk
WEIGHT_CHECK_EVERY = 64  # updates between two full reads of the weights (a non-finite loss is caught at once)
REFIT_INPUTS_EVERY = 100  # updates between two refits of the observation standardisation (normalize_obs)

ENSEMBLE_RISKS = ("max", "mean")
"""How ``n_critics`` members' risks combine into one: ``"max"`` the most pessimistic member (Leave No
Trace's rule; an action the members disagree on counts as risky), ``"mean"`` their average."""
BOOTSTRAPS = ("executed", "policy")
"""Which next action a' the target critic is evaluated at, Q̄(s', a'): ``"executed"`` the action the
shielded agent ran at s' (SARSA: the risk of the policy that acts, shield included), ``"policy"`` a
fresh draw of the agent's own unconstrained pi (SQRL App. D, CSC Eq. 2) when a policy sampler is
attached, else the executed one."""
TARGETS = ("nstep", "safest", "window", "td")
"""Risk targets (``safeshield.core.targets``): ``"nstep"`` the ``horizon``-step return of the
indicator discounted by 1 - 1/horizon, bootstrapped: the risk if the shielded agent acts on as it
did; ``"safest"`` the same discount, the least of the k-step targets for k = 1, 2, 4, ..., horizon,
each bootstrapped at the least risky of ``BOOTSTRAP_CANDIDATES`` actions: the risk if, from some
step on, the shield took the least risky action (docs/effectiveness.md); ``"window"`` P(failure
within ``horizon`` steps), Monte-Carlo along the stored episode; ``"td"`` the method's published
one-step target."""
DISCOUNTED_TARGETS = ("nstep", "safest")
"""Targets discounted by 1 - 1/horizon (``horizon_gamma``)."""
BOOTSTRAP_CANDIDATES = 16
"""Actions ``"safest"`` scores at each bootstrap state besides the executed one: half drawn from the
attached policy, the rest uniformly over the box (all uniform without a policy); every action of a
discrete space."""
FAILURES = ("auto", "first", "count")
"""What the risk measures. ``"first"``: the discounted chance of the next failure (the papers' backups
stop at a failure, which ends the episode in their tasks). ``"count"``: the discounted number of failure
steps ahead, for an indicator that marks a condition that lasts (a per-step cost while inside a
hazard): there the next step fails whatever the action, every action's chance of a failure is the
same, and only counting tells the way out from staying in. ``"auto"``: ``"first"`` until a stored
failure does not end its episode, then ``"count"``. Where every failure ends its episode both are the
same target."""


@dataclass(frozen=True)
class CriticConfig(SafetyConfig):
    """Knobs shared by every reject/resample shield. Each method overrides the defaults it cites."""

    n_candidates: int = 50  # official SQRL code (SafeActorPolicyRSVar): 50 samples per round
    resample_rounds: int = 5  # official SQRL code: up to 4 more rounds after the first
    widen: float = 1.5  # official SQRL code: sampling scale x1.5 per extra round
    perturbation_scale: float = 0.1  # our choice: candidate std as a fraction of the half-range
    uniform_fraction: float = 0.25  # our choice: share of candidates drawn uniformly over the box
    selection: str = "closest"  # our choice without a policy sampler: least intervention
    widen_policy: bool = (
        True  # official code's widening: rounds after the first perturb the proposal ever wider (paper §6: pi only)
    )
    n_critics: int = 1  # SQRL and CSC: one critic; CSC's Q-ensembles baseline uses 20 (App. A.6)
    ensemble_risk: str = "max"  # our choice for n_critics > 1: the most pessimistic member (Leave No Trace)
    buffer_capacity: int = 50_000  # our choice (paper silent): holds a DrunkSpider pre-training run
    batch_size: int = 256  # our choice (paper silent), common SAC value
    learning_starts: int = 500  # our choice: no update before this many stored transitions, unless warmup_failures
    # failures are stored first (they start learning: to defer it, set warmup_failures=0 as well)
    updates_per_step: float = 1.0  # gradient steps per stored transition (update-to-data ratio); may be < 1
    train_every: int = 1  # run the updates owed so far every this many env steps, back to back (it batches
    # them; how many there are is updates_per_step's: one every 10 steps is train_every=10, updates_per_step=0.1)
    # -- risk targets, thresholds and warm-up (core.targets, core.threshold; docs/effectiveness.md)
    preset: str = "default"  # "paper": the method exactly as published (the class's PRESETS)
    # The horizon should span the slowest failure the agent can still avert, and no more: 0.5 s fits
    # falls; a CartPole drifting off its track needs about 2 s (docs/effectiveness.md, measured).
    horizon: int = 20  # our choice: failure horizon in env steps, for envs that do not declare their dt
    horizon_seconds: float | None = 0.5  # our choice: the horizon in time where the env declares dt (sets horizon)
    target: str = "window"  # see TARGETS; "td" is the papers' one-step backup
    balance: float = 0.5  # our choice: share of each minibatch from transitions a failure followed within horizon
    budget: float | None = None  # failures the threshold adapts to (overspent: regret too), per budget_unit
    budget_unit: str = "steps"  # our choice: per 1000 env steps; "episode" for a cost limit per episode (BUDGET_UNITS)
    warmup_failures: int = 5  # our choice: no rejection before this many failures were stored ...
    warmup_updates: int = 250  # ... and this many updates were made (run at once when those failures are stored)
    guard: bool = True  # our choice: raise the threshold while the shield falls back on most steps
    regret: float | None = None  # relative rule: above the threshold, allow risk up to the least found + regret
    bootstrap: str = "policy"  # the papers' a' ~ pi (SQRL App. D, CSC Eq. 2); both measured: docs/effectiveness.md
    normalize_obs: bool = False  # standardise the critic's observation inputs by the stored ones (refit_inputs)
    failures: str = "first"  # see FAILURES: what the risk measures (SQRL's default counts lasting failures)

    def __post_init__(self) -> None:
        super().__post_init__()  # field types: integers, finite numbers, bools, strings
        for name in ("n_candidates", "resample_rounds", "n_critics", "buffer_capacity", "batch_size", "train_every"):
            check_count(name, getattr(self, name))
        check_choice("ensemble_risk", self.ensemble_risk, ENSEMBLE_RISKS)
        check_choice("bootstrap", self.bootstrap, BOOTSTRAPS)
        check_positive("updates_per_step", self.updates_per_step)
        check_count("learning_starts", self.learning_starts, minimum=0)
        check_positive("perturbation_scale", self.perturbation_scale)
        check_interval("widen", self.widen, 1.0, math.inf, closed="left")
        check_interval("uniform_fraction", self.uniform_fraction, 0.0, 1.0)
        check_choice("selection", self.selection, SELECTIONS)
        check_choice("preset", self.preset, tuple(self.PRESETS))
        check_count("horizon", self.horizon)
        if self.horizon_seconds is not None:
            check_positive("horizon_seconds", self.horizon_seconds)
        check_choice("target", self.target, TARGETS)
        if self.target in DISCOUNTED_TARGETS and self.horizon < 2:
            raise ValueError(
                f"horizon must be >= 2 for target {self.target!r} (its discount is 1 - 1/horizon), got {self.horizon!r}"
            )
        check_interval("balance", self.balance, 0.0, 1.0, closed="left")
        if self.budget is not None:
            check_positive("budget", self.budget)
        check_choice("budget_unit", self.budget_unit, BUDGET_UNITS)
        if self.regret is not None:
            check_interval("regret", self.regret, 0.0, math.inf, closed="left")
        check_count("warmup_failures", self.warmup_failures, minimum=0)
        check_count("warmup_updates", self.warmup_updates, minimum=0)
        check_choice("failures", self.failures, FAILURES)

    @classmethod
    def from_options(cls, options: dict[str, Any], method: str) -> CriticConfig:
        """As ``SafetyConfig.from_options``; a ``horizon`` in steps given without ``horizon_seconds`` is the
        horizon: it turns the default in seconds off (which would otherwise replace it on an env with a dt)."""
        return super().from_options(steps_given_alone(options), method)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CriticConfig:
        data = dict(data)
        data.setdefault("normalize_obs", False)  # saved before the option existed: raw inputs
        data.setdefault("bootstrap", "policy")  # saved before the option existed: a' ~ pi when a sampler is attached
        data.setdefault("failures", "first")  # saved before the option existed: the risk of the first failure
        if "gradient_steps" in data:  # saved before updates_per_step: the same schedule as a ratio
            steps = data.pop("gradient_steps")
            data.setdefault("updates_per_step", steps / data.get("train_every", 1))
        return super().from_json(data)


def steps_given_alone(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the default in seconds turned off where ``horizon`` (steps) is given without
    ``horizon_seconds``: a horizon a user gives in steps is the horizon, on an env with a dt too."""
    if "horizon" in options and "horizon_seconds" not in options:
        return {**options, "horizon_seconds": None}
    return options


def flat_dim(space: gym.Space) -> int:
    return int(gym.spaces.flatdim(space))


class SafetyCritic(SafetyModel):
    """Base of every reject/resample model. Subclasses set ``name`` and ``config_class``."""

    kind: ClassVar[str] = "reject"
    config_class: ClassVar[type[CriticConfig]] = CriticConfig
    # ``failures``: the risk's units (switching them is ``start_counting``'s, once)
    fixed_fields: ClassVar[frozenset[str]] = frozenset(
        {"hidden", "n_critics", "buffer_capacity", "normalize_obs", "failures"}
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.config.failures == "count":  # counted from the start ("auto" starts at the first lasting failure)
            self.start_counting()

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Any flattenable observation space; a bounded float Box, Discrete, MultiDiscrete or
        MultiBinary action space (``core.spaces``), else an error saying why and what instead."""
        check_observation_space(observation_space)
        action_codec(action_space)

    def setup(self, seed: int | None) -> None:
        config = self.config
        self.actions = action_codec(self.action_space)  # how actions cross between env and model
        self.discrete = self.actions.discrete
        self.obs_dim, self.act_dim = check_observation_space(self.observation_space), self.actions.act_dim
        self.buffer = TransitionBuffer(config.buffer_capacity, self.obs_dim, self.act_dim)
        self.chain_targets = SettledTargets(self.buffer)  # multi_step_target, remembered per settled row
        self.rng = np.random.default_rng(seed)
        self.policy_sampler = None  # set by an adapter: sample(obs, n, generator) -> actions
        self._update_credit = 0  # updates earned and not run yet, in units of 1 / (ratio's denominator)
        self._next_weight_check = 0  # ``updates`` at which ``learn`` next checks every weight
        self._ratio_cache: tuple[float | None, int, int] = (None, 0, 1)
        self.failures_seen = 0  # failures stored (warm-up)
        self.failure_total = 0.0  # the indicator summed over the stored transitions (CSC's V̂_C counts steps)
        self.counting = False  # whether the risk counts failure steps (``failures``, FAILURES) instead of the first
        self.adaptive_threshold: BudgetThreshold | None = None  # budget / guard state, built on first use
        self.obs_moments = RunningMoments(self.obs_dim)  # of the stored observations (normalize_obs)
        self._moments_seen = (0, 0)  # (buffer clears, transitions added) the moments include
        self._next_refit = 0  # ``updates`` at which ``learn`` next refits the input standardisation

    # -- what a method implements -------------------------------------------------------------
    @abc.abstractmethod
    def risk(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Risk of each row, ``(B,)``, comparable with ``threshold``. Differentiable w.r.t. actions."""

    @property
    @abc.abstractmethod
    def threshold(self) -> float:
        """Actions with ``risk < threshold`` are safe."""

    @property
    def selection(self) -> str:
        """How the decision core picks among safe candidates (see ``core.decision.SELECTIONS``)."""
        return self.config.selection

    @abc.abstractmethod
    def learn_step(self, batch: Batch) -> dict[str, float]:
        """One gradient step on a minibatch; return scalar diagnostics."""

    def on_episode_end(self, failed: bool) -> None:
        """Hook for methods whose threshold depends on episode outcomes (CSC)."""

    # -- warm-up, failure budget and guard (core.threshold) -------------------------------------
    @property
    def nominal_threshold(self) -> float:
        """The configured threshold before warm-up and adaptation (methods override)."""
        return self.threshold

    @property
    def warmed_up(self) -> bool:
        """Whether the shield may reject: frozen, or enough failures stored and updates made."""
        if self.frozen:  # a deployed model is used as it is; warm-up concerns learning from scratch
            return True
        cfg = self.config
        return WarmUp(cfg.warmup_failures, cfg.warmup_updates).ready(self.failures_seen, self.updates)

    def gated_threshold(self, nominal: float) -> float:
        """The threshold in force: +inf before warm-up, the adapted one with a budget or guard."""
        if not self.warmed_up:
            return float("inf")
        adaptive = self._adaptive(nominal)
        return nominal if adaptive is None else adaptive.value

    @property
    def regret(self) -> float | None:
        """The relative rule's regret in force (``core.decision``): ``config.regret``, times the factor by
        which a failure budget has lowered the threshold (``BudgetThreshold.scale``, while below 1).

        A budget is a promise about failures, so an overspent one must tighten every risk the shield
        tolerates: with the regret fixed, a proposal within ``regret`` of the least risky action passes
        however far the budget has lowered the threshold, and on a task whose risks are all small the budget
        moves nothing. An underspent budget raises the threshold but leaves the regret as configured: it is
        the most a proposal may add over the safest action found, and slack in an average does not license
        more in one state (measured: docs/effectiveness.md, "Failure budget")."""
        regret, adaptive = self.config.regret, self.adaptive_threshold
        if regret is None or adaptive is None or adaptive.budget is None:
            return regret
        return regret * min(adaptive.scale, 1.0)

    @property
    def reported_regret(self) -> float:
        """``regret`` as the decisions compare it (float32) for reports and logs; NaN when there is none and
        the threshold alone decides."""
        regret = self.regret
        return float("nan") if regret is None else float(np.float32(regret))

    def _adaptive(self, nominal: float) -> BudgetThreshold | None:
        cfg = self.config
        if cfg.budget is None and not cfg.guard:
            return None
        if self.adaptive_threshold is None:
            # a nominal threshold <= 0 (CSC's ε once an epoch used its budget: nothing passes) reads as the floor
            low = min(nominal, ADAPTIVE_FLOOR) if nominal > 0 else ADAPTIVE_FLOOR
            self.adaptive_threshold = BudgetThreshold(
                initial=max(nominal, low),
                budget=cfg.budget,
                response_steps=1000,
                low=low,
                # above the risk's bound every risk passes: the guard may switch the shield off while nothing can
                high=max(nominal, self.guard_ceiling),
                max_fallback_share=GUARD_SHARE if cfg.guard else float("inf"),
                per_episode=cfg.budget_unit == "episode",
            )
        self.adaptive_threshold.retarget(nominal)  # a method's own rule may move it (CSC's per-epoch ε)
        return self.adaptive_threshold

    def reconfigure(self, **changes: Any) -> SafetyCritic:
        """As ``SafetyModel.reconfigure`` (a ``horizon`` given alone is in steps: ``steps_given_alone``); a
        new nominal threshold, budget or guard restarts the adapted threshold from the new nominal one
        (it would otherwise keep adapting around the old one)."""
        nominal = self.nominal_threshold
        super().reconfigure(**steps_given_alone(changes))
        if self.nominal_threshold != nominal or {"budget", "budget_unit", "guard"} & set(changes):
            self.adaptive_threshold = None  # rebuilt from the new settings on first use
        return self

    def on_step_outcome(self, failed: bool, fell_back: bool, episode_ended: bool = False) -> None:
        """One env step's outcome (``episode_ended``: it ended its episode, by termination or time limit):
        adapts the threshold (budget, guard) once warmed up, while learning."""
        if self.frozen or not self.warmed_up:
            return
        adaptive = self._adaptive(self.nominal_threshold)
        if adaptive is not None:
            adaptive.update(failed, fell_back, episode_ended)

    def extra_state(self) -> dict[str, Any]:
        state = {
            **super().extra_state(),
            "update_credit": str(Fraction(self._update_credit, self._ratio()[1])),
            "failures_seen": self.failures_seen,
            "counting": self.counting,
        }
        if self.adaptive_threshold is not None:
            state["adaptive_threshold"] = self.adaptive_threshold.state()
        if self.scales_inputs:
            state["obs_moments"] = self.obs_moments.state()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self._update_credit = int(Fraction(state.get("update_credit", "0")) * self._ratio()[1])
        # checkpoints written before warm-up existed hold trained models: count them as warmed up
        self.failures_seen = int(state.get("failures_seen", self.config.warmup_failures))
        counting = state.get("counting", self.config.failures == "count")
        if not isinstance(counting, bool):
            raise ValueError(
                f"state.counting must be true or false (the risk counts failure steps), got {counting!r:.100}"
            )
        self.counting = counting
        if "adaptive_threshold" in state:
            adaptive = self._adaptive(self.nominal_threshold)
            if adaptive is not None:
                adaptive.load_state(state["adaptive_threshold"])
        if "obs_moments" in state:
            self.obs_moments.load_state(state["obs_moments"])

    def resolve_horizon(self, dt: float | None) -> int:
        """Set ``horizon`` from ``horizon_seconds`` and the env's control period ``dt`` (when both are known).

        A fall takes a similar time whatever the control rate: 0.5 s is 10 steps of
        InvertedDoublePendulum (dt 0.05) and 62 of Walker2d (dt 0.008). Returns the horizon in steps.
        """
        seconds = self.config.horizon_seconds
        if seconds is not None and dt is not None:
            steps = horizon_steps(seconds=seconds, dt=dt)
            if steps != self.config.horizon:
                if self.updates:
                    warnings.warn(
                        f"this shield learned its risks over a horizon of {self.config.horizon} steps; the env's "
                        f"dt = {dt:g} s makes horizon_seconds={seconds:g} {steps} steps, which it uses from now on. "
                        "Build a shield that learns before it is wrapped with safeshield.model_for(env, ...), "
                        "so that both horizons agree",
                        stacklevel=2,
                    )
                self.reconfigure(horizon=steps, horizon_seconds=seconds)
        return self.config.horizon

    # -- risk targets (core.targets) -------------------------------------------------------------
    @property
    def target_gamma(self) -> float:
        """The discount of the ``"nstep"`` and ``"safest"`` targets: the one that looks ``horizon`` steps ahead."""
        return horizon_gamma(self.config.horizon)

    def risk_target(self, batch: Batch, gamma: float, bootstrap) -> torch.Tensor:
        """The target of each row of ``batch`` under ``config.target`` (``"td"``: one step at ``gamma``).

        ``bootstrap(next_obs, next_action) -> (B,)`` is the target critic's value in the units of
        the target, evaluated only on the rows whose chain stops with a bootstrap term; an ensemble's
        ``(n_critics, B)`` gives ``(n_critics, B)`` targets, each member bootstrapping itself.
        """
        cfg = self.config
        if cfg.target == "safest":  # the least of the k-step targets, each bootstrapped at its safest action
            lengths = doubling_lengths(cfg.horizon)
            base, coef, boot = prefix_targets(self.buffer, batch.rows, lengths, gamma, absorbing=not self.counting)
            return self._bootstrapped(base, coef, boot, bootstrap).min(dim=-2).values
        if cfg.target == "window":
            n, gamma, end = cfg.horizon, 1.0, False
        elif cfg.target == "nstep":
            n, end = cfg.horizon, True
        else:
            n, end = 1, True
        base, coef, boot = self.chain_targets(batch.rows, n, gamma, bootstrap_end=end, absorbing=not self.counting)
        return self._bootstrapped(base, coef, boot, bootstrap)

    def _bootstrapped(self, base: np.ndarray, coef: np.ndarray, boot: np.ndarray, bootstrap) -> torch.Tensor:
        """``base + coef * bootstrap(s', a')`` of row ``boot``, with ``bootstrap`` called only where
        ``coef > 0``; arrays of any shape, a leading ``n_critics`` axis where ``bootstrap`` gives one."""
        shape = base.shape
        base, coef, boot = base.reshape(-1), coef.reshape(-1), boot.reshape(-1)
        needs = np.flatnonzero(coef > 0)
        target = torch.from_numpy(base.astype(np.float32))
        if needs.size:
            rows = boot[needs]
            values = bootstrap(
                torch.from_numpy(self.buffer.next_obs[rows]), torch.from_numpy(self.buffer.next_action[rows])
            )
            target = target.expand(*values.shape[:-1], -1).clone()
            target[..., torch.from_numpy(needs)] += torch.from_numpy(coef[needs].astype(np.float32)) * values
        return target.reshape(*target.shape[:-1], *shape)

    def sample_batch(self) -> Batch:
        """A minibatch: failure-balanced with importance weights (``config.balance``), else uniform."""
        cfg = self.config
        rows, weight = balanced_rows(self.buffer, cfg.batch_size, cfg.balance, cfg.horizon, self.rng)
        batch = self.buffer._rows(rows)
        if weight is None:
            return batch
        return dataclasses.replace(batch, weight=weight.astype(np.float32))

    def proposal_risk(self, obs: np.ndarray, action: np.ndarray) -> float:
        """Risk of one flat float32 ``(obs, action)`` pair: the per-step hot path.

        Same value as ``risk`` (to float32 rounding); methods override it with a leaner path.
        """
        with torch.inference_mode():
            return float(self.risk(torch.from_numpy(obs)[None], torch.from_numpy(action)[None])[0])

    def risk_all(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, n)``: the risk of every action of a Discrete-like action space at each row.

        This generic version scores the ``n`` one-hot actions as one batch; SQRL and CSC override it
        with their critics' action heads (one forward pass of the observations only).
        """
        n = self.actions.n
        rows = obs.shape[0]
        eye = torch.eye(n, dtype=obs.dtype)
        return self.risk(obs.repeat_interleave(n, 0), eye.repeat(rows, 1)).reshape(rows, n)

    def model_actions(self, drawn) -> torch.Tensor:
        """A policy sampler's draws ``(m, k, ...)`` in env units as the model's ``(m, k, act_dim)``
        actions (one-hot joint indices for a Discrete-like space)."""
        actions = drawn[0] if isinstance(drawn, tuple) else drawn
        actions = torch.as_tensor(actions)
        if not self.discrete:
            return actions.to(torch.float32)
        m, k = actions.shape[0], actions.shape[1]
        draws = actions.numpy().reshape(m * k, *self.actions.shape)
        index = self.actions.validate(draws, (m * k,), name="policy sampler draw")
        return torch.from_numpy(self.actions.one_hot(index)).reshape(m, k, self.act_dim)

    def policy_actions(self, obs: torch.Tensor, n: int) -> torch.Tensor | None:
        """``(batch, n, act_dim)`` draws of the attached policy at ``obs``, or None without one."""
        if self.policy_sampler is None:
            return None
        return self.model_actions(self.policy_sampler(obs, n, self.generator)).to(obs.dtype)

    def target_risk(self, next_obs: torch.Tensor, stored_next_action: torch.Tensor) -> torch.Tensor:
        """The target network's risk at ``(s', a')``, a' by ``config.bootstrap``: ``(n_critics, B)``, so that
        each member of an ensemble bootstraps itself (the ``bootstrap`` of ``risk_target``)."""
        if self.config.target == "safest":
            return self.least_target_risk(next_obs, stored_next_action)
        return self.target_values(next_obs, self.bootstrap_actions(next_obs, stored_next_action))

    def target_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The target network's risk at exactly ``(obs, actions)``: ``(n_critics, B)`` or ``(B,)``."""
        return self.risk_bound * torch.sigmoid(self.target_critic(obs, actions))

    def least_target_risk(self, next_obs: torch.Tensor, executed: torch.Tensor) -> torch.Tensor:
        """The target network's least risk at s' over the executed action and ``BOOTSTRAP_CANDIDATES``
        others (``"safest"``): each member of an ensemble takes its own least."""
        rows = next_obs.shape[0]
        if self.discrete:
            return (self.risk_bound * torch.sigmoid(self.target_critic.all_actions(next_obs))).min(dim=-1).values
        drawn = self.policy_actions(next_obs, BOOTSTRAP_CANDIDATES // 2)
        candidates = [executed[:, None, :]] + ([] if drawn is None else [drawn.to(executed.dtype)])
        n_uniform = BOOTSTRAP_CANDIDATES - (0 if drawn is None else drawn.shape[1])
        candidates.append(self.uniform_actions(rows, n_uniform, executed.dtype))
        actions = torch.cat(candidates, dim=1)
        m = actions.shape[1]
        values = self.target_values(next_obs.repeat_interleave(m, 0), actions.reshape(rows * m, self.act_dim))
        return values.reshape(*values.shape[:-1], rows, m).min(dim=-1).values

    def uniform_actions(self, rows: int, n: int, dtype: torch.dtype) -> torch.Tensor:
        """``(rows, n, act_dim)`` actions drawn uniformly over the box, from the model's generator."""
        low = torch.as_tensor(self.actions.low, dtype=dtype)
        high = torch.as_tensor(self.actions.high, dtype=dtype)
        return low + torch.rand((rows, n, self.act_dim), generator=self.generator, dtype=dtype) * (high - low)

    def bootstrap_actions(self, next_obs: torch.Tensor, executed: torch.Tensor) -> torch.Tensor:
        """The a' at which a target critic is evaluated, Q̄(s', a') (``config.bootstrap``, ``BOOTSTRAPS``):
        ``executed`` (the action run at s'), or one draw of the attached policy at ``next_obs``."""
        drawn = None if self.config.bootstrap == "executed" else self.policy_actions(next_obs, 1)
        return executed if drawn is None else drawn[:, 0, :].to(executed.dtype)

    # -- shared machinery ---------------------------------------------------------------------
    def critic_ensemble(self) -> CriticEnsemble:
        """``config.n_critics`` critics for this model's spaces in one module (one output per action of a
        Discrete-like space), standardising the observation inputs when ``config.normalize_obs``."""
        cfg = self.config
        scaled = self.obs_dim if cfg.normalize_obs else 0
        if self.discrete:
            return CriticEnsemble(self.obs_dim, cfg.n_critics, cfg.hidden, self.act_dim, scaled_obs=scaled)
        return CriticEnsemble(self.obs_dim + self.act_dim, cfg.n_critics, cfg.hidden, scaled_obs=scaled)

    def combine(self, member_risks: torch.Tensor) -> torch.Tensor:
        """``(n_critics, ...)`` members' risks as one risk ``(...)`` by ``config.ensemble_risk``."""
        if member_risks.shape[0] == 1:
            return member_risks[0]
        if self.config.ensemble_risk == "max":
            return member_risks.max(dim=0).values
        return member_risks.mean(dim=0)

    def risk_numpy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Risks of numpy batches (float32 ``(rows,)``), equal to ``risk`` to float32 rounding.

        The decision core's lean path: methods with a numpy forward (SQRL) override it for small
        batches; this default runs ``risk`` under ``inference_mode``.
        """
        with torch.inference_mode():
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim))
            act_t = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(-1, self.act_dim))
            return self.risk(obs_t, act_t).numpy()

    def risk_lean(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``risk`` through ``risk_numpy``: what the decision core scores candidates with (same
        values to float32 rounding; numpy for small batches where the method has a numpy path)."""
        return torch.from_numpy(self.risk_numpy(obs.numpy(), actions.numpy()))

    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        failure: float,
        terminated: bool,
        previous: int | None = None,
    ) -> int:
        """Store one transition (flat float arrays) and return its buffer row.

        ``previous``: the row of the same episode's previous transition (links the episode).
        """
        self.failures_seen += bool(failure >= 0.5)
        self.failure_total += float(failure)
        if failure >= 0.5 and not terminated:
            self.on_lasting_failure()
        return self.buffer.add(obs, action, next_obs, failure, terminated, previous=previous)

    # -- what the risk measures: the first failure or a count of them (``failures``, FAILURES) ---------
    @property
    def risk_bound(self) -> float:
        """The risk's upper bound (methods override): 1 for a probability; a count's is larger."""
        return 1.0

    @property
    def guard_ceiling(self) -> float:
        """The highest threshold the guard may raise to: above every risk, so that everything passes."""
        return GUARD_CEILING * self.risk_bound

    def on_lasting_failure(self) -> None:
        """A failure was stored that did not end its episode (a per-step cost, a condition that lasts):
        with ``failures="auto"`` the risk turns into a count of failure steps (``FAILURES``)."""
        if self.config.failures == "auto" and not self.counting:
            self.start_counting()

    def start_counting(self) -> None:
        """Make the risk a count of failure steps, keeping the critics' small risks (``rescale_output``).

        A method that counts keeps its networks as ``critic`` and ``target_critic`` (sigmoid outputs times
        ``risk_bound``) and says in ``risk_bound`` how far a count reaches under its target.
        """
        old = self.risk_bound
        self.counting = True
        for critic in (self.critic, self.target_critic):
            rescale_output(critic, old, self.risk_bound)
        if self.adaptive_threshold is not None:  # the guard may now rise to the count's bound
            self.adaptive_threshold.high = max(self.adaptive_threshold.high, self.guard_ceiling)

    def after_step(self) -> dict[str, float] | None:
        """Called once per env step by the front end: learn on the configured schedule.

        The schedule (``updates_per_step`` = r, ``train_every`` = m, ``learning_starts`` = s):
        every stored transition from the ``max(s, 1)``-th on earns r updates; every m-th env step
        the whole updates earned so far run back to back (``learn``), so after T stored
        transitions exactly ``floor(r * (T' - max(s, 1) + 1))`` updates have run, T' being the
        last multiple of m up to T (none before ``max(s, 1)``). The ratio is kept as an exact
        fraction, so 0.1 means one update per 10 steps, never 0 after 10 float additions.

        The warm-up waits for evidence, not for the clock: once the buffer holds ``warmup_failures``
        failures, learning starts (before ``s`` if need be) and the updates the warm-up still lacks
        (``warmup_updates``) run at once, so the shield may reject from the step that stored its last
        warm-up failure instead of ``warmup_updates`` steps later (docs/effectiveness.md, "The warm-up ends
        with its evidence").
        """
        if self.frozen:
            return None
        stored = self.buffer.total_added
        cfg = self.config
        if stored < max(cfg.learning_starts, 1) and not self._holds_warm_up_failures():
            return None
        catch_up = cfg.warmup_updates - self.updates if self.failures_seen >= cfg.warmup_failures else 0
        numerator, denominator = self._ratio()
        self._update_credit += numerator  # in units of 1 / denominator updates: integers, no drift
        if catch_up <= 0 and (stored % cfg.train_every or self._update_credit < denominator):
            return None
        owed, self._update_credit = divmod(self._update_credit, denominator)
        return self.learn(max(owed, catch_up))

    def _holds_warm_up_failures(self) -> bool:
        """Whether the buffer already holds the warm-up's failures (``warmup_failures`` > 0): learning then starts
        before ``learning_starts``. Counted in the buffer, not by ``failures_seen``: a loaded model's count may
        predate its (empty) buffer. Asked only while fewer than ``learning_starts`` transitions are stored; the
        buffer is scanned only once ``failures_seen`` (which counts every failure it ever stored) could suffice."""
        needed = self.config.warmup_failures
        if needed <= 0 or self.failures_seen < needed:
            return False
        return int(np.count_nonzero(self.buffer.failure[: len(self.buffer)] >= 0.5)) >= needed

    def learn_offline(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        next_obs: np.ndarray,
        failure: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        updates: int,
    ) -> dict[str, float]:
        """Pre-train on logged steps: store them as linked episodes, then take ``updates`` gradient steps.

        The steps are in the order they happened, each episode's consecutive (``T`` rows in all):
        flat ``obs`` and ``next_obs`` ``(T, obs_dim)``, ``actions`` as the env takes them
        (``(T, *action_space.shape)``), and per step the indicator ``failure`` in [0, 1] and the
        ``terminated`` / ``truncated`` flags that end an episode. A shield that knows before the
        agent starts protects from its first step (docs/effectiveness.md: pre-trained on 6 000 logged
        steps and frozen, it cut a fresh SB3 SAC run's failures to 0.25x over 3 seeds). Build it with
        ``safeshield.model_for(env)`` (the horizon the wrapper will use), save it with ``save`` and
        wrap it with ``safeshield.wrap(env, model)``.
        """
        steps = len(obs)
        check_count("updates", updates)
        obs_rows = check_float_array("obs", obs, (steps, self.obs_dim))
        next_rows = check_float_array("next_obs", next_obs, (steps, self.obs_dim))
        shape = (steps, *self.actions.shape)
        model_actions = (
            self.actions.one_hot(self.actions.validate(actions, (steps,), name="actions"))
            if self.discrete
            else self.actions.validate(actions, shape, name="actions")
        )
        labels = check_probabilities("failure", failure, (steps,))
        ends = check_float_array("terminated", terminated, (steps,)) > 0.5
        cut = check_float_array("truncated", truncated, (steps,)) > 0.5
        previous = None
        for t in range(steps):
            row = self.observe(obs_rows[t], model_actions[t], next_rows[t], float(labels[t]), bool(ends[t]), previous)
            previous = None if ends[t] or cut[t] else row
        return self.learn(updates)

    def _ratio(self) -> tuple[int, int]:
        """``updates_per_step`` as an exact fraction (numerator, denominator), cached per value."""
        ratio = self.config.updates_per_step
        if self._ratio_cache[0] != ratio:
            fraction = Fraction(ratio).limit_denominator(1_000_000)
            if self._ratio_cache[0] is not None:  # keep the credit earned so far, in the new units
                self._update_credit = self._update_credit * fraction.denominator // self._ratio_cache[2]
            self._ratio_cache = (ratio, fraction.numerator, fraction.denominator)
        return self._ratio_cache[1], self._ratio_cache[2]

    def learn(self, steps: int = 1) -> dict[str, float]:
        """Run ``steps`` gradient steps on minibatches from the buffer (also usable offline).

        The ``steps`` minibatches are drawn in one call (one index draw, one gather per column),
        then each gradient step takes its slice: nothing is copied per step.
        """
        if len(self.buffer) == 0:
            raise ValueError("the shield has no stored transitions to learn from")
        stats: dict[str, float] = {}
        if self.scales_inputs and self.updates >= self._next_refit:
            self.refit_inputs()
            self._next_refit = self.updates + REFIT_INPUTS_EVERY
        if self.config.balance > 0:  # failure-balanced, importance-weighted minibatches (core.targets)
            batches = (self.sample_batch() for _ in range(int(steps)))
        else:
            batches = self.buffer.sample_many(int(steps), self.config.batch_size, self.rng)
        for batch in batches:
            stats = self.learn_step(batch)
            self.updates += 1
        # a diverging update shows in its loss at once; the weights themselves are read every
        # WEIGHT_CHECK_EVERY updates (reading them all after each update cost about a tenth of it)
        if self.updates >= self._next_weight_check or not all(map(math.isfinite, stats.values())):
            self.check_finite(stats)
            self._next_weight_check = self.updates + WEIGHT_CHECK_EVERY
        return stats

    @property
    def scales_inputs(self) -> bool:
        """Whether the networks standardise their observation inputs (``normalize_obs``, ``refit_inputs``)."""
        return self.config.normalize_obs

    def refit_inputs(self) -> None:
        """Standardise every network's observation inputs by all observations stored so far.

        Each network absorbs the change in its first layer (``InputScaler.refit``): the risks are
        the same before and after, only the scale SGD sees changes (``normalize_obs``).
        """
        clears, added = self.buffer.clears, self.buffer.total_added
        seen = self._moments_seen[1] if self._moments_seen[0] == clears else 0
        new = min(added - seen, len(self.buffer))
        self.obs_moments.add(self.buffer.obs[np.arange(added - new, added) % self.buffer.capacity])
        self._moments_seen = (clears, added)
        mean, inv_std = self.obs_moments.standardiser()
        for module in self.modules():
            if module is not self and callable(getattr(module, "refit_inputs", None)):
                module.refit_inputs(mean, inv_std)

    def check_finite(self, stats: dict[str, float] | None = None) -> None:
        """Raise ``FloatingPointError`` if a weight (or a reported loss) is NaN or infinite.

        ``learn`` calls it when a loss is not finite and every ``WEIGHT_CHECK_EVERY`` updates: a
        diverged critic would otherwise report NaN risks (never safe here, so every step would
        fall back) or be saved and loaded elsewhere (``load`` refuses non-finite weights too).
        """
        bad_stats = [key for key, value in (stats or {}).items() if not math.isfinite(value)]
        bad = [name for name, p in self.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad or bad_stats:
            found = " and ".join(
                part
                for part in (f"weights {bad[:5]}" if bad else "", f"statistics {bad_stats}" if bad_stats else "")
                if part
            )
            raise FloatingPointError(
                f"{self.name} shield training diverged after {self.updates} updates: non-finite {found}; lower "
                "the learning rate (lr) or check the observations and the indicator the shield learns from"
            )

    def attach_policy(self, sample) -> None:
        """Attach the agent's sampler ``sample(obs[m, d], n, generator) -> actions[m, n, a]``."""
        self.policy_sampler = sample
