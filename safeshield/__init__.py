"""safeshield: learned safety shields for any Gymnasium agent.

- ``wrap(env, method, indicator=...)``: put a shield around an env, in one line.
- ``wrap_vector(envs, method, ...)``: one shared shield for every sub-env of a vector env.
- ``make(env_id, shield=...)``: ``gym.make`` plus ``wrap``.
- ``load(path, env=...)``: carry a saved shield to an env (frozen unless ``train=True``).
- ``methods()``: installed shield methods and their default configs.
- ``Shield``, ``VectorShield``, ``RemapShield``, ``ShieldModel``: the front ends and the model base.
- ``SQRL``, ``CSC``, ``QEnsemble``, ``SAFER`` (and their configs): the methods.
- ``PreviousRewardCost``: append r_{t-1}, c_{t-1} to observations (safe transfer's agent input).

Agents live in ``safeshield.agents``; adapters for SB3 / Tianshou / TorchRL in
``safeshield.integrations`` (imported on demand, never by ``import safeshield``).

Importing safeshield registers its environments (``safeshield/DrunkSpider-v0``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from safeshield import environments  # noqa: F401  (registers the env ids)
from safeshield.core import CheckpointError, Shield, ShieldConfig, ShieldModel, get_method, method_names
from safeshield.core.remap import RemapShield, load_remap, remap_checkpoint_method, remap_method_names
from safeshield.core.vector import VectorShield, wrap_vector
from safeshield.shields import CSC, SAFER, SQRL, CSCConfig, QEnsemble, QEnsembleConfig, SAFERConfig, SQRLConfig
from safeshield.wrappers import PreviousRewardCost

__all__ = [
    "CheckpointError",
    "CSC",
    "CSCConfig",
    "PreviousRewardCost",
    "QEnsemble",
    "QEnsembleConfig",
    "SAFER",
    "SAFERConfig",
    "SQRL",
    "SQRLConfig",
    "Shield",
    "ShieldConfig",
    "ShieldModel",
    "RemapShield",
    "VectorShield",
    "load",
    "make",
    "methods",
    "wrap",
    "wrap_vector",
]
__version__ = "0.1.0"


def wrap(
    env: gym.Env,
    method: str = "sqrl",
    indicator: str | Callable | None = None,
    *,
    train: bool = True,
    seed: int | None = None,
    config: ShieldConfig | None = None,
    **options: Any,
) -> Shield:
    """Wrap ``env`` in a ``method`` shield that learns from ``indicator``.

    ``options`` are fields of the method's config (``eps_safe=0.05`` for SQRL); ``seed`` seeds
    the model's initial weights, minibatches and the candidate RNG (``reset(seed=...)`` reseeds
    the latter). Envs registered by safeshield declare their indicator, so it may be omitted.
    """
    if config is not None and options:
        raise TypeError("pass either config=... or keyword options, not both")
    if method in remap_method_names():  # remap shields (SAFER) change the action space: core.remap
        config = config.to_json() if config is not None else options
        return RemapShield(env, method, indicator, train=train, seed=seed, config=config)
    return Shield(env, method, indicator, train=train, seed=seed, config=config if config is not None else options)


def make(
    env_id: str,
    shield: str = "sqrl",
    indicator: str | Callable | None = None,
    *,
    train: bool = True,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> Shield:
    """``wrap(gym.make(env_id, **env_kwargs), shield, indicator, ...)``."""
    return wrap(gym.make(env_id, **(env_kwargs or {})), shield, indicator, train=train, seed=seed, **options)


def load(
    path: str | os.PathLike,
    env: gym.Env | None = None,
    *,
    train: bool = False,
    indicator: str | Callable | None = None,
    seed: int | None = None,
    **options: Any,
) -> Shield | ShieldModel:
    """Load a saved shield. With ``env``, return it wrapped around ``env`` (spaces must match).

    Frozen unless ``train=True`` (fine-tuning in the new env). The indicator saved with the
    shield is reused unless another is given (a callable indicator must be passed again).
    ``options`` change decision rules for the new phase (``pretraining=False``, ``eps_safe=...``).
    """
    if remap_checkpoint_method(path) is not None:  # a remap prior (SAFER): core.remap.load_remap
        return load_remap(path, env, train=train, indicator=indicator, seed=seed)
    if env is None:
        model = ShieldModel.from_checkpoint(path, seed=seed).reconfigure(**options)
        return model.unfreeze() if train else model.freeze()
    model = ShieldModel.from_checkpoint(path, env.observation_space, env.action_space, seed=seed).reconfigure(**options)
    return Shield(env, model, indicator or model.indicator, train=train, seed=seed)


def methods() -> dict[str, dict[str, Any]]:
    """Installed shield methods, each with its default configuration."""
    from safeshield.core.remap import get_remap_method

    remap = {name: get_remap_method(name).config_class().to_json() for name in remap_method_names()}
    return {**{name: get_method(name).config_class().to_json() for name in method_names()}, **remap}
