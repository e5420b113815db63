"""Look-ahead labels, the dataset's content digest, the contrastive floor and the rollout bound check (fast)."""

import math

import numpy as np
import pytest
import torch

from safeshield.shields.safer import SAFER, OfflineDataset, SAFERConfig
from safeshield.shields.safer.calibration import binomial_upper_tail, rollout_bound_check
from safeshield.shields.safer.prior import floored_log_prob


def _data(violations, episode_ids):
    n = len(violations)
    return OfflineDataset(
        np.arange(n, dtype=np.float32)[:, None].repeat(3, 1),
        np.zeros((n, 2), np.float32),
        np.asarray(violations),
        np.ones(n),
        np.asarray(episode_ids),
    )


def test_lookahead_marks_the_steps_before_a_contact_within_the_episode_only():
    data = _data([0, 0, 0, 1, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1, 1, 1, 1])
    assert data.with_lookahead(0).violations.tolist() == data.violations.tolist()
    assert data.with_lookahead(2).violations.tolist() == [0, 1, 1, 1, 0, 0, 1, 1, 1]
    # the contact at row 8 (episode 1) never marks row 4, the last step of episode 0
    assert data.with_lookahead(5).violations.tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1]
    assert data.with_lookahead(2).metadata["lookahead"] == 2
    assert data.violations.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 1]  # a copy: the original keeps its labels


@pytest.mark.parametrize("horizon", [-1, 1.5, True, "2"])
def test_lookahead_refuses_a_bad_horizon(horizon):
    with pytest.raises(ValueError, match="horizon must be"):
        _data([0, 1], [0, 0]).with_lookahead(horizon)


def test_lookahead_only_grows_the_unsafe_set():
    rng = np.random.default_rng(0)
    data = _data(rng.random(200) < 0.1, np.repeat(np.arange(10), 20))
    previous = data.violations.astype(bool)
    for horizon in range(1, 5):
        labels = data.with_lookahead(horizon).violations.astype(bool)
        assert np.all(labels >= previous)
        previous = labels


def test_digest_is_a_content_key():
    data = _data([0, 1, 0], [0, 0, 1])
    same = _data([0, 1, 0], [0, 0, 1])
    assert data.digest() == same.digest() and len(data.digest()) == 64
    same.metadata["note"] = "metadata is not content"
    assert data.digest() == same.digest()
    assert data.with_lookahead(1).digest() != data.digest()  # relabelled data is other content
    moved = _data([0, 1, 0], [0, 0, 1])
    moved.actions[0, 0] = 1e-7
    assert moved.digest() != data.digest()


def test_binomial_tail_matches_the_sum_of_the_pmf():
    n, p = 30, 0.15
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    for k in (0, 1, 4, 10, 30):
        assert binomial_upper_tail(k, n, p) == pytest.approx(sum(pmf[k:]), rel=1e-9)
    assert binomial_upper_tail(1, 10, 0.0) == 0.0 and binomial_upper_tail(3, 10, 1.0) == 1.0


def test_rollout_bound_check_allows_a_binomial_margin_and_no_more():
    assert rollout_bound_check(15, 100, 0.15)["holds"]
    assert rollout_bound_check(19, 100, 0.15)["holds"]  # P(X >= 19) = 0.19 under the bound
    assert not rollout_bound_check(30, 100, 0.15)["holds"]  # P(X >= 30) < 1e-3
    assert not rollout_bound_check(1, 1000, 0.0)["holds"]  # a zero bound admits no unsafe step
    assert rollout_bound_check(0, 1000, 0.0)["holds"]
    check = rollout_bound_check(300, 1000, 0.15)
    assert check["share"] == 0.3 and check["p_value"] < 1e-20 and not check["holds"]
    with pytest.raises(ValueError, match="steps must be"):
        rollout_bound_check(5, 3, 0.1)


def test_floored_log_prob_has_no_gradient_below_the_floor():
    log_p = torch.tensor([-20.0, -6.0, -4.0, 1.0], requires_grad=True)
    floored, share = floored_log_prob(log_p, -5.0)
    assert floored.tolist() == [-5.0, -5.0, -4.0, 1.0] and share == 0.5
    floored.mean().backward()
    assert log_p.grad.tolist() == [0.0, 0.0, 0.25, 0.25]


def test_unsafe_floor_bounds_the_contrastive_loss():
    """Eq. 5 is unbounded above (log p(a_unsafe) -> -inf); floored, the loss is >= -(L_safe - KL) + lambda floor."""
    import gymnasium as gym

    obs, act = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    config = SAFERConfig(
        window=4,
        flow_hidden=(16,),
        embed_dim=8,
        frame_hidden=(8,),
        transformer_heads=2,
        context_dim=2,
        use_context=False,
        contrastive_weight=1.0,
        divergence_margin=0.5,
        unsafe_floor=True,
    )
    prior = SAFER(obs, act, config, seed=0)
    rng = np.random.default_rng(0)
    windows, valid = torch.zeros(32, 4, 3), torch.ones(32, 4, dtype=torch.bool)
    safe = (torch.as_tensor(rng.uniform(-0.2, 0.2, (32, 2)), dtype=torch.float32), windows, valid)
    unsafe = (torch.full((32, 2), 0.999), windows, valid)  # at the box's edge: far less likely than the safe batch
    loss, stats = prior.loss(safe, unsafe)
    assert stats["unsafe_frozen"] == 1.0  # every unsafe action is already below the floor
    assert loss.item() == pytest.approx(-stats["log_p_safe"] + (stats["log_p_safe"] - 0.5), abs=1e-4)
    loss.backward()
    plain = SAFER(
        obs,
        act,
        SAFERConfig(**{**config.to_json(), "flow_hidden": (16,), "frame_hidden": (8,), "contrastive_weight": 0.0}),
        seed=0,
    )
    plain.load_state_dict(prior.state_dict())
    plain_loss, _ = plain.loss(safe, unsafe)
    plain_loss.backward()
    for a, b in zip(prior.parameters(), plain.parameters()):  # the floored term adds no gradient
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad)
