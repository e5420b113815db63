"""safeshield: learned safety shields for any Gymnasium agent.

- ``wrap(env, method, indicator=...)``: put a shield around an env, in one line.
- ``wrap_vector(envs, method, ...)``: one shared shield for every sub-env of a vector env.
- ``make(env_id, shield=...)``: ``gym.make`` plus ``wrap``.
- ``model_for(env, method)``: the model ``wrap`` would build for ``env``, to pre-train before wrapping.
- ``load(path, env=...)``: carry a saved shield to an env (frozen unless ``train=True``).
- ``methods()``: installed shield methods and their default configs.
- ``held_out_quality(model, env, policy)``: a shield's quality report on episodes it never learned
  from (shadow mode: it scores every proposal and changes none).
- ``ShieldWrapper``, ``VectorShieldWrapper``, ``RemapWrapper``, ``PreviousRewardCost``: the
  wrappers (``safeshield.wrappers``); the wrapper's model is ``env.get_wrapper_attr("safety_model")``.
- ``SafetyModel`` (base of every method's model), ``SafetyCritic`` / ``CriticConfig``
  (reject/resample models), ``RemapPrior`` (remap priors).
- ``SQRL``, ``CSC``, ``QEnsemble``, ``SAFER`` (and their configs): the methods.

Agents live in ``safeshield.agents``; adapters for SB3 / Tianshou / TorchRL in
``safeshield.integrations`` and the experiment harness (demo, CLI) in ``safeshield.experiments``
(neither is imported by ``import safeshield``).

Importing safeshield registers its environments (``safeshield/DrunkSpider-v0``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeshield import environments  # noqa: F401  (registers the env ids)
from safeshield.core import (
    CheckpointError,
    CriticConfig,
    RemapPrior,
    SafetyConfig,
    SafetyCritic,
    SafetyModel,
    get_method,
    method_names,
)
from safeshield.core.model import build_model, chosen_config
from safeshield.shields import CSC, SAFER, SQRL, CSCConfig, QEnsemble, QEnsembleConfig, SAFERConfig, SQRLConfig
from safeshield.wrappers import (
    PreviousRewardCost,
    RemapWrapper,
    ShieldWrapper,
    VectorShieldWrapper,
    held_out_quality,
    wrap_vector,
    wrapper_for,
)

__all__ = [
    "CSC",
    "CSCConfig",
    "CheckpointError",
    "CriticConfig",
    "PreviousRewardCost",
    "QEnsemble",
    "QEnsembleConfig",
    "RemapPrior",
    "RemapWrapper",
    "SAFER",
    "SAFERConfig",
    "SQRL",
    "SQRLConfig",
    "SafetyConfig",
    "SafetyCritic",
    "SafetyModel",
    "ShieldWrapper",
    "VectorShieldWrapper",
    "held_out_quality",
    "load",
    "make",
    "methods",
    "model_for",
    "wrap",
    "wrap_vector",
]
__version__ = "0.1.0"

if TYPE_CHECKING:  # names for the annotations only: `import safeshield` exports what __all__ lists
    import os
    from collections.abc import Callable
    from typing import Any

    import gymnasium as gym

_SUBPACKAGES = ["agents", "core", "environments", "experiments", "integrations", "shields", "wrappers"]


def __dir__() -> list[str]:
    """What ``dir(safeshield)`` and tab completion show: the public names and the subpackages."""
    return sorted([*__all__, *_SUBPACKAGES, "__version__"])


def wrap(
    env: gym.Env,
    method: str | SafetyModel = "sqrl",
    indicator: str | Callable | None = None,
    *,
    train: bool = True,
    seed: int | None = None,
    config: SafetyConfig | None = None,
    on_nonfinite: str = "raise",
    enforce: bool = True,
    **options: Any,
) -> ShieldWrapper | RemapWrapper:
    """Wrap ``env`` in a ``method`` shield that learns from ``indicator``.

    ``options`` are fields of the method's config (``eps_safe=0.05`` for SQRL); ``seed`` seeds
    the model's initial weights, minibatches and the candidate RNG (``reset(seed=...)`` reseeds
    the latter). Envs registered by safeshield declare their indicator, so it may be omitted.
    The wrapper is the one the method's kind needs: ``ShieldWrapper`` for reject/resample
    methods (SQRL, CSC, ...), ``RemapWrapper`` for remap priors (SAFER).
    ``on_nonfinite`` (reject/resample methods): ``"raise"`` (default) refuses a NaN / infinite
    observation or reward with a ``ValueError``; ``"risky"`` treats such a step as risky and stores
    nothing of it (``docs/robustness.md``).
    ``enforce=False`` (reject/resample methods) is shadow mode: the shield scores every proposal,
    learns and keeps its quality report, but every proposal runs unchanged; set
    ``env.set_wrapper_attr("enforce", True)`` (or load the saved shield) to let it act.
    ``method`` may also be a model itself (trained, loaded, pre-trained elsewhere): the wrapper
    uses it as it is, learning on only if ``train`` is True.
    """
    chosen = chosen_config(config, options)
    if isinstance(method, SafetyModel):
        kind = method.kind
    elif isinstance(method, str):
        kind = get_method(method).kind
    else:
        raise TypeError(f"method must be a method name (see safeshield.methods()) or a SafetyModel, got {method!r}")
    return wrapper_for(kind)(
        env,
        method,
        indicator,
        train=train,
        seed=seed,
        config=chosen,
        **_reject_only(kind, on_nonfinite=on_nonfinite, enforce=enforce),
    )


_REJECT_ONLY = {"on_nonfinite": "raise", "enforce": True}
"""Wrapper arguments only reject/resample shields take, with their defaults (a remap shield
always acts: its agent chooses in the prior's latent space)."""


def _reject_only(kind: str, **given: Any) -> dict[str, Any]:
    """``given`` for a reject wrapper; a remap wrapper only takes the defaults."""
    if kind == "reject":
        return given
    for name, value in given.items():
        if value != _REJECT_ONLY[name]:
            raise ValueError(
                f"{name}={value!r} is for reject/resample methods (sqrl, csc, q_ensemble), not for a {kind} method"
            )
    return {}


def make(
    env_id: str,
    shield: str = "sqrl",
    indicator: str | Callable | None = None,
    *,
    train: bool = True,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    enforce: bool = True,
    **options: Any,
) -> ShieldWrapper | RemapWrapper:
    """``wrap(gym.make(env_id, **env_kwargs), shield, indicator, ...)``."""
    import gymnasium as gym

    env = gym.make(env_id, **(env_kwargs or {}))
    return wrap(env, shield, indicator, train=train, seed=seed, enforce=enforce, **options)


def model_for(
    env: gym.Env,
    method: str = "sqrl",
    *,
    seed: int | None = None,
    config: SafetyConfig | None = None,
    **options: Any,
) -> SafetyModel:
    """A fresh ``method`` model for ``env``, built as ``wrap(env, method, ...)`` builds it.

    It takes the env's spaces (a vector env's single ones) and, for a reject/resample model, its
    horizon in steps from ``horizon_seconds`` and the env's ``dt``. Use it for a shield that learns
    before it is wrapped (``model.learn_offline``, ``integrations.sb3.learn_from_replay_buffer``):
    built this way, it learns its risks over the horizon the wrapper will use.
    """
    from safeshield.core.step import control_period

    if not isinstance(method, str):
        raise TypeError(f"method must be a method name (see safeshield.methods()), got {method!r}")
    chosen = chosen_config(config, options)
    observation_space = getattr(env, "single_observation_space", env.observation_space)
    action_space = getattr(env, "single_action_space", env.action_space)
    model = build_model(method, observation_space, action_space, chosen, seed)
    if isinstance(model, SafetyCritic):
        model.resolve_horizon(control_period(env))
    return model


def load(
    path: str | os.PathLike,
    env: gym.Env | None = None,
    *,
    train: bool = False,
    indicator: str | Callable | None = None,
    seed: int | None = None,
    on_nonfinite: str = "raise",
    enforce: bool = True,
    **options: Any,
) -> ShieldWrapper | RemapWrapper | SafetyModel:
    """Load a saved shield. With ``env``, return it wrapped around ``env`` (spaces must match).

    Frozen unless ``train=True`` (fine-tuning in the new env). The indicator saved with the
    shield is reused unless another is given (a callable indicator must be passed again: the
    error names it). ``options`` change decision rules for the new phase (``pretraining=False``,
    ``eps_safe=...``); ``enforce=False`` loads it in shadow mode (``wrap``). A
    ``gymnasium.vector.VectorEnv`` gets a ``VectorShieldWrapper`` (one
    shared model; the checkpoint's spaces are checked against the sub-env's).
    """
    import gymnasium as gym

    if isinstance(env, gym.vector.VectorEnv):
        model = SafetyModel.load(path, (env.single_observation_space, env.single_action_space), seed=seed)
        if model.kind != "reject":
            raise ValueError(
                f"a {model.name} checkpoint remaps actions; it has no vector wrapper yet: load it into "
                "each sub-env (safeshield.load(path, gym.make(...))) instead"
            )
        model = model.reconfigure(**options)
        return VectorShieldWrapper(
            env, model, indicator, train=train, seed=seed, on_nonfinite=on_nonfinite, enforce=enforce
        )
    model = SafetyModel.load(path, env, seed=seed).reconfigure(**options)
    if env is None:
        return model.unfreeze() if train else model.freeze()
    return wrapper_for(model.kind)(
        env,
        model,
        indicator,
        train=train,
        seed=seed,
        **_reject_only(model.kind, on_nonfinite=on_nonfinite, enforce=enforce),
    )


def methods() -> dict[str, dict[str, Any]]:
    """Installed shield methods, each with its default configuration."""
    return {name: get_method(name).config_class().to_json() for name in method_names()}
