"""The Gymnasium front end of a reject/resample shield, and the per-step core every front end shares.

- ``Shield``: a ``gymnasium.Wrapper`` that checks every proposed action with a ``ShieldModel``
  (through ``decide``), executes the chosen one, reports what it did in ``info["shield"]`` and,
  unless frozen, learns online from the failure indicator.
- ``ShieldCore``: the per-step work for ``n`` environments (rows) at once: validation,
  decision, the buffer's SARSA link, the learning schedule, counters and the report. ``Shield``
  runs it with one row; the vector front ends (``safeshield.core.vector.VectorShield``, the SB3
  ``ShieldedVecEnv``) run it with one row per sub-env, so all share one code path.
- ``build_model`` / ``default_indicator`` / ``flatten_batch``: small helpers the front ends share.

The front ends only do I/O. The decision itself is ``safeshield.core.decision.decide``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from safeshield.core.decision import Decision, PerturbationSampler, PolicySampler, decide
from safeshield.core.indicators import make_indicator
from safeshield.core.model import ShieldConfig, ShieldModel, get_method

__all__ = ["Shield", "ShieldCore", "build_model", "default_indicator", "flatten_batch"]


class ShieldCore:
    """One shield's per-step state and work for ``n_envs`` environments sharing one model.

    Each env (row) keeps its own current observation, its own pending SARSA row and its own
    candidate RNG (seeded ``seed + i``), so row ``i`` decides exactly as a single-env ``Shield``
    seeded ``seed + i`` would, whatever the other rows do. What is batched: one risk query for
    all proposals, and per resampling round one risk query for every rejected row's candidates.
    """

    def __init__(
        self,
        model: ShieldModel,
        indicator: str | Callable,
        observation_space: gym.Space,
        action_space: gym.spaces.Box,
        n_envs: int = 1,
        *,
        train: bool = True,
        seed: int | None = None,
    ):
        self.model = model
        self.indicator = make_indicator(indicator)
        model.indicator = indicator if isinstance(indicator, str) else None
        if train:
            model.unfreeze()
        else:
            model.freeze()
        self.n_envs = int(n_envs)
        self.observation_space, self.action_space = observation_space, action_space
        self.action_shape, self.action_dtype = action_space.shape, action_space.dtype
        self.low = torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1)
        self.high = torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1)
        self.low_np, self.high_np = self.low.numpy(), self.high.numpy()
        self.half_range = (self.high_np - self.low_np) / 2
        self._perturbation: tuple[ShieldConfig, PerturbationSampler, PerturbationSampler] | None = None
        base = 0 if seed is None else int(seed)
        self.generators = [torch.Generator().manual_seed(base + i) for i in range(self.n_envs)]
        self.obs_flat: np.ndarray | None = None  # (n_envs, obs_dim) float32, the current observations
        self.obs_tensor: torch.Tensor | None = None  # the same memory as a tensor
        self.pending = [None] * self.n_envs  # buffer row waiting for its next action, per env
        self.episode_failures = np.zeros(self.n_envs, dtype=np.int64)
        self.total_failures = 0
        self.total_interventions = 0
        self.total_fallbacks = 0

    # -- observations, seeds and episodes -------------------------------------------------------
    def remember(self, flat_obs: np.ndarray) -> None:
        """Set every row's current observation (``(n_envs, obs_dim)`` float32)."""
        self.obs_flat = flat_obs
        self.obs_tensor = torch.from_numpy(flat_obs)

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
    def validate(self, action, shape: tuple[int, ...]) -> np.ndarray:
        """``action`` as ``(rows, act_dim)`` float32 clipped into the Box; ``shape`` is what it must have."""
        try:
            array = np.asarray(action, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ValueError(f"action must be a numeric array of shape {shape}, got {action!r}") from error
        if array.shape != shape:
            raise ValueError(f"action must have shape {shape}, got shape {array.shape}")
        flat = array.reshape(-1, self.low_np.size)
        if not np.isfinite(flat).all():
            raise ValueError(f"action contains NaN or inf: {array!r}")
        return np.minimum(np.maximum(flat, self.low_np), self.high_np)

    def decide(self, proposals: np.ndarray, rows: np.ndarray | None = None) -> Decision:
        """Decide for ``rows`` (all rows by default) given their ``(len(rows), act_dim)`` proposals."""
        model = self.model
        threshold = np.float32(model.threshold)
        if rows is None:
            rows = np.arange(self.n_envs)
        if rows.size == 1:  # the lean single-pair path (numpy forward, no torch dispatch)
            risk = np.array([model.proposal_risk(self.obs_flat[rows[0]], proposals[0])], dtype=np.float32)
        else:
            obs = self.obs_tensor if rows.size == self.n_envs else self.obs_tensor[torch.from_numpy(rows)]
            with torch.inference_mode():
                risk = model.risk(obs, torch.from_numpy(proposals)).numpy()
        if not (risk >= threshold).any():
            return Decision.accepted(proposals, risk)
        return self._resample(proposals, risk, rows, threshold)

    def _resample(self, proposals: np.ndarray, proposal_risk: np.ndarray, rows: np.ndarray, threshold) -> Decision:
        """``decide`` for the rejected rows, one round at a time, each row drawing from its own RNG.

        Each round is one ``decide`` call (one batched candidate query); across rounds a row keeps
        its least risky action, as ``decide`` does within its own rounds.
        """
        cfg, model = self.model.config, self.model
        action, risk = proposals.copy(), proposal_risk.copy()
        n = proposals.shape[0]
        found = np.zeros(n, dtype=bool)
        n_candidates = np.zeros(n, dtype=np.int64)
        rejected = np.flatnonzero(proposal_risk >= threshold)
        active = rejected
        obs = self.obs_tensor[torch.from_numpy(rows[active])]
        proposal_t = torch.from_numpy(proposals)
        with torch.inference_mode():
            for round_index in range(cfg.resample_rounds):
                index = torch.from_numpy(active)
                sampler = _PerEnvSampler(self.sampler, [self.generators[r] for r in rows[active]], round_index)
                step = decide(
                    model.risk, obs, proposal_t[index], threshold, sampler, self.generators[rows[active[0]]],
                    k=cfg.n_candidates, rounds=1, selection=model.selection,
                    half_range=self.half_range, proposal_risk=proposal_risk[active],
                )
                n_candidates[active] += step.n_candidates
                safe = ~step.fell_back
                better = safe | (step.risk < risk[active])
                action[active[better]] = step.action[better]
                risk[active[better]] = step.risk[better]
                found[active] = safe
                if safe.all():
                    break
                obs = obs[torch.from_numpy(np.flatnonzero(~safe))]
                active = active[~safe]
        intervened = np.zeros(n, dtype=bool)
        intervened[rejected] = (action[rejected] != proposals[rejected]).any(axis=1)
        fell_back = np.zeros(n, dtype=bool)
        fell_back[rejected] = ~found[rejected]
        return Decision(action, risk, proposal_risk, intervened, fell_back, n_candidates)

    def record(self, rows, previous: np.ndarray, executed: np.ndarray, next_flat: np.ndarray,
               failures, terminated, truncated, intervened, fell_back) -> None:
        """Count one step of ``rows``; unless frozen, store ``(previous, executed, next)`` per row,
        link each env's previous transition to ``executed`` (SARSA) and learn on the schedule.

        Rows are stored one after another with the model's schedule checked after each, exactly
        as the same steps taken by single-env shields one after another would be.
        """
        model = self.model
        if not model.frozen:
            self._store_and_learn(rows, previous, executed, next_flat, failures, terminated, truncated)
        failed = np.asarray(failures) > 0.5
        self.total_interventions += int(np.count_nonzero(intervened))
        self.total_fallbacks += int(np.count_nonzero(fell_back))
        if failed.any():
            np.add.at(self.episode_failures, np.asarray(rows)[failed], 1)
            self.total_failures += int(np.count_nonzero(failed))

    def _store_and_learn(self, rows, previous, executed, next_flat, failures, terminated, truncated) -> None:
        # Learning needs autograd even when the caller steps the env under no_grad or
        # inference_mode, as TorchRL's collectors do.
        model = self.model
        with torch.inference_mode(False), torch.enable_grad():
            for j, row in enumerate(rows):
                failure, done = failures[j], bool(terminated[j] or truncated[j])
                if self.pending[row] is not None:
                    model.buffer.set_next_action(self.pending[row], executed[j])
                stored = model.observe(previous[j], executed[j], next_flat[j], failure, bool(terminated[j]))
                self.pending[row] = None if done else stored
                model.after_step()
                if done:
                    model.on_episode_end(self.episode_failures[row] + failure > 0)

    def report(self, proposed, executed: np.ndarray, decision: Decision, j: int, failure: float) -> dict[str, Any]:
        """The ``info["shield"]`` dict of one env (row ``j`` of ``decision``)."""
        return {
            "proposed_action": np.asarray(proposed, dtype=self.action_dtype).copy(),
            "executed_action": executed.reshape(self.action_shape).astype(self.action_dtype),
            "intervened": bool(decision.intervened[j]),
            "risk": float(decision.risk[j]),
            "proposal_risk": float(decision.proposal_risk[j]),
            # the comparison runs in float32; report the threshold it actually used
            "threshold": float(np.float32(self.model.threshold)),
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
            widen_policy = PerturbationSampler(self.low, self.high, cfg.perturbation_scale, 0.0, cfg.widen)
            self._perturbation = (cfg, perturb, widen_policy)
        if self.model.policy_sampler is not None:
            wider = self._perturbation[2] if cfg.widen_policy else None
            return PolicySampler(self.model.policy_sampler, self.low, self.high, wider=wider)
        return self._perturbation[1]


class _PerEnvSampler:
    """Draw each row's candidates with its own env's RNG, at a fixed round index.

    Why not one draw for all rows: then a row's candidates would depend on which other envs
    were rejected in the same step, and a vector shield would not decide as N single ones do.
    Sampling is cheap next to scoring, which stays one batched call per round.
    """

    def __init__(self, sampler, generators: list[torch.Generator], round_index: int):
        self.sampler, self.generators, self.round_index = sampler, generators, round_index

    def __call__(self, obs, proposal, k, _round_index, _generator):
        if len(self.generators) == 1:
            return self.sampler(obs, proposal, k, self.round_index, self.generators[0])
        return torch.cat([
            self.sampler(obs[i : i + 1], proposal[i : i + 1], k, self.round_index, generator)
            for i, generator in enumerate(self.generators)
        ])


class ShieldFrontEnd:
    """What every front end (``Shield``, ``VectorShield``, SB3's ``ShieldedVecEnv``) keeps and exposes:
    the model (``shield``), its ``ShieldCore``, the indicator, the policy hook and the counters."""

    shield: ShieldModel
    core: ShieldCore

    def _build_core(self, env: Any, model: ShieldModel | str, indicator, observation_space: gym.Space,
                    action_space: gym.Space, num_envs: int, *, train: bool, seed: int | None, config):
        """Build (or take) the model, resolve the indicator (``env``'s declared one by default), make the core.

        Returns the resolved indicator as given (a name or a callable), for ``env.spec`` records.
        """
        self.shield = resolve_model(model, observation_space, action_space, config, seed)
        indicator = default_indicator(env, indicator)
        self.core = ShieldCore(self.shield, indicator, observation_space, action_space, num_envs, train=train, seed=seed)
        self.indicator = self.core.indicator
        return indicator

    def attach_policy(self, sample) -> None:
        """Draw candidates from the agent's policy ``sample(obs[m, d], n, generator)`` (the papers' rule)."""
        self.shield.attach_policy(sample)

    @property
    def sampler(self):
        """Where candidates come from now (see ``ShieldCore.sampler``)."""
        return self.core.sampler

    @property
    def total_failures(self) -> int:
        return self.core.total_failures

    @property
    def total_interventions(self) -> int:
        return self.core.total_interventions

    @property
    def total_fallbacks(self) -> int:
        return self.core.total_fallbacks


class Shield(ShieldFrontEnd, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Execute only actions a learned model deems safe; learn that model from a failure indicator.

    Every ``step(action)``:

    1. validates ``action`` (shape, finite) and clips it into the Box (the only silent change:
       an executed action is always inside the action space);
    2. asks the model for the proposal's risk; if it is below the threshold the proposal runs
       unchanged, otherwise candidates are scored in batches and a safe one (or, failing that,
       the least risky one, flagged ``fell_back``) runs instead;
    3. steps the env, computes ``failure = indicator(...)``, stores the transition with the
       *executed* action and lets the model learn on its schedule (unless frozen);
    4. adds ``info["shield"]``: ``proposed_action``, ``executed_action``, ``intervened``,
       ``risk`` (of the executed action), ``proposal_risk``, ``threshold``, ``fell_back``,
       ``n_candidates``, ``failure``.

    The candidate RNG is reseeded by ``reset(seed=...)``, so a frozen shield is deterministic
    given the seed and ``gymnasium.utils.env_checker.check_env`` passes. Its vector twin,
    ``safeshield.core.vector.VectorShield``, shields N sub-envs with one model and the same
    per-step code (``ShieldCore``).

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=lambda *s: 0.0)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> sorted(info["shield"])[:3]
        ['executed_action', 'failure', 'fell_back']
    """

    _ROW = np.zeros(1, dtype=np.int64)

    def __init__(
        self,
        env: gym.Env,
        model: ShieldModel | str = "sqrl",
        indicator: str | Callable | None = None,
        *,
        train: bool = True,
        seed: int | None = None,
        config: ShieldConfig | dict[str, Any] | None = None,
    ):
        """Shield ``env`` with ``model`` (a ``ShieldModel``, or a method name built with ``config``).

        ``indicator`` may be omitted for envs that declare ``metadata["safeshield_indicator"]``.
        ``env.spec`` records the method name and config, not the weights: re-making the env
        from its spec gives a fresh shield of the same kind (save/load carries weights).
        """
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        if not isinstance(env.action_space, gym.spaces.Box):
            raise TypeError(f"Shield requires a Box action space, got {env.action_space}")
        if _is_shielded(env):
            raise ValueError("env is already shielded; wrap the unshielded env (double shielding hides decisions)")
        gym.Wrapper.__init__(self, env)
        indicator = self._build_core(env, model, indicator, env.observation_space, env.action_space, 1,
                                     train=train, seed=seed, config=config)
        gym.utils.RecordConstructorArgs.__init__(
            self, model=self.shield.name, indicator=indicator, train=train, seed=seed,
            config=self.shield.config.to_json(),
        )

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self.core.seed(seed)
        self.core.remember(flatten_batch(self.observation_space, obs, 1, batched=False))
        self.core.start_episodes(self._ROW)
        return obs, info

    def step(self, action):
        core = self.core
        if core.obs_flat is None:
            raise gym.error.ResetNeeded("call reset() before step() on a shielded env")
        proposal = core.validate(action, core.action_shape)
        decision = core.decide(proposal, self._ROW)
        executed = decision.action
        obs, reward, terminated, truncated, info = self.env.step(
            executed[0].reshape(core.action_shape).astype(core.action_dtype, copy=False)
        )
        failure = self.indicator(obs, reward, terminated, truncated, info)
        previous = core.obs_flat
        core.remember(flatten_batch(self.observation_space, obs, 1, batched=False))
        core.record(self._ROW, previous, executed, core.obs_flat, (failure,), (terminated,), (truncated,),
                    decision.intervened, decision.fell_back)
        info = dict(info)
        info["shield"] = core.report(action, executed[0], decision, 0, failure)
        return obs, reward, terminated, truncated, info

    @property
    def episode_failures(self) -> int:
        return int(self.core.episode_failures[0])


def flatten_batch(space: gym.Space, obs, n: int, *, batched: bool = True) -> np.ndarray:
    """Observations as ``(n, flat_dim)`` float32: ``obs`` is one env's (``batched=False``) or ``n``
    stacked ones of ``space`` (a single env's space; a Box batch is reshaped, others flattened per env)."""
    if isinstance(space, gym.spaces.Box):
        return np.asarray(obs, dtype=np.float32).reshape(n, -1)
    if not batched:
        return np.asarray(gym.spaces.flatten(space, obs), dtype=np.float32).reshape(1, -1)
    batch_space = gym.vector.utils.batch_space(space, n)
    rows = [gym.spaces.flatten(space, item) for item in gym.vector.utils.iterate(batch_space, obs)]
    return np.asarray(rows, dtype=np.float32)


def resolve_model(model: ShieldModel | str, observation_space: gym.Space, action_space: gym.Space,
                  config: ShieldConfig | dict[str, Any] | None, seed: int | None) -> ShieldModel:
    """``model`` itself, or the ``model`` method built with ``config`` (which only a name may take)."""
    if isinstance(model, str):
        return build_model(model, observation_space, action_space, config, seed=seed)
    if config is not None:
        raise TypeError("config is only used when model is a method name; the model already has one")
    return model


def build_model(
    method: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    config: ShieldConfig | dict[str, Any] | None = None,
    seed: int | None = None,
) -> ShieldModel:
    """Build the ``method`` model; ``config`` is its config object or a dict of its fields."""
    cls = get_method(method)
    if isinstance(config, dict):
        config = cls.config_class.from_options(config, method)
    return cls(observation_space, action_space, config, seed=seed)


def default_indicator(env: Any, indicator: str | Callable | None) -> str | Callable:
    """``indicator``, or the one ``env`` declares in ``metadata["safeshield_indicator"]``."""
    if indicator is not None:
        return indicator
    declared = (getattr(env, "metadata", None) or {}).get("safeshield_indicator")
    if declared is None:
        raise ValueError(
            'indicator is required for this env: "cost", "terminated", "info:<key>" or a callable '
            "(obs, reward, terminated, truncated, info) -> float in [0, 1]"
        )
    return declared


def find_shield(env: Any) -> Shield | None:
    """The ``Shield`` in ``env``'s wrapper chain, or None (adapters use it to reach the shield)."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, Shield):
            return env
        env = env.env
    return None


def _is_shielded(env: gym.Env) -> bool:
    return find_shield(env) is not None
