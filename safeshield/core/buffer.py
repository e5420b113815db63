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

Why transitions are linked: multi-step risk targets (``safeshield.core.targets``) follow an
episode forward from a sampled transition, and failure-balanced sampling needs to know which
transitions a failure followed within a few steps. ``add(..., previous=row)`` links a
transition to the one before it in the same episode (the front ends pass the row they also
give ``set_next_action``); each row carries the global id of its transition, so a link to a
row that the ring has since overwritten is recognised as broken and never followed.
``steps_to_failure[row]`` counts the transitions from that row to a failure of its episode
(0: this transition fails), written backwards along the links when the failure is stored,
for at most ``failure_lookback`` transitions; ``NO_FAILURE`` otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["TransitionBuffer", "Batch", "MAX_BUFFER_BYTES", "NO_FAILURE"]

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
    rows: np.ndarray | None = None  # buffer rows of the transitions (multi-step targets follow their links)
    weight: np.ndarray | None = None  # importance weights of a non-uniform sample (None: uniform)


NO_FAILURE = np.iinfo(np.int32).max


class TransitionBuffer:
    """A FIFO ring buffer of transitions with ``capacity`` rows, preallocated once."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, failure_lookback: int = 1000):
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
        self.ids = np.full(self.capacity, -1, dtype=np.int64)  # global id of each row's transition
        self.next_id = np.full(self.capacity, -1, dtype=np.int64)  # id of the episode's next transition
        self.prev_id = np.full(self.capacity, -1, dtype=np.int64)
        self.steps_to_failure = np.full(self.capacity, NO_FAILURE, dtype=np.int32)
        self.failure_lookback = int(failure_lookback)
        self.total_added = 0  # every transition ever added, evicted or not
        self.clears = 0  # times ``clear`` ran: ids start again at 0 after each (memos key on this)

    def __len__(self) -> int:
        return min(self.total_added, self.capacity)

    def add(
        self,
        obs,
        action,
        next_obs,
        failure: float,
        terminated: bool,
        reward: float = 0.0,
        cost: float = 0.0,
        previous: int | None = None,
    ) -> int:
        """Store one transition and return its row index (valid until it is evicted).

        ``failure`` is the shield's indicator value, ``cost`` the env's constraint cost (an
        agent's signal, e.g. ``info["cost"]``); a shield model stores no cost, SAC no failure.
        ``previous``: the row of the same episode's previous transition, to link the two.
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
        identity = self.total_added
        self.ids[index] = identity
        self.next_id[index] = self.prev_id[index] = -1
        self.steps_to_failure[index] = NO_FAILURE
        self.total_added += 1
        if previous is not None and self.ids[previous] == identity - self._distance(previous, index):
            self.next_id[previous] = identity
            self.prev_id[index] = self.ids[previous]
        if failure >= 0.5:
            self._mark_failure(index)
        return index

    def _distance(self, earlier: int, later: int) -> int:
        """Ring distance between two rows (the ids of live rows differ by exactly this)."""
        return (later - earlier) % self.capacity or self.capacity

    def row_of(self, identity: np.ndarray) -> np.ndarray:
        """Rows holding the transitions with global ids ``identity``, -1 where evicted or unknown."""
        identity = np.asarray(identity, dtype=np.int64)
        rows = np.where(identity >= 0, identity % self.capacity, 0)
        return np.where((identity >= 0) & (self.ids[rows] == identity), rows, -1)

    def _mark_failure(self, index: int) -> None:
        row, distance = index, 0
        while row >= 0 and distance < self.failure_lookback:
            if self.steps_to_failure[row] <= distance:
                break  # an earlier failure of this chain already marked the rest
            self.steps_to_failure[row] = distance
            row = int(self.row_of(self.prev_id[row]))
            distance += 1

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
        return [
            Batch(**{name: None if column is None else column[i] for name, column in columns.items()})
            for i in range(int(steps))
        ]

    def clear(self) -> None:
        """Forget every transition (SQRL empties D_offline when fine-tuning starts)."""
        self.total_added = 0
        self.clears += 1
        self.ids.fill(-1)
        self.next_id.fill(-1)
        self.prev_id.fill(-1)
        self.steps_to_failure.fill(NO_FAILURE)

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
            rows=rows,
        )
