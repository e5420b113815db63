"""The Gymnasium front end of a reject/resample shield.

- ``Shield``: a ``gymnasium.Wrapper`` that checks every proposed action with a ``ShieldModel``
  (through ``decide``), executes the chosen one, reports what it did in ``info["shield"]`` and,
  unless frozen, learns online from the failure indicator.

The wrapper only does I/O: validation, flattening, bookkeeping and the buffer's SARSA link.
The decision itself is ``safeshield.core.decision.decide``, shared with the vector front ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from safeshield.core.decision import Decision, PerturbationSampler, PolicySampler, decide
from safeshield.core.indicators import make_indicator
from safeshield.core.model import ShieldConfig, ShieldModel, get_method

__all__ = ["Shield"]


class Shield(gym.Wrapper, gym.utils.RecordConstructorArgs):
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
    given the seed and ``gymnasium.utils.env_checker.check_env`` passes.

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=lambda *s: 0.0)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> sorted(info["shield"])[:3]
        ['executed_action', 'failure', 'fell_back']
    """

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
        if isinstance(model, str):
            model = build_model(model, env.observation_space, env.action_space, config, seed=seed)
        elif config is not None:
            raise TypeError("config is only used when model is a method name; the model already has one")
        indicator = default_indicator(env, indicator)
        gym.utils.RecordConstructorArgs.__init__(
            self, model=model.name, indicator=indicator, train=train, seed=seed, config=model.config.to_json()
        )
        gym.Wrapper.__init__(self, env)
        self.shield = model
        self.indicator = make_indicator(indicator)
        model.indicator = indicator if isinstance(indicator, str) else None
        if train:
            model.unfreeze()
        else:
            model.freeze()
        space = env.action_space
        self._action_shape, self._action_dtype = space.shape, space.dtype
        self._low = torch.as_tensor(space.low, dtype=torch.float32).reshape(-1)
        self._high = torch.as_tensor(space.high, dtype=torch.float32).reshape(-1)
        self._low_np, self._high_np = self._low.numpy(), self._high.numpy()
        self._half_range = (self._high_np - self._low_np) / 2
        self._perturbation: tuple[ShieldConfig, PerturbationSampler, PerturbationSampler] | None = None
        self._generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self._obs_space = env.observation_space
        self._obs_flat: np.ndarray | None = None
        self._obs_tensor: torch.Tensor | None = None
        self._pending_row: int | None = None
        self.episode_failures = 0
        self.total_failures = 0
        self.total_interventions = 0
        self.total_fallbacks = 0

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._generator.manual_seed(int(seed))
        self._remember(obs)
        self._pending_row = None
        self.episode_failures = 0
        return obs, info

    def step(self, action):
        if self._obs_tensor is None:
            raise gym.error.ResetNeeded("call reset() before step() on a shielded env")
        proposal = self._validate(action)
        decision = self._decide(proposal)
        executed = decision.action[0]
        obs, reward, terminated, truncated, info = self.env.step(
            executed.reshape(self._action_shape).astype(self._action_dtype, copy=False)
        )
        failure = self.indicator(obs, reward, terminated, truncated, info)
        previous = self._obs_flat
        self._remember(obs)
        self._learn(previous, executed, failure, terminated, truncated)
        self._count(decision, failure)
        info = dict(info)
        info["shield"] = {
            "proposed_action": np.asarray(action, dtype=self._action_dtype).copy(),
            "executed_action": executed.reshape(self._action_shape).astype(self._action_dtype),
            "intervened": bool(decision.intervened[0]),
            "risk": float(decision.risk[0]),
            "proposal_risk": float(decision.proposal_risk[0]),
            # the comparison runs in float32; report the threshold it actually used
            "threshold": float(np.float32(self.shield.threshold)),
            "fell_back": bool(decision.fell_back[0]),
            "n_candidates": int(decision.n_candidates[0]),
            "failure": failure,
        }
        return obs, reward, terminated, truncated, info

    # -- the pieces -----------------------------------------------------------------------------
    def attach_policy(self, sample) -> None:
        """Draw candidates from the agent's policy ``sample(obs[m, d], n, generator)`` (the papers' rule)."""
        self.shield.attach_policy(sample)

    @property
    def sampler(self):
        """The agent's policy when attached (widened by perturbations after the first round when
        ``widen_policy``), else perturbations of the proposal built from the current config."""
        cfg = self.shield.config
        if self._perturbation is None or self._perturbation[0] is not cfg:
            perturb = PerturbationSampler(self._low, self._high, cfg.perturbation_scale, cfg.uniform_fraction, cfg.widen)
            widen_policy = PerturbationSampler(self._low, self._high, cfg.perturbation_scale, 0.0, cfg.widen)
            self._perturbation = (cfg, perturb, widen_policy)
        if self.shield.policy_sampler is not None:
            wider = self._perturbation[2] if cfg.widen_policy else None
            return PolicySampler(self.shield.policy_sampler, self._low, self._high, wider=wider)
        return self._perturbation[1]

    def _validate(self, action) -> np.ndarray:
        try:
            array = np.asarray(action, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ValueError(f"action must be a numeric array of shape {self._action_shape}, got {action!r}") from error
        if array.shape != self._action_shape:
            raise ValueError(f"action must have shape {self._action_shape}, got shape {array.shape}")
        flat = array.reshape(-1)
        if not np.isfinite(flat).all():
            raise ValueError(f"action contains NaN or inf: {array!r}")
        return np.minimum(np.maximum(flat, self._low_np), self._high_np)

    def _decide(self, proposal: np.ndarray) -> Decision:
        """Score the proposal on the lean single-pair path; only a rejection runs the batched core."""
        model = self.shield
        risk = np.array([model.proposal_risk(self._obs_flat, proposal)], dtype=np.float32)
        if risk[0] < np.float32(model.threshold):
            return Decision.accepted(proposal[None], risk)
        cfg = model.config
        with torch.inference_mode():
            return decide(
                model.risk,
                self._obs_tensor,
                torch.from_numpy(proposal).unsqueeze(0),
                model.threshold,
                self.sampler,
                self._generator,
                k=cfg.n_candidates,
                rounds=cfg.resample_rounds,
                selection=model.selection,
                half_range=self._half_range,
                proposal_risk=risk,
            )

    def _remember(self, obs) -> None:
        if isinstance(self._obs_space, gym.spaces.Box):
            flat = np.asarray(obs, dtype=np.float32).reshape(-1)
        else:
            flat = np.asarray(gym.spaces.flatten(self._obs_space, obs), dtype=np.float32)
        self._obs_flat = flat
        self._obs_tensor = torch.from_numpy(flat).unsqueeze(0)

    def _learn(self, previous: np.ndarray, executed: np.ndarray, failure: float, terminated: bool, truncated: bool) -> None:
        """Store ``(previous, executed, current obs)``; link the previous transition to ``executed``."""
        model = self.shield
        if model.frozen:
            return
        if self._pending_row is not None:
            model.buffer.set_next_action(self._pending_row, executed)
        row = model.observe(previous, executed, self._obs_flat, failure, terminated)
        self._pending_row = None if (terminated or truncated) else row
        model.after_step()
        if terminated or truncated:
            model.on_episode_end(self.episode_failures + failure > 0)

    def _count(self, decision, failure: float) -> None:
        self.total_interventions += int(decision.intervened[0])
        self.total_fallbacks += int(decision.fell_back[0])
        if failure > 0.5:
            self.episode_failures += 1
            self.total_failures += 1


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


def default_indicator(env: gym.Env, indicator: str | Callable | None) -> str | Callable:
    """``indicator``, or the one ``env`` declares in ``metadata["safeshield_indicator"]``."""
    if indicator is not None:
        return indicator
    declared = (env.metadata or {}).get("safeshield_indicator")
    if declared is None:
        raise ValueError(
            'indicator is required for this env: "cost", "terminated", "info:<key>" or a callable '
            "(obs, reward, terminated, truncated, info) -> float in [0, 1]"
        )
    return declared


def _is_shielded(env: gym.Env) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, Shield):
            return True
        env = env.env
    return False
