"""SQRL with an ensemble of critics (``n_critics`` > 1): how the members combine, that each learns
and bootstraps itself, and that the ensemble keeps the shield contract (check_env, checkpoints,
Discrete actions)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import safeshield
from safeshield.core.networks import CriticEnsemble
from safeshield.shields.sqrl import SQRL, SQRLConfig

torch.set_num_threads(1)

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)


def ensemble(n: int = 3, **options) -> SQRL:
    return SQRL(OBS, ACT, SQRLConfig(n_critics=n, hidden=(16, 16), **options), seed=0)


def member_risks(model: SQRL, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return model.risk_bound * torch.sigmoid(model.critic(obs, actions))


@given(seed=st.integers(0, 2**16), rows=st.integers(1, 40))
@settings(max_examples=20, deadline=None)
def test_risk_is_the_most_pessimistic_member_or_the_mean(seed, rows):
    generator = torch.Generator().manual_seed(seed)
    obs = torch.rand(rows, 3, generator=generator) * 2 - 1
    actions = torch.rand(rows, 2, generator=generator) * 4 - 2
    pessimist, average = ensemble(), ensemble(ensemble_risk="mean")
    with torch.no_grad():
        for model in (pessimist, average):  # spread the members apart so max and mean differ
            for weight in model.critic.weights:
                weight.normal_(0.0, 1.0, generator=generator)
        members = member_risks(pessimist, obs, actions)
        assert members.shape == (3, rows)
        assert torch.equal(pessimist.risk(obs, actions), members.max(0).values)
        mean = member_risks(average, obs, actions).mean(0)
        assert torch.allclose(average.risk(obs, actions), mean)
        risk = pessimist.risk(obs, actions)
        assert bool(((risk >= 0) & (risk <= pessimist.risk_bound)).all())
    # the per-step path (numpy for one critic) gives the same value through torch for an ensemble
    row_obs, row_action = obs[0].numpy(), actions[0].numpy()
    assert pessimist.proposal_risk(row_obs, row_action) == pytest.approx(float(risk[0]), rel=1e-4, abs=1e-7)


def test_members_start_apart_and_optimistic():
    model = ensemble(5)
    assert isinstance(model.critic, CriticEnsemble) and model.critic.size == 5
    obs, actions = torch.zeros(4, 3), torch.rand(4, 2) * 4 - 2
    with torch.no_grad():
        members = member_risks(model, obs, actions)
    assert not torch.allclose(members[0], members[1]), "members are initialised independently"
    assert float(members.max()) < 0.05, "every member starts at a risk of about 0.01, as one critic does"


def test_one_critic_keeps_the_single_network_and_its_numpy_path():
    model = SQRL(OBS, ACT, SQRLConfig(hidden=(16, 16)), seed=0)
    assert not isinstance(model.critic, CriticEnsemble) and model._numpy_path


def _logged_steps(rng: np.random.Generator, steps: int = 400):
    """One-step episodes: an action with a positive first component fails, any other does not."""
    obs = rng.uniform(-1, 1, (steps, 3)).astype(np.float32)
    actions = rng.uniform(-2, 2, (steps, 2)).astype(np.float32)
    failure = (actions[:, 0] > 0).astype(np.float32)
    ones = np.ones(steps, dtype=np.float32)
    return dict(obs=obs, actions=actions, next_obs=obs, failure=failure, terminated=ones, truncated=0 * ones)


def test_every_member_learns_the_failure():
    model = ensemble(3, learning_starts=0, batch_size=64, lr=3e-3)
    model.learn_offline(**_logged_steps(np.random.default_rng(0)), updates=300)
    obs = torch.zeros(2, 3)
    actions = torch.tensor([[1.5, 0.0], [-1.5, 0.0]])
    with torch.no_grad():
        members = member_risks(model, obs, actions)
    assert bool((members[:, 0] > 0.5).all()) and bool((members[:, 1] < 0.2).all()), members


def test_each_member_bootstraps_from_its_own_target_network():
    model = ensemble(3, learning_starts=0, batch_size=32)
    rng = np.random.default_rng(1)
    steps = 200  # long episodes with no failure: every horizon target ends in a bootstrap term
    obs = rng.uniform(-1, 1, (steps, 3)).astype(np.float32)
    actions = rng.uniform(-2, 2, (steps, 2)).astype(np.float32)
    zeros = np.zeros(steps, dtype=np.float32)
    truncated = zeros.copy()
    truncated[99::100] = 1.0
    model.learn_offline(obs, actions, obs, zeros, zeros, truncated, updates=1)
    with torch.no_grad():
        for weight in model.target_critic.weights:  # members' target networks now disagree plainly
            weight.normal_(0.0, 1.0)
        batch = model.sample_batch()
        target = model.risk_target(batch, model.target_gamma, model.target_risk)
    assert target.shape == (3, model.config.batch_size)
    assert not torch.allclose(target[0], target[1]), "a member's target uses its own target network"


def test_a_shielded_env_with_an_ensemble_passes_check_env_and_round_trips(tmp_path):
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", n_critics=3, indicator=lambda *_: False, seed=0)
    check_env(env, skip_render_check=True)
    model = env.safety_model
    path = tmp_path / "ensemble"
    model.save(path)
    loaded = safeshield.load(path)
    obs = np.random.default_rng(0).uniform(-1, 1, (6, 3)).astype(np.float32)
    actions = np.random.default_rng(1).uniform(-2, 2, (6, 1)).astype(np.float32)
    assert loaded.config.n_critics == 3
    assert np.array_equal(loaded.risk_numpy(obs, actions), model.risk_numpy(obs, actions))
    with pytest.raises(ValueError, match="n_critics"):
        loaded.reconfigure(n_critics=1)


def test_discrete_actions_score_every_action_per_member():
    model = SQRL(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(3), SQRLConfig(n_critics=4), seed=0)
    obs = torch.rand(5, 4)
    with torch.no_grad():
        members = model.risk_bound * torch.sigmoid(model.critic.all_actions(obs))
        assert members.shape == (4, 5, 3)
        assert torch.equal(model.risk_all(obs), members.max(0).values)


@pytest.mark.parametrize(("options", "message"), [({"n_critics": 0}, "n_critics"), ({"ensemble_risk": "min"}, "mean")])
def test_bad_ensemble_options_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        SQRLConfig(**options)
