"""Running counters of what a shield did, under the names every log uses.

- ``ShieldStats``: fed with ``info["shield"]`` reports (one per env step), it keeps the
  cumulative counters and the recent risks, and gives the scalars a logger writes.
- ``METRICS``: each scalar's name and one-line meaning (the documented list).

The SB3 callback (``safeshield.integrations.sb3.ShieldCallback``) and the ``safeshield train``
runs (CSV, JSONL, TensorBoard) both write ``ShieldStats.scalars()``, so a TensorBoard tag means
the same thing whichever agent produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["METRICS", "ShieldStats"]

# name -> meaning; "steps" means shielded env steps (one per sub-env per vector step)
METRICS: dict[str, str] = {
    "shield/steps": "shielded env steps so far",
    "shield/failures": "failing steps so far (indicator > 0.5)",
    "shield/interventions": "steps whose proposal the shield replaced, so far",
    "shield/fallbacks": "steps where no candidate passed and the least risky one ran, so far",
    "shield/failure_rate": "failing steps / steps in the last window",
    "shield/intervention_rate": "interventions / steps in the last window",
    "shield/fallback_rate": "fallbacks / steps in the last window",
    "shield/rejection_rate": "proposals whose risk reached the threshold / steps in the last window (in shadow "
    "mode: the ones it would have refused)",
    "shield/risk_mean": "mean risk of the agent's proposals in the last window",
    "shield/risk_p50": "median proposal risk in the last window",
    "shield/risk_p90": "90th percentile of proposal risk in the last window",
    "shield/risk_max": "largest proposal risk in the last window",
    "shield/threshold": "the threshold a proposal's risk is compared with (latest)",
    "shield/regret": "above the threshold, how much riskier than the safest action found a proposal may be "
    "(latest; a failure budget lowers it while overspent; NaN: the threshold alone decides)",
}


class ShieldStats:
    """Counters over every report seen, plus a window of the last ``window`` steps for rates and risk.

    Example:
        >>> stats = ShieldStats(window=2)
        >>> stats.update([{"failure": 0.0, "intervened": True, "fell_back": False,
        ...                "proposal_risk": 0.3, "threshold": 0.1}])
        >>> stats.scalars()["shield/intervention_rate"]
        1.0
    """

    def __init__(self, window: int = 1000):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        self.window = window
        self.steps = self.failures = self.interventions = self.fallbacks = 0
        self.threshold = self.regret = float("nan")
        self.max_risk_seen = float("-inf")  # over every proposal ever scored (the sanity checks read it)
        # ring buffers (plain lists: per-step Python work is cheaper than numpy's per-call cost)
        self._failed = [False] * window
        self._intervened = [False] * window
        self._fell_back = [False] * window
        self._rejected = [False] * window
        self._risk = [0.0] * window
        self._sums = [0, 0, 0, 0]  # failed, intervened, fell back, rejected, over the window

    def update(self, reports: Iterable[Mapping[str, Any]]) -> None:
        """Count one report per env step (``info["shield"]`` of a single env)."""
        sums = self._sums
        for report in reports:
            failure = report["failure"]  # None from a remap shield without an indicator
            failed = failure is not None and bool(failure > 0.5)
            intervened, fell_back = bool(report["intervened"]), bool(report["fell_back"])
            scored = "proposal_risk" in report  # remap shields score no proposal
            risk = float(report["proposal_risk"] if scored else report["risk"])
            rejected = scored and risk >= report["threshold"]
            slot = self.steps % self.window
            self.steps += 1
            if failed:
                self.failures += 1
            if intervened:
                self.interventions += 1
            if fell_back:
                self.fallbacks += 1
            self.threshold = report["threshold"]
            self.regret = report.get("regret", self.regret)  # remap shields have none
            if risk > self.max_risk_seen:
                self.max_risk_seen = risk
            sums[0] += failed - self._failed[slot]
            sums[1] += intervened - self._intervened[slot]
            sums[2] += fell_back - self._fell_back[slot]
            sums[3] += rejected - self._rejected[slot]
            self._failed[slot], self._intervened[slot], self._fell_back[slot] = failed, intervened, fell_back
            self._rejected[slot] = rejected
            self._risk[slot] = risk

    def update_vector(self, report: Mapping[str, Any], covered: Any = None) -> None:
        """Count a vector report (``info["shield"]`` of ``VectorShieldWrapper``: arrays over sub-envs)."""
        n = len(report["failure"])
        rows = range(n) if covered is None else np.flatnonzero(covered)
        keys = [
            key
            for key in ("failure", "intervened", "fell_back", "proposal_risk", "threshold", "regret")
            if key in report
        ]
        self.update({key: report[key][i] for key in keys} for i in rows)

    def counters(self) -> dict[str, float]:
        """The cheap part of ``scalars``: counters, window rates, threshold and regret (no risk quantiles)."""
        seen = min(self.steps, self.window)
        rates = [total / seen for total in self._sums] if seen else [float("nan")] * 4
        return {
            "shield/steps": float(self.steps),
            "shield/failures": float(self.failures),
            "shield/interventions": float(self.interventions),
            "shield/fallbacks": float(self.fallbacks),
            "shield/failure_rate": float(rates[0]),
            "shield/intervention_rate": float(rates[1]),
            "shield/fallback_rate": float(rates[2]),
            "shield/rejection_rate": float(rates[3]),
            "shield/threshold": float(self.threshold),
            "shield/regret": float(self.regret),
        }

    def scalars(self) -> dict[str, float]:
        """Every metric of ``METRICS`` (rates and risks over the window; NaN before the first step)."""
        out = self.counters()
        seen = min(self.steps, self.window)
        if seen == 0:
            return {
                **out,
                "shield/risk_mean": float("nan"),
                "shield/risk_p50": float("nan"),
                "shield/risk_p90": float("nan"),
                "shield/risk_max": float("nan"),
            }
        risk = np.asarray(self._risk[:seen], dtype=np.float64)
        ordered = np.partition(risk, (seen // 2, min(seen - 1, int(0.9 * seen))))
        out.update(
            {
                "shield/risk_mean": float(risk.mean()),
                "shield/risk_p50": float(ordered[seen // 2]),
                "shield/risk_p90": float(ordered[min(seen - 1, int(0.9 * seen))]),
                "shield/risk_max": float(risk.max()),
            }
        )
        return out
