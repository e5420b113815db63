"""CSC shield: the adaptive threshold (Alg. 1 lines 2, 5, 10), the 100-try filter (App. A.4),
Lemma 1's deterministic core for executed actions, learning, checkpoints, and the Q-ensemble."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield
from safeshield.shields.csc import CSC, CSCConfig, QEnsemble, csc_threshold

torch.set_num_threads(1)

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
NEVER = lambda *step: 0.0  # noqa: E731  (an indicator that never fires)


# ---------------------------------------------------------------- threshold arithmetic


@pytest.mark.parametrize("units", ["paper", "normalised"])
def test_threshold_is_zero_at_the_start(units):
    """Alg. 1 line 2: V̂_C ← χ, so the first epoch's ε = (1 − γ)(χ − χ) = 0."""
    model = CSC(OBS, ACT, CSCConfig(threshold_units=units))
    assert model.v_hat == model.config.chi and model.threshold == 0.0


@settings(max_examples=200, deadline=None)
@given(
    # χ ≥ 1e-6: below that (1 − γ)(χ − V̂_C) can underflow to 0 (hypothesis found χ = 5e-324)
    chi=st.one_of(st.just(0.0), st.floats(1e-6, 0.99)),
    gamma=st.floats(0.5, 0.999),
    v1=st.floats(0.0, 1.0),
    v2=st.floats(0.0, 1.0),
)
def test_threshold_decreases_in_v_hat_and_is_nonpositive_iff_v_hat_reaches_chi(chi, gamma, v1, v2):
    """ε = (1 − γ)(χ − V̂_C) is decreasing in V̂_C and ε ≤ 0 iff V̂_C ≥ χ (both units)."""
    for units in ("paper", "normalised"):
        e1, e2 = csc_threshold(chi, v1, gamma, units), csc_threshold(chi, v2, gamma, units)
        if v1 < v2:
            assert e1 >= e2 and (e1 > e2 or v2 - v1 < 1e-9)
        assert (e1 <= 0) == (v1 >= chi)
    assert math.isclose(
        csc_threshold(chi, v1, gamma, "paper"),
        (1 - gamma) * csc_threshold(chi, v1, gamma, "normalised"),
        rel_tol=1e-12,
        abs_tol=1e-15,
    )


def test_v_hat_is_the_previous_epochs_average_failures_per_episode():
    """Alg. 1 line 10 (an average over the epoch's M episodes, not the printed sum)."""
    model = CSC(OBS, ACT, CSCConfig.paper(episodes_per_epoch=4, chi=0.3))
    for failed in (True, False, True):
        model.on_episode_end(failed)
    assert model.v_hat == 0.3 and model.threshold == 0.0, "no update before the epoch ends"
    model.on_episode_end(False)
    assert model.v_hat == 0.5 and model.epochs == 1
    assert math.isclose(model.threshold, 0.01 * (0.3 - 0.5))
    for _ in range(4):
        model.on_episode_end(False)
    assert model.v_hat == 0.0 and math.isclose(model.threshold, 0.01 * 0.3)
    model.freeze()
    for _ in range(4):
        model.on_episode_end(True)
    assert model.v_hat == 0.0, "a frozen shield keeps its threshold"


def test_warm_up_budget_and_guard_apply_to_csc_as_to_every_reject_shield():
    """CSC's threshold goes through the shared gate: +inf before an (opt-in) warm-up, then the failure
    budget adapts it (down while failures exceed the budget, up while they stay under); without these
    options it is Alg. 1's ε exactly."""
    plain = CSC(OBS, ACT, CSCConfig())
    assert plain.threshold == plain.nominal_threshold == 0.0
    warming = CSC(OBS, ACT, CSCConfig(warmup_failures=2))
    assert warming.threshold == math.inf
    budgeted = CSC(OBS, ACT, CSCConfig(budget=5.0, threshold_units="normalised", chi=0.3))
    start = budgeted.threshold
    assert start == pytest.approx(0.01)  # ε = χ − V̂_C = 0 reads as the adaptive floor
    for _ in range(200):
        budgeted.on_step_outcome(failed=False, fell_back=False)
    raised = budgeted.threshold
    assert raised > start
    for _ in range(20):
        budgeted.on_step_outcome(failed=True, fell_back=False)
    assert budgeted.threshold < raised


def test_the_guard_pulls_csc_back_to_its_own_epsilon_as_it_moves():
    """Guard only: while nothing falls back, the threshold relaxes to the current epoch's ε (which V̂_C
    moves), and to the floor once ε <= 0."""
    model = CSC(OBS, ACT, CSCConfig(guard=True, threshold_units="normalised", chi=0.5, episodes_per_epoch=1))
    model.on_episode_end(False)  # V̂_C = 0: ε = 0.5
    for _ in range(10_000):
        model.on_step_outcome(failed=False, fell_back=False)
    assert model.threshold == pytest.approx(0.5, rel=0.01)
    model.on_episode_end(True)  # V̂_C = 1: ε = −0.5, nothing passes under Alg. 1
    for _ in range(10_000):
        model.on_step_outcome(failed=False, fell_back=False)
    assert model.threshold == pytest.approx(0.01, rel=0.01)


# ---------------------------------------------------------------- the filter


def _shield_with_threshold_band(units: str, v_hat: float, seed: int) -> safeshield.ShieldWrapper:
    """A frozen CSC shield on Pendulum whose critic straddles its threshold (some actions pass)."""
    env = safeshield.wrap(
        gym.make("Pendulum-v1"),
        "csc",
        indicator=NEVER,
        train=False,
        seed=seed,
        config={"preset": "paper", "threshold_units": units, "hidden": (16, 16)},
    )
    model = env.safety_model
    model.v_hat = v_hat
    eps = model.threshold
    with torch.no_grad():
        model.critic.weights[-1].mul_(40.0)  # spread the logits over several units
        if eps > 0:
            model.critic.biases[-1].fill_(math.log(eps / (1 - eps)))
    return env


@settings(max_examples=12, deadline=None)
@given(units=st.sampled_from(["paper", "normalised"]), v_hat=st.floats(0.0, 0.2), seed=st.integers(0, 1000))
def test_executed_actions_satisfy_lemma_1_or_are_flagged(units, v_hat, seed):
    """Lemma 1's core: every executed (s, a) has V̂_C + Q_C/(1−γ) ≤ χ (paper units; Q_C ≤ ε in
    normalised units), or the shield fell back and says so; never more than 100 tries per step."""
    env = _shield_with_threshold_band(units, v_hat, seed)
    model = env.safety_model
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    for _ in range(25):
        _, _, _, _, info = env.step(rng.uniform(-2, 2, 1).astype(np.float32))
        report = info["shield"]
        assert report["n_candidates"] + 1 <= 100
        if report["fell_back"]:
            continue
        assert report["risk"] < report["threshold"]
        if units == "paper":
            assert model.lemma1_value(np.float32(report["risk"])) <= model.config.chi + 1e-9
    if v_hat >= model.config.chi:
        assert env.total_fallbacks == 25, "ε ≤ 0: nothing passes, every step falls back"


def test_at_most_100_critic_queries_per_step():
    """App. A.4: the proposal plus 99 candidates; a rejected step scores exactly 100 actions."""
    env = safeshield.wrap(gym.make("Pendulum-v1"), "csc", indicator=NEVER, train=False, seed=0, preset="paper")
    critic = env.safety_model.critic
    scored = []
    original = critic.forward

    def counting(obs, actions):
        scored[-1] += actions.shape[0]
        return original(obs, actions)

    critic.forward = counting
    env.reset(seed=0)
    for _ in range(20):
        scored.append(0)
        _, _, _, _, info = env.step(env.action_space.sample())
        assert info["shield"]["fell_back"], "ε = 0 in the first epoch: nothing passes"
    assert scored == [100] * 20


def test_fallback_runs_the_least_risky_action_tried():
    """Our documented fallback (the paper leaves it open): argmin Q_C over the 100 tries."""
    env = safeshield.wrap(gym.make("Pendulum-v1"), "csc", indicator=NEVER, train=False, seed=3, preset="paper")
    obs, _ = env.reset(seed=3)
    proposal = np.array([1.5], dtype=np.float32)
    _, _, _, _, info = env.step(proposal)
    report = info["shield"]
    assert report["fell_back"] and report["risk"] <= report["proposal_risk"]
    # no action on a fine grid of the box is much less risky than the one executed
    grid = np.linspace(-2, 2, 401, dtype=np.float32)[:, None]
    risks = env.safety_model.risk_numpy(np.repeat(obs[None], len(grid), axis=0), grid)
    assert report["risk"] <= np.quantile(risks, 0.1)


# ---------------------------------------------------------------- learning


def _fill(model: CSC, n: int = 512, seed: int = 0) -> None:
    """Transitions where a[0] > 0 fails at once and a[0] ≤ 0 never does."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        obs = rng.uniform(-1, 1, 3).astype(np.float32)
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        fails = float(action[0] > 0)
        model.observe(obs, action, rng.uniform(-1, 1, 3).astype(np.float32), fails, bool(fails))


def test_critic_learns_which_actions_fail():
    model = CSC(OBS, ACT, CSCConfig(hidden=(32, 32), lr=3e-3, batch_size=128), seed=0)
    _fill(model)
    model.learn(200)
    obs = np.zeros((2, 3), np.float32)
    risky, safe = model.risk_numpy(obs, np.array([[0.8, 0.0], [-0.8, 0.0]], np.float32))
    assert risky > 0.7 and safe < 0.2


def test_cql_term_raises_q_on_policy_actions_above_the_plain_td_critic():
    """Eq. 2's reversed penalty: with π ≠ π_β (π picks the failing half), α > 0 over-estimates."""

    def policy(obs, n, generator):
        return torch.cat([torch.rand(obs.shape[0], n, 1) * 0.2 + 0.0, torch.zeros(obs.shape[0], n, 1)], -1)

    means = {}
    for alpha in (0.0, 2.0):
        model = CSC(OBS, ACT, CSCConfig(hidden=(32, 32), lr=3e-3, batch_size=128, alpha=alpha), seed=0)
        model.attach_policy(policy)
        _fill(model)
        model.learn(200)
        obs = np.zeros((64, 3), np.float32)
        actions = np.stack([np.linspace(-0.1, 0.1, 64), np.zeros(64)], -1).astype(np.float32)
        means[alpha] = float(model.risk_numpy(obs, actions).mean())
    assert means[2.0] > means[0.0] + 0.02


def test_checkpoint_keeps_the_adaptive_state(tmp_path):
    model = CSC(OBS, ACT, CSCConfig(episodes_per_epoch=2, threshold_units="normalised"), seed=1)
    for failed in (True, False, False):
        model.on_episode_end(failed)
    model.save(tmp_path / "csc")
    loaded = CSC.load(tmp_path / "csc")
    assert (loaded.v_hat, loaded.epochs, loaded.threshold) == (model.v_hat, model.epochs, model.threshold)
    loaded.on_episode_end(False)  # completes the second epoch (one episode was carried over)
    assert loaded.v_hat == 0.0 and loaded.epochs == 2
    obs, actions = np.zeros((5, 3), np.float32), np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    assert np.array_equal(loaded.risk_numpy(obs, actions), model.risk_numpy(obs, actions))


# ---------------------------------------------------------------- Q-ensemble baseline and config


def test_q_ensemble_is_twenty_plain_critics_with_pessimistic_risk():
    model = safeshield.wrap(gym.make("Pendulum-v1"), "q_ensemble", indicator=NEVER).safety_model
    assert isinstance(model, QEnsemble) and model.config.alpha == 0.0 and model.config.n_critics == 20
    obs, actions = torch.zeros(7, 3), torch.rand(7, 1) * 4 - 2
    with torch.no_grad():
        members = model.q_members(obs, actions)
        assert members.shape == (20, 7)
        assert torch.equal(model.risk(obs, actions), members.max(0).values)
        assert not torch.allclose(members[0], members[1]), "members are initialised independently"


def test_reconfigure_changes_the_rules_not_the_critics():
    model = CSC(OBS, ACT, CSCConfig())
    model.reconfigure(threshold_units="normalised", chi=0.1)
    assert model.threshold == pytest.approx(0.1 - 0.05)  # V̂_C keeps its value (χ at the start, 0.05)
    with pytest.raises(ValueError, match="n_critics"):
        model.reconfigure(n_critics=3)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"chi": 1.0}, "chi"),
        ({"gamma": 1.0}, "gamma"),
        ({"alpha": -0.1}, "alpha"),
        ({"threshold_units": "episode"}, "threshold_units"),
        ({"n_critics": 0}, "n_critics"),
        ({"ensemble_risk": "min"}, "ensemble_risk"),
    ],
)
def test_bad_config_fails_naming_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        CSCConfig(**options)


@pytest.mark.parametrize("bootstrap", ["executed", "policy"])
def test_the_backup_follows_the_bootstrap_action(bootstrap):
    """Eq. 2's a' is a draw of pi by default (``bootstrap="policy"``); ``"executed"`` backs up the action
    that ran at s'. At s1 the shield ran a safe exit while pi always walks into a failure."""
    s0, s1, end = np.eye(3, dtype=np.float32)
    walk, leave = np.array([-0.5, 0.0], np.float32), np.array([0.5, 0.0], np.float32)
    config = CSCConfig.paper(hidden=(32, 32), lr=3e-3, tau=0.05, batch_size=8, alpha=0.0, bootstrap=bootstrap)
    model = CSC(OBS, ACT, config, seed=0)
    model.buffer.set_next_action(model.buffer.add(s0, walk, s1, 0.0, False), leave)
    model.buffer.add(s1, walk, end, 1.0, True)
    model.buffer.add(s1, leave, end, 0.0, True)
    model.attach_policy(lambda obs, n, generator: torch.tensor(walk).expand(obs.shape[0], n, 2).clone())
    model.learn(800)
    risk = float(model.risk_numpy(s0[None], walk[None])[0])
    expected = 0.0 if bootstrap == "executed" else config.gamma
    assert risk == pytest.approx(expected, abs=0.08)
