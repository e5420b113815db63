"""The one base of every shield model, and the one registry of methods.

- ``SafetyConfig``: a frozen dataclass base with JSON round-trip and option checking.
- ``SafetyModel``: what every method's model shares, whatever it does with actions: a name, a
  ``kind`` (``"reject"``: a risk critic that accepts or resamples proposals, see
  ``core.critic.SafetyCritic``; ``"remap"``: a prior that maps a latent box onto actions, see
  ``core.prior.RemapPrior``), a config, seeding, freeze/unfreeze, ``reconfigure``, ``save`` and
  ``load`` (``core.checkpoint``'s one convention).
- ``register_method`` / ``get_method`` / ``method_names``: the registry behind ``safeshield.wrap``,
  ``make``, ``load`` and ``methods``, keyed by method name.
- ``build_model`` / ``resolve_model``: a method's model from its name and config (or options).
"""

from __future__ import annotations

import abc
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from safeshield.core.checkpoint import CheckpointError, restore, save_checkpoint, space_signature
from safeshield.core.spaces import action_codec, check_observation_space
from safeshield.core.validation import check_field_types, did_you_mean

__all__ = [
    "SafetyConfig",
    "torch_seed",
    "SafetyModel",
    "build_model",
    "get_method",
    "method_names",
    "register_method",
    "resolve_model",
]

_METHODS: dict[str, type[SafetyModel]] = {}


@dataclass(frozen=True)
class SafetyConfig:
    """Base of every method's config: JSON round-trip, a check of keyword options, and of field types
    (``check_field_types``: subclasses call ``super().__post_init__()`` first), presets.

    ``PRESETS`` maps a preset name to the field values it sets; a config with a ``preset``
    field built by ``from_options`` starts from them (``preset="paper"``: the method exactly as
    its paper publishes it), and options given beside the preset override them.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}

    def __post_init__(self) -> None:
        check_field_types(self)

    @classmethod
    def preset_options(cls, name: str) -> dict[str, Any]:
        """The field values preset ``name`` sets (``{}`` for ``"default"``)."""
        if name not in cls.PRESETS:
            raise ValueError(f"preset must be one of {sorted(cls.PRESETS)}, got {name!r}")
        return dict(cls.PRESETS[name])

    @classmethod
    def paper(cls, **options: Any) -> SafetyConfig:
        """The method exactly as its paper publishes it (``preset="paper"``), ``options`` overriding."""
        return cls.from_options({"preset": "paper", **options}, cls.__name__)

    def to_json(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def check_options(cls, options: dict[str, Any], method: str) -> None:
        """Raise ``TypeError`` naming every key of ``options`` that is not a field of ``cls``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            names = sorted(known)
            hints = [f"{option!r}{hint}" for option in unknown if (hint := did_you_mean(option, names))]
            hinted = f": {', '.join(hints)}" if hints else ""
            raise TypeError(f"unknown option(s) {unknown} for shield {method!r}{hinted}; its options are {names}")

    @classmethod
    def from_options(cls, options: dict[str, Any], method: str) -> SafetyConfig:
        """Build from keyword options or a JSON dict (lists become tuples); ``preset`` first, see above."""
        cls.check_options(options, method)
        if "preset" in options:
            options = {**cls.preset_options(options["preset"]), **options}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SafetyConfig:
        try:
            return cls.from_options(data, cls.__name__)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"the saved config does not fit {cls.__name__}: {error}") from error


def torch_seed(seed: int | None) -> int:
    """A 63-bit torch seed derived from ``seed`` (fresh OS entropy when None)."""
    return int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def register_method(cls: type[SafetyModel]) -> type[SafetyModel]:
    """Class decorator: make ``cls`` reachable as ``safeshield.wrap(env, cls.name)``."""
    _METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[SafetyModel]:
    if name not in _METHODS:
        hint = did_you_mean(name, sorted(_METHODS))
        raise ValueError(f"unknown shield method={name!r}{hint}; installed methods: {sorted(_METHODS)}")
    return _METHODS[name]


def method_names() -> list[str]:
    return sorted(_METHODS)


def build_model(
    method: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    config: SafetyConfig | dict[str, Any] | None = None,
    seed: int | None = None,
) -> SafetyModel:
    """Build the ``method`` model; ``config`` is its config object or a dict of its fields."""
    cls = get_method(method)
    if isinstance(config, dict):
        config = cls.config_class.from_options(config, method)
    return cls(observation_space, action_space, config, seed=seed)


def chosen_config(config: SafetyConfig | None, options: dict[str, Any]) -> SafetyConfig | dict[str, Any] | None:
    """What a method is built with: ``config``, else the keyword ``options`` (None when neither is
    given: the method's defaults). Both at once is a TypeError (``wrap``, ``wrap_vector``, ``model_for``)."""
    if config is not None and options:
        raise TypeError("pass either config=... or keyword options, not both")
    return config if config is not None else (options or None)


def resolve_model(
    model: SafetyModel | str,
    observation_space: gym.Space,
    action_space: gym.Space,
    config: SafetyConfig | dict[str, Any] | None,
    seed: int | None,
    kind: str,
) -> SafetyModel:
    """``model`` itself, or the ``model`` method built with ``config`` (which only a name may take).

    ``kind`` is what the caller (a wrapper) drives: ``"reject"`` or ``"remap"``.
    """
    if isinstance(model, str):
        model = build_model(model, observation_space, action_space, config, seed=seed)
    elif config is not None:
        raise TypeError("config is only used when model is a method name; the model already has one")
    if not isinstance(model, SafetyModel):
        raise TypeError(f"model must be a {kind} model (a SafetyModel) or a method name, got {type(model).__name__}")
    if model.kind != kind:
        raise TypeError(
            f"model must be a {kind!r} model for this wrapper, got {model.name!r} (a {model.kind!r} model; "
            f"safeshield.wrap picks the right wrapper)"
        )
    return model


class SafetyModel(nn.Module, abc.ABC):
    """Base of every shield model. Subclasses set ``name``, ``kind`` and ``config_class``.

    The constructor checks the config and the spaces, seeds ``rng``, calls ``setup`` (state
    the networks need) and then ``build`` under a torch RNG seeded with ``seed``.
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # "reject" (core.critic.SafetyCritic) or "remap" (core.prior.RemapPrior)
    config_class: ClassVar[type[SafetyConfig]] = SafetyConfig
    fixed_fields: ClassVar[frozenset[str]] = frozenset()  # config fields ``reconfigure`` refuses

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: SafetyConfig | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a {self.config_class.__name__}, got {type(config).__name__}")
        self.check_spaces(observation_space, action_space)
        self.config = config
        self.observation_space, self.action_space = observation_space, action_space
        self.frozen = False
        self.updates = 0
        self.indicator: str | None = None  # the wrapper's indicator when it is a name, saved with the model
        # torch draws of learning (a policy sampler's a', CSC's uniform actions) come from this
        # generator, never torch's global one, so a run does not depend on what ran before it
        self.generator = torch.Generator().manual_seed(torch_seed(seed))
        self.setup(seed)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.build()

    # -- what a subclass implements -----------------------------------------------------------
    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Refuse spaces the model cannot work with, saying why and what to use instead
        (``TypeError`` / ``ValueError``); a bounded float Box action space here."""
        check_observation_space(observation_space)
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(
                f"{type(self).__name__} requires a bounded Box action space, got {action_space}; "
                "use a reject method (sqrl, csc, q_ensemble) for Discrete, MultiDiscrete or MultiBinary actions instead"
            )
        action_codec(action_space)  # bounded, float, finite in float32

    def setup(self, seed: int | None) -> None:
        """Non-network state ``build`` needs (RNGs, buffers); seeds ``rng`` by default."""
        self.rng = np.random.default_rng(seed)

    @abc.abstractmethod
    def build(self) -> None:
        """Create the networks and optimisers (called under a seeded torch RNG)."""

    def extra_state(self) -> dict[str, Any]:
        """JSON-safe non-tensor state saved with the checkpoint (counters, adaptive values)."""
        return {"updates": self.updates, "indicator": self.indicator}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        updates, indicator = state.get("updates", 0), state.get("indicator")
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
            raise ValueError(f"state.updates must be a non-negative integer, got {updates!r:.100}")
        if indicator is not None and not isinstance(indicator, str):
            raise ValueError(f"state.indicator must be a string or null, got {indicator!r:.100}")
        self.updates, self.indicator = updates, indicator

    # -- shared machinery ---------------------------------------------------------------------
    def freeze(self) -> SafetyModel:
        """Stop learning: the model's decisions become a deterministic function of the RNG seed."""
        self.frozen = True
        return self

    def unfreeze(self) -> SafetyModel:
        self.frozen = False
        return self

    def reconfigure(self, **changes: Any) -> SafetyModel:
        """Change config fields that do not touch the networks (``eps_safe``, ``selection``, ...).

        Used when a pre-trained shield moves to fine-tuning: the weights stay, the rules change.
        """
        fixed = self.fixed_fields & set(changes)
        if fixed:
            raise ValueError(f"{sorted(fixed)} cannot change after the model is built; build a new shield")
        self.config.check_options(changes, self.name)
        self.config = dataclasses.replace(self.config, **changes)
        if "lr" in changes:
            for optimizer in (v for v in vars(self).values() if isinstance(v, torch.optim.Optimizer)):
                for group in optimizer.param_groups:
                    group["lr"] = self.config.lr
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write weights (safetensors) + config, space signatures and state (JSON), atomically."""
        config = {
            "method": self.name,
            "config": self.config.to_json(),
            "observation_space": space_signature(self.observation_space),
            "action_space": space_signature(self.action_space),
            "state": self.extra_state(),
        }
        save_checkpoint(path, dict(self.state_dict()), config, kind=f"shield/{self.name}")

    @classmethod
    def load(cls, path: str | os.PathLike, env: Any = None, *, seed: int | None = None) -> SafetyModel:
        """Rebuild a saved model of any installed method (``SafetyModel.load``) or of ``cls``.

        ``env`` (an env or ``(observation_space, action_space)``) must have the saved spaces;
        without it they are rebuilt from the checkpoint. ``seed`` seeds what the weights do not
        fix (minibatch sampling of further learning, candidate draws).
        """
        concrete = "name" in vars(cls)

        def build(document: dict[str, Any], observation_space: gym.Space, action_space: gym.Space) -> SafetyModel:
            if document["method"] not in _METHODS:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} holds a {document['method']!r} shield, which is not installed "
                    f"(installed: {method_names()})"
                )
            method = get_method(document["method"])
            if concrete and method is not cls:
                raise CheckpointError(f"checkpoint {str(path)!r} holds a {method.name!r} shield, not {cls.name!r}")
            if not issubclass(method, cls):
                raise CheckpointError(f"checkpoint {str(path)!r} holds a {method.name!r} shield, not a {cls.__name__}")
            return method(observation_space, action_space, method.config_class.from_json(document["config"]), seed=seed)

        def load_state(model: SafetyModel, tensors: dict[str, torch.Tensor], document: dict[str, Any]) -> None:
            model.load_state_dict(tensors)
            model.load_extra_state(document.get("state", {}))

        return restore(
            path, env, kind="shield/", what="shield", required=("method", "config"), build=build, load_state=load_state
        )
