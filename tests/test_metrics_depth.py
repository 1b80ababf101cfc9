"""Depth metrics (AbsRel, SqRel, RMSE, RMSE log, δ thresholds) by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lift3d.metrics.depth import depth_metrics


def test_metrics_by_hand():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # the 0 is invalid
    pred = np.array([[1.2, 2.0], [2.0, 9.0]])
    m = depth_metrics([pred], [gt])
    assert m["num_pixels"] == 3
    assert m["abs_rel"] == pytest.approx((0.2 / 1 + 0 + 2.0 / 4) / 3)
    assert m["sq_rel"] == pytest.approx((0.04 / 1 + 0 + 4.0 / 4) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((0.04 + 0 + 4.0) / 3))
    assert m["rmse_log"] == pytest.approx(math.sqrt((math.log(1.2) ** 2 + 0 + math.log(0.5) ** 2) / 3))
    # ratios 1.2, 1, 2 -> δ1 2/3; 1.25^2 = 1.5625 -> 2/3; 1.25^3 = 1.953 -> 2/3
    assert m["delta1"] == pytest.approx(2 / 3) and m["delta3"] == pytest.approx(2 / 3)


def test_median_scaling_removes_a_global_scale():
    gt = np.array([[1.0, 2.0, 3.0]])
    m = depth_metrics([gt * 0.5], [gt], median_scaling=True)
    assert m["abs_rel"] == pytest.approx(0.0) and m["delta1"] == 1.0
    assert depth_metrics([gt * 0.5], [gt])["abs_rel"] == pytest.approx(0.5)


def test_bad_input():
    with pytest.raises(ValueError, match="differ"):
        depth_metrics([np.ones((2, 2))], [np.ones((2, 3))])
    with pytest.raises(ValueError, match="no pixel"):
        depth_metrics([np.ones((2, 2))], [np.zeros((2, 2))])
