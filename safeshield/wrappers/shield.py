"""The Gymnasium wrapper of a reject/resample shield, for one env.

- ``ShieldWrapper``: checks every proposed action with a ``SafetyCritic`` (through
  ``core.decision.decide``), executes the chosen one, reports what it did in
  ``info["shield"]`` and, unless frozen, learns online from the failure indicator.
- ``find_shield``: the ``ShieldWrapper`` in an env's wrapper chain (what the adapters use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from safeshield.core.critic import CriticConfig, SafetyCritic
from safeshield.core.step import StepperFrontEnd, Transitions, flatten_batch

__all__ = ["ShieldWrapper", "find_shield"]


class ShieldWrapper(StepperFrontEnd, gym.Wrapper, gym.utils.RecordConstructorArgs):
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
       ``risk`` (of the executed action), ``proposal_risk``, ``threshold``, ``regret`` (the
       relative rule's, NaN without one), ``fell_back``, ``n_candidates``, ``failure``.

    The candidate RNG is reseeded by ``reset(seed=...)``, so a frozen shield is deterministic
    given the seed and ``gymnasium.utils.env_checker.check_env`` passes. Its vector twin,
    ``safeshield.wrappers.vector.VectorShieldWrapper``, shields N sub-envs with one model and the same
    per-step code (``ShieldStepper``).

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
        model: SafetyCritic | str = "sqrl",
        indicator: str | Callable | None = None,
        *,
        train: bool | None = None,
        seed: int | None = None,
        config: CriticConfig | dict[str, Any] | None = None,
        on_nonfinite: str = "raise",
        enforce: bool = True,
    ):
        """ShieldWrapper ``env`` with ``model`` (a ``SafetyCritic``, or a method name built with ``config``).

        ``train``: learn online (True) or not (False); None keeps a given model's state (a loaded
        model stays frozen) and lets a fresh one learn. ``indicator`` may be omitted when the model
        was trained with a named one (its checkpoint keeps it) or the env declares
        ``metadata["safeshield_indicator"]``.
        ``env.spec`` records the method name and config, not the weights: re-making the env
        from its spec gives a fresh shield of the same kind (save/load carries weights).
        ``enforce=False`` is shadow mode: every proposal runs unchanged while the shield scores it,
        learns and reports what it would have refused (``enforce`` can be set later).
        """
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        if _is_shielded(env):
            raise ValueError("env is already shielded; wrap the unshielded env (double shielding hides decisions)")
        gym.Wrapper.__init__(self, env)
        indicator, train = self._build_stepper(
            env,
            model,
            indicator,
            env.observation_space,
            env.action_space,
            1,
            train=train,
            seed=seed,
            config=config,
            on_nonfinite=on_nonfinite,
            enforce=enforce,
        )
        gym.utils.RecordConstructorArgs.__init__(
            self,
            model=self.safety_model.name,
            indicator=indicator,
            train=train,
            seed=seed,
            config=self.safety_model.config.to_json(),
            on_nonfinite=on_nonfinite,
            enforce=enforce,
        )

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.stepper.error = None
        if seed is not None:
            self.stepper.seed(seed)
        self.stepper.remember(flatten_batch(self.observation_space, obs, 1, batched=False))
        self.stepper.start_episodes(self._ROW)
        return obs, info

    def step(self, action):
        stepper = self.stepper
        stepper.ready("env")
        proposal = stepper.validate(action)
        decision = stepper.decide(proposal, self._ROW)
        executed = decision.action
        previous, previous_bad = stepper.obs_flat, stepper.any_nonfinite
        try:
            obs, reward, terminated, truncated, info = self.env.step(stepper.to_env(executed))
            failure = self.indicator(obs, reward, terminated, truncated, info)
            reward_ok = stepper.check_reward(reward)
            stepper.remember(flatten_batch(self.observation_space, obs, 1, batched=False))
        except BaseException as error:
            stepper.fail(error)
            raise
        skip = (True,) if previous_bad or stepper.any_nonfinite or not reward_ok else None
        stepper.record(
            Transitions(self._ROW, previous, executed, stepper.obs_flat, (failure,), (terminated,), (truncated,), skip),
            decision,
        )
        info = dict(info)
        info["shield"] = stepper.report(action, executed[0], decision, 0, failure)
        return obs, reward, terminated, truncated, info

    @property
    def episode_failures(self) -> int:
        return int(self.stepper.episode_failures[0])


def find_shield(env: Any) -> ShieldWrapper | None:
    """The ``ShieldWrapper`` in ``env``'s wrapper chain, or None (adapters use it to reach the shield)."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, ShieldWrapper):
            return env
        env = env.env
    return None


def _is_shielded(env: gym.Env) -> bool:
    return find_shield(env) is not None
