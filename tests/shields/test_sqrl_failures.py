"""What SQRL's risk measures (``failures``, ``safeshield.shields.sqrl.FAILURES``).

- "count" ranks the way out of a failure that lasts (a per-step cost inside a hazard), where the
  chance of the next failure is the same for every action;
- "auto" turns to counting at the first stored failure that did not end its episode, not before,
  and keeps the small risks it had;
- the state travels in checkpoints; legacy configs and the paper preset keep the first failure;
- bad values are refused with the argument named.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import safeshield
from safeshield import SQRL, SQRLConfig

OBS = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
STAY, EXIT = np.array([-0.5], np.float32), np.array([0.5], np.float32)


def one_hot(i: int) -> np.ndarray:
    v = np.zeros(4, np.float32)
    v[i] = 1.0
    return v


def inside_a_hazard(model: SQRL) -> None:
    """s0 is inside a hazard: "stay" keeps it there, "exit" reaches s1, still touching, and from s1
    the episode ends safely. Every action from s0 fails at the next step."""
    stay = model.buffer.add(one_hot(0), STAY, one_hot(0), 1.0, False)
    model.buffer.set_next_action(stay, STAY)
    leave = model.buffer.add(one_hot(0), EXIT, one_hot(1), 1.0, False)
    model.buffer.set_next_action(leave, EXIT)
    model.buffer.add(one_hot(1), EXIT, one_hot(2), 0.0, True)


@pytest.mark.parametrize("failures", ["first", "count"])
def test_counting_tells_the_way_out_of_a_failure_that_lasts(failures):
    """TD(0) fixed points, gamma 0.7: "first" gives both actions gamma (the next step fails either
    way); "count" gives exit gamma and stay gamma / (1 - gamma)."""
    gamma = 0.7
    config = SQRLConfig.paper(
        hidden=(32, 32), lr=3e-3, tau=0.05, batch_size=8, buffer_capacity=8, gamma_safe=gamma, failures=failures
    )
    model = SQRL(OBS, ACT, config, seed=0)
    inside_a_hazard(model)
    model.learn(1500)
    stay, leave = model.risk_numpy(np.stack([one_hot(0)] * 2), np.stack([STAY, EXIT]))
    if failures == "first":
        assert stay == pytest.approx(gamma, abs=0.03) and leave == pytest.approx(gamma, abs=0.03)
    else:
        assert leave == pytest.approx(gamma, abs=0.05)
        assert stay == pytest.approx(gamma / (1 - gamma), rel=0.05)


def test_auto_counts_from_the_first_failure_that_does_not_end_its_episode():
    model = SQRL(OBS, ACT, seed=0)
    obs, action = np.stack([one_hot(0), one_hot(3)]), np.stack([STAY, EXIT])
    before, scale = model.risk_numpy(obs, action), model.risk_bound
    target_before = model._target_risk(torch.from_numpy(obs), torch.from_numpy(action)).numpy()
    model.observe(one_hot(0), STAY, one_hot(1), 1.0, True)  # a fall: the episode ends
    assert not model.counting and model.risk_bound == scale
    model.observe(one_hot(1), STAY, one_hot(2), 0.0, False)
    assert not model.counting
    model.observe(one_hot(2), STAY, one_hot(3), 1.0, False)  # a cost step, and the episode goes on
    assert model.counting
    assert model.risk_bound == pytest.approx(scale / (1 - scale))  # gamma / (1 - gamma)
    np.testing.assert_allclose(model.risk_numpy(obs, action), before, rtol=0.02)  # small risks kept
    target_after = model._target_risk(torch.from_numpy(obs), torch.from_numpy(action)).numpy()
    np.testing.assert_allclose(target_after, target_before, rtol=0.02)  # and the target network's


def test_a_counted_window_target_stays_within_its_bound():
    """A running episode failing every step: each cut window bootstraps a full H-step count on top of
    the failures it followed, so the target the critic learns is held to the bound, H."""
    model = SQRL(OBS, ACT, SQRLConfig(target="window", failures="count", horizon=5, batch_size=3), seed=0)
    previous = None
    for _ in range(3):
        previous = model.observe(one_hot(0), STAY, one_hot(0), 1.0, False, previous=previous)
    with torch.no_grad():
        for critic in (model.critic, model.target_critic):  # every risk at its bound
            critic.net[-1].bias.fill_(30.0)
    stats = model.learn_step(model.buffer._rows(np.arange(3)))
    assert stats["mean_target"] == pytest.approx(model.risk_bound)


def test_a_counting_shield_round_trips_a_checkpoint(tmp_path):
    model = SQRL(OBS, ACT, seed=0)
    model.observe(one_hot(0), STAY, one_hot(1), 1.0, False)
    model.save(tmp_path / "shield")
    loaded = safeshield.load(tmp_path / "shield")
    assert loaded.counting and loaded.risk_bound == model.risk_bound
    obs, action = np.stack([one_hot(0), one_hot(1)]), np.stack([STAY, EXIT])
    np.testing.assert_allclose(loaded.risk_numpy(obs, action), model.risk_numpy(obs, action), rtol=1e-6)


def test_defaults_presets_and_legacy_checkpoints():
    assert SQRLConfig().failures == "auto"
    assert SQRLConfig.paper().failures == "first"  # SQRL §3: a failure is absorbing
    legacy = SQRLConfig().to_json()
    del legacy["failures"]
    assert SQRLConfig.from_json(legacy).failures == "first"  # learned before the option: first failure
    counting = SQRL(OBS, ACT, SQRLConfig(failures="count"), seed=0)
    assert counting.counting and counting.risk_numpy(one_hot(0)[None], STAY[None])[0] < 0.02


def test_what_the_risk_measures_is_fixed_once_built():
    model = SQRL(OBS, ACT, seed=0)
    with pytest.raises(ValueError, match="failures"):
        model.reconfigure(failures="count")


def test_bad_failures_values_are_named():
    with pytest.raises(ValueError, match="failures.*'all'"):
        SQRLConfig(failures="all")
    with pytest.raises(ValueError, match="gamma_safe < 1.*gamma_safe=1.0"):
        SQRLConfig(failures="count", target="td", gamma_safe=1.0)
