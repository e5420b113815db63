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
import math
from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch

from safeshield.core.buffer import Batch, TransitionBuffer
from safeshield.core.decision import SELECTIONS
from safeshield.core.model import SafetyConfig, SafetyModel
from safeshield.core.spaces import action_codec, check_observation_space
from safeshield.core.validation import check_choice, check_count, check_interval, check_positive

__all__ = ["CriticConfig", "SafetyCritic", "flat_dim"]


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
        False  # our choice: rounds after the first draw from pi only (paper §6); True = official code's widening
    )
    buffer_capacity: int = 50_000  # our choice (paper silent): holds a DrunkSpider pre-training run
    batch_size: int = 256  # our choice (paper silent), common SAC value
    learning_starts: int = 500  # our choice: no update before this many stored transitions
    train_every: int = 1  # our choice: one update per env step, as SAC
    gradient_steps: int = 1  # our choice

    def __post_init__(self) -> None:
        super().__post_init__()  # field types: integers, finite numbers, bools, strings
        for name in (
            "n_candidates",
            "resample_rounds",
            "buffer_capacity",
            "batch_size",
            "train_every",
            "gradient_steps",
        ):
            check_count(name, getattr(self, name))
        check_count("learning_starts", self.learning_starts, minimum=0)
        check_positive("perturbation_scale", self.perturbation_scale)
        check_interval("widen", self.widen, 1.0, math.inf, closed="left")
        check_interval("uniform_fraction", self.uniform_fraction, 0.0, 1.0)
        check_choice("selection", self.selection, SELECTIONS)


def flat_dim(space: gym.Space) -> int:
    return int(gym.spaces.flatdim(space))


class SafetyCritic(SafetyModel):
    """Base of every reject/resample model. Subclasses set ``name`` and ``config_class``."""

    kind: ClassVar[str] = "reject"
    config_class: ClassVar[type[CriticConfig]] = CriticConfig
    fixed_fields: ClassVar[frozenset[str]] = frozenset({"hidden", "buffer_capacity"})

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
        self.rng = np.random.default_rng(seed)
        self.policy_sampler = None  # set by an adapter: sample(obs, n, generator) -> actions

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

    # -- shared machinery ---------------------------------------------------------------------
    def risk_numpy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Convenience: risks of numpy batches, under ``inference_mode``."""
        with torch.inference_mode():
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim))
            act_t = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(-1, self.act_dim))
            return self.risk(obs_t, act_t).numpy()

    def observe(
        self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, failure: float, terminated: bool
    ) -> int:
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
        self.check_finite(stats)
        return stats

    def check_finite(self, stats: dict[str, float] | None = None) -> None:
        """Raise ``FloatingPointError`` if a weight (or a reported loss) is NaN or infinite.

        Called after every burst of updates: a diverged critic would otherwise report NaN risks
        (never safe here, so every step would fall back) or be saved and loaded elsewhere.
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
