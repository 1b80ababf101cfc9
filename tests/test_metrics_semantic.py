"""mIoU on hand-made class maps; expected values computed by hand in comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lift3d.metrics import miou
from lift3d.metrics.semantic import confusion_matrix


def test_miou_hand_case_with_void():
    # 1x10, classes {0, 1, 2}, void 255 (pixel 9 is not evaluated).
    # GT   [0 0 0 0 1 1 1 2 2 255]
    # pred [0 0 0 1 1 1 2 2 2 0]
    # class 0: TP 3 (0-2), GT 4, pred 3 -> union 4 -> 3/4
    # class 1: GT {4,5,6}, pred {3,4,5} -> TP 2, union 4 -> 1/2
    # class 2: GT {7,8}, pred {6,7,8} -> TP 2, union 3 -> 2/3
    # mIoU = (3/4 + 1/2 + 2/3) / 3 = 23/36
    gt = [np.array([[0, 0, 0, 0, 1, 1, 1, 2, 2, 255]])]
    pred = [np.array([[0, 0, 0, 1, 1, 1, 2, 2, 2, 0]])]
    value, per_class = miou(pred, gt, 3, void_gt=[255])
    assert per_class == pytest.approx({0: 3 / 4, 1: 1 / 2, 2: 2 / 3})
    assert value == pytest.approx(23 / 36)
    conf, ids = confusion_matrix(pred, gt, 3, void_gt=[255])
    assert ids.tolist() == [0, 1, 2]
    assert conf.tolist() == [[3, 1, 0, 0], [0, 2, 1, 0], [0, 0, 2, 0]]


def test_pred_outside_classes_is_a_miss_and_frames_pool():
    # two frames; class ids given as a list; pred 9 is not a scored class (a miss for GT class 5).
    # class 5: GT 4 px, pred 2 px, TP 2 -> 2/4; class 7: GT 2, pred 2, TP 2 -> 1. mIoU = 3/4.
    gt = [np.array([[5, 5, 7]]), np.array([[5, 5, 7]])]
    pred = [np.array([[5, 9, 7]]), np.array([[9, 5, 7]])]
    value, per_class = miou(pred, gt, [5, 7])
    assert per_class == pytest.approx({5: 0.5, 7: 1.0}) and value == pytest.approx(0.75)


def test_small_classes_ignored_only_when_small_in_both():
    # 1x1000, 0.5 % = 5 px. GT: class 2 = 3 px (0.3 %), rest class 0.
    # pred A: class 2 on 4 px (0.4 %) overlapping 3 GT px -> small in both -> ignored; class 0:
    #   GT 997, pred 996, TP 996 -> union 997 -> IoU 996/997. mIoU = 996/997.
    # pred B: class 2 on 10 px (1 %) containing the 3 GT px -> kept: IoU_2 = 3/10;
    #   class 0: pred 990, TP 990, union 997 -> 990/997. mIoU = (3/10 + 990/997) / 2.
    gt = np.zeros((1, 1000), np.int64)
    gt[0, :3] = 2
    pred_a = np.zeros_like(gt)
    pred_a[0, :4] = 2
    value, per_class = miou([pred_a], [gt], 3)
    assert sorted(per_class) == [0] and value == pytest.approx(996 / 997)
    pred_b = np.zeros_like(gt)
    pred_b[0, :10] = 2
    value, per_class = miou([pred_b], [gt], 3)
    assert per_class == pytest.approx({0: 990 / 997, 2: 3 / 10})
    assert value == pytest.approx((3 / 10 + 990 / 997) / 2)
    # class 1 never appears: never scored, even with the rule off
    assert 1 not in miou([pred_b], [gt], 3, min_class_fraction=0)[1]


def test_miou_errors_and_empty():
    with pytest.raises(ValueError, match="frame 0.*resize"):
        miou([np.zeros((2, 2), np.int64)], [np.zeros((2, 3), np.int64)], 2)
    with pytest.raises(ValueError, match=r"frame 0: GT class ids \[4\]"):
        miou([np.zeros((1, 2), np.int64)], [np.array([[0, 4]])], 2)
    value, per_class = miou([np.zeros((1, 2), np.int64)], [np.full((1, 2), 255)], 2, void_gt=[255])
    assert math.isnan(value) and per_class == {}
