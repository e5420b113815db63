"""What the Ray adapter's pieces share: starting Ray, building envs in any process, actor options.

- ``init``: ``ray.init`` on this machine's cores by default, a running cluster by ``address``.
- ``EnvSpec``: a picklable recipe for an env (a registered id or a callable) that any Ray
  process can build (it imports ``safeshield`` first, so ``safeshield/...`` ids resolve).
- ``remote``: ``ray.remote(cls).options(...)`` with this adapter's fault-tolerance defaults.
- ``VersionCounter``: weight version numbers that keep rising across learner restarts.
- ``flat``: one observation or action as a flat float32 vector (what buffers store).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import ray

__all__ = ["EnvSpec", "VersionCounter", "init", "remote", "flat", "set_actor_threads"]


def init(address: str | None = None, *, num_cpus: int | None = None, **kwargs: Any) -> Any:
    """Start Ray on the local cores (``address=None``) or join a cluster (``address="ray://..."``/``"auto"``).

    Local by default: no dashboard, ``num_cpus`` cores (all by default). ``kwargs`` go to
    ``ray.init`` unchanged (``runtime_env``, ``namespace``, ...). Already initialised: a no-op.
    """
    if ray.is_initialized():
        return ray.get_runtime_context()
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", **kwargs}
    if address is None:
        if num_cpus is not None:
            options["num_cpus"] = int(num_cpus)
    else:
        if num_cpus is not None:
            raise ValueError(f"num_cpus is set by the cluster at address={address!r}; pass num_cpus only for a local start")
        options["address"] = address
        options.pop("include_dashboard")  # a cluster's head node owns its dashboard
    return ray.init(**options)


@dataclass(frozen=True)
class EnvSpec:
    """A recipe for one env: a registered id (``"safeshield/DrunkSpider-v0"``) or a callable.

    Ray pickles it into every runner; ``make`` imports ``safeshield`` first so its ids exist
    in a fresh worker process.
    """

    env: str | Callable[..., gym.Env]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (isinstance(self.env, str) or callable(self.env)):
            raise TypeError(f"env must be a registered env id or a callable returning a gymnasium.Env, got {self.env!r}")

    def make(self) -> gym.Env:
        import safeshield  # noqa: F401  (registers the safeshield/... ids in this process)

        env = gym.make(self.env, **self.kwargs) if isinstance(self.env, str) else self.env(**self.kwargs)
        if not isinstance(env, gym.Env):
            raise TypeError(f"the env callable must return a gymnasium.Env, got {type(env).__name__}")
        return env


def remote(cls: type, *, resources: dict[str, Any] | None = None, **options: Any):
    """``ray.remote(cls).options(...)``; ``resources`` are the placement options (``num_cpus``, ``num_gpus``, ...)."""
    return ray.remote(cls).options(**(resources or {}), **options)


def set_actor_threads(threads: int | None) -> None:
    """One torch thread per actor by default: N actors on N cores must not each spawn N threads."""
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))


def flat(space: gym.Space, value: Any) -> np.ndarray:
    """``value`` of ``space`` as a flat float32 vector."""
    if isinstance(space, gym.spaces.Box):
        return np.asarray(value, dtype=np.float32).reshape(-1)
    return np.asarray(gym.spaces.flatten(space, value), dtype=np.float32).reshape(-1)


class VersionCounter:
    """Version numbers of published weights: rising, also across a learner's restarts.

    With a ``directory`` every new number is written there, so a learner restarted from an
    older checkpoint continues above every version a runner may already hold (runners load only
    versions above their own).
    """

    FILE = "version"

    def __init__(self, directory: str | os.PathLike | None = None):
        self.path = None if directory is None else Path(directory) / self.FILE
        self.value = int(self.path.read_text()) if self.path is not None and self.path.is_file() else 0

    def next(self) -> int:
        self.value += 1
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging = self.path.with_name(f".{self.FILE}.tmp")
            staging.write_text(str(self.value))
            os.replace(staging, self.path)
        return self.value
