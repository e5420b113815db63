"""The shared Lagrange multiplier: standard dual-ascent sign, projection onto λ ≥ 0."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safeshield.agents.lagrange import LagrangeMultiplier

finite = st.floats(-1e3, 1e3, allow_nan=False)


@given(init=st.floats(0, 10), lr=st.floats(0, 1), limit=finite, measured=finite)
def test_multiplier_never_negative_and_moves_with_the_violation(init, lr, limit, measured):
    lam = LagrangeMultiplier(limit=limit, lr=lr, init=init)
    new = lam.update(measured)
    assert new >= 0.0
    if measured > limit and lr > 0:
        assert new >= init  # violated: λ grows (CSC's printed sign would shrink it)
    if measured < limit:
        assert new <= init
    assert new == pytest.approx(max(0.0, init + lr * (measured - limit)))


def test_max_value_caps_the_multiplier():
    lam = LagrangeMultiplier(limit=0.0, lr=1.0, max_value=2.0)
    assert lam.update(5.0) == 2.0


@pytest.mark.parametrize(
    "kwargs", [dict(limit=float("nan"), lr=0.1), dict(limit=0.0, lr=-1.0), dict(limit=0.0, lr=0.1, init=-1.0)]
)
def test_bad_arguments_name_themselves(kwargs):
    with pytest.raises(ValueError, match="LagrangeMultiplier"):
        LagrangeMultiplier(**kwargs)
