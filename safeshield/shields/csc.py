"""CSC: a conservative (over-estimating) safety critic with an adaptive threshold.

Paper: Bharadhwaj, Kumar, Rhinehart, Levine, Shkurti, Garg, "Conservative Safety Critics for
Exploration" (ICLR 2021), arXiv:2010.14497; the derivations and the paper's errors are in
``docs/csc.md``.

What this module implements (``preset="paper"``, or ``CSCConfig.paper()``; the defaults differ, below):

- Eq. 2, the critic loss: TD(0) plus CQL's penalty with the sign reversed,

      L(ζ) = α ( −E_{s∼D, a∼π}[Q_C(s, a)] + E_{(s,a)∼D}[Q_C(s, a)] )
             + ½ E_{(s,a,s',c)∼D}[ (Q_C(s, a) − B̂^π Q̄_C(s, a))² ],
      B̂^π Q̄_C(s, a) = c + γ (1 − c) E_{a'∼π(·|s')}[Q̄_C(s', a')],      c = C(s'),

  which pushes Q_C up on the policy's actions and down on the data's, so Q_C over-estimates
  the failure probability (tested on tabular MDPs in ``tests/shields/test_csc_theory.py``).
  α = 0.5 (the default is 0.05, below), η_Q = 2e-4, γ = 0.99 (App. A.6); Q_C ∈ [0, 1] ("capped to be ≤ 1", §4).
- Alg. 1 lines 2, 5 and 10, the adaptive threshold: V̂_C ← χ at the start; after every epoch of
  ``episodes_per_epoch`` episodes, V̂_C ← the epoch's average failures per episode, and

      ε = (1 − γ)(χ − V̂_C)                    (``threshold_units="paper"``)

  so ε = 0 in the first epoch and ε ≤ 0 whenever the last epoch failed at least χ per episode.
- Alg. 1 line 6 with App. A.4's cap: execute a ∼ π_old iff Q_C(s, a) ≤ ε, else resample, at
  most 100 tries: the proposal plus ``n_candidates = 99`` draws of the shared decision core,
  with ``selection="uniform"`` (the first safe draw, i.e. rejection sampling from π when the
  agent's sampler is attached). Executed actions then satisfy Lemma 1's deterministic core,
  V̂_C + Q_C(s, a) / (1 − γ) < χ, unless the shield fell back (flagged in ``info["shield"]``).
- ``QEnsemble`` (``"q_ensemble"``), the paper's Q-ensembles baseline (§5.2, App. A.6): the same
  filter and threshold over 20 critics trained without the CQL term (α = 0), risk = the ensemble
  maximum (Leave No Trace's pessimism over its ensemble).

- Lasting failures (opt-in ``failures="auto"`` or ``"count"``; the default keeps Eq. 2's): once a stored
  failure does not end its episode (a per-step cost while inside a hazard), Q_C becomes the discounted
  number of failure steps ahead, the cumulative cost of the CMDP of §3, with the backup
  c + γ (1 − d) Q̄_C, and V̂_C the epoch's average failure steps per episode, so χ is a budget of
  failure steps per episode. Under Eq. 2, a step inside a hazard fails whatever the action, so every
  action there has the same Q_C and none tells the way out (``core.critic.FAILURES``).

The defaults a user gets keep Eq. 2's critic, CQL term and χ, and change what makes Alg. 1 refuse every
action once an epoch has failed χ per episode (ε ≤ 0, then no action passes and the shield falls back on
every step): the critic learns the failure discounted over the shield's horizon (``target="nstep"``, 0.5 s
where the env declares its dt, else 20 steps) from failure-balanced minibatches, on standardised inputs,
and decides by the relative rule above ε = χ − V̂_C (``regret=0.05``: a proposal passes while its risk is
within 0.05 of the least risk found), the same pieces as SQRL's defaults (``core.critic``, ``core.decision``).

Where this differs from the paper, and why (the fallback after 100 tries, the threshold's
scale and ``threshold_units``, the strict comparison, the sigmoid cap and target network, the
draws of π, the frozen threshold): ``docs/csc.md``, "Choices the paper leaves open".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from safeshield.core.buffer import Batch
from safeshield.core.critic import DISCOUNTED_TARGETS, CriticConfig, SafetyCritic
from safeshield.core.model import register_method
from safeshield.core.networks import adam, polyak, start_optimistic
from safeshield.core.validation import check_choice, check_count, check_interval, check_positive, check_widths

__all__ = [
    "CSC",
    "CSCConfig",
    "QEnsemble",
    "QEnsembleConfig",
    "conservative_critic_loss",
    "csc_threshold",
]

THRESHOLD_UNITS = ("paper", "normalised")
PAPER = {
    "threshold_units": "paper",  # Alg. 1 l.5: ε = (1 − γ)(χ − V̂_C)
    "target": "td",  # Eq. 2: the one-step backup
    "balance": 0.0,  # uniform minibatches
    "regret": None,  # Alg. 1 l.6: Q_C(s, a) ≤ ε only
    "normalize_obs": False,  # raw inputs
    "horizon_seconds": None,  # the paper has no horizon; the quality report's is `horizon` steps
}
"""``preset="paper"``: CSC's filter and threshold as published (Bharadhwaj et al. 2021, arXiv:2010.14497), Eq. 2
and Alg. 1 (CSC's preset adds the paper's α = 0.5)."""


@dataclass(frozen=True)
class CSCConfig(CriticConfig):
    """CSC defaults; each cites its source."""

    chi: float = 0.05  # CSC Fig. 6 caption ("χ = 0.05 for all the baselines"); Fig. 3 says 0.03
    gamma: float = 0.99  # CSC App. A.6
    alpha: float = 0.05  # CSC App. A.6's lowest tried (0.05, 0.5, 5); paper: 0.5, measured worse (docs/csc.md)
    lr: float = 2e-4  # CSC App. A.6 (η_Q; 1e-4 also tried)
    hidden: tuple[int, ...] = (64, 64)  # our choice (paper silent): small enough for CPU runs
    tau: float = 0.005  # our choice: Polyak target rate (the paper has no target network)
    cql_samples: int = 4  # our choice: draws of π per state for E_{a∼π}[Q_C] (paper silent)
    episodes_per_epoch: int = 5  # our choice: M of Alg. 1 (not given); V̂_C averages over these
    threshold_units: str = "normalised"  # our choice: ε = χ − V̂_C; paper: (1−γ)(χ−V̂_C) (Alg. 1 l.5)
    n_candidates: int = 99  # CSC App. A.4: at most 100 tries per step = the proposal + 99 draws
    resample_rounds: int = 1  # CSC App. A.4: the 100 tries are one batch
    selection: str = "uniform"  # CSC Alg. 1 l.6: the first safe draw of π (rejection sampling)
    # Our choices, so that the shield keeps passing actions once an epoch has spent χ (ε ≤ 0 then, and
    # Alg. 1 would refuse every action); preset="paper" restores Eq. 2 and Alg. 1 (docs/csc.md, "Defaults")
    target: str = "nstep"  # the failure discounted over the horizon (paper: "td", Eq. 2's one-step backup)
    balance: float = 0.5  # failure-balanced, bias-corrected minibatches (paper: uniform)
    regret: float | None = 0.05  # relative rule above ε: risk up to the least found + 0.05 (paper: ε only)
    normalize_obs: bool = True  # standardised critic inputs (paper: raw)
    warmup_failures: int = 0  # Alg. 1 rejects from the first step (a warm-up is opt-in)
    warmup_updates: int = 0  # Alg. 1 rejects from the first step (a warm-up is opt-in)
    guard: bool = False  # Alg. 1 has none; with the relative rule the shield never falls back (opt-in guard)
    widen_policy: bool = False  # Alg. 1 l.6: candidates from pi_old only
    # "auto" / "count" (opt-in, FAILURES) count failure steps, the CMDP's cumulative cost of §3, once a
    # failure lasts (measured: docs/effectiveness.md)
    failures: str = "first"  # CSC Eq. 2: the backup stops at the first failure

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"default": {}, "paper": {**PAPER, "alpha": 0.5}}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_interval("chi", self.chi, 0.0, 1.0, closed="left")
        check_interval("gamma", self.gamma, 0.0, 1.0, closed="neither")
        check_positive("alpha", self.alpha, allow_zero=True)
        check_positive("lr", self.lr)
        check_interval("tau", self.tau, 0.0, 1.0, closed="right")
        for name in ("cql_samples", "episodes_per_epoch"):
            check_count(name, getattr(self, name))
        check_widths("hidden", self.hidden)
        check_choice("threshold_units", self.threshold_units, THRESHOLD_UNITS)


@dataclass(frozen=True)
class QEnsembleConfig(CSCConfig):
    """The Q-ensembles baseline: CSC's filter and threshold, 20 critics, no CQL term."""

    alpha: float = 0.0  # CSC §5.2: "the same filtering idea but no CQL"
    n_critics: int = 20  # CSC App. A.6: "20, as mentioned in the LNT paper"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"default": {}, "paper": PAPER}


def csc_threshold(chi: float, v_hat: float, gamma: float, units: str = "paper") -> float:
    """ε of Alg. 1 line 5: ``(1 − γ)(χ − V̂_C)``, or ``χ − V̂_C`` in ``"normalised"`` units."""
    check_choice("units", units, THRESHOLD_UNITS)
    return (chi - v_hat) * ((1.0 - gamma) if units == "paper" else 1.0)


def conservative_critic_loss(
    q_data: torch.Tensor,
    target: torch.Tensor,
    q_pi: torch.Tensor | None,
    alpha: float,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2 per critic: ``(½ E_D[(Q − y)²], α (E_D[Q] − E_π[Q]))``, each of shape ``(n_critics,)``.

    ``q_data`` / ``target``: ``(n_critics, B)`` on the dataset's (s, a); ``q_pi``: ``(n_critics,
    B')`` on (s, a ∼ π). Minimising the second term raises Q_C on π's actions and lowers it on the
    data's, the reverse of CQL, so the critic over-estimates (``tests/shields/test_csc_theory.py``).
    ``weight`` (``(B,)``): importance weights of a failure-balanced minibatch, so that both
    expectations over D stay the uniform ones.
    """
    w = torch.ones(q_data.shape[-1], dtype=q_data.dtype) if weight is None else weight
    td = 0.5 * (w * (q_data - target) ** 2).mean(dim=-1)
    if q_pi is None or alpha == 0:
        return td, torch.zeros_like(td)
    return td, alpha * ((w * q_data).mean(dim=-1) - q_pi.mean(dim=-1))


@register_method
class CSC(SafetyCritic):
    """The CSC conservative safety critic as a shield model (``safeshield.wrap(env, "csc")``)."""

    name = "csc"
    config_class = CSCConfig
    config: CSCConfig

    def build(self) -> None:
        cfg = self.config
        self.critic = self.critic_ensemble()  # a Discrete-like space: every action scored in one pass
        start_optimistic(self.critic)  # Q_C ≈ 0.01 everywhere, as the SQRL critic (core.networks)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizer = adam(self.critic.parameters(), cfg.lr)
        self.v_hat = float(cfg.chi)  # Alg. 1 line 2
        self.epochs = 0
        self._epoch_episodes = 0
        self._epoch_failures = 0  # episodes that failed
        self._epoch_start = 0.0  # failure_total when the epoch began: V̂_C's failure steps once counting

    # -- the threshold (Alg. 1 lines 2, 5, 10) ------------------------------------------------------
    @property
    def nominal_threshold(self) -> float:
        """ε of Alg. 1 line 5 from the last epoch's V̂_C."""
        cfg = self.config
        return csc_threshold(cfg.chi, self.v_hat, cfg.gamma, cfg.threshold_units)

    @property
    def threshold(self) -> float:
        """ε; +inf before the (opt-in) warm-up; adapted to a failure budget / by the guard when configured."""
        return self.gated_threshold(self.nominal_threshold)

    def on_episode_end(self, failed: bool) -> None:
        """Count the episode; after ``episodes_per_epoch`` of them, V̂_C ← their average failures (failed
        episodes; failure steps once counting)."""
        if self.frozen:
            return
        self._epoch_episodes += 1
        self._epoch_failures += int(bool(failed))
        if self._epoch_episodes >= self.config.episodes_per_epoch:
            failures = self.failure_total - self._epoch_start if self.counting else self._epoch_failures
            self.v_hat = failures / self._epoch_episodes
            self.epochs += 1
            self._epoch_episodes = self._epoch_failures = 0
            self._epoch_start = self.failure_total

    def lemma1_value(self, q_c: np.ndarray | float) -> np.ndarray:
        """V̂_C + Q_C / (1 − γ): Lemma 1's left side for an executed action (≤ χ when ε is paper's)."""
        return self.v_hat + np.asarray(q_c, dtype=np.float64) / (1.0 - self.config.gamma)

    # -- the critic ---------------------------------------------------------------------------------
    @property
    def risk_bound(self) -> float:
        """Q_C's upper bound: 1 for the first failure's probability; counting, the discounted count's
        1 / (1 − γ) (Eq. 2's backup), ``horizon`` (window) or γ_H / (1 − γ_H) (n-step)."""
        if not self.counting:
            return 1.0
        cfg = self.config
        if cfg.target == "window":
            return float(cfg.horizon)
        if cfg.target in DISCOUNTED_TARGETS:
            return self.target_gamma / (1.0 - self.target_gamma)
        return 1.0 / (1.0 - cfg.gamma)

    def q_members(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Every member's Q_C(s, a) ∈ (0, ``risk_bound``), shape ``(n_critics, batch)``."""
        return self.risk_bound * torch.sigmoid(self.critic(obs, actions))

    def risk(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_C(s, a): the (conservative) discounted probability of failing after ``a`` in ``s`` (or, counting,
        the discounted number of failure steps)."""
        return self.combine(self.q_members(obs, actions))

    def risk_all(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` risks of every action of a Discrete-like space: one pass of the action heads."""
        return self.combine(self.risk_bound * torch.sigmoid(self.critic.all_actions(obs)))

    def q_c(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Alias of ``risk`` under the paper's name, for an agent's Â_C (TRPO-Lagrangian)."""
        return self.risk(obs, actions)

    def _cql_actions(self, obs: torch.Tensor) -> torch.Tensor:
        n = self.config.cql_samples
        actions = self.policy_actions(obs, n)
        if actions is None and self.discrete:  # E over uniform actions, exactly: every action once
            return torch.eye(self.act_dim, dtype=obs.dtype).expand(obs.shape[0], -1, -1)
        if actions is None:
            actions = self.uniform_actions(obs.shape[0], n, obs.dtype)
        return actions

    def learn_step(self, batch: Batch) -> dict[str, float]:
        cfg = self.config
        obs, action = torch.from_numpy(batch.obs), torch.from_numpy(batch.action)
        next_obs = torch.from_numpy(batch.next_obs)
        failure, terminated = torch.from_numpy(batch.failure), torch.from_numpy(batch.terminated)
        with torch.no_grad():
            if cfg.target == "td" or batch.rows is None:
                next_q = self.target_risk(next_obs, torch.from_numpy(batch.next_action))
                continues = (1.0 - terminated) if self.counting else (1.0 - failure) * (1.0 - terminated)
                target = failure + cfg.gamma * continues * next_q
            else:  # n-step / window targets along the stored episode (core.targets), per member
                target = self.risk_target(batch, self.target_gamma, self.target_risk)
            if self.counting:  # a window cut after m steps bootstraps a full count: held to the bound
                target = target.clamp(max=self.risk_bound)
            weight = None if batch.weight is None else torch.from_numpy(batch.weight)
        # the loss is taken in units of the bound (Q_C / risk_bound ∈ (0, 1)), so that counting keeps its scale
        q_data = torch.sigmoid(self.critic(obs, action))
        q_pi = None
        if cfg.alpha > 0:
            with torch.no_grad():
                pi_actions = self._cql_actions(obs)
            k = pi_actions.shape[1]
            flat_obs = obs.unsqueeze(1).expand(-1, k, -1).reshape(-1, self.obs_dim)
            q_pi = torch.sigmoid(self.critic(flat_obs, pi_actions.reshape(-1, self.act_dim)))
        td, penalty = conservative_critic_loss(q_data, target / self.risk_bound, q_pi, cfg.alpha, weight)
        loss = (td + penalty).sum()  # members are independent: each gets its own full gradient
        stats = {
            "safety_critic_td_loss": td.mean().item(),
            "cql_penalty": penalty.mean().item(),
            "mean_q_data": self.risk_bound * q_data.mean().item(),
        }
        if q_pi is not None:
            stats["mean_q_pi"] = self.risk_bound * q_pi.mean().item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        polyak(self.target_critic, self.critic, cfg.tau)
        return stats

    # -- checkpoint state -----------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {
            **super().extra_state(),
            "v_hat": self.v_hat,
            "epochs": self.epochs,
            "epoch_episodes": self._epoch_episodes,
            "epoch_failures": self._epoch_failures,
            "epoch_cost": self.failure_total - self._epoch_start,
        }

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        v_hat = state.get("v_hat", self.config.chi)
        self.v_hat = check_positive("state.v_hat (failures per episode)", v_hat, allow_zero=True)
        self.epochs = int(state.get("epochs", 0))
        self._epoch_episodes = int(state.get("epoch_episodes", 0))
        self._epoch_failures = int(state.get("epoch_failures", 0))
        epoch_cost = state.get("epoch_cost", self._epoch_failures)
        epoch_cost = check_positive("state.epoch_cost (failure steps this epoch)", epoch_cost, allow_zero=True)
        self._epoch_start = self.failure_total - epoch_cost


@register_method
class QEnsemble(CSC):
    """The Q-ensembles baseline of CSC §5.2 (``safeshield.wrap(env, "q_ensemble")``)."""

    name = "q_ensemble"
    config_class = QEnsembleConfig
    config: QEnsembleConfig
