"""SAFER learning end to end on small synthetic data, and the offline dataset format.

- The offline format: npz and HDF5 round trips, the schema check, windows that never cross
  episodes and are zero-padded at the front.
- Alg. 2 learns: safe actions become likely, unsafe ones less likely than safe ones.
- Statistical calibration : on held-out labelled data the in-box unsafe fraction
  is at most the bound plus a binomial margin.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from safeshield.shields.safer import SAFER, SAFERConfig, in_box_unsafe_fraction
from safeshield.shields.safer.dataset import OfflineDataset, window_indices

OBS = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = dict(flow_hidden=(32, 32), embed_dim=8, frame_hidden=(16,), transformer_heads=2, window=4, context_dim=2)


def _synthetic(n_episodes: int, seed: int) -> OfflineDataset:
    """Episodes of 10 steps; the safe action is a = 0.5 * s (a state-dependent skill) plus small
    noise; unsafe actions (omega = 1) are pushed 0.6 away from it in a random direction."""
    rng = np.random.default_rng(seed)
    obs, actions, violations, episode_ids = [], [], [], []
    for episode in range(n_episodes):
        for _ in range(10):
            s = rng.uniform(-1, 1, 2)
            unsafe = rng.random() < 0.3
            a = 0.5 * s + 0.05 * rng.standard_normal(2)
            if unsafe:
                direction = rng.standard_normal(2)
                a = a + 0.6 * direction / np.linalg.norm(direction)
            obs.append(s)
            actions.append(np.clip(a, -0.98, 0.98))
            violations.append(unsafe)
            episode_ids.append(episode)
    return OfflineDataset(
        np.asarray(obs), np.asarray(actions), np.asarray(violations), np.ones(len(obs)), np.asarray(episode_ids)
    )


def test_windows_are_zero_padded_and_never_cross_episodes():
    data = OfflineDataset(
        np.arange(10, dtype=np.float32)[:, None] + 1,
        np.zeros((10, 1)),
        np.zeros(10),
        np.zeros(10),
        [0, 0, 0, 1, 1, 1, 1, 1, 2, 2],
    )
    frames, valid = data.windows(np.arange(10), 3)
    assert frames[:, :, 0].tolist()[:5] == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [0, 0, 4], [0, 4, 5]]
    assert frames[8, :, 0].tolist() == [0, 0, 9] and valid[8].tolist() == [False, False, True]
    assert window_indices(data.episode_ids, 3)[5].tolist() == [3, 4, 5]


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_dataset_round_trip(tmp_path, suffix):
    data = _synthetic(3, 0)
    data.metadata["env_id"] = "synthetic"
    path = data.save(tmp_path / f"d{suffix}")
    back = OfflineDataset.load(path)
    for name in ("observations", "actions", "violations", "successes", "episode_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
    assert back.metadata["env_id"] == "synthetic" and back.metadata["format"] == "safeshield-offline"


def test_dataset_schema_errors_name_the_problem(tmp_path):
    np.savez(tmp_path / "bad.npz", observations=np.zeros((2, 1)), actions=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="lacks the arrays"):
        OfflineDataset.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="consecutive"):
        OfflineDataset(np.zeros((3, 1)), np.zeros((3, 1)), np.zeros(3), np.zeros(3), [0, 1, 0])
    with pytest.raises(ValueError, match="rows"):
        OfflineDataset(np.zeros((3, 1)), np.zeros((2, 1)), np.zeros(3), np.zeros(3), [0, 0, 0])
    with pytest.raises(ValueError, match=".npz"):
        _synthetic(1, 0).save(tmp_path / "d.csv")


def test_safe_and_unsafe_splits_follow_the_paper():
    data = OfflineDataset(np.zeros((4, 1)), np.zeros((4, 1)), [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1])
    assert data.safe_rows().tolist() == [0]  # safe steps of successful episodes
    assert data.safe_rows(successful_only=False).tolist() == [0, 2, 3]
    assert data.unsafe_rows().tolist() == [1]


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train = _synthetic(200, seed=1)
    prior = SAFER(
        OBS, ACT, SAFERConfig(**SMALL, optimizer="adam", lr=3e-3, batch_size=128, contrastive_weight=0.05), seed=0
    )
    history = prior.fit(train, 500, progress=False, log_every=50)
    return prior, history, train


def test_alg2_makes_safe_actions_likely_and_unsafe_ones_less_so(trained):
    prior, history, _ = trained
    assert history["log_p_safe"][-1] > history["log_p_safe"][0] + 1.0
    held_out = _synthetic(40, seed=2)
    safe, unsafe = held_out.safe_rows(), held_out.unsafe_rows()
    with torch.no_grad():
        lp = {}
        for name, rows in (("safe", safe), ("unsafe", unsafe)):
            windows, valid = held_out.windows(rows, prior.window)
            lp[name] = float(
                prior.log_prob(
                    torch.from_numpy(held_out.actions[rows]),
                    torch.from_numpy(windows),
                    torch.from_numpy(valid),
                    sample=False,
                )[0].mean()
            )
    assert lp["safe"] > lp["unsafe"] + 1.0


def test_eta_is_calibrated_on_held_out_data(trained):
    """The in-box unsafe fraction on held-out labelled data <= bound + a binomial margin."""
    prior, _, train = trained
    held_out = _synthetic(100, seed=3)
    max_abs, unsafe = prior.labelled_latents(held_out)
    for bound in (0.0, 0.15, 0.3):
        eta = prior.calibrate(train, bound)
        inside = max_abs < eta
        assert inside.sum() > 50  # the box is not trivially empty
        margin = 3 * np.sqrt(max(bound, 0.02) * (1 - bound) / inside.sum()) + 0.02
        assert in_box_unsafe_fraction(max_abs, unsafe, eta) <= bound + margin


def test_algorithm3_calibration_meets_the_bound_on_its_data(trained):
    prior, _, train = trained
    eta = prior.calibrate(train, 0.15, method="algorithm3")
    max_abs, unsafe = prior.labelled_latents(train)
    assert in_box_unsafe_fraction(max_abs, unsafe, eta) <= 0.15
