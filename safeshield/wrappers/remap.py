"""The Gymnasium front end of a *remap* shield (SAFER): the agent acts in a latent box.

- ``RemapWrapper``: a ``gymnasium.Wrapper`` whose action space is ``Box(-1, 1, (d,))``; it maps
  every agent action u to the env action ``a = f(eta * u; s, E[c | Lambda])``.
- The model is a ``safeshield.core.prior.RemapPrior`` (``remap``, ``eta``, ``window``, online hooks).

A reject/resample shield (``safeshield.wrappers.ShieldWrapper``) keeps the agent's action space and replaces
unsafe proposals; a remap shield changes the action space and maps *every* action, so it has
no candidates and no fallback.

Why ``Box(-1, 1)`` scaled by eta inside, not ``Box(-eta, eta)``: SB3 and most libraries assume
or warn about boxes other than [-1, 1], and a recalibrated eta would change the space.

The window Lambda_t = [s_{t-w+1}, ..., s_t] includes the current observation and is zero-padded
(with ``valid`` False) after ``reset()``; FIFO of length ``model.window``.

``info["shield"]`` on every step:

- ``proposed_action``: the agent's u, as given; ``executed_action``: clip(u, -1, 1), the action in
  the space the agent sees, which is what an off-policy agent must store (SAFER Alg. 1 stores z:
  the critic and actor live in the latent space; the reference SAC stores ``executed_action``);
- ``latent``: z = eta * clip(u, -1, 1);
- ``env_action``: a = f(z; s, c), what the inner env executed, always inside its action space;
- ``intervened``: True iff u lay outside [-1, 1]^d and was clipped onto the box, the only case
  where the shield changes what the agent asked for (a remap of an in-box u is the method
  itself, not an intervention); ``fell_back``: always False (nothing to fall back from);
- ``risk``: ||z||_inf / eta in [0, 1] (the box of SAFER Alg. 3 is where risk < 1);
  ``threshold``: 1.0; ``neg_log_prob``: -log p(a | s, c) under the prior;
- ``failure``: the indicator's value (None when the shield has no indicator).

"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from safeshield.core.indicators import describe_indicator, make_indicator
from safeshield.core.model import SafetyConfig, resolve_model
from safeshield.core.prior import RemapPrior

__all__ = ["RemapWrapper"]


def _indicator_of(env: gym.Env, indicator: str | Callable | None, model: Any, train: bool) -> str | Callable | None:
    """The indicator given, else the model's saved one, else the env's declared one; None for a frozen
    prior with none of them (a remap needs no indicator to act, only to learn and to report failures)."""
    from safeshield.core.step import default_indicator

    saved = getattr(model, "indicator", None)
    if indicator is None and isinstance(saved, str) and saved.startswith("callable:") and not train:
        saved = None  # frozen: acting needs no indicator; the report's failure is then None
    try:
        return default_indicator(env, indicator, None if saved is None else model)
    except ValueError:
        if indicator is None and saved is None and not train:
            return None
        raise


class RemapWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Let the agent act in the latent box of a remap prior; execute the prior's action.

    Example:
        >>> import gymnasium as gym, safeshield
        >>> env = safeshield.wrap(gym.make("Pendulum-v1"), "safer", indicator=lambda *s: 0.0, train=False)
        >>> env.action_space
        Box(-1.0, 1.0, (1,), float32)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> bool(env.unwrapped.action_space.contains(info["shield"]["env_action"]))
        True
    """

    def __init__(
        self,
        env: gym.Env,
        model: RemapPrior | str,
        indicator: str | Callable | None = None,
        *,
        train: bool = False,
        seed: int | None = None,
        config: SafetyConfig | dict[str, Any] | None = None,
    ):
        """``model``: a built remap model, or a remap method name (a fresh model built with ``config``).

        ``train=True`` fine-tunes the prior online from ``indicator`` (not in the SAFER paper,
        which trains offline only); it needs an indicator. ``env.spec`` records the method
        name and config, not the weights.
        """
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        if not isinstance(env.action_space, gym.spaces.Box) or not env.action_space.is_bounded("both"):
            raise TypeError(f"RemapWrapper requires a bounded Box action space, got {env.action_space}")
        model = resolve_model(model, env.observation_space, env.action_space, config, seed, kind="remap")
        indicator = _indicator_of(env, indicator, model, train)
        if train and indicator is None:
            raise ValueError("train=True needs an indicator (the env declares none): pass indicator=...")
        gym.utils.RecordConstructorArgs.__init__(
            self, model=model.name, indicator=indicator, train=train, seed=seed, config=model.config.to_json()
        )
        gym.Wrapper.__init__(self, env)
        self.safety_model = model
        model.indicator = describe_indicator(indicator) if indicator is not None else None
        self.indicator = make_indicator(indicator) if indicator is not None else None
        self.train = bool(train)
        model.frozen = not self.train
        self._dim = int(np.prod(env.action_space.shape))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self._dim,), np.float32)
        self._env_shape, self._env_dtype = env.action_space.shape, env.action_space.dtype
        obs_shape = env.observation_space.shape
        self._window = np.zeros((model.window, *obs_shape), dtype=np.float32)
        self._valid = np.zeros(model.window, dtype=bool)
        self._started = False
        self.total_interventions = 0
        self.total_failures = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._window[:] = 0.0
        self._valid[:] = False
        self._push(obs)
        self._started = True
        return obs, info

    def _push(self, obs: Any) -> None:
        self._window[:-1] = self._window[1:]
        self._valid[:-1] = self._valid[1:]
        self._window[-1] = np.asarray(obs, dtype=np.float32).reshape(self._window.shape[1:])
        self._valid[-1] = True

    def _validate(self, action: Any) -> np.ndarray:
        u = np.asarray(action, dtype=np.float32)
        if u.size != self._dim:
            raise ValueError(
                f"action must have {self._dim} entries (the latent Box(-1, 1, ({self._dim},))), got shape {u.shape}"
            )
        u = u.reshape(self._dim)
        if not np.all(np.isfinite(u)):
            raise ValueError(f"action contains NaN or inf: {u}")
        return u

    def step(self, action):
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step() on a shielded env")
        u = self._validate(action)
        clipped = np.clip(u, -1.0, 1.0)
        intervened = bool(np.any(clipped != u))
        eta = float(self.safety_model.eta)
        latent = (eta * clipped).astype(np.float32)
        env_action, neg_log_prob = self.safety_model.remap(latent, self._window, self._valid)
        env_action = env_action.reshape(self._env_shape).astype(self._env_dtype)
        obs, reward, terminated, truncated, info = self.env.step(env_action)
        failure = self.indicator(obs, reward, terminated, truncated, info) if self.indicator is not None else None
        if self.train:
            self.safety_model.observe(self._window, self._valid, env_action.reshape(-1), float(failure))
            self.safety_model.after_step()
        self._push(obs)
        self.total_interventions += intervened
        self.total_failures += bool(failure)
        info = dict(info)
        info["shield"] = {
            "proposed_action": np.asarray(action, dtype=np.float32).copy(),
            "executed_action": clipped,
            "latent": latent,
            "env_action": env_action,
            "intervened": intervened,
            "risk": float(np.max(np.abs(latent)) / eta) if eta > 0 else 0.0,
            "threshold": 1.0,
            "neg_log_prob": float(neg_log_prob),
            "fell_back": False,
            "failure": failure,
        }
        return obs, reward, terminated, truncated, info

    @property
    def window(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the current window (oldest first) and its validity mask."""
        return self._window.copy(), self._valid.copy()
