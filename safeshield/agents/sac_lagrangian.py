"""SAC-Lagrangian: Soft Actor-Critic with a cost critic and a Lagrange multiplier β on the cost.

- ``SACLagrangianConfig``: SAC's hyper-parameters plus the constraint's, each citing its source.
- ``SACLagrangian``: the agent (``SAC``'s API; ``observe`` takes the step's cost, ``learn``
  reads ``info["cost"]``, ``cost_value`` scores Q_c, ``beta`` is the multiplier).

Paper: Knight & Achiam (2021), "Safely Transferring to Unsafe Environments with Constrained
Reinforcement Learning", §2 and Algorithm 1 (App. D), "Lagrangian Actor-Critic (SAC-like)";
the paper's errors are listed in ``docs/transfer.md``. Per update, on a replay minibatch (d = done flag):

    Q1, Q2:  minimise E[(Q_i(s,a) − y)²],    y   = r + γ (1 − d)(min_i Q_i^targ(s',a') − α log π(a'|s'))
    Q_c:     minimise E[(Q_c(s,a) − y_c)²],  y_c = c + γ_c (1 − d) Q_c^targ(s',a')
    π:       maximise E[min_i Q_i(s, a_θ) − α log π(a_θ|s) − β Q_c(s, a_θ)]   (reparameterised)
    β:       projected dual step  β ← max(0, β + lr_β (C − d_limit))
    targets: Polyak averaging of Q1, Q2 and Q_c.

Where this differs from the paper (the cost backup, the unit of the cost limit, β's optimiser)
is in ``docs/transfer.md``.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from safeshield.agents.lagrange import LagrangeMultiplier
from safeshield.agents.optim import adam
from safeshield.agents.sac import SAC, SACConfig
from safeshield.core.networks import StateActionNet, to_device
from safeshield.core.validation import check_choice, check_count, check_interval, check_positive

__all__ = ["SACLagrangian", "SACLagrangianConfig"]

BETA_UPDATES = ("episodic", "critic")


@dataclass(frozen=True)
class SACLagrangianConfig(SACConfig):
    """Hyper-parameters of ``SACLagrangian``; SAC's fields keep their meaning (see ``SACConfig``)."""

    init_alpha: float = 0.005  # Knight & Achiam Tab. 3: α = 0.005
    learn_alpha: bool = False  # Knight & Achiam Tab. 3: α fixed (no auto-tuning mentioned)
    lr: float = 3e-4  # Knight & Achiam Tab. 3 (Adam, all networks)
    batch_size: int = 256  # Knight & Achiam Tab. 3
    cost_gamma: float = 0.99  # our choice: Ray et al.'s safety-starter-agents cost γ (paper silent)
    cost_limit: float = 0.01  # Knight & Achiam Tab. 3: c = 0.01 per time step
    beta_update: str = "episodic"  # our choice: OmniSafe SACLag (episodic cost); "critic" = Alg. 1 as printed
    beta_init: float = 0.0  # our choice: start unconstrained, like ν in SACConfig (paper silent)
    beta_lr: float = 1.0  # our choice: per-episode step on a per-step cost rate in [0, 1] (paper silent)
    beta_warmup_steps: int = 0  # our choice: OmniSafe's warm-up; 0 = update from the first episode
    cost_window: int = 10  # our choice: episodes in the recent-cost mean (OmniSafe uses a similar deque)

    def __post_init__(self):
        super().__post_init__()
        check_choice("SACLagrangianConfig.beta_update", self.beta_update, BETA_UPDATES)
        check_interval("SACLagrangianConfig.cost_gamma", self.cost_gamma, 0.0, 1.0, closed="left")
        for name in ("cost_limit", "beta_init", "beta_lr"):
            check_positive(f"SACLagrangianConfig.{name}", getattr(self, name), allow_zero=True)
        check_count("SACLagrangianConfig.beta_warmup_steps", self.beta_warmup_steps, minimum=0)
        check_count("SACLagrangianConfig.cost_window", self.cost_window)


class SACLagrangian(SAC):
    """SAC whose actor also minimises β·Q_c, with β raised while the cost exceeds the limit.

    Example:
        >>> import gymnasium as gym
        >>> from safeshield.agents import SACLagrangian, SACLagrangianConfig
        >>> env = gym.make("Pendulum-v1")   # no info["cost"]: every cost is 0, β stays 0
        >>> agent = SACLagrangian(env.observation_space, env.action_space, SACLagrangianConfig(hidden=(32, 32)), seed=0)
        >>> records = agent.learn(env, 400, seed=0, progress=False)
        >>> records[0]["cost"], agent.beta
        (0.0, 0.0)

    Episode records carry ``"cost"`` (the summed ``info["cost"]``) besides SAC's keys.
    ``save``/``load`` carry the cost critic, its target and β (the transfer protocol carries
    all of them, not the replay buffer).
    """

    kind = "agent/sac_lagrangian"
    config_key = "sac_lagrangian"
    config_class = SACLagrangianConfig

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: SACLagrangianConfig = SACLagrangianConfig(),
        *,
        seed: int | None = None,
        device: str | torch.device = "cpu",
    ):
        if not isinstance(config, SACLagrangianConfig):
            raise TypeError(f"SACLagrangian requires a SACLagrangianConfig, got {type(config).__name__}")
        super().__init__(observation_space, action_space, config, seed=seed, device=device)
        qc_seed = int(np.random.SeedSequence(seed).generate_state(4)[3])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(qc_seed)
            self.qc = to_device(StateActionNet(self.obs_dim, self.act_dim, config.hidden), self.device)
        self.qc_target = copy.deepcopy(self.qc)
        for p in self.qc_target.parameters():
            p.requires_grad_(False)
        self.qc_params = list(self.qc.parameters())
        self.qc_optimizer = adam(self.qc_params, config.lr)
        limit = config.cost_limit if config.beta_update == "episodic" else config.cost_limit / (1.0 - config.cost_gamma)
        self.beta_multiplier = LagrangeMultiplier(limit=limit, lr=config.beta_lr, init=config.beta_init)
        self.recent_cost_rates: deque[float] = deque(maxlen=config.cost_window)

    @property
    def beta(self) -> float:
        """β, the multiplier on Q_c in the actor objective (always ≥ 0)."""
        return self.beta_multiplier.value

    @beta.setter
    def beta(self, value: float) -> None:
        self.beta_multiplier.value = max(0.0, float(value))

    # ------------------------------------------------------------------ learning
    def _extra_critic_steps(self, batch: dict[str, torch.Tensor], next_action: torch.Tensor) -> dict[str, float]:
        """Algorithm 1's cost critic Q_c, on the batch and next actions the reward critics used."""
        qc, cost_critic_loss = self._cost_critic_step(batch, next_action)
        return {"qc": qc, "cost_critic_loss": cost_critic_loss}

    def _after_actor_update(self, info: dict[str, float]) -> None:
        """β: in ``"critic"`` mode, Alg. 1's gradient step on E[β (c − Q_c(s, a))] with the batch's mean Q_c."""
        if self.config.beta_update == "critic":
            self.beta_multiplier.update(info["qc"])
        info["beta"] = self.beta

    def _target_pairs(self) -> tuple[tuple[nn.Module, nn.Module], ...]:
        return (*super()._target_pairs(), (self.qc, self.qc_target))

    def cost_target(
        self, cost: torch.Tensor, next_obs: torch.Tensor, next_action: torch.Tensor, terminated: torch.Tensor
    ) -> torch.Tensor:
        """y_c = c + γ_c (1 − d) max(0, Q_c^targ(s', a')); ``next_action`` in [−1, 1] (critic units)."""
        with torch.no_grad():
            next_qc = self.qc_target(next_obs, next_action).clamp_min(0.0)
            return cost + self.config.cost_gamma * (1.0 - terminated) * next_qc

    def _cost_critic_step(self, batch, next_action) -> tuple[float, float]:
        target = self.cost_target(batch["cost"], batch["next_obs"], next_action, batch["terminated"])
        qc = self.qc(batch["obs"], batch["action"])
        loss = F.mse_loss(qc, target)
        self.qc_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=self.qc_params)
        self.qc_optimizer.step()
        return float(qc.detach().mean()), float(loss.detach())

    def _actor_loss(self, obs, new_action, log_pi, alpha) -> tuple[torch.Tensor, dict[str, float]]:
        """SAC's actor loss plus β · mean Q_c(s, a_θ(s)); with β = 0 it is SAC's loss exactly."""
        loss, info = super()._actor_loss(obs, new_action, log_pi, alpha)
        if self.beta > 0.0:
            loss = loss + self.beta * self.qc(obs, new_action).mean()
        return loss, info

    def _episode_end(self, record: dict, episode_cost: float) -> None:
        """Record the episode's cost; in ``"episodic"`` mode, one β step on the recent per-step cost rate."""
        record["cost"] = float(episode_cost)
        self.recent_cost_rates.append(float(episode_cost) / max(1, int(record["length"])))
        if self.config.beta_update == "episodic" and self.total_steps >= self.config.beta_warmup_steps:
            self.beta_multiplier.update(float(np.mean(self.recent_cost_rates)))

    @torch.inference_mode()
    def cost_value(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Q_c(s, a) for a batch ``obs[B, *obs_shape]``, ``action[B, act_dim]`` in env units."""
        obs_t = torch.as_tensor(np.asarray(obs, np.float32), device=self.device).reshape(-1, self.obs_dim)
        act_t = torch.as_tensor(np.asarray(action, np.float32), device=self.device).reshape(-1, self.act_dim)
        if obs_t.shape[0] != act_t.shape[0]:
            raise ValueError(f"obs and action need the same batch size, got {obs_t.shape[0]} and {act_t.shape[0]}")
        return self.qc(obs_t, (act_t - self._act_center) / self._act_scale).cpu().numpy()

    # ------------------------------------------------------------------ checkpoints
    def _multiplier_tensors(self) -> dict[str, torch.Tensor]:
        rates = torch.tensor(list(self.recent_cost_rates), dtype=torch.float64)
        return {
            **super()._multiplier_tensors(),
            "beta": torch.tensor(self.beta, dtype=torch.float64),
            "recent_cost_rates": rates,
        }

    def _load_multipliers(self, tensors: dict[str, torch.Tensor]) -> None:
        super()._load_multipliers(tensors)
        self.beta_multiplier.value = float(tensors["beta"])
        self.recent_cost_rates.extend(float(x) for x in tensors["recent_cost_rates"])

    def _modules(self) -> dict[str, nn.Module]:
        return {**super()._modules(), "qc": self.qc, "qc_target": self.qc_target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super()._optimizers(), "qc": self.qc_optimizer}
