"""Thresholds a user can mean: a failure budget, a warm-up before rejecting, a fallback guard.

- ``BudgetThreshold``: the risk threshold adapted online so that failures per 1000 steps track
  a budget (a Lagrangian / integral rule on the log-threshold), with a guard that raises it
  while the shield falls back on most steps.
- ``WarmUp``: the shield may reject only once it has seen enough failures and made enough
  updates; before that its risk is a guess and every rejection would be noise.

The rule of ``BudgetThreshold`` (one update per env step), with f_t = 1 when the step failed,
b the budget in failures per 1000 steps and T the response time in steps:

    log ε ← clip( log ε + (1/T) (1 − f_t · 1000 / b) + g_t / T,  log ε_min, log ε_max )

Each safe step raises ε a little, each failure lowers it by 1000 / (b T) in log units, so ε
stops moving exactly when failures come at b per 1000 steps: the dual ascent of a Lagrange
multiplier on the constraint "failure rate ≤ b", with the multiplier read as log(1/ε). When
failures are unavoidable for a while (a learning agent early on) ε goes to ε_min and the
shield would reject everything and fall back on every step; the guard term g_t = +G while
the recent share of fallbacks exceeds ``max_fallback_share`` (measured over T steps) pushes
the threshold back up, so the shield ends at the strictest threshold that still lets
something pass, instead of falling back forever.

A budget per episode (``per_episode=True``: b failures per episode, e.g. χ of CSC, or a cost
limit per episode) is the same dual ascent on "failures ≤ b × episodes": a failure lowers log ε
by L̄ / (b T), an episode's end raises it by L̄ / T, where L̄ is the mean episode length so far
(steps per finished episode). The threshold stops moving exactly where failures per episode
equal b (the long-run failures per step are E[failures per episode] / E[length], the
renewal-reward identity), and L̄ only scales the steps, so that they match the per-step rule's
for the equivalent rate of 1000 b / L̄ failures per 1000 steps. Before the first episode ends
there is no credit: only failures move ε (down).

An overspent budget tightens every risk the shield tolerates, not only the threshold: ``scale`` (ε now
over ε at the start), while below 1, also multiplies the relative rule's regret (``SafetyCritic.regret``;
a proposal above ε passes while within the regret of the least risky action found). With the regret
fixed, a task whose risks are all small (a rare failure) passes almost every proposal within the regret
however far the budget lowers ε, and the budget would move nothing. Above 1 (budget to spare) the regret
stays as configured.

Without a budget (b = None) the first term is replaced by a pull back to the nominal
threshold, −(log ε − log ε_0) / T: the guard backs off while nothing passes (every action
looks as risky as every other, e.g. while any action of a still-clumsy agent fails soon),
and the configured threshold returns once the shield can choose again.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from safeshield.core.quality import ShieldQualityWarning
from safeshield.core.validation import check_count, check_finite, check_interval

__all__ = ["BudgetThreshold", "WarmUp"]

NO_EPISODE_WARNING = 10  # response times without an episode's end before a per-episode budget warns


class BudgetThreshold:
    """A risk threshold that tracks a failure budget (failures per 1000 steps), see module doc.

    Example:
        >>> threshold = BudgetThreshold(initial=0.5, budget=10.0, response_steps=100)
        >>> for _ in range(50):
        ...     _ = threshold.update(failed=True, fell_back=False)
        >>> threshold.value < 0.5
        True
    """

    def __init__(
        self,
        initial: float,
        budget: float | None,
        response_steps: int = 1000,
        low: float = 0.01,
        high: float = 0.99,
        max_fallback_share: float = 0.25,
        guard_gain: float = 4.0,
        per_episode: bool = False,
    ):
        if not 0.0 < low <= initial <= high:
            raise ValueError(
                f"need 0 < low <= initial <= high <= 1, got low={low!r}, initial={initial!r}, high={high!r}"
            )
        if budget is not None and not budget > 0:
            raise ValueError(
                f"budget must be > 0 failures per 1000 steps (or None for a fixed threshold), got {budget!r}"
            )
        if int(response_steps) < 1:
            raise ValueError(f"response_steps must be a positive integer, got {response_steps!r}")
        self.budget, self.response_steps, self.per_episode = budget, int(response_steps), bool(per_episode)
        self.steps = self.episodes = 0  # outcomes seen, and episode ends among them (per_episode's L̄)
        self.low, self.high = low, high
        self.max_fallback_share, self.guard_gain = max_fallback_share, guard_gain
        self.log_value = self.log_nominal = self.log_initial = math.log(initial)
        self.nominal = initial
        self.fallback_share = 0.0  # exponential moving average over response_steps

    def retarget(self, nominal: float) -> None:
        """A new nominal threshold to pull back to without a budget (a method whose own rule moves it,
        as CSC's per-epoch ε); one at or below ``low`` (CSC's ε ≤ 0: nothing passes) pulls to ``low``."""
        if nominal != self.nominal:
            self.nominal = nominal
            self.log_nominal = math.log(min(max(nominal, self.low), self.high))

    @property
    def value(self) -> float:
        return math.exp(self.log_value)

    @property
    def scale(self) -> float:
        """The factor by which adaptation has moved the threshold from where it started (1 at the start):
        with a budget, how much stricter (< 1) or looser (> 1) than its start the shield must now be."""
        return math.exp(self.log_value - self.log_initial)

    @property
    def guarding(self) -> bool:
        """Whether the guard is pushing the threshold up (the shield falls back on most steps)."""
        return self.fallback_share > self.max_fallback_share

    def update(self, failed: bool, fell_back: bool, episode_ended: bool = False) -> float:
        """One env step's outcome (``episode_ended``: the step ended its episode); returns the new threshold."""
        rate = 1.0 / self.response_steps
        self.fallback_share += rate * (float(fell_back) - self.fallback_share)
        self.steps += 1
        self.episodes += bool(episode_ended)
        if self.per_episode and self.episodes == 0 and self.steps == NO_EPISODE_WARNING * self.response_steps:
            warnings.warn(
                f"budget_unit='episode', but no episode has ended in {self.steps} steps: without an episode's "
                "end there is no budget to spend, so the threshold only falls. For a task without episodes, "
                "give the budget per 1000 steps (budget_unit='steps')",
                ShieldQualityWarning,
                stacklevel=4,
            )
        if self.budget is not None and self.per_episode:
            mean_length = self.steps / max(self.episodes, 1)
            step = rate * mean_length * (float(episode_ended) - float(failed) / self.budget)
        elif self.budget is not None:
            step = rate * (1.0 - float(failed) * 1000.0 / self.budget)
        else:
            step = -rate * (self.log_value - self.log_nominal)
        if self.guarding:
            step = max(step, 0.0) + rate * self.guard_gain
        self.log_value = min(max(self.log_value + step, math.log(self.low)), math.log(self.high))
        return self.value

    def state(self) -> dict[str, Any]:
        return {
            "log_value": self.log_value,
            "log_initial": self.log_initial,
            "fallback_share": self.fallback_share,
            "steps": self.steps,
            "episodes": self.episodes,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()``; a field that is not a finite number (a count: an integer >= 0) is refused by name."""
        self.log_value = check_finite("state.adaptive_threshold.log_value", state.get("log_value", self.log_value))
        self.log_initial = check_finite(  # saved before scale existed: its start is this threshold's
            "state.adaptive_threshold.log_initial", state.get("log_initial", self.log_initial)
        )
        self.fallback_share = check_interval(
            "state.adaptive_threshold.fallback_share", state.get("fallback_share", self.fallback_share), 0.0, 1.0
        )
        # saved before per-episode budgets: none counted
        self.steps = check_count("state.adaptive_threshold.steps", state.get("steps", self.steps), minimum=0)
        self.episodes = check_count(
            "state.adaptive_threshold.episodes", state.get("episodes", self.episodes), minimum=0
        )


class WarmUp:
    """Ready once ``min_failures`` failures were seen and ``min_updates`` updates made.

    A critic that has never seen a failure has nothing to rank by: its risk is its
    initialisation, and rejecting on it only disturbs the agent. A learning shield runs the
    ``min_updates`` at once when the ``min_failures``-th failure is stored
    (``SafetyCritic.after_step``), so its warm-up ends with the evidence, not on a clock.

    Example:
        >>> warm_up = WarmUp(min_failures=2, min_updates=10)
        >>> warm_up.ready(failures=1, updates=100), warm_up.ready(failures=2, updates=10)
        (False, True)
    """

    def __init__(self, min_failures: int = 0, min_updates: int = 0):
        if int(min_failures) < 0 or int(min_updates) < 0:
            raise ValueError(f"min_failures and min_updates must be >= 0, got {min_failures!r}, {min_updates!r}")
        self.min_failures, self.min_updates = int(min_failures), int(min_updates)

    def ready(self, failures: int, updates: int) -> bool:
        return failures >= self.min_failures and updates >= self.min_updates
