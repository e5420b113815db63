"""Property tests of the shield contract.

Every test here holds the decision core (``safeshield.core.decision.decide``), the
``ShieldWrapper`` wrapper or the ``TransitionBuffer`` to one guarantee of the contract, or to the
SQRL statement it implements. The risk model is a stub whose risk is a known function of the
action, so each guarantee is checked exactly rather than against a learned critic:

1. the executed action is always inside the action space (out-of-bounds proposals are clipped);
2. a proposal with risk < threshold passes unchanged (SQRL Eq. 5 uses "<");
3. if any scored candidate is below threshold, the executed one is (SQRL Eq. 3: pi_bar's
   support is the safe set, "filter invariant");
4. otherwise the executed action is the least risky one scored and ``fell_back`` is set
   (SQRL §6 / official code: argmin Q_safe over the candidates);
5. the selection rules "closest", "riskiest" (SQRL §6 pre-training), "uniform" and "safest";
6. a frozen shield is deterministic given ``reset(seed=...)``;
7. no transition is lost from the buffer before capacity evicts it, and the buffer stores the
   executed action with its SARSA link;
8. ``decide`` on n rows gives the same guarantees as n single-row calls (it is pure and batched);
9. "uniform" selection with a policy sampler is exactly the masked policy
   pi(a|s) 1[a safe] / Z (SQRL Eq. 3 / Eq. 5a chi-square test that also
   catches the pi-squared bias of "resample proportional to pi among draws from pi").
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeshield
from safeshield.core import CriticConfig, PerturbationSampler, PolicySampler, SafetyCritic, TransitionBuffer, decide

torch.set_num_threads(1)

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DRUNK_SPIDER = "safeshield/DrunkSpider-v0"


# ---------------------------------------------------------------- stub risk models


def make_risk(kind: str, low: np.ndarray, high: np.ndarray, point: np.ndarray, w: np.ndarray, b: float, floor=0.0):
    """A risk in [floor, 1] that is a known function of the action only.

    ``"distance"``: bound-normalised distance from a safe ``point`` (risk 0 there).
    ``"linear"``: ``clamp(0.5 + (w . z + b) / 8, 0, 1)`` with ``z`` the action scaled to [-1, 1].
    Only correctly rounded elementwise ops (+, -, *, /, sqrt, clamp; no reductions, no sigmoid,
    whose SIMD and scalar kernels differ in the last bit), so a row's risk does not depend on the
    batch it is scored in, bit for bit.
    """
    mid = torch.as_tensor((low.astype(np.float64) + high) / 2, dtype=torch.float32)
    half = torch.as_tensor((high.astype(np.float64) - low) / 2, dtype=torch.float32)
    point_z = (torch.as_tensor(point, dtype=torch.float32) - mid) / half
    w_t = torch.as_tensor(w, dtype=torch.float32)
    dims = len(low)

    def risk(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - mid) / half
        acc = torch.zeros(actions.shape[0], dtype=torch.float32)
        if kind == "distance":
            for j in range(dims):
                acc = acc + (z[:, j] - point_z[j]) ** 2
            value = torch.clamp(torch.sqrt(acc / (4.0 * dims)), 0.0, 1.0)
        else:
            acc = acc + b
            for j in range(dims):
                acc = acc + w_t[j] * z[:, j]
            value = torch.clamp(0.5 + acc / 8.0, 0.0, 1.0)
        return floor + (1.0 - floor) * value

    return risk


class RecordingRisk:
    """Wrap a risk function and keep every ``(actions, risks)`` batch it scored."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, obs, actions):
        value = self.fn(obs, actions)
        self.calls.append((actions.clone(), value.clone()))
        return value


class RecordingSampler:
    """Wrap a candidate sampler and keep the candidates of every round it returned."""

    def __init__(self, inner, inject=None):
        self.inner, self.inject, self.rounds = inner, inject, []

    def __call__(self, obs, proposal, k, round_index, generator):
        candidates = self.inner(obs, proposal, k, round_index, generator)
        if self.inject is not None:  # plant a known action at a random slot of every row
            slot = int(torch.randint(0, k, (1,), generator=generator))
            candidates = candidates.clone()
            candidates[:, slot] = self.inject
        self.rounds.append(candidates.clone())
        return candidates


class StubModel(SafetyCritic):
    """A frozen SafetyCritic whose risk is a given function; nothing to learn."""

    name = "test-stub"

    def __init__(self, observation_space, action_space, risk_fn, threshold, config=None):
        super().__init__(observation_space, action_space, config)
        self._risk_fn, self._threshold = risk_fn, float(threshold)

    def build(self) -> None:
        pass

    def risk(self, obs, actions):
        return self._risk_fn(obs, actions)

    @property
    def threshold(self) -> float:
        return self._threshold

    def learn_step(self, batch):
        return {}


class BoxEnv(gym.Env):
    """A do-nothing env with a given Box action space that remembers the action it executed."""

    metadata = {"render_modes": []}

    def __init__(self, action_space: gym.spaces.Box):
        self.action_space = action_space
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.received = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.received.append(np.array(action, copy=True))
        obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return obs, 0.0, False, False, {}


# ---------------------------------------------------------------- strategies


@st.composite
def boxes(draw):
    """Random finite, asymmetric Box bounds, 1 to 4 dims (float32)."""
    dims = draw(st.integers(1, 4))
    low = np.array([draw(st.floats(-5.0, 5.0)) for _ in range(dims)], dtype=np.float32)
    width = np.array([draw(st.floats(0.1, 10.0)) for _ in range(dims)], dtype=np.float32)
    high = (low + width).astype(np.float32)
    return low, high


def unit(draw, dims):
    return np.array([draw(st.floats(0.0, 1.0)) for _ in range(dims)], dtype=np.float64)


@st.composite
def scenarios(draw):
    """A box, a risk function of the action, a proposal inside the box and decide's knobs."""
    low, high = draw(boxes())
    dims = len(low)
    point = (low + unit(draw, dims) * (high - low)).astype(np.float32)
    proposal = np.clip(low + unit(draw, dims) * (high - low), low, high).astype(np.float32)
    w = np.array([draw(st.floats(-3.0, 3.0)) for _ in range(dims)])
    return {
        "low": low,
        "high": high,
        "kind": draw(st.sampled_from(["distance", "linear"])),
        "point": point,
        "w": w,
        "b": draw(st.floats(-3.0, 3.0)),
        "proposal": proposal,
        "k": draw(st.integers(1, 20)),
        "rounds": draw(st.integers(1, 3)),
        "selection": draw(st.sampled_from(["closest", "uniform", "riskiest", "safest"])),
        "scale": draw(st.floats(0.01, 1.0)),
        "uniform_fraction": draw(st.floats(0.0, 1.0)),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def f32(value: float) -> float:
    """Thresholds are compared with float32 risks in float32: draw them float32-representable."""
    return float(np.float32(value))


def run_decide(sc, threshold, risk_fn, inject=None, proposals=None, regret=None):
    threshold = f32(threshold)
    low_t, high_t = torch.as_tensor(sc["low"]), torch.as_tensor(sc["high"])
    recorder = RecordingRisk(risk_fn)
    sampler = RecordingSampler(
        PerturbationSampler(low_t, high_t, sc["scale"], sc["uniform_fraction"]),
        inject=None if inject is None else torch.as_tensor(inject),
    )
    proposal = torch.as_tensor(sc["proposal"]).unsqueeze(0) if proposals is None else torch.as_tensor(proposals)
    with torch.inference_mode():
        decision = decide(
            recorder,
            torch.zeros(proposal.shape[0], 2),
            proposal,
            threshold,
            sampler,
            torch.Generator().manual_seed(sc["seed"]),
            k=sc["k"],
            rounds=sc["rounds"],
            selection=sc["selection"],
            half_range=((high_t - low_t) / 2).numpy(),
            regret=regret,
        )
    return decision, recorder, sampler


def risk_of(sc, floor=0.0):
    return make_risk(sc["kind"], sc["low"], sc["high"], sc["point"], sc["w"], sc["b"], floor)


def scored(recorder):
    """All actions and risks scored for a single-row decision: proposal first, then each round."""
    actions = torch.cat([a for a, _ in recorder.calls])
    risks = torch.cat([r for _, r in recorder.calls])
    return actions, risks


def proposal_risk(sc, risk_fn):
    with torch.inference_mode():
        return float(risk_fn(torch.zeros(1, 2), torch.as_tensor(sc["proposal"]).unsqueeze(0))[0])


def in_box(action, low, high):
    return bool(np.all(action >= low) and np.all(action <= high))


# ---------------------------------------------------------------- 1. inside the action space


@SETTINGS
@given(box=boxes(), data=st.data())
def test_executed_action_is_always_inside_the_action_space(box, data):
    """Contract: "the executed action is always inside the action space" (proposals are clipped)."""
    low, high = box
    dims = len(low)
    space = gym.spaces.Box(low, high, dtype=np.float32)
    point = (low + unit(data.draw, dims) * (high - low)).astype(np.float32)
    w = np.array([data.draw(st.floats(-3, 3)) for _ in range(dims)])
    risk_fn = make_risk(data.draw(st.sampled_from(["distance", "linear"])), low, high, point, w, 0.0)
    threshold = data.draw(st.floats(0.0, 1.0))
    config = CriticConfig(n_candidates=data.draw(st.integers(1, 10)), resample_rounds=data.draw(st.integers(1, 3)))
    env = BoxEnv(space)
    model = StubModel(env.observation_space, space, risk_fn, threshold, config)
    shield = safeshield.ShieldWrapper(env, model, indicator=lambda *a: 0.0, train=False, seed=0)
    shield.reset(seed=data.draw(st.integers(0, 1000)))
    width = (high - low).astype(np.float64)
    for _ in range(5):
        # Proposals up to one box-width outside the bounds on either side.
        proposal = (low - width + unit(data.draw, dims) * 3 * width).astype(np.float32)
        _, _, _, _, info = shield.step(proposal)
        executed = info["shield"]["executed_action"]
        assert space.contains(executed), (executed, low, high)
        assert np.array_equal(env.received[-1], executed), "the env must receive the reported executed action"
        if in_box(proposal, low, high) and info["shield"]["risk"] < threshold and not info["shield"]["intervened"]:
            assert np.array_equal(executed, proposal)


@SETTINGS
@given(sc=scenarios(), policy_spread=st.floats(0.0, 5.0))
def test_policy_sampler_candidates_are_clipped_into_the_box(sc, policy_spread):
    """Contract: executed inside the space even when an attached policy samples outside it."""
    low, high = sc["low"], sc["high"]
    mid, half = (low + high) / 2, (high - low) / 2

    def sample(obs, n, generator):
        noise = torch.randn((obs.shape[0], n, len(low)), generator=generator)
        return torch.as_tensor(mid) + noise * torch.as_tensor(half) * (1 + policy_spread)

    sampler = PolicySampler(sample, torch.as_tensor(low), torch.as_tensor(high))
    with torch.inference_mode():
        decision = decide(
            risk_of(sc),
            torch.zeros(1, 2),
            torch.as_tensor(sc["proposal"]).unsqueeze(0),
            0.3,
            sampler,
            torch.Generator().manual_seed(sc["seed"]),
            k=sc["k"],
            rounds=sc["rounds"],
            selection=sc["selection"],
        )
    assert in_box(decision.action[0], low, high)


# ---------------------------------------------------------------- 2. safe proposal passes


@SETTINGS
@given(sc=scenarios(), margin=st.floats(1e-3, 1.0))
def test_proposal_below_threshold_passes_unchanged(sc, margin):
    """SQRL Eq. 5 ("<"): a proposal the model deems safe runs bit for bit, with no candidates."""
    risk_fn = risk_of(sc)
    p_risk = proposal_risk(sc, risk_fn)
    threshold = f32(p_risk + margin * (1.0 - p_risk) + 1e-6)
    decision, recorder, sampler = run_decide(sc, threshold, risk_fn)
    assert np.array_equal(decision.action[0], sc["proposal"])
    assert decision.action[0].tobytes() == sc["proposal"].tobytes()
    assert not decision.intervened[0]
    assert not decision.fell_back[0]
    assert decision.n_candidates[0] == 0
    assert sampler.rounds == [], "a safe proposal must not trigger the candidate batch"
    assert len(recorder.calls) == 1, "a safe proposal costs one forward pass"


def test_proposal_exactly_at_threshold_is_rejected():
    """Eq. 5 uses a strict "<": risk == threshold is not safe."""
    low, high = np.array([-1.0], np.float32), np.array([1.0], np.float32)
    sc = {
        "low": low,
        "high": high,
        "proposal": np.array([0.5], np.float32),
        "k": 4,
        "rounds": 1,
        "selection": "closest",
        "scale": 0.1,
        "uniform_fraction": 0.5,
        "seed": 0,
    }

    def flat(obs, actions):
        return torch.full((actions.shape[0],), 0.25)

    decision, _, _ = run_decide(sc, 0.25, flat)
    assert decision.n_candidates[0] == 4
    assert decision.fell_back[0]


# ---------------------------------------------------------------- 3. / 4. filter invariant


@SETTINGS
@given(sc=scenarios(), fraction=st.floats(0.01, 1.0))
def test_if_a_candidate_is_safe_the_executed_action_is_safe(sc, fraction):
    """SQRL Eq. 3: with a safe candidate among those scored, the executed one is safe.

    The sampler plants the risk-0 "safe point" among the candidates, so one always exists.
    """
    sc = {**sc, "kind": "distance"}
    risk_fn = risk_of(sc)
    p_risk = proposal_risk(sc, risk_fn)
    if p_risk < 1e-6:
        return  # the proposal sits on the safe point: nothing to reject
    threshold = f32(fraction * p_risk)  # proposal_risk >= threshold: the proposal is rejected
    decision, recorder, sampler = run_decide(sc, threshold, risk_fn, inject=sc["point"])
    actions, risks = scored(recorder)
    assert bool((risks[1:] < threshold).any()), "the planted safe point was scored"
    assert decision.risk[0] < threshold
    assert not decision.fell_back[0]
    assert decision.n_candidates[0] == sc["k"] * len(sampler.rounds)
    # The executed action is one of the scored candidates, with the risk reported.
    matches = (actions[1:] == torch.as_tensor(decision.action[0])).all(dim=1)
    assert bool(matches.any())
    assert float(risks[1:][matches][0]) == decision.risk[0]


@SETTINGS
@given(sc=scenarios(), threshold=st.floats(0.0, 0.5))
def test_without_a_safe_candidate_the_least_risky_action_runs_and_fell_back_is_set(sc, threshold):
    """SQRL §6 / official code: no safe candidate -> argmin Q_safe over everything scored, flagged.

    Risks live in [0.5, 1] and the threshold in [0, 0.5], so nothing is ever safe.
    """
    decision, recorder, sampler = run_decide(sc, threshold, risk_of(sc, floor=0.5))
    actions, risks = scored(recorder)
    assert decision.fell_back[0]
    assert decision.n_candidates[0] == sc["k"] * sc["rounds"]
    assert len(sampler.rounds) == sc["rounds"], "every round is tried before falling back"
    assert decision.risk[0] == float(risks.min())
    best = actions[risks == risks.min()]
    assert bool((best == torch.as_tensor(decision.action[0])).all(dim=1).any())
    assert decision.intervened[0] == (not np.array_equal(decision.action[0], sc["proposal"]))


@SETTINGS
@given(sc=scenarios(), threshold=st.floats(0.0, 1.0))
def test_filter_invariant_for_any_threshold(sc, threshold):
    """For an arbitrary threshold: safe-if-possible, else argmin; flags agree."""
    threshold = f32(threshold)
    decision, recorder, _ = run_decide(sc, threshold, risk_of(sc))
    actions, risks = scored(recorder)
    executed = torch.as_tensor(decision.action[0])
    assert bool((actions == executed).all(dim=1).any()), "the executed action must be one that was scored"
    if float(risks[0]) < threshold:
        assert decision.n_candidates[0] == 0 and not decision.intervened[0]
    elif bool((risks[1:] < threshold).any()):
        assert decision.risk[0] < threshold and not decision.fell_back[0]
    else:
        assert decision.fell_back[0] and decision.risk[0] == float(risks.min())


@SETTINGS
@given(sc=scenarios(), threshold=st.floats(0.0, 1.0), regret=st.floats(0.0, 0.5))
def test_relative_rule_allows_risk_up_to_the_least_found_plus_regret(sc, threshold, regret):
    """With ``regret``: a proposal above the threshold stays iff within ``regret`` of the least risk
    scored; otherwise an action within that limit runs, never a fallback while risks are finite."""
    threshold, regret = f32(threshold), f32(regret)
    decision, recorder, sampler = run_decide(sc, threshold, risk_of(sc), regret=regret)
    actions, risks = scored(recorder)
    executed = torch.as_tensor(decision.action[0])
    assert bool((actions == executed).all(dim=1).any()), "the executed action must be one that was scored"
    assert not decision.fell_back[0]
    if float(risks[0]) < threshold:
        assert decision.n_candidates[0] == 0 and not decision.intervened[0]
        return
    assert len(sampler.rounds) == sc["rounds"], "every round is scored to find the least risk"
    limit = max(threshold, float(risks.min()) + regret)
    assert decision.risk[0] <= np.float32(limit)
    if float(risks[0]) <= np.float32(limit):
        assert not decision.intervened[0] and np.array_equal(decision.action[0], sc["proposal"])
    elif sc["selection"] == "safest":  # a replaced proposal gives way to the least risky action scored
        assert decision.risk[0] == float(risks.min())


# ---------------------------------------------------------------- 5. selection rules


@SETTINGS
@given(sc=scenarios(), threshold=st.floats(0.05, 0.95))
def test_selection_rules_pick_the_documented_safe_candidate(sc, threshold):
    """``SELECTIONS``: closest to the proposal / riskiest safe (SQRL §6 pre-training) / first safe drawn /
    least risky."""
    threshold = f32(threshold)
    risk_fn = risk_of(sc)
    if proposal_risk(sc, risk_fn) < threshold:
        return  # nothing to select; covered by test 2
    decision, recorder, sampler = run_decide(sc, threshold, risk_fn)
    proposal = torch.as_tensor(sc["proposal"])
    half = (torch.as_tensor(sc["high"]) - torch.as_tensor(sc["low"])) / 2
    for index, candidates in enumerate(sampler.rounds):
        cand = candidates[0]
        risk = recorder.calls[1 + index][1]
        safe = risk < threshold
        if not bool(safe.any()):
            continue
        executed = torch.as_tensor(decision.action[0])
        chosen = (cand == executed).all(dim=1) & safe
        assert bool(chosen.any()), "the executed action comes from the first round with a safe candidate"
        if sc["selection"] == "closest":
            distance = (((cand - proposal) / half) ** 2).sum(-1)
            assert float(distance[chosen].min()) == float(distance[safe].min())
        elif sc["selection"] == "riskiest":
            assert decision.risk[0] == float(risk[safe].max())
        elif sc["selection"] == "safest":
            assert decision.risk[0] == float(risk.min())
        else:
            first = int(torch.nonzero(safe)[0])
            assert bool(chosen[first])
            assert torch.equal(cand[first], executed)
        assert index == len(sampler.rounds) - 1, "no further round after a safe candidate was found"
        return
    assert decision.fell_back[0]


# ---------------------------------------------------------------- 6. determinism


def _run(env, seed: int, steps: int = 60):
    rng = np.random.default_rng(seed)
    observations, shields = [], []
    obs, _ = env.reset(seed=seed)
    observations.append(obs)
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(rng.uniform(-1.5, 1.5, 2).astype(np.float32))
        observations.append(obs)
        shields.append(info["shield"])
        if terminated or truncated:
            obs, _ = env.reset()
            observations.append(obs)
    return observations, shields


def _assert_same_runs(a, b):
    obs_a, shields_a = a
    obs_b, shields_b = b
    assert len(obs_a) == len(obs_b)
    for x, y in zip(obs_a, obs_b):
        assert np.array_equal(x, y)
    assert len(shields_a) == len(shields_b)
    for x, y in zip(shields_a, shields_b):
        assert x.keys() == y.keys()
        for key in x:
            assert np.array_equal(
                x[key], y[key], equal_nan=x[key] is not None and np.asarray(x[key]).dtype.kind == "f"
            ), key


# The learned methods the shared contract tests run on (each parametrised test below).
LEARNED_METHODS = ["sqrl", "csc", "q_ensemble"]


def _make_with_threshold(method: str, threshold: float | None, **options):
    """A frozen shield of ``method`` on DrunkSpider whose threshold is ``threshold`` (default if None).

    SQRL's threshold is ``eps_safe``; CSC's is ``(chi - v_hat)`` in normalised units, so V̂_C is
    set to ``chi - threshold`` (the adaptive rule itself is tested in tests/shields/test_csc.py).
    """
    if method == "sqrl":
        extra = {} if threshold is None else {"eps_safe": threshold}
        return safeshield.make(DRUNK_SPIDER, train=False, seed=0, **extra, **options)
    env = safeshield.make(DRUNK_SPIDER, shield=method, train=False, seed=0, threshold_units="normalised", **options)
    if threshold is not None:
        env.safety_model.v_hat = env.safety_model.config.chi - threshold
    return env


@pytest.mark.parametrize("regret", [None, 0.0])
@pytest.mark.parametrize("method", LEARNED_METHODS)
def test_frozen_learned_shield_is_deterministic_given_the_seed(method, regret):
    """Contract: a frozen shield is deterministic given reset(seed=...), resampling included.

    The threshold is set to the median risk the untrained critic gives random actions at the
    start state, so some proposals are rejected, resampled and (absolute rule) some fall back;
    with the relative rule at regret 0 every rejected proposal is compared with the least risky.
    """
    probe = _make_with_threshold(method, None, regret=regret)
    start, _ = probe.reset(seed=3)
    actions = np.random.default_rng(0).uniform(-1, 1, (256, 2)).astype(np.float32)
    eps = float(np.median(probe.safety_model.risk_numpy(np.repeat(start[None], 256, axis=0), actions)))
    runs = []
    for _ in range(2):
        env = _make_with_threshold(method, eps, regret=regret)
        runs.append(_run(env, seed=3))
    _assert_same_runs(*runs)
    shields = runs[0][1]
    assert any(s["intervened"] for s in shields) and not all(s["intervened"] for s in shields)
    # The same env re-seeded replays the same run too.
    env = _make_with_threshold(method, eps, regret=regret)
    _assert_same_runs(_run(env, seed=3), _run(env, seed=3))


def test_frozen_stub_shield_is_deterministic_given_the_seed():
    """Same guarantee with a stub risk that rejects about half the box (many resampling rounds)."""
    low, high = np.array([-1, -1], np.float32), np.array([1, 1], np.float32)
    runs = []
    for _ in range(2):
        env = gym.make(DRUNK_SPIDER)
        model = StubModel(
            env.observation_space,
            env.action_space,
            make_risk("linear", low, high, low, np.array([4.0, -3.0]), 0.5),
            0.5,
            CriticConfig(n_candidates=8, resample_rounds=3),
        )
        runs.append(_run(safeshield.ShieldWrapper(env, model, train=False, seed=1), seed=11))
    _assert_same_runs(*runs)
    assert sum(s["intervened"] for s in runs[0][1]) >= 5


# ---------------------------------------------------------------- 7. no transition lost


@SETTINGS
@given(n=st.integers(0, 80), capacity=st.integers(1, 30), seed=st.integers(0, 1000))
def test_buffer_keeps_exactly_the_last_min_n_capacity_transitions_in_order(n, capacity, seed):
    """Contract: "no transition the shield saw is lost from its buffer until capacity evicts it"."""
    rng = np.random.default_rng(seed)
    buffer = TransitionBuffer(capacity, 3, 2)
    added = []
    for _ in range(n):
        row = (
            rng.normal(size=3),
            rng.normal(size=2),
            rng.normal(size=3),
            float(rng.integers(0, 2)),
            bool(rng.integers(0, 2)),
        )
        buffer.add(*row)
        added.append(row)
    assert buffer.total_added == n
    assert len(buffer) == min(n, capacity)
    kept = added[max(0, n - capacity) :]
    batch = buffer.all()
    assert len(batch.obs) == len(kept)
    for i, (obs, action, next_obs, failure, terminated) in enumerate(kept):
        assert np.array_equal(batch.obs[i], obs.astype(np.float32))
        assert np.array_equal(batch.action[i], action.astype(np.float32))
        assert np.array_equal(batch.next_obs[i], next_obs.astype(np.float32))
        assert np.array_equal(batch.next_action[i], action.astype(np.float32)), "stand-in next action"
        assert batch.failure[i] == np.float32(failure)
        assert batch.terminated[i] == np.float32(terminated)


def _training_run(capacity: int, steps: int, seed: int = 0, method: str = "sqrl"):
    env = safeshield.make(
        DRUNK_SPIDER,
        shield=method,
        seed=seed,
        buffer_capacity=capacity,
        hidden=(16, 16),
        learning_starts=20,
        batch_size=16,
    )
    rng = np.random.default_rng(seed)
    records = []  # (obs before, executed, obs after, failure, terminated, truncated)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        action[0] = abs(action[0])  # drift toward the pits so episodes end in failures too
        next_obs, _, terminated, truncated, info = env.step(action)
        records.append(
            (obs, info["shield"]["executed_action"], next_obs, info["shield"]["failure"], terminated, truncated)
        )
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    return env, records


@pytest.mark.parametrize("method", LEARNED_METHODS)
@pytest.mark.parametrize("capacity", [1000, 37])
def test_training_shield_stores_every_executed_transition_with_its_sarsa_link(capacity, method):
    """Contract + buffer docstring: every step is stored with the *executed* action; next_action
    of row t is the action executed at step t+1 within an episode (its own action at episode end)."""
    steps = 150
    env, records = _training_run(capacity, steps, method=method)
    model = env.safety_model
    assert model.buffer.total_added == steps
    assert model.updates > 0, "the schedule ran (learning_starts=20)"
    batch = model.buffer.all()
    first = max(0, steps - capacity)
    assert len(batch.obs) == steps - first
    assert sum(r[3] for r in records) >= 1 and any(r[4] for r in records), "episodes end in failure"
    for i, t in enumerate(range(first, steps)):
        obs, executed, next_obs, failure, terminated, truncated = records[t]
        assert np.array_equal(batch.obs[i], obs)
        assert np.array_equal(batch.action[i], executed)
        assert np.array_equal(batch.next_obs[i], next_obs)
        assert batch.failure[i] == failure
        assert batch.terminated[i] == float(terminated)
        if terminated or truncated or t == steps - 1:
            assert np.array_equal(batch.next_action[i], executed)
        else:
            assert np.array_equal(batch.next_action[i], records[t + 1][1]), f"SARSA link broken at step {t}"


# ---------------------------------------------------------------- 8. vectorised decide


class GridSampler:
    """Deterministic candidates (ignores the generator): a fixed lattice plus shrinks of the proposal."""

    def __init__(self, low, high):
        self.low, self.high = torch.as_tensor(low), torch.as_tensor(high)

    def __call__(self, obs, proposal, k, round_index, generator):
        fractions = (torch.arange(k, dtype=torch.float32) + 0.5 + round_index * 0.25) / k
        lattice = self.low + fractions[:, None] * (self.high - self.low)  # (k, d) diagonal lattice
        lattice = lattice.roll(shifts=1, dims=1) if lattice.shape[1] > 1 else lattice
        mix = 0.5 * (lattice.unsqueeze(0) + proposal.unsqueeze(1) * (1 - fractions[None, :, None]))
        return torch.clamp(mix, self.low, self.high)


@st.composite
def batches(draw):
    sc = draw(scenarios())
    low, high = sc["low"], sc["high"]
    n = draw(st.integers(1, 8))
    proposals = np.stack([np.clip(low + unit(draw, len(low)) * (high - low), low, high) for _ in range(n)])
    return sc, proposals.astype(np.float32), f32(draw(st.floats(0.05, 0.95)))


@SETTINGS
@given(case=batches())
def test_decide_on_n_rows_equals_n_single_row_calls_with_deterministic_candidates(case):
    """``decide`` is pure and batched over rows: each row decides alone (bitwise, when candidates do not use RNG)."""
    sc, proposals, threshold = case
    risk_fn = risk_of(sc)

    def call(rows):
        with torch.inference_mode():
            return decide(
                risk_fn,
                torch.zeros(len(rows), 2),
                torch.as_tensor(rows),
                threshold,
                GridSampler(sc["low"], sc["high"]),
                torch.Generator().manual_seed(0),
                k=sc["k"],
                rounds=sc["rounds"],
                selection=sc["selection"],
                half_range=(np.asarray(sc["high"], np.float32) - np.asarray(sc["low"], np.float32)) / 2,
            )

    together = call(proposals)
    for i in range(len(proposals)):
        alone = call(proposals[i : i + 1])
        for field in ("action", "risk", "proposal_risk", "intervened", "fell_back", "n_candidates"):
            assert np.array_equal(getattr(together, field)[i], getattr(alone, field)[0]), (field, i)


@SETTINGS
@given(case=batches())
def test_decide_on_n_rows_gives_the_same_guarantees_as_n_single_row_calls(case):
    """With random candidates the bits differ (RNG consumption), the guarantees must not."""
    sc, proposals, threshold = case
    risk_fn = risk_of(sc)
    together, _, _ = run_decide(sc, threshold, risk_fn, proposals=proposals)
    for i in range(len(proposals)):
        alone, _, _ = run_decide(sc, threshold, risk_fn, proposals=proposals[i : i + 1])
        assert together.proposal_risk[i] == alone.proposal_risk[0]
        accepted = together.proposal_risk[i] < threshold
        for decision, row in ((together, i), (alone, 0)):
            assert (decision.n_candidates[row] == 0) == accepted
            assert in_box(decision.action[row], sc["low"], sc["high"])
            if accepted:
                assert np.array_equal(decision.action[row], proposals[i]) and not decision.intervened[row]
            else:
                assert decision.n_candidates[row] >= sc["k"]
                assert decision.fell_back[row] == (decision.risk[row] >= threshold)
                assert decision.risk[row] <= decision.proposal_risk[row]


# ---------------------------------------------------------------- 9. the masked policy


ACTIONS = torch.tensor([-0.75, -0.25, 0.25, 0.75])
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27}  # chi-square critical values at p = 0.001


def _masked_policy_counts(probs, unsafe, rows=20_000, seed=0):
    probs_t = torch.tensor(probs, dtype=torch.float32)
    unsafe_t = torch.tensor(unsafe, dtype=torch.float32)

    def index_of(actions):
        return torch.clamp(((actions[..., 0] + 1.0) / 0.5).floor().long(), 0, 3)

    def risk(obs, actions):
        return unsafe_t[index_of(actions)]

    def sample(obs, n, generator):
        drawn = torch.multinomial(probs_t.expand(obs.shape[0], 4), n, replacement=True, generator=generator)
        return ACTIONS[drawn].unsqueeze(-1)

    generator = torch.Generator().manual_seed(seed)
    proposal = ACTIONS[torch.multinomial(probs_t, rows, replacement=True, generator=generator)].unsqueeze(-1)
    sampler = PolicySampler(sample, torch.tensor([-1.0]), torch.tensor([1.0]))
    with torch.inference_mode():
        decision = decide(
            risk, torch.zeros(rows, 1), proposal, 0.5, sampler, generator, k=50, rounds=1, selection="uniform"
        )
    assert not decision.fell_back.any()
    return np.bincount(index_of(torch.as_tensor(decision.action)).numpy(), minlength=4)


def _chi2(counts, expected_probs):
    keep = expected_probs > 0
    expected = expected_probs[keep] * counts.sum()
    return float((((counts[keep] - expected) ** 2) / expected).sum()), int(keep.sum() - 1)


@pytest.mark.parametrize(
    "probs, unsafe",
    [
        ([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1]),
        ([0.1, 0.2, 0.3, 0.4], [1, 0, 0, 1]),
        ([0.4, 0.3, 0.2, 0.1], [0, 0, 0, 1]),
        ([0.25, 0.25, 0.25, 0.25], [1, 0, 1, 0]),
    ],
)
def test_uniform_selection_with_a_policy_sampler_is_the_masked_policy(probs, unsafe):
    """SQRL Eq. 3 / 5: P(a* = a) = pi(a) 1[a safe] / Z, checked by chi-square on 20 000 decisions.

    The same counts must *reject* pi^2 restricted to the safe set (the bias of choosing
    proportionally to pi among candidates already drawn from pi), so the test has power.
    """
    counts = _masked_policy_counts(probs, unsafe)
    safe = 1 - np.asarray(unsafe)
    assert (counts[safe == 0] == 0).all(), "an unsafe action was executed although safe ones exist"
    masked = np.asarray(probs) * safe
    stat, dof = _chi2(counts, masked / masked.sum())
    assert stat < CHI2_999[dof], (counts, masked / masked.sum(), stat)
    squared = np.asarray(probs) ** 2 * safe
    if dof > 0 and not np.allclose(squared / squared.sum(), masked / masked.sum()):
        stat_sq, _ = _chi2(counts, squared / squared.sum())
        assert stat_sq > CHI2_999[dof]


def test_policy_sampler_widens_beyond_the_policy_after_the_first_round():
    """A confident policy heading for danger offers no safe candidate; the later rounds' wider
    candidates (perturbations + uniform, our stand-in for the official code's x1.5 policy
    scale) find one instead of falling back to the least risky bad idea."""
    from safeshield.core.decision import PerturbationSampler, PolicySampler, decide

    low, high = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])

    def risk(obs, actions):
        return (actions[:, 0] > 0).to(torch.float32)  # safe iff a[0] <= 0

    def confident_policy(obs, n, generator):
        return torch.full((obs.shape[0], n, 2), 0.9)

    obs, proposal = torch.zeros(1, 3), torch.tensor([[0.9, 0.0]])
    outcomes = {}
    for name, wider in (("policy only", None), ("widened", PerturbationSampler(low, high))):
        with torch.inference_mode():
            outcomes[name] = decide(
                risk,
                obs,
                proposal,
                0.5,
                PolicySampler(confident_policy, low, high, wider=wider),
                torch.Generator().manual_seed(0),
                k=20,
                rounds=3,
            )
    assert outcomes["policy only"].fell_back[0]
    widened = outcomes["widened"]
    assert not widened.fell_back[0] and widened.action[0, 0] <= 0 and widened.intervened[0]
