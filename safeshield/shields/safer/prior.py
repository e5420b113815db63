"""SAFER: a safety skill prior (conditional RealNVP flow) that remaps a latent action box.

Paper: Slack, Chow, Dai, Wichers, "SAFER: Data-Efficient and Safe Reinforcement Learning via
Skill Acquisition" (2022), arXiv:2202.04849; derivations and the paper's errors in
``docs/safer.md``.

What this module implements:

- §3.2 model: a = f_phi(z; s, c), a conditional RealNVP with 3 couplings and base N(0, I),
  dim z = dim a (``shields.safer.flow.BoundedFlow``); the safety variable's posterior q_rho(c | Lambda),
  a diagonal Gaussian over dim c = 8 from a window of w = 16 states: a per-frame encoder (MLP
  for state vectors, CNN for images) and a small transformer over the window; prior N(0, I).
- Eq. 2, the flow density, and Eq. 5 / Alg. 2 (App. E), the SAFER contrastive loss on separate
  safe and unsafe batches, c reparameterised:
      NLL = -(log p(a_safe | s, c_safe) - lambda * log p(a_unsafe | s, c_unsafe) - KL_safe - KL_unsafe)
  (batch means), SGD + momentum, lr 1e-4 (App. C), gradient clipping (§3.2).
- Alg. 3 (App. F), the latent bound eta (``eta_algorithm3``), and the exact deterministic
  variant (``eta_deterministic``, the default).
- Alg. 1 inference: a = f(z; s, E[c | Lambda]) (``SAFER.remap``), used by ``safeshield.wrappers.RemapWrapper``.
- PARROT (App. D baseline) is the same model with ``use_context=False`` (no c, no KL) and
  ``contrastive_weight=0`` trained on safe, successful data: ``SAFERConfig.parrot()``.

Where this differs from the paper, and why (bounded actions, the divergence freeze, Alg. 2's
typo, the window, Alg. 3's sample sizes and cap, observation standardisation, online
fine-tuning): ``docs/safer.md``, "Choices the paper left open, and the errors fixed".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from safeshield.core.model import SafetyConfig, register_method
from safeshield.core.networks import mlp
from safeshield.core.prior import RemapPrior
from safeshield.core.validation import check_choice, check_count, check_interval, check_positive, check_widths
from safeshield.shields.safer.calibration import eta_algorithm3, eta_deterministic
from safeshield.shields.safer.dataset import OfflineDataset
from safeshield.shields.safer.flow import BoundedFlow, diagonal_gaussian_kl, standard_normal_log_prob

__all__ = ["SAFER", "SAFERConfig"]


@dataclass(frozen=True)
class SAFERConfig(SafetyConfig):
    """SAFER defaults; each cites its source."""

    context_dim: int = 8  # App. C: "components" of the safety variable c (tuned 8, 32, 64)
    window: int = 16  # App. C: state window w (tuned 16, 32)
    n_couplings: int = 3  # App. C: Real NVP bijectors (tuned 3, 5)
    flow_hidden: tuple[int, ...] = (256, 256)  # our choice: PARROT's tuned width 256 (App. D)
    embed_dim: int = 64  # our choice: per-frame encoding size
    frame_hidden: tuple[int, ...] = (128,)  # our choice: MLP frame encoder for state vectors
    transformer_layers: int = 1  # our choice (paper: "a transformer", size not stated)
    transformer_heads: int = 4  # our choice
    use_context: bool = True  # §3.2; False = PARROT / "no safety variable" ablation
    contrastive_weight: float = 1e-4  # lambda, App. C tuned {1e-4, 1e-5}
    divergence_margin: float = 10.0  # our choice: freeze rule of §3.2 (module docstring)
    unsafe_floor: bool = False  # our choice: True = per-action floor (module docstring), False = batch freeze
    optimizer: str = "sgd"  # App. C: SGD + momentum (Adam diverged); PARROT used "adam"
    lr: float = 1e-4  # App. C
    momentum: float = 0.9  # our choice: value not stated in App. C
    batch_size: int = 256  # our choice (not stated); safe and unsafe batches each this size
    grad_clip: float = 1.0  # our choice: §3.2 clips gradients, norm not stated
    max_unsafe_fraction: float = 0.15  # §5.2: bound for <= 15 % unsafe (Alg. 3 eps = 0.85)
    eta_method: str = "deterministic"  # exact variant; "algorithm3" = App. F as printed
    eta_init: float = 10.0  # Alg. 3 eta_0 ("large"), our value; also eta before calibration
    eta_iterations: int = 100  # our choice: Alg. 3 iteration cap
    successful_only: bool = True  # §3.2 / App. D: D_safe = safe pairs from successful rollouts
    online_capacity: int = 20_000  # our choice: steps kept for online fine-tuning
    learning_starts: int = 500  # our choice: online, no update before this many steps
    train_every: int = 1  # our choice: online, one Alg. 2 step per env step
    recalibrate_every: int = 1000  # our choice: online, recompute eta every this many steps

    def __post_init__(self) -> None:
        super().__post_init__()  # field types: integers, finite numbers, bools, strings
        object.__setattr__(self, "flow_hidden", check_widths("SAFERConfig.flow_hidden", self.flow_hidden))
        object.__setattr__(self, "frame_hidden", check_widths("SAFERConfig.frame_hidden", self.frame_hidden))
        for name in (
            "context_dim",
            "window",
            "n_couplings",
            "embed_dim",
            "transformer_layers",
            "transformer_heads",
            "batch_size",
            "eta_iterations",
            "online_capacity",
            "train_every",
            "recalibrate_every",
        ):
            check_count(f"SAFERConfig.{name}", getattr(self, name))
        if self.embed_dim % self.transformer_heads:
            raise ValueError(
                f"SAFERConfig.embed_dim must be divisible by transformer_heads ({self.transformer_heads}), "
                f"got {self.embed_dim!r}"
            )
        for name in ("lr", "grad_clip", "eta_init", "divergence_margin"):
            check_positive(f"SAFERConfig.{name}", getattr(self, name))
        check_positive("SAFERConfig.contrastive_weight", self.contrastive_weight, allow_zero=True)
        check_interval("SAFERConfig.momentum", self.momentum, 0.0, 1.0, closed="left")
        check_count("SAFERConfig.learning_starts", self.learning_starts, minimum=0)
        check_interval("SAFERConfig.max_unsafe_fraction", self.max_unsafe_fraction, 0.0, 1.0, closed="left")
        check_choice("SAFERConfig.optimizer", self.optimizer, ("sgd", "adam"))
        check_choice("SAFERConfig.eta_method", self.eta_method, ("deterministic", "algorithm3"))

    @classmethod
    def parrot(cls, **changes: Any) -> SAFERConfig:
        """PARROT (App. D): no safety variable, no contrastive term, Adam; safe+successful data."""
        return cls(**{"use_context": False, "contrastive_weight": 0.0, "optimizer": "adam", **changes})


def floored_log_prob(log_p: torch.Tensor, floor: torch.Tensor | float) -> tuple[torch.Tensor, float]:
    """``max(log_p, floor)`` per row (no gradient below the floor) and the share of rows below it.

    The contrastive term ``-lambda * log p(a_unsafe)`` of Eq. 5 is unbounded above: a batch mean
    can be driven to -inf by a few actions while most unsafe actions stay as likely as safe ones
    (measured, docs/safer.md). Flooring each unsafe action's log-likelihood pushes every unsafe
    action until it is the margin below the safe batch mean, and then no further.
    """
    floor = torch.as_tensor(floor, dtype=log_p.dtype)
    below = log_p.detach() < floor
    return torch.where(below, floor.expand_as(log_p), log_p), float(below.float().mean())


# ---------------------------------------------------------------------------------------------
# the model


class _FrameEncoder(nn.Module):
    """One observation -> ``embed_dim``: an MLP for vectors, a small CNN for HxWxC images (/255)."""

    def __init__(self, obs_shape: tuple[int, ...], embed_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.image = len(obs_shape) == 3
        if self.image:
            h, w, c = obs_shape
            self.net = nn.Sequential(
                nn.Conv2d(c, 16, 5, stride=2),
                nn.ReLU(),
                nn.Conv2d(16, 32, 5, stride=2),
                nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2),
                nn.ReLU(),
                nn.Flatten(),
            )
            with torch.no_grad():
                flat = self.net(torch.zeros(1, c, h, w)).shape[-1]
            self.head = nn.Linear(flat, embed_dim)
        else:
            self.net = mlp(int(np.prod(obs_shape)), embed_dim, hidden)
            self.head = nn.Identity()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if self.image:
            return self.head(self.net(frames.permute(0, 3, 1, 2)))
        return self.net(frames.reshape(frames.shape[0], -1))


class _Posterior(nn.Module):
    """q_rho(c | Lambda): a transformer over the encoded window, read out at s_t."""

    def __init__(self, cfg: SAFERConfig):
        super().__init__()
        self.position = nn.Parameter(torch.zeros(cfg.window, cfg.embed_dim))
        layer = nn.TransformerEncoderLayer(
            cfg.embed_dim, cfg.transformer_heads, dim_feedforward=2 * cfg.embed_dim, dropout=0.0, batch_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, cfg.transformer_layers, enable_nested_tensor=False)
        self.head = nn.Linear(cfg.embed_dim, 2 * cfg.context_dim)

    def forward(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.transformer(encoded + self.position)[:, -1]
        mean, log_std = self.head(hidden).chunk(2, dim=-1)
        return mean, log_std.clamp(-5.0, 2.0)


@register_method
class SAFER(RemapPrior):
    """The SAFER prior: ``fit`` (Alg. 2), ``calibrate`` (Alg. 3), ``remap`` (Alg. 1), ``save``/``load``.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> from safeshield.shields.safer import SAFER, SAFERConfig
        >>> env = gym.make("Pendulum-v1")
        >>> prior = SAFER(env.observation_space, env.action_space, SAFERConfig(flow_hidden=(32,)), seed=0)
        >>> window, valid = np.zeros((16, 3), np.float32), np.ones(16, bool)
        >>> action, neg_log_prob = prior.remap(np.zeros(1, np.float32), window, valid)
        >>> action.shape
        (1,)
    """

    name: ClassVar[str] = "safer"
    config_class: ClassVar[type[SAFERConfig]] = SAFERConfig

    fixed_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "context_dim",
            "window",
            "n_couplings",
            "flow_hidden",
            "embed_dim",
            "frame_hidden",
            "transformer_layers",
            "transformer_heads",
            "use_context",
            "optimizer",
            "momentum",
            "online_capacity",
        }
    )

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().check_spaces(observation_space, action_space)
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) not in (1, 3):
            raise TypeError(
                f"SAFER requires a Box observation space of a vector or an HxWxC image, got {observation_space}"
            )

    def setup(self, seed: int | None) -> None:
        config = self.config
        self.obs_shape = tuple(self.observation_space.shape)
        self.act_dim = int(np.prod(self.action_space.shape))
        self.window = config.window
        self.eta = float(config.eta_init)
        self.frozen = True
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(int(self.rng.integers(2**31)))

    def build(self) -> None:
        config, action_space = self.config, self.action_space
        self.encoder = _FrameEncoder(self.obs_shape, config.embed_dim, config.frame_hidden)
        self.posterior = _Posterior(config) if config.use_context else None
        cond_dim = config.embed_dim + (config.context_dim if config.use_context else 0)
        self.flow = BoundedFlow(
            self.act_dim,
            cond_dim,
            action_space.low.reshape(-1),
            action_space.high.reshape(-1),
            config.n_couplings,
            config.flow_hidden,
        )
        image = len(self.obs_shape) == 3
        self.register_buffer("obs_mean", torch.zeros(self.obs_shape) if not image else torch.zeros(()))
        self.register_buffer("obs_std", torch.ones(self.obs_shape) if not image else torch.full((), 255.0))
        self.optimizer = self._make_optimizer()
        self._online: dict[str, np.ndarray] | None = None
        self._online_count = 0

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=cfg.lr)
        return torch.optim.SGD(self.parameters(), lr=cfg.lr, momentum=cfg.momentum)

    # -- the model's pieces -----------------------------------------------------------------------
    def fit_normalizer(self, observations: np.ndarray) -> None:
        """Standardise vector observations with the data's mean and std (images stay / 255)."""
        if len(self.obs_shape) == 3:
            return
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32).reshape(-1, *self.obs_shape))
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(obs.std(0).clamp_min(1e-3))

    def _encode_window(self, windows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, w, *obs) -> (B, w, embed); padded frames are zero *after* standardisation."""
        b, w = windows.shape[:2]
        frames = (windows - self.obs_mean) / self.obs_std * valid.reshape(b, w, *([1] * len(self.obs_shape)))
        return self.encoder(frames.reshape(b * w, *self.obs_shape)).reshape(b, w, -1)

    def posterior_params(
        self, windows: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(state features of s_t, mean of q(c|Lambda), log std)``; the last two None without context."""
        encoded = self._encode_window(windows, valid)
        if self.posterior is None:
            return encoded[:, -1], None, None
        mean, log_std = self.posterior(encoded)
        return encoded[:, -1], mean, log_std

    def _condition(self, windows, valid, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow conditioning [enc(s_t), c] with c ~ q (reparameterised) or c = E[c|Lambda]; and KL."""
        state, mean, log_std = self.posterior_params(windows, valid)
        if mean is None:
            return state, state.new_zeros(state.shape[0])
        c = (
            mean + log_std.exp() * torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype)
            if sample
            else mean
        )
        return torch.cat([state, c], dim=-1), diagonal_gaussian_kl(mean, log_std)

    def log_prob(self, actions, windows, valid, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p(a | s, c), KL(q(c|Lambda) || N(0, I)))`` per row (Eq. 2, Eq. 3's KL)."""
        cond, kl = self._condition(windows, valid, sample)
        return self.flow.log_prob(actions, cond), kl

    # -- Alg. 2: training -------------------------------------------------------------------------
    def loss(self, safe: tuple, unsafe: tuple | None) -> tuple[torch.Tensor, dict[str, float]]:
        """Alg. 2's NLL on a safe batch and an (optional) unsafe batch of ``(actions, windows, valid)``."""
        cfg = self.config
        log_p_safe, kl_safe = self.log_prob(*safe)
        l_safe, kl = log_p_safe.mean(), kl_safe.mean()
        stats = {"log_p_safe": float(l_safe.detach()), "kl_safe": float(kl.detach())}
        objective = l_safe - kl
        if unsafe is not None:
            log_p_unsafe, kl_unsafe = self.log_prob(*unsafe)
            l_unsafe = log_p_unsafe.mean()
            objective = objective - kl_unsafe.mean()
            if cfg.unsafe_floor:
                floored, frozen = floored_log_prob(log_p_unsafe, l_safe.detach() - cfg.divergence_margin)
                objective = objective - cfg.contrastive_weight * floored.mean()
            else:
                frozen = float(l_unsafe.detach() < l_safe.detach() - cfg.divergence_margin)
                if not frozen:
                    objective = objective - cfg.contrastive_weight * l_unsafe
            stats.update(
                log_p_unsafe=float(l_unsafe.detach()),
                kl_unsafe=float(kl_unsafe.mean().detach()),
                unsafe_frozen=float(frozen),
            )
        loss = -objective
        stats["loss"] = float(loss.detach())
        return loss, stats

    def train_step(self, safe: tuple, unsafe: tuple | None) -> dict[str, float]:
        loss, stats = self.loss(safe, unsafe)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = float(nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip))
        self.optimizer.step()
        self.updates += 1
        return stats

    def _batch(self, data: OfflineDataset, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        windows, valid = data.windows(rows, self.window)
        return torch.from_numpy(data.actions[rows]), torch.from_numpy(windows), torch.from_numpy(valid)

    def fit(
        self, data: OfflineDataset, steps: int, progress: bool = True, log_every: int = 50
    ) -> dict[str, list[float]]:
        """Alg. 2 for ``steps`` steps on D_safe / D_unsafe of ``data``; returns the loss curves.

        D_safe = safe (and, by default, successful) steps; D_unsafe = steps with omega = 1 (none
        for PARROT: ``contrastive_weight == 0`` and no context means the unsafe batch is unused).
        """
        from safeshield.core.progress import tqdm

        cfg = self.config
        safe_rows = data.safe_rows(cfg.successful_only)
        unsafe_rows = data.unsafe_rows()
        if safe_rows.size == 0:
            successful = int(data.successes.sum())
            hint = (
                " (no episode is marked successful: SAFERConfig(successful_only=False) trains on every safe step, "
                "or label success in the data)"
                if cfg.successful_only and successful == 0 and len(data)
                else ""
            )
            raise ValueError(
                f"the dataset has no safe{' and successful' if cfg.successful_only else ''} steps to "
                f"train the prior on: {len(data)} steps, {int(data.violations.sum())} unsafe, "
                f"{successful} in successful episodes{hint}"
            )
        use_unsafe = unsafe_rows.size > 0 and (cfg.contrastive_weight > 0 or cfg.use_context)
        if self.updates == 0:
            self.fit_normalizer(data.observations)
        history: dict[str, list[float]] = {"step": []}
        self.train()
        with tqdm(total=int(steps), disable=not progress, desc=f"{self.name} prior", unit="step") as bar:
            for step in range(int(steps)):
                safe = self._batch(data, self.rng.choice(safe_rows, cfg.batch_size))
                unsafe = self._batch(data, self.rng.choice(unsafe_rows, cfg.batch_size)) if use_unsafe else None
                stats = self.train_step(safe, unsafe)
                if step % log_every == 0 or step == steps - 1:
                    history["step"].append(step)
                    for key, value in stats.items():
                        history.setdefault(key, []).append(value)
                    bar.set_postfix(loss=f"{stats['loss']:.2f}", refresh=False)
                bar.update(1)
        self.eval()
        return history

    # -- Alg. 3: the latent bound ------------------------------------------------------------------
    @torch.inference_mode()
    def latents(self, actions: np.ndarray, windows: np.ndarray, valid: np.ndarray, batch: int = 4096) -> np.ndarray:
        """z = f^{-1}(a; s, E[c | Lambda]) for each row (the map Alg. 3's get_in_bound uses)."""
        out = []
        for start in range(0, len(actions), batch):
            part = slice(start, start + batch)
            cond, _ = self._condition(torch.as_tensor(windows[part]), torch.as_tensor(valid[part]), sample=False)
            out.append(self.flow.inverse(torch.as_tensor(actions[part], dtype=torch.float32), cond)[0].numpy())
        return np.concatenate(out) if out else np.zeros((0, self.act_dim), np.float32)

    def labelled_latents(self, data: OfflineDataset) -> tuple[np.ndarray, np.ndarray]:
        """``(||z||_inf, unsafe)`` over D_safe and D_unsafe of ``data`` (the calibration set)."""
        rows = np.concatenate([data.safe_rows(self.config.successful_only), data.unsafe_rows()])
        max_abs = np.zeros(0)
        if rows.size:
            windows, valid = data.windows(rows, self.window)
            max_abs = np.abs(self.latents(data.actions[rows], windows, valid)).max(axis=1)
        return max_abs, data.violations[rows].astype(bool)

    def calibrate(
        self, data: OfflineDataset, max_unsafe_fraction: float | None = None, method: str | None = None
    ) -> float:
        """Set and return eta for at most ``max_unsafe_fraction`` unsafe labelled points in the box."""
        cfg = self.config
        bound = cfg.max_unsafe_fraction if max_unsafe_fraction is None else float(max_unsafe_fraction)
        method = cfg.eta_method if method is None else method
        max_abs, unsafe = self.labelled_latents(data)
        if max_abs.size == 0:
            raise ValueError("calibration needs labelled safe or unsafe steps")
        if method == "deterministic":
            self.eta = eta_deterministic(max_abs, unsafe, bound)
        elif method == "algorithm3":
            self.eta = eta_algorithm3(max_abs, unsafe, bound, cfg.eta_init, cfg.eta_iterations, self.rng)[0]
        else:
            raise ValueError(f"method must be 'deterministic' or 'algorithm3', got {method!r}")
        return self.eta

    # -- Alg. 1: inference -------------------------------------------------------------------------
    @torch.inference_mode()
    def remap(self, latent: np.ndarray, window: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, float]:
        """``a = f(z; s_t, E[c | Lambda])`` for one step, and ``-log p(a | s, c)``."""
        cond, _ = self._condition(torch.as_tensor(window)[None], torch.as_tensor(valid)[None], sample=False)
        z = torch.as_tensor(latent, dtype=torch.float32).reshape(1, self.act_dim)
        action, log_det = self.flow(z, cond)
        neg_log_prob = float(log_det[0] - standard_normal_log_prob(z)[0])
        low, high = self.action_space.low.reshape(-1), self.action_space.high.reshape(-1)
        return np.clip(action[0].numpy(), low, high), neg_log_prob  # clip: float rounding only

    # -- online fine-tuning (an option; the paper is offline) --------------------------------------
    def observe(self, window: np.ndarray, valid: np.ndarray, action: np.ndarray, failure: float) -> None:
        cap = self.config.online_capacity
        if self._online is None:
            self._online = {
                "windows": np.zeros((cap, self.window, *self.obs_shape), np.float32),
                "valid": np.zeros((cap, self.window), bool),
                "actions": np.zeros((cap, self.act_dim), np.float32),
                "failures": np.zeros(cap, bool),
            }
        row = self._online_count % cap
        self._online["windows"][row], self._online["valid"][row] = window, valid
        self._online["actions"][row], self._online["failures"][row] = action, failure > 0.5
        self._online_count += 1

    def after_step(self) -> dict[str, float] | None:
        """Online: an Alg. 2 step every ``train_every`` steps, eta recomputed every ``recalibrate_every``."""
        cfg = self.config
        if self.frozen or self._online_count < max(cfg.learning_starts, 1) or self._online_count % cfg.train_every:
            return None
        stored = min(self._online_count, cfg.online_capacity)
        store = self._online
        safe_rows, unsafe_rows = np.flatnonzero(~store["failures"][:stored]), np.flatnonzero(store["failures"][:stored])
        if safe_rows.size == 0:
            return None
        self.train()
        stats = self.train_step(
            self._online_batch(self.rng.choice(safe_rows, cfg.batch_size)),
            self._online_batch(self.rng.choice(unsafe_rows, cfg.batch_size)) if unsafe_rows.size else None,
        )
        self.eval()
        if self._online_count % cfg.recalibrate_every == 0:
            max_abs = np.abs(
                self.latents(store["actions"][:stored], store["windows"][:stored], store["valid"][:stored])
            ).max(1)
            self.eta = eta_deterministic(max_abs, store["failures"][:stored], cfg.max_unsafe_fraction)
        return stats

    def _online_batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(torch.from_numpy(self._online[key][rows]) for key in ("actions", "windows", "valid"))

    # -- checkpoints (core.model.SafetyModel.save / load) ---------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "eta": self.eta}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.eta = float(state.get("eta", self.config.eta_init))
