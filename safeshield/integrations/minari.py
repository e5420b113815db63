"""SAFER's offline data to and from Minari datasets (the Farama format for offline RL).

- ``from_minari(dataset, violation="info:violation", success="info:success")``: the labelled
  ``OfflineDataset`` a SAFER prior trains on, from a Minari dataset (an id or a loaded
  ``MinariDataset``).
- ``to_minari(data, dataset_id, env=...)``: write an ``OfflineDataset`` as a local Minari dataset.

Minari stores episodes: T actions, T + 1 observations (the reset one first) and T + 1 infos.
The ``safeshield-offline`` schema stores steps: s_t, a_t, omega(s_t, a_t) and the episode's
success flag. The mapping:

- ``observations``: each episode's first T observations (the one an action was taken in);
  Dict/Tuple observations are flattened with the dataset's observation space.
- ``violations``: ``"info:<key>"`` reads ``infos[key]`` after each step (``> 0.5``), ``"cost"``
  is ``infos["cost"] > 0``, ``"terminated"`` is Minari's ``terminations``; or a callable
  ``(episode) -> (T,) array``.
- ``successes``: ``"info:<key>"`` marks an episode successful if the key is true on any step;
  a callable ``(episode) -> bool``; or ``None`` to count every episode as successful (then
  ``successful_only`` has nothing to filter).

``to_minari`` writes what the schema knows: rewards are zeros, the final observation repeats the
last one (the schema does not keep s_T) and each episode ends truncated; ``infos["violation"]``
and ``infos["success"]`` carry the labels, so ``from_minari`` reads them back unchanged.
Needs ``pip install minari`` (tested with 0.5.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["from_minari", "to_minari"]


def _minari():
    try:
        import minari
    except ImportError as error:
        raise ImportError("Minari datasets need Minari: pip install minari") from error
    return minari


def _step_labels(episode, violation: str | Callable) -> np.ndarray:
    steps = len(episode.actions)
    if callable(violation):
        labels = np.asarray(violation(episode), dtype=float).reshape(-1)
    elif violation == "terminated":
        labels = np.asarray(episode.terminations, dtype=float)
    elif violation == "cost" or violation.startswith("info:"):
        key = "cost" if violation == "cost" else violation[len("info:") :]
        if key not in episode.infos:
            raise ValueError(
                f"violation={violation!r} needs infos[{key!r}] in every episode; episode {episode.id} "
                f'has {sorted(episode.infos)}. Pass another violation= ("terminated", a callable)'
            )
        labels = np.asarray(episode.infos[key], dtype=float).reshape(-1)[-steps:]  # drop the reset info
        if violation == "cost":
            labels = (labels > 0).astype(float)
    else:
        raise ValueError(f'violation must be "info:<key>", "cost", "terminated" or a callable, got {violation!r}')
    if labels.shape != (steps,):
        raise ValueError(f"episode {episode.id}: {steps} steps but {labels.shape[0]} violation labels")
    return labels > 0.5


def _episode_success(episode, success: str | Callable | None) -> bool:
    if success is None:
        return True
    if callable(success):
        return bool(success(episode))
    if not success.startswith("info:"):
        raise ValueError(f'success must be "info:<key>", a callable or None, got {success!r}')
    key = success[len("info:") :]
    if key not in episode.infos:
        raise ValueError(
            f"success={success!r} needs infos[{key!r}]; episode {episode.id} has {sorted(episode.infos)}. "
            "Pass success=None to count every episode as successful"
        )
    return bool(np.any(np.asarray(episode.infos[key], dtype=float) > 0.5))


def from_minari(
    dataset: Any,
    violation: str | Callable = "info:violation",
    success: str | Callable | None = "info:success",
    *,
    metadata: dict[str, Any] | None = None,
):
    """A labelled ``OfflineDataset`` from a Minari dataset (id or ``MinariDataset``); see the module docstring."""
    from safeshield.shields.safer.dataset import OfflineDataset

    if isinstance(dataset, str):
        dataset = _minari().load_dataset(dataset)
    space = dataset.observation_space
    flatten = not isinstance(space, gym.spaces.Box)
    columns: dict[str, list] = {"observations": [], "actions": [], "violations": [], "successes": [], "episode_ids": []}
    for index, episode in enumerate(dataset.iterate_episodes()):
        steps = len(episode.actions)
        if flatten:
            observations = [gym.spaces.flatten(space, obs) for obs in _unbatch(space, episode.observations, steps + 1)]
            observations = np.asarray(observations[:steps], dtype=np.float32)
        else:
            observations = np.asarray(episode.observations)[:steps]
        columns["observations"].append(observations)
        columns["actions"].append(np.asarray(episode.actions, dtype=np.float32).reshape(steps, -1))
        columns["violations"].append(_step_labels(episode, violation))
        columns["successes"].append(np.full(steps, _episode_success(episode, success)))
        columns["episode_ids"].append(np.full(steps, index, dtype=np.int64))
    if not columns["actions"]:
        raise ValueError(f"Minari dataset {dataset.id!r} holds no episodes")
    action_space = dataset.action_space
    info = {
        "source": f"minari:{dataset.id}",
        "action_low": np.asarray(action_space.low).reshape(-1).tolist(),
        "action_high": np.asarray(action_space.high).reshape(-1).tolist(),
        **(metadata or {}),
    }
    return OfflineDataset(**{key: np.concatenate(value) for key, value in columns.items()}, metadata=info)


def _unbatch(space: gym.Space, observations: Any, n: int) -> list:
    batched = gym.vector.utils.batch_space(space, n)
    return list(gym.vector.utils.iterate(batched, observations))


def to_minari(
    data,
    dataset_id: str,
    *,
    env: str | gym.Env | None = None,
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
    description: str | None = None,
    **kwargs: Any,
):
    """Write ``data`` (an ``OfflineDataset``) as the local Minari dataset ``dataset_id`` and return it.

    ``env`` (an id or env) records where the data came from; without it pass the spaces (Box
    spaces are built from the data otherwise). ``kwargs`` go to ``minari.create_dataset_from_buffers``.
    """
    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    if env is None and observation_space is None:
        observation_space = gym.spaces.Box(-np.inf, np.inf, data.observations.shape[1:], data.observations.dtype)
    if env is None and action_space is None:
        low = np.asarray(data.metadata.get("action_low", -np.ones(data.action_dim)), dtype=np.float32)
        high = np.asarray(data.metadata.get("action_high", np.ones(data.action_dim)), dtype=np.float32)
        action_space = gym.spaces.Box(low, high, dtype=np.float32)
    buffers = []
    starts = np.flatnonzero(np.r_[True, np.diff(data.episode_ids) != 0])
    ends = np.r_[starts[1:], len(data)]
    for number, (start, end) in enumerate(zip(starts, ends)):
        steps = end - start
        observations = np.concatenate([data.observations[start:end], data.observations[end - 1 : end]])
        violation = np.r_[0, data.violations[start:end]].astype(np.int64)
        success = np.full(steps + 1, int(data.successes[start]), dtype=np.int64)
        buffers.append(
            EpisodeBuffer(
                id=number,
                observations=observations,
                actions=data.actions[start:end],
                rewards=np.zeros(steps),
                terminations=np.zeros(steps, dtype=bool),
                truncations=np.r_[np.zeros(steps - 1, dtype=bool), True],
                infos={"violation": violation, "success": success},
            )
        )
    return minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        env=env,
        observation_space=observation_space,
        action_space=action_space,
        description=description or "safeshield-offline data (rewards not recorded; infos: violation, success)",
        **kwargs,
    )
