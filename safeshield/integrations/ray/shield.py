"""One shield learner for many env runners: transitions in, versioned weights out.

- ``ShieldSpec``: which env, which shield method and options, which seed (picklable).
- ``ShieldLearner``: owns the one learning ``SafetyCritic`` (SQRL, CSC, ...): takes runners' transition chunks,
  drops any (runner id, sequence number) it already holds, learns on the model's own schedule
  (one ``after_step`` per transition, as a single-process shield), publishes weights with a
  version number, and checkpoints itself (a restarted learner resumes from its checkpoint).
- ``TransitionRecorder``: numbers a shielded env's steps and completes each transition (failure
  label, SARSA next action, episode end) as a single-process shield would store it.
- ``SharedShieldEnv``: the runner side: a frozen ``safeshield.ShieldWrapper`` around the runner's env
  and a recorder; it sends chunks (one in flight: back-pressure instead of unbounded queues)
  and loads the newest weights the learner published when a chunk is acknowledged.
- ``SharedShield``: the driver's handle: starts the learner actor and builds runner envs,
  RLlib env creators and plain runner actors.
- ``ShieldRunner``: a Ray actor that steps one ``SharedShieldEnv`` with uniform random proposals.
- ``scripted_rollout``: a seeded rollout that records the executed actions (decision checks).

Why pull, not push: a runner asks for weights only when the learner's acknowledgement says a
newer version exists, so a runner that was restarted, or joined late, catches up by itself and
the learner never holds runner handles. The weights travel once into Ray's object store per
version; every runner reads that one copy (shared memory on one node).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import ray
import torch

import safeshield
from safeshield.core.validation import check_float_array, check_probabilities
from safeshield.integrations.ray.runtime import (
    EnvSpec,
    Publisher,
    RunnerLedger,
    checkpoint_root,
    fetch,
    flat,
    remote,
    set_actor_threads,
)

__all__ = [
    "ShieldSpec",
    "ShieldLearner",
    "TransitionRecorder",
    "SharedShieldEnv",
    "SharedShield",
    "ShieldRunner",
    "scripted_rollout",
]

CHUNK_FIELDS = (
    "obs",
    "action",
    "next_obs",
    "next_action",
    "failure",
    "terminated",
    "done",
    "episode_failed",
    "first",  # the transition starts an episode (links a multi-step target's window)
    "fell_back",  # the shield fell back at this step (the threshold's guard counts these)
)
FLAG_FIELDS = ("terminated", "done", "episode_failed", "first", "fell_back")
MODEL_DIR = "model"


@dataclass(frozen=True)
class ShieldSpec:
    """Env + shield method + options + seed: everything a runner needs to build its shielded env."""

    env: str | Callable[..., gym.Env]
    method: str = "sqrl"
    indicator: str | Callable | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def make_env(self) -> gym.Env:
        return EnvSpec(self.env, self.env_kwargs).make()

    def wrap(self, env: gym.Env, *, train: bool, seed: int | None) -> gym.Env:
        return safeshield.wrap(env, self.method, self.indicator, train=train, seed=seed, **self.options)


def model_of(env: gym.Env):
    """The shield model inside a shielded env."""
    return env.get_wrapper_attr("safety_model")


def weights_payload(model, version: int) -> dict[str, Any]:
    """What a broadcast carries: the model's tensors (numpy), its non-tensor state, the version."""
    tensors = {name: value.detach().cpu().numpy().copy() for name, value in model.state_dict().items()}
    return {"version": int(version), "tensors": tensors, "extra": model.extra_state()}


def load_payload(model, payload: dict[str, Any]) -> None:
    """Load a broadcast into ``model`` in place (risk networks keep their numpy views valid)."""
    # np.array copies: object-store arrays are read-only, torch wants writable memory
    model.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in payload["tensors"].items()})
    model.load_extra_state(payload["extra"])


class ShieldLearner:
    """The shared shield's learner; in a Ray actor via ``SharedShield``, or in-process for tests.

    ``model``: a shield model (copied) or a ``ShieldSpec`` (the model is built here, with the
    spec's seed, exactly as ``spec.wrap`` builds it anywhere else).

    ``broadcast_every``: publish a new version after this many gradient steps (or when the
    threshold moved, as CSC's adaptive one does). ``checkpoint_every``: gradient steps between
    checkpoints into ``checkpoint_dir`` (0: only on ``save``). At construction, a checkpoint in
    ``checkpoint_dir`` wins over ``model``: that is how a restarted learner resumes.
    """

    def __init__(
        self,
        model: Any,
        *,
        broadcast_every: int = 1,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        torch_threads: int | None = 1,
    ):
        if int(broadcast_every) < 1:
            raise ValueError(f"broadcast_every must be a positive integer, got {broadcast_every!r}")
        if int(checkpoint_every) < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every!r}")
        if checkpoint_every and checkpoint_dir is None:
            raise ValueError("checkpoint_every > 0 needs checkpoint_dir=... (where the learner saves itself)")
        set_actor_threads(torch_threads)
        self.broadcast_every, self.checkpoint_every = int(broadcast_every), int(checkpoint_every)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        if isinstance(model, ShieldSpec):  # built here: a spec is small, a model in Ray's store can be lost
            env = model.wrap(model.make_env(), train=True, seed=model.seed)
            model = model_of(env)
            env.close()
        else:  # a copy: arrays that arrive through Ray's object store are read-only views
            model = copy.deepcopy(model)
        self.model = model.unfreeze()
        self.ledger, self.restored_from = RunnerLedger(), None
        saved = None if self.checkpoint_dir is None else RunnerLedger.load(self.checkpoint_dir)
        if saved is not None:
            spaces = (self.model.observation_space, self.model.action_space)
            self.model = type(self.model).load(self.checkpoint_dir / MODEL_DIR, spaces).unfreeze()
            self.ledger, self.restored_from = saved, str(self.checkpoint_dir)
        self.publisher = Publisher(self.checkpoint_dir)
        self.timing = {"learn_s": 0.0, "add_calls": 0}
        capacity = self.model.buffer.capacity
        self._origin_runner = np.full(capacity, -1, dtype=np.int32)  # which runner sent each buffer row
        self._origin_seq = np.full(capacity, -1, dtype=np.int64)
        self._runner_names: list[str] = []
        self._pending: dict[str, tuple[int, np.ndarray]] = {}  # runner -> (buffer row, its next action)
        self._last_checkpoint = self.model.updates
        self._publish()

    @property
    def version(self) -> int:
        return self.publisher.version

    # -- runners --------------------------------------------------------------------------------
    def register(self, runner_id: str) -> dict[str, Any]:
        """A runner (new or restarted) asks where its sequence numbers continue, and for weights."""
        return {"next_seq": self.ledger.next_seq(runner_id), **self.publisher.reply()}

    def add(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """Store a chunk of one runner's transitions; learn; maybe publish; acknowledge with the version.

        Transitions the ledger has seen are dropped (a resent chunk); the rest run through the
        model's schedule one by one, as in a single-process shield.
        """
        self.timing["add_calls"] += 1
        self._check_chunk(chunk)
        runner = str(chunk["runner"])
        index = self._runner_index(runner)
        model, buffer = self.model, self.model.buffer
        start = time.perf_counter()
        for j, seq in enumerate(np.asarray(chunk["seq"], dtype=np.int64)):
            if not self.ledger.accept(runner, seq):
                continue
            # the SARSA link lands when the runner's next transition does, as in one process,
            # so the schedule's updates see exactly the buffer a single-process shield would
            pending = self._pending.pop(runner, None)
            if pending is not None:
                buffer.set_next_action(*pending)
            failure = float(chunk["failure"][j])
            previous = None if pending is None or chunk["first"][j] else pending[0]
            row = model.observe(
                chunk["obs"][j],
                chunk["action"][j],
                chunk["next_obs"][j],
                failure,
                bool(chunk["terminated"][j]),
                previous=previous,
            )
            self._origin_runner[row], self._origin_seq[row] = index, seq
            if not chunk["done"][j]:
                self._pending[runner] = (row, chunk["next_action"][j])
            model.after_step()
            if chunk["done"][j]:
                model.on_episode_end(bool(chunk["episode_failed"][j]))
            model.on_step_outcome(failure > 0.5, bool(chunk["fell_back"][j]), bool(chunk["done"][j]))
        self.timing["learn_s"] += time.perf_counter() - start
        updates, threshold = model.updates, float(model.threshold)
        if updates - self._published[0] >= self.broadcast_every or threshold != self._published[1]:
            self._publish()
        if self.checkpoint_every and updates - self._last_checkpoint >= self.checkpoint_every:
            self.save()
        return self.publisher.reply()

    def weights(self) -> dict[str, Any]:
        """``{"version", "weights": [ref]}``: the latest published weights."""
        return self.publisher.reply()

    # -- inspection -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        model = self.model
        return {
            "version": self.version,
            "updates": model.updates,
            "buffer_len": len(model.buffer),
            "total_added": model.buffer.total_added,
            "threshold": float(model.threshold),
            "regret": model.reported_regret,
            "runners": self.ledger.runners,
            "restored_from": self.restored_from,
            "publish_s": self.publisher.seconds,
            **self.timing,
        }

    def origins(self) -> dict[str, Any]:
        """(runner id, sequence number) of every buffer row, oldest first: who sent what is stored."""
        buffer = self.model.buffer
        n, total = len(buffer), buffer.total_added
        rows = np.arange(n) if total <= buffer.capacity else (np.arange(n) + total) % buffer.capacity
        return {
            "runner": [self._runner_names[i] for i in self._origin_runner[rows]],
            "seq": self._origin_seq[rows].tolist(),
        }

    def get_model(self):
        """The learning model itself (Ray pickles a copy to the caller)."""
        return self.model

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None) -> str:
        """Write the model (the usual shield checkpoint, ``path/model``) and the runner ledger."""
        root = checkpoint_root(path, self.checkpoint_dir)
        self.model.save(root / MODEL_DIR)
        self.ledger.save(root)
        self._last_checkpoint = self.model.updates
        return str(root)

    # -- internals ------------------------------------------------------------------------------
    def _check_chunk(self, chunk: dict[str, Any]) -> None:
        """Refuse a chunk that is not what ``TransitionRecorder.take`` makes, before any of it is stored."""
        missing = sorted({"runner", "seq", *CHUNK_FIELDS} - set(chunk))
        if missing:
            raise ValueError(
                f"chunk is missing {missing}; send what TransitionRecorder.take returns (runner and learner "
                "must run the same safeshield version)"
            )
        size = len(chunk["seq"])
        dims = {"obs": self.model.obs_dim, "next_obs": self.model.obs_dim}
        dims.update(action=self.model.act_dim, next_action=self.model.act_dim)
        for name in CHUNK_FIELDS:
            shape = (size, dims[name]) if name in dims else (size,)
            if name in FLAG_FIELDS:
                if np.shape(chunk[name]) != shape:
                    raise ValueError(f"chunk[{name!r}] must have shape {shape}, got {np.shape(chunk[name])}")
            else:
                check = check_probabilities if name == "failure" else check_float_array
                check(f"chunk[{name!r}]", chunk[name], shape)

    def _runner_index(self, runner_id: str) -> int:
        if runner_id not in self._runner_names:
            self._runner_names.append(runner_id)
        return self._runner_names.index(runner_id)

    def _publish(self) -> None:
        self.publisher.publish(lambda version: weights_payload(self.model, version))
        self._published = (self.model.updates, float(self.model.threshold))


class TransitionRecorder:
    """Turn a shielded env's steps into the complete transitions a shield model stores.

    Each step's transition (flat obs, executed action, next obs, SARSA next action, failure,
    termination, episode end, whether the episode failed) gets the next sequence number. It
    waits one step for its next action; at an episode end, or when the episode is cut short by
    a reset, it keeps its own action, exactly as ``TransitionBuffer`` does in one process.
    """

    def __init__(self, observation_space: gym.Space, next_seq: int = 0):
        self.observation_space, self.next_seq = observation_space, int(next_seq)
        self.ready: list[tuple] = []  # complete transitions, oldest first
        self._pending: list | None = None
        self._obs: np.ndarray | None = None
        self._episode_failed = False
        self._first = True

    def __len__(self) -> int:
        return len(self.ready)

    def start(self, obs) -> None:
        """A new episode starts at ``obs`` (after ``reset``)."""
        self.close()
        self._obs, self._episode_failed, self._first = flat(self.observation_space, obs), False, True

    def step(self, obs, info: dict[str, Any], terminated: bool, truncated: bool) -> None:
        """Record the step that led to ``obs``; ``info["shield"]`` carries the executed action and failure."""
        report = info["shield"]
        executed = np.asarray(report["executed_action"], dtype=np.float32).reshape(-1)
        failure = float(report["failure"])
        next_obs = flat(self.observation_space, obs)
        if self._pending is not None:
            self._pending[4] = executed
            self.ready.append(tuple(self._pending))
        done = bool(terminated or truncated)
        self._episode_failed |= failure > 0.5
        transition = [
            self.next_seq,
            self._obs,
            executed,
            next_obs,
            executed,
            failure,
            bool(terminated),
            done,
            self._episode_failed,
            self._first,
            bool(report["fell_back"]),
        ]
        self._first = False
        self.next_seq += 1
        self._pending = None if done else transition
        if done:
            self.ready.append(tuple(transition))
        self._obs = next_obs

    def close(self) -> None:
        """The current episode ends without a next step: its last transition is complete as it is."""
        if self._pending is not None:
            self.ready.append(tuple(self._pending))
            self._pending = None

    def take(self, runner_id: str) -> dict[str, Any] | None:
        """The ready transitions as one chunk of column arrays (None if there are none); empties ``ready``."""
        if not self.ready:
            return None
        columns = list(zip(*self.ready))
        self.ready = []
        chunk = {"runner": str(runner_id), "seq": np.asarray(columns[0], dtype=np.int64)}
        for name, column in zip(CHUNK_FIELDS, columns[1:]):
            chunk[name] = np.asarray(column, dtype=bool if name in FLAG_FIELDS else np.float32)
        return chunk


class SharedShieldEnv(gym.Wrapper):
    """A runner's env: a frozen shield scoring with the learner's latest weights, feeding the learner.

    Its ``TransitionRecorder`` numbers every transition; complete ones go to the learner in
    chunks of ``flush_every``, with one chunk in flight: the next chunk waits for the previous
    acknowledgement, which carries the learner's version and, if it is newer, the weights to load.

    Example (with a running ``SharedShield`` called ``shared``)::

        env = shared.make_env("runner-0")
        obs, info = env.reset(seed=0)
        env.step(env.action_space.sample())[4]["shield"]["executed_action"]
    """

    def __init__(
        self, env: gym.Env, learner, runner_id: str, spec: ShieldSpec, *, seed: int | None = None, flush_every: int = 64
    ):
        if int(flush_every) < 1:
            raise ValueError(f"flush_every must be a positive integer, got {flush_every!r}")
        super().__init__(spec.wrap(env, train=False, seed=seed))
        self.learner, self.runner_id, self.flush_every = learner, str(runner_id), int(flush_every)
        self.model = model_of(self.env)
        self.version = 0
        self.versions: list[int] = []  # every version this runner loaded, in order
        self.timing = {"fetch_s": 0.0, "load_s": 0.0, "wait_s": 0.0}
        self.sent = 0
        self._inflight = None
        reply = ray.get(learner.register.remote(self.runner_id))  # a restarted runner continues its numbering
        self.recorder = TransitionRecorder(self.observation_space, reply["next_seq"])
        self._sync(reply)

    @property
    def next_seq(self) -> int:
        return self.recorder.next_seq

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.recorder.start(obs)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.recorder.step(obs, info, terminated, truncated)
        if len(self.recorder) >= self.flush_every:
            self.flush()
        return obs, reward, terminated, truncated, info

    def flush(self, wait: bool = False) -> None:
        """Send the complete transitions (after the previous chunk was acknowledged); ``wait`` for this one too."""
        self._acknowledge()
        chunk = self.recorder.take(self.runner_id)
        if chunk is not None:
            self._inflight = self.learner.add.remote(chunk)
            self.sent += len(chunk["seq"])
        if wait:
            self._acknowledge()

    def sync(self) -> int:
        """Ask the learner for its latest weights now; return the version loaded."""
        self._sync(ray.get(self.learner.weights.remote()))
        return self.version

    def close(self):
        self.recorder.close()
        self.flush(wait=True)
        return super().close()

    def _acknowledge(self) -> None:
        if self._inflight is not None:
            start = time.perf_counter()
            reply = ray.get(self._inflight)
            self.timing["wait_s"] += time.perf_counter() - start
            self._inflight = None
            self._sync(reply)

    def _sync(self, reply: dict[str, Any]) -> None:
        if reply["version"] <= self.version:
            return
        start = time.perf_counter()
        payload = fetch(reply)
        middle = time.perf_counter()
        load_payload(self.model, payload)
        self.timing["fetch_s"] += middle - start
        self.timing["load_s"] += time.perf_counter() - middle
        self.version = int(payload["version"])
        self.versions.append(self.version)


def scripted_rollout(env: gym.Env, n_steps: int, seed: int) -> np.ndarray:
    """Step ``env`` ``n_steps`` times with uniform proposals from ``seed``; return the executed actions."""
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    env.reset(seed=seed)
    executed = []
    for _ in range(int(n_steps)):
        proposal = rng.uniform(low, high).astype(env.action_space.dtype)
        _, _, terminated, truncated, info = env.step(proposal)
        executed.append(np.asarray(info["shield"]["executed_action"], dtype=np.float32).reshape(-1))
        if terminated or truncated:
            env.reset()
    return np.stack(executed)


class ShieldRunner:
    """A Ray runner actor stepping one ``SharedShieldEnv`` with uniform random proposals."""

    def __init__(
        self,
        spec: ShieldSpec,
        learner,
        runner_id: str,
        *,
        seed: int,
        flush_every: int = 64,
        torch_threads: int | None = 1,
    ):
        set_actor_threads(torch_threads)
        self.env = SharedShieldEnv(spec.make_env(), learner, runner_id, spec, seed=seed, flush_every=flush_every)
        self.rng = np.random.default_rng(seed)
        self.seed, self.steps, self.failures, self.episodes = seed, 0, 0, 0
        self._needs_reset = True

    def run(self, n_steps: int, *, flush: bool = True) -> dict[str, Any]:
        """``n_steps`` shielded steps; ``flush`` sends what is complete and waits for the acknowledgement.

        ``seconds`` covers the steps and the flush; ``wait_s``/``fetch_s``/``load_s`` (cumulative)
        say how much of a runner's time went to waiting for the learner and loading weights.
        """
        env, space = self.env, self.env.action_space
        start = time.perf_counter()
        for _ in range(int(n_steps)):
            if self._needs_reset:
                env.reset(seed=int(self.rng.integers(2**31)))
                self._needs_reset = False
            _, _, terminated, truncated, info = env.step(self.rng.uniform(space.low, space.high).astype(space.dtype))
            self.steps += 1
            self.failures += int(info["shield"]["failure"] > 0.5)
            if terminated or truncated:
                self.episodes += 1
                self._needs_reset = True
        if flush:
            env.flush(wait=True)
        return {**self.stats(), "seconds": time.perf_counter() - start}

    def evaluate(self, n_steps: int, seed: int) -> dict[str, Any]:
        """A ``scripted_rollout`` of the runner's shield with its current weights (nothing sent, no sync)."""
        shield = self.env.env
        return {"version": self.env.version, "executed": scripted_rollout(shield, n_steps, seed)}

    def sync(self) -> int:
        return self.env.sync()

    def stats(self) -> dict[str, Any]:
        env = self.env
        return {
            "runner": env.runner_id,
            "steps": self.steps,
            "sent": env.sent,
            "next_seq": env.next_seq,
            "failures": self.failures,
            "episodes": self.episodes,
            "version": env.version,
            "versions": list(env.versions),
            "pid": os.getpid(),
            **env.timing,
        }


class SharedShield:
    """Start one shield learner actor and build the envs of the runners that share it.

    Example (Ray started, e.g. ``ss_ray.init(num_cpus=2)``)::

        shared = ss_ray.SharedShield(ss_ray.ShieldSpec("safeshield/DrunkSpider-v0", "sqrl"))
        shared.register_rllib_env("shielded-spider")  # then PPOConfig().environment("shielded-spider")

    ``learner_resources`` place the learner (``{"num_cpus": 1}``, ``{"num_gpus": 1}`` on a
    cluster); by default it reserves no CPU so that N one-CPU runners fit on N cores.
    ``max_restarts``: how often Ray restarts a dead learner (it resumes from ``checkpoint_dir``).
    """

    def __init__(
        self,
        spec: ShieldSpec,
        *,
        flush_every: int = 64,
        broadcast_every: int = 1,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        learner_resources: dict[str, Any] | None = None,
        max_restarts: int = -1,
        name: str | None = None,
    ):
        if not ray.is_initialized():
            raise RuntimeError("start Ray first: safeshield.integrations.ray.init() (local) or init(address=...)")
        self.spec, self.flush_every = spec, int(flush_every)
        options = {"max_restarts": max_restarts, "max_task_retries": -1 if max_restarts else 0}
        if name is not None:
            options["name"] = name
        resources = {"num_cpus": 0} if learner_resources is None else learner_resources
        self.learner = remote(ShieldLearner, resources=resources, **options).remote(
            spec,
            broadcast_every=broadcast_every,
            checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
            checkpoint_every=checkpoint_every,
        )

    def runner_seed(self, index: int) -> int:
        return int(self.spec.seed) + 1 + int(index)

    def make_env(self, runner_id: str, *, seed: int | None = None) -> SharedShieldEnv:
        """A shielded env for a runner in this process (any Ray worker or the driver)."""
        return SharedShieldEnv(
            self.spec.make_env(), self.learner, runner_id, self.spec, seed=seed, flush_every=self.flush_every
        )

    def env_creator(self) -> Callable[[Any], SharedShieldEnv]:
        """``creator(env_config)`` for RLlib: the runner id is ``"<worker_index>/<vector_index>"``."""
        return _RLlibCreator(self.spec, self.learner, self.flush_every)

    def register_rllib_env(self, name: str) -> str:
        """Register ``name`` with ``ray.tune.registry.register_env``; use it as RLlib's env."""
        from ray.tune.registry import register_env

        register_env(name, self.env_creator())
        return name

    def start_runners(
        self, n: int, *, resources: dict[str, Any] | None = None, max_restarts: int = -1, prefix: str = "runner"
    ) -> list:
        """``n`` ``ShieldRunner`` actors (one CPU each by default), restarted by Ray when they die."""
        # a call that was running when its runner died runs again on the restarted runner
        cls = remote(
            ShieldRunner,
            resources={"num_cpus": 1} if resources is None else resources,
            max_restarts=max_restarts,
            max_task_retries=-1 if max_restarts else 0,
        )
        return [
            cls.remote(self.spec, self.learner, f"{prefix}-{i}", seed=self.runner_seed(i), flush_every=self.flush_every)
            for i in range(int(n))
        ]

    def stats(self) -> dict[str, Any]:
        return ray.get(self.learner.stats.remote())

    def model(self):
        """A copy of the learner's current model (frozen)."""
        return ray.get(self.learner.get_model.remote()).freeze()

    def save(self, path: str | os.PathLike) -> str:
        """Checkpoint the learner into ``path`` (``path/model`` loads with ``safeshield.load``)."""
        return ray.get(self.learner.save.remote(str(path)))


class _RLlibCreator:
    """RLlib env creator: ``EnvContext`` (a dict with ``worker_index``/``vector_index``) -> runner env."""

    def __init__(self, spec: ShieldSpec, learner, flush_every: int):
        self.spec, self.learner, self.flush_every = spec, learner, flush_every

    def __call__(self, env_config: Any) -> SharedShieldEnv:
        worker = int(getattr(env_config, "worker_index", 0))
        vector = int(getattr(env_config, "vector_index", 0))
        seed = int(self.spec.seed) + 1 + 1000 * worker + vector
        set_actor_threads(1)
        return SharedShieldEnv(
            self.spec.make_env(), self.learner, f"{worker}/{vector}", self.spec, seed=seed, flush_every=self.flush_every
        )
