"""Risk targets (``safeshield.core.targets``) and the buffer links they follow.

Each test holds the code to a promise of the module docstring:
- the n-step target lies in [0, 1] and equals SQRL's TD(0) target at n = 1;
- the window target (gamma = 1, n = H, no end bootstrap) is the label "failure within H steps";
- cut chains (time limit, running episode) bootstrap at the cut, terminals without failure end at 0;
- failure-balanced sampling with its importance weights recovers the uniform failure rate.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.core.buffer import NO_FAILURE, TransitionBuffer
from safeshield.core.targets import (
    balanced_rows,
    horizon_gamma,
    horizon_steps,
    multi_step_target,
)

SETTINGS = settings(max_examples=40, deadline=None)


def fill(buffer: TransitionBuffer, episodes: list[tuple[int, str]], capacity_obs: int = 1) -> list[list[int]]:
    """Store episodes of (length, end) with end in {"fail", "done", "cut", "open"}; return their rows."""
    rows = []
    for length, end in episodes:
        previous, ep_rows = None, []
        for t in range(length):
            last = t == length - 1
            failure = float(last and end == "fail")
            terminated = last and end in ("fail", "done")
            obs = np.full(capacity_obs, t, np.float32)
            previous = buffer.add(obs, np.zeros(1, np.float32), obs + 1, failure, terminated, previous=previous)
            ep_rows.append(previous)
        rows.append(ep_rows)
    return rows


def td0(buffer, rows, gamma, q_next):
    c, d = buffer.failure[rows], buffer.terminated[rows]
    return gamma * (c + (1 - c) * (1 - d) * q_next)


EPISODES = st.lists(
    st.tuples(st.integers(1, 12), st.sampled_from(["fail", "done", "cut", "open"])), min_size=1, max_size=6
)
GAMMAS = st.floats(0.05, 1.0)
CHAINS = {  # a chain's length n, discount, end rule, and the ring's capacity
    "n": st.integers(1, 15),
    "gamma": GAMMAS,
    "end": st.booleans(),
    "capacity": st.integers(4, 40),
}


@SETTINGS
@given(
    episodes=EPISODES,
    n=st.integers(1, 15),
    gamma=GAMMAS,
    q=st.floats(0.0, 1.0),
)
def test_multi_step_target_in_unit_interval(episodes, n, gamma, q):
    buffer = TransitionBuffer(200, 1, 1)
    fill(buffer, episodes)
    rows = np.arange(len(buffer))
    base, coef, boot = multi_step_target(buffer, rows, n, gamma)
    target = base + coef * q
    assert np.all(target >= -1e-12) and np.all(target <= 1 + 1e-12)
    assert np.all(boot >= 0) and np.all(boot < len(buffer))


@SETTINGS
@given(
    episodes=EPISODES,
    gamma=GAMMAS,
    q=st.floats(0.0, 1.0),
)
def test_one_step_target_is_td0(episodes, gamma, q):
    buffer = TransitionBuffer(200, 1, 1)
    fill(buffer, episodes)
    rows = np.arange(len(buffer))
    base, coef, boot = multi_step_target(buffer, rows, 1, gamma)
    np.testing.assert_allclose(base + coef * q, td0(buffer, rows, gamma, q), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(boot, rows)  # bootstrap at (s', a') of the same transition


@pytest.mark.parametrize("horizon", [1, 3, 5, 20])
def test_window_target_is_failure_within_horizon(horizon):
    buffer = TransitionBuffer(500, 1, 1)
    (fail_rows, done_rows, long_rows) = fill(buffer, [(10, "fail"), (6, "done"), (30, "open")])
    base, coef, _ = multi_step_target(buffer, np.array(fail_rows), horizon, 1.0, bootstrap_end=False)
    # a failure on the last of 10 transitions: the label is 1 for the last `horizon` of them
    expected = (np.arange(10) >= 10 - horizon).astype(float)
    np.testing.assert_array_equal(base, expected)
    np.testing.assert_array_equal(coef, 0.0)
    base, coef, _ = multi_step_target(buffer, np.array(done_rows), horizon, 1.0, bootstrap_end=False)
    np.testing.assert_array_equal(base, 0.0)  # terminated without failure: no risk
    np.testing.assert_array_equal(coef, 0.0)
    base, coef, boot = multi_step_target(buffer, np.array(long_rows), horizon, 1.0, bootstrap_end=False)
    complete = np.arange(30) + horizon <= 30
    np.testing.assert_array_equal(coef[complete], 0.0)  # H safe steps seen: label 0
    np.testing.assert_array_equal(coef[~complete], 1.0)  # cut by the running episode: bootstrap
    np.testing.assert_array_equal(boot[~complete], long_rows[-1])


def test_cut_window_bootstraps_at_the_time_limit_with_discount():
    buffer = TransitionBuffer(50, 1, 1)
    (rows,) = fill(buffer, [(4, "cut")])
    base, coef, boot = multi_step_target(buffer, np.array(rows), 10, 0.9)
    np.testing.assert_allclose(coef, 0.9 ** np.array([4, 3, 2, 1]))
    np.testing.assert_array_equal(boot, rows[-1])
    np.testing.assert_array_equal(base, 0.0)


def test_links_are_not_followed_into_evicted_rows():
    buffer = TransitionBuffer(8, 1, 1)
    fill(buffer, [(6, "open")])
    fill(buffer, [(5, "fail")])  # overwrites the first three rows of the open episode
    assert buffer.row_of(np.array([0]))[0] == -1  # id 0 is gone
    base, coef, _ = multi_step_target(buffer, np.arange(8), 20, 1.0, bootstrap_end=False)
    assert np.all((base + coef) <= 1.0)


def test_steps_to_failure_marks_the_failing_episode_only():
    buffer = TransitionBuffer(100, 1, 1)
    (fail_rows, other) = fill(buffer, [(7, "fail"), (5, "done")])
    np.testing.assert_array_equal(buffer.steps_to_failure[fail_rows], np.arange(6, -1, -1))
    assert np.all(buffer.steps_to_failure[other] == NO_FAILURE)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.8])
def test_balanced_sample_recovers_the_uniform_failure_rate(fraction):
    """The importance weights undo the oversampling: the weighted label mean is the buffer's."""
    rng = np.random.default_rng(0)
    buffer = TransitionBuffer(5000, 1, 1)
    lengths = rng.integers(20, 200, size=60)
    fill(buffer, [(int(n), "fail" if rng.random() < 0.3 else "done") for n in lengths])
    horizon = 5
    labels = (buffer.steps_to_failure[: len(buffer)] < horizon).astype(float)
    true_rate = labels.mean()
    estimates, raw = [], []
    for _ in range(400):
        rows, weights = balanced_rows(buffer, 256, fraction, horizon, rng)
        y = (buffer.steps_to_failure[rows] < horizon).astype(float)
        estimates.append(np.mean(weights * y))
        raw.append(y.mean())
    assert np.mean(raw) > 3 * true_rate  # the sample is balanced towards failures ...
    assert np.mean(estimates) == pytest.approx(true_rate, rel=0.05)  # ... and the weights correct it


def test_balanced_sample_is_uniform_without_failures():
    buffer = TransitionBuffer(100, 1, 1)
    fill(buffer, [(30, "done")])
    rows, weights = balanced_rows(buffer, 16, 0.5, 5, np.random.default_rng(0))
    assert weights is None and rows.shape == (16,)


def test_horizon_conversions():
    assert horizon_gamma(1) == 0.0 and horizon_gamma(20) == pytest.approx(0.95)
    assert horizon_steps(seconds=0.5, dt=0.05) == 10
    assert horizon_steps(horizon=25) == 25
    with pytest.raises(ValueError, match="dt"):
        horizon_steps(seconds=1.0)
    with pytest.raises(ValueError, match="horizon"):
        horizon_gamma(0.5)


def assert_same_targets(got, expected) -> None:
    """Equal ``(base, coef)``; equal bootstrap rows wherever a bootstrap term counts (coef > 0)."""
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-12)
    live = expected[1] > 0
    np.testing.assert_array_equal(got[2][live], expected[2][live])


@SETTINGS
@given(episodes=EPISODES, envs=st.integers(1, 3), **CHAINS)
def test_all_at_once_targets_equal_following_each_link(episodes, n, gamma, end, capacity, envs):
    """The vectorised path (consecutive rows) and the link-by-link path give the same targets,
    whatever the ring's evictions and however many envs interleave their episodes."""
    from safeshield.core.targets import _followed_step_by_step

    buffer = TransitionBuffer(capacity, 1, 1)
    previous = [None] * envs
    schedule = [(i % envs, length, kind) for i, (length, kind) in enumerate(episodes)]
    pending = {env: [] for env in range(envs)}
    for env, length, kind in schedule:
        pending[env].append((length, kind))
    # interleave the envs step by step, as a vector env stores them
    cursors = {env: [0, 0] for env in range(envs)}  # (episode index, step)
    while any(cursors[e][0] < len(pending[e]) for e in range(envs)):
        for env in range(envs):
            episode, t = cursors[env]
            if episode >= len(pending[env]):
                continue
            length, kind = pending[env][episode]
            last = t == length - 1
            failure = float(last and kind == "fail")
            obs = np.full(1, t, np.float32)
            row = buffer.add(
                obs,
                np.zeros(1, np.float32),
                obs + 1,
                failure,
                last and kind in ("fail", "done"),
                previous=previous[env],
            )
            previous[env] = None if last else row
            cursors[env] = [episode + 1, 0] if last else [episode, t + 1]
    rows = np.arange(len(buffer))
    fast = multi_step_target(buffer, rows, n, gamma, bootstrap_end=end)
    assert_same_targets(fast, _followed_step_by_step(buffer, rows, n, gamma, bootstrap_end=end))


@SETTINGS
@given(
    steps=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["go", "go", "fail", "done", "cut"])), max_size=80),
    horizon=st.integers(1, 40),
    gamma=GAMMAS,
    absorbing=st.booleans(),
    capacity=st.integers(4, 60),
)
def test_prefix_targets_equal_each_multi_step_target(steps, horizon, gamma, absorbing, capacity):
    """Row j of ``prefix_targets`` is the ``lengths[j]``-step target, whatever the ring's evictions
    and however three envs interleave their episodes; the lengths double up to the horizon."""
    from safeshield.core.targets import doubling_lengths, prefix_targets

    buffer = TransitionBuffer(capacity, 1, 1)
    previous: dict[int, int | None] = {0: None, 1: None, 2: None}
    for i, (env, kind) in enumerate(steps):
        obs = np.full(1, i, np.float32)
        row = buffer.add(obs, obs, obs + 1, float(kind == "fail"), kind in ("fail", "done"), previous=previous[env])
        previous[env] = row if kind == "go" else None
    lengths = doubling_lengths(horizon)
    assert lengths[0] == 1 and lengths[-1] == horizon and len(lengths) == len(set(lengths))
    assert all(b <= 2 * a for a, b in zip(lengths, lengths[1:]))
    rows = np.arange(len(buffer))
    base, coef, boot = prefix_targets(buffer, rows, lengths, gamma, absorbing=absorbing)
    for j, n in enumerate(lengths):
        expected = multi_step_target(buffer, rows, n, gamma, bootstrap_end=True, absorbing=absorbing)
        assert_same_targets((base[j], coef[j], boot[j]), expected)


@pytest.mark.parametrize("lengths", [[], [0, 2], [3, 2]])
def test_prefix_targets_refuse_bad_lengths(lengths):
    from safeshield.core.targets import prefix_targets

    buffer = TransitionBuffer(8, 1, 1)
    fill(buffer, [(3, "fail")])
    with pytest.raises(ValueError, match="lengths must be ascending positive integers"):
        prefix_targets(buffer, np.arange(3), lengths, 0.9)


@SETTINGS
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["go", "fail", "done", "cut"]), st.booleans()),
        min_size=1,
        max_size=80,
    ),
    clear_at=st.integers(0, 100),
    **CHAINS,
)
def test_remembered_targets_equal_fresh_ones_while_episodes_grow(steps, n, gamma, end, capacity, clear_at):
    """``SettledTargets`` answers exactly as ``multi_step_target`` after every stored step, while
    up to three envs interleave their episodes, the ring evicts rows and the buffer is cleared."""
    from safeshield.core.targets import SettledTargets

    buffer = TransitionBuffer(capacity, 1, 1)
    remembered = SettledTargets(buffer)
    previous: dict[int, int | None] = {0: None, 1: None, 2: None}
    for i, (env, kind, query) in enumerate(steps):
        if i == clear_at:
            buffer.clear()
            previous = dict.fromkeys(previous)
        obs = np.full(1, i, np.float32)
        failure = float(kind == "fail")
        row = buffer.add(obs, obs, obs + 1, failure, kind in ("fail", "done"), previous=previous[env])
        previous[env] = row if kind == "go" else None
        if query:
            rows = np.random.default_rng(i).integers(0, len(buffer), size=12)
            got = remembered(rows, n, gamma, bootstrap_end=end)
            assert_same_targets(got, multi_step_target(buffer, rows, n, gamma, bootstrap_end=end))


@pytest.mark.parametrize(("n", "gamma", "match"), [(0, 0.9, "n must"), (3, 1.5, "gamma must"), (3, 0.0, "gamma must")])
def test_remembered_and_fresh_targets_refuse_the_same_bad_chains(n, gamma, match):
    """A bad chain length or discount is named by both entry points, cached or not."""
    from safeshield.core.targets import SettledTargets

    buffer = TransitionBuffer(8, 1, 1)
    fill(buffer, [(3, "fail")])
    rows = np.arange(3)
    with pytest.raises(ValueError, match=match):
        multi_step_target(buffer, rows, n, gamma)
    with pytest.raises(ValueError, match=match):
        SettledTargets(buffer)(rows, n, gamma)


# ---------------------------------------------------------------- failures that last (SQRL failures="count")
LASTING = st.lists(  # one env's steps: (a failure on this step, the episode ends here, it ends by terminating)
    st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=40
)


def fill_lasting(buffer: TransitionBuffer, steps) -> None:
    """Store one env's steps where failures need not end the episode (a per-step cost)."""
    previous = None
    for t, (failure, ends, terminates) in enumerate(steps):
        obs = np.full(1, t, np.float32)
        row = buffer.add(obs, np.zeros(1, np.float32), obs + 1, float(failure), ends and terminates, previous=previous)
        previous = None if ends else row


@SETTINGS
@given(episodes=EPISODES, n=st.integers(1, 15), gamma=GAMMAS, end=st.booleans())
def test_counting_equals_the_first_failure_where_every_failure_ends_its_episode(episodes, n, gamma, end):
    buffer = TransitionBuffer(200, 1, 1)
    fill(buffer, episodes)
    rows = np.arange(len(buffer))
    first = multi_step_target(buffer, rows, n, gamma, bootstrap_end=end)
    counted = multi_step_target(buffer, rows, n, gamma, bootstrap_end=end, absorbing=False)
    assert_same_targets(first, counted)


@SETTINGS
@given(steps=LASTING, n=st.integers(1, 15), gamma=st.floats(0.05, 0.99), end=st.booleans(), share=st.floats(0, 1))
def test_counting_adds_every_failure_step_of_the_window(steps, n, gamma, end, share):
    """target = sum_k gamma^(k+1) c_k over the steps followed (no failure stops the count), plus the
    bootstrap; bounded by gamma / (1 - gamma) for Q̄ in that range, and never below the first failure's."""
    from safeshield.core.targets import _followed_step_by_step

    buffer = TransitionBuffer(64, 1, 1)
    fill_lasting(buffer, steps)
    rows = np.arange(len(buffer))
    base, coef, boot = multi_step_target(buffer, rows, n, gamma, bootstrap_end=end, absorbing=False)
    for row in rows:
        expected, current, k = 0.0, int(row), 0
        while True:
            expected += gamma ** (k + 1) * buffer.failure[current]
            following = buffer.row_of(buffer.next_id[current])
            if buffer.terminated[current] or k == n - 1 or following < 0:
                break
            current, k = int(following), k + 1
        assert base[row] == pytest.approx(expected)
        assert boot[row] == current
    bound = gamma / (1 - gamma)
    target = base + coef * share * bound
    assert (target >= 0).all() and (target <= bound + 1e-9).all()
    first_base = multi_step_target(buffer, rows, n, gamma, bootstrap_end=end)[0]
    assert (base >= first_base - 1e-12).all()  # the first failure is one of the steps counted
    slow = _followed_step_by_step(buffer, rows, n, gamma, bootstrap_end=end, absorbing=False)
    assert_same_targets((base, coef, boot), slow)
