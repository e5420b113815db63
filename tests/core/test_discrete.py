"""Discrete actions: the critic scores every action in one pass and the shield masks exactly.

- SQRL, CSC and the Q-ensemble shield ``CartPole-v1`` (failure = the pole falls, indicator
  ``"terminated"``): executed actions are in the space, ``info["shield"]`` has the Box keys, and
  one forward pass of the critic's action heads scores every action each step;
- the mask, on a fixed risk table: a safe proposal passes; otherwise a safe action drawn from the
  agent's probabilities restricted to the safe set (frequencies match pi * 1[safe] / Z), else the
  first safe draw of its samples, else the safest action; with nothing safe, the least risky one,
  flagged ``fell_back``; NaN risks are never safe; with ``regret`` (the relative rule) anything
  within regret of the least risk is allowed too, and nothing falls back while risks are finite;
- ``MultiDiscrete`` and ``MultiBinary`` run as one index over their joint actions; more than
  ``MAX_JOINT_ACTIONS`` joint actions are refused with the reason;
- the vector shield decides row ``i`` as a single shield seeded ``seed + i`` would;
- a discrete shield saves and loads.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import safeshield
from safeshield.core.decision import decide_discrete
from safeshield.core.spaces import MAX_JOINT_ACTIONS

torch.set_num_threads(1)
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
SMALL = dict(hidden=(16,), learning_starts=16, batch_size=16)


def model_of(env):
    try:
        return env.get_wrapper_attr("safety_model")
    except AttributeError:  # a vector wrapper
        return env.safety_model


@pytest.mark.parametrize("method", ["sqrl", "csc", "q_ensemble"])
def test_cartpole_runs_under_every_reject_method_with_one_forward_pass_per_step(method):
    env = safeshield.wrap(gym.make("CartPole-v1"), method, "terminated", seed=0, **SMALL)
    model = model_of(env)
    calls = []
    heads = model.critic.all_actions
    model.critic.all_actions = lambda obs: calls.append(obs.shape[0]) or heads(obs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    failures = 0
    for _ in range(120):
        before = len(calls)
        obs, _, terminated, truncated, info = env.step(int(rng.integers(2)))
        assert len(calls) - before == 1, "every action of the step is scored in one forward pass"
        report = info["shield"]
        assert set(report) == KEYS
        assert env.action_space.contains(report["executed_action"])
        assert report["failure"] == float(terminated)
        failures += terminated
        if terminated or truncated:
            env.reset()
    assert failures > 0 and model.updates > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


class TableRisk(safeshield.SafetyCritic):
    """Frozen stub: the risk of action ``a`` is ``table[a]`` whatever the observation."""

    name = "test-table-risk"

    def __init__(self, observation_space, action_space, table, threshold=0.5):
        super().__init__(observation_space, action_space)
        self.table, self._threshold = torch.as_tensor(table, dtype=torch.float32), threshold

    def build(self) -> None:
        pass

    def risk(self, obs, actions):
        return (actions * self.table).sum(-1)

    def risk_all(self, obs):
        return self.table.expand(obs.shape[0], -1)

    @property
    def threshold(self) -> float:
        return self._threshold

    def learn_step(self, batch):
        return {}


class Idle(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self, action_space):
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        return np.zeros(2, np.float32), 0.0, False, False, {}


def shielded(table, start=0, threshold=0.5):
    space = gym.spaces.Discrete(len(table), start=start)
    model = TableRisk(Idle.observation_space, space, table, threshold)
    env = safeshield.ShieldWrapper(Idle(space), model, lambda *step: 0.0, train=False, seed=0)
    env.reset(seed=0)
    return env


def test_safe_proposal_passes_unchanged():
    env = shielded([0.9, 0.1, 0.2, 0.8], start=5)
    report = env.step(6)[-1]["shield"]
    assert report["executed_action"] == 6 and not report["intervened"] and report["n_candidates"] == 0


def test_without_a_policy_the_safest_action_runs():
    env = shielded([0.9, 0.3, 0.2, 0.8], start=-1)
    report = env.step(-1)[-1]["shield"]
    assert report["executed_action"] == 1 and report["intervened"] and not report["fell_back"]
    assert report["risk"] == pytest.approx(0.2) and report["proposal_risk"] == pytest.approx(0.9)


def test_nothing_safe_falls_back_to_the_least_risky_and_nan_is_never_chosen():
    env = shielded([0.9, float("nan"), 0.7, 0.8])
    report = env.step(1)[-1]["shield"]
    assert report["executed_action"] == 2 and report["fell_back"]


def test_with_the_agents_probabilities_the_mask_is_exact():
    """Executed frequencies match pi(a) 1[safe(a)] / Z: pi = (0.1, 0.2, 0.3, 0.4), actions 1 and 3 safe."""
    env = shielded([0.9, 0.1, 0.9, 0.2])
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])

    def sample(obs, n, generator):
        return torch.multinomial(probs.expand(obs.shape[0], -1), n, replacement=True, generator=generator)

    sample.probs = lambda obs: probs.expand(obs.shape[0], -1)
    env.attach_policy(sample)
    executed = np.array([env.step(0)[-1]["shield"]["executed_action"] for _ in range(3000)])
    assert set(np.unique(executed)) == {1, 3}
    share = (executed == 3).mean()
    assert abs(share - 0.4 / 0.6) < 0.03  # binomial sd ~0.009


def test_with_draws_only_the_first_safe_draw_runs():
    env = shielded([0.9, 0.1, 0.9, 0.2])
    env.attach_policy(
        lambda obs, n, generator: torch.tensor([[2, 2, 3, 1] * (n // 4 + 1)])[:, :n].expand(obs.shape[0], -1)
    )
    assert env.step(0)[-1]["shield"]["executed_action"] == 3


def test_selection_safest_runs_the_least_risky_action_whatever_the_policy():
    """``selection="safest"`` (SQRL's default): a refused proposal gives way to the least risky action,
    as on a Box space, not to a draw of the agent's policy over the safe ones."""
    env = shielded([0.9, 0.1, 0.9, 0.2])
    env.safety_model.reconfigure(selection="safest")
    probs = torch.tensor([[0.1, 0.0, 0.0, 0.9]])  # the policy prefers 3, safe but riskier than 1

    def sample(obs, n, generator):
        return torch.multinomial(probs.expand(obs.shape[0], -1), n, replacement=True, generator=generator)

    sample.probs = lambda obs: probs.expand(obs.shape[0], -1)
    env.attach_policy(sample)
    assert {int(env.step(0)[-1]["shield"]["executed_action"]) for _ in range(50)} == {1}


def test_decide_discrete_rows_are_independent_and_nan_safe():
    risk = np.array([[0.6, 0.1], [np.nan, 0.2], [np.nan, np.nan]], np.float32)
    generators = [torch.Generator().manual_seed(i) for i in range(3)]
    decision = decide_discrete(risk, np.array([0, 0, 1]), 0.5, generators)
    np.testing.assert_array_equal(decision.action, [1, 1, 1])
    np.testing.assert_array_equal(decision.fell_back, [False, False, True])
    np.testing.assert_array_equal(decision.intervened, [True, True, False])


@pytest.mark.parametrize(
    "space",
    [gym.spaces.MultiDiscrete([3, 2, 2], start=[1, 0, -1]), gym.spaces.MultiBinary(3), gym.spaces.MultiBinary([2, 2])],
    ids=["multidiscrete", "multibinary", "multibinary-2d"],
)
def test_multi_spaces_run_as_one_joint_index(space):
    env = safeshield.wrap(Idle(space), "sqrl", lambda *step: 0.0, seed=0, **SMALL)
    env.reset(seed=0)
    space.seed(0)
    for _ in range(40):
        report = env.step(space.sample())[-1]["shield"]
        assert space.contains(report["executed_action"]) and set(report) == KEYS
    assert model_of(env).act_dim == int(np.prod(getattr(space, "nvec", np.full(space.shape, 2))))


def test_too_many_joint_actions_are_refused_with_the_reason():
    space = gym.spaces.MultiDiscrete([64, 64, 2])
    with pytest.raises(ValueError, match=f"at most {MAX_JOINT_ACTIONS} joint actions.*Box"):
        safeshield.wrap(Idle(space), "sqrl", lambda *step: 0.0)


def test_vector_shield_decides_each_row_as_a_single_shield_would():
    seeds, n = 7, 3
    envs = safeshield.wrap_vector(
        gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="sync"),
        "sqrl",
        "terminated",
        seed=seeds,
        train=False,
        hidden=(16,),
    )
    singles = []
    for i in range(n):
        single = safeshield.wrap(gym.make("CartPole-v1"), "sqrl", "terminated", seed=seeds, train=False, hidden=(16,))
        model_of(single).load_state_dict(model_of(envs).state_dict())
        model_of(single).reconfigure(eps_safe=0.01)
        single.get_wrapper_attr("stepper").seed(seeds + i)
        singles.append(single)
    model_of(envs).reconfigure(eps_safe=0.01)  # reject often
    obs, _ = envs.reset(seed=seeds)
    for i, single in enumerate(singles):
        single.reset(seed=seeds + i)
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.integers(0, 2, n)
        _, _, terminations, truncations, info = envs.step(actions)
        covered = info["_shield"]
        for i, single in enumerate(singles):
            if not covered[i]:
                continue
            report = single.step(int(actions[i]))[-1]["shield"]
            assert report["executed_action"] == info["shield"]["executed_action"][i]
            assert report["intervened"] == info["shield"]["intervened"][i]
            if terminations[i] or truncations[i]:
                single.reset()
        assert set(info["shield"]) == KEYS


def test_discrete_shield_saves_and_loads(tmp_path):
    env = safeshield.wrap(gym.make("CartPole-v1"), "csc", "terminated", seed=0, **SMALL)
    env.reset(seed=0)
    for _ in range(40):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    model_of(env).save(tmp_path / "csc")
    loaded = safeshield.load(tmp_path / "csc", gym.make("CartPole-v1"))
    obs = torch.randn(5, 4)
    with torch.inference_mode():
        torch.testing.assert_close(model_of(loaded).risk_all(obs), model_of(env).risk_all(obs))
    assert isinstance(safeshield.load(tmp_path / "csc").action_space, gym.spaces.Discrete)


@given(
    risk=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(2, 6)),
        elements=st.floats(0.0, 1.0, width=32) | st.just(np.float32(np.nan)),
    ),
    threshold=st.floats(0.0, 1.0, width=32),
    regret=st.floats(0.0, 0.5, width=32),
    data=st.data(),
    probs=st.booleans(),
)
def test_relative_rule_allows_the_least_risk_plus_regret_and_never_falls_back(risk, threshold, regret, data, probs):
    """With ``regret``: a proposal below the threshold or within ``regret`` of the row's least risk
    runs unchanged; otherwise an action within that limit runs, drawn from pi's probabilities when
    given; a row falls back only when every risk is NaN."""
    m, n = risk.shape
    proposal = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)))
    generators = [torch.Generator().manual_seed(i) for i in range(m)]
    policy = (lambda rows: ("probs", np.full((rows.size, n), 1.0 / n))) if probs else None
    decision = decide_discrete(risk, proposal, threshold, generators, policy, regret=regret)
    ordered = np.where(np.isnan(risk), np.inf, risk)
    limit = np.maximum(np.float32(threshold), ordered.min(axis=1) + np.float32(regret))
    lines = np.arange(m)
    allowed = (risk < np.float32(threshold)) | (risk <= limit[:, None])
    every_nan = np.isnan(risk).all(axis=1)
    np.testing.assert_array_equal(decision.fell_back, every_nan & ~allowed[lines, proposal])
    kept = allowed[lines, proposal]
    np.testing.assert_array_equal(decision.action[kept], proposal[kept])
    moved = ~kept & ~every_nan
    assert allowed[lines[moved], decision.action[moved]].all()
    np.testing.assert_array_equal(decision.intervened, decision.action != proposal)
