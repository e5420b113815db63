"""Standardised critic inputs (``normalize_obs``): refits never change a risk, the moments are exact,
and the statistics travel with a checkpoint."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield
from safeshield.core import checkpoint
from safeshield.core.networks import ActionHeadsNet, CriticEnsemble, InputScaler, RunningMoments, StateActionNet
from safeshield.shields.csc import CSC, CSCConfig, QEnsemble
from safeshield.shields.sqrl import SQRL, SQRLConfig

torch.set_num_threads(1)

SCALES = st.lists(st.sampled_from([1e-2, 1.0, 50.0]), min_size=1, max_size=6)


def wild_obs(rng, rows, scales):
    """Observations whose features differ in scale by up to 5000x and sit away from zero."""
    return (rng.normal(size=(rows, len(scales))) * scales + 3 * np.asarray(scales)).astype(np.float32)


def standardise(rng, scales, *networks):
    """Refit ``networks`` to a large sample, so that probes of the same distribution sit well inside +-10 std."""
    sample = torch.from_numpy(wild_obs(rng, 256, scales))
    for network in networks:
        network.refit_inputs(sample.mean(0), 1 / sample.std(0))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scales=SCALES, act_dim=st.integers(1, 3), refits=st.integers(1, 3))
def test_refit_leaves_every_output_unchanged(seed, scales, act_dim, refits):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    obs = wild_obs(rng, 9, scales)
    action = rng.uniform(-1, 1, (9, act_dim)).astype(np.float32)
    pair = StateActionNet(len(scales), act_dim, (16, 8), scale_inputs=True)
    heads = ActionHeadsNet(len(scales), 3, (16,), scale_inputs=True)
    o, a = torch.from_numpy(obs), torch.from_numpy(action)
    with torch.no_grad():
        standardise(rng, scales, pair, heads)  # raw values would be clipped at +-10
        before_pair, before_heads = pair(o, a), heads.all_actions(o)
        for _ in range(refits):  # each refit from the statistics of another sample
            sample = torch.from_numpy(wild_obs(rng, 64, scales))
            inv_std = 1 / sample.std(0).clamp_min(1e-3)
            pair.refit_inputs(sample.mean(0), inv_std)
            heads.refit_inputs(sample.mean(0), inv_std)
        tolerance = dict(rtol=1e-4, atol=1e-4 * float(before_pair.abs().max() + 1))
        np.testing.assert_allclose(pair(o, a).numpy(), before_pair.numpy(), **tolerance)
        np.testing.assert_allclose(pair.forward_numpy(obs, action), before_pair.numpy(), **tolerance)
        np.testing.assert_allclose(
            heads.all_actions(o).numpy(),
            before_heads.numpy(),
            rtol=1e-4,
            atol=1e-4 * float(before_heads.abs().max() + 1),
        )
    assert torch.allclose(pair.inputs.scale, inv_std)  # the scaler itself did move


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scales=SCALES, act_dim=st.integers(1, 3), members=st.integers(1, 4))
def test_refit_leaves_every_member_of_an_ensemble_unchanged(seed, scales, act_dim, members):
    """CSC's and the Q-ensemble's stacked critics absorb a refit in every member's first layer at once."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    obs_dim = len(scales)
    pair = CriticEnsemble(obs_dim + act_dim, members, (16, 8), scaled_obs=obs_dim)
    heads = CriticEnsemble(obs_dim, members, (16,), n_actions=3, scaled_obs=obs_dim)
    o = torch.from_numpy(wild_obs(rng, 9, scales))
    a = torch.from_numpy(rng.uniform(-1, 1, (9, act_dim)).astype(np.float32))
    with torch.no_grad():
        standardise(rng, scales, pair, heads)
        before_pair, before_heads = pair(o, a), heads.all_actions(o)
        sample = torch.from_numpy(wild_obs(rng, 64, scales))
        inv_std = 1 / sample.std(0).clamp_min(1e-3)
        pair.refit_inputs(sample.mean(0), inv_std)
        heads.refit_inputs(sample.mean(0), inv_std)
        for after, before in ((pair(o, a), before_pair), (heads.all_actions(o), before_heads)):
            torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4 * float(before.abs().max() + 1))
    assert torch.allclose(pair.inputs.scale, inv_std) and torch.allclose(heads.inputs.shift, sample.mean(0))


def test_an_unvaried_feature_keeps_raw_units_and_extremes_are_clipped():
    """After a transfer, a feature constant in pre-training moves in raw units (not x 1/std), and a state
    far outside everything stored reaches the network as at most 10 standard deviations."""
    rows = np.random.default_rng(0).normal(size=(50, 3)) * [0.0, 1e-2, 1.0] + [4.0, 0.0, 0.0]
    moments = RunningMoments(3)
    moments.add(rows)
    mean, inv_std = moments.standardiser()
    assert inv_std[0] == 1.0 and inv_std[1] > 50
    net = StateActionNet(3, 1, (8,), scale_inputs=True)
    net.refit_inputs(mean, inv_std)
    shifted = torch.tensor([[4.5, 5.0, -30.0]])
    scaled = net.inputs(shifted)[0]
    assert scaled[0] == pytest.approx(0.5, abs=1e-5)
    assert scaled[1] == InputScaler.CLIP and scaled[2] == -InputScaler.CLIP
    with torch.no_grad():  # the numpy path clips the same way
        np.testing.assert_allclose(
            net.forward_numpy(shifted.numpy(), np.zeros((1, 1), np.float32)), net(shifted, torch.zeros(1, 1)), rtol=1e-5
        )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 40), max_size=5))
def test_moments_added_in_chunks_equal_the_whole(seed, cuts):
    rows = np.random.default_rng(seed).normal(size=(40, 3)) * [1.0, 100.0, 1e-3] + [0.0, 5e3, -2.0]
    moments = RunningMoments(3)
    for chunk in np.split(rows, sorted(cuts)):
        moments.add(chunk)
    assert moments.count == 40
    np.testing.assert_allclose(moments.mean, rows.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(moments.m2 / 40, rows.var(0), rtol=1e-7, atol=1e-12)


def sqrl(capacity: int = 32, **options) -> SQRL:
    obs = gym.spaces.Box(-np.inf, np.inf, (3,), dtype=np.float32)
    act = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    config = SQRLConfig(hidden=(16,), batch_size=8, learning_starts=0, buffer_capacity=capacity, **options)
    return SQRL(obs, act, config, seed=0)


def test_moments_count_every_stored_observation_across_eviction_and_clear():
    model, rng, stored = sqrl(capacity=32), np.random.default_rng(0), []
    for step in range(100):
        obs = wild_obs(rng, 1, [1.0, 50.0, 1e-2])[0]
        model.observe(obs, np.zeros(2, np.float32), obs, float(step % 7 == 0), step % 7 == 0)
        stored.append(obs)
        if step % 20 == 19:  # fewer new rows than the ring holds between two refits
            model.refit_inputs()
        if step == 59:  # right after a refit (rows cleared before one are never seen)
            model.buffer.clear()
    model.refit_inputs()
    stored = np.asarray(stored, dtype=np.float64)
    assert model.obs_moments.count == 100
    np.testing.assert_allclose(model.obs_moments.mean, stored.mean(0), rtol=1e-6)
    np.testing.assert_allclose(model.critic.inputs.scale.numpy(), 1 / stored.std(0), rtol=1e-4)
    np.testing.assert_array_equal(model.critic.inputs.shift.numpy(), model.target_critic.inputs.shift.numpy())


def test_learning_refits_and_the_paper_preset_keeps_raw_inputs():
    model = sqrl()
    rng = np.random.default_rng(1)
    for step in range(40):
        obs = wild_obs(rng, 1, [1.0, 50.0, 1e-2])[0]
        model.observe(obs, rng.uniform(-1, 1, 2).astype(np.float32), obs, float(step % 5 == 4), step % 5 == 4)
    model.learn(1)
    assert model.obs_moments.count == 32 and model.critic.inputs.shift.abs().max() > 1
    paper = SQRL(model.observation_space, model.action_space, SQRLConfig.paper(hidden=(16,)), seed=0)
    assert not paper.config.normalize_obs and paper.critic.inputs is None
    assert "normalize_obs" in SQRL.fixed_fields  # it shapes the networks: a built model cannot switch it


@pytest.mark.parametrize("method", [CSC, QEnsemble])
def test_csc_and_the_q_ensemble_standardise_inputs_except_in_the_paper_preset(method, tmp_path):
    obs = gym.spaces.Box(-np.inf, np.inf, (3,), dtype=np.float32)
    act = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    assert method(obs, act, method.config_class.paper(), seed=0).critic.inputs is None  # published: raw inputs
    assert method(obs, act, seed=0).critic.inputs is not None  # the defaults standardise them
    config = method.config_class(hidden=(16,), n_critics=3, batch_size=8, learning_starts=0, normalize_obs=True)
    model, rng = method(obs, act, config, seed=0), np.random.default_rng(2)
    for step in range(80):
        x = wild_obs(rng, 1, [1.0, 50.0, 1e-2])[0]
        model.observe(x, rng.uniform(-1, 1, 2).astype(np.float32), x, float(step % 5 == 4), step % 5 == 4)
        if step == 59:
            model.refit_inputs()  # raw values would be clipped at +-10: compare two standardisations
    probe, actions = torch.from_numpy(wild_obs(rng, 6, [1.0, 50.0, 1e-2])), torch.rand(6, 2) * 2 - 1
    with torch.inference_mode():
        before = model.risk(probe, actions)
    model.refit_inputs()
    with torch.inference_mode():
        torch.testing.assert_close(model.risk(probe, actions), before, rtol=1e-4, atol=1e-5)
    assert model.critic.inputs.shift.abs().max() > 1 and model.target_critic.inputs.shift.abs().max() > 1
    model.learn(2)
    assert isinstance(model.config, CSCConfig) and model.scales_inputs
    model.save(tmp_path / "shield")
    loaded = safeshield.load(tmp_path / "shield")
    with torch.inference_mode():
        torch.testing.assert_close(loaded.risk(probe, actions), model.risk(probe, actions))
    assert loaded.obs_moments.state() == model.obs_moments.state()


@pytest.fixture
def trained():
    """A shield pre-trained on logged steps whose features differ in scale by 5000x."""
    model, rng = sqrl(capacity=256), np.random.default_rng(0)
    obs = wild_obs(rng, 81, [1.0, 50.0, 1e-2])
    ends = np.arange(80) % 10 == 9
    zeros = np.zeros(80)
    model.learn_offline(obs[:-1], rng.uniform(-1, 1, (80, 2)), obs[1:], ends, ends, zeros, updates=20)
    return model


def test_scaler_and_moments_survive_a_checkpoint(trained, tmp_path):
    assert trained.obs_moments.count == 80 and trained.critic.inputs.shift.abs().max() > 1
    trained.save(tmp_path / "shield")
    loaded = safeshield.load(tmp_path / "shield")
    obs, actions = torch.randn(16, 3) * 4, torch.rand(16, 2) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(loaded.risk(obs, actions), trained.risk(obs, actions))
    assert loaded.obs_moments.state() == trained.obs_moments.state()


def test_a_checkpoint_from_before_the_option_loads_with_raw_inputs(tmp_path):
    env = safeshield.make("safeshield/DrunkSpider-v0", seed=0, hidden=(16, 16), normalize_obs=False)
    env.safety_model.save(tmp_path / "shield")
    document = json.loads((tmp_path / "shield" / "config.json").read_text())
    section = next(part for part in document.values() if isinstance(part, dict) and "config" in part)
    del section["config"]["normalize_obs"]
    weights = (tmp_path / "shield" / "weights.safetensors").read_bytes()
    document["content_sha256"] = checkpoint._content_hash(document, weights)  # an edit the hash cannot catch
    (tmp_path / "shield" / "config.json").write_text(json.dumps(document))
    assert safeshield.load(tmp_path / "shield").config.normalize_obs is False


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"count": 3, "mean": [0.0], "m2": [1.0]},
        {"count": -1, "mean": [0.0] * 3, "m2": [0.0] * 3},
        {"count": 2, "mean": [float("nan")] * 3, "m2": [0.0] * 3},
        {"count": 2, "mean": "x", "m2": [0.0] * 3},
    ],
)
def test_malformed_moments_are_refused_with_what_was_expected(state):
    with pytest.raises(ValueError, match="observation moments"):
        RunningMoments(3).load_state(state)
