"""What a ``safeshield train`` run writes while it learns: episodes and shield metrics, three ways.

- ``RunLog``: one seed's log folder: ``episodes.jsonl``, ``episodes.csv`` and TensorBoard
  events (``tb/``) with ``episode/*`` and ``shield/*`` scalars (``safeshield.core.metrics``).
- ``EpisodeRecorder``: a ``gymnasium.Wrapper`` put outside the shield (or around the bare env
  for the unshielded baseline); it computes the failure indicator itself, so shielded and
  unshielded runs count failures the same way, and hands each finished episode to ``RunLog``.
- ``AgentSignals``: puts the indicator's value in ``info["failure"]`` and ``info["cost"]`` where
  the env reports neither, which is what the reference agents (and the Lagrangian ones) read.
- ``read_episodes``: the records of a run folder back, as dicts.

Episode record fields: ``phase`` ("pretrain" / "train"), ``env``, ``episode``, ``step`` (env
steps since the run began, over all phases), ``return``, ``length``, ``failure`` (any failing
step), ``failures`` (failing steps), ``cost``, and with a shield ``interventions``,
``fallbacks``, ``risk_mean`` (mean proposal risk) and ``threshold`` (at the episode's end).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from safeshield.core.indicators import make_indicator
from safeshield.core.metrics import ShieldStats

__all__ = ["AgentSignals", "EpisodeRecorder", "RunLog", "read_episodes", "EPISODE_FIELDS"]

EPISODE_FIELDS = (
    "phase",
    "env",
    "episode",
    "step",
    "return",
    "length",
    "failure",
    "failures",
    "cost",
    "interventions",
    "fallbacks",
    "risk_mean",
    "threshold",
)


class RunLog:
    """Append-only log of one seed's run: JSONL + CSV per episode, TensorBoard scalars.

    TensorBoard is optional: without the ``tensorboard`` package the JSONL and CSV are still
    written and ``tensorboard`` is False. ``close()`` flushes everything.
    """

    def __init__(self, folder: str | os.PathLike, *, tensorboard: bool = True, shield_scalars: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.folder / "episodes.jsonl", "a", encoding="utf-8")
        new_csv = not (self.folder / "episodes.csv").exists()
        self._csv_file = open(self.folder / "episodes.csv", "a", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=EPISODE_FIELDS, extrasaction="ignore")
        if new_csv:
            self._csv.writeheader()
        self.shield_scalars = shield_scalars
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is the sb3 extra's; the text logs do not need it
                pass
            else:
                self._writer = SummaryWriter(str(self.folder / "tb"))
        self.tensorboard = self._writer is not None
        self.cumulative_failures = 0

    def episode(self, record: dict[str, Any], stats: ShieldStats | None = None) -> None:
        """Write one finished episode (and, with ``stats``, the shield's scalars at its last step)."""
        self.cumulative_failures += bool(record["failure"])
        self._jsonl.write(json.dumps(record) + "\n")
        self._csv.writerow({key: _csv_value(record.get(key)) for key in EPISODE_FIELDS})
        if self._writer is not None:
            step = int(record["step"])
            self._writer.add_scalar("episode/return", record["return"], step)
            self._writer.add_scalar("episode/length", record["length"], step)
            self._writer.add_scalar("episode/failure", float(record["failure"]), step)
            self._writer.add_scalar("episode/cumulative_failures", self.cumulative_failures, step)
            if stats is not None and stats.steps and self.shield_scalars:
                for key, value in stats.scalars().items():
                    if math.isfinite(value):
                        self._writer.add_scalar(key, value, step)

    def flush(self) -> None:
        self._jsonl.flush()
        self._csv_file.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        self.flush()
        self._jsonl.close()
        self._csv_file.close()
        if self._writer is not None:
            self._writer.close()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    return value


class EpisodeRecorder(gym.Wrapper):
    """Count each episode's return, failures and the shield's decisions; report finished episodes.

    ``indicator`` is the run's failure indicator (the shield's own): the recorder evaluates it on
    every step it sees, so an unshielded baseline counts failures exactly as a shielded run does.
    ``on_episode(record, stats)`` receives each finished episode (see the module docstring);
    ``stats`` is the shield's ``ShieldStats`` (None without a shield). ``step_offset`` makes
    ``record["step"]`` continue across phases.
    """

    def __init__(
        self,
        env: gym.Env,
        indicator: str | Callable,
        phase: str,
        on_episode: Callable,
        *,
        env_id: str = "",
        step_offset: int = 0,
        stats: ShieldStats | None = None,
    ):
        super().__init__(env)
        self.indicator = make_indicator(indicator)
        self.phase, self.env_id, self.on_episode = phase, env_id, on_episode
        self.steps = int(step_offset)
        self.episodes = 0
        self.stats = stats
        self._reset_episode()

    def _reset_episode(self) -> None:
        self._return = self._cost = 0.0
        self._length = self._failures = self._interventions = self._fallbacks = 0
        self._risk_sum = 0.0
        self._threshold = None

    def reset(self, **kwargs):
        self._reset_episode()
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self._length += 1
        self._return += float(reward)
        self._cost += float(info.get("cost", 0.0)) if np.isscalar(info.get("cost", 0.0)) else 0.0
        self._failures += self.indicator(obs, reward, terminated, truncated, info) > 0.5
        report = info.get("shield")
        if isinstance(report, dict):
            self._interventions += bool(report.get("intervened", False))
            self._fallbacks += bool(report.get("fell_back", False))
            self._risk_sum += float(report.get("proposal_risk", report.get("risk", 0.0)))
            self._threshold = float(report.get("threshold", float("nan")))
            if self.stats is not None:
                self.stats.update((report,))
        if terminated or truncated:
            self.episodes += 1
            record = {
                "phase": self.phase,
                "env": self.env_id,
                "episode": self.episodes,
                "step": self.steps,
                "return": self._return,
                "length": self._length,
                "failure": self._failures > 0,
                "failures": self._failures,
                "cost": self._cost,
            }
            if self._threshold is not None:
                record.update(
                    interventions=self._interventions,
                    fallbacks=self._fallbacks,
                    risk_mean=self._risk_sum / self._length,
                    threshold=self._threshold,
                )
            self.on_episode(record, self.stats)
            self._reset_episode()
        return obs, reward, terminated, truncated, info


class AgentSignals(gym.Wrapper):
    """``info["failure"]`` and ``info["cost"]`` from the indicator where the env reports neither.

    The reference agents read ``info["failure"]`` for their episode records and the Lagrangian
    ones ``info["cost"]`` for their constraint; a gymnasium env that only terminates reports
    neither, and the agent would never see a failure.
    """

    def __init__(self, env: gym.Env, indicator: str | Callable):
        super().__init__(env)
        self.indicator = make_indicator(indicator)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "failure" not in info or "cost" not in info:
            failure = self.indicator(obs, reward, terminated, truncated, info)
            info = dict(info)
            info.setdefault("failure", failure > 0.5)
            info.setdefault("cost", failure)
        return obs, reward, terminated, truncated, info


def read_episodes(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The episode records of one seed's folder (``episodes.jsonl``), in order."""
    path = Path(folder) / "episodes.jsonl"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
