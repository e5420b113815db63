"""The action-ranking benchmark's statistics (its runs train agents: too long for CI)."""

import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ranking(load_benchmark):
    return load_benchmark("action_ranking")


def test_average_ranks_share_ties(ranking):
    assert ranking.average_ranks(np.array([0.3, 0.1, 0.3, 0.9])).tolist() == [2.5, 1.0, 2.5, 4.0]


def test_spearman_by_hand(ranking):
    x = np.array([0.1, 0.2, 0.3, 0.4])
    assert ranking.spearman(x, x**3) == pytest.approx(1.0)
    assert ranking.spearman(x, -x) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) against (1.5, 1.5, 4, 3): Pearson of the ranks, computed by hand
    y = np.array([0.0, 0.0, 0.9, 0.5])
    a, b = np.array([1, 2, 3, 4.0]), np.array([1.5, 1.5, 4, 3])
    expected = ((a - a.mean()) * (b - b.mean())).sum() / math.sqrt(
        ((a - a.mean()) ** 2).sum() * ((b - b.mean()) ** 2).sum()
    )
    assert ranking.spearman(x, y) == pytest.approx(expected)
    assert math.isnan(ranking.spearman(x, np.zeros(4)))  # a constant side has no ranking


def test_bins_cover_every_distance(ranking):
    for before in (0.01, 0.5, 0.51, 1.0, 1.5, 2.0, 2.5, math.inf):
        assert sum(low < before <= high for _, low, high in ranking.BINS) == 1
