"""The quality figures of tools/bench_regions.py on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from lift3d.twod.regions import DepthRegionConfig
from tools.bench_regions import merge_distance, object_recall


def test_object_recall_counts_objects_matched_with_iou_half():
    instance = np.zeros((4, 8), dtype=np.int64)
    instance[:, :2] = 1  # object 1: 8 px, one region exactly
    instance[:, 4:8] = 2  # object 2: 16 px, split over two regions of 8 px (IoU 0.5 each: matched)
    instance[0, 3] = 3  # object 3: 1 px inside a 7 px region (IoU 1/7: missed)
    regions = np.zeros((4, 8), dtype=np.int64)
    regions[:, :2] = 1
    regions[:2, 4:8] = 2
    regions[2:, 4:8] = 3
    regions[:, 2:4] = 4
    regions[3, 2] = 5
    assert object_recall(regions, instance) == (2, 3)


def test_merge_distance_is_where_the_weight_reaches_the_threshold():
    depth = np.array([[0.0, 1.0], [2.0, 5.0]])
    d = merge_distance(depth, DepthRegionConfig())
    # sigmoid(48 d / (1 + 5) - 4) = 0.2
    assert 1 / (1 + np.exp(-(48 * d / 6 - 4))) == pytest.approx(0.2)
