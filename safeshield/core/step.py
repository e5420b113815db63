"""The per-step work every reject/resample wrapper shares, for n environments (rows) at once.

- ``ShieldStepper``: validation, the decision (``core.decision.decide``), the buffer's SARSA
  link, the learning schedule, counters and the ``info["shield"]`` report. ``ShieldWrapper``
  runs it with one row; the vector wrappers (``safeshield.wrappers.VectorShieldWrapper``, the
  SB3 ``ShieldedVecEnv``) run it with one row per sub-env, so all share one code path.
- ``StepperFrontEnd``: the mixin those wrappers share (the model as ``safety_model``, the
  stepper, the indicator, the policy hook and the counters).
- ``default_indicator`` / ``flatten_batch``: small helpers the wrappers share.

The wrappers only do I/O. The decision itself is ``safeshield.core.decision.decide``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from safeshield.core.critic import CriticConfig, SafetyCritic
from safeshield.core.decision import Decision, PerturbationSampler, PolicySampler, decide, decide_discrete
from safeshield.core.indicators import describe_indicator, make_indicator
from safeshield.core.model import resolve_model
from safeshield.core.quality import QualityMonitor
from safeshield.core.validation import as_float32

__all__ = ["ShieldStepper", "StepperFrontEnd", "Transitions", "default_indicator", "flatten_batch", "NONFINITE"]

NONFINITE = ("raise", "risky")
"""What a shield does with a NaN or infinite observation or reward: ``"raise"`` (the default) a
``ValueError`` naming it; ``"risky"``: treat the step as risky (risk inf, ``fell_back``; the
proposal runs since nothing can be scored) and store no transition that touches the value."""


@dataclass(frozen=True)
class Transitions:
    """One env step of some rows, as ``ShieldStepper.record`` stores it (flat float32 arrays)."""

    rows: np.ndarray  # (m,) which envs stepped
    obs: np.ndarray  # (m, obs_dim) observations the actions were taken in
    action: np.ndarray  # (m, act_dim) executed actions ((m,) joint indices for a Discrete-like space)
    next_obs: np.ndarray  # (m, obs_dim) observations after the step
    failure: Sequence[float]  # (m,) indicator values
    terminated: Sequence[bool]  # (m,)
    truncated: Sequence[bool]  # (m,)
    skip: Sequence[bool] | None = None  # (m,) rows not to store (a non-finite value, on_nonfinite="risky")


LEAN_ROWS = 4
"""Proposal batches up to this many rows are scored with the model's numpy path (``risk_numpy``);
candidate batches use it up to the model's own limit (``StateActionNet.NUMPY_MAX_ROWS``)."""


class ShieldStepper:
    """One shield's per-step state and work for ``n_envs`` environments sharing one model.

    Each env (row) keeps its own current observation, its own pending SARSA row and its own
    candidate RNG (seeded ``seed + i``), so row ``i`` decides exactly as a single-env ``ShieldWrapper``
    seeded ``seed + i`` would, whatever the other rows do. What is batched: one risk query for
    all proposals, and per resampling round one risk query for every rejected row's candidates.
    """

    def __init__(
        self,
        model: SafetyCritic,
        indicator: str | Callable,
        observation_space: gym.Space,
        action_space: gym.spaces.Box,
        n_envs: int = 1,
        *,
        train: bool = True,
        seed: int | None = None,
        on_nonfinite: str = "raise",
        enforce: bool = True,
    ):
        if on_nonfinite not in NONFINITE:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE}, got {on_nonfinite!r}")
        self.model = model
        self.enforce = check_enforce(enforce)
        self.on_nonfinite = on_nonfinite
        self.indicator = make_indicator(indicator)
        # a name is saved with the model and reused on load; a callable only by its name, so that
        # loading can say which function to pass again (default_indicator)
        model.indicator = describe_indicator(indicator)
        if train:
            model.unfreeze()
        else:
            model.freeze()
        self.n_envs = int(n_envs)
        self.observation_space, self.action_space = observation_space, action_space
        self.actions = model.actions  # how actions cross between env and model (core.spaces)
        self.discrete = self.actions.discrete
        self.action_shape, self.action_dtype = action_space.shape, action_space.dtype
        if not self.discrete:
            self.low, self.high = torch.from_numpy(self.actions.low), torch.from_numpy(self.actions.high)
            self.low_np, self.high_np = self.actions.low, self.actions.high
            self.half_range = (self.high_np - self.low_np) / 2
        self._perturbation: tuple[CriticConfig, PerturbationSampler, PerturbationSampler] | None = None
        base = 0 if seed is None else int(seed)
        self.generators = [torch.Generator().manual_seed(base + i) for i in range(self.n_envs)]
        self.obs_flat: np.ndarray | None = None  # (n_envs, obs_dim) float32, the current observations
        self.obs_tensor: torch.Tensor | None = None  # the same memory as a tensor
        self.pending = [None] * self.n_envs  # buffer row waiting for its next action, per env
        self.decided_threshold, self.decided_regret = np.float32(math.inf), math.nan  # set by each decision
        self.nonfinite = np.zeros(self.n_envs, dtype=bool)  # rows whose current observation is not finite
        self.any_nonfinite = False  # self.nonfinite.any(), kept as a bool for the per-step path
        self.error: str | None = None  # what the env (or a check of its output) raised mid-step, until a reset
        self.episode_failures = np.zeros(self.n_envs, dtype=np.int64)
        self.total_failures = 0
        self.total_interventions = 0
        self.total_fallbacks = 0
        # the running shield-quality report (safeshield.core.quality), fed by ``record``
        self.quality = QualityMonitor(model.config.horizon, self.n_envs, warn=train)

    # -- observations, seeds and episodes -------------------------------------------------------
    def remember(self, flat_obs: np.ndarray) -> None:
        """Set every row's current observation (``(n_envs, obs_dim)`` float32), checking it is finite.

        A NaN or infinite value (or a float64 one that overflows float32) raises ``ValueError``;
        with ``on_nonfinite="risky"`` the row is marked instead: its next step is treated as
        risky and nothing touching the observation is stored.
        """
        if not np.isfinite(flat_obs).all():  # one cheap check per step; the rare path below
            bad = ~np.isfinite(flat_obs).all(axis=1)
            if self.on_nonfinite == "raise":
                rows = np.flatnonzero(bad).tolist()
                self.obs_flat = self.obs_tensor = None
                self.error = "a non-finite observation"
                raise ValueError(
                    f"observation must be finite in float32 (the shield computes in float32), got "
                    f"{flat_obs[bad][0]!r:.200} (flattened{', rows ' + str(rows) if self.n_envs > 1 else ''}); "
                    'pass on_nonfinite="risky" to treat such steps as risky instead'
                )
            self.nonfinite, self.any_nonfinite = bad, True
        elif self.any_nonfinite:
            self.nonfinite, self.any_nonfinite = np.zeros(self.n_envs, dtype=bool), False
        self.obs_flat = flat_obs
        self.obs_tensor = torch.from_numpy(flat_obs)
        self.error = None

    def check_reward(self, reward) -> bool:
        """Whether one env's reward is finite; a non-finite one raises unless ``on_nonfinite="risky"``."""
        try:
            if math.isfinite(reward):
                return True
        except TypeError:
            return bool(self.check_rewards(reward).all())
        if self.on_nonfinite == "raise":
            raise ValueError(
                f'reward must be finite, got {reward!r}; pass on_nonfinite="risky" to treat such steps as risky instead'
            )
        return False

    def check_rewards(self, rewards) -> np.ndarray:
        """Which rewards are finite; a non-finite one raises unless ``on_nonfinite="risky"``."""
        finite = np.isfinite(np.asarray(rewards, dtype=np.float64)).reshape(-1)
        if not finite.all() and self.on_nonfinite == "raise":
            raise ValueError(
                f"reward must be finite, got {np.asarray(rewards)!r:.200}; "
                'pass on_nonfinite="risky" to treat such steps as risky instead'
            )
        return finite

    def check_next(self, next_flat: np.ndarray) -> np.ndarray:
        """Which rows of the step's next observations are not finite (raises unless ``"risky"``)."""
        bad = ~np.isfinite(next_flat).all(axis=1)
        if bad.any() and self.on_nonfinite == "raise":
            self.remember(next_flat)  # raises, naming the observation
        return bad

    def ready(self, what: str) -> None:
        """Raise unless a step can be decided: reset first, and say so if the env raised before."""
        if self.obs_flat is None:
            if self.error is not None:
                raise RuntimeError(
                    f"the env or a check of its output raised during an earlier step ({self.error}); call reset() "
                    "before step() (a gymnasium AsyncVectorEnv shuts a failed worker down: then build a new vector env)"
                )
            raise gym.error.ResetNeeded(f"call reset() before step() on a shielded {what}")

    def fail(self, error: BaseException) -> None:
        """The env (or a check of what it returned) raised mid-step: no decision until a reset."""
        self.obs_flat = self.obs_tensor = None
        self.error = f"{type(error).__name__}: {error}"

    def seed(self, seeds: int | Sequence[int | None]) -> None:
        """Reseed the candidate RNGs: an int seeds row ``i`` with ``seed + i``; a list, row by row."""
        if isinstance(seeds, (int, np.integer)):
            seeds = [int(seeds) + i for i in range(self.n_envs)]
        for generator, value in zip(self.generators, seeds):
            if value is not None:
                generator.manual_seed(int(value))

    def start_episodes(self, rows) -> None:
        """Rows whose env was just reset: no SARSA link across the reset, a fresh episode count."""
        for row in np.atleast_1d(np.asarray(rows, dtype=np.int64)):
            self.pending[row] = None
            self.episode_failures[row] = 0

    # -- one step -------------------------------------------------------------------------------
    def validate(self, action, rows: int | None = None) -> np.ndarray:
        """``action`` of one env (``rows=None``) or ``rows`` stacked ones as the decision's proposals:
        ``(rows, act_dim)`` float32 clipped into a Box, ``(rows,)`` int64 joint indices otherwise."""
        shape = () if rows is None else (rows,)
        if not self.discrete:
            shape = (*shape, *self.action_shape)
        return self.actions.validate(action, shape)

    def to_env(self, executed: np.ndarray, rows: int | None = None):
        """The decision's actions as what the env executes: the space's dtype, inside the space."""
        return self.actions.to_env(executed, () if rows is None else (rows,))

    def model_actions(self, executed: np.ndarray) -> np.ndarray:
        """The decision's actions as the model stores them (one-hot rows for Discrete-like spaces)."""
        return self.actions.one_hot(executed) if self.discrete else executed

    def decide(self, proposals: np.ndarray, rows: np.ndarray | None = None) -> Decision:
        """Decide for ``rows`` (all rows by default) given their ``(len(rows), act_dim)`` proposals."""
        if rows is None:
            rows = np.arange(self.n_envs)
        model = self.model
        # what this decision compares with, for the reports: learning after the step may end the warm-up
        # or move a budgeted threshold before the report is written
        threshold = self.decided_threshold = np.float32(model.threshold)
        self.decided_regret = model.reported_regret
        if not self.enforce:  # shadow mode: only the proposal's risk, for the report
            return Decision.accepted(proposals, self._proposal_risk(proposals, rows))
        if self.any_nonfinite:
            return self._decide_nonfinite(proposals, rows)
        if self.discrete:
            return self._decide_discrete(proposals, rows, threshold)
        risk = self._proposal_risk(proposals, rows)
        if (risk < threshold).all():  # written so that a NaN risk is never safe
            return Decision.accepted(proposals, risk)
        cfg = model.config
        obs = self._obs_rows(rows)
        with torch.inference_mode():
            return decide(
                model.risk_lean,
                obs,
                torch.from_numpy(proposals),
                threshold,
                self.sampler,
                [self.generators[row] for row in rows],
                k=cfg.n_candidates,
                rounds=cfg.resample_rounds,
                selection=model.selection,
                half_range=self.half_range,
                proposal_risk=risk,
                regret=model.regret,
            )

    def _obs_rows(self, rows: np.ndarray) -> torch.Tensor:
        """The current observations of ``rows`` as a tensor (no copy when every row is asked)."""
        return self.obs_tensor if rows.size == self.n_envs else self.obs_tensor[torch.from_numpy(rows)]

    def _proposal_risk(self, proposals: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The risk of ``rows``' proposals, ``(len(rows),)`` float32: inf where the observation is not
        finite (nothing can be scored there)."""
        model = self.model
        if self.discrete:
            obs = self._obs_rows(rows)
            with torch.inference_mode():
                risk = model.risk(obs, torch.from_numpy(self.model_actions(proposals))).numpy()
        elif rows.size == 1:  # the lean single-pair path (numpy forward, no torch dispatch)
            risk = np.array([model.proposal_risk(self.obs_flat[rows[0]], proposals[0])], dtype=np.float32)
        elif rows.size <= LEAN_ROWS:  # small vector batches: numpy too
            risk = model.risk_numpy(self.obs_flat if rows.size == self.n_envs else self.obs_flat[rows], proposals)
        else:
            obs = self._obs_rows(rows)
            with torch.inference_mode():
                risk = model.risk(obs, torch.from_numpy(proposals)).numpy()
        if self.any_nonfinite:
            risk = np.where(self.nonfinite[rows], np.inf, risk).astype(np.float32)
        return risk

    def _decide_discrete(self, proposals: np.ndarray, rows: np.ndarray, threshold) -> Decision:
        """Score every action of every row in one forward pass and mask exactly (``decide_discrete``).

        A refused proposal gives way to a draw of the agent's policy over the allowed actions (SQRL
        Eq. 3), or, with ``selection="safest"``, to the least risky action, as on a Box space."""
        obs = self._obs_rows(rows)
        with torch.inference_mode():
            risk_all = self.model.risk_all(obs).numpy()
        generators = [self.generators[r] for r in rows]
        policy = None
        if self.model.policy_sampler is not None:
            policy = _DiscretePolicy(self.model, obs, generators, self.model.config.n_candidates)
        return decide_discrete(
            risk_all, proposals, threshold, generators, policy, self.model.regret, self.model.selection
        )

    def _decide_nonfinite(self, proposals: np.ndarray, rows: np.ndarray) -> Decision:
        """``on_nonfinite="risky"``: rows with a non-finite observation cannot be scored. Their
        proposal runs (nothing is known to be safer), reported with risk inf and ``fell_back``."""
        bad = self.nonfinite[rows]
        good = np.flatnonzero(~bad)
        n = rows.size
        risk = np.full(n, np.inf, dtype=np.float32)
        action, proposal_risk = proposals.copy(), risk.copy()
        intervened, fell_back = np.zeros(n, dtype=bool), bad.copy()
        n_candidates = np.zeros(n, dtype=np.int64)
        if good.size:
            self.any_nonfinite = False  # decide the finite rows as usual
            try:
                part = self.decide(proposals[good], rows[good])
            finally:
                self.any_nonfinite = True
            action[good], risk[good], proposal_risk[good] = part.action, part.risk, part.proposal_risk
            intervened[good], fell_back[good], n_candidates[good] = part.intervened, part.fell_back, part.n_candidates
        return Decision(action, risk, proposal_risk, intervened, fell_back, n_candidates)

    def record(self, step: Transitions, decision: Decision) -> None:
        """Count one step of ``step.rows``; unless frozen, store each row's transition, link each
        env's previous transition to the executed action (SARSA) and learn on the schedule.

        ``decision`` is the one made for those rows. Rows are stored one after another with the
        model's schedule checked after each, exactly as the same steps taken by single-env
        shields one after another would be.
        """
        model = self.model
        if not model.frozen:
            self._store_and_learn(step)
        failed = np.asarray(step.failure) > 0.5
        if not model.frozen and self.enforce:  # the threshold adapts to the decisions it made, none in shadow
            ended = np.asarray(step.terminated, dtype=bool) | np.asarray(step.truncated, dtype=bool)
            for j in range(failed.size):
                model.on_step_outcome(bool(failed[j]), bool(decision.fell_back[j]), bool(ended[j]))
        # a rejected proposal is the one that got candidates scored; in shadow, one an enforcing shield would refuse
        rejected = decision.n_candidates > 0 if self.enforce else decision.proposal_risk >= self.decided_threshold
        for j, row in enumerate(step.rows):
            self.quality.update(
                int(row),
                float(decision.proposal_risk[j]),
                float(decision.risk[j]),
                bool(rejected[j]),
                bool(decision.intervened[j]),
                bool(decision.fell_back[j]),
                bool(failed[j]),
                bool(step.terminated[j]),
                bool(step.truncated[j]),
            )
        self.total_interventions += int(np.count_nonzero(decision.intervened))
        self.total_fallbacks += int(np.count_nonzero(decision.fell_back))
        if failed.any():
            np.add.at(self.episode_failures, np.asarray(step.rows)[failed], 1)
            self.total_failures += int(np.count_nonzero(failed))

    def _store_and_learn(self, step: Transitions) -> None:
        # Learning needs autograd even when the caller steps the env under no_grad or
        # inference_mode, as TorchRL's collectors do.
        model = self.model
        actions = self.model_actions(step.action)
        with torch.inference_mode(False), torch.enable_grad():
            for j, row in enumerate(step.rows):
                failure, terminated = step.failure[j], bool(step.terminated[j])
                done = terminated or bool(step.truncated[j])
                if step.skip is not None and step.skip[j]:  # a non-finite observation or reward: store nothing of it
                    self.pending[row] = None
                    if done:
                        model.on_episode_end(self.episode_failures[row] + failure > 0)
                    continue
                if self.pending[row] is not None:
                    model.buffer.set_next_action(self.pending[row], actions[j])
                stored = model.observe(
                    step.obs[j], actions[j], step.next_obs[j], failure, terminated, previous=self.pending[row]
                )
                self.pending[row] = None if done else stored
                model.after_step()
                if done:
                    model.on_episode_end(self.episode_failures[row] + failure > 0)

    def quality_report(self) -> dict[str, Any]:
        """The running shield-quality report (``safeshield.core.quality.QualityMonitor.report``)."""
        return self.quality.report(counting=bool(getattr(self.model, "counting", False)))

    def report(self, proposed, executed: np.ndarray, decision: Decision, j: int, failure: float) -> dict[str, Any]:
        """The ``info["shield"]`` dict of one env (row ``j`` of ``decision``)."""
        return {
            "proposed_action": np.array(proposed, dtype=self.action_dtype),
            "executed_action": self.actions.report(executed),
            "intervened": bool(decision.intervened[j]),
            "risk": float(decision.risk[j]),
            "proposal_risk": float(decision.proposal_risk[j]),
            # the comparison runs in float32; report the threshold it actually used
            "threshold": float(self.decided_threshold),
            "regret": self.decided_regret,
            "fell_back": bool(decision.fell_back[j]),
            "n_candidates": int(decision.n_candidates[j]),
            "failure": failure,
        }

    @property
    def sampler(self):
        """The agent's policy when attached (widened by perturbations after the first round when
        ``widen_policy``), else perturbations of the proposal built from the current config."""
        cfg = self.model.config
        if self._perturbation is None or self._perturbation[0] is not cfg:
            perturb = PerturbationSampler(self.low, self.high, cfg.perturbation_scale, cfg.uniform_fraction, cfg.widen)
            widen_policy = PerturbationSampler(
                self.low, self.high, cfg.perturbation_scale, cfg.uniform_fraction, cfg.widen
            )
            self._perturbation = (cfg, perturb, widen_policy)
        if self.model.policy_sampler is not None:
            wider = self._perturbation[2] if cfg.widen_policy else None
            return PolicySampler(self.model.policy_sampler, self.low, self.high, wider=wider)
        return self._perturbation[1]


class _DiscretePolicy:
    """The attached policy for ``decide_discrete``: probabilities when the sampler offers them
    (``sample.probs(obs) -> (m, joint actions)``), else ``k`` draws per row from the row's RNG."""

    def __init__(self, model, obs: torch.Tensor, generators: list[torch.Generator], k: int):
        self.model, self.obs, self.generators, self.k = model, obs, generators, k

    def __call__(self, rows: np.ndarray) -> tuple[str, np.ndarray]:
        sample = self.model.policy_sampler
        obs = self.obs[torch.from_numpy(rows)]
        probs = getattr(sample, "probs", None)
        if probs is not None:
            return "probs", torch.as_tensor(probs(obs)).reshape(rows.size, -1).double().numpy()
        draws = torch.cat(
            [self.model.model_actions(sample(obs[j : j + 1], self.k, self.generators[r])) for j, r in enumerate(rows)]
        )
        return "draws", draws.argmax(dim=-1).numpy()


class StepperFrontEnd:
    """What every reject/resample wrapper (``ShieldWrapper``, ``VectorShieldWrapper``, SB3's
    ``ShieldedVecEnv``) keeps and exposes: the model (``safety_model``), its ``ShieldStepper``
    (``stepper``), the indicator, the policy hook and the counters."""

    safety_model: SafetyCritic
    stepper: ShieldStepper

    def _build_stepper(
        self,
        env: Any,
        model: SafetyCritic | str,
        indicator,
        observation_space: gym.Space,
        action_space: gym.Space,
        num_envs: int,
        *,
        train: bool | None,
        seed: int | None,
        config,
        on_nonfinite: str = "raise",
        enforce: bool = True,
    ):
        """Build (or take) the model, resolve the indicator, make the stepper.

        ``train=None`` keeps a given model's frozen or learning state (a fresh model learns): a
        wrapper default never unfreezes a loaded, frozen model. The indicator is the one given,
        else the one the model was trained with (saved in its checkpoint), else ``env``'s declared
        one. Returns ``(indicator, train)`` as resolved, for ``env.spec`` records.
        """
        self.safety_model = resolve_model(model, observation_space, action_space, config, seed, kind="reject")
        self.safety_model.resolve_horizon(control_period(env))
        if train is None:
            train = isinstance(model, str) or not self.safety_model.frozen
        indicator = default_indicator(env, indicator, self.safety_model)
        self.stepper = ShieldStepper(
            self.safety_model,
            indicator,
            observation_space,
            action_space,
            num_envs,
            train=train,
            seed=seed,
            on_nonfinite=on_nonfinite,
            enforce=enforce,
        )
        self.indicator = self.stepper.indicator
        return indicator, train

    @property
    def enforce(self) -> bool:
        """Whether the shield acts on its decisions (True) or runs in shadow mode (False): every
        proposal then runs unchanged while the shield scores it, learns and keeps its report.
        Settable at any time, e.g. ``env.set_wrapper_attr("enforce", True)`` once it has learned."""
        return self.stepper.enforce

    @enforce.setter
    def enforce(self, value: bool) -> None:
        self.stepper.enforce = check_enforce(value)

    def attach_policy(self, sample) -> None:
        """Draw candidates from the agent's policy ``sample(obs[m, d], n, generator)`` (the papers' rule)."""
        self.safety_model.attach_policy(sample)

    @property
    def sampler(self):
        """Where candidates come from now (see ``ShieldStepper.sampler``)."""
        return self.stepper.sampler

    @property
    def total_failures(self) -> int:
        return self.stepper.total_failures

    def quality_report(self) -> dict[str, Any]:
        """ROC AUC of the risk for "failure within horizon steps", calibration, false-safe,
        intervention and fallback rates on the recent steps (``safeshield.core.quality``)."""
        return self.stepper.quality_report()

    @property
    def total_interventions(self) -> int:
        return self.stepper.total_interventions

    @property
    def total_fallbacks(self) -> int:
        return self.stepper.total_fallbacks


def check_enforce(enforce: Any) -> bool:
    """``enforce`` as a bool, or a ``TypeError`` naming it."""
    if not isinstance(enforce, (bool, np.bool_)):
        raise TypeError(
            f"enforce must be a bool (True: act on decisions; False: shadow mode, learn and report only), "
            f"got {enforce!r}"
        )
    return bool(enforce)


def control_period(env: Any) -> float | None:
    """The env's control period ``dt`` in seconds when it declares one (MuJoCo envs do), else None."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        dt = getattr(candidate, "dt", None)
        if isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt > 0:
            return float(dt)
    try:  # a gymnasium vector env of identical sub-envs
        dt = env.get_attr("dt")[0] if hasattr(env, "get_attr") else None
    except Exception:  # noqa: BLE001 - sub-envs without dt, or an SB3 VecEnv that cannot answer
        return None
    return float(dt) if isinstance(dt, (int, float)) and dt > 0 else None


def flatten_batch(space: gym.Space, obs, n: int, *, batched: bool = True) -> np.ndarray:
    """Observations as ``(n, flat_dim)`` float32: ``obs`` is one env's (``batched=False``) or ``n``
    stacked ones of ``space`` (a single env's space; a Box batch is reshaped, others flattened per env)."""
    if isinstance(space, gym.spaces.Box):
        expected = (n, *space.shape) if batched else space.shape
        flat = as_float32("observation", obs, expected)  # not check_float_array: non-finite values are remember's
        if flat.size != n * math.prod(space.shape):
            raise ValueError(
                f"observation must have shape {expected} (the observation_space's), got shape {flat.shape}; "
                "the env returned an observation its observation_space does not describe: make the two agree "
                "(gymnasium.utils.env_checker.check_env finds such mismatches)"
            )
        return flat.reshape(n, -1)
    if not batched:
        return np.asarray(gym.spaces.flatten(space, obs), dtype=np.float32).reshape(1, -1)
    batch_space = gym.vector.utils.batch_space(space, n)
    rows = [gym.spaces.flatten(space, item) for item in gym.vector.utils.iterate(batch_space, obs)]
    return np.asarray(rows, dtype=np.float32)


def default_indicator(env: Any, indicator: str | Callable | None, model: Any = None) -> str | Callable:
    """``indicator``, else the one ``model`` was trained with (its checkpoint names it), else the one
    ``env`` declares in ``metadata["safeshield_indicator"]``.

    A model trained with a callable indicator remembers only its name (``"callable:module.name"``):
    functions are not saved. Then the error says which function to pass again.
    """
    if indicator is None and model is not None:
        indicator = getattr(model, "indicator", None)
    if isinstance(indicator, str) and indicator.startswith("callable:"):
        name = indicator[len("callable:") :]
        raise ValueError(
            f"this shield learned from the function indicator {name}, which a checkpoint cannot store: pass "
            f"indicator={name.rsplit('.', 1)[-1]} again (safeshield.load(path, env, indicator=...), or the "
            "wrapper's indicator argument)"
        )
    if indicator is not None:
        return indicator
    declared = (getattr(env, "metadata", None) or {}).get("safeshield_indicator")
    if declared is None:
        raise ValueError(
            'indicator is required for this env: "cost", "terminated", "info:<key>" or a callable '
            "(obs, reward, terminated, truncated, info) -> float in [0, 1]"
        )
    return declared
