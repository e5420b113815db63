"""TRPO-Lagrangian: CSC's policy learner (natural gradient under a KL trust region, plus a dual λ).

- ``TRPOLagrangianConfig``: every hyper-parameter, each citing its source.
- ``TRPOLagrangian``: the agent (``act``, ``sample_actions``, ``update``, ``learn``, ``save``/``load``).

Paper: Bharadhwaj et al., "Conservative Safety Critics for Exploration" (seed
arXiv:2010.14497), §4 and App. A.1–A.2, A.6
Per epoch (Alg. 1 lines 11–16), on the epoch's rollouts from π_old:

1. A_R by GAE on the learned V_R; Â_C(s, a) = Q_C(s, a) − E_{a'∼π_old}[Q_C(s, a')] from the
   shield's conservative critic (``cost_critic``), with ``cost_samples`` draws of a'.
2. The modified advantage Ã = A_R − λ' Â_C, λ' = λ / (1 − γ) (Eq. 5).
3. Natural-gradient step (Eqs. 6–8): g = ∇ E[π/π_old · Ã], x = F⁻¹ g by conjugate gradient on
   Fisher-vector products, φ = φ_old + β_j √(2δ / xᵀFx) x, with backtracking β_j = β0^(j+1),
   β0 = 0.7, j < L = 20; a step is accepted when mean KL(π_old ‖ π) ≤ δ = 0.01, otherwise
   φ stays φ_old.
4. V_R regression on the reward-to-go (Adam).
5. Dual step (Eq. 9, **standard sign**), through the package's one ``LagrangeMultiplier``:

       λ ← max(0, λ + η_λ (V̂_C + E_{s,a∼π_old}[Â_C] / (1 − γ) − χ)),   η_λ = 4e-2,

   V̂_C = the epoch's failures per finished episode. The paper prints λ ← λ − η_λ(…) (Eq. 9 /
   Eq. 57): with that sign λ would *shrink* exactly when the agent fails more than χ
   (``docs/csc.md``); ``tests/agents/test_trpo_lagrangian.py`` pins the standard sign.

Without a ``cost_critic`` the agent is plain TRPO (CSC's "Base" baseline): λ stays at its value
and Ã = A_R.

Where this differs from the paper, and why:

- Backtracking: the printed recursion β_{j+1} = β_j (1 − β_j)^j repeats β0 at j = 1 and then
  collapses (0.7, 0.7, 0.21, 0.13, 0.05, …); we use the geometric β0^(j+1), the usual reading.
- ``check_improvement`` (default on, our choice) also requires the surrogate to improve, as
  standard TRPO does; App. A.2 checks only the KL.
- The paper's Fisher step prints ∇J̃ᵀ F ∇J̃ in the step size; we use xᵀ F x = gᵀ F⁻¹ g (TRPO).
- Eqs. 48–49 fold λ'Â_C into every TD residual of a γ-discounted sum; Â_C is already a
  Q-advantage (it contains the future), so summing it along the trajectory counts the future
  twice. We subtract λ'Â_C(s_t, a_t) once per step, as Eq. 5 states. GAE λ = 0.97 (our choice)
  where Eqs. 48–49 use the plain discounted sum (λ = 1; set ``gae_lambda=1``).
- Actions: the Gaussian is unbounded; the env executes the action clipped to its Box, and the
  rollout stores the *executed* action (the shield's when it intervened), whose log-probability
  under π_old enters the ratio. Shield candidates are draws of π_old (``sample_actions``), so
  the stored actions stay samples of π_old restricted to the safe set, as in Alg. 1.
- No entropy bonus (Alg. 1 l.12 calls it optional and gives no coefficient).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from safeshield.agents.lagrange import LagrangeMultiplier
from safeshield.agents.policy_gradient import (
    GaussianPolicy,
    RolloutBuffer,
    conjugate_gradient,
    flat_grad,
    flat_parameters,
    kl_divergence,
    set_flat_parameters,
)
from safeshield.core.checkpoint import restore, save_checkpoint, space_signature
from safeshield.core.networks import mlp
from safeshield.core.validation import check_count, check_interval, check_positive, check_widths

__all__ = ["TRPOLagrangian", "TRPOLagrangianConfig"]

CostCritic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``q_c(obs[B, d], actions[B, a]) -> Q_C[B]``, e.g. ``env.safety_model.q_c`` of a CSC shield."""


@dataclass(frozen=True)
class TRPOLagrangianConfig:
    """Hyper-parameters of ``TRPOLagrangian``; each default names its source."""

    gamma: float = 0.99  # CSC App. A.6
    gae_lambda: float = 0.97  # our choice (Safety-Gym's TRPO-Lagrangian); CSC Eqs. 48-49 are λ = 1
    max_kl: float = 0.01  # CSC App. A.6 (δ)
    backtrack_coef: float = 0.7  # CSC App. A.6 (β^(0))
    backtrack_iters: int = 20  # CSC App. A.6 (L)
    check_improvement: bool = True  # our choice: standard TRPO's acceptance test (A.2 checks KL only)
    cg_iters: int = 10  # our choice: Schulman et al. 2015
    cg_damping: float = 0.1  # our choice: Spinning Up's TRPO
    hidden: tuple[int, ...] = (64, 64)  # our choice: Spinning Up's TRPO (tanh); CSC silent
    init_log_std: float = -0.5  # our choice: Spinning Up's Gaussian policy
    vf_lr: float = 1e-3  # our choice: Spinning Up's TRPO
    vf_iters: int = 40  # our choice: Spinning Up uses 80; halved for CPU budgets
    steps_per_epoch: int = 1000  # our choice: two 500-step episodes (CSC's M, N not given)
    chi: float = 0.05  # CSC Fig. 6 caption (χ = 0.05 for every baseline)
    lambda_lr: float = 4e-2  # CSC App. A.6 (η_λ)
    lambda_init: float = 0.0  # our choice (CSC silent)
    cost_samples: int = 8  # our choice: draws of π_old for E_{a'}[Q_C(s, a')] in Â_C
    normalize_advantages: bool = True  # our choice: standard practice for TRPO

    def __post_init__(self) -> None:
        check_interval("gamma", self.gamma, 0.0, 1.0, closed="neither")
        check_interval("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_interval("backtrack_coef", self.backtrack_coef, 0.0, 1.0, closed="neither")
        for name in ("max_kl", "cg_damping", "vf_lr"):
            check_positive(name, getattr(self, name))
        for name in ("backtrack_iters", "cg_iters", "vf_iters", "steps_per_epoch", "cost_samples"):
            check_count(name, getattr(self, name))
        check_interval("chi", self.chi, 0.0, 1.0, closed="left")
        check_positive("lambda_lr", self.lambda_lr, allow_zero=True)
        check_positive("lambda_init", self.lambda_init, allow_zero=True)
        check_widths("hidden", self.hidden)


class TRPOLagrangian:
    """TRPO with CSC's Lagrangian cost advantage (plain TRPO without a ``cost_critic``).

    Example:
        >>> import gymnasium as gym, safeshield
        >>> from safeshield.agents import TRPOLagrangian, TRPOLagrangianConfig
        >>> env = safeshield.wrap(gym.make("safeshield/PointTraps-v0"), "csc")
        >>> agent = TRPOLagrangian.for_env(env, TRPOLagrangianConfig(steps_per_epoch=200), seed=0)
        >>> env.attach_policy(agent.sample_actions)       # CSC resamples from π_old
        >>> agent.set_cost_critic(env.safety_model.q_c)         # Â_C from the conservative critic
        >>> records = agent.learn(env, 200, progress=False)
        >>> agent.epochs
        1
    """

    kind = "agent/trpo_lagrangian"

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: TRPOLagrangianConfig | None = None,
        cost_critic: CostCritic | None = None,
        seed: int | None = None,
    ):
        if not isinstance(action_space, gym.spaces.Box) or not action_space.is_bounded("both"):
            raise TypeError(f"TRPOLagrangian requires a bounded Box action space, got {action_space}")
        config = config if config is not None else TRPOLagrangianConfig()
        if not isinstance(config, TRPOLagrangianConfig):
            raise TypeError(f"config must be a TRPOLagrangianConfig, got {type(config).__name__}")
        self.config = config
        self.observation_space, self.action_space = observation_space, action_space
        self.obs_dim = int(gym.spaces.flatdim(observation_space))
        self.act_dim = int(gym.spaces.flatdim(action_space))
        self.low = torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1)
        self.high = torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1)
        self.generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.policy = GaussianPolicy(self.obs_dim, self.act_dim, config.hidden, config.init_log_std)
            self.value = mlp(self.obs_dim, 1, config.hidden, activation=nn.Tanh)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=config.vf_lr)
        self.multiplier = LagrangeMultiplier(limit=config.chi, lr=config.lambda_lr, init=config.lambda_init)
        self.cost_critic = cost_critic
        self.rollout = RolloutBuffer(
            config.steps_per_epoch, self.obs_dim, self.act_dim, config.gamma, config.gae_lambda
        )
        self.v_hat = config.chi  # failures per episode of the last epoch (CSC's V̂_C, initialised to χ)
        self.epochs = 0
        self.total_steps = 0

    @classmethod
    def for_env(cls, env: gym.Env, config: TRPOLagrangianConfig | None = None, **kwargs) -> TRPOLagrangian:
        return cls(env.observation_space, env.action_space, config, **kwargs)

    # -- acting ---------------------------------------------------------------------------------------
    @property
    def lam(self) -> float:
        """The dual variable λ ≥ 0."""
        return self.multiplier.value

    def set_cost_critic(self, cost_critic: CostCritic | None) -> None:
        """Attach Q_C (e.g. ``env.safety_model.q_c``); ``None`` makes the agent plain TRPO again."""
        self.cost_critic = cost_critic

    def _obs_tensor(self, obs) -> torch.Tensor:
        array = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        if not np.isfinite(array).all():
            raise ValueError(f"observation contains NaN or inf: {obs!r}")
        return torch.from_numpy(array)

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """One action for one observation, clipped to the action Box (env units)."""
        with torch.inference_mode():
            obs_t = self._obs_tensor(obs)
            action = self.policy.mean(obs_t) if deterministic else self.policy.sample(obs_t, 1, self.generator)[:, 0]
            action = torch.clamp(action[0], self.low, self.high)
        return action.numpy().reshape(self.action_space.shape)

    def sample_actions(self, obs, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(m, n, act_dim)`` clipped draws of π(·|s): a shield's policy sampler (CSC Alg. 1 l.6)."""
        with torch.no_grad():
            obs_t = obs if isinstance(obs, torch.Tensor) else self._obs_tensor(obs)
            drawn = self.policy.sample(obs_t.reshape(-1, self.obs_dim).float(), int(n), generator)
        return torch.clamp(drawn, self.low, self.high)

    # -- one epoch's update (Alg. 1 lines 11-16) -------------------------------------------------------
    def cost_advantage(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Â_C(s, a) = Q_C(s, a) − mean over ``cost_samples`` draws a' ∼ π_old of Q_C(s, a')."""
        k = self.config.cost_samples
        with torch.no_grad():
            q = self.cost_critic(obs, actions)
            drawn = self.sample_actions(obs, k, self.generator)
            q_pi = self.cost_critic(obs.repeat_interleave(k, 0), drawn.reshape(-1, self.act_dim)).reshape(-1, k)
        return (q - q_pi.mean(dim=1)).float()

    def update(self, data: dict[str, torch.Tensor], v_hat: float | None = None) -> dict[str, float]:
        """TRPO step on ``data`` (``obs``, ``action``, ``advantage``, ``ret``), V_R fit, then the dual step."""
        cfg = self.config
        if v_hat is not None:
            self.v_hat = float(v_hat)
        obs, actions, advantage = data["obs"], data["action"], data["advantage"].clone()
        stats: dict[str, float] = {"lambda": self.lam, "v_hat": self.v_hat}
        adv_c = None
        if self.cost_critic is not None:
            adv_c = self.cost_advantage(obs, actions)
            advantage = advantage - self.lam / (1.0 - cfg.gamma) * adv_c  # Ã = A_R − λ' Â_C (Eq. 5)
            stats["mean_cost_advantage"] = float(adv_c.mean())
        if cfg.normalize_advantages and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        stats.update(self.trpo_step(obs, actions, advantage))
        stats["value_loss"] = self._fit_value(obs, data["ret"])
        if adv_c is not None:
            # Eq. 9 with the standard sign (module docstring): λ grows when V̂_C + E[Â_C]/(1−γ) > χ
            self.multiplier.update(self.v_hat + float(adv_c.mean()) / (1.0 - cfg.gamma))
        stats["lambda_after"] = self.lam
        self.epochs += 1
        return stats

    def trpo_step(self, obs: torch.Tensor, actions: torch.Tensor, advantage: torch.Tensor) -> dict[str, float]:
        """One natural-gradient step with KL backtracking; parameters unchanged if no step is accepted."""
        cfg = self.config
        policy = self.policy
        with torch.no_grad():
            old_mean, old_log_std = policy.mean(obs), policy.log_std.detach().clone()
            old_log_prob = policy.log_prob(obs, actions)

        def surrogate() -> torch.Tensor:
            return (torch.exp(policy.log_prob(obs, actions) - old_log_prob) * advantage).mean()

        def fisher_product(vector: torch.Tensor) -> torch.Tensor:
            kl = kl_divergence(old_mean, old_log_std, policy, obs)
            grad_kl = flat_grad(kl, policy, create_graph=True)
            return flat_grad(grad_kl @ vector, policy) + cfg.cg_damping * vector

        surrogate_before = surrogate()
        gradient = flat_grad(surrogate_before, policy)
        old_surrogate = float(surrogate_before.detach())
        direction = conjugate_gradient(fisher_product, gradient, cfg.cg_iters)
        curvature = float(direction @ fisher_product(direction))
        if not math.isfinite(curvature) or curvature <= 0:
            return {"accepted": 0.0, "kl": 0.0, "backtracks": 0.0, "surrogate_gain": 0.0}
        full_step = math.sqrt(2 * cfg.max_kl / curvature) * direction
        start = flat_parameters(policy)
        for j in range(cfg.backtrack_iters):
            set_flat_parameters(policy, start + cfg.backtrack_coef ** (j + 1) * full_step)
            with torch.no_grad():
                kl = float(kl_divergence(old_mean, old_log_std, policy, obs))
                gain = float(surrogate()) - old_surrogate
            if math.isfinite(kl) and kl <= cfg.max_kl and (gain > 0 or not cfg.check_improvement):
                return {"accepted": 1.0, "kl": kl, "backtracks": float(j), "surrogate_gain": gain}
        set_flat_parameters(policy, start)
        return {"accepted": 0.0, "kl": 0.0, "backtracks": float(cfg.backtrack_iters), "surrogate_gain": 0.0}

    def _fit_value(self, obs: torch.Tensor, returns: torch.Tensor) -> float:
        loss = torch.zeros(())
        for _ in range(self.config.vf_iters):
            loss = ((self.value(obs).squeeze(-1) - returns) ** 2).mean()
            self.value_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.value_optimizer.step()
        return float(loss.detach())

    # -- the training loop -----------------------------------------------------------------------------
    def learn(
        self,
        env: gym.Env,
        total_steps: int,
        callback: Callable[[dict], None] | None = None,
        progress: bool = True,
        seed: int | None = None,
    ) -> list[dict[str, Any]]:
        """Collect ``steps_per_epoch`` steps, update, repeat; return one record per finished episode.

        Records are ``{step, return, length, failure, lambda, v_hat}``. Works on a bare env and on
        a shielded one (the executed action and the failure come from ``info["shield"]`` there).
        """
        from safeshield.core.progress import tqdm

        records: list[dict[str, Any]] = []
        recent = deque(maxlen=10)
        obs, _ = env.reset(seed=seed)
        episode_return, episode_length, episode_failed = 0.0, 0, False
        epoch_episodes, epoch_failures = 0, 0
        with tqdm(total=int(total_steps), desc="TRPO-Lagrangian", disable=not progress, leave=False) as bar:
            for _ in range(int(total_steps)):
                obs_t = self._obs_tensor(obs)
                with torch.no_grad():
                    action = torch.clamp(self.policy.sample(obs_t, 1, self.generator)[0, 0], self.low, self.high)
                    value = float(self.value(obs_t)[0, 0])
                next_obs, reward, terminated, truncated, info = env.step(
                    action.numpy().reshape(self.action_space.shape)
                )
                executed, failed = action.numpy(), bool(info.get("failure", False))
                shield = info.get("shield")
                if isinstance(shield, dict):
                    executed = np.asarray(shield.get("executed_action", executed), dtype=np.float32).reshape(-1)
                    failed |= float(shield.get("failure", 0.0)) > 0.5
                self.rollout.add(obs_t[0].numpy(), executed, float(reward), value)
                self.total_steps += 1
                episode_return += float(reward)
                episode_length += 1
                episode_failed |= failed
                obs = next_obs
                epoch_end = self.rollout.full
                if terminated or truncated or epoch_end:
                    last_value = 0.0 if terminated else float(self.value(self._obs_tensor(obs)).detach()[0, 0])
                    self.rollout.finish_path(last_value)
                if terminated or truncated:
                    record = {
                        "step": self.total_steps,
                        "return": episode_return,
                        "length": episode_length,
                        "failure": episode_failed,
                        "lambda": self.lam,
                        "v_hat": self.v_hat,
                    }
                    records.append(record)
                    recent.append(episode_return)
                    epoch_episodes += 1
                    epoch_failures += int(episode_failed)
                    if callback is not None:
                        callback(record)
                    bar.set_postfix(ret=f"{np.mean(recent):.2f}", lam=f"{self.lam:.3f}", refresh=False)
                    obs, _ = env.reset()
                    episode_return, episode_length, episode_failed = 0.0, 0, False
                if epoch_end:
                    v_hat = epoch_failures / epoch_episodes if epoch_episodes else None
                    self.update(self.rollout.get(), v_hat)
                    epoch_episodes, epoch_failures = 0, 0
                bar.update(1)
        return records

    # -- checkpoints --------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write policy, V_R, λ and the config (safetensors + JSON, atomic). The cost critic is the shield's."""
        tensors = {f"policy.{k}": v for k, v in self.policy.state_dict().items()}
        tensors.update({f"value.{k}": v for k, v in self.value.state_dict().items()})
        config = {
            "config": {**asdict(self.config), "hidden": list(self.config.hidden)},
            "observation_space": space_signature(self.observation_space),
            "action_space": space_signature(self.action_space),
            "state": {"lambda": self.lam, "v_hat": self.v_hat, "epochs": self.epochs, "total_steps": self.total_steps},
        }
        return save_checkpoint(path, tensors, config, kind=self.kind)

    @classmethod
    def load(cls, path, env: gym.Env | None = None, *, seed: int | None = None) -> TRPOLagrangian:
        """Rebuild a saved agent (``core.checkpoint.restore``); with ``env`` its spaces must match the saved ones."""

        def build(document, observation_space, action_space):
            saved = document["config"]
            config = TRPOLagrangianConfig(**{**saved, "hidden": tuple(saved["hidden"])})
            return cls(observation_space, action_space, config, seed=seed)

        def load_state(agent, tensors, document):
            state = document["state"]
            agent.policy.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("policy.")})
            agent.value.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("value.")})
            agent.multiplier.value = float(state["lambda"])
            agent.v_hat, agent.epochs = float(state["v_hat"]), int(state["epochs"])
            agent.total_steps = int(state["total_steps"])

        return restore(path, env, kind=cls.kind, build=build, load_state=load_state, required=("config", "state"))
