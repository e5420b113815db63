"""Distributed SAC-Lagrangian: N rollout actors, one learner, parameter broadcast (safe transfer's layout).

- ``SACRolloutWorker``: a Ray actor that steps its own env with a copy of the policy and returns
  chunks of transitions (runner id + sequence number, reward, cost, executed action).
- ``SACLagrangianLearner``: the learner: one ``safeshield.agents.SACLagrangian`` whose replay
  buffer takes every chunk; it updates on the single-process schedule (per stored transition:
  ``gradient_steps`` updates every ``train_every`` steps once ``learning_starts`` were stored),
  takes each finished episode's β step, publishes the actor's weights with a version number
  and checkpoints itself in the single-process format.
- ``DistributedSACLagrangian``: the driver: starts the actors, routes chunks to the learner and
  fresh weights to the rollout actors, restarts dead ones.

Paper: Knight & Achiam's safe-transfer study (§2.1) trains with 60 actors and a central
learner on Ray. Where this differs: one replay buffer (the learner's; the paper's ApeX-like
actors also keep local ones), MLP networks, actors synchronise after every chunk they return.

Same hyper-parameters and checkpoints as the single-process agent: the config is a
``SACLagrangianConfig``, the learner *is* a ``SACLagrangian``, ``save`` writes its checkpoint,
so ``SACLagrangian.load(path)`` reads a distributed run and ``DistributedSACLagrangian.load``
continues a single-process one. What a distributed run cannot reproduce bit for bit is the
order of transitions (actors race), so two runs with one seed are not identical.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import ray
import torch

from safeshield.agents import SACLagrangian, SACLagrangianConfig
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

__all__ = ["SACRolloutWorker", "SACLagrangianLearner", "DistributedSACLagrangian"]

AGENT_DIR = "agent"


class SACRolloutWorker:
    """Steps one env with the policy weights the learner last published; returns transition chunks.

    Before the learner has stored ``learning_starts`` transitions the worker acts uniformly at
    random (SAC's warm-up), as ``SACLagrangian.act`` does in one process.
    """

    def __init__(
        self,
        env: EnvSpec,
        config: SACLagrangianConfig,
        learner,
        runner_id: str,
        *,
        seed: int,
        torch_threads: int | None = 1,
    ):
        set_actor_threads(torch_threads)
        self.env = env.make()
        # the worker's agent only acts: a one-row buffer keeps the 1e6-row default out of memory
        self.agent = SACLagrangian(
            self.env.observation_space, self.env.action_space, replace(config, buffer_size=1), seed=seed
        )
        self.runner_id, self.seed = str(runner_id), int(seed)
        reply = ray.get(learner.register.remote(self.runner_id))
        self.next_seq, self.version, self.learner_steps = int(reply["next_seq"]), 0, 0
        self._obs = None
        self._episode = {"return": 0.0, "length": 0, "failure": False, "cost": 0.0}
        self._sync(reply)

    def rollout(self, n_steps: int, weights: dict[str, Any] | None = None) -> dict[str, Any]:
        """``n_steps`` env steps (episodes continue across calls) after loading ``weights`` if newer."""
        if weights is not None:
            self._sync(weights)
        env, agent = self.env, self.agent
        if self._obs is None:
            self._obs, _ = env.reset(seed=self.seed)
        rows: list[tuple] = []
        episodes: list[dict[str, Any]] = []
        start = time.perf_counter()
        for _ in range(int(n_steps)):
            agent.total_steps = self.learner_steps + len(rows)  # the warm-up counts the learner's steps
            action = agent.act(self._obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            shield = info.get("shield")
            executed = shield.get("executed_action", action) if isinstance(shield, dict) else action
            failed = bool(info.get("failure", False)) or (
                isinstance(shield, dict) and float(shield.get("failure", 0.0)) > 0.5
            )
            cost = float(info.get("cost", 0.0))
            done = bool(terminated or truncated)
            rows.append(
                (
                    self.next_seq,
                    flat(env.observation_space, self._obs),
                    flat(env.action_space, executed),
                    float(reward),
                    flat(env.observation_space, next_obs),
                    bool(terminated),
                    cost,
                    done,
                )
            )
            self.next_seq += 1
            episode = self._episode
            episode["return"] += float(reward)
            episode["length"] += 1
            episode["failure"] |= failed
            episode["cost"] += cost
            self._obs = next_obs
            if done:
                episodes.append({**episode, "index": len(rows) - 1, "runner": self.runner_id})
                self._episode = {"return": 0.0, "length": 0, "failure": False, "cost": 0.0}
                self._obs, _ = env.reset()
        seconds = time.perf_counter() - start
        seq, obs, action, reward, next_obs, terminated, cost, done = (np.asarray(c) for c in zip(*rows))
        return {
            "runner": self.runner_id,
            "seq": seq,
            "obs": obs,
            "action": action,
            "reward": reward,
            "next_obs": next_obs,
            "terminated": terminated,
            "cost": cost,
            "done": done,
            "episodes": episodes,
            "seconds": seconds,
            "version": self.version,
            "pid": os.getpid(),
        }

    def _sync(self, reply: dict[str, Any]) -> None:
        self.learner_steps = int(reply["total_steps"])
        if reply["version"] <= self.version:
            return
        payload = fetch(reply)
        self.agent.actor.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in payload["actor"].items()})
        self.version = int(payload["version"])


class SACLagrangianLearner:
    """The central learner: one ``SACLagrangian``, fed by every rollout worker.

    At construction a checkpoint in ``checkpoint_dir`` wins (a restarted learner resumes from
    it), then ``init_checkpoint`` (a single-process agent's checkpoint), else a fresh agent.
    The replay buffer is not checkpointed (as in the single-process agent), so a restarted
    learner refills it.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: SACLagrangianConfig,
        *,
        seed: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        init_checkpoint: str | os.PathLike | None = None,
        broadcast_every: int = 1,
        torch_threads: int | None = 1,
    ):
        if int(broadcast_every) < 1:
            raise ValueError(f"broadcast_every must be a positive integer, got {broadcast_every!r}")
        if checkpoint_every and checkpoint_dir is None:
            raise ValueError("checkpoint_every > 0 needs checkpoint_dir=... (where the learner saves itself)")
        set_actor_threads(torch_threads)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every, self.broadcast_every = int(checkpoint_every), int(broadcast_every)
        spaces = (observation_space, action_space)
        saved = None if self.checkpoint_dir is None else RunnerLedger.load(self.checkpoint_dir)
        self.ledger, self.restored_from = saved or RunnerLedger(), None
        if saved is not None:
            self.agent = SACLagrangian.load(self.checkpoint_dir / AGENT_DIR, spaces, seed=seed)
            self.restored_from = str(self.checkpoint_dir)
        elif init_checkpoint is not None:
            self.agent = SACLagrangian.load(init_checkpoint, spaces, seed=seed)
        else:
            self.agent = SACLagrangian(observation_space, action_space, config, seed=seed)
        self.publisher = Publisher(self.checkpoint_dir)
        self.timing = {"learn_s": 0.0, "add_calls": 0}
        self._last_checkpoint = self.agent.num_updates
        self._publish()

    @property
    def version(self) -> int:
        return self.publisher.version

    def register(self, runner_id: str) -> dict[str, Any]:
        return {"next_seq": self.ledger.next_seq(runner_id), **self.weights()}

    def add(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """Store a worker's chunk, learn on the single-process schedule, close its episodes (β steps)."""
        self.timing["add_calls"] += 1
        start = time.perf_counter()
        agent, cfg = self.agent, self.agent.config
        runner = str(chunk["runner"])
        ends = {episode["index"]: episode for episode in chunk["episodes"]}
        records = []
        for j, seq in enumerate(np.asarray(chunk["seq"], dtype=np.int64)):
            if not self.ledger.accept(runner, seq):
                continue
            agent.observe(
                chunk["obs"][j],
                chunk["action"][j],
                float(chunk["reward"][j]),
                chunk["next_obs"][j],
                bool(chunk["terminated"][j]),
                cost=float(chunk["cost"][j]),
            )
            if (
                agent.total_steps >= cfg.learning_starts
                and agent._can_update()
                and agent.total_steps % cfg.train_every == 0
            ):
                for _ in range(cfg.gradient_steps):
                    agent.update()
            if j in ends:
                episode = ends[j]
                result = {
                    "step": agent.total_steps,
                    "return": episode["return"],
                    "length": episode["length"],
                    "failure": episode["failure"],
                    "runner": episode["runner"],
                }
                agent._episode_end(result, episode["cost"])
                records.append(result)
        self.timing["learn_s"] += time.perf_counter() - start
        if agent.num_updates - self._published_updates >= self.broadcast_every:
            self._publish()
        if self.checkpoint_every and agent.num_updates - self._last_checkpoint >= self.checkpoint_every:
            self.save()
        return {**self.weights(), "records": records}

    def weights(self) -> dict[str, Any]:
        return {**self.publisher.reply(), "total_steps": self.agent.total_steps}

    def stats(self) -> dict[str, Any]:
        agent = self.agent
        return {
            "version": self.version,
            "total_steps": agent.total_steps,
            "num_updates": agent.num_updates,
            "buffer_len": len(agent.buffer),
            "beta": agent.beta,
            "runners": self.ledger.runners,
            "restored_from": self.restored_from,
            "publish_s": self.publisher.seconds,
            **self.timing,
        }

    def get_agent(self) -> SACLagrangian:
        return self.agent

    def save(self, path: str | os.PathLike | None = None) -> str:
        """Checkpoint: ``path/agent`` is a plain ``SACLagrangian`` checkpoint; ``path/learner.json`` the ledger."""
        root = checkpoint_root(path, self.checkpoint_dir)
        self.agent.save(root / AGENT_DIR)
        self.ledger.save(root)
        self._last_checkpoint = self.agent.num_updates
        return str(root / AGENT_DIR)

    def _publish(self) -> None:
        actor = self.agent.actor
        self.publisher.publish(
            lambda version: {
                "version": version,
                "actor": {k: v.detach().cpu().numpy().copy() for k, v in actor.state_dict().items()},
            }
        )
        self._published_updates = self.agent.num_updates


class DistributedSACLagrangian:
    """SAC-Lagrangian trained by ``num_runners`` rollout actors and one learner actor.

    Example (Ray started, e.g. ``ss_ray.init(num_cpus=2)``)::

        algo = ss_ray.DistributedSACLagrangian("Pendulum-v1", SACLagrangianConfig(), num_runners=2, seed=0)
        records = algo.learn(10_000)
        algo.save("runs/sacl")  # SACLagrangian.load("runs/sacl/agent") reads it

    ``rollout_steps``: env steps per chunk (a worker syncs its policy once per chunk).
    ``checkpoint_dir`` + ``checkpoint_every`` (gradient steps): where a restarted learner resumes.
    A dead rollout worker is restarted by Ray and its chunk is requested again; a dead learner
    restarts from its last checkpoint and receives the chunk it was processing again.
    """

    def __init__(
        self,
        env: str | Callable[..., gym.Env],
        config: SACLagrangianConfig | None = None,
        *,
        num_runners: int = 2,
        seed: int = 0,
        env_kwargs: dict[str, Any] | None = None,
        rollout_steps: int = 64,
        broadcast_every: int = 1,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        init_checkpoint: str | os.PathLike | None = None,
        runner_resources: dict[str, Any] | None = None,
        learner_resources: dict[str, Any] | None = None,
        max_restarts: int = -1,
    ):
        config = SACLagrangianConfig() if config is None else config
        if not isinstance(config, SACLagrangianConfig):
            raise TypeError(f"config must be a SACLagrangianConfig, got {type(config).__name__}")
        if int(num_runners) < 1 or int(rollout_steps) < 1:
            raise ValueError(
                f"num_runners and rollout_steps must be positive, got {num_runners!r} and {rollout_steps!r}"
            )
        if not ray.is_initialized():
            raise RuntimeError("start Ray first: safeshield.integrations.ray.init() (local) or init(address=...)")
        self.env_spec = EnvSpec(env, dict(env_kwargs or {}))
        probe = self.env_spec.make()
        spaces = (probe.observation_space, probe.action_space)
        probe.close()
        if init_checkpoint is not None:  # the checkpoint's config wins, as in SACLagrangian.load
            config = SACLagrangian.load(init_checkpoint, spaces).config
        self.config, self.seed, self.rollout_steps = config, int(seed), int(rollout_steps)
        learner_options = {"max_restarts": max_restarts, "max_task_retries": -1 if max_restarts else 0}
        self.learner = remote(
            SACLagrangianLearner, resources=learner_resources or {"num_cpus": 0}, **learner_options
        ).remote(
            *spaces,
            config,
            seed=seed,
            checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
            checkpoint_every=checkpoint_every,
            init_checkpoint=None if init_checkpoint is None else str(init_checkpoint),
            broadcast_every=broadcast_every,
        )
        worker = remote(SACRolloutWorker, resources=runner_resources or {"num_cpus": 1}, max_restarts=max_restarts)
        self.workers = [
            worker.remote(self.env_spec, config, self.learner, f"worker-{i}", seed=self.seed + 1 + i)
            for i in range(int(num_runners))
        ]
        self.restarts = 0  # rollout chunks lost to a dead worker and requested again

    def learn(self, total_steps: int, *, callback: Callable[[dict], Any] | None = None) -> list[dict]:
        """Collect exactly ``total_steps`` env steps across the workers; return the episode records."""
        total_steps = int(total_steps)
        launched, records = 0, []
        weights = ray.get(self.learner.weights.remote())
        futures: dict[Any, tuple[int, int]] = {}  # chunk ref -> (worker index, steps asked)

        def launch(index: int) -> None:
            nonlocal launched
            n = min(self.rollout_steps, total_steps - launched)
            if n > 0:
                futures[self.workers[index].rollout.remote(n, weights)] = (index, n)
                launched += n

        for index in range(len(self.workers)):
            launch(index)
        while futures:
            ready, _ = ray.wait(list(futures), num_returns=1)
            index, asked = futures.pop(ready[0])
            try:
                chunk = ray.get(ready[0])
            except ray.exceptions.RayActorError:  # the worker died: Ray restarts it; ask again
                self.restarts += 1
                launched -= asked
                launch(index)
                continue
            weights = ray.get(self.learner.add.remote(chunk))
            for record in weights.pop("records"):
                records.append(record)
                if callback is not None:
                    callback(record)
            launch(index)
        return records

    def save(self, path: str | os.PathLike) -> str:
        """Write the learner's agent as a ``SACLagrangian`` checkpoint (``path/agent``) plus counters."""
        return ray.get(self.learner.save.remote(str(path)))

    @classmethod
    def load(
        cls, path: str | os.PathLike, env: str | Callable[..., gym.Env], **kwargs: Any
    ) -> DistributedSACLagrangian:
        """Continue from a ``SACLagrangian`` checkpoint (single-process or a distributed run's ``path/agent``)."""
        return cls(env, init_checkpoint=path, **kwargs)

    def agent(self) -> SACLagrangian:
        """A copy of the learner's agent (its weights, β, counters and replay buffer)."""
        return ray.get(self.learner.get_agent.remote())

    def stats(self) -> dict[str, Any]:
        return ray.get(self.learner.stats.remote())

    def shutdown(self) -> None:
        for handle in (*self.workers, self.learner):
            ray.kill(handle, no_restart=True)
