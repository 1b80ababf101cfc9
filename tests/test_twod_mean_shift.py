"""Cosine mean shift on unit vectors, the area/perimeter filter and the embedding tracker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lift3d.twod.mean_shift import EmbeddingTracker, area_perimeter_ratio, cosine_distance, cosine_mean_shift


def test_cosine_distance_scaled_to_unit_interval():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    d = cosine_distance(x, x)
    np.testing.assert_allclose(d.numpy(), [[0, 0.5, 1], [0.5, 0, 0.5], [1, 0.5, 0]], atol=1e-6)


def test_mean_shift_recovers_well_separated_groups():
    g = torch.Generator().manual_seed(1)
    centres = torch.eye(8)[:4]
    truth = torch.arange(4).repeat_interleave(30)
    e = centres[truth] + 0.05 * torch.randn(120, 8, generator=g)
    e = e * (0.5 + torch.rand(120, 1, generator=g))  # the norm must not matter
    labels = cosine_mean_shift(e, threshold=0.1, generator=torch.Generator().manual_seed(0))
    assert bool((labels >= 0).all())
    assert len(torch.unique(labels)) == 4
    for k in range(4):  # each true group is one cluster, and no cluster spans two groups
        assert len(torch.unique(labels[truth == k])) == 1
    assert len({int(labels[truth == k][0]) for k in range(4)}) == 4


def test_mean_shift_threshold_merges_close_groups():
    a = torch.tensor([[1.0, 0.0]]).repeat(5, 1)
    b = torch.tensor([[np.cos(0.3), np.sin(0.3)]], dtype=torch.float32).repeat(5, 1)  # d = (1 - cos 0.3)/2 = 0.022
    e = torch.cat([a, b])
    assert len(torch.unique(cosine_mean_shift(e, 0.1, generator=torch.Generator().manual_seed(0)))) == 1
    assert len(torch.unique(cosine_mean_shift(e, 0.01, generator=torch.Generator().manual_seed(0)))) == 2


def test_area_perimeter_ratio_by_hand():
    m = np.zeros((9, 9), bool)
    m[2:7, 2:7] = True  # 5 x 5: area 25, 16 border pixels
    assert area_perimeter_ratio(m) == pytest.approx(25 / 16)
    line = np.zeros((9, 9), bool)
    line[4, :] = True  # a one-pixel line is all border
    assert area_perimeter_ratio(line) == pytest.approx(1.0)
    assert area_perimeter_ratio(np.zeros((3, 3), bool)) == 0.0


def test_tracker_carries_ids_by_embedding():
    tracker = EmbeddingTracker(threshold=0.1, momentum=0.5)
    e = torch.eye(3)
    assert tracker.update(e, np.array([1, 1, 2])).tolist() == [1, 2, 3]
    # next frame: the same objects in another order, slightly moved, plus a new one
    nxt = torch.stack([e[2], e[0] + 0.05, torch.tensor([0.0, 0.0, 0.0, 1.0])[:3] + torch.tensor([1.0, -1.0, 0.0])])
    ids = tracker.update(nxt, np.array([2, 1, 1]))
    assert ids[:2].tolist() == [3, 1] and ids[2] == 4
    # a class change is never the same track
    assert tracker.update(e[:1], np.array([2])).tolist() == [5]
