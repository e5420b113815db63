"""Budget thresholds and warm-up (``safeshield.core.threshold``).

- the budget threshold falls when failures exceed the budget and rises when they undershoot it,
  and settles where the failure rate equals the budget, per 1000 steps or per episode;
- the guard raises the threshold while the shield falls back on most steps, even over budget;
- warm-up allows rejections only after enough failures and updates;
- an overspent budget lowers the relative rule's regret with the threshold, by the same factor.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from safeshield.core import SafetyCritic
from safeshield.core.threshold import BudgetThreshold, WarmUp


def run(threshold: BudgetThreshold, rate_per_1k: float, steps: int, fallback: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        threshold.update(failed=rng.random() < rate_per_1k / 1000, fell_back=fallback)
    return threshold.value


@pytest.mark.parametrize("budget", [2.0, 10.0, 50.0])
def test_budget_threshold_moves_the_right_way(budget):
    over = run(BudgetThreshold(0.3, budget, response_steps=500), rate_per_1k=4 * budget, steps=3000)
    under = run(BudgetThreshold(0.3, budget, response_steps=500), rate_per_1k=budget / 4, steps=3000)
    assert over < 0.3 < under


def test_budget_threshold_feedback_settles_on_the_budget():
    """A plant whose failure rate rises with the threshold: the loop settles at the budget."""
    rng = np.random.default_rng(0)
    threshold = BudgetThreshold(0.5, budget=10.0, response_steps=500)
    failures = 0
    for t in range(60000):
        failed = rng.random() < 0.04 * threshold.value  # 40 per 1k at eps 1, 10 per 1k at 0.25
        failures += failed and t >= 20000
        threshold.update(failed, fell_back=False)
    assert failures / 40 == pytest.approx(10.0, rel=0.15)


def run_episodes(threshold: BudgetThreshold, length: int, failures: int, episodes: int) -> float:
    """``episodes`` episodes of ``length`` steps, each with ``failures`` failing steps spread over it."""
    failing = set(np.linspace(0, length - 1, failures).round().astype(int)) if failures else set()
    for _ in range(episodes):
        for t in range(length):
            threshold.update(failed=t in failing, fell_back=False, episode_ended=t == length - 1)
    return threshold.value


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(5, 300),
    budget=st.floats(0.2, 4.0),
    excess=st.sampled_from([0.25, 0.5, 2.0, 4.0]),
)
def test_a_budget_per_episode_moves_the_threshold_the_right_way(length, budget, excess):
    """Over budget per episode the threshold falls, under it rises, whatever the episodes' length."""
    failures = min(length, max(0, round(budget * excess)))
    assume(failures != budget and (failures > budget) == (excess > 1))  # rounding may cross the budget
    threshold = BudgetThreshold(0.3, budget, response_steps=200, low=1e-4, high=0.99, per_episode=True)
    value = run_episodes(threshold, length, failures, episodes=max(3, 3000 // length))
    assert value < 0.3 if failures > budget else value > 0.3


def test_a_budget_per_episode_settles_on_the_budget_whatever_the_episode_length():
    """A plant whose failures rise with the threshold, in episodes that a failure may end early:
    failures per episode settle at the budget (0.2: one episode in five fails)."""
    rng = np.random.default_rng(0)
    threshold = BudgetThreshold(0.5, budget=0.2, response_steps=500, per_episode=True)
    failures = episodes = t = 0
    while t < 200_000:
        for step in range(100):  # an episode: at most 100 steps, a failure ends it
            t += 1
            failed = rng.random() < 0.01 * threshold.value  # per step: 0.005 at eps 0.5
            ended = failed or step == 99
            threshold.update(failed, fell_back=False, episode_ended=ended)
            if t > 50_000:
                failures += failed
                episodes += ended
            if ended:
                break
    assert failures / episodes == pytest.approx(0.2, rel=0.1)


def test_a_budget_per_episode_warns_once_when_no_episode_ends():
    from safeshield.core.quality import ShieldQualityWarning

    threshold = BudgetThreshold(0.5, budget=1.0, response_steps=100, per_episode=True)
    with pytest.warns(ShieldQualityWarning, match="no episode has ended in 1000 steps"):
        run(threshold, rate_per_1k=1.0, steps=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(threshold, rate_per_1k=1.0, steps=1000)  # once
        ended = BudgetThreshold(0.5, budget=1.0, response_steps=100, per_episode=True)
        ended.update(failed=False, fell_back=False, episode_ended=True)
        run(ended, rate_per_1k=1.0, steps=2000)  # an episode ended: nothing to say


def test_guard_raises_the_threshold_while_falling_back():
    guarded = BudgetThreshold(0.1, budget=1.0, response_steps=200)
    value = run(guarded, rate_per_1k=100.0, steps=2000, fallback=True)
    assert guarded.guarding and value > 0.1
    unguarded = BudgetThreshold(0.1, budget=1.0, response_steps=200)
    assert run(unguarded, rate_per_1k=100.0, steps=2000, fallback=False) < 0.1


def test_guard_without_budget_backs_off_then_returns_to_the_nominal_threshold():
    threshold = BudgetThreshold(0.5, budget=None, response_steps=100, high=1.01)
    raised = run(threshold, rate_per_1k=50.0, steps=2000, fallback=True)
    assert raised == pytest.approx(1.01)  # nothing passes: the guard lets every action through
    returned = run(threshold, rate_per_1k=50.0, steps=3000, fallback=False)
    assert returned == pytest.approx(0.5, rel=0.05)


def test_fixed_threshold_without_budget():
    threshold = BudgetThreshold(0.2, budget=None)
    assert run(threshold, 100.0, 1000) == pytest.approx(0.2)


def test_threshold_stays_in_bounds():
    threshold = BudgetThreshold(0.5, budget=1.0, response_steps=10, low=0.05, high=0.9)
    assert run(threshold, 1000.0, 500) == pytest.approx(0.05)
    assert run(threshold, 0.0, 5000) == pytest.approx(0.9)


def test_warm_up_fires_when_it_should():
    warm_up = WarmUp(min_failures=5, min_updates=100)
    assert not warm_up.ready(failures=4, updates=10_000)
    assert not warm_up.ready(failures=50, updates=99)
    assert warm_up.ready(failures=5, updates=100)
    assert WarmUp().ready(0, 0)


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="budget"):
        BudgetThreshold(0.5, budget=0.0)
    with pytest.raises(ValueError, match="initial"):
        BudgetThreshold(1.5, budget=1.0)
    with pytest.raises(ValueError, match="min_failures"):
        WarmUp(min_failures=-1)
    with pytest.raises(ValueError, match="budget_unit.*'steps', 'episode'"):
        import safeshield

        safeshield.SQRLConfig(budget=1.0, budget_unit="epsiode")


def test_a_per_episode_budget_reaches_the_threshold_from_wrap_and_survives_a_checkpoint(tmp_path):
    import gymnasium as gym

    import safeshield

    env = safeshield.wrap(
        gym.make("CartPole-v1"), "sqrl", indicator="terminated", seed=0, budget=0.05, budget_unit="episode"
    )
    env.reset(seed=0)
    for _ in range(3000):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    adaptive = env.safety_model.adaptive_threshold
    assert adaptive.per_episode and adaptive.episodes > 10
    # moved by the episodes' outcomes (down while a random CartPole fails in every episode, up again once the
    # shield, tightened by the overspent budget, keeps the pole up for whole episodes: either is the rule at work)
    assert adaptive.value != pytest.approx(env.safety_model.nominal_threshold)
    env.safety_model.save(tmp_path / "shield")
    restored = safeshield.load(tmp_path / "shield")
    assert restored.config.budget_unit == "episode"
    assert restored.threshold == pytest.approx(env.safety_model.threshold)


@pytest.mark.parametrize("options", [{}, {"budget": 5.0}])
def test_a_new_eps_safe_is_the_threshold_in_force_after_reconfigure_and_load(tmp_path, options):
    """The guard (on by default) and a budget adapt around the nominal threshold; a new eps_safe
    (``reconfigure``, or ``safeshield.load(..., eps_safe=...)`` for a new phase) restarts them there."""
    import gymnasium as gym

    import safeshield

    env = gym.make("Pendulum-v1")
    config = safeshield.SQRLConfig(warmup_failures=0, warmup_updates=0, **options)
    model = safeshield.SQRL(env.observation_space, env.action_space, config)
    for _ in range(1500):  # falling back on every step: the guard (and the budget) move the threshold up
        model.on_step_outcome(failed=False, fell_back=True)
    assert model.threshold != pytest.approx(0.1)
    model.reconfigure(eps_safe=0.3)
    assert model.threshold == pytest.approx(0.3)
    model.save(tmp_path / "shield")
    loaded = safeshield.load(
        tmp_path / "shield", gym.make("Pendulum-v1"), train=True, indicator="terminated", eps_safe=0.05
    )
    assert loaded.safety_model.threshold == pytest.approx(0.05)
    unchanged = safeshield.load(tmp_path / "shield", gym.make("Pendulum-v1"), train=True, indicator="terminated")
    assert unchanged.safety_model.threshold == pytest.approx(model.threshold)  # the adapted state travels


@settings(max_examples=30, deadline=None)
@given(
    outcomes=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=400),
    budget=st.sampled_from([None, 1.0, 20.0]),
)
def test_a_budget_scales_the_regret_with_the_threshold(outcomes, budget):
    """With a budget, the relative rule's regret in force is the configured one times the factor the
    budget lowered the threshold (over budget), and never more than the configured one (under budget,
    where the threshold rises); without one (the guard alone) it stays the configured regret."""
    import gymnasium as gym

    import safeshield

    env = gym.make("Pendulum-v1")
    config = safeshield.SQRLConfig(warmup_failures=0, warmup_updates=0, budget=budget, regret=0.05)
    model = safeshield.SQRL(env.observation_space, env.action_space, config)
    for failed, fell_back in outcomes:
        model.on_step_outcome(failed=failed, fell_back=fell_back)
    if budget is None:
        assert model.regret == 0.05
    else:
        assert model.regret == pytest.approx(0.05 * min(model.threshold / config.eps_safe, 1.0), rel=1e-9)


class LinearRisk(SafetyCritic):
    """Stub: on a 1-D box [-1, 1], risk rises linearly from 0.02 at -1 to 0.05 at +1; nominal threshold 0.04."""

    name = "test-linear-risk"

    def build(self) -> None:
        pass

    def risk(self, obs, actions):
        return 0.02 + 0.015 * (actions[:, 0] + 1.0)

    @property
    def nominal_threshold(self) -> float:
        return 0.04

    @property
    def threshold(self) -> float:
        return self.gated_threshold(0.04)

    def learn_step(self, batch):
        return {}


@pytest.mark.parametrize("failures", [0, 3])
def test_an_overspent_budget_refuses_what_the_configured_regret_would_pass(failures):
    """The riskiest proposal (0.05) is within the configured regret (0.05) of the least risky action
    (0.02), so it passes while the budget is unspent; three failures against a budget of one per 1000
    steps lower the threshold to its floor (a quarter of 0.04) and the regret with it, and it is refused."""
    import gymnasium as gym

    from safeshield.core import CriticConfig
    from safeshield.wrappers import ShieldWrapper

    env = gym.make("MountainCarContinuous-v0")
    config = CriticConfig(warmup_failures=0, warmup_updates=0, budget=1.0, regret=0.05, n_candidates=64)
    model = LinearRisk(env.observation_space, env.action_space, config)
    for _ in range(failures):
        model.on_step_outcome(failed=True, fell_back=False)
    shielded = ShieldWrapper(env, model, indicator=lambda *a: 0.0, train=False, seed=0)
    shielded.reset(seed=0)
    info = shielded.step(np.ones(1, dtype=np.float32))[-1]["shield"]
    assert info["intervened"] == (failures > 0)
    assert info["regret"] == pytest.approx(model.regret)  # reported as the decision used it
    if failures:
        assert model.regret == pytest.approx(0.05 * 0.25)
        assert info["risk"] <= 0.02 + model.regret + 0.001  # within the scaled regret of the least risky (~0.02)
