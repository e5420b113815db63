"""How good is a shield's risk estimate? Labels, ranking, calibration and a running monitor.

- ``failure_within``: the label "a failure follows within ``horizon`` steps" for each step of
  logged episodes, with a mask of the steps whose label is known (windows cut by a time limit
  or by the end of the log are censored, never guessed).
- ``failures_within``: the number of failure steps within ``horizon`` steps, what the risk of a
  shield that counts lasting failures (``core.critic.FAILURES``) estimates; calibrated against it.
- ``roc_auc``: the area under the ROC curve of a score for binary labels (ties count one half).
- ``reliability``: the reliability diagram of probabilities against labels, and its expected
  calibration error.
- ``quality_report``: AUC, calibration, false-safe rate, intervention and fallback rates and
  the step of the first useful rejection, from per-step records (a JSON-safe dict).
- ``QualityMonitor``: the same report kept up to date online (the front ends feed it one row
  per env step); it warns once when the risk is uninformative (AUC < 0.6) or the shield falls
  back on most steps.
- ``plot_quality``: the reliability diagram and the risk histograms by label, as a figure.

Why "failure within H steps": a shield's risk is meant to rank the actions that lead to a
failure soon above those that do not (ROC AUC) and, for the thresholds of
``safeshield.core.threshold``, to be a probability of exactly that event (calibration). A shield
whose risk counts failure steps (``failures="count"``, or ``"auto"`` once a failure lasted) is
calibrated against the number of failure steps within H instead (``calibration_units: "count"``):
its risk approximates that count, a discounted one over about H steps. The AUC ranks the same
event either way.

Which risk is scored: the executed action's, because a step's label is the outcome of the action
that ran. When a shield refuses a proposal, what follows is the outcome of the action that
replaced it; scoring the refused proposal's risk against that outcome counts every failure the
shield averted as a false alarm, so the better the shield steers, the worse its critic would
look. The proposal's ranking is reported beside it (``proposal_auc``): equal to ``auc`` in
shadow mode, where every proposal runs.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "QualityMonitor",
    "ShieldQualityWarning",
    "failure_within",
    "failures_within",
    "plot_quality",
    "quality_report",
    "reliability",
    "roc_auc",
]

logger = logging.getLogger(__name__)

UNINFORMATIVE_AUC = 0.6  # below this a risk barely ranks failures above non-failures
MOSTLY_FALLING_BACK = 0.5  # "falls back on most steps"
# a step's count of the failures in its window: still counting, final, or cut by a time limit (censored)
COUNT_OPEN, COUNT_FINAL, COUNT_CENSORED = 0, 1, 2


class ShieldQualityWarning(UserWarning):
    """The shield's risk is uninformative, or it falls back on most steps."""


def failure_within(
    failure: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels "a failure occurs within ``horizon`` steps" for consecutive steps of one env.

    Step ``t``'s transition fails when ``failure[t]`` (its next state is a failure); the label of
    ``t`` is 1 when one of the transitions ``t .. t + horizon - 1`` of the same episode fails.
    Returns ``(labels, known)``: a label is known when a failure came within the window, when
    ``horizon`` steps passed without one, or when the episode terminated without failure;
    it is censored (``known`` False) when a truncation or the end of the log cut the window.
    """
    if int(horizon) < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    failure = np.asarray(failure, dtype=float) > 0.5
    ended = np.asarray(terminated, dtype=bool) | failure
    truncated = np.asarray(truncated, dtype=bool) & ~ended
    n = failure.size
    labels = np.zeros(n, dtype=np.int8)
    known = np.zeros(n, dtype=bool)
    # distance to the end of each step's episode, scanning backwards
    next_fail = next_stop = -1  # index of the episode's failure / its end (termination or cut)
    stop_censored = True  # the log's end censors the last episode
    for t in range(n - 1, -1, -1):
        if ended[t] or truncated[t]:
            next_stop, stop_censored = t, bool(truncated[t])
            next_fail = t if failure[t] else -1
        if next_stop < 0:  # after the log's last episode boundary: the log's end cuts the window
            known[t] = n - t >= horizon
            continue
        if next_fail >= 0 and next_fail - t < horizon:
            labels[t], known[t] = 1, True
        elif next_stop - t >= horizon:
            known[t] = True
        else:  # the episode ends inside the window without failing: known unless it was cut
            known[t] = not stop_censored
    return labels, known


def failures_within(
    failure: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Number of failure steps among transitions ``t .. t + horizon - 1`` of the same episode.

    Returns ``(counts, known)``: a count is known once its window ran ``horizon`` steps or the episode
    terminated inside it; a truncation or the end of the log inside the window censors it (the count
    would be a lower bound). A failure that ends its episode counts once, as one that lasts counts each step.
    """
    if int(horizon) < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    failure = np.asarray(failure, dtype=float) > 0.5
    terminated = np.asarray(terminated, dtype=bool)
    truncated = np.asarray(truncated, dtype=bool) & ~terminated
    n = failure.size
    counts = np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    ends = np.flatnonzero(terminated | truncated)
    if n and (ends.size == 0 or ends[-1] != n - 1):
        ends = np.append(ends, n - 1)  # the log's end closes the last episode, cut
    start = 0
    for end in ends:
        cumulative = np.concatenate(([0], np.cumsum(failure[start : end + 1])))
        steps = np.arange(end + 1 - start)
        window_end = np.minimum(steps + int(horizon), steps.size)
        counts[start : end + 1] = cumulative[window_end] - cumulative[steps]
        known[start : end + 1] = terminated[end] | (steps + int(horizon) <= steps.size)
        start = end + 1
    return counts, known


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Probability that a random positive scores above a random negative (ties count 1/2).

    NaN when either class is empty. The Mann-Whitney form, O(n log n).
    """
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(labels).astype(bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=float)
    sorted_scores = scores[order]
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [scores.size]))
    average = (starts + ends + 1) / 2.0  # 1-based mean rank of each tie group
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability(probs: Sequence[float], labels: Sequence[float], bins: int = 10, upper: float = 1.0) -> dict[str, Any]:
    """Reliability diagram on ``bins`` equal-width bins of [0, ``upper``] and its expected calibration error.

    Returns ``{"edges", "mean_predicted", "observed", "count", "ece"}``; empty bins hold NaN
    means and count 0. ECE = sum over bins of count/n * |observed - mean_predicted|. Probabilities
    against 0/1 labels by default; predicted counts against observed counts with ``upper`` their range.
    """
    probs = np.clip(np.asarray(probs, dtype=float), 0.0, upper)
    labels = np.asarray(labels, dtype=float)
    edges = np.linspace(0.0, upper, int(bins) + 1)
    index = np.clip(np.searchsorted(edges, probs, side="right") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, probs, minlength=bins) / count
        observed = np.bincount(index, labels, minlength=bins) / count
    filled = count > 0
    ece = float((count[filled] / max(probs.size, 1) * np.abs(observed[filled] - mean_predicted[filled])).sum())
    return {
        "edges": edges.tolist(),
        "mean_predicted": [None if np.isnan(v) else float(v) for v in mean_predicted],
        "observed": [None if np.isnan(v) else float(v) for v in observed],
        "count": count.tolist(),
        "ece": ece if probs.size else float("nan"),
    }


def quality_report(
    risk: Sequence[float],
    labels: Sequence[int],
    *,
    intervened: Sequence[bool] | None = None,
    fell_back: Sequence[bool] | None = None,
    rejected: Sequence[bool] | None = None,
    steps: Sequence[int] | None = None,
    horizon: int | None = None,
    bins: int = 10,
    proposal_risk: Sequence[float] | None = None,
    counts: Sequence[float] | None = None,
    counts_known: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """The shield-quality report of steps with known labels (see ``failure_within``).

    With ``counts`` (failure steps within the horizon, ``failures_within``; ``counts_known`` masks the
    censored ones), the risk is a count and its calibration compares it with them
    (``calibration_units: "count"``), on bins of [0, the largest risk or count].

    ``risk``: the risk of the executed action, whose outcome ``labels`` records (failure within
    the horizon); ``auc``, the calibration and ``first_useful_rejection`` rank it. With
    ``proposal_risk``, ``proposal_auc`` ranks the proposals' risk against the same outcomes
    (lowered by every failure an intervention averted: module docstring). ``false_safe_rate``: the
    share of accepted steps (not intervened) that were followed by a failure within the horizon.
    ``first_useful_rejection``: the step of the first rejection at which the risk was already
    informative (AUC >= 0.6 on the steps before it, with at least 5 of each label).
    With ``rejected`` (the proposal's risk reached the threshold: scored against candidates, or in
    shadow mode refused had the shield enforced): ``rejection_rate``, and the failure-within-horizon
    rate after the rejected and after the passed proposals (``failure_rate_rejected``,
    ``failure_rate_passed``). In shadow mode every proposal runs, and a threshold that separates
    risky from safe makes the first high and the second low; enforcing, a rejected step runs the
    action that replaced the proposal, and the first is the failure rate after the shield's choices.
    """
    risk = np.asarray(risk, dtype=float)
    labels = np.asarray(labels).astype(np.int8)
    n = risk.size
    intervened = np.zeros(n, bool) if intervened is None else np.asarray(intervened, dtype=bool)
    fell_back = np.zeros(n, bool) if fell_back is None else np.asarray(fell_back, dtype=bool)
    accepted = ~intervened
    report: dict[str, Any] = {
        "horizon": horizon,
        "steps": n,
        "failure_rate_within_horizon": float(labels.mean()) if n else float("nan"),
        "auc": roc_auc(risk, labels),
        "calibration_units": "probability" if counts is None else "count",
        "calibration": (
            reliability(risk, labels, bins) if counts is None else _count_calibration(risk, counts, counts_known, bins)
        ),
        "false_safe_rate": float(labels[accepted].mean()) if accepted.any() else float("nan"),
        "intervention_rate": float(intervened.mean()) if n else float("nan"),
        "fallback_rate": float(fell_back.mean()) if n else float("nan"),
        "first_useful_rejection": None,
    }
    if proposal_risk is not None:
        report["proposal_auc"] = roc_auc(np.asarray(proposal_risk, dtype=float), labels)
    report["ece"] = report["calibration"]["ece"]
    if rejected is not None and n:
        rejected = np.asarray(rejected, dtype=bool)
        report["rejection_rate"] = float(rejected.mean())
        report["failure_rate_rejected"] = float(labels[rejected].mean()) if rejected.any() else float("nan")
        report["failure_rate_passed"] = float(labels[~rejected].mean()) if not rejected.all() else float("nan")
        steps = np.arange(n) if steps is None else np.asarray(steps)
        report["first_useful_rejection"] = _first_useful_rejection(risk, labels, rejected, steps)
    return report


def _count_calibration(risk: np.ndarray, counts, known, bins: int) -> dict[str, Any]:
    """``reliability`` of a counted risk against the failure steps within the horizon (known windows)."""
    counts = np.asarray(counts, dtype=float)
    known = np.ones(counts.size, bool) if known is None else np.asarray(known, dtype=bool)
    risk, counts = risk[known], counts[known]
    upper = max(1.0, float(risk.max()) if risk.size else 0.0, float(counts.max()) if counts.size else 0.0)
    return reliability(risk, counts, bins, upper=upper)


def _first_useful_rejection(risk, labels, rejected, steps) -> int | None:
    """Step of the first rejection made once the risk ranked the steps before it (AUC >= 0.6)."""
    candidates = np.flatnonzero(rejected)
    if candidates.size == 0:
        return None
    positives = np.cumsum(labels)
    negatives = np.arange(1, labels.size + 1) - positives
    # check a bounded number of rejections: evenly spaced, so the cost stays O(n log n) * 50
    for index in candidates[:: max(1, candidates.size // 50)]:
        if positives[index] < 5 or negatives[index] < 5:
            continue
        if roc_auc(risk[:index], labels[:index]) >= UNINFORMATIVE_AUC:
            return int(steps[index])
    return None


class QualityMonitor:
    """A running shield-quality report: one ``update`` per env step and row, ``report()`` any time.

    Each row (env) keeps the steps of its current window (the last ``horizon``); a step's
    label is settled when a failure comes within ``horizon`` steps (1), when ``horizon`` steps
    pass or the episode terminates without failure (0), and dropped when a time limit cuts
    the window (censored). The last ``window`` settled steps make the report. Each step also
    counts the failure steps of its window (``failures_within``), final once the window ran out or
    the episode terminated: a counting shield's calibration (``report(counting=True)``).

    Every ``check_every`` steps it judges the current risk on recent evidence: the steps settled
    since the last check, reaching further back only as far as needed to hold ``min_failures``
    failures and ``min_labels`` steps not followed by one (a critic's first steps, before it
    learned, must not count against it later; and the labels before one failure are one piece of
    evidence, not ``horizon`` pieces). It warns once, with a ``ShieldQualityWarning``, when two
    checks in a row find the AUC of the executed action's risk below 0.6 (one check may still cover
    the critic's learning), or when more than half of the recent steps fell back. If a later check
    finds the risk informative again it says so on the ``safeshield`` logger; ``report()["warnings"]``
    lists both events.
    """

    def __init__(
        self,
        horizon: int,
        n_envs: int = 1,
        window: int = 20_000,
        min_labels: int = 20,
        min_failures: int = 5,
        check_every: int = 1000,
        warn: bool = True,
    ):
        if int(horizon) < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        self.horizon, self.window, self.min_labels = int(horizon), int(window), int(min_labels)
        self.min_failures = int(min_failures)
        self.check_every, self.warn = int(check_every), warn
        self.open = [deque() for _ in range(int(n_envs))]
        self.counting_windows = [deque() for _ in range(int(n_envs))]  # each row's last horizon steps' counts
        # settled steps: step, proposal risk, executed risk, rejected, intervened, fell_back, label; and beside
        # them, aligned, each one's window count: a [failure steps, COUNT_*] cell updated until it is final
        self.settled: deque[tuple] = deque(maxlen=self.window)
        self.settled_counts: deque[list] = deque(maxlen=self.window)
        self.steps = 0
        self.failures = 0
        self.interventions = 0
        self.fallbacks = 0
        self.first_rejection: int | None = None
        self.warned: set[str] = set()
        self.events: list[dict[str, Any]] = []  # the warnings given and withdrawn: kind, step, value
        self.settled_total = 0  # steps ever settled (the deque forgets), to find those since the last check
        self.settled_at_check = 0
        self.failure_rows: deque[int] = deque(maxlen=self.window)  # settled_total index of each failing step
        self.uninformative_checks = 0  # consecutive checks with an AUC below UNINFORMATIVE_AUC
        self.uninformative = False  # declared so (two such checks), until a check finds it informative

    def update(
        self,
        row: int,
        proposal_risk: float,
        risk: float,
        rejected: bool,
        intervened: bool,
        fell_back: bool,
        failure: bool,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Record one step of env ``row`` (its outcome included)."""
        pending = self.open[row]
        cell = [0, COUNT_OPEN]
        pending.append((self.steps, proposal_risk, risk, rejected, intervened, fell_back, cell))
        self._count(row, cell, failure, terminated, truncated)
        self.steps += 1
        self.interventions += bool(intervened)
        self.fallbacks += bool(fell_back)
        if rejected and self.first_rejection is None:
            self.first_rejection = self.steps - 1
        if failure:
            self.failures += 1
            self._settle(pending, 1)
            self.failure_rows.append(self.settled_total - 1)
        elif terminated:
            self._settle(pending, 0)
        elif truncated:
            pending.clear()
        elif len(pending) >= self.horizon:
            self._settle_oldest(pending)
        if self.warn and self.steps % self.check_every == 0:
            self._check()

    def _count(self, row: int, cell: list, failure: bool, terminated: bool, truncated: bool) -> None:
        """Add this step's failure to the counts of the windows it falls in (this step's and the
        ``horizon - 1`` before it), and close the windows that ran out or that the episode's end cut."""
        windows = self.counting_windows[row]
        windows.append(cell)
        if failure:
            for open_cell in windows:
                open_cell[0] += 1
        if len(windows) >= self.horizon:  # the oldest window ran its horizon steps
            windows.popleft()[1] = COUNT_FINAL
        if terminated or truncated:
            for open_cell in windows:
                open_cell[1] = COUNT_FINAL if terminated else COUNT_CENSORED
            windows.clear()

    def _settle(self, pending: deque, label: int) -> None:
        while pending:
            self._settle_oldest(pending, label)

    def _settle_oldest(self, pending: deque, label: int = 0) -> None:
        *fields, cell = pending.popleft()
        self.settled.append((*fields, label))
        self.settled_counts.append(cell)
        self.settled_total += 1

    def arrays(self) -> dict[str, np.ndarray]:
        """The settled steps as arrays (``step``, ``proposal_risk``, ``risk``, ..., ``label``), and ``count``,
        each step's failure steps within the horizon, with ``count_known`` (its window is closed, not cut)."""
        names = ("step", "proposal_risk", "risk", "rejected", "intervened", "fell_back", "label")
        if not self.settled:
            return {name: np.zeros(0) for name in (*names, "count")} | {"count_known": np.zeros(0, bool)}
        columns = dict(zip(names, np.array(self.settled, dtype=float).T))
        cells = np.array(self.settled_counts, dtype=np.int64)
        return columns | {"count": cells[:, 0].astype(float), "count_known": cells[:, 1] == COUNT_FINAL}

    def report(self, bins: int = 10, counting: bool = False) -> dict[str, Any]:
        """``quality_report`` on the settled window (the executed action's risk, and the proposal's), plus totals;
        ``counting``: the risk counts failure steps, calibrated against the failure steps within the horizon."""
        data = self.arrays()
        report = quality_report(
            data["risk"],
            data["label"],
            proposal_risk=data["proposal_risk"],
            intervened=data["intervened"],
            fell_back=data["fell_back"],
            rejected=data["rejected"],
            steps=data["step"].astype(int),
            horizon=self.horizon,
            bins=bins,
            counts=data["count"] if counting else None,
            counts_known=data["count_known"] if counting else None,
        )
        report.update(
            total_steps=self.steps,
            total_failures=self.failures,
            total_interventions=self.interventions,
            total_fallbacks=self.fallbacks,
            first_rejection=self.first_rejection,
            warnings=list(self.events),
        )
        return report

    def _check(self) -> None:
        data = self.arrays()
        new = min(self.settled_total - self.settled_at_check, data["label"].size)
        self.settled_at_check = self.settled_total
        if data["label"].size == 0:
            return
        recent = data["fell_back"][-self.check_every :]
        if "fallback" not in self.warned and recent.size and recent.mean() > MOSTLY_FALLING_BACK:
            self.warned.add("fallback")
            self.events.append({"kind": "falls_back", "step": self.steps, "fallback_rate": float(recent.mean())})
            warnings.warn(
                f"the shield fell back on {recent.mean():.0%} of its last {recent.size} steps: no candidate "
                "passed its threshold, so it executed the least risky one. Its risk may be too pessimistic "
                "or its threshold too strict; see the shield's quality report (safety_model.quality.report())",
                ShieldQualityWarning,
                stacklevel=3,
            )
        count = self._recent_evidence(data["label"], new)
        if count:
            self._judge_auc(roc_auc(data["risk"][-count:], data["label"][-count:]), count)

    def _recent_evidence(self, labels: np.ndarray, new: int) -> int:
        """How many of the last settled steps to judge: the ``new`` ones, or as many more as it takes to hold
        ``min_failures`` failures and ``min_labels`` steps labelled 0 (0 when the window holds fewer)."""
        negatives = np.flatnonzero(np.cumsum(1 - labels[::-1]) >= self.min_labels)
        if negatives.size == 0 or len(self.failure_rows) < self.min_failures:
            return 0
        for_failures = self.settled_total - self.failure_rows[-self.min_failures]
        count = max(new, int(negatives[0]) + 1, for_failures)
        return count if count <= labels.size else 0

    def _judge_auc(self, auc: float, count: int) -> None:
        """Declare the risk uninformative after two checks in a row below ``UNINFORMATIVE_AUC``, informative again
        at the next check above it; each change is an event, the first declaration a warning."""
        self.uninformative_checks = 0 if auc >= UNINFORMATIVE_AUC else self.uninformative_checks + 1
        if auc >= UNINFORMATIVE_AUC and self.uninformative:
            self.uninformative = False
            self.events.append({"kind": "informative", "step": self.steps, "auc": auc})
            logger.info(
                "the shield's risk is informative now: ROC AUC %.2f for 'failure within %d steps' over its last %d "
                "settled steps (the earlier warning no longer holds)",
                auc,
                self.horizon,
                count,
            )
        elif self.uninformative_checks >= 2 and not self.uninformative:
            self.uninformative = True
            self.events.append({"kind": "uninformative", "step": self.steps, "auc": auc})
            message = (
                f"the shield's risk is uninformative: ROC AUC {auc:.2f} < {UNINFORMATIVE_AUC} for 'failure within "
                f"{self.horizon} steps' over its last {count} settled steps, at two checks in a row. It cannot yet "
                "tell risky actions from safe ones; check the indicator and the horizon"
            )
            if "auc" in self.warned:  # warned once already: the log says it again
                logger.warning(message)
            else:
                self.warned.add("auc")
                warnings.warn(message, ShieldQualityWarning, stacklevel=4)


def plot_quality(report: dict[str, Any], path=None, data: dict[str, np.ndarray] | None = None):
    """Reliability diagram (and, given ``data`` from ``QualityMonitor.arrays``, risk histograms by label:
    of the executed action's ``risk``, or of ``proposal_risk`` when only that is given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, 2 if data is not None else 1, figsize=(9 if data is not None else 4.5, 4), squeeze=False
    )
    ax = axes[0, 0]
    cal = report["calibration"]
    counted = report.get("calibration_units") == "count"
    upper = cal["edges"][-1]
    predicted = [np.nan if v is None else v for v in cal["mean_predicted"]]
    observed = [np.nan if v is None else v for v in cal["observed"]]
    ax.plot([0, upper], [0, upper], color="grey", linestyle=":", label="calibrated")
    ax.plot(predicted, observed, marker="o", label=f"shield (ECE {cal['ece']:.3f})")
    outcome = "failure steps" if counted else "failure"
    ax.set(
        xlabel="predicted risk" + (" (a count of failure steps)" if counted else ""),
        ylabel=f"observed {outcome} within {report['horizon']} steps",
        title=f"reliability, AUC {report['auc']:.2f}",
        xlim=(0, upper),
        ylim=(0, upper),
    )
    ax.legend(loc="upper left")
    if data is not None:
        ax = axes[0, 1]
        label = data["label"] > 0.5
        key = "risk" if "risk" in data else "proposal_risk"  # the executed action's, else the proposal's
        bins = np.linspace(0, max(1.0, float(np.max(data[key], initial=0.0))), 31)  # a count may exceed 1
        ax.hist(data[key][~label], bins=bins, alpha=0.6, density=True, label="no failure within H")
        ax.hist(data[key][label], bins=bins, alpha=0.6, density=True, label="failure within H")
        what = "the executed action" if key == "risk" else "the proposal"
        ax.set(xlabel=f"risk of {what}", ylabel="density", title="risk by outcome")
        ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
