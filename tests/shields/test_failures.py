"""What a reject shield's risk measures (``failures``, ``safeshield.core.critic.FAILURES``): SQRL, CSC
and the Q-ensemble.

- "count" ranks the way out of a failure that lasts (a per-step cost inside a hazard), where the
  chance of the next failure is the same for every action;
- "auto" turns to counting at the first stored failure that did not end its episode, not before,
  and keeps the small risks it had;
- the state travels in checkpoints; legacy configs and the paper presets keep the first failure;
- CSC's V̂_C averages failure steps per episode once counting (χ is then a budget of them);
- bad values are refused with the argument named.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import safeshield
from safeshield import CSC, SQRL, CSCConfig, QEnsemble, QEnsembleConfig, SQRLConfig
from safeshield.core.critic import SafetyCritic

OBS = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
STAY, EXIT = np.array([-0.5], np.float32), np.array([0.5], np.float32)


def one_hot(i: int) -> np.ndarray:
    v = np.zeros(4, np.float32)
    v[i] = 1.0
    return v


METHODS = {"sqrl": (SQRL, SQRLConfig), "csc": (CSC, CSCConfig), "q_ensemble": (QEnsemble, QEnsembleConfig)}


def target_risk(model: SafetyCritic, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The target network's risks (every member's), in the risk's units."""
    with torch.no_grad():
        return (
            model.risk_bound * torch.sigmoid(model.target_critic(torch.from_numpy(obs), torch.from_numpy(action)))
        ).numpy()


def inside_a_hazard(model: SafetyCritic) -> None:
    """s0 is inside a hazard: "stay" keeps it there, "exit" reaches s1, still touching, and from s1
    the episode ends safely. Every action from s0 fails at the next step."""
    stay = model.buffer.add(one_hot(0), STAY, one_hot(0), 1.0, False)
    model.buffer.set_next_action(stay, STAY)
    leave = model.buffer.add(one_hot(0), EXIT, one_hot(1), 1.0, False)
    model.buffer.set_next_action(leave, EXIT)
    model.buffer.add(one_hot(1), EXIT, one_hot(2), 0.0, True)


@pytest.mark.parametrize("method", ["sqrl", "csc"])
@pytest.mark.parametrize("failures", ["first", "count"])
def test_counting_tells_the_way_out_of_a_failure_that_lasts(method, failures):
    """TD(0) fixed points, gamma 0.7: "first" gives both actions the same risk u (the next step fails
    either way); "count" gives exit u and stay u / (1 - gamma). SQRL's next-state labels are discounted
    once more than CSC's (u = gamma against 1); CSC without its CQL term (alpha 0) has the plain fixed point."""
    gamma = 0.7
    small = {"hidden": (32, 32), "lr": 3e-3, "tau": 0.05, "batch_size": 8, "buffer_capacity": 8}
    if method == "sqrl":
        model, unit = SQRL(OBS, ACT, SQRLConfig.paper(**small, gamma_safe=gamma, failures=failures), seed=0), gamma
    else:
        model, unit = CSC(OBS, ACT, CSCConfig.paper(**small, gamma=gamma, alpha=0.0, failures=failures), seed=0), 1.0
    inside_a_hazard(model)
    model.learn(1500)
    stay, leave = model.risk_numpy(np.stack([one_hot(0)] * 2), np.stack([STAY, EXIT]))
    if failures == "first":
        assert stay == pytest.approx(unit, abs=0.03) and leave == pytest.approx(unit, abs=0.03)
    else:
        assert leave == pytest.approx(unit, abs=0.05)
        assert stay == pytest.approx(unit / (1 - gamma), rel=0.05)


@pytest.mark.parametrize("method", list(METHODS))
def test_auto_counts_from_the_first_failure_that_does_not_end_its_episode(method):
    model_class, config_class = METHODS[method]
    config = config_class(failures="auto") if method == "sqrl" else config_class.paper(failures="auto")  # Eq. 2
    model = model_class(OBS, ACT, config, seed=0)
    obs, action = np.stack([one_hot(0), one_hot(3)]), np.stack([STAY, EXIT])
    before, bound, target_before = model.risk_numpy(obs, action), model.risk_bound, target_risk(model, obs, action)
    model.observe(one_hot(0), STAY, one_hot(1), 1.0, True)  # a fall: the episode ends
    assert not model.counting and model.risk_bound == bound
    model.observe(one_hot(1), STAY, one_hot(2), 0.0, False)
    assert not model.counting
    model.observe(one_hot(2), STAY, one_hot(3), 1.0, False)  # a cost step, and the episode goes on
    assert model.counting
    # SQRL's n-step count: gamma / (1 - gamma); CSC's Eq. 2 count: 1 / (1 - gamma)
    expected = bound / (1 - bound) if method == "sqrl" else 1 / (1 - model.config.gamma)
    assert model.risk_bound == pytest.approx(expected)
    np.testing.assert_allclose(model.risk_numpy(obs, action), before, rtol=0.02)  # small risks kept
    np.testing.assert_allclose(target_risk(model, obs, action), target_before, rtol=0.02)  # the target net's too
    assert model.guard_ceiling > model.risk_bound  # the guard may still switch the shield off


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


@pytest.mark.parametrize("method", list(METHODS))
def test_a_counting_shield_round_trips_a_checkpoint(tmp_path, method):
    model_class, config_class = METHODS[method]
    model = model_class(OBS, ACT, config_class(failures="auto"), seed=0)
    model.observe(one_hot(0), STAY, one_hot(1), 1.0, False)
    model.save(tmp_path / "shield")
    loaded = safeshield.load(tmp_path / "shield")
    assert loaded.counting and loaded.risk_bound == model.risk_bound
    obs, action = np.stack([one_hot(0), one_hot(1)]), np.stack([STAY, EXIT])
    np.testing.assert_allclose(loaded.risk_numpy(obs, action), model.risk_numpy(obs, action), rtol=1e-6)


@pytest.mark.parametrize("method", list(METHODS))
def test_defaults_presets_and_legacy_checkpoints(method):
    model_class, config_class = METHODS[method]
    # SQRL counts lasting failures by default; CSC keeps its published backup (counting is opt-in there)
    assert config_class().failures == ("auto" if method == "sqrl" else "first")
    assert config_class.paper().failures == "first"  # SQRL §3, CSC Eq. 2: a failure is absorbing
    legacy = config_class().to_json()
    del legacy["failures"]
    assert config_class.from_json(legacy).failures == "first"  # learned before the option: first failure
    counting = model_class(OBS, ACT, config_class(failures="count"), seed=0)
    start = counting.risk_numpy(one_hot(0)[None], STAY[None])[0]
    assert counting.counting and start < 0.02 * (counting.risk_bound if method != "sqrl" else 1.0)


@pytest.mark.parametrize("method", list(METHODS))
def test_what_the_risk_measures_is_fixed_once_built(method):
    model = METHODS[method][0](OBS, ACT, seed=0)
    with pytest.raises(ValueError, match="failures"):
        model.reconfigure(failures="count")


def test_csc_budget_counts_failure_steps_once_counting(tmp_path):
    """V̂_C (Alg. 1 line 10) averages failed episodes, and failure steps per episode once counting; an epoch
    under way survives a checkpoint."""
    for failures, expected in (("first", 0.5), ("count", 1.5)):
        model = CSC(OBS, ACT, CSCConfig(failures=failures, episodes_per_epoch=2), seed=0)
        previous = None
        for cost in (1.0, 1.0, 1.0):  # three cost steps, then the episode ends without a fall
            previous = model.observe(one_hot(0), STAY, one_hot(0), cost, False, previous=previous)
        model.on_episode_end(True)
        model.save(tmp_path / failures)
        model = safeshield.load(tmp_path / failures).unfreeze()  # loaded frozen; learning on
        model.observe(one_hot(0), STAY, one_hot(1), 0.0, True)
        model.on_episode_end(False)
        assert model.v_hat == pytest.approx(expected)


@pytest.mark.parametrize("config_class", [SQRLConfig, CSCConfig])
def test_bad_failures_values_are_named(config_class):
    with pytest.raises(ValueError, match="failures.*'all'"):
        config_class(failures="all")


def test_sqrl_td_count_needs_a_discount_below_one():
    with pytest.raises(ValueError, match="gamma_safe < 1.*gamma_safe=1.0"):
        SQRLConfig(failures="count", target="td", gamma_safe=1.0)
