"""Offline labelled datasets for priors such as SAFER: one documented format, npz or HDF5.

- ``OfflineDataset``: per-step arrays plus metadata; ``windows`` builds the state windows Lambda,
  ``safe_rows`` / ``unsafe_rows`` give SAFER's D_safe and D_unsafe; ``save`` / ``load``;
  ``with_lookahead`` relabels a step unsafe when a violation follows within a few steps;
  ``digest`` is a content hash for caching what is fit on the data.
- ``SCHEMA``: the arrays a file must hold (users can write their own data in this format).
- ``window_indices``: row indices of each step's window (-1 where it is zero-padded).
- ``collect_episodes``: roll a (scripted) policy out in an env and label every step.

Schema (format ``safeshield-offline``, version 1). N rows, one per environment step, the rows
of an episode consecutive and in time order:

================  =====================  ==================================================
array             shape, dtype           meaning
================  =====================  ==================================================
``observations``  (N, *obs_shape)        s_t, the observation the action was taken in
                  float32 or uint8
``actions``       (N, d) float32         a_t, the executed action in env units
``violations``    (N,) uint8             omega(s_t, a_t) in {0, 1}: the step violated the
                                         constraint (Operation: the arm touched the container)
``successes``     (N,) uint8             1 if the step's episode succeeded (SAFER §5.1 flag)
``episode_ids``   (N,) int64             episode number; windows never cross episodes
================  =====================  ==================================================

Metadata (npz: a JSON string in the array ``metadata``; HDF5: root attributes): ``format``,
``version``, ``action_low``, ``action_high`` and anything else (``env_id``, collection policy).

Window convention (SAFER §3.2; used everywhere: data, Alg. 2, Alg. 3 and inference):
Lambda_t = [s_{t-w+1}, ..., s_t], oldest first, *including* the current state, zero-padded at
the front when the episode is younger than w steps (SAFER §3.2, footnote 2).

Minari datasets convert both ways with ``safeshield.integrations.minari`` (``from_minari``,
``to_minari``); this flat, self-describing file is what training reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safeshield.core.atomic import atomic_path

__all__ = ["OfflineDataset", "SCHEMA", "FORMAT", "window_indices", "collect_episodes"]

FORMAT = "safeshield-offline"
VERSION = 1
SCHEMA: dict[str, str] = {
    "observations": "(N, *obs_shape) float32 or uint8",
    "actions": "(N, d) float32, env units",
    "violations": "(N,) uint8 in {0, 1}",
    "successes": "(N,) uint8 in {0, 1}",
    "episode_ids": "(N,) int64, rows of an episode consecutive",
}


def window_indices(episode_ids: np.ndarray, window: int) -> np.ndarray:
    """``(N, window)`` row indices of each step's window, oldest first; -1 marks zero padding."""
    episode_ids = np.asarray(episode_ids)
    return _window_index_rows(episode_ids, np.arange(episode_ids.shape[0]), window)


@dataclass
class OfflineDataset:
    """Labelled steps in the ``safeshield-offline`` format (see the module docstring)."""

    observations: np.ndarray
    actions: np.ndarray
    violations: np.ndarray
    successes: np.ndarray
    episode_ids: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.observations = np.asarray(self.observations)
        if self.observations.dtype != np.uint8:
            self.observations = self.observations.astype(np.float32, copy=False)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.violations = np.asarray(self.violations).astype(np.uint8, copy=False)
        self.successes = np.asarray(self.successes).astype(np.uint8, copy=False)
        self.episode_ids = np.asarray(self.episode_ids).astype(np.int64, copy=False)
        n = self.observations.shape[0]
        if self.actions.ndim != 2:
            raise ValueError(f"actions must have shape (N, d), got {self.actions.shape}")
        for name in ("actions", "violations", "successes", "episode_ids"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, observations has {n}")
        for name in ("violations", "successes"):
            if np.any(getattr(self, name) > 1):
                raise ValueError(f"{name} must hold only 0 and 1")
        if len(np.unique(self.episode_ids)) != _runs(self.episode_ids):
            raise ValueError("episode_ids: the rows of each episode must be consecutive")
        if not np.all(np.isfinite(self.actions)):
            raise ValueError("actions contain NaN or inf")

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    # -- SAFER's splits (§3.2, App. D) -------------------------------------------
    def safe_rows(self, successful_only: bool = True) -> np.ndarray:
        """Rows of D_safe: omega = 0, and (by default, as the paper implies) from successful episodes."""
        keep = self.violations == 0
        if successful_only:
            keep &= self.successes == 1
        return np.flatnonzero(keep)

    def unsafe_rows(self) -> np.ndarray:
        """Rows of D_unsafe: every step with omega = 1."""
        return np.flatnonzero(self.violations == 1)

    def windows(self, rows: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
        """``(frames, valid)``: ``(len(rows), window, *obs_shape)`` float32 windows Lambda, zero-padded
        at the front, and the ``(len(rows), window)`` mask of real (not padded) frames."""
        rows = np.asarray(rows, dtype=np.int64)
        index = _window_index_rows(self.episode_ids, rows, window)
        valid = index >= 0
        frames = self.observations[np.where(valid, index, 0)].astype(np.float32)
        frames[~valid] = 0.0
        return frames, valid

    def with_lookahead(self, horizon: int) -> OfflineDataset:
        """A copy whose step t is unsafe when omega = 1 at any of the steps t .. t + horizon of its episode.

        SAFER's unsafe action is one that leads to a violation (§2: omega of the pair; §3.4: the
        box should hold actions that keep the agent safe). An immediate omega marks only the
        contact step, so the one or two actions that made a contact unavoidable stay in D_safe,
        and a box calibrated on such labels is too large in rollouts (docs/safer.md). ``horizon``
        0 returns the labels unchanged; the horizon is recorded in ``metadata["lookahead"]``.
        """
        if not isinstance(horizon, (int, np.integer)) or isinstance(horizon, bool) or horizon < 0:
            raise ValueError(f"horizon must be an integer >= 0, got {horizon!r}")
        omega, ids = self.violations.astype(bool), self.episode_ids
        labels = omega.copy()
        for k in range(1, int(horizon) + 1):
            if k >= len(omega):
                break
            later = np.zeros_like(labels)
            later[:-k] = omega[k:] & (ids[k:] == ids[:-k])
            labels |= later
        metadata = {**self.metadata, "lookahead": int(horizon) + int(self.metadata.get("lookahead", 0))}
        return OfflineDataset(
            self.observations, self.actions, labels.astype(np.uint8), self.successes, self.episode_ids, metadata
        )

    def digest(self) -> str:
        """sha256 (hex) of the arrays' dtypes, shapes and bytes (not the metadata): the content key a
        cache of what is fit on this data (a prior, its eta) can be stored under."""
        digest = hashlib.sha256()
        for name in SCHEMA:
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def subset(self, rows: np.ndarray) -> OfflineDataset:
        """The given rows (windows are rebuilt from the kept rows, so keep whole episodes)."""
        rows = np.asarray(rows, dtype=np.int64)
        return OfflineDataset(
            self.observations[rows],
            self.actions[rows],
            self.violations[rows],
            self.successes[rows],
            self.episode_ids[rows],
            dict(self.metadata),
        )

    @staticmethod
    def concatenate(parts: list[OfflineDataset]) -> OfflineDataset:
        """Join datasets; episode ids are renumbered so they stay distinct."""
        if not parts:
            raise ValueError("concatenate needs at least one dataset")
        ids, offset = [], 0
        for part in parts:
            _, renumbered = np.unique(part.episode_ids, return_inverse=True)
            ids.append(renumbered + offset)
            offset += int(renumbered.max()) + 1 if len(part) else 0
        return OfflineDataset(
            np.concatenate([p.observations for p in parts]),
            np.concatenate([p.actions for p in parts]),
            np.concatenate([p.violations for p in parts]),
            np.concatenate([p.successes for p in parts]),
            np.concatenate(ids),
            dict(parts[0].metadata),
        )

    # -- files -----------------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SCHEMA}

    def _metadata(self) -> dict[str, Any]:
        return {**self.metadata, "format": FORMAT, "version": VERSION}

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``.npz`` or ``.h5``/``.hdf5`` (chosen by the suffix)."""
        target = Path(path)
        if target.suffix not in (".npz", ".h5", ".hdf5"):
            raise ValueError(f"path must end in .npz, .h5 or .hdf5, got {str(target)!r}")
        with atomic_path(target) as tmp:
            if target.suffix == ".npz":
                with open(tmp, "wb") as handle:
                    np.savez_compressed(handle, metadata=np.array(json.dumps(self._metadata())), **self._arrays())
            else:
                import h5py

                with h5py.File(tmp, "w") as handle:
                    for name, array in self._arrays().items():
                        handle.create_dataset(name, data=array, compression="gzip")
                    for key, value in self._metadata().items():
                        handle.attrs[key] = json.dumps(value)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> OfflineDataset:
        """Read a file written by ``save`` (or by a user following ``SCHEMA``)."""
        source = Path(path)
        if source.suffix == ".npz":
            with np.load(source, allow_pickle=False) as handle:
                arrays = {name: handle[name] for name in SCHEMA if name in handle}
                metadata = json.loads(str(handle["metadata"])) if "metadata" in handle else {}
        elif source.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(source, "r") as handle:
                arrays = {name: handle[name][()] for name in SCHEMA if name in handle}
                metadata = {key: json.loads(value) for key, value in handle.attrs.items()}
        else:
            raise ValueError(f"path must end in .npz, .h5 or .hdf5, got {str(source)!r}")
        missing = sorted(set(SCHEMA) - set(arrays))
        if missing:
            raise ValueError(f"{str(source)!r} lacks the arrays {missing}; the {FORMAT} schema is {SCHEMA}")
        if metadata.get("format", FORMAT) != FORMAT:
            raise ValueError(f"{str(source)!r} has format={metadata.get('format')!r}, expected {FORMAT!r}")
        return cls(**arrays, metadata=metadata)


def collect_episodes(
    env,
    policy,
    episodes: int,
    seed: int = 0,
    failure_key: str = "failure",
    success_key: str = "success",
    metadata: dict[str, Any] | None = None,
    progress: bool = False,
) -> OfflineDataset:
    """Run ``episodes`` episodes of ``policy(obs, rng) -> action`` (``policy.reset()`` called per
    episode when it exists) and label each step with ``info[failure_key]`` (omega) and whether
    its episode ended with ``info[success_key]``. Episode e is reset with seed ``seed + e``.

    Every step's info must hold ``failure_key`` (``KeyError`` otherwise: a missing label would
    silently make every step safe). ``success_key`` may be absent (the episode did not succeed);
    if no step of any episode reports it, a warning says so (SAFER's ``successful_only`` would
    then find no data)."""
    from safeshield.core.progress import tqdm

    rng = np.random.default_rng(seed)
    seen_success_key = False
    columns: dict[str, list] = {"observations": [], "actions": [], "violations": [], "successes": [], "episode_ids": []}
    for episode in tqdm(range(int(episodes)), disable=not progress, desc="collect", unit="episode"):
        obs, _ = env.reset(seed=int(seed) + episode)
        if hasattr(policy, "reset"):
            policy.reset()
        start, success, done = len(columns["actions"]), False, False
        while not done:
            action = np.asarray(policy(obs, rng), dtype=np.float32)
            next_obs, _, terminated, truncated, info = env.step(action)
            columns["observations"].append(np.asarray(obs))
            columns["actions"].append(action.reshape(-1))
            if failure_key not in info:
                env_id = getattr(getattr(env, "spec", None), "id", type(env).__name__)
                raise KeyError(
                    f"collect_episodes: {env_id} reports no info[{failure_key!r}] (its keys: {sorted(info)}); "
                    "pass failure_key=... naming the env's failure flag"
                )
            columns["violations"].append(float(info[failure_key]) > 0.5)
            seen_success_key = seen_success_key or success_key in info
            columns["episode_ids"].append(episode)
            success = success or bool(info.get(success_key, False))
            obs, done = next_obs, terminated or truncated
        columns["successes"].extend([success] * (len(columns["actions"]) - start))
    if not seen_success_key and episodes > 0:
        import warnings

        warnings.warn(
            f"collect_episodes: no step reported info[{success_key!r}], so no episode counts as successful; "
            "pass success_key=... or train SAFER with successful_only=False",
            stacklevel=2,
        )
    env_id = getattr(getattr(env, "spec", None), "id", None)
    return OfflineDataset(
        **{k: np.asarray(v) for k, v in columns.items()}, metadata={"env_id": env_id, **(metadata or {})}
    )


def _window_index_rows(episode_ids: np.ndarray, rows: np.ndarray, window: int) -> np.ndarray:
    """``window_indices`` for the given rows only (training draws small batches from large data)."""
    index = rows[:, None] + np.arange(-window + 1, 1)[None, :]
    inside = index >= 0
    clipped = np.where(inside, index, 0)
    return np.where(inside & (episode_ids[clipped] == episode_ids[rows][:, None]), index, -1)


def _runs(values: np.ndarray) -> int:
    """Number of runs of equal consecutive values."""
    return int(1 + np.count_nonzero(np.diff(values))) if len(values) else 0
