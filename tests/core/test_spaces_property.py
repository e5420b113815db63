"""Every Gymnasium space either works or is refused clearly at wrap time (hypothesis).

Random observation spaces (Box float32/float64 with finite or infinite bounds, Discrete, and
Dict / Tuple nests of them) and action spaces (Box float32/float64, tiny, wide and
float32-overflowing bounds; Discrete with any start; MultiDiscrete; MultiBinary) are wrapped with
SQRL and CSC shields and stepped. Either ``safeshield.wrap`` refuses the pair with a
``TypeError`` / ``ValueError`` that names the action space and what to do instead, exactly
when the pair is one the shield cannot represent, or every step:

- executes an action that the action space ``contains`` (in its own dtype),
- returns the env's observation untouched and reports the same ``info["shield"]`` keys,
- reports a finite risk and a finite proposal risk.

The CI profile runs ``SAFESHIELD_HYPOTHESIS_EXAMPLES`` examples (default 25);
``benchmarks/spaces_property.py`` runs it with 1,000 or more.
"""

from __future__ import annotations

import math
import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeshield

torch.set_num_threads(1)
EXAMPLES = int(os.environ.get("SAFESHIELD_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
KEYS = {
    "proposed_action",
    "executed_action",
    "intervened",
    "risk",
    "proposal_risk",
    "threshold",
    "regret",
    "fell_back",
    "n_candidates",
    "failure",
}
F32_MAX = float(np.finfo(np.float32).max)


@st.composite
def boxes(draw, *, infinite: bool, action: bool):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    kind = draw(
        st.sampled_from(
            ["unit", "tiny", "wide", "offset"]
            + (["infinite"] if infinite else [])
            + (["overflow"] if action and dtype == np.float64 else [])
        )
    )
    if kind == "unit":
        low, high = -1.0, 1.0
    elif kind == "tiny":
        low, high = 0.0, draw(st.sampled_from([1e-3, 1e-6, 0.1]))
    elif kind == "wide":
        low, high = -1e30, 1e30
    elif kind == "offset":
        low = draw(st.floats(-100, 100))
        high = low + draw(st.floats(1e-3, 50))
    elif kind == "overflow":
        low, high = -1e300, 1e300
    else:
        low, high = -np.inf, np.inf
    return gym.spaces.Box(np.full(shape, low, dtype), np.full(shape, high, dtype), shape, dtype)


def discretes():
    return st.builds(gym.spaces.Discrete, st.integers(1, 6), start=st.integers(-3, 3))


def observation_spaces():
    leaves = st.one_of(boxes(infinite=True, action=False), discretes())
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.dictionaries(st.sampled_from(["a", "b", "c"]), children, min_size=1, max_size=3).map(gym.spaces.Dict),
            st.lists(children, min_size=1, max_size=3).map(lambda spaces: gym.spaces.Tuple(tuple(spaces))),
        ),
        max_leaves=4,
    )


def action_spaces():
    return st.one_of(
        boxes(infinite=False, action=True),
        discretes(),
        st.lists(st.integers(2, 4), min_size=1, max_size=3).map(lambda nvec: gym.spaces.MultiDiscrete(nvec)),
        st.integers(1, 4).map(gym.spaces.MultiBinary),
    )


def refusal_expected(space: gym.Space) -> bool:
    """Action spaces the shield refuses: Box bounds beyond float32 (it computes in float32)."""
    if isinstance(space, gym.spaces.Box):
        return bool(np.abs(space.low).max() > F32_MAX or np.abs(space.high).max() > F32_MAX)
    return isinstance(space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)) and not MULTI_SUPPORTED


MULTI_SUPPORTED = True  # MultiDiscrete / MultiBinary map to one Discrete of their joint actions


class SpaceEnv(gym.Env):
    """Samples observations from its space; fails (terminates) now and then; records actions."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space
        self.executed = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self.last = self.observation_space.sample()
        return self.last, {}

    def step(self, action):
        self.executed.append(action)
        self.last = self.observation_space.sample()
        terminated = bool(self.np_random.random() < 0.1)
        return self.last, float(self.np_random.normal()), terminated, False, {}


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


@SETTINGS
@given(
    observation_space=observation_spaces(),
    action_space=action_spaces(),
    method=st.sampled_from(["sqrl", "csc"]),
    seed=st.integers(0, 2**16),
)
def test_every_space_works_or_is_refused_at_wrap_time(observation_space, action_space, method, seed):
    inner = SpaceEnv(observation_space, action_space)
    options = dict(hidden=(8,), learning_starts=4, batch_size=4, buffer_capacity=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium warns about float64 / wide boxes
        try:
            env = safeshield.wrap(inner, method, "terminated", seed=seed, **options)
        except (TypeError, ValueError) as error:
            assert refusal_expected(action_space), f"refused a supported pair: {error}"
            assert "action_space" in str(error) or "action space" in str(error), str(error)
            return
        assert not refusal_expected(action_space), f"accepted {action_space}"
        action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        assert same(obs, inner.last)
        for _ in range(12):
            obs, _, terminated, truncated, info = env.step(action_space.sample())
            assert same(obs, inner.last)
            executed = inner.executed[-1]
            assert action_space.contains(executed), (action_space, executed)
            report = info["shield"]
            assert set(report) == KEYS
            assert action_space.contains(report["executed_action"])
            assert math.isfinite(report["risk"]) and math.isfinite(report["proposal_risk"])
            if terminated or truncated:
                env.reset()


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Box(np.float64(-1e300), np.float64(1e300), (2,), np.float64),
        gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
        gym.spaces.Box(0, 10, (2,), np.int64),
        gym.spaces.Text(5),
        gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Box(-1, 1, (1,)))),
    ],
    ids=["box-float64-overflow", "box-unbounded", "box-integer", "text", "tuple"],
)
def test_unrepresentable_action_spaces_are_refused_with_the_reason(space):
    with pytest.raises((TypeError, ValueError), match="action.space") as error:
        safeshield.wrap(SpaceEnv(gym.spaces.Box(-1, 1, (2,)), space), "sqrl", "terminated")
    assert "instead" in str(error.value) or "use" in str(error.value), str(error.value)
