"""Unsupervised segmentation scoring: a relabelled perfect prediction scores 1.0, a hand-counted case, and k-means
finds separable pixel features."""

from __future__ import annotations

import numpy as np
import pytest

from lift3d.metrics.unsupervised import (
    kmeans_pixel_clusters,
    match_clusters_to_classes,
    unsupervised_segmentation_scores,
)


def test_relabelled_perfect_prediction_scores_one():
    rng = np.random.default_rng(0)
    gt = [rng.choice([0, 3, 7], size=(8, 9)) for _ in range(3)]
    relabel = {0: 2, 3: 0, 7: 1}  # cluster ids are an arbitrary permutation of the classes
    clusters = [np.vectorize(relabel.get)(g) for g in gt]
    r = unsupervised_segmentation_scores(clusters, gt, [0, 3, 7])
    assert r["accuracy"] == pytest.approx(1.0)
    assert r["miou"] == pytest.approx(1.0)
    assert r["mapping"] == {2: 0, 0: 3, 1: 7}


def test_scores_by_hand_with_ignored_pixels():
    gt = [np.array([[1, 1, 1, 2], [2, 2, 2, 255]])]  # 255 is not a scored class
    clusters = [np.array([[0, 0, 1, 1], [1, 1, 0, 0]])]
    mapping, overlap = match_clusters_to_classes(clusters, gt, 2, [1, 2])
    np.testing.assert_array_equal(overlap, [[2, 1], [1, 3]])  # cluster 0: two 1s, one 2; cluster 1: one 1, three 2s
    assert mapping == {0: 1, 1: 2}
    r = unsupervised_segmentation_scores(clusters, gt, [1, 2])
    assert r["accuracy"] == pytest.approx(5 / 7)
    # class 1: TP 2, predicted 3, GT 3 -> IoU 2 / 4; class 2: TP 3, predicted 4, GT 4 -> IoU 3 / 5
    assert r["miou"] == pytest.approx((2 / 4 + 3 / 5) / 2)
    assert r["num_pixels"] == 7


def test_kmeans_finds_separable_features():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 3, size=(2, 10, 12))
    centres = np.eye(4)[:3] * 5.0
    feats = [centres[g] + 0.1 * rng.normal(size=g.shape + (4,)) for g in gt]
    clusters = kmeans_pixel_clusters(feats, 3, seed=0)
    r = unsupervised_segmentation_scores(clusters, list(gt), [0, 1, 2])
    assert r["accuracy"] == pytest.approx(1.0)
