"""semantic_miou (plain per-class IoU, no small-class rule) and the 2D eval's semantic scores, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lift3d.metrics import semantic_miou
from lift3d.twod.evaluate import semantic_scores


def test_semantic_miou_by_hand_with_ignore_absent_class_and_outside_prediction():
    # 2 frames, K = 4 classes (class 3 in neither GT nor prediction), ignore 255
    # frame 0  GT   [0 0 1 1 255]     pred [0 1 1 1 2]
    # frame 1  GT   [2 2 2 0]         pred [2 2 9 0]   (9: outside 0..3, a miss)
    # class 0: TP 2 (f0 p0, f1 p3), FN 1 (f0 p1 -> 1), FP 0             -> 2 / 3
    # class 1: TP 2, FP 1 (f0 p1), FN 0                                  -> 2 / 3
    # class 2: TP 2, FN 1 (f1 p2 -> 9), FP 0 (f0 p4 is ignored)          -> 2 / 3
    # class 3: absent -> NaN, left out of the mean
    pred = [np.array([[0, 1, 1, 1, 2]]), np.array([[2, 2, 9, 0]])]
    gt = [np.array([[0, 0, 1, 1, 255]]), np.array([[2, 2, 2, 0]])]
    value, per_class = semantic_miou(pred, gt, 4, ignore=255)
    assert per_class[:3] == pytest.approx([2 / 3, 2 / 3, 2 / 3]) and math.isnan(per_class[3])
    assert value == pytest.approx(2 / 3)


def test_semantic_miou_counts_a_class_only_predicted_and_rejects_unknown_gt():
    # GT all 0, pred half 1: IoU_0 = 2/4, IoU_1 = 0/2 (predicted, never GT) -> mean 1/4
    value, per_class = semantic_miou(np.array([[0, 0, 1, 1]]), np.array([[0, 0, 0, 0]]), 2)
    assert per_class.tolist() == [0.5, 0.0] and value == 0.25
    with pytest.raises(ValueError, match="outside 0..1"):
        semantic_miou(np.array([[0]]), np.array([[5]]), 2)


def test_semantic_scores_map_non_contiguous_class_ids_to_names():
    # ids 0 (floor), 1 (wall), 4 (box), 6 (cup): GT [0 0 4 4 6 7], pred [0 1 4 4 4 0]; GT 7 is not a class -> ignored
    # floor: TP 1, FN 1 (-> wall) -> 1/2; wall: FP 1 -> 0; box: TP 2, FP 1 -> 2/3; cup: FN 1 -> 0
    out = semantic_scores(
        [np.array([[0, 1, 4, 4, 4, 0]])],
        [np.array([[0, 0, 4, 4, 6, 7]])],
        [0, 1, 4, 6],
        {0: "floor", 1: "wall", 4: "box", 6: "cup"},
    )
    assert out["per_class_iou"] == pytest.approx({"floor": 0.5, "wall": 0.0, "box": 2 / 3, "cup": 0.0})
    assert out["semantic_miou"] == pytest.approx((0.5 + 2 / 3) / 4)
