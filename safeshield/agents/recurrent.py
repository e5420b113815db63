"""Recurrent SAC-Lagrangian: a GRU trunk with stored-state sequence replay.

- ``SequenceBuffer``: a ring buffer of transitions with the actor's GRU state and an episode id per
  step; samples windows of ``sequence_length`` steps masked at the first episode boundary.
- ``RecurrentSACLagrangianConfig`` / ``RecurrentSACLagrangian``: ``SACLagrangian`` whose heads
  (actor, Q1, Q2, Q_c) read the features of a GRU run over the observation history.

Paper: Knight & Achiam (2021), "Safely Transferring to Unsafe Environments with Constrained Reinforcement Learning",
§2.1 and App. A (Tab. 2-3): a GRU between the observation encoder and the policy and Q MLPs;
recurrent states from the actors' rollouts are stored and loaded into the learner (stored-state
replay, as in R2D2), no burn-in, backprop horizon 30. Algorithm 1's losses are those of
``sac_lagrangian`` applied at every step of each replayed sequence:

    h_k = GRU(o_k, h_{k−1}), h_{−1} = stored state at the window start
    Q_i, Q_c on (h_k, a_k); targets on the target trunk's h'_k = GRU'(o'_k, h'_{k−1})
    π on h_k (detached): maximise min_i Q_i − α log π − β Q_c.

Where this differs from the paper, and why:
- The trunk is trained by the critic losses only and the actor reads detached features (the
  common shared-encoder rule, e.g. SAC-AE); the paper does not say how gradients are shared.
- The next-state feature of step k is one GRU step on o'_k from h_k, so a window's last step and a
  time-limit truncation both bootstrap from their true next observation.
- No CNN tower: the trunk reads the flat observation (state or a small flattened depth image);
  widths are CPU-sized (``gru_hidden`` 64, MLP 64x64 by default, Tab. 2 implies ~200 and ~512).
- ``batch_size`` counts sequences: 8 windows of 30 steps ≈ the paper's 256 (the paper is ambiguous).
- Windows start anywhere in the buffer; steps after the start episode's last step are masked
  out of every loss (they never cross an episode boundary).
- ``sample_actions`` (a shield's policy sampler) is not supported: the policy needs a history.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from safeshield.agents.optim import adam
from safeshield.agents.sac_lagrangian import SACLagrangian, SACLagrangianConfig
from safeshield.core.networks import to_device
from safeshield.core.validation import check_count

__all__ = ["SequenceBuffer", "RecurrentSACLagrangian", "RecurrentSACLagrangianConfig"]


class SequenceBuffer:
    """FIFO ring of steps ``(obs, action, reward, cost, next_obs, terminated, hidden, episode)``."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, hidden_dim: int):
        if int(capacity) <= 0:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, obs_dim), np.float32)
        self.action = np.zeros((self.capacity, act_dim), np.float32)
        self.reward = np.zeros(self.capacity, np.float32)
        self.cost = np.zeros(self.capacity, np.float32)
        self.next_obs = np.zeros((self.capacity, obs_dim), np.float32)
        self.terminated = np.zeros(self.capacity, np.float32)
        self.hidden = np.zeros((self.capacity, hidden_dim), np.float32)
        self.episode = np.zeros(self.capacity, np.int64)
        self.total_added = 0

    def __len__(self) -> int:
        return min(self.total_added, self.capacity)

    def add(self, obs, action, reward, cost, next_obs, terminated, hidden, episode: int) -> None:
        i = self.total_added % self.capacity
        self.obs[i], self.action[i], self.reward[i], self.cost[i] = obs, action, reward, cost
        self.next_obs[i], self.terminated[i], self.hidden[i], self.episode[i] = next_obs, terminated, hidden, episode
        self.total_added += 1

    def clear(self) -> None:
        self.total_added = 0

    def sample(self, batch_size: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch_size`` windows of ``length`` consecutive steps, each ``[B, L, ...]``, plus ``mask[B, L]``.

        ``mask`` is 1 while a step belongs to the window's first episode and 0 from the first
        step of another episode on; ``hidden[B, H]`` is the GRU state stored at each window start.
        """
        if len(self) < length:
            raise ValueError(f"the buffer holds {len(self)} steps, fewer than one window of {length}")
        oldest = self.total_added - len(self)
        starts = rng.integers(oldest, self.total_added - length + 1, size=int(batch_size))
        rows = (starts[:, None] + np.arange(length)) % self.capacity
        episode = self.episode[rows]
        mask = np.cumprod(episode == episode[:, :1], axis=1).astype(np.float32)
        return {
            "obs": self.obs[rows],
            "action": self.action[rows],
            "reward": self.reward[rows],
            "cost": self.cost[rows],
            "next_obs": self.next_obs[rows],
            "terminated": self.terminated[rows],
            "hidden": self.hidden[rows[:, 0]],
            "mask": mask,
            "rows": rows,
        }


@dataclass(frozen=True)
class RecurrentSACLagrangianConfig(SACLagrangianConfig):
    """``SACLagrangianConfig`` plus the recurrent trunk; ``batch_size`` counts sequences here."""

    gru_hidden: int = 64  # our choice for CPU (Tab. 2's 4.3e5-parameter GRU implies ~200)
    sequence_length: int = 30  # Knight & Achiam Tab. 3: backprop horizon 30
    batch_size: int = 8  # our choice: 8 x 30 steps ≈ Tab. 3's batch of 256
    hidden: tuple[int, ...] = (64, 64)  # our choice for CPU (Tab. 2 implies ~512-wide MLPs)
    buffer_size: int = 200_000  # our choice (Tab. 3: learner replay 2e6 across 60 actors)

    def __post_init__(self):
        super().__post_init__()
        check_count("RecurrentSACLagrangianConfig.gru_hidden", self.gru_hidden)
        check_count("RecurrentSACLagrangianConfig.sequence_length", self.sequence_length)


class RecurrentSACLagrangian(SACLagrangian):
    """SAC-Lagrangian on GRU features of the observation history, trained from stored-state sequences.

    Example:
        >>> import gymnasium as gym
        >>> from safeshield.agents.recurrent import RecurrentSACLagrangian, RecurrentSACLagrangianConfig
        >>> env = gym.make("Pendulum-v1")
        >>> config = RecurrentSACLagrangianConfig(gru_hidden=16, hidden=(16,), learning_starts=100)
        >>> agent = RecurrentSACLagrangian(env.observation_space, env.action_space, config, seed=0)
        >>> [r["length"] for r in agent.learn(env, 400, seed=0, progress=False)]
        [200, 200]

    ``learn`` resets the GRU state at every episode start; outside ``learn`` call
    ``reset_state()`` when a new episode begins (``act`` advances the state).
    """

    kind = "agent/recurrent_sac_lagrangian"
    config_key = "recurrent_sac_lagrangian"
    config_class = RecurrentSACLagrangianConfig

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: RecurrentSACLagrangianConfig = RecurrentSACLagrangianConfig(),
        *,
        seed: int | None = None,
        device: str | torch.device = "cpu",
    ):
        if not isinstance(config, RecurrentSACLagrangianConfig):
            raise TypeError(
                f"RecurrentSACLagrangian requires a RecurrentSACLagrangianConfig, got {type(config).__name__}"
            )
        if not isinstance(observation_space, gym.spaces.Box):
            raise TypeError(f"RecurrentSACLagrangian requires a Box observation_space, got {observation_space!r}")
        features = gym.spaces.Box(-np.inf, np.inf, (config.gru_hidden,), np.float32)
        super().__init__(features, action_space, config, seed=seed, device=device)  # heads read GRU features
        self.observation_space = observation_space
        self.input_dim = int(np.prod(observation_space.shape))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence(seed).generate_state(5)[4]))
            self.gru = to_device(nn.GRU(self.input_dim, config.gru_hidden, batch_first=True), self.device)
        self.gru_target = copy.deepcopy(self.gru)
        for p in self.gru_target.parameters():
            p.requires_grad_(False)
        self.trunk_params = list(self.gru.parameters())
        self.trunk_optimizer = adam(self.trunk_params, config.lr)
        self.buffer = SequenceBuffer(config.buffer_size, self.input_dim, self.act_dim, config.gru_hidden)
        self.episode_id = 0
        self.state = torch.zeros(1, 1, config.gru_hidden, device=self.device)  # h before the next act()
        self._state_used = self.state  # h the last act() started from (stored with its transition)

    def reset_state(self) -> None:
        """Zero the GRU state and start a new episode id (windows never join two ids)."""
        self.state = torch.zeros_like(self.state)
        self.episode_id += 1

    # ------------------------------------------------------------------ acting
    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Advance the GRU on ``obs`` and act on its new state (uniform during warm-up, as SAC)."""
        flat = self._check_obs(obs)
        self._state_used = self.state
        features, self.state = self.gru(torch.as_tensor(flat, device=self.device).view(1, 1, -1), self.state)
        if not deterministic and self.total_steps < self.config.learning_starts:
            action = self.rng.uniform(self._low_np, self._high_np)
        else:
            mean, log_std = self.actor.dist_params(features[:, 0])
            if not deterministic:
                mean = mean + log_std.exp() * torch.randn(mean.shape, generator=self.generator, device=self.device)
            action = self._to_env_units(torch.tanh(mean))[0].cpu().numpy()
        return action.astype(self.action_space.dtype).reshape(self.action_space.shape)

    def sample_actions(self, obs, n, generator=None):
        raise TypeError(
            "RecurrentSACLagrangian cannot sample actions for a bare observation: its policy needs the history"
        )

    def observe(self, obs, action, reward: float, next_obs, terminated: bool, cost: float = 0.0) -> None:
        """Store one step with the GRU state the last ``act`` started from and the episode id."""
        executed = np.asarray(action, dtype=np.float32).reshape(-1)
        if executed.size != self.act_dim or not np.all(np.isfinite(executed)):
            raise ValueError(f"action must be {self.act_dim} finite numbers (env units), got {action!r}")
        if not (np.isfinite(float(reward)) and np.isfinite(float(cost)) and float(cost) >= 0.0):
            raise ValueError(f"reward must be finite and cost finite and >= 0, got {reward!r}, {cost!r}")
        hidden = self._state_used.reshape(-1).cpu().numpy()
        self.buffer.add(
            self._check_obs(obs, "obs"),
            executed,
            float(reward),
            float(cost),
            self._check_obs(next_obs, "next_obs"),
            bool(terminated),
            hidden,
            self.episode_id,
        )
        self.total_steps += 1

    def _can_update(self) -> bool:
        return len(self.buffer) >= self.config.sequence_length

    def learn(self, env: gym.Env, total_steps: int, **kwargs: Any) -> list[dict]:
        """``SAC.learn`` with the GRU state reset at every episode start."""
        self.reset_state()
        return super().learn(env, total_steps, **kwargs)

    def _episode_end(self, record: dict, episode_cost: float) -> None:
        super()._episode_end(record, episode_cost)
        self.reset_state()

    # ------------------------------------------------------------------ learning
    def _features(self, gru: nn.GRU, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``h_k`` of every step and ``h'_k`` of its next observation, each ``[B * L, H]``."""
        hidden = batch["hidden"].unsqueeze(0).contiguous()
        features, _ = gru(batch["obs"], hidden)
        flat = features.reshape(-1, features.shape[-1])
        next_features, _ = gru(batch["next_obs"].reshape(flat.shape[0], 1, -1), flat.unsqueeze(0).contiguous())
        return flat, next_features[:, 0]

    def _sample_batch(self) -> dict[str, torch.Tensor]:
        """``batch_size`` stored-state windows as tensors, with the mask of the steps that count."""
        cfg = self.config
        if len(self.buffer) < cfg.sequence_length:
            raise RuntimeError(f"update() needs at least {cfg.sequence_length} stored steps")
        raw = self.buffer.sample(cfg.batch_size, cfg.sequence_length, self.rng)
        keys = ("obs", "action", "reward", "cost", "next_obs", "terminated", "hidden")
        batch = {k: torch.from_numpy(raw[k]).to(self.device) for k in keys}
        batch["valid"] = torch.from_numpy(raw["mask"]).reshape(-1).bool()
        return batch

    def _critic_update(
        self, batch: dict[str, torch.Tensor], alpha: torch.Tensor
    ) -> tuple[dict[str, float], torch.Tensor]:
        """Q1, Q2, Q_c and the GRU trunk in one step on every unmasked step; the actor reads detached features."""
        cfg = self.config
        valid = batch["valid"]
        flat = {k: batch[k].reshape(valid.shape[0], -1)[valid] for k in ("action", "reward", "cost", "terminated")}
        action = (flat["action"] - self._act_center) / self._act_scale
        reward, cost, done = flat["reward"][:, 0], flat["cost"][:, 0], flat["terminated"][:, 0]
        features, next_features = (x[valid] for x in self._features(self.gru, batch))
        with torch.no_grad():
            _, target_next = (x[valid] for x in self._features(self.gru_target, batch))
            next_action, next_log_pi = self.actor(next_features.detach(), self.generator)
            next_q = torch.min(self.q1_target(target_next, next_action), self.q2_target(target_next, next_action))
            y = reward + cfg.gamma * (1.0 - done) * (next_q - alpha * next_log_pi)
            y_c = self.cost_target(cost, target_next, next_action, done)
        q1, q2, qc = self.q1(features, action), self.q2(features, action), self.qc(features, action)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        cost_loss = F.mse_loss(qc, y_c)
        optimizers = (self.critic_optimizer, self.qc_optimizer, self.trunk_optimizer)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        (critic_loss + cost_loss).backward(inputs=[*self.critic_params, *self.qc_params, *self.trunk_params])
        for optimizer in optimizers:
            optimizer.step()
        info = {
            "critic_loss": float(critic_loss.detach()),
            "q": float(q1.detach().mean()),
            "cost_critic_loss": float(cost_loss.detach()),
            "qc": float(qc.detach().mean()),
            "steps": int(valid.sum()),
        }
        return info, features.detach()

    def _target_pairs(self) -> tuple[tuple[nn.Module, nn.Module], ...]:
        return (*super()._target_pairs(), (self.gru, self.gru_target))

    # ------------------------------------------------------------------ checkpoints
    def _modules(self) -> dict[str, nn.Module]:
        return {**super()._modules(), "gru": self.gru, "gru_target": self.gru_target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super()._optimizers(), "trunk": self.trunk_optimizer}
