"""The model half of a shield: what every method (SQRL, CSC, ...) shares.

- ``ShieldConfig``: the decision and learning-schedule knobs common to all methods.
- ``ShieldModel``: scores ``(obs, actions)`` batches, stores transitions, learns on a schedule,
  knows its threshold, freezes, saves and loads itself.
- ``register_method`` / ``get_method`` / ``method_names``: the registry behind ``safeshield.wrap``.

A method subclasses ``ShieldModel`` and its config subclasses ``ShieldConfig``; it implements
``risk`` (batched, differentiable outside ``inference_mode``), ``threshold`` and ``learn_step``.
Everything else (buffer, schedule, seeding, checkpoints, space checks) lives here once.
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

from safeshield.core.buffer import Batch, TransitionBuffer
from safeshield.core.checkpoint import (
    CheckpointError,
    box_from_signature,
    check_space_signature,
    load_checkpoint,
    save_checkpoint,
    space_signature,
)
from safeshield.core.decision import SELECTIONS

__all__ = ["ShieldConfig", "ShieldModel", "register_method", "get_method", "method_names"]

_METHODS: dict[str, type[ShieldModel]] = {}


@dataclass(frozen=True)
class ShieldConfig:
    """Knobs shared by every reject/resample shield. Each method overrides the defaults it cites."""

    n_candidates: int = 50  # official SQRL code (SafeActorPolicyRSVar): 50 samples per round
    resample_rounds: int = 5  # official SQRL code: up to 4 more rounds after the first
    widen: float = 1.5  # official SQRL code: sampling scale x1.5 per extra round
    perturbation_scale: float = 0.1  # our choice: candidate std as a fraction of the half-range
    uniform_fraction: float = 0.25  # our choice: share of candidates drawn uniformly over the box
    selection: str = "closest"  # our choice without a policy sampler: least intervention
    widen_policy: bool = False  # our choice: rounds after the first draw from pi only (paper §6); True = official code's widening
    buffer_capacity: int = 50_000  # our choice (paper silent): holds a DrunkSpider pre-training run
    batch_size: int = 256  # our choice (paper silent), common SAC value
    learning_starts: int = 500  # our choice: no update before this many stored transitions
    train_every: int = 1  # our choice: one update per env step, as SAC
    gradient_steps: int = 1  # our choice

    def __post_init__(self) -> None:
        for name in ("n_candidates", "resample_rounds", "buffer_capacity", "batch_size", "train_every", "gradient_steps"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {self.learning_starts!r}")
        if not self.perturbation_scale > 0:
            raise ValueError(f"perturbation_scale must be > 0, got {self.perturbation_scale!r}")
        if not self.widen >= 1:
            raise ValueError(f"widen must be >= 1, got {self.widen!r}")
        if not 0.0 <= self.uniform_fraction <= 1.0:
            raise ValueError(f"uniform_fraction must be in [0, 1], got {self.uniform_fraction!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")

    def to_json(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def check_options(cls, options: dict[str, Any], method: str) -> None:
        """Raise ``TypeError`` naming every key of ``options`` that is not a field of ``cls``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown option(s) {unknown} for shield {method!r}; its options are {sorted(known)}")

    @classmethod
    def from_options(cls, options: dict[str, Any], method: str) -> ShieldConfig:
        """Build from keyword options or a JSON dict (lists become tuples)."""
        cls.check_options(options, method)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShieldConfig:
        try:
            return cls.from_options(data, cls.__name__)
        except TypeError as error:
            raise CheckpointError(f"the saved config does not fit {cls.__name__}: {error}") from error


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def register_method(cls: type[ShieldModel]) -> type[ShieldModel]:
    """Class decorator: make ``cls`` reachable as ``safeshield.wrap(env, cls.name)``."""
    _METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[ShieldModel]:
    if name not in _METHODS:
        raise ValueError(f"unknown shield method={name!r}; installed methods: {sorted(_METHODS)}")
    return _METHODS[name]


def method_names() -> list[str]:
    return sorted(_METHODS)


def flat_dim(space: gym.Space) -> int:
    return int(gym.spaces.flatdim(space))


class ShieldModel(nn.Module, abc.ABC):
    """Base of every shield model. Subclasses set ``name`` and ``config_class``."""

    name: ClassVar[str]
    config_class: ClassVar[type[ShieldConfig]] = ShieldConfig

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: ShieldConfig | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a {self.config_class.__name__}, got {type(config).__name__}")
        if not isinstance(action_space, gym.spaces.Box) or not action_space.is_bounded("both"):
            raise TypeError(f"{type(self).__name__} requires a bounded Box action space, got {action_space}")
        self.config = config
        self.observation_space, self.action_space = observation_space, action_space
        self.obs_dim, self.act_dim = flat_dim(observation_space), flat_dim(action_space)
        self.buffer = TransitionBuffer(config.buffer_capacity, self.obs_dim, self.act_dim)
        self.rng = np.random.default_rng(seed)
        self.frozen = False
        self.updates = 0
        self.policy_sampler = None  # set by an adapter: sample(obs, n, generator) -> actions
        self.indicator: str | None = None  # the front end's indicator when it is a string, saved with the model
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.build()

    # -- what a method implements -------------------------------------------------------------
    @abc.abstractmethod
    def build(self) -> None:
        """Create the networks and optimisers (called under a seeded torch RNG)."""

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

    def extra_state(self) -> dict[str, Any]:
        """JSON-safe non-tensor state saved with the checkpoint (counters, adaptive values)."""
        return {"updates": self.updates, "indicator": self.indicator}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.updates = int(state.get("updates", 0))
        self.indicator = state.get("indicator")

    def proposal_risk(self, obs: np.ndarray, action: np.ndarray) -> float:
        """Risk of one flat float32 ``(obs, action)`` pair: the per-step hot path.

        Same value as ``risk`` (to float32 rounding); methods override it with a leaner path.
        """
        with torch.inference_mode():
            return float(self.risk(torch.from_numpy(obs)[None], torch.from_numpy(action)[None])[0])

    # -- shared machinery ---------------------------------------------------------------------
    def risk_numpy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Convenience: risks of numpy batches, under ``inference_mode``."""
        with torch.inference_mode():
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim))
            act_t = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(-1, self.act_dim))
            return self.risk(obs_t, act_t).numpy()

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, failure: float, terminated: bool) -> int:
        """Store one transition (flat float arrays) and return its buffer row."""
        return self.buffer.add(obs, action, next_obs, failure, terminated)

    def after_step(self) -> dict[str, float] | None:
        """Called once per env step by the front end: learn on the configured schedule."""
        if self.frozen:
            return None
        stored = self.buffer.total_added
        cfg = self.config
        if stored < max(cfg.learning_starts, 1) or stored % cfg.train_every:
            return None
        return self.learn(cfg.gradient_steps)

    def learn(self, steps: int = 1) -> dict[str, float]:
        """Run ``steps`` gradient steps on minibatches from the buffer (also usable offline)."""
        if len(self.buffer) == 0:
            raise ValueError("the shield has no stored transitions to learn from")
        stats: dict[str, float] = {}
        for _ in range(steps):
            stats = self.learn_step(self.buffer.sample(self.config.batch_size, self.rng))
            self.updates += 1
        return stats

    def reconfigure(self, **changes: Any) -> ShieldModel:
        """Change config fields that do not touch the networks (``eps_safe``, ``selection``, ...).

        Used when a pre-trained shield moves to fine-tuning: the weights stay, the rules change.
        """
        fixed = {"hidden", "buffer_capacity"} & set(changes)
        if fixed:
            raise ValueError(f"{sorted(fixed)} cannot change after the model is built; build a new shield")
        self.config.check_options(changes, self.name)
        self.config = dataclasses.replace(self.config, **changes)
        if "lr" in changes:
            for optimizer in (v for v in vars(self).values() if isinstance(v, torch.optim.Optimizer)):
                for group in optimizer.param_groups:
                    group["lr"] = self.config.lr
        return self

    def freeze(self) -> ShieldModel:
        """Stop learning: the model's decisions become a deterministic function of the RNG seed."""
        self.frozen = True
        return self

    def unfreeze(self) -> ShieldModel:
        self.frozen = False
        return self

    def attach_policy(self, sample) -> None:
        """Attach the agent's sampler ``sample(obs[m, d], n, generator) -> actions[m, n, a]``."""
        self.policy_sampler = sample

    def save(self, path: str | os.PathLike) -> None:
        """Write weights (safetensors) + config, space signatures and counters (JSON), atomically."""
        config = {
            "method": self.name,
            "config": self.config.to_json(),
            "observation_space": space_signature(self.observation_space),
            "action_space": space_signature(self.action_space),
            "state": self.extra_state(),
        }
        save_checkpoint(path, dict(self.state_dict()), config, kind=f"shield/{self.name}")

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        seed: int | None = None,
    ) -> ShieldModel:
        """Rebuild a saved model; when spaces are given they must match the saved ones.

        ``seed`` seeds what the weights do not fix: the minibatch sampling of further learning.
        """
        tensors, checkpoint, _ = load_checkpoint(path, kind="shield/")
        document = checkpoint
        missing = [key for key in ("method", "config", "observation_space", "action_space") if key not in document]
        if missing:
            raise CheckpointError(f"{str(path)!r}/config.json lacks {missing} (truncated or not a shield checkpoint)")
        if document["method"] not in _METHODS:
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds a {document['method']!r} shield, which is not installed "
                f"(installed: {method_names()})"
            )
        method = get_method(document["method"])
        if cls is not ShieldModel and method is not cls:
            raise CheckpointError(f"checkpoint {str(path)!r} holds a {method.name!r} shield, not {cls.name!r}")
        if observation_space is not None:
            check_space_signature(document["observation_space"], observation_space, "observation_space")
        if action_space is not None:
            check_space_signature(document["action_space"], action_space, "action_space")
        model = method(
            observation_space if observation_space is not None else box_from_signature(document["observation_space"]),
            action_space if action_space is not None else box_from_signature(document["action_space"]),
            method.config_class.from_json(document["config"]),
            seed=seed,
        )
        try:
            model.load_state_dict(tensors)
        except RuntimeError as error:
            raise CheckpointError(f"weights in {str(path)!r} do not fit a {method.name!r} model: {error}") from error
        model.load_extra_state(document.get("state", {}))
        return model
