"""Refine-and-Prune's 1-D k-means (`kmeans_1d`): the properties its module docstring states and relies on."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.policies.ewsjf import kmeans_1d


def test_ties_join_the_upper_cluster_and_empty_clusters_are_dropped():
    # centres start at 5 and 15: 10 sits on the midpoint and joins the upper cluster, and stays there
    assert [c.tolist() for c in kmeans_1d(np.array([20.0, 0.0, 10.0]), 2)] == [[0.0], [10.0, 20.0]]
    # quantile centres 0.5, 500.5, 1000.5: nothing is nearest the middle one, so two clusters come back
    assert [c.tolist() for c in kmeans_1d(np.array([0.0, 1.0, 1000.0, 1001.0]), 3)] == [[0.0, 1.0],
                                                                                      [1000.0, 1001.0]]


@pytest.mark.parametrize("seed", range(5))
def test_clusters_are_contiguous_and_each_length_is_nearest_its_own_mean(seed):
    rng = np.random.default_rng(seed)
    x = np.rint(np.concatenate([rng.lognormal(np.log(200), 0.8, 1500), rng.normal(3000, 300, 500)]))
    clusters = kmeans_1d(x, 3)
    assert len(clusters) == 3
    assert np.array_equal(np.concatenate(clusters), np.sort(x))  # sorted, contiguous, every length once
    assert all(a[-1] < b[0] for a, b in zip(clusters, clusters[1:], strict=False))
    means = np.array([c.mean() for c in clusters])
    for j, c in enumerate(clusters):  # a fixed point of Lloyd's iterations
        assert (np.abs(c[:, None] - means).argmin(axis=1) == j).all()
