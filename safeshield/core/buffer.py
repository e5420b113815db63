"""Replay storage for shield models.

- ``TransitionBuffer``: a preallocated numpy ring buffer of ``(obs, action, reward, cost,
  next_obs, next_action, failure, terminated)`` shared by shield models (which learn from
  ``failure``, the indicator) and agents (which learn from ``reward`` and ``cost``); it loses no
  transition until ``capacity`` forces the oldest out, and it can fill in the next action of a
  transition one step later.

Why ``next_action`` is stored: SQRL's critic is evaluated under the policy that acts, and a
wrapper that does not own the policy can only learn that by SARSA, from the action that was
actually executed at ``s'``. The shield writes it with ``set_next_action`` when it executes
the following step. Transitions whose next action never arrives (the last step of a truncated
episode) keep their own action as a stand-in; models with a policy sampler can ignore the column.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["TransitionBuffer", "Batch", "MAX_BUFFER_BYTES"]

MAX_BUFFER_BYTES = 16 << 30  # a sanity bound: a larger buffer is a typo or a hostile config


@dataclass(frozen=True)
class Batch:
    """A sampled minibatch, one row per transition (numpy float32)."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    cost: np.ndarray
    next_obs: np.ndarray
    next_action: np.ndarray
    failure: np.ndarray
    terminated: np.ndarray


class TransitionBuffer:
    """A FIFO ring buffer of transitions with ``capacity`` rows, preallocated once."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity <= 0:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        row_bytes = 4 * (2 * int(obs_dim) + 2 * int(act_dim) + 5)  # obs, next_obs, action, next_action + 5 scalars
        if int(capacity) * row_bytes > MAX_BUFFER_BYTES:
            raise ValueError(
                f"buffer_capacity must keep the buffer under {MAX_BUFFER_BYTES >> 30} GiB, got {int(capacity)} rows of "
                f"{row_bytes} bytes ({int(capacity) * row_bytes / 2**30:.1f} GiB)"
            )
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros((self.capacity, act_dim), dtype=np.float32)
        self.reward = np.zeros(self.capacity, dtype=np.float32)
        self.cost = np.zeros(self.capacity, dtype=np.float32)
        self.next_obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.next_action = np.zeros((self.capacity, act_dim), dtype=np.float32)
        self.failure = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.total_added = 0  # every transition ever added, evicted or not

    def __len__(self) -> int:
        return min(self.total_added, self.capacity)

    def add(
        self, obs, action, next_obs, failure: float, terminated: bool, reward: float = 0.0, cost: float = 0.0
    ) -> int:
        """Store one transition and return its row index (valid until it is evicted).

        ``failure`` is the shield's indicator value, ``cost`` the env's constraint cost (an
        agent's signal, e.g. ``info["cost"]``); a shield model stores no cost, SAC no failure.
        """
        index = self.total_added % self.capacity
        self.obs[index] = obs
        self.action[index] = action
        self.reward[index] = reward
        self.cost[index] = cost
        self.next_obs[index] = next_obs
        self.next_action[index] = action
        self.failure[index] = failure
        self.terminated[index] = terminated
        self.total_added += 1
        return index

    def set_next_action(self, index: int, next_action) -> None:
        """Record the action executed at the next state of the transition at row ``index``."""
        self.next_action[index] = next_action

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniform minibatch with replacement; ``rng`` makes it reproducible."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty buffer")
        rows = rng.integers(0, len(self), size=int(batch_size))
        return self._rows(rows)

    def sample_many(self, steps: int, batch_size: int, rng: np.random.Generator) -> list[Batch]:
        """``steps`` uniform minibatches with replacement, drawn at once (one index draw, one gather
        per column); each is a view into one ``(steps, batch_size, ...)`` block."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty buffer")
        if steps == 1:
            return [self.sample(batch_size, rng)]
        block = self._rows(rng.integers(0, len(self), size=(int(steps), int(batch_size))))
        columns = {field.name: getattr(block, field.name) for field in dataclasses.fields(Batch)}
        return [Batch(**{name: column[i] for name, column in columns.items()}) for i in range(int(steps))]

    def clear(self) -> None:
        """Forget every transition (SQRL empties D_offline when fine-tuning starts)."""
        self.total_added = 0

    def all(self) -> Batch:
        """Every stored transition, oldest first."""
        if self.total_added <= self.capacity:
            rows = np.arange(self.total_added)
        else:
            start = self.total_added % self.capacity
            rows = (np.arange(self.capacity) + start) % self.capacity
        return self._rows(rows)

    def _rows(self, rows: np.ndarray) -> Batch:
        return Batch(
            obs=self.obs[rows],
            action=self.action[rows],
            reward=self.reward[rows],
            cost=self.cost[rows],
            next_obs=self.next_obs[rows],
            next_action=self.next_action[rows],
            failure=self.failure[rows],
            terminated=self.terminated[rows],
        )
