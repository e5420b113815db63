"""Tests for ``safeshield.wrappers.vector.VectorShieldWrapper``: one shared model for N sub-envs.

Holds the vector shield to the issue's statements:

1. it decides exactly as N single ``ShieldWrapper``s with the same model and seeds would
   (same executed actions, interventions, fallbacks and candidate counts, step by step);
2. autoreset steps are never stored (NEXT_STEP: the ignored action at a reset step;
   SAME_STEP: the transition ends at the final observation, not the reset one; DISABLED: the
   rows named by ``reset_mask`` start new episodes), and each env's SARSA link stays in that env;
3. the contract properties hold per row (executed action inside the box; a safe proposal
   passes unchanged; a safe candidate is preferred, else fallback is flagged), with one
   batched risk query for all proposals and one per resampling round;
4. seeds reproduce, it learns from all sub-envs into one buffer, per-env shields keep working
   inside an ``AsyncVectorEnv``, and bad input fails with clear errors.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeshield
from safeshield.core import SafetyCritic
from safeshield.wrappers.vector import VectorShieldWrapper, env_info, wrap_vector

DRUNK_SPIDER = "safeshield/DrunkSpider-v0"
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class DistanceRisk(SafetyCritic):
    """Frozen stub: risk = squared distance of the action from ``point`` (exact elementwise ops)."""

    name = "test-vector-stub"

    def __init__(self, observation_space, action_space, point=0.5, threshold=0.3, calls=None, **config):
        from safeshield.core import CriticConfig

        super().__init__(observation_space, action_space, CriticConfig(**config) if config else None)
        self.point, self._threshold, self.calls = point, threshold, calls

    def build(self) -> None:
        pass

    def risk(self, obs, actions):
        if self.calls is not None:
            self.calls.append(actions.shape[0])
        acc = torch.zeros(actions.shape[0])
        for j in range(actions.shape[1]):
            acc = acc + (actions[:, j] - self.point) ** 2
        return acc

    @property
    def threshold(self):
        return self._threshold

    def learn_step(self, batch):
        return {}


class Counter(gym.Env):
    """obs = (env id, episode, t); episodes end after ``length`` steps, terminated when ``terminate``.

    Reports ``info["failure"]`` on the last step, so the indicator of the final info is visible.
    """

    metadata = {"render_modes": []}

    def __init__(self, env_id=0, length=3, terminate=True):
        self.env_id, self.length, self.terminate = env_id, length, terminate
        self.observation_space = gym.spaces.Box(-1e6, 1e6, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.episode = -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {"failure": 0.0}

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        info = {"failure": float(done)}
        return self._obs(), 0.0, done and self.terminate, done and not self.terminate, info

    def _obs(self):
        return np.array([self.env_id, self.episode, self.t], np.float32)


def counter_vec(n=3, mode=AutoresetMode.NEXT_STEP, length=3, terminate=True):
    fns = [lambda i=i: Counter(i, length + i, terminate) for i in range(n)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)


# ---------------------------------------------------------------- 1. equals N single shields


def run_vector(model, n, steps, seed, actions):
    envs = VectorShieldWrapper(gym.make_vec(DRUNK_SPIDER, num_envs=n, vectorization_mode="sync"), model, train=False)
    envs.reset(seed=seed)
    out = []
    for t in range(steps):
        _, _, _, _, info = envs.step(actions[t])
        out.append((info["_shield"].copy(), {k: v.copy() for k, v in info["shield"].items()}))
    return out


def run_singles(model, n, steps, seed, actions):
    envs = [safeshield.ShieldWrapper(gym.make(DRUNK_SPIDER), model, train=False) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    resetting = np.zeros(n, dtype=bool)
    out = []
    for t in range(steps):
        reports = [None] * n
        for i, env in enumerate(envs):
            if resetting[i]:  # the vector env spends this step on the reset and ignores the action
                env.reset()
                resetting[i] = False
                continue
            _, _, terminated, truncated, info = env.step(actions[t][i])
            reports[i] = info["shield"]
            resetting[i] = terminated or truncated
        out.append(reports)
    return out


@pytest.mark.parametrize("n", [1, 3, 5])
def test_vector_shield_decides_as_n_single_shields(n):
    """Same model, same seeds: every covered row's decision equals the single shield's, exactly."""
    env = gym.make(DRUNK_SPIDER)
    model = DistanceRisk(env.observation_space, env.action_space, point=0.5, threshold=0.4, n_candidates=8)
    rng = np.random.default_rng(0)
    steps = 60
    actions = rng.uniform(-1, 1, (steps, n, 2)).astype(np.float32)
    vector = run_vector(model, n, steps, 7, actions)
    singles = run_singles(model, n, steps, 7, actions)
    compared = interventions = 0
    for (covered, report), single in zip(vector, singles):
        assert list(covered) == [s is not None for s in single]
        for i, s in enumerate(single):
            if s is None:
                continue
            compared += 1
            interventions += s["intervened"]
            np.testing.assert_array_equal(report["executed_action"][i], s["executed_action"])
            for key in ("intervened", "fell_back", "n_candidates", "risk", "proposal_risk", "failure"):
                assert report[key][i] == s[key], key
    assert compared > steps * n * 0.8 and interventions > 10  # the comparison covered resampling


def test_vector_sqrl_decides_as_single_shields_up_to_float_rounding():
    """A real (untrained, pessimistic) SQRL critic: batched and single-pair scoring agree."""
    env = gym.make(DRUNK_SPIDER)
    model = safeshield.SQRL(env.observation_space, env.action_space, seed=3)
    n, steps = 4, 40
    actions = np.random.default_rng(1).uniform(-1, 1, (steps, n, 2)).astype(np.float32)
    obs, _ = env.reset(seed=0)
    risks = model.risk_numpy(np.repeat(obs[None], steps * n, 0), actions.reshape(-1, 2))
    # the absolute rule: reject about a third of the proposals
    model.reconfigure(eps_safe=float(np.quantile(risks, 0.7)), regret=None)
    vector, singles = run_vector(model, n, steps, 0, actions), run_singles(model, n, steps, 0, actions)
    intervened = 0
    for (_covered, report), single in zip(vector, singles):
        for i, s in enumerate(single):
            if s is not None:
                intervened += s["intervened"]
                np.testing.assert_allclose(report["executed_action"][i], s["executed_action"], atol=1e-6)
                assert abs(report["proposal_risk"][i] - s["proposal_risk"]) < 1e-6
    assert intervened > 0


# ---------------------------------------------------------------- 2. autoreset


def stored(model):
    batch = model.buffer.all()
    return batch.obs, batch.action, batch.next_obs, batch.next_action, batch.failure


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_autoreset_steps_are_never_stored(mode):
    envs = wrap_vector(counter_vec(3, mode), "sqrl", indicator="info:failure", seed=0, learning_starts=10**6)
    envs.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (40, 3, 2)).astype(np.float32)
    covered_steps = 0
    for a in actions:
        _, _, _, _, info = envs.step(a)
        covered_steps += int(info["_shield"].sum())
    obs, action, next_obs, next_action, failure = stored(envs.safety_model)
    assert len(obs) == covered_steps
    assert (next_obs[:, 0] == obs[:, 0]).all(), "a transition crossed sub-envs"
    assert (next_obs[:, 1] == obs[:, 1]).all(), "a transition crossed an episode boundary (reset stored)"
    assert (next_obs[:, 2] == obs[:, 2] + 1).all()
    lengths = 3 + obs[:, 0]
    np.testing.assert_array_equal(failure, (next_obs[:, 2] == lengths).astype(np.float32))
    if mode == AutoresetMode.NEXT_STEP:
        assert covered_steps < 40 * 3  # some steps were resets, and they were not stored
    else:
        assert covered_steps == 40 * 3


def test_sarsa_link_stays_within_each_env_and_episode():
    envs = wrap_vector(counter_vec(3), "sqrl", indicator="info:failure", seed=0, learning_starts=10**6)
    envs.reset(seed=0)
    for a in np.random.default_rng(2).uniform(-1, 1, (30, 3, 2)).astype(np.float32):
        envs.step(a)
    obs, action, next_obs, next_action, _ = stored(envs.safety_model)
    where = {tuple(o): k for k, o in enumerate(obs)}
    linked = 0
    for k in range(len(obs)):
        follower = where.get(tuple(next_obs[k]))
        if follower is not None:
            np.testing.assert_array_equal(next_action[k], action[follower])
            linked += 1
    assert linked > 40


def test_disabled_autoreset_uses_the_reset_mask():
    envs = wrap_vector(
        counter_vec(2, AutoresetMode.DISABLED, length=2),
        "sqrl",
        indicator="info:failure",
        seed=0,
        learning_starts=10**6,
    )
    envs.reset(seed=0)
    zeros = np.zeros((2, 2), np.float32)
    envs.step(zeros)
    _, _, terminations, _, _ = envs.step(zeros)
    assert list(terminations) == [True, False]
    obs, _ = envs.reset(options={"reset_mask": terminations})
    envs.step(zeros)  # env 0 starts a new episode, env 1 finishes its first
    stored_obs, _, stored_next, _, _ = stored(envs.safety_model)
    assert (stored_next[:, 1] == stored_obs[:, 1]).all() and (stored_next[:, 2] == stored_obs[:, 2] + 1).all()
    assert envs.stepper.pending[0] is not None


# ---------------------------------------------------------------- 3. contract per row


@SETTINGS
@given(
    n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    threshold=st.floats(0.05, 2.0),
    point=st.floats(-1.0, 1.0),
    scale=st.floats(0.5, 3.0),
)
def test_contract_holds_per_row_with_batched_queries(n, seed, threshold, point, scale):
    calls = []
    single = gym.make(DRUNK_SPIDER)
    model = DistanceRisk(
        single.observation_space, single.action_space, point, threshold, calls, n_candidates=6, resample_rounds=3
    )
    envs = VectorShieldWrapper(gym.make_vec(DRUNK_SPIDER, num_envs=n, vectorization_mode="sync"), model, train=False)
    envs.reset(seed=seed)
    proposals = np.random.default_rng(seed).uniform(-scale, scale, (n, 2)).astype(np.float32)
    calls.clear()
    _, _, _, _, info = envs.step(proposals)
    report = info["shield"]
    clipped = np.clip(proposals, -1, 1)
    executed = report["executed_action"]
    assert np.all(executed >= -1) and np.all(executed <= 1)
    risk = ((clipped - point) ** 2).sum(axis=1)
    safe = risk < np.float32(threshold)
    np.testing.assert_array_equal(executed[safe], clipped[safe])
    assert not report["intervened"][safe].any()
    executed_risk = ((executed - point) ** 2).sum(axis=1)
    ok = (executed_risk < np.float32(threshold) + 1e-6) | report["fell_back"]
    assert ok.all()
    assert (executed_risk[report["fell_back"]] <= risk[report["fell_back"]] + 1e-6).all()
    proposal_queries = 0 if n == 1 else 1  # one row takes the lean single-pair path
    assert len(calls) <= proposal_queries + 3 + (1 if n == 1 else 0)
    if n > 1:
        assert calls[0] == n  # every proposal in one query


# ---------------------------------------------------------------- 4. seeds, learning, other vector envs, errors


def test_frozen_vector_shield_is_deterministic_given_the_seed():
    env = gym.make(DRUNK_SPIDER)
    model = DistanceRisk(env.observation_space, env.action_space, 0.5, 0.4)
    actions = np.random.default_rng(5).uniform(-1, 1, (30, 3, 2)).astype(np.float32)
    first = run_vector(model, 3, 30, 11, actions)
    second = run_vector(model, 3, 30, 11, actions)
    for (_, a), (_, b) in zip(first, second):
        np.testing.assert_array_equal(a["executed_action"], b["executed_action"])


def test_one_buffer_learns_from_every_sub_env_on_the_single_env_schedule():
    envs = wrap_vector(
        gym.make_vec(DRUNK_SPIDER, num_envs=4, vectorization_mode="sync"),
        "sqrl",
        seed=0,
        learning_starts=20,
        batch_size=16,
        hidden=(16,),
    )
    envs.reset(seed=0)
    covered = 0
    for _ in range(10):
        covered += int(envs.step(envs.action_space.sample())[4]["_shield"].sum())
    model = envs.safety_model
    assert model.buffer.total_added == covered >= 30
    assert model.updates == covered - 20 + 1  # one update per stored transition from learning_starts on


def test_info_shield_mask_and_per_env_view():
    envs = VectorShieldWrapper(counter_vec(2), "sqrl", indicator="info:failure", seed=0)
    envs.reset(seed=0)
    zeros = np.zeros((2, 2), np.float32)
    for _ in range(3):
        _, _, _, _, info = envs.step(zeros)
    assert list(info["_shield"]) == [True, True]
    _, _, _, _, info = envs.step(zeros)  # env 0 (length 3) is resetting
    assert list(info["_shield"]) == [False, True]
    assert env_info(info, 1)["shield"]["failure"] == 1.0  # env 1 (length 4) ends here
    assert envs.total_failures == 2


def test_per_env_shields_inside_an_async_vector_env():
    envs = gym.vector.AsyncVectorEnv([lambda: safeshield.make(DRUNK_SPIDER, seed=0) for _ in range(2)])
    try:
        envs.reset(seed=0)
        for _ in range(5):
            _, _, _, _, info = envs.step(envs.action_space.sample())
        assert info["shield"]["executed_action"].shape == (2, 2)
    finally:
        envs.close()


def test_bad_input_raises_clear_errors():
    vec = gym.make_vec(DRUNK_SPIDER, num_envs=2, vectorization_mode="sync")
    with pytest.raises(TypeError, match="VectorEnv"):
        VectorShieldWrapper(gym.make(DRUNK_SPIDER))
    envs = VectorShieldWrapper(vec, "sqrl")
    with pytest.raises(ValueError, match="already shielded"):
        VectorShieldWrapper(envs, "sqrl")
    with pytest.raises(gym.error.ResetNeeded):
        envs.step(np.zeros((2, 2), np.float32))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        envs.step(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="action must be finite"):
        envs.step(np.full((2, 2), np.nan, np.float32))
    text = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    text.single_action_space = gym.spaces.Text(3)
    with pytest.raises(TypeError, match="Box, Discrete"):
        VectorShieldWrapper(text, "sqrl", indicator="terminated")


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_training_shields_learn_when_stepped_without_autograd(context):
    """TorchRL's collectors step envs under no_grad; the shield's own updates must still run."""
    single = safeshield.make(DRUNK_SPIDER, seed=0, learning_starts=4, batch_size=4, hidden=(8,))
    envs = wrap_vector(
        gym.make_vec(DRUNK_SPIDER, num_envs=2, vectorization_mode="sync"),
        "sqrl",
        seed=0,
        learning_starts=4,
        batch_size=4,
        hidden=(8,),
    )
    single.reset(seed=0)
    envs.reset(seed=0)
    with context():
        for _ in range(6):
            single.step(single.action_space.sample())
            envs.step(envs.action_space.sample())
    assert single.safety_model.updates > 0 and envs.safety_model.updates > 0


def test_dict_observations_are_flattened_per_sub_env():
    def to_dict(env):
        space = gym.spaces.Dict({"x": env.observation_space, "t": gym.spaces.Box(0, 1, (1,), np.float32)})
        return gym.wrappers.TransformObservation(env, lambda o: {"x": o, "t": np.zeros(1, np.float32)}, space)

    envs = wrap_vector(
        gym.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync", wrappers=[to_dict]),
        "sqrl",
        indicator=lambda *a: 0.0,
        learning_starts=10**6,
    )
    obs, _ = envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    stored = envs.safety_model.buffer.all().obs
    np.testing.assert_allclose(stored[:, 1:], obs["x"], rtol=1e-6)  # Dict flattens keys in order: t, x
    assert (stored[:, 0] == 0).all()
