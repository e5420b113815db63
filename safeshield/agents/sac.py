"""Soft Actor-Critic for bounded Box action spaces, with SQRL's safety-constrained actor objective.

- ``SACConfig``: every hyper-parameter, each citing its source.
- ``SAC``: the agent (``act``, ``sample_actions``, ``observe``, ``update``, ``learn``, ``save``/``load``).

Paper: SQRL, "Learning to be Safe: Deep RL with a Safety Critic" (Srinivasan et al.; seed
arXiv:2010.14603). SAC is SQRL's base learner (Eq. 1). With a safety critic attached
the actor optimises the fine-tuning objective Eq. 4,

    J_target(θ, α, ν) = E[ r − α (log π'_θ(a'|s) − H̄) + ν (ε_safe − Q̂_safe(s, a')) ],

which, with r replaced by the twin-critic value, is the actor loss

    L_π(θ) = E_{s∼D, a'∼π_θ(·|s)} [ α log π_θ(a'|s) − min_i Q_φi(s, a') + ν Q̂_safe(s, a') ],

and Alg. 2's dual step on ν (gradient of J in ν is ε_safe − Q̂_safe):

    ν ← max(0, ν + nu_lr · (mean Q̂_safe(s, a') − ε_safe)).

Where this differs from the paper, and why:
- Projection of ν onto ν ≥ 0 (the paper does not state it): a negative multiplier would
  reward risk once the constraint is slack.
- ν takes a plain (not Adam) gradient step of size ``nu_lr`` once per actor step, using the
  Q̂_safe values of that actor step; Alg. 2 shares one step size λ for θ, α and ν.
- α uses the standard SAC temperature loss −log α · (log π + H̄) with H̄ = −|A| (SQRL official
  code); Eq. 4's sign convention for H̄ is ambiguous.
- The safety critic is not trained here: it is a callable the shield owns. Its parameters
  never receive gradients from the actor loss; gradients flow only through its action input.
- Observations are flattened to 1-D; actions are produced in [−1, 1] by a tanh-squashed
  Gaussian and rescaled affinely to the env's Box bounds.

For subclasses (``sac_lagrangian``, ``recurrent``): ``update`` is built from ``_sample_batch``,
``_critic_step``, ``_actor_loss``, ``_actor_step``, ``_alpha_step`` and ``_polyak``; ``learn``
stores each step's ``info["cost"]`` in the buffer's ``failure`` column and calls
``_episode_end(record, episode_cost)``; ``save``/``load`` use the class attributes ``kind``,
``config_key``, ``config_class`` and the ``_modules``/``_optimizers``/``_multiplier_tensors``
hooks. ``learn_alpha=False`` keeps α fixed at ``init_alpha``.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from safeshield.agents.lagrange import LagrangeMultiplier
from safeshield.agents.optim import adam, load_optimizer_state, optimizer_tensors
from safeshield.core.buffer import TransitionBuffer
from safeshield.core.checkpoint import restore, save_checkpoint, space_signature
from safeshield.core.networks import StateActionNet, mlp, to_device
from safeshield.core.validation import check_count, check_interval, check_positive, check_widths

__all__ = ["SAC", "SACConfig"]

SafetyCritic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
KIND = "agent/sac"


@dataclass(frozen=True)
class SACConfig:
    """Hyper-parameters of ``SAC``; each default names its source."""

    gamma: float = 0.99  # our choice: SAC's usual reward discount (SQRL does not give one)
    tau: float = 0.005  # our choice: Polyak rate of Haarnoja et al. 2018 (SQRL silent)
    lr: float = 3e-4  # SQRL Table 1 (all networks, Adam)
    batch_size: int = 256  # our choice: Haarnoja et al. 2018 (SQRL silent)
    buffer_size: int = 1_000_000  # our choice: SAC's usual D size (SQRL silent)
    hidden: tuple[int, ...] = (256, 256)  # SQRL Table 1: 2 hidden layers of 256, ReLU
    learning_starts: int = 1000  # our choice: uniform random actions before this many observed steps
    train_every: int = 1  # our choice: SQRL Alg. 2 updates once per env step
    gradient_steps: int = 1  # our choice: SQRL Alg. 2 updates once per env step
    target_entropy: float | None = None  # None -> −act_dim (standard SAC)
    init_alpha: float = 1.0  # our choice: CleanRL / SB3 auto-α start value (log α = 0)
    learn_alpha: bool = True  # standard SAC auto-α; False keeps α = init_alpha fixed (e.g. Knight & Achiam Tab. 3)
    log_std_min: float = -20.0  # our choice: Haarnoja et al.'s reference SAC clamp
    log_std_max: float = 2.0  # our choice: Haarnoja et al.'s reference SAC clamp
    eps_safe: float = 0.1  # SQRL Table 1: ε_safe, the threshold in Eq. 4
    nu_lr: float = 3e-4  # SQRL Alg. 2 shares one step size λ for θ, α, ν; λ = lr (Table 1)
    nu_init: float = 0.0  # our choice: start unconstrained (SQRL silent)

    def __post_init__(self):
        for name in ("tau", "lr", "init_alpha"):
            check_positive(f"SACConfig.{name}", getattr(self, name))
        for name in ("batch_size", "buffer_size", "train_every", "gradient_steps"):
            check_count(f"SACConfig.{name}", getattr(self, name))
        check_interval("SACConfig.gamma", self.gamma, 0.0, 1.0)
        for name in ("nu_lr", "nu_init"):
            check_positive(f"SACConfig.{name}", getattr(self, name), allow_zero=True)
        check_count("SACConfig.learning_starts", self.learning_starts, minimum=0)
        object.__setattr__(self, "hidden", check_widths("SACConfig.hidden", self.hidden))


class _Actor(nn.Module):
    """Tanh-squashed diagonal Gaussian: ``obs -> (a in [−1, 1]^d, log π(a|s))``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], log_std_min: float, log_std_max: float):
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    @staticmethod
    def squash(mean, log_std, noise) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised ``tanh(mean + std * noise)`` and its log-density (summed over the last dim)."""
        u = mean + log_std.exp() * noise
        gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        # log(1 − tanh(u)²) written so that it stays finite when tanh saturates
        log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        return torch.tanh(u), (gaussian - log_det).sum(-1)

    def forward(self, obs: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.dist_params(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.squash(mean, log_std, noise)


class SAC:
    """Soft Actor-Critic (Haarnoja et al. 2018) whose actor can carry SQRL's Eq. 4 safety term.

    Example:
        >>> import gymnasium as gym
        >>> from safeshield.agents import SAC, SACConfig
        >>> env = gym.make("Pendulum-v1")
        >>> agent = SAC(env.observation_space, env.action_space, SACConfig(hidden=(64, 64)), seed=0)
        >>> records = agent.learn(env, 400, seed=0, progress=False)
        >>> len(records), records[0]["length"]
        (2, 200)

    ``safety_critic(obs[B, obs_dim], action[B, act_dim] in env units) -> Q̂_safe[B]`` must be
    differentiable in ``action``; when given (here or with ``set_safety_critic``), the actor
    minimises Eq. 4 and ν follows the projected dual step of the module docstring.

    Seeding: ``seed`` fixes the network initialisation (built under ``torch.random.fork_rng``,
    so global torch RNG state is untouched), a private ``torch.Generator`` for the policy noise
    and a numpy ``Generator`` for warm-up actions and replay sampling.
    """

    kind = KIND  # checkpoint kind
    config_key = "sac"  # the config's key in the checkpoint JSON
    config_class = SACConfig

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: SACConfig = SACConfig(),
        *,
        safety_critic: SafetyCritic | None = None,
        seed: int | None = None,
        device: str | torch.device = "cpu",
    ):
        if not isinstance(observation_space, gym.spaces.Box):
            raise TypeError(f"SAC requires a Box observation_space, got {observation_space!r}")
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(f"SAC requires a Box action_space, got {action_space!r}")
        low, high = action_space.low.astype(np.float64).ravel(), action_space.high.astype(np.float64).ravel()
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise ValueError(f"SAC requires a bounded action_space with finite low < high, got {action_space!r}")
        self.observation_space, self.action_space, self.config = observation_space, action_space, config
        self.device = torch.device(device)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.act_dim = low.size
        self.target_entropy = float(-self.act_dim if config.target_entropy is None else config.target_entropy)

        seeds = np.random.SeedSequence(seed).generate_state(3)
        self.rng = np.random.default_rng(int(seeds[0]))  # warm-up actions and replay sampling
        self.generator = torch.Generator(device=self.device).manual_seed(int(seeds[1]))  # policy noise
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seeds[2]))
            self.actor = _Actor(self.obs_dim, self.act_dim, config.hidden, config.log_std_min, config.log_std_max)
            self.q1 = StateActionNet(self.obs_dim, self.act_dim, config.hidden)
            self.q2 = StateActionNet(self.obs_dim, self.act_dim, config.hidden)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        for net in (self.actor, self.q1, self.q2, self.q1_target, self.q2_target):
            to_device(net, self.device)
        for p in (*self.q1_target.parameters(), *self.q2_target.parameters()):
            p.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), device=self.device, requires_grad=True)
        self.nu_multiplier = LagrangeMultiplier(limit=config.eps_safe, lr=config.nu_lr, init=config.nu_init)

        self.critic_params = [*self.q1.parameters(), *self.q2.parameters()]
        self.actor_params = list(self.actor.parameters())
        self.critic_optimizer = adam(self.critic_params, config.lr)
        self.actor_optimizer = adam(self.actor_params, config.lr)
        self.alpha_optimizer = adam([self.log_alpha], config.lr)

        # affine map between the squashed action in [−1, 1] and env units
        self._low_np, self._high_np = low, high
        self._act_low = torch.as_tensor(low, dtype=torch.float32, device=self.device)
        self._act_high = torch.as_tensor(high, dtype=torch.float32, device=self.device)
        self._act_scale = (self._act_high - self._act_low) / 2
        self._act_center = (self._act_high + self._act_low) / 2
        self._log_scale_sum = float(np.log((high - low) / 2).sum())

        self.safety_critic = safety_critic
        self._eps_safe_source: Callable[[], float] | None = None  # a live eps_safe (set_safety_critic)
        # D_offline; np.zeros pages are mapped lazily, so a 1e6-row buffer costs memory as it fills
        self.buffer = TransitionBuffer(config.buffer_size, self.obs_dim, self.act_dim)
        self.total_steps = 0  # transitions observed over the agent's life, across learn() calls
        self.num_updates = 0

    # ------------------------------------------------------------------ acting
    def _to_env_units(self, squashed: torch.Tensor) -> torch.Tensor:
        # the clamp only removes float rounding past the bounds
        return torch.clamp(self._act_center + self._act_scale * squashed, self._act_low, self._act_high)

    def _check_obs(self, obs: Any, name: str = "obs") -> np.ndarray:
        array = np.asarray(obs, dtype=np.float32)
        if array.shape != self.observation_space.shape:
            raise ValueError(
                f"{name} must have shape {self.observation_space.shape} (the observation_space shape), got "
                f"{array.shape}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or inf: {array}")
        return array.reshape(-1)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One action in env units (``action_space`` dtype and shape).

        Until ``config.learning_starts`` transitions have been observed, a stochastic call
        returns a uniform random action drawn from the agent's seeded numpy Generator
        (the usual SAC warm-up); ``deterministic=True`` always returns ``tanh(mean)``.
        """
        flat = self._check_obs(obs)
        if not deterministic and self.total_steps < self.config.learning_starts:
            action = self.rng.uniform(self._low_np, self._high_np)
        else:
            mean, log_std = self.actor.dist_params(torch.as_tensor(flat, device=self.device).unsqueeze(0))
            if not deterministic:  # no log-prob needed here: skip squash()'s extra ops
                mean = mean + log_std.exp() * torch.randn(mean.shape, generator=self.generator, device=self.device)
            action = self._to_env_units(torch.tanh(mean))[0].cpu().numpy()
        return action.astype(self.action_space.dtype).reshape(self.action_space.shape)

    @torch.inference_mode()
    def sample_actions(
        self, obs: torch.Tensor, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` actions from π(·|s) for each of ``m`` observations, in one batched pass.

        Returns ``(actions[m, n, act_dim] in env units, log_probs[m, n])``. The log-probs are
        densities in env units: the squashed density minus Σ log(half-range), a per-state
        constant that cancels in any softmax over one state's candidates. ``generator``
        defaults to the agent's own noise generator. Both are inference tensors (made under
        ``torch.inference_mode``): ``clone()`` them before they enter an autograd graph.
        """
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if obs.dim() < 1 or obs.numel() != obs.shape[0] * self.obs_dim:
            raise ValueError(f"obs must have shape [m, {self.obs_dim}], got {tuple(obs.shape)}")
        if not torch.isfinite(obs).all():
            raise ValueError("obs passed to sample_actions contains NaN or inf")
        mean, log_std = self.actor.dist_params(obs.reshape(obs.shape[0], self.obs_dim))
        m = mean.shape[0]
        noise = torch.randn(
            (m, int(n), self.act_dim),
            generator=self.generator if generator is None else generator,
            device=self.device,
            dtype=mean.dtype,
        )
        squashed, log_prob = self.actor.squash(mean.unsqueeze(1), log_std.unsqueeze(1), noise)
        return self._to_env_units(squashed), log_prob - self._log_scale_sum

    # ------------------------------------------------------------------ data
    def observe(self, obs, action, reward: float, next_obs, terminated: bool, cost: float = 0.0) -> None:
        """Store one transition; ``action`` is the action EXECUTED, in env units.

        ``terminated`` is true termination only: after a time-limit truncation the critic
        target still bootstraps from ``next_obs``. ``cost`` (>= 0, e.g. ``info["cost"]``) goes
        into the buffer's ``cost`` column: SAC ignores it, a constrained subclass learns it.
        """
        executed = np.asarray(action, dtype=np.float32).reshape(-1)
        if executed.size != self.act_dim or not np.all(np.isfinite(executed)):
            raise ValueError(f"action must be {self.act_dim} finite numbers (env units), got {action!r}")
        if not math.isfinite(float(reward)):
            raise ValueError(f"reward must be finite, got {reward!r}")
        if not (math.isfinite(float(cost)) and float(cost) >= 0.0):
            raise ValueError(f"cost must be a finite number >= 0, got {cost!r}")
        self.buffer.add(
            self._check_obs(obs, "obs"),
            executed,
            self._check_obs(next_obs, "next_obs"),
            failure=0.0,
            terminated=bool(terminated),
            reward=float(reward),
            cost=float(cost),
        )
        self.total_steps += 1

    def reset_buffer(self) -> None:
        """Empty the replay buffer (SQRL Alg. 2 l.2 empties D_offline before fine-tuning)."""
        self.buffer.clear()

    def set_safety_critic(
        self, safety_critic: SafetyCritic | None, eps_safe: float | Callable[[], float] | None = None
    ) -> None:
        """Attach, replace (or with ``None`` remove) Q̂_safe; ``eps_safe`` overrides the config's ε_safe.

        A callable ``eps_safe`` is read before every ν step: pass the shield's threshold in force
        (``lambda: shield.safety_model.threshold``) so that Eq. 4 penalises the actor against the
        limit the shield actually applies. A failure budget moves that limit; before the shield's
        warm-up it is +inf, and then ν decays to 0.
        """
        self.safety_critic = safety_critic
        self._eps_safe_source = eps_safe if callable(eps_safe) else None
        if eps_safe is not None and not callable(eps_safe):
            self.config = replace(self.config, eps_safe=float(eps_safe))
            self.nu_multiplier.limit = float(eps_safe)

    def _live_eps_safe(self) -> float:
        """The callable ``eps_safe``'s value now: a number, +inf allowed (a shield still warming up)."""
        value = self._eps_safe_source()
        try:
            limit = float(value)
        except (TypeError, ValueError):
            limit = math.nan
        if math.isnan(limit):
            raise ValueError(
                f"eps_safe (the callable given to set_safety_critic) returned {value!r:.80}; it must return a number, "
                "e.g. the shield's threshold (lambda: shield.safety_model.threshold), +inf before its warm-up"
            )
        return limit

    @property
    def nu(self) -> float:
        """ν, the multiplier of Eq. 4 (a ``LagrangeMultiplier`` with limit ε_safe)."""
        return self.nu_multiplier.value

    @nu.setter
    def nu(self, value: float) -> None:
        self.nu_multiplier.value = max(0.0, float(value))

    # ------------------------------------------------------------------ learning
    def update(self) -> dict[str, float]:
        """One gradient step on the twin critics, the actor (Eq. 4), α, and ν; then Polyak targets.

        Subclasses extend it through hooks, not copies: ``_sample_batch`` (what a minibatch is),
        ``_critic_update`` (the critics and what the actor reads), ``_extra_critic_steps`` (more
        critics on the same next actions), ``_after_actor_update`` (more multipliers) and
        ``_target_pairs`` (more target networks).
        """
        batch = self._sample_batch()
        alpha = self.log_alpha.detach().exp()
        info, actor_obs = self._critic_update(batch, alpha)
        new_action, log_pi = self.actor(actor_obs, self.generator)
        actor_loss, actor_info = self._actor_loss(actor_obs, new_action, log_pi, alpha)
        self._actor_step(actor_loss)
        alpha_loss = self._alpha_step(log_pi)
        if "q_safe" in actor_info:  # ν: projected dual ascent on Eq. 4
            if self._eps_safe_source is not None:  # the shield's threshold in force (set_safety_critic)
                self.nu_multiplier.limit = self._live_eps_safe()
            self.nu_multiplier.update(actor_info["q_safe"])
        self._after_actor_update(info)
        self._polyak(self._target_pairs())
        self.num_updates += 1
        info.update(
            actor_info,
            actor_loss=float(actor_loss.detach()),
            alpha_loss=alpha_loss,
            alpha=float(alpha),
            nu=self.nu_multiplier.value,
            entropy=float(-log_pi.detach().mean()),
        )
        return info

    def _critic_update(
        self, batch: dict[str, torch.Tensor], alpha: torch.Tensor
    ) -> tuple[dict[str, float], torch.Tensor]:
        """Critic steps on ``batch``; returns their diagnostics and the observations the actor reads."""
        with torch.no_grad():
            next_action, next_log_pi = self.actor(batch["next_obs"], self.generator)
        info = self._critic_step(batch, next_action, next_log_pi, alpha)
        info.update(self._extra_critic_steps(batch, next_action))
        return info, batch["obs"]

    def _extra_critic_steps(self, batch: dict[str, torch.Tensor], next_action: torch.Tensor) -> dict[str, float]:
        """Hook: further critics trained on the same batch and next actions (none in SAC)."""
        return {}

    def _after_actor_update(self, info: dict[str, float]) -> None:
        """Hook: multiplier steps after the actor's (none besides ν in SAC); may add to ``info``."""

    def _target_pairs(self) -> tuple[tuple[nn.Module, nn.Module], ...]:
        """``(network, target network)`` pairs Polyak-averaged after every update."""
        return ((self.q1, self.q1_target), (self.q2, self.q2_target))

    def _sample_batch(self) -> dict[str, torch.Tensor]:
        """A replay minibatch as tensors; ``action`` is rescaled to [−1, 1] (what the critics see)."""
        if len(self.buffer) == 0:
            raise RuntimeError("update() needs at least one observed transition")
        batch = self.buffer.sample(self.config.batch_size, self.rng)
        tensors = {
            name: torch.from_numpy(getattr(batch, name)).to(self.device)
            for name in ("obs", "action", "reward", "next_obs", "terminated", "cost")
        }
        tensors["action"] = (tensors["action"] - self._act_center) / self._act_scale
        return tensors

    def _critic_step(self, batch, next_action, next_log_pi, alpha) -> dict[str, float]:
        """Twin critics: soft Bellman target with clipped double-Q, one Adam step."""
        with torch.no_grad():
            next_obs = batch["next_obs"]
            next_q = torch.min(self.q1_target(next_obs, next_action), self.q2_target(next_obs, next_action))
            target = batch["reward"] + self.config.gamma * (1.0 - batch["terminated"]) * (next_q - alpha * next_log_pi)
        q1, q2 = self.q1(batch["obs"], batch["action"]), self.q2(batch["obs"], batch["action"])
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward(inputs=self.critic_params)
        self.critic_optimizer.step()
        return {"critic_loss": float(critic_loss.detach()), "q": float(q1.detach().mean())}

    def _actor_loss(self, obs, new_action, log_pi, alpha) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean of α log π − min_i Q_i (+ ν Q̂_safe with a safety critic) at a reparameterised a' ~ π_θ(·|s)."""
        q_pi = torch.min(self.q1(obs, new_action), self.q2(obs, new_action))
        loss = alpha * log_pi - q_pi
        info: dict[str, float] = {}
        if self.safety_critic is not None:
            q_safe = self._q_safe(obs, self._to_env_units(new_action))
            loss = loss + self.nu_multiplier.value * q_safe
            info["q_safe"] = float(q_safe.detach().mean())
        return loss.mean(), info

    def _actor_step(self, actor_loss: torch.Tensor) -> None:
        self.actor_optimizer.zero_grad(set_to_none=True)
        # inputs= keeps gradients off the critics' and the safety critic's parameters
        actor_loss.backward(inputs=self.actor_params)
        self.actor_optimizer.step()

    def _alpha_step(self, log_pi: torch.Tensor) -> float:
        """Standard SAC temperature loss −log α (log π + H̄); a no-op when α is fixed."""
        alpha_loss = -(self.log_alpha * (log_pi.detach() + self.target_entropy)).mean()
        if self.config.learn_alpha:
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
        return float(alpha_loss.detach())

    def _polyak(self, pairs) -> None:
        with torch.no_grad():
            for net, target_net in pairs:
                for p, p_target in zip(net.parameters(), target_net.parameters()):
                    p_target.lerp_(p, self.config.tau)  # Polyak: p_target ← (1 − τ) p_target + τ p

    def _q_safe(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        q_safe = self.safety_critic(obs, action)
        if not isinstance(q_safe, torch.Tensor) or q_safe.numel() != obs.shape[0]:
            raise ValueError(
                f"safety_critic must return a tensor of shape [{obs.shape[0]}], got "
                f"{tuple(q_safe.shape) if isinstance(q_safe, torch.Tensor) else type(q_safe).__name__}"
            )
        return q_safe.reshape(obs.shape[0])

    def learn(
        self,
        env: gym.Env,
        total_steps: int,
        *,
        seed: int | None = None,
        progress: bool = True,
        callback: Callable[[dict], Any] | None = None,
    ) -> list[dict]:
        """Run ``total_steps`` env steps of SAC; return one record per finished episode.

        Each record is ``{"step", "return", "length", "failure"}``, ``step`` being
        ``self.total_steps`` at the episode's end. The stored action is
        ``info["shield"]["executed_action"]`` when a shield wrapper reports it, else the action
        sent. Updates start once ``learning_starts`` transitions were observed and the buffer
        holds ``batch_size`` of them. Each call starts a fresh episode with
        ``env.reset(seed=seed)``; a partial last episode is not recorded. Each step's
        ``info["cost"]`` (0 where the env reports none) is stored with the transition.
        """
        from safeshield.core.progress import tqdm

        cfg = self.config
        records: list[dict] = []
        recent = deque(maxlen=10)
        failures = 0
        obs, _ = env.reset(seed=seed)
        episode_return, episode_length, episode_failed, episode_cost = 0.0, 0, False, 0.0
        with tqdm(total=int(total_steps), disable=not progress, desc=type(self).__name__, unit="step") as bar:
            for _ in range(int(total_steps)):
                action = self.act(obs)
                next_obs, reward, terminated, truncated, info = env.step(action)
                shield = info.get("shield")
                executed = action
                if isinstance(shield, dict):
                    executed = shield.get("executed_action", action)
                    episode_failed |= float(shield.get("failure", 0.0)) > 0.5
                episode_failed |= bool(info.get("failure", False))
                cost = float(info.get("cost", 0.0))
                self.observe(obs, executed, float(reward), next_obs, terminated, cost=cost)
                episode_return += float(reward)
                episode_cost += cost
                episode_length += 1

                if (
                    self.total_steps >= cfg.learning_starts
                    and self._can_update()
                    and self.total_steps % cfg.train_every == 0
                ):
                    for _ in range(cfg.gradient_steps):
                        self.update()

                obs = next_obs
                if terminated or truncated:
                    record = {
                        "step": self.total_steps,
                        "return": episode_return,
                        "length": episode_length,
                        "failure": episode_failed,
                    }
                    self._episode_end(record, episode_cost)
                    records.append(record)
                    recent.append(episode_return)
                    failures += episode_failed
                    bar.set_postfix(ret=f"{np.mean(recent):.1f}", failures=failures, refresh=False)
                    if callback is not None:
                        callback(record)
                    obs, _ = env.reset()
                    episode_return, episode_length, episode_failed, episode_cost = 0.0, 0, False, 0.0
                bar.update(1)
        return records

    def _can_update(self) -> bool:
        """Whether the buffer holds enough data for one ``update`` (a minibatch's worth)."""
        return len(self.buffer) >= self.config.batch_size

    def _episode_end(self, record: dict, episode_cost: float) -> None:
        """Called by ``learn`` with each finished episode's record and summed cost (a hook for subclasses)."""

    # ------------------------------------------------------------------ checkpoints
    def save(self, path) -> Path:
        """Write a pickle-free checkpoint (safetensors + JSON) to the directory ``path``.

        Saved: networks, target networks, Adam states, log α, ν, the config and both spaces'
        signatures. Not saved: the replay buffer, the RNG states and the safety critic
        (re-attach it with ``set_safety_critic`` after ``load``).
        """
        tensors = {"log_alpha": self.log_alpha.detach(), **self._multiplier_tensors()}
        for name, net in self._modules().items():
            tensors.update({f"{name}.{key}": value for key, value in net.state_dict().items()})
        for name, optimizer in self._optimizers().items():
            tensors.update(optimizer_tensors(optimizer, f"optim.{name}."))
        config = {
            self.config_key: {**asdict(self.config), "hidden": list(self.config.hidden)},
            "observation_space": space_signature(self.observation_space),
            "action_space": space_signature(self.action_space),
            "total_steps": self.total_steps,
            "num_updates": self.num_updates,
        }
        return save_checkpoint(path, tensors, config, kind=self.kind)

    @classmethod
    def load(cls, path, env=None, *, seed: int | None = None, device: str | torch.device = "cpu") -> "SAC":
        """Rebuild an agent saved with ``save`` (``core.checkpoint.restore``'s one convention).

        ``env``: an env or ``(observation_space, action_space)``; its spaces must match the saved
        ones (``CheckpointError`` otherwise). Without it the spaces are rebuilt from the checkpoint
        (Box spaces only). ``seed`` seeds the fresh noise and sampling RNGs, which are not saved.
        """

        def build(document, observation_space, action_space):
            saved = document[cls.config_key]
            config = cls.config_class(**{**saved, "hidden": tuple(saved["hidden"])})
            return cls(observation_space, action_space, config, seed=seed, device=device)

        def load_state(agent, tensors, document):
            for name, net in agent._modules().items():
                prefix = f"{name}."
                net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            for name, optimizer in agent._optimizers().items():
                load_optimizer_state(optimizer, tensors, f"optim.{name}.")
            with torch.no_grad():
                agent.log_alpha.copy_(tensors["log_alpha"])
            agent._load_multipliers(tensors)
            agent.total_steps = int(document.get("total_steps", 0))
            agent.num_updates = int(document.get("num_updates", 0))

        return restore(path, env, kind=cls.kind, build=build, load_state=load_state)

    def _multiplier_tensors(self) -> dict[str, torch.Tensor]:
        return {"nu": torch.tensor(self.nu_multiplier.value, dtype=torch.float64)}

    def _load_multipliers(self, tensors: dict[str, torch.Tensor]) -> None:
        self.nu_multiplier.value = float(tensors["nu"])

    def _modules(self) -> dict[str, nn.Module]:
        return {
            "actor": self.actor,
            "q1": self.q1,
            "q2": self.q2,
            "q1_target": self.q1_target,
            "q2_target": self.q2_target,
        }

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer, "alpha": self.alpha_optimizer}
