"""SQRL: a safety critic Q_safe(s, a) that rejects actions likely to lead to failure.

Paper: Srinivasan, Eysenbach, Ha, Tan, Finn, "Learning to be Safe: Deep RL with a Safety
Critic" (2020), arXiv:2010.14603.

What this module implements:

- Eq. 2 and the Bellman backup of §5.1 (``bellman_target``), learned by TD(0) against a delayed
  (Polyak) target network, in the next-state label convention: the network's output *is* the
  paper's Q_safe, so ``eps_safe`` compares with it directly.
- Eq. 3 / Eq. 5, the masked policy, through the shared decision core
  (``safeshield.core.decision``) with this critic as the risk; §6's action selection
  (``pretraining=True`` picks the riskiest safe candidate).
- App. D: the critic trains online on a small buffer D_safe (``buffer_capacity``).

The label-convention derivation and every deviation from the paper (sigmoid + cross-entropy
output, no class weighting, SARSA next action, candidate sampling) are in ``docs/sqrl.md``.

Where the defaults differ from the paper (``preset="paper"`` restores it exactly; see
``docs/effectiveness.md``): the risk is the failure indicator discounted by 1 - 1/H over a
0.5 s horizon (H steps with the env's dt, else 20), learned from H-step targets along the stored
episode on failure-balanced, importance-weighted minibatches (``core.targets``) instead of
TD(0) at gamma_safe 0.7; a proposal passes unchecked below eps_safe 0.1, and above it whenever
its risk is within ``regret`` 0.05 of the least risky action found, and otherwise that least risky
action runs (``selection="safest"``; ``core.decision``); a warm-up (``core.threshold``); a 2 x 64
critic at learning rate 1e-3; widened candidate rounds; once a failure does not end its episode (a
per-step cost that lasts), the risk counts the failure steps ahead instead of the first
(``FAILURES``). Opt-in and not in the paper: ``n_critics``
independent critics combined by ``ensemble_risk`` (``core.critic.ENSEMBLE_RISKS``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from safeshield.core.buffer import Batch
from safeshield.core.critic import DISCOUNTED_TARGETS, FAILURES, CriticConfig, SafetyCritic
from safeshield.core.model import register_method
from safeshield.core.networks import ActionHeadsNet, StateActionNet, adam, polyak, start_optimistic
from safeshield.core.validation import check_interval, check_positive, check_widths

__all__ = ["FAILURES", "SQRL", "SQRLConfig"]

EPS_DEFAULT = 0.1  # our choice: an action less than 10 % likely to fail within the horizon passes unchecked
REGRET_DEFAULT = (
    0.05  # our choice: above that, allow up to 5 points of failure probability over the safest action found
)
PAPER = {
    "target": "td",  # §5.1: one-step Bellman backup
    "eps_safe": 0.1,  # Table 1 ("target safety")
    "gamma_safe": 0.7,  # Table 1
    "hidden": (256, 256),  # Table 1
    "balance": 0.0,  # App. D: uniform minibatches from D_safe
    "budget": None,
    "warmup_failures": 0,
    "warmup_updates": 0,
    "regret": None,  # Eq. 5: an absolute threshold only
    "lr": 3e-4,  # Table 1
    "learning_starts": 500,  # paper silent; this project's setting before the defaults below
    "guard": False,
    "widen_policy": False,  # §6: candidates from pi only
    "selection": "uniform",  # Eq. 3: a safe draw of pi (the first, with candidates drawn from pi)
    "horizon_seconds": None,
    "normalize_obs": False,
    "failures": "first",  # the backup stops at a failure (which ends the episode in the paper's tasks)
}
"""``preset="paper"``: SQRL as published (Srinivasan et al. 2020, arXiv:2010.14603)."""


@dataclass(frozen=True)
class SQRLConfig(CriticConfig):
    """SQRL defaults; each cites its source. ``preset="paper"`` restores the paper's (``PAPER``)."""

    target: str = "nstep"  # our choice: discounted failure over the horizon, never saturates (paper: "td")
    eps_safe: float = EPS_DEFAULT  # our choice (see below); paper: 0.1 (Table 1)
    gamma_safe: float = 0.7  # SQRL Table 1 (0.65 for DrunkSpider, Table 2); used by target="td" only
    lr: float = 1e-3  # our choice: the 2 x 64 classifier must learn faster than the agent (paper: 3e-4, Table 1)
    hidden: tuple[int, ...] = (64, 64)  # our choice: a (s, a) classifier needs far less than Table 1's 2 x 256
    tau: float = 0.005  # official code configs/sqrl.gin target_update_tau
    fail_weight: float = 0.5  # official code uses 0.75; 0.5 = unweighted, keeps Q calibrated (see module doc)
    pretraining: bool = False  # §6: pre-training explores the boundary (overrides selection with "riskiest")
    selection: str = "safest"  # our choice: a refused proposal gives way to the least risky action (paper: Eq. 3)
    regret: float | None = REGRET_DEFAULT  # relative rule (core.decision); paper: None (Eq. 5's threshold only)
    learning_starts: int = 256  # our choice: learn as soon as one minibatch (or 5 failures) is stored
    warmup_updates: int = 100  # our choice: no rejection before 100 updates (run at once at the 5th stored failure)
    normalize_obs: bool = True  # our choice: standardised inputs (joint velocities beside a tilt); paper: raw
    failures: str = "auto"  # our choice: count failure steps once a failure does not end its episode (FAILURES)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"default": {}, "paper": PAPER}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_interval("eps_safe", self.eps_safe, 0.0, 1.0, closed="right")
        check_interval("gamma_safe", self.gamma_safe, 0.0, 1.0, closed="right")
        check_interval("fail_weight", self.fail_weight, 0.0, 1.0, closed="neither")
        check_interval("tau", self.tau, 0.0, 1.0, closed="right")
        check_positive("lr", self.lr)
        check_widths("hidden", self.hidden)
        if self.failures != "first" and self.target == "td" and self.gamma_safe >= 1.0:
            raise ValueError(
                f"failures={self.failures!r} with target 'td' needs gamma_safe < 1 (the discounted count of "
                f"failure steps is bounded by gamma_safe / (1 - gamma_safe)), got gamma_safe={self.gamma_safe!r}; "
                "lower gamma_safe, use target 'nstep', or failures='first'"
            )


def bellman_target(
    failure: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma_safe: float, absorbing: bool = True
) -> torch.Tensor:
    """SQRL's target in the next-state label convention (module docstring): in [0, gamma_safe];
    ``absorbing=False`` counts every failure step (``FAILURES``: "count"), in [0, gamma / (1 - gamma)]."""
    continues = (1.0 - terminated) if not absorbing else (1.0 - failure) * (1.0 - terminated)
    return gamma_safe * (failure + continues * next_q)


@register_method
class SQRL(SafetyCritic):
    """The SQRL safety critic as a shield model (``safeshield.wrap(env, "sqrl")``)."""

    name = "sqrl"
    config_class = SQRLConfig
    config: SQRLConfig

    def build(self) -> None:
        self.critic = self._critic_net()
        start_optimistic(self.critic)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizer = adam(self.critic.parameters(), self.config.lr)

    def _critic_net(self) -> torch.nn.Module:
        """One critic (with a numpy path for the per-step proposal), or ``n_critics`` in one module."""
        cfg = self.config
        if cfg.n_critics > 1:
            return self.critic_ensemble()
        if self.discrete:  # one output per action: every action scored in one forward pass
            return ActionHeadsNet(self.obs_dim, self.act_dim, cfg.hidden, scale_inputs=cfg.normalize_obs)
        return StateActionNet(self.obs_dim, self.act_dim, cfg.hidden, scale_inputs=cfg.normalize_obs)

    @property
    def _numpy_path(self) -> bool:
        """Whether the critic has a numpy forward here: one continuous-action critic on the CPU."""
        single = not self.discrete and self.config.n_critics == 1
        return single and self.critic.net[0].weight.device.type == "cpu"

    @property
    def nominal_threshold(self) -> float:
        return self.config.eps_safe

    @property
    def threshold(self) -> float:
        """eps_safe; +inf before warm-up; adapted to the failure budget / by the guard when configured."""
        return self.gated_threshold(self.config.eps_safe)

    @property
    def discount(self) -> float:
        """The per-step discount of the risk: gamma_safe (paper TD(0)), 1 - 1/horizon ("nstep"), 1 ("window")."""
        cfg = self.config
        if cfg.target == "td":
            return cfg.gamma_safe
        return self.target_gamma if cfg.target in DISCOUNTED_TARGETS else 1.0

    @property
    def risk_bound(self) -> float:
        """The risk's upper bound: the first failure's discounted chance is at most the discount (1 for
        "window"); a count of failure steps gamma / (1 - gamma) (``horizon`` within the window)."""
        if not self.counting:
            return self.discount
        if self.config.target == "window":
            return float(self.config.horizon)
        return self.discount / (1.0 - self.discount)

    @property
    def selection(self) -> str:
        """§6: "riskiest" while pre-training, the configured rule while fine-tuning."""
        return "riskiest" if self.config.pretraining else self.config.selection

    def risk(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_safe(s, a): the discounted probability of failing after taking ``a`` in ``s``.

        The network's sigmoid estimates Q_safe / gamma_safe (a probability in [0, 1]), so the
        risk is bounded by gamma_safe exactly like every Bellman target is.
        """
        risk = self.risk_bound * torch.sigmoid(self.critic(obs, actions))
        return self.combine(risk) if self.config.n_critics > 1 else risk

    def risk_all(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` risks of every action of a Discrete-like space: one pass of the action heads."""
        risk = self.risk_bound * torch.sigmoid(self.critic.all_actions(obs))
        return self.combine(risk) if self.config.n_critics > 1 else risk

    def proposal_risk(self, obs: np.ndarray, action: np.ndarray) -> float:
        """``risk`` of one pair via the critic's numpy path (no torch dispatch at batch 1)."""
        if not self._numpy_path:
            return super().proposal_risk(obs, action)
        logit = self.critic.forward_single(obs, action)
        # ``not <=`` lets NaN through to a NaN risk (never safe); only a very negative logit is 0
        return self.risk_bound / (1.0 + math.exp(-logit)) if not logit <= -700 else 0.0

    def risk_numpy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``risk`` of small numpy batches via the critic's numpy forward (no torch dispatch), larger
        ones (more than ``StateActionNet.NUMPY_MAX_ROWS`` rows) through torch."""
        obs = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        actions = np.asarray(actions, dtype=np.float32).reshape(-1, self.act_dim)
        if not self._numpy_path or obs.shape[0] > self.critic.NUMPY_MAX_ROWS:
            return super().risk_numpy(obs, actions)
        logits = self.critic._forward_buffers(obs, actions)
        # scale * sigmoid(logit) = scale / (1 + exp(-logit)); exp overflows to inf for logit < -88: risk 0
        risk = np.negative(logits)  # the one new array: the result
        with np.errstate(over="ignore"):
            np.exp(risk, out=risk)
        risk += 1.0
        np.divide(np.float32(self.risk_bound), risk, out=risk)
        return risk

    def q_safe(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Alias of ``risk`` under the paper's name, for Eq. 4 in an agent's actor loss."""
        return self.risk(obs, actions)

    def learn_step(self, batch: Batch) -> dict[str, float]:
        cfg = self.config
        obs, action = torch.from_numpy(batch.obs), torch.from_numpy(batch.action)
        failure, terminated = torch.from_numpy(batch.failure), torch.from_numpy(batch.terminated)
        with torch.no_grad():
            if cfg.target == "td" or batch.rows is None:
                next_q = self.target_risk(torch.from_numpy(batch.next_obs), torch.from_numpy(batch.next_action))
                target = bellman_target(failure, terminated, next_q, self.discount, absorbing=not self.counting)
            else:  # n-step / window targets along the stored episode (safeshield.core.targets)
                target = self.risk_target(batch, self.discount, self.target_risk)
            if self.counting:  # a window cut after m steps bootstraps a full H-step count: at most H in all
                target = target.clamp(max=self.risk_bound)
            weight = torch.where(failure > 0.5, 2 * cfg.fail_weight, 2 * (1 - cfg.fail_weight))
            if batch.weight is not None:  # importance weights of a failure-balanced minibatch
                weight = weight * torch.from_numpy(batch.weight)
        logits = self.critic(obs, action)
        target = target.expand_as(logits)
        # members are independent: each gets its own full gradient (hence the sum over members)
        loss = self.config.n_critics * F.binary_cross_entropy_with_logits(
            logits, target / self.risk_bound, weight=weight
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        polyak(self.target_critic, self.critic, cfg.tau)
        return {"safety_critic_loss": loss.item(), "mean_target": target.mean().item()}
