"""``ShieldStats``: its window rates are the plain shares over the last ``window`` reports."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.core.metrics import METRICS, ShieldStats

REPORT = st.fixed_dictionaries(
    {
        "failure": st.sampled_from([0.0, 1.0]),
        "intervened": st.booleans(),
        "fell_back": st.booleans(),
        "proposal_risk": st.floats(0.0, 1.0),
        "threshold": st.sampled_from([0.1, 0.5, math.inf]),
    }
)


@settings(max_examples=100, deadline=None)
@given(st.lists(REPORT, min_size=1, max_size=40), st.integers(1, 12))
def test_window_rates_are_the_shares_over_the_last_window_reports(reports, window):
    stats = ShieldStats(window)
    stats.update(reports)
    recent = reports[-window:]
    scalars = stats.scalars()
    assert set(scalars) == set(METRICS)
    expected = {
        "shield/failure_rate": sum(r["failure"] > 0.5 for r in recent),
        "shield/intervention_rate": sum(r["intervened"] for r in recent),
        "shield/fallback_rate": sum(r["fell_back"] for r in recent),
        "shield/rejection_rate": sum(r["proposal_risk"] >= r["threshold"] for r in recent),
    }
    for name, count in expected.items():
        assert math.isclose(scalars[name], count / len(recent)), name
    assert scalars["shield/steps"] == len(reports)


def test_a_remap_report_without_a_proposal_score_is_never_a_rejection():
    stats = ShieldStats(4)
    stats.update([{"failure": None, "intervened": True, "fell_back": False, "risk": 5.0, "threshold": 1.0}])
    assert stats.scalars()["shield/rejection_rate"] == 0.0


def test_the_regret_scalar_is_the_latest_reported_and_nan_without_one():
    """``shield/regret`` follows the reports (a budget moves it); a report without one (a remap shield) keeps NaN."""
    stats = ShieldStats(4)
    stats.update([{"failure": None, "intervened": False, "fell_back": False, "risk": 0.0, "threshold": 1.0}])
    assert math.isnan(stats.scalars()["shield/regret"])
    report = {"failure": 0.0, "intervened": False, "fell_back": False, "proposal_risk": 0.2, "threshold": 0.1}
    stats.update([{**report, "regret": 0.05}, {**report, "regret": 0.0125}])
    assert stats.scalars()["shield/regret"] == 0.0125
