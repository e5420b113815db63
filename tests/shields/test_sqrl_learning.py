"""A short learning test of the SQRL critic on ``safeshield/DrunkSpider-v0`` (SQRL §7, Table 2).

Transitions are collected through a training SQRL shield with a scripted exploratory policy:
walk straight along the bridge (holding y at 0) and, in half the episodes, take one random
action biased sideways toward the pits at a random step. The critic then learns Q_safe of that
behaviour (SARSA on the executed actions). The test checks the two things a shield needs:
a step from the pit's edge into the pit is rejected (risk above eps_safe) and a step along the
bridge centre is accepted. An untrained critic fails the same check, so the test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import safeshield

torch.set_num_threads(1)

DRUNK_SPIDER = "safeshield/DrunkSpider-v0"
INTO_PIT = [((5.0, 0.2), (0.0, 1.0)), ((5.0, -0.2), (0.0, -1.0)), ((3.5, 0.3), (0.3, 1.0))]  # land at |y| >= 1.2
ALONG_BRIDGE = [((3.0, 0.0), (1.0, 0.0)), ((6.0, 0.0), (1.0, 0.0))]


def collect(seed: int = 0, episodes: int = 400):
    """Run the scripted policy through a training SQRL shield; learning deferred to the end."""
    env = safeshield.make(
        DRUNK_SPIDER,
        seed=seed,
        target="td",  # SQRL §5.1's one-step backup ...
        gamma_safe=0.65,  # ... at SQRL Table 2's gamma_safe 0.65 for DrunkSpider
        hidden=(64, 64),
        lr=1e-3,
        tau=0.05,
        learning_starts=10**9,  # learning deferred: no update before this many transitions ...
        warmup_failures=0,  # ... nor once a warm-up's failures are stored (they would start it early)
    )
    rng = np.random.default_rng(seed)
    failures = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 10_000 + episode)
        dive_at = int(rng.integers(1, 13)) if rng.random() < 0.5 else -1
        for t in range(30):
            if t == dive_at:
                action = np.array([rng.uniform(-1, 1), rng.choice([-1, 1]) * rng.uniform(0.3, 1.0)], np.float32)
            else:
                action = np.clip([1.0, -obs[1]], -1.0, 1.0).astype(np.float32)
            obs, _, terminated, truncated, info = env.step(action)
            failures += info["shield"]["failure"] > 0.5
            if terminated or truncated:
                break
    return env, failures


def risk(model, position, action) -> float:
    obs = np.array([position], np.float32)
    return float(model.risk_numpy(obs, np.array([action], np.float32))[0])


def separates(model) -> bool:
    eps = model.threshold
    return all(risk(model, p, a) > eps for p, a in INTO_PIT) and all(risk(model, p, a) < eps for p, a in ALONG_BRIDGE)


@pytest.fixture(scope="module")
def collected():
    env, failures = collect()
    assert env.safety_model.updates == 0, "learning is deferred until the data is in"
    return env, failures


def test_collection_went_through_the_shield(collected):
    env, failures = collected
    model = env.safety_model
    assert model.buffer.total_added > 2000
    assert failures >= 50, "the scripted dives must produce failures to learn from"
    assert model.buffer.failure.sum() == failures


def test_untrained_critic_does_not_separate_pit_from_bridge():
    """Guards the learning test: an untrained critic (risk ≈ 0.01 everywhere) fails the check."""
    env = safeshield.make(DRUNK_SPIDER, seed=0, target="td", gamma_safe=0.65, hidden=(64, 64))
    assert not separates(env.safety_model)
    assert all(risk(env.safety_model, p, a) < env.safety_model.threshold for p, a in INTO_PIT)


def test_trained_critic_rejects_stepping_into_a_pit_and_accepts_the_bridge(collected):
    env, _ = collected
    model = env.safety_model
    model.learn(2000)
    eps = model.threshold
    into = {p: risk(model, p, a) for p, a in INTO_PIT}
    along = {p: risk(model, p, a) for p, a in ALONG_BRIDGE}
    assert all(r > eps for r in into.values()), into
    assert all(r < eps for r in along.values()), along
    assert separates(model)
    # The shield now acts on it: walk onto the bridge, then propose a dive; it is replaced by a
    # safe candidate or, where the search misses the narrow safe set (only a_x ≈ 1 is known to be
    # safe from this data), by the least risky one found.
    env.safety_model.freeze()
    obs, _ = env.reset(seed=123)
    for _ in range(5):
        obs, _, _, _, info = env.step(np.clip([1.0, -obs[1]], -1.0, 1.0).astype(np.float32))
        assert not info["shield"]["intervened"], "the bridge walk passes unchanged"
    _, _, terminated, _, info = env.step(np.array([0.0, 1.0], np.float32))
    report = info["shield"]
    assert report["intervened"] and report["proposal_risk"] > eps
    assert report["risk"] < report["proposal_risk"]
    # the relative rule (regret) always has an allowed action: the least risky one found
    assert not report["fell_back"]
