"""The learning schedule: exactly ``floor(updates_per_step * steps)`` gradient steps, batched every ``train_every``."""

from __future__ import annotations

import math
from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeshield.shields.sqrl import SQRL, SQRLConfig

OBS = gym.spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)


class CountingSQRL(SQRL):
    """An SQRL model whose gradient step only counts (the schedule is what is under test)."""

    def learn_step(self, batch):
        self.batch_shapes.append(batch.obs.shape)
        return {}


def counting_model(**options) -> CountingSQRL:
    model = CountingSQRL(OBS, ACT, SQRLConfig(hidden=(4,), batch_size=8, **options), seed=0)
    model.batch_shapes = []
    return model


def expected_updates(ratio: float, train_every: int, learning_starts: int, stored: int) -> int:
    """``floor(r * (T' - s + 1))``, T' the last multiple of ``train_every`` in [s, stored] (s = max(starts, 1))."""
    start = max(learning_starts, 1)
    last = stored - stored % train_every
    if last < start:
        return 0
    return math.floor(Fraction(ratio).limit_denominator(1_000_000) * (last - start + 1))


def run_steps(model: CountingSQRL, steps: int) -> list[int]:
    """Store ``steps`` transitions through the front end's call pattern; return updates after each."""
    counts = []
    zeros_obs, zeros_act = np.zeros(3, np.float32), np.zeros(2, np.float32)
    for _ in range(steps):
        model.observe(zeros_obs, zeros_act, zeros_obs, 0.0, False)
        model.after_step()
        counts.append(model.updates)
    return counts


@settings(max_examples=60, deadline=None)
@given(
    ratio=st.sampled_from([0.01, 0.05, 0.1, 0.25, 1 / 3, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 4.0]),
    train_every=st.integers(1, 12),
    learning_starts=st.integers(0, 30),
    steps=st.integers(1, 150),
)
def test_schedule_runs_exactly_the_configured_number_of_updates(ratio, train_every, learning_starts, steps):
    model = counting_model(updates_per_step=ratio, train_every=train_every, learning_starts=learning_starts)
    counts = run_steps(model, steps)
    for stored, count in enumerate(counts, start=1):
        assert count == expected_updates(ratio, train_every, learning_starts, stored), (stored, counts)
    # updates happen only at multiples of train_every
    changed = [i + 1 for i in range(steps) if counts[i] != (counts[i - 1] if i else 0)]
    assert all(step % train_every == 0 for step in changed)


def test_a_tenth_is_one_update_per_ten_steps_not_drifting():
    model = counting_model(updates_per_step=0.1, learning_starts=0)
    counts = run_steps(model, 1000)
    assert counts[9] == 1 and counts[99] == 10 and counts[-1] == 100
    assert counts[8] == 0


def test_updates_owed_together_run_as_one_batched_draw():
    model = counting_model(updates_per_step=2.0, train_every=5, learning_starts=0)
    run_steps(model, 10)
    assert model.updates == 20
    assert model.batch_shapes == [(8, 3)] * 20  # each gradient step gets its own minibatch of batch_size


def test_sample_many_draws_distinct_minibatches_of_the_right_shape():
    model = counting_model()
    for i in range(50):
        model.buffer.add(np.full(3, i, np.float32), np.zeros(2, np.float32), np.zeros(3, np.float32), 0.0, False)
    batches = model.buffer.sample_many(4, 16, np.random.default_rng(0))
    assert len(batches) == 4 and all(b.obs.shape == (16, 3) and b.action.shape == (16, 2) for b in batches)
    assert all(b.obs.flags.c_contiguous for b in batches)
    assert len({b.obs[:, 0].tobytes() for b in batches}) == 4
    assert all(set(b.obs[:, 0]) <= set(range(50)) for b in batches)


def test_frozen_models_never_learn_and_earn_no_credit():
    model = counting_model(updates_per_step=0.5, learning_starts=0)
    model.freeze()
    run_steps(model, 20)
    model.unfreeze()
    assert model.updates == 0
    run_steps(model, 2)
    assert model.updates == 1


def test_changing_the_ratio_keeps_the_credit_earned():
    model = counting_model(updates_per_step=0.5, learning_starts=0)
    run_steps(model, 3)  # 1.5 earned, 1 run
    assert model.updates == 1
    model.reconfigure(updates_per_step=0.25)
    run_steps(model, 2)  # 0.5 + 0.5 earned -> 1 more
    assert model.updates == 2


def test_credit_survives_a_checkpoint(tmp_path):
    model = counting_model(updates_per_step=0.3, learning_starts=0)
    run_steps(model, 5)  # 1.5 earned, 1 run, 0.5 owed
    model.save(tmp_path / "m")
    loaded = SQRL.load(tmp_path / "m", (OBS, ACT))
    loaded.learn_step = lambda batch: {}  # count only, as CountingSQRL
    for _ in range(5):
        loaded.buffer.add(np.zeros(3, np.float32), np.zeros(2, np.float32), np.zeros(3, np.float32), 0.0, False)
    assert loaded.updates == 1
    run_steps(loaded, 2)  # 0.5 + 0.6 = 1.1 -> one more
    assert loaded.updates == 2


@pytest.mark.parametrize("steps, every, ratio", [(1, 1, 1.0), (3, 10, 0.3), (2, 4, 0.5)])
def test_legacy_gradient_steps_in_a_saved_config_become_the_same_ratio(steps, every, ratio):
    config = SQRLConfig.from_json({"gradient_steps": steps, "train_every": every})
    assert config.updates_per_step == pytest.approx(ratio) and config.train_every == every


def store(model: CountingSQRL, failures: list[bool]) -> list[int]:
    """Store one transition per entry (a failure where True) as the front end does; return updates after each."""
    counts = []
    zeros_obs, zeros_act = np.zeros(3, np.float32), np.zeros(2, np.float32)
    for failed in failures:
        model.observe(zeros_obs, zeros_act, zeros_obs, float(failed), failed)
        model.after_step()
        counts.append(model.updates)
    return counts


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 20), min_size=1, max_size=6),
    warmup_failures=st.integers(1, 4),
    warmup_updates=st.integers(0, 60),
    learning_starts=st.integers(0, 80),
)
def test_the_warm_up_updates_run_as_soon_as_its_failures_are_stored(
    gaps, warmup_failures, warmup_updates, learning_starts
):
    """The shield may reject from the step that stores its warm-up's last failure, not warmup_updates steps later:
    then it runs the warm-up's updates at once (and learns on schedule from there, even before learning_starts)."""
    model = counting_model(
        warmup_failures=warmup_failures, warmup_updates=warmup_updates, learning_starts=learning_starts
    )
    failures = [flag for gap in gaps for flag in [False] * (gap - 1) + [True]]
    counts = store(model, failures)
    seen = np.cumsum(failures)
    warm = int(np.argmax(seen >= warmup_failures)) + 1 if seen[-1] >= warmup_failures else None  # its step
    start = max(learning_starts, 1) if warm is None else min(max(learning_starts, 1), warm)
    for step, count in enumerate(counts, start=1):
        if warm is None or step < warm:  # the schedule alone, from learning_starts
            assert count == max(0, step - start + 1), (step, counts)
        else:  # the warm-up's updates at once, then one per step
            assert count == max(warm - start + 1, warmup_updates) + step - warm, (step, counts)
    assert model.warmed_up == (warm is not None)


def test_without_a_warm_up_failure_count_learning_waits_for_learning_starts_then_runs_the_warm_up():
    model = counting_model(warmup_failures=0, warmup_updates=50, learning_starts=10)
    counts = store(model, [True] * 12)
    assert counts[8] == 0 and counts[9] == 50 and counts[11] == 52


def test_a_loaded_models_failure_count_does_not_start_learning_on_an_empty_buffer(tmp_path):
    model = counting_model(warmup_failures=2, warmup_updates=5, learning_starts=20)
    store(model, [False, True, False, True] * 10)
    model.save(tmp_path / "m")
    loaded = SQRL.load(tmp_path / "m", (OBS, ACT))
    loaded.learn_step = lambda batch: {}
    assert loaded.failures_seen == 20 and len(loaded.buffer) == 0 and loaded.updates == model.updates
    counts = store(loaded, [False] * 3 + [True] * 2)  # the new buffer's second failure starts learning
    assert [c - model.updates for c in counts] == [0, 0, 0, 0, 1]
