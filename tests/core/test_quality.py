"""The shield-quality report (``safeshield.core.quality``) against hand-computed values.

- ``failure_within`` labels "a failure follows within H steps" and censors windows a time
  limit or the end of the log cut;
- ``roc_auc`` and ``reliability`` match values worked out by hand on small synthetic scores;
- ``QualityMonitor`` settles labels online exactly as ``failure_within`` does offline, and warns
  once when the risk is uninformative or the shield falls back on most steps;
- ``failures_within`` counts the failure steps of each window (a counting shield's calibration), and
  the monitor counts them online as it does offline.
"""

from __future__ import annotations

import logging
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield
from safeshield.core.quality import (
    QualityMonitor,
    ShieldQualityWarning,
    failure_within,
    failures_within,
    quality_report,
    reliability,
    roc_auc,
)


def test_failure_within_labels_and_censoring():
    # episode 1: 5 steps ending in failure; episode 2: 4 steps cut by a time limit; then 3 open steps
    failure = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    terminated = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    truncated = [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    labels, known = failure_within(failure, terminated, truncated, horizon=2)
    assert labels.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert known.tolist() == [True] * 5 + [True, True, False, False] + [True, True, False]


def test_failure_within_terminal_without_failure_is_known_safe():
    labels, known = failure_within([0, 0, 0], [0, 0, 1], [0, 0, 0], horizon=10)
    assert labels.tolist() == [0, 0, 0] and known.all()


def test_auc_hand_computed():
    # positives 0.8, 0.4; negatives 0.5, 0.1, 0.4: pairs won 3 + 1 + tie 0.5 of 6 -> 4.5 / 6
    assert roc_auc([0.8, 0.4, 0.5, 0.1, 0.4], [1, 1, 0, 0, 0]) == pytest.approx(4.5 / 6)
    assert roc_auc([0.1, 0.2, 0.9], [0, 0, 1]) == 1.0
    assert roc_auc([0.9, 0.2, 0.1], [0, 0, 1]) == 0.0
    assert np.isnan(roc_auc([0.1, 0.2], [0, 0]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=2, max_size=40))
def test_auc_equals_pair_count(pairs):
    scores = np.array([p[0] for p in pairs])
    labels = np.array([p[1] for p in pairs])
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(scores, labels) == pytest.approx(wins / (pos.size * neg.size))


def test_reliability_hand_computed():
    probs = [0.05, 0.05, 0.15, 0.95, 0.95, 0.95, 0.95]
    labels = [0, 1, 0, 1, 1, 1, 0]
    cal = reliability(probs, labels, bins=10)
    assert cal["count"][0] == 2 and cal["count"][1] == 1 and cal["count"][9] == 4
    assert cal["observed"][0] == 0.5 and cal["observed"][9] == 0.75
    expected = (2 * abs(0.5 - 0.05) + 1 * abs(0 - 0.15) + 4 * abs(0.75 - 0.95)) / 7
    assert cal["ece"] == pytest.approx(expected)
    assert cal["observed"][5] is None


def test_calibrated_scores_have_small_ece():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = rng.random(20000) < p
    assert reliability(p, y)["ece"] < 0.02
    assert reliability(np.clip(p + 0.3, 0, 1), y)["ece"] > 0.2


def test_report_rates():
    report = quality_report([0.9, 0.1, 0.2, 0.8], [1, 0, 1, 0], intervened=[1, 0, 0, 1], fell_back=[1, 0, 0, 0])
    assert report["intervention_rate"] == 0.5 and report["fallback_rate"] == 0.25
    assert report["false_safe_rate"] == 0.5  # accepted steps 1 and 2; step 2 failed within H
    assert report["auc"] == pytest.approx(0.75)  # pairs (0.9, 0.1), (0.9, 0.8), (0.2, 0.1) of 4
    assert "rejection_rate" not in report  # only with ``rejected``


def test_report_rejection_rates():
    labels = [1, 1, 0, 1, 0, 0]
    report = quality_report([0.9, 0.8, 0.7, 0.2, 0.1, 0.1], labels, rejected=[1, 1, 1, 0, 0, 0])
    assert report["rejection_rate"] == 0.5
    assert report["failure_rate_rejected"] == pytest.approx(2 / 3)  # steps 0, 1 of 0, 1, 2
    assert report["failure_rate_passed"] == pytest.approx(1 / 3)  # step 3 of 3, 4, 5
    everything = quality_report([0.9, 0.8], [1, 0], rejected=[1, 1])
    assert everything["failure_rate_rejected"] == 0.5 and np.isnan(everything["failure_rate_passed"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["step", "fail", "done", "cut"]), min_size=1, max_size=60), st.integers(1, 6))
def test_monitor_settles_like_offline_labels(events, horizon):
    failure = np.array([e == "fail" for e in events])
    terminated = np.array([e in ("fail", "done") for e in events])
    truncated = np.array([e == "cut" for e in events])
    labels, known = failure_within(failure, terminated, truncated, horizon)
    monitor = QualityMonitor(horizon, warn=False)
    for t in range(len(events)):
        monitor.update(0, float(t), float(t), False, False, False, failure[t], terminated[t], truncated[t])
    data = monitor.arrays()
    order = np.argsort(data["step"])
    np.testing.assert_array_equal(data["step"][order].astype(int), np.flatnonzero(known))
    np.testing.assert_array_equal(data["label"][order], labels[known])


def test_failures_within_counts_lasting_failures_and_censors_cut_windows():
    failure = np.array([0, 1, 1, 0, 1, 0, 1, 0])
    terminated = np.array([0, 0, 0, 0, 0, 0, 1, 0])  # a failure ends the first episode at step 6
    truncated = np.zeros(8)
    counts, known = failures_within(failure, terminated, truncated, 3)
    np.testing.assert_array_equal(counts, [2, 2, 2, 1, 2, 1, 1, 0])
    # steps 4-6: the termination closes their windows; step 7: the log's end cuts its window
    np.testing.assert_array_equal(known, [1, 1, 1, 1, 1, 1, 1, 0])
    _, cut = failures_within(failure, np.zeros(8), np.eye(8)[5], 3)  # a time limit at step 5
    np.testing.assert_array_equal(cut, [1, 1, 1, 1, 0, 0, 0, 0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["step", "cost", "fail", "done", "cut"]), min_size=1, max_size=60), st.integers(1, 6))
def test_monitor_counts_like_offline_counts(events, horizon):
    """A "cost" step fails without ending its episode; a "fail" step ends it."""
    failure = np.array([e in ("cost", "fail") for e in events])
    terminated = np.array([e in ("fail", "done") for e in events])
    truncated = np.array([e == "cut" for e in events])
    counts, known = failures_within(failure, terminated, truncated, horizon)
    monitor = QualityMonitor(horizon, warn=False)
    for t in range(len(events)):
        monitor.update(0, 0.0, 0.0, False, False, False, failure[t], terminated[t], truncated[t])
    data = monitor.arrays()
    steps = data["step"].astype(int)
    np.testing.assert_array_equal(data["count_known"], known[steps])
    np.testing.assert_array_equal(data["count"][data["count_known"]], counts[steps][known[steps]])


def test_a_counting_risk_is_calibrated_against_counts():
    risk, counts = np.array([0.0, 0.1, 2.0, 2.2]), np.array([0, 0, 2, 2])
    report = quality_report(risk, (counts > 0).astype(int), counts=counts, counts_known=[1, 1, 1, 0])
    assert report["calibration_units"] == "count" and report["calibration"]["edges"][-1] == pytest.approx(2.0)
    assert report["ece"] == pytest.approx((0.1 + 0.0) / 3)  # the censored step is left out
    assert report["auc"] == 1.0
    probability = quality_report(np.clip(risk, 0, 1), (counts > 0).astype(int))
    assert probability["calibration_units"] == "probability"


def test_monitor_warns_once_on_uninformative_risk_and_fallbacks():
    rng = np.random.default_rng(0)
    monitor = QualityMonitor(horizon=3, check_every=200)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _t in range(3000):
            fails = rng.random() < 0.05
            monitor.update(0, rng.random(), 0.0, True, True, True, fails, fails, False)
    messages = [str(w.message) for w in caught if issubclass(w.category, ShieldQualityWarning)]
    assert sum("uninformative" in m for m in messages) == 1
    assert sum("fell back" in m for m in messages) == 1


def test_monitor_quiet_when_risk_is_informative():
    rng = np.random.default_rng(1)
    monitor = QualityMonitor(horizon=3, check_every=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShieldQualityWarning)
        countdown = 10
        for _t in range(3000):
            countdown -= 1
            fails = countdown == 0
            risk = 1.0 / (1 + countdown) + 0.05 * rng.random()  # rises as the failure nears
            monitor.update(0, risk, risk, False, False, False, fails, fails, False)
            if fails:
                countdown = int(rng.integers(5, 30))
    assert monitor.report()["auc"] > 0.9


def feed(monitor: QualityMonitor, steps: int, informative, rng) -> None:
    """Episodes of random length ending in a failure; the risk rises as the failure nears when
    ``informative(t)`` holds at step t, and is noise otherwise."""
    countdown = int(rng.integers(5, 30))
    for t in range(steps):
        countdown -= 1
        fails = countdown == 0
        risk = 1.0 / (1 + countdown) if informative(t) else float(rng.random())
        monitor.update(0, risk, risk, False, False, False, fails, fails, False)
        if fails:
            countdown = int(rng.integers(5, 30))


def test_a_critic_still_learning_at_the_first_check_is_not_called_uninformative():
    """The first check covers the critic's learning; the next, on the steps since, finds it informative."""
    monitor = QualityMonitor(horizon=3, check_every=500)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShieldQualityWarning)
        feed(monitor, 3000, lambda t: t >= 300, np.random.default_rng(3))
    assert monitor.uninformative_checks == 0
    assert monitor.report()["warnings"] == []


def test_the_warning_is_withdrawn_when_the_risk_becomes_informative(caplog):
    monitor = QualityMonitor(horizon=3, check_every=500)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="safeshield"):
        warnings.simplefilter("always")
        feed(monitor, 5000, lambda t: t >= 2500, np.random.default_rng(4))
    messages = [str(w.message) for w in caught if issubclass(w.category, ShieldQualityWarning)]
    assert len(messages) == 1 and "two checks in a row" in messages[0]
    events = monitor.report()["warnings"]
    assert [e["kind"] for e in events] == ["uninformative", "informative"]
    assert events[0]["step"] == 1000 and events[0]["auc"] < 0.6  # the second check of noise
    assert 2500 < events[1]["step"] <= 3500 and events[1]["auc"] > 0.9
    assert any("informative now" in r.getMessage() for r in caplog.records)


def test_a_relapse_is_logged_not_warned_twice(caplog):
    monitor = QualityMonitor(horizon=3, check_every=500)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="safeshield"):
        warnings.simplefilter("always")
        feed(monitor, 6000, lambda t: 2000 <= t < 4000, np.random.default_rng(5))
    assert sum(issubclass(w.category, ShieldQualityWarning) for w in caught) == 1
    assert [e["kind"] for e in monitor.report()["warnings"]] == ["uninformative", "informative", "uninformative"]
    assert any(r.levelno == logging.WARNING and "uninformative" in r.getMessage() for r in caplog.records)


def test_one_unforeseen_failure_is_not_enough_to_call_a_risk_uninformative():
    """The labels before a failure are one piece of evidence, not ``horizon``: two checks that each hold
    one surprise (two rare failures nobody foresaw) are judged together with the failures before them."""
    rng = np.random.default_rng(6)
    monitor = QualityMonitor(horizon=20, check_every=1000)
    surprises = (4500, 5500)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShieldQualityWarning)
        for t in range(6000):
            if t < 4000:  # a failure every 400 steps, foreseen: the risk is 1 on the 20 steps before it
                fails, risk = t % 400 == 399, 1.0 if t % 400 >= 380 else rng.random()
            else:  # then two rare ones that the risk did not see coming
                fails, risk = t in surprises, 0.5 if any(0 <= s - t < 20 for s in surprises) else rng.random()
            monitor.update(0, risk, risk, False, False, False, fails, fails, False)
    assert monitor.report()["warnings"] == []


def test_an_averted_failure_is_not_a_false_alarm():
    """The report ranks the executed action's risk against its own outcome. A shield that refuses a
    risky proposal and runs a safe action averts the failure: scored on the proposal's risk, that
    step would count against the critic (proposal_auc), scored on the executed risk it does not."""
    rng = np.random.default_rng(2)
    monitor = QualityMonitor(horizon=1, check_every=200)  # the label is the step's own outcome
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShieldQualityWarning)  # no "uninformative" warning
        for _t in range(4000):
            kind = rng.choice(["calm", "averted", "doomed"], p=[0.8, 0.15, 0.05])
            if kind == "calm":  # a safe proposal runs, nothing follows
                monitor.update(0, 0.1, 0.1, False, False, False, False, False, False)
            elif kind == "averted":  # a risky proposal refused, a safe action runs, nothing follows
                monitor.update(0, 0.9, 0.1, True, True, False, False, False, False)
            else:  # refused, but even the safest action found fails at once
                monitor.update(0, 0.9, 0.8, True, True, False, True, True, False)
    report = monitor.report()
    assert report["auc"] == pytest.approx(1.0)
    assert report["proposal_auc"] < report["auc"]
    assert report["failure_rate_rejected"] > report["failure_rate_passed"] == 0.0


def test_quality_report_without_proposals_has_no_proposal_auc():
    report = quality_report([0.1, 0.9], [0, 1])
    assert "proposal_auc" not in report
    both = quality_report([0.1, 0.9], [0, 1], proposal_risk=[0.9, 0.9])
    assert both["auc"] == 1.0 and both["proposal_auc"] == 0.5


def test_held_out_quality_checks_its_arguments():
    model = safeshield.model_for(gym.make("CartPole-v1"), "sqrl", seed=0)
    with pytest.raises(TypeError, match="reject/resample shield's model"):
        safeshield.held_out_quality("sqrl", gym.make("CartPole-v1"), lambda obs: 0)
    with pytest.raises(ValueError, match="episodes"):
        safeshield.held_out_quality(model, gym.make("CartPole-v1"), lambda obs: 0, episodes=0)
    report = safeshield.held_out_quality(
        model, gym.make("CartPole-v1"), lambda obs: 0, episodes=1000, max_steps=50, indicator="terminated"
    )
    assert report["total_steps"] == 50 and report["episodes"] < 1000
