"""Which Gymnasium spaces a shield can represent, and how actions cross between env and model.

- ``action_codec(space)``: a ``BoxActions`` or ``IndexActions`` for the action space, or a
  ``TypeError`` / ``ValueError`` at wrap time naming the space, why it cannot be shielded and
  what to use instead.
- ``BoxActions``: a bounded float Box. The model works on flat float32 vectors; the executed
  action goes back in the space's own dtype, clipped to the space's own bounds, so it always
  satisfies ``space.contains`` (a float64 bound of 0.001 is not rounded to float32's
  0.0010000000474974513).
- ``IndexActions``: ``Discrete``, ``MultiDiscrete`` and ``MultiBinary``, as one index over the
  joint actions (``MAX_JOINT_ACTIONS`` at most). The model sees a one-hot vector (what the
  buffer stores) and scores every index in one forward pass; the env gets its own action form.
- ``unflatten_batch(space)``: the inverse of the flattening for a batch, for a Box or a Dict /
  Tuple of Box and Discrete parts: what an agent's policy takes when candidates are drawn from it.
- ``check_observation_space(space)``: any space ``gymnasium.spaces.flatten`` handles (Box,
  Discrete, MultiDiscrete, MultiBinary, and Dict / Tuple nests of them); others are refused.

Why float32: the models compute in float32. Box bounds that overflow float32 (±1e300 in a
float64 space) would make every candidate inf or NaN mid-episode, so they are refused at wrap
time; observations are flattened to float32 and a value that overflows is refused per step
(``ShieldStepper``), with the argument's name.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from safeshield.core.validation import check_float_array

__all__ = [
    "BoxActions",
    "IndexActions",
    "action_codec",
    "check_observation_space",
    "observation_parts",
    "unflatten_batch",
    "MAX_JOINT_ACTIONS",
]

MAX_JOINT_ACTIONS = 4096  # one output per joint action: beyond this, a Box is the better model
_F32_MAX = float(np.finfo(np.float32).max)
_SUPPORTED = "a bounded float Box, Discrete, MultiDiscrete or MultiBinary"


class BoxActions:
    """A bounded float Box: flat float32 rows for the model, the space's dtype for the env."""

    discrete = False

    def __init__(self, space: gym.spaces.Box):
        self.space = space
        self.shape, self.dtype = space.shape, space.dtype
        self.low = np.asarray(space.low, dtype=np.float32).reshape(-1)
        self.high = np.asarray(space.high, dtype=np.float32).reshape(-1)
        self.act_dim = int(self.low.size)
        # float32 bounds may round outward; executed actions are clipped again in the space's dtype
        self.exact = self.dtype == np.float32
        self.space_low = np.asarray(space.low).reshape(-1)
        self.space_high = np.asarray(space.high).reshape(-1)

    def validate(self, action: Any, shape: tuple[int, ...], name: str = "action") -> np.ndarray:
        """``action`` as ``(rows, act_dim)`` float32 clipped into the Box; ``shape`` is what it must have."""
        flat = check_float_array(name, action, shape).reshape(-1, self.act_dim)
        return np.minimum(np.maximum(flat, self.low), self.high)

    def to_env(self, rows: np.ndarray, lead: tuple[int, ...] = ()) -> np.ndarray:
        """Executed rows as the env's action(s), shape ``(*lead, *space.shape)`` (``lead``: ``()`` for one
        env, ``(n_envs,)`` for a vector): the space's dtype, inside its own bounds."""
        shape = (*lead, *self.shape)
        if self.exact:
            return rows.reshape(shape)
        cast = rows.reshape(-1, self.act_dim).astype(self.dtype)
        return np.minimum(np.maximum(cast, self.space_low), self.space_high).reshape(shape)

    def report(self, rows: np.ndarray, lead: tuple[int, ...] = ()) -> np.ndarray:
        return np.array(self.to_env(rows, lead), dtype=self.dtype)


class IndexActions:
    """Discrete / MultiDiscrete / MultiBinary as one index over the joint actions."""

    discrete = True

    def __init__(self, space: gym.Space):
        self.space = space
        if isinstance(space, gym.spaces.Discrete):
            self.nvec = np.array([int(space.n)])
            self.start = np.array([int(space.start)])
            self.shape, self.dtype = (), space.dtype
        elif isinstance(space, gym.spaces.MultiDiscrete):
            self.nvec = np.asarray(space.nvec, dtype=np.int64).reshape(-1)
            self.start = np.asarray(space.start, dtype=np.int64).reshape(-1)
            self.shape, self.dtype = space.shape, space.dtype
        else:  # MultiBinary
            self.shape, self.dtype = space.shape, space.dtype
            self.nvec = np.full(int(np.prod(space.shape)), 2, dtype=np.int64)
            self.start = np.zeros_like(self.nvec)
        self.n = int(math.prod(int(v) for v in self.nvec))
        self.act_dim = self.n
        self.eye = np.eye(self.n, dtype=np.float32)

    def validate(self, action: Any, shape: tuple[int, ...], name: str = "action") -> np.ndarray:
        """``action`` (``shape``: ``()`` for one env, ``(n_envs,)`` for a vector) as ``(rows,)`` int64 indices."""
        full = (*shape, *self.shape)
        try:
            array = np.asarray(action)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be an integer array of shape {full}, got {action!r:.200}") from error
        if array.dtype.kind not in "iub" and not (
            array.dtype.kind == "f" and np.isfinite(array).all() and np.array_equal(array, np.round(array))
        ):
            raise ValueError(f"{name} must hold integers of {self.space}, got {action!r:.200}")
        if array.shape != full:
            raise ValueError(f"{name} must have shape {full} for {self.space}, got shape {array.shape}")
        parts = array.astype(np.int64).reshape(-1, self.nvec.size) - self.start
        if ((parts < 0) | (parts >= self.nvec)).any():
            raise ValueError(f"{name} must lie in {self.space}, got {action!r:.200}")
        if self.nvec.size == 1:
            return parts[:, 0]
        return np.ravel_multi_index(tuple(parts.T), tuple(self.nvec))

    def one_hot(self, index: np.ndarray) -> np.ndarray:
        """``(rows, n)`` float32 one-hot rows of ``index`` (the model's and the buffer's action form)."""
        return self.eye[np.asarray(index, dtype=np.int64)]

    def to_env(self, index: np.ndarray, shape: tuple[int, ...] = ()) -> np.ndarray:
        """Indices as the env's action(s), ``(*shape, *space.shape)`` (``shape``: ``()`` for one env,
        ``(n_envs,)`` for a vector), in the space's dtype."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if self.nvec.size == 1:
            parts = index[:, None]
        else:
            parts = np.stack(np.unravel_index(index, tuple(self.nvec)), axis=1)
        actions = (parts + self.start).astype(self.dtype).reshape((*shape, *self.shape))
        return actions[()] if actions.ndim == 0 else actions  # one Discrete action: a numpy scalar

    def report(self, index: np.ndarray, shape: tuple[int, ...] = ()) -> np.ndarray:
        return self.to_env(index, shape)

    def from_model(self, actions) -> np.ndarray:
        """Indices of the model's one-hot rows."""
        return np.asarray(actions).argmax(axis=-1)


def action_codec(space: gym.Space, name: str = "action_space") -> BoxActions | IndexActions:
    """How the shield represents ``space``, or an error saying why it cannot and what to do instead."""
    if isinstance(space, gym.spaces.Box):
        if space.dtype.kind != "f":
            raise TypeError(
                f"{name} must be {_SUPPORTED}, got a Box of dtype {space.dtype} ({space}); "
                "use a MultiDiscrete space for integer actions instead"
            )
        if not space.is_bounded("both"):
            raise TypeError(
                f"{name} must be a bounded Box, got {space} (candidates are drawn inside the bounds); "
                "use a bounded Box instead, declaring the range the env accepts: e.g. "
                "gymnasium.wrappers.TransformAction(env, lambda a: a, gymnasium.spaces.Box(low, high))"
                ", then wrap that env"
            )
        largest = max(float(np.abs(space.low).max(initial=0.0)), float(np.abs(space.high).max(initial=0.0)))
        if not largest <= _F32_MAX:
            raise ValueError(
                f"{name} bounds must be finite in float32 (the shield computes in float32), got bounds up to "
                f"{largest:g} in {space}; rescale it (gymnasium.wrappers.RescaleAction) instead"
            )
        return BoxActions(space)
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        if isinstance(space, gym.spaces.MultiDiscrete) and np.asarray(space.nvec).ndim == 0:
            raise TypeError(f"{name} must be {_SUPPORTED}, got {space}")
        codec_n = _joint_count(space)
        if codec_n > MAX_JOINT_ACTIONS:
            raise ValueError(
                f"{name} must have at most {MAX_JOINT_ACTIONS} joint actions (the critic has one output per joint "
                f"action), got {codec_n} in {space}; use a Box action space (or fewer sub-actions) instead"
            )
        return IndexActions(space)
    raise TypeError(
        f"{name} must be {_SUPPORTED}, got {space}; expose one such action space "
        "(e.g. flatten a Dict or Tuple of Boxes into one Box) instead"
    )


def _joint_count(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(math.prod(int(v) for v in np.asarray(space.nvec).reshape(-1)))
    return 2 ** int(np.prod(space.shape))


def check_observation_space(space: gym.Space, name: str = "observation_space") -> int:
    """The flat dimension of ``space``, or an error if the shield cannot flatten it."""
    try:
        dim = int(gym.spaces.flatdim(space))
    except (NotImplementedError, ValueError, TypeError) as error:
        raise TypeError(
            f"{name} must be a space gymnasium.spaces.flatten handles (Box, Discrete, MultiDiscrete, MultiBinary, "
            f"or a Dict / Tuple of them), got {space}; wrap the env to expose such a space instead ({error})"
        ) from error
    if dim < 1:
        raise ValueError(f"{name} must have at least one dimension, got {space}")
    return dim


def observation_parts(space: gym.Space) -> list[tuple[Any, gym.Space]]:
    """``(key, part)`` of a Dict (or Tuple) observation space in ``gymnasium.spaces.flatten``'s order;
    a ``TypeError`` unless every part is a Box or a Discrete space (what ``unflatten_batch`` handles)."""
    if not isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        raise TypeError(
            f"the agent's observation space must be a Box, or a Dict or Tuple of Box and Discrete spaces, got {space}"
        )
    parts = list(space.spaces.items() if isinstance(space, gym.spaces.Dict) else enumerate(space.spaces))
    for key, part in parts:
        if not isinstance(part, (gym.spaces.Box, gym.spaces.Discrete)):
            raise TypeError(
                f"the agent's observation space must be a Box, or a Dict or Tuple of Box and Discrete spaces; its "
                f"part {key!r} is {part}"
            )
    return parts


def unflatten_batch(space: gym.Space):
    """``flat[m, d] ->`` the batch in ``space``'s own form: a Box's shape, or a dict (tuple) of numpy
    batches of a Dict (Tuple) of Box and Discrete parts, each Discrete as its index.

    The shield flattens observations (``gymnasium.spaces.flatten``, a Discrete one-hot); an agent's
    policy takes them in the space's form, so a sampler drawing candidates from it unflattens first.
    Other spaces raise a ``TypeError`` naming the part.
    """
    if isinstance(space, gym.spaces.Box):
        shape = space.shape

        def reshape(flat) -> np.ndarray:
            return np.asarray(flat, dtype=np.float32).reshape(-1, *shape)

        return reshape
    columns, start = [], 0
    for key, part in observation_parts(space):
        width = gym.spaces.flatdim(part)
        columns.append((key, part, slice(start, start + width)))
        start += width

    def split(flat) -> dict | tuple:
        flat = np.asarray(flat, dtype=np.float32).reshape(np.shape(flat)[0], -1)
        batches = {
            key: flat[:, cols].argmax(axis=-1) + int(part.start)
            if isinstance(part, gym.spaces.Discrete)
            else flat[:, cols].reshape(-1, *part.shape)
            for key, part, cols in columns
        }
        return batches if isinstance(space, gym.spaces.Dict) else tuple(batches.values())

    return split
