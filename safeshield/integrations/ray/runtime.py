"""What the Ray adapter's pieces share: starting Ray, building envs in any process, actor options.

- ``init``: ``ray.init`` on this machine's cores by default, a running cluster by ``address``.
- ``EnvSpec``: a picklable recipe for an env (a registered id or a callable) that any Ray
  process can build (it imports ``safeshield`` first, so ``safeshield/...`` ids resolve).
- ``remote``: ``ray.remote(cls).options(...)`` with this adapter's fault-tolerance defaults.
- ``VersionCounter``: weight version numbers that keep rising across learner restarts.
- ``Publisher``: a learner's versioned weights in Ray's object store.
- ``RunnerLedger``: which (runner id, sequence number) a learner holds; drops resends, counts gaps;
  saved with a learner's checkpoint (``save_ledger`` / ``load_ledger``).
- ``flat``: one observation or action as a flat float32 vector (what buffers store).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import ray

__all__ = ["EnvSpec", "Publisher", "RunnerLedger", "VersionCounter", "init", "remote", "flat", "set_actor_threads"]


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
            raise ValueError(
                f"num_cpus is set by the cluster at address={address!r}; pass num_cpus only for a local start"
            )
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
            raise TypeError(
                f"env must be a registered env id or a callable returning a gymnasium.Env, got {self.env!r}"
            )

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


class Publisher:
    """A learner's weights, published with rising version numbers (``VersionCounter``).

    ``publish(build)`` calls ``build(version)`` for the payload and puts it into Ray's object
    store once; ``reply()`` is what runners receive: the version and the payload's reference,
    wrapped in a list so that Ray hands the reference over unresolved. Without Ray (a learner
    used in one process) the payload itself stands in for the reference.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.counter = VersionCounter(directory)
        self.seconds = 0.0
        self._ref: Any = None

    @property
    def version(self) -> int:
        return self.counter.value

    def publish(self, build: Callable[[int], dict[str, Any]]) -> int:
        start = time.perf_counter()
        version = self.counter.next()
        payload = build(version)
        self._ref = ray.put(payload) if ray.is_initialized() else payload
        self.seconds += time.perf_counter() - start
        return version

    def reply(self) -> dict[str, Any]:
        return {"version": self.version, "weights": [self._ref]}


def fetch(reply: dict[str, Any]) -> dict[str, Any]:
    """The payload a ``Publisher.reply`` refers to."""
    weights = reply["weights"][0]
    return ray.get(weights) if isinstance(weights, ray.ObjectRef) else weights


LEDGER = "learner.json"


def checkpoint_root(path: str | os.PathLike | None, default: Path | None) -> Path:
    """Where a learner's ``save`` writes: ``path``, else its ``checkpoint_dir``; created if missing."""
    root = Path(path) if path is not None else default
    if root is None:
        raise ValueError("save needs a path (this learner has no checkpoint_dir)")
    root.mkdir(parents=True, exist_ok=True)
    return root


class RunnerLedger:
    """Per runner: transitions received, the last sequence number, duplicates dropped, gaps seen.

    A learner accepts a transition only if its sequence number is above the runner's last one:
    a resent chunk is dropped, a jump is counted as a gap (data lost before it arrived).
    """

    def __init__(self, runners: dict[str, dict[str, int]] | None = None):
        self.runners: dict[str, dict[str, int]] = dict(runners or {})

    def record(self, runner_id: str) -> dict[str, int]:
        return self.runners.setdefault(str(runner_id), {"received": 0, "last_seq": -1, "duplicates": 0, "gaps": 0})

    def next_seq(self, runner_id: str) -> int:
        return self.record(runner_id)["last_seq"] + 1

    def accept(self, runner_id: str, seq: int) -> bool:
        record = self.record(runner_id)
        if seq <= record["last_seq"]:
            record["duplicates"] += 1
            return False
        record["gaps"] += int(seq - record["last_seq"] - 1)
        record["last_seq"], record["received"] = int(seq), record["received"] + 1
        return True

    def save(self, root: str | os.PathLike) -> None:
        """Write the ledger next to a learner's checkpoint (atomically)."""
        path = Path(root) / LEDGER
        staging = path.with_name(f".{LEDGER}.tmp")
        staging.write_text(json.dumps({"runners": self.runners}, indent=2, sort_keys=True))
        os.replace(staging, path)

    @classmethod
    def load(cls, root: str | os.PathLike) -> RunnerLedger | None:
        """The ledger saved in ``root``, or None when there is no checkpoint there."""
        path = Path(root) / LEDGER
        return cls(json.loads(path.read_text())["runners"]) if path.is_file() else None
