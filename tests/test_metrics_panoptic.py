"""Scene-level and per-frame PQ on hand-made id maps; expected values computed by hand in comments.

Notation in comments: P<id> = predicted segment, G<id> = GT segment; pixels are numbered from 0
along a single row unless stated otherwise. IoU = I / (|P| - |P on void GT| + |G| - |void pred on G| - I).
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from lift3d.metrics import PanopticResult, frame_pq, scene_pq


def row(*values) -> np.ndarray:
    """A [1, W] id map."""
    return np.array([values], dtype=np.int64)


def test_perfect_prediction_is_one():
    # two frames, stuff 0 and three thing objects spread over both frames
    sem = [np.array([[0, 1, 1], [0, 1, 1]]), np.array([[1, 1, 0], [0, 0, 0]])]
    inst = [np.array([[0, 1, 1], [0, 2, 2]]), np.array([[1, 3, 0], [0, 0, 0]])]
    for fn in (scene_pq, frame_pq):
        r = fn(sem, inst, sem, inst, things=[1], stuff=[0])
        assert (r.pq, r.sq, r.rq) == (1.0, 1.0, 1.0)
        # scene: G1 spans both frames -> 3 thing segments, 1 stuff segment;
        # per frame: {1, 2} in frame 0 and {1, 3} in frame 1 -> 4 thing TPs, 2 stuff TPs
        assert r.per_class[1].tp == (3 if fn is scene_pq else 4) and r.per_class[0].tp == (1 if fn is scene_pq else 2)
        assert r.per_class[1].fp == r.per_class[1].fn == 0


def test_consistent_relabelling_is_one():
    # one bijection of thing ids for the whole scene (1->40, 2->7, 3->9) and arbitrary stuff ids
    sem = [row(0, 1, 1, 1, 1, 0), row(1, 1, 1, 0, 0, 0)]
    gt_inst = [row(0, 1, 1, 2, 2, 0), row(3, 1, 2, 0, 0, 0)]
    bij = {0: 0, 1: 40, 2: 7, 3: 9}
    pred_inst = [np.vectorize(bij.get)(g) for g in gt_inst]
    pred_inst[0][0, 0] = 123  # stuff ids are collapsed, so this changes nothing
    pred_inst[1][0, 5] = 5
    r = scene_pq(sem, pred_inst, sem, gt_inst, things=[1], stuff=[0])
    assert (r.pq, r.sq, r.rq) == (1.0, 1.0, 1.0)


def test_ids_relabelled_differently_per_frame_two_frames():
    # GT: frame 0 = [1 1 1 2 2 2], frame 1 = [1 2]; all pixels class 1 (thing).
    # Pred uses {1->5, 2->6} in frame 0 but {1->6, 2->5} in frame 1 (inconsistent across views).
    # Scene segments: G1 = 3 + 1 = 4 px, G2 = 4 px; P5 = G1@f0 (3) + G2@f1 (1) = 4 px, P6 = 4 px.
    # IoU(P5, G1) = 3 / (4 + 4 - 3) = 0.6 > 0.5 -> TP; IoU(P5, G2) = 1 / 7. Same for P6 / G2.
    # TP = 2, iou_sum = 1.2, FP = FN = 0 -> PQ = 1.2 / 2 = 0.6, SQ = 0.6, RQ = 1.
    sem = [row(1, 1, 1, 1, 1, 1), row(1, 1)]
    gt = [row(1, 1, 1, 2, 2, 2), row(1, 2)]
    pred = [row(5, 5, 5, 6, 6, 6), row(6, 5)]
    r = scene_pq(sem, pred, sem, gt, things=[1], stuff=[])
    assert r.pq == pytest.approx(0.6) and r.sq == pytest.approx(0.6) and r.rq == pytest.approx(1.0)
    assert (r.per_class[1].tp, r.per_class[1].fp, r.per_class[1].fn) == (2, 0, 0)
    # per frame the ids are consistent within each frame: PQ = 1 in both frames
    rf = frame_pq(sem, pred, sem, gt, things=[1], stuff=[])
    assert rf.pq == 1.0 and rf.per_frame_pq == [1.0, 1.0]
    # a consistent relabelling of the same scene scores 1
    assert scene_pq(sem, [row(5, 5, 5, 6, 6, 6), row(5, 6)], sem, gt, things=[1], stuff=[]).pq == 1.0


def test_iou_exactly_half_is_not_a_match():
    # GT [1 1 1 1], pred [7 7 8 8]: IoU(P7, G1) = 2 / 4 = 0.5, not > 0.5 -> FN 1, FP 2, PQ 0
    sem = [row(1, 1, 1, 1)]
    r = scene_pq(sem, [row(7, 7, 8, 8)], sem, [row(1, 1, 1, 1)], things=[1], stuff=[])
    c = r.per_class[1]
    assert (c.tp, c.fp, c.fn, c.pq, c.sq, c.rq) == (0, 2, 1, 0.0, 0.0, 0.0)


def test_split_sixty_forty():
    # 1x20: pixels 0-9 stuff 0, pixels 10-19 thing G1. Pred splits G1 into P7 (6 px) and P8 (4 px).
    # Thing: IoU(P7, G1) = 6 / (6 + 10 - 6) = 0.6 -> TP; P8: IoU 0.4 -> FP.
    #   PQ_1 = 0.6 / (1 + 0.5) = 0.4, SQ_1 = 0.6, RQ_1 = 1 / 1.5 = 2/3.
    # Stuff: identical -> PQ_0 = SQ_0 = RQ_0 = 1.
    # Mean: PQ = 0.7, SQ = 0.8, RQ = (1 + 2/3) / 2 = 5/6.
    sem = [row(*([0] * 10 + [1] * 10))]
    gt = [row(*([0] * 10 + [1] * 10))]
    pred = [row(*([0] * 10 + [7] * 6 + [8] * 4))]
    r = scene_pq(sem, pred, sem, gt, things=[1], stuff=[0])
    c = r.per_class[1]
    assert (c.tp, c.fp, c.fn) == (1, 1, 0)
    assert c.iou_sum == pytest.approx(0.6) and c.pq == pytest.approx(0.4) and c.rq == pytest.approx(2 / 3)
    assert r.pq == pytest.approx(0.7) and r.sq == pytest.approx(0.8) and r.rq == pytest.approx(5 / 6)
    assert r.pq_things == pytest.approx(0.4) and r.pq_stuff == pytest.approx(1.0)


def test_merge_of_two_gt_objects():
    # 1x20: stuff 0-9; GT G1 = pixels 10-16 (7 px), G2 = pixels 17-19 (3 px); pred P9 covers all 10.
    # IoU(P9, G1) = 7 / 10 = 0.7 -> TP; G2: IoU 0.3 -> FN.
    # PQ_1 = 0.7 / (1 + 0.5) = 7/15, SQ_1 = 0.7, RQ_1 = 2/3; stuff PQ 1 -> PQ = (1 + 7/15) / 2 = 11/15.
    sem = [row(*([0] * 10 + [1] * 10))]
    gt = [row(*([0] * 10 + [1] * 7 + [2] * 3))]
    pred = [row(*([0] * 10 + [9] * 10))]
    r = scene_pq(sem, pred, sem, gt, things=[1], stuff=[0])
    c = r.per_class[1]
    assert (c.tp, c.fp, c.fn) == (1, 0, 1)
    assert c.pq == pytest.approx(7 / 15) and c.sq == pytest.approx(0.7) and c.rq == pytest.approx(2 / 3)
    assert r.pq == pytest.approx(11 / 15)


@pytest.mark.parametrize("mode", ["drop", "keep"])
def test_void_gt_region_not_counted(mode):
    # ScanNet-like: void 0, thing 1, stuff 2.
    # GT  sem [0 0 0 1 1 1 1 2 2 2], GT thing G5 = pixels 3-6.
    # Pred sem [2 1 1 1 1 1 1 2 2 2], P3 = pixels 1-6 (2 px on void GT), pred stuff = pixels 0, 7-9.
    # drop: pixels 0-2 removed -> P3 = G5 exactly, stuff identical: PQ = 1.
    # keep: |P3| = 6, |P3 on void| = 2, |G5| = 4, I = 4 -> U = 6 - 2 + 4 - 0 - 4 = 4, IoU = 1;
    #       stuff: |P| = 4, 1 on void, |G| = 3, I = 3 -> U = 3, IoU = 1. PQ = 1.
    # (Counting void pixels in the union would give IoU(P3, G5) = 4/6 instead.)
    gt_sem = [row(0, 0, 0, 1, 1, 1, 1, 2, 2, 2)]
    gt_inst = [row(0, 0, 0, 5, 5, 5, 5, 0, 0, 0)]
    pred_sem = [row(2, 1, 1, 1, 1, 1, 1, 2, 2, 2)]
    pred_inst = [row(0, 3, 3, 3, 3, 3, 3, 0, 0, 0)]
    r = scene_pq(pred_sem, pred_inst, gt_sem, gt_inst, things=[1], stuff=[2], void_gt=[0], void_gt_mode=mode)
    assert (r.pq, r.sq, r.rq) == (1.0, 1.0, 1.0)
    assert sorted(r.per_class) == [1, 2]


def test_unmatched_pred_mostly_on_void_gt_is_not_fp():
    # 1x12, void 0, thing 1, stuff 2.
    # GT   sem [0 0 0 0 1 1 1 1 2 2 2 2], G5 = pixels 4-7, GT stuff = pixels 8-11.
    # Pred sem [1 1 1 2 1 1 1 1 1 2 2 2], P3 = pixels 4-7, P9 = pixels 0, 1, 2 (void GT) and 8 (stuff GT),
    #      pred stuff = pixels 3 (void GT) and 9-11.
    # keep mode: P3 = G5 -> TP IoU 1. P9 unmatched, 3 of its 4 px on void GT (75 % > 50 %) -> not FP.
    #   thing PQ = 1. Stuff: |P| = 4, 1 on void, |G| = 4, I = 3 (9-11), void pred on G = 0
    #   -> U = 4 - 1 + 4 - 0 - 3 = 4, IoU 0.75 -> PQ_2 = 0.75. PQ = (1 + 0.75) / 2 = 0.875.
    # drop mode: pixels 0-3 are removed, so P9 = pixel 8 only (no void left under it) -> FP.
    #   thing: TP 1, FP 1 -> PQ_1 = 1 / 1.5 = 2/3. Stuff: |P| = 3, |G| = 4, I = 3 -> U = 4, IoU 0.75.
    #   PQ = (2/3 + 3/4) / 2 = 17/24.
    gt_sem = [row(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2)]
    gt_inst = [row(0, 0, 0, 0, 5, 5, 5, 5, 0, 0, 0, 0)]
    pred_sem = [row(1, 1, 1, 2, 1, 1, 1, 1, 1, 2, 2, 2)]
    pred_inst = [row(9, 9, 9, 0, 3, 3, 3, 3, 9, 0, 0, 0)]
    args = (pred_sem, pred_inst, gt_sem, gt_inst)
    r = scene_pq(*args, things=[1], stuff=[2], void_gt=[0], void_gt_mode="keep")
    assert (r.per_class[1].tp, r.per_class[1].fp, r.per_class[1].fn) == (1, 0, 0)
    assert r.per_class[2].iou_sum == pytest.approx(0.75)
    assert r.pq == pytest.approx(0.875)
    r = scene_pq(*args, things=[1], stuff=[2], void_gt=[0], void_gt_mode="drop")
    assert (r.per_class[1].tp, r.per_class[1].fp, r.per_class[1].fn) == (1, 1, 0)
    assert r.pq == pytest.approx(17 / 24)


@pytest.mark.parametrize("void_label", [-1, 255])
def test_unmatched_gt_mostly_predicted_void_is_not_fn(void_label):
    # thing 1, stuff 2; the prediction marks "no prediction" with a negative id or a void_pred class.
    # GT   sem [1 1 1 1 1 1 1 1 2 2 2 2], G5 = pixels 0-3, G6 = pixels 4-7, GT stuff 8-11.
    # Pred sem [1 1 1 1 v v v 2 2 2 2 2], P7 = pixels 0-3.
    # G5 = P7 -> TP. G6: 3 of 4 px predicted void (75 %) and unmatched -> not FN. Thing PQ = 1.
    # Stuff: |P| = 5 (7-11), |G| = 4, I = 4 -> U = 5, IoU 0.8. PQ = (1 + 0.8) / 2 = 0.9.
    v = void_label
    gt_sem = [row(1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2)]
    gt_inst = [row(5, 5, 5, 5, 6, 6, 6, 6, 0, 0, 0, 0)]
    pred_inst = [row(7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0)]
    void_pred = [v] if v >= 0 else []
    r = scene_pq(
        [row(1, 1, 1, 1, v, v, v, 2, 2, 2, 2, 2)],
        pred_inst,
        gt_sem,
        gt_inst,
        things=[1],
        stuff=[2],
        void_pred=void_pred,
    )
    assert (r.per_class[1].tp, r.per_class[1].fp, r.per_class[1].fn) == (1, 0, 0)
    assert r.pq == pytest.approx(0.9)
    # only 2 of 4 px void (50 %, not > 50 %) -> G6 is an FN: PQ_1 = 1 / 1.5 = 2/3;
    # stuff |P| = 6, |G| = 4, I = 4 -> IoU 2/3. PQ = 2/3.
    r = scene_pq(
        [row(1, 1, 1, 1, v, v, 2, 2, 2, 2, 2, 2)],
        pred_inst,
        gt_sem,
        gt_inst,
        things=[1],
        stuff=[2],
        void_pred=void_pred,
    )
    assert (r.per_class[1].tp, r.per_class[1].fp, r.per_class[1].fn) == (1, 0, 1)
    assert r.pq == pytest.approx(2 / 3)


def test_void_prediction_removed_from_union():
    # GT G5 = 4 px; pred P7 covers 1 px of it, the other 3 are predicted void (-1).
    # I = 1, U = |P| 1 - 0 + |G| 4 - |void pred on G| 3 - 1 = 1 -> IoU 1 -> TP.
    r = scene_pq([row(-1, -1, -1, 1)], [row(0, 0, 0, 7)], [row(1, 1, 1, 1)], [row(5, 5, 5, 5)], things=[1], stuff=[])
    assert r.per_class[1].tp == 1 and r.pq == 1.0


def _small_class_scene():
    # 2 frames of 20x10 = 400 px; the 0.5 % threshold is 2 px.
    # GT: thing class 1 object id 1 = 100 px (frame 0 rows 0-9), thing class 3 object id 2 = 1 px
    #     (frame 1 pixel (0, 0)), all the rest stuff 0.
    # Pred: class 1 exactly right; a class-3 object id 4 of 1 px at frame 1 pixel (5, 5) (wrong place);
    #       everything else stuff 0.
    gs = [np.zeros((20, 10), np.int64), np.zeros((20, 10), np.int64)]
    gi = [np.zeros((20, 10), np.int64), np.zeros((20, 10), np.int64)]
    gs[0][:10], gi[0][:10] = 1, 1
    gs[1][0, 0], gi[1][0, 0] = 3, 2
    ps, pi = [g.copy() for g in gs], [g.copy() for g in gi]
    ps[1][0, 0], pi[1][0, 0] = 0, 0
    ps[1][5, 5], pi[1][5, 5] = 3, 4
    return ps, pi, gs, gi


def test_class_under_half_percent_becomes_void():
    ps, pi, gs, gi = _small_class_scene()
    # class 3 has 1 px (0.25 %) in GT and in pred -> dropped; its pixels become void in place:
    # stuff P0 = 400 - 100 - 1 = 299 px, 1 of them on (now void) GT class-3 pixel;
    # stuff G0 = 299 px, 1 of them predicted void (the pred class-3 pixel); I = 298
    # -> U = 299 - 1 + 299 - 1 - 298 = 298, IoU 1. Thing class 1 perfect. PQ = 1 over {0, 1}.
    r = scene_pq(ps, pi, gs, gi, things=[1, 3], stuff=[0])
    assert r.dropped_classes == (3,)
    assert sorted(r.per_class) == [0, 1]
    assert r.pq == 1.0
    # without the rule, class 3 is scored: P4 and G2 do not overlap -> FP 1, FN 1, PQ_3 = 0;
    # stuff: I = 298, U = 299 + 299 - 298 = 300 -> PQ_0 = 298/300. PQ = (1 + 298/300 + 0) / 3.
    r0 = scene_pq(ps, pi, gs, gi, things=[1, 3], stuff=[0], min_class_fraction=0.0)
    assert r0.dropped_classes == ()
    assert (r0.per_class[3].fp, r0.per_class[3].fn) == (1, 1)
    assert r0.per_class[0].pq == pytest.approx(298 / 300)
    assert r0.pq == pytest.approx((1 + 298 / 300) / 3)


def test_small_class_rule_variants():
    # 1x10, things {1}, stuff {0}; class 1 (G1 = pixels 0-4) is never predicted (pred is all stuff).
    # "reference": class 1 is present in GT (50 % >= 0.5 %) and absent from pred -> kept. G1 unmatched
    #   -> FN, PQ_1 = 0; stuff IoU = 5 / 10 = 0.5 is not > 0.5 -> stuff FP 1 and FN 1, PQ_0 = 0. PQ = 0.
    # "absent_counts_as_small" (former lift3d rule): pred count 0 < 0.5 % -> class 1 dropped; its GT
    #   pixels become void GT. Stuff: |P| = 10 with 5 on void GT, |G| = 5, I = 5 -> U = 5, IoU 1. PQ = 1.
    # "small_in_both": class 1 is not small in GT -> kept, same as the reference here. PQ = 0.
    gs, gi = [row(1, 1, 1, 1, 1, 0, 0, 0, 0, 0)], [row(1, 1, 1, 1, 1, 0, 0, 0, 0, 0)]
    ps, pi = [np.zeros((1, 10), np.int64)], [np.zeros((1, 10), np.int64)]
    for rule in ("reference", "small_in_both"):
        r = scene_pq(ps, pi, gs, gi, things=[1], stuff=[0], small_class_rule=rule)
        assert r.dropped_classes == () and r.pq == 0.0
        assert (r.per_class[0].fp, r.per_class[0].fn, r.per_class[1].fn) == (1, 1, 1)
    r = scene_pq(ps, pi, gs, gi, things=[1], stuff=[0], small_class_rule="absent_counts_as_small")
    assert r.dropped_classes == (1,) and r.pq == 1.0
    assert scene_pq(ps, pi, gs, gi, things=[1], stuff=[0]).metadata["small_class_rule"] == "reference"
    with pytest.raises(ValueError, match="absent_counts_as_small"):
        scene_pq(ps, pi, gs, gi, things=[1], stuff=[0], small_class_rule="either")


def test_missed_thing_class_is_penalised_issue_example():
    # One 20x20 frame; GT: a 5x5 thing (class 1, id 7) = 25 of 400 pixels (6.25 %), the rest stuff 0.
    # Pred: background everywhere. Reference rule: class 1 is present in GT above 0.5 % and absent
    # from pred -> kept; G7 unmatched -> FN 1, PQ_1 = 0. Stuff: |P| = 400, |G| = 375, I = 375 ->
    # IoU = 375 / 400 = 0.9375 > 0.5 -> TP, PQ_0 = 0.9375. PQ = (0 + 0.9375) / 2 = 0.46875.
    gs = [np.zeros((20, 20), int)]
    gi = [np.zeros((20, 20), int)]
    gs[0][5:10, 5:10] = 1
    gi[0][5:10, 5:10] = 7
    ps, pi = [np.zeros((20, 20), int)], [np.zeros((20, 20), int)]
    for fn in (scene_pq, frame_pq):
        r = fn(ps, pi, gs, gi, {1}, {0})
        assert round(r.pq, 3) == 0.469 and r.pq == pytest.approx(0.46875)
        assert (r.per_class[1].tp, r.per_class[1].fp, r.per_class[1].fn) == (0, 0, 1)
        assert r.per_class[0].iou_sum == pytest.approx(0.9375)
        assert r.dropped_classes == ()
        assert r.pq_things == 0.0 and r.pq_stuff == pytest.approx(0.9375)


def test_invented_class_above_threshold_counts_as_false_positive():
    # 1x200 GT all stuff 0. Pred: a thing (class 1, id 3) on pixels 0-9 (5 % of 200 >= 0.5 %), rest 0.
    # Reference rule: class 1 is absent from GT but present in pred above the threshold -> kept; P3
    # unmatched and not on void GT -> FP 1, PQ_1 = 0. Stuff: |P| = 190, |G| = 200, I = 190 ->
    # IoU 0.95 -> PQ_0 = 0.95. PQ = (0.95 + 0) / 2 = 0.475. The former rule dropped class 1
    # (GT count 0 counted as small): its pred pixels became void predictions, subtracted from the
    # union: U = 190 + 200 - 10 - 190 = 190 -> PQ = 1.
    gs, gi = [np.zeros((1, 200), np.int64)], [np.zeros((1, 200), np.int64)]
    ps, pi = [np.zeros((1, 200), np.int64)], [np.zeros((1, 200), np.int64)]
    ps[0][0, :10], pi[0][0, :10] = 1, 3
    r = scene_pq(ps, pi, gs, gi, things=[1], stuff=[0])
    assert (r.per_class[1].tp, r.per_class[1].fp, r.per_class[1].fn) == (0, 1, 0)
    assert r.per_class[0].pq == pytest.approx(0.95)
    assert r.pq == pytest.approx(0.475)
    old = scene_pq(ps, pi, gs, gi, things=[1], stuff=[0], small_class_rule="absent_counts_as_small")
    assert old.dropped_classes == (1,) and old.pq == 1.0


def test_class_small_on_one_side_is_dropped_and_absent_class_is_dropped():
    # 1x400 pixels; things {1, 2}, stuff {0}. GT: thing 1 (id 4) on pixels 0-99, rest stuff.
    # Pred: thing 1 (id 9) on pixels 0-98 and thing 2 (id 5) on pixel 99 only: 1 / 400 = 0.25 % < 0.5 %
    # -> class 2 is present in pred under the threshold -> dropped, its pred pixel becomes a void
    # prediction. Class 2 is absent from GT; that alone would not drop it, its small pred count does.
    # Thing 1: |P| = 99, |G| = 100, I = 99, |G on void pred| = 1 -> U = 99 + 100 - 1 - 99 = 99, IoU 1.
    # Stuff: identical, IoU 1. PQ = 1 over {0, 1}.
    gs, gi = [np.zeros((1, 400), np.int64)], [np.zeros((1, 400), np.int64)]
    gs[0][0, :100], gi[0][0, :100] = 1, 4
    ps, pi = gs[0].copy(), np.zeros((1, 400), np.int64)
    pi[0, :99] = 9
    ps[0, 99], pi[0, 99] = 2, 5
    r = scene_pq([ps], [pi], gs, gi, things=[1, 2], stuff=[0])
    assert r.dropped_classes == (2,)
    assert sorted(r.per_class) == [0, 1] and r.pq == 1.0
    assert r.per_class[1].iou_sum == pytest.approx(1.0)
    # a class absent from both sides (here 3) is dropped silently: not scored, not listed as dropped
    r3 = scene_pq([ps], [pi], gs, gi, things=[1, 2, 3], stuff=[0])
    assert 3 not in r3.per_class and 3 not in r3.dropped_classes and r3.pq == 1.0
    # the same class 2 present in GT under the threshold (1 pixel) and absent in pred: dropped too, its GT
    # pixel becomes void GT; thing 1 then scores I = 99, |P| = 100 with 1 on void GT -> U = 99 + 99 - 99.
    gs2 = gs[0].copy()
    gs2[0, 99] = 2
    ps2 = gs[0].copy()
    pi2 = np.where(ps2 == 1, 9, 0)
    r2 = scene_pq([ps2], [pi2], [gs2], gi, things=[1, 2], stuff=[0])
    assert r2.dropped_classes == (2,) and sorted(r2.per_class) == [0, 1] and r2.pq == 1.0


def test_stuff_ids_collapsed():
    # stuff pixels carry different instance ids in pred (0, 3, 9) and GT (0, 2): still one segment
    # per stuff class, so a perfect semantic prediction scores 1. Without collapsing, pred stuff would
    # be three segments.
    gs, gi = [row(0, 0, 0, 0, 1, 1)], [row(0, 0, 2, 2, 4, 4)]
    ps, pi = [row(0, 0, 0, 0, 1, 1)], [row(0, 3, 9, 9, 8, 8)]
    r = scene_pq(ps, pi, gs, gi, things=[1], stuff=[0])
    assert r.pq == 1.0
    assert (r.per_class[0].tp, r.per_class[0].fp, r.per_class[0].fn) == (1, 0, 0)


def test_merge_things_ignores_thing_class():
    # GT: object id 4 of thing class 1; pred: the same pixels as thing class 3, id 4.
    # merge_things: classes 1 and 3 are one class (key 1) -> perfect, PQ = 1.
    # separately (no small-class rule): class 1 FN 1 -> PQ_1 = 0, class 3 FP 1 -> PQ_3 = 0; stuff 1.
    #   PQ = 1/3.
    gs, gi = [row(0, 0, 1, 1)], [row(0, 0, 4, 4)]
    ps, pi = [row(0, 0, 3, 3)], [row(0, 0, 4, 4)]
    r = scene_pq(ps, pi, gs, gi, things=[1, 3], stuff=[0], merge_things=True, min_class_fraction=0)
    assert r.pq == 1.0 and sorted(r.per_class) == [0, 1]
    r = scene_pq(ps, pi, gs, gi, things=[1, 3], stuff=[0], min_class_fraction=0)
    assert r.pq == pytest.approx(1 / 3)
    rf = frame_pq(ps, pi, gs, gi, things=[1, 3], stuff=[0], merge_things=True, min_class_fraction=0)
    assert rf.pq == 1.0


def test_frame_pq_mean_over_frames():
    # frame 0: perfect (PQ 1); frame 1: the 60/40 split of test_split_sixty_forty (PQ 0.7).
    # frame_pq = (1 + 0.7) / 2 = 0.85; per-class counts are summed: thing TP 2, FP 1, IoU sum 1.6.
    sem0 = row(0, 0, 1, 1)
    sem1 = row(*([0] * 10 + [1] * 10))
    ps, gs = [sem0, sem1], [sem0, sem1]
    gi = [row(0, 0, 1, 1), row(*([0] * 10 + [1] * 10))]
    pi = [row(0, 0, 5, 5), row(*([0] * 10 + [7] * 6 + [8] * 4))]
    r = frame_pq(ps, pi, gs, gi, things=[1], stuff=[0])
    assert r.per_frame_pq == pytest.approx([1.0, 0.7])
    assert r.pq == pytest.approx(0.85)
    c = r.per_class[1]
    assert (c.tp, c.fp, c.fn) == (2, 1, 0) and c.iou_sum == pytest.approx(1.6)
    # a single frame: frame_pq == scene_pq
    assert frame_pq([sem1], [pi[1]], [sem1], [gi[1]], things=[1], stuff=[0]).pq == pytest.approx(
        scene_pq([sem1], [pi[1]], [sem1], [gi[1]], things=[1], stuff=[0]).pq
    )


def test_frames_of_different_sizes_and_stacked_input():
    sem = [np.ones((3, 4), np.int64), np.ones((2, 5), np.int64)]
    inst = [np.full((3, 4), 2), np.full((2, 5), 2)]
    assert scene_pq(sem, inst, sem, inst, things=[1], stuff=[]).pq == 1.0
    stacked = np.ones((2, 3, 3), np.uint8)
    assert scene_pq(stacked, stacked, stacked, stacked, things=[1], stuff=[]).pq == 1.0


def test_result_to_dict_is_json_and_nan_when_nothing_scored():
    sem, inst = [row(1, 1)], [row(1, 1)]
    r = scene_pq(sem, inst, sem, inst, things=[1], stuff=[0])
    assert isinstance(r, PanopticResult)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["pq"] == 1.0 and d["per_class"]["1"]["tp"] == 1
    # everything void -> nothing to score
    r = scene_pq([row(0, 0)], [row(0, 0)], [row(0, 0)], [row(0, 0)], things=[1], stuff=[2], void_gt=[0])
    assert math.isnan(r.pq) and r.per_class == {}


def test_errors_name_frame_and_fix():
    sem = [row(1, 1), row(1, 7)]
    with pytest.raises(ValueError, match=r"frame 1: GT class ids \[7\].*void_gt"):
        scene_pq(sem, sem, sem, sem, things=[1], stuff=[0])
    with pytest.raises(ValueError, match="frame 0.*resize"):
        scene_pq([row(1, 1)], [row(1, 1)], [row(1, 1, 1)], [row(1, 1, 1)], things=[1], stuff=[0])
    with pytest.raises(ValueError, match="integer"):
        scene_pq([np.ones((1, 2))], [row(1, 1)], [row(1, 1)], [row(1, 1)], things=[1], stuff=[0])
    with pytest.raises(ValueError, match="both things and stuff"):
        scene_pq([row(1, 1)], [row(1, 1)], [row(1, 1)], [row(1, 1)], things=[1], stuff=[1])


# ----------------------------------------------------------------------------- brute force cross-check


def brute_force_pq(frames, things, stuff, void_gt, void_pred, min_frac, rule, mode, merge):
    """Independent, slow PQ^scene: Python sets of pixel indices per segment, following method.md."""
    things, stuff = set(things), set(stuff)
    merged = min(things) if merge else None
    pixels = []  # [pred class or None, pred id, gt class or None, gt id, on void_gt]
    for ps, pi, gs, gi in frames:
        for p_c, p_i, g_c, g_i in zip(
            ps.ravel().tolist(), pi.ravel().tolist(), gs.ravel().tolist(), gi.ravel().tolist()
        ):
            on_void = g_c in void_gt
            if on_void and mode == "drop":
                continue
            pc = p_c if (p_c in things | stuff and p_c not in void_pred and p_c >= 0) else None
            gc = None if on_void else g_c
            if merge:
                pc = merged if pc in things else pc
                gc = merged if gc in things else gc
            pixels.append([pc, p_i, gc, g_i, on_void])
    scored = ({merged} if merge else set(things)) | stuff
    n_eval = sum(1 for p in pixels if not p[4])
    kept = set()
    for c in scored:
        n_pred = sum(1 for p in pixels if p[0] == c and not p[4])
        n_gt = sum(1 for p in pixels if p[2] == c)
        if n_pred == 0 and n_gt == 0:
            continue
        small_p, small_g = n_pred < min_frac * n_eval, n_gt < min_frac * n_eval
        if rule == "reference":  # present on a side and small there
            drop = (n_pred > 0 and small_p) or (n_gt > 0 and small_g)
        elif rule == "absent_counts_as_small":
            drop = small_p or small_g
        else:
            drop = small_p and small_g
        if drop:
            continue
        kept.add(c)
    pred_segs, gt_segs = {}, {}
    void_p, void_g = set(), set()
    for k, (pc, p_i, gc, g_i, _) in enumerate(pixels):
        if pc in kept:
            pred_segs.setdefault((pc, 0 if pc in stuff else p_i), set()).add(k)
        else:
            void_p.add(k)
        if gc in kept:
            gt_segs.setdefault((gc, 0 if gc in stuff else g_i), set()).add(k)
        else:
            void_g.add(k)
    stats = {}
    for c in kept:
        ps_ = {k: v for k, v in pred_segs.items() if k[0] == c}
        gs_ = {k: v for k, v in gt_segs.items() if k[0] == c}
        tp, ious, mp, mg = 0, 0.0, set(), set()
        for (pk, p), (gk, g) in itertools.product(ps_.items(), gs_.items()):
            inter = len(p & g)
            union = len(p) - len(p & void_g) + len(g) - len(g & void_p) - inter
            if union > 0 and inter / union > 0.5:
                tp, ious = tp + 1, ious + inter / union
                mp.add(pk)
                mg.add(gk)
        fp = sum(1 for k, p in ps_.items() if k not in mp and not len(p & void_g) / len(p) > 0.5)
        fn = sum(1 for k, g in gs_.items() if k not in mg and not len(g & void_p) / len(g) > 0.5)
        stats[c] = (tp, fp, fn, ious)
    pqs = [ious / (tp + fp / 2 + fn / 2) for tp, fp, fn, ious in stats.values() if tp + fp + fn > 0]
    return stats, (sum(pqs) / len(pqs) if pqs else float("nan"))


def random_scene(rng, num_frames=3, shape=(8, 9), id_scale=1, one_sided=None):
    """GT with void 4, things {1, 2} (2 rare), stuff {0, 3}; pred = GT corrupted (class, id, void, id swaps).

    Rare classes trigger the small-class rule at min_class_fraction 0.06; plenty of void GT and void
    predictions trigger the > 50 % excuses. ``one_sided`` makes classes present on one side only (the
    case the reference small-class rule keeps): per frame, or for the whole scene when it is an int,
    0 = as is, 1 = pred never predicts class 2, 2 = GT has no class 3 (pred keeps inventing it),
    3 = pred never predicts class 1 (it predicts 3 there).
    """
    frames = []
    for _ in range(num_frames):
        gs = rng.choice([0, 1, 2, 3, 4], p=[0.3, 0.3, 0.04, 0.14, 0.22], size=shape)
        gi = rng.integers(0, 3, size=shape) * id_scale
        ps, pi = gs.copy(), gi.copy()
        ps[gs == 4] = rng.choice([-1, 0, 1, 3], size=int((gs == 4).sum()))
        over_void = (gs == 4) & (rng.random(shape) < 0.6)  # a pred-only thing mostly on void GT
        ps[over_void], pi[over_void] = 1, 3 * id_scale
        hidden = (gs == 1) & (gi == 2 * id_scale) & (rng.random(shape) < 0.6)  # a GT thing mostly predicted void
        ps[hidden] = rng.choice([-1, 5], size=int(hidden.sum()))
        flip = rng.random(shape) < 0.25
        ps[flip] = rng.choice([-1, 0, 1, 2, 3, 5], p=[0.2, 0.2, 0.2, 0.05, 0.15, 0.2], size=int(flip.sum()))
        swap = rng.random(shape) < 0.2
        pi[swap] = rng.integers(0, 4, size=int(swap.sum())) * id_scale
        mode = int(rng.integers(4)) if one_sided is None else one_sided
        if mode == 1:
            ps[ps == 2] = 0
        elif mode == 2:
            gs[gs == 3] = 0
        elif mode == 3:
            ps[ps == 1] = 3
        frames.append((ps, pi, gs, gi))
    return frames


@pytest.mark.parametrize("seed", range(12))
def test_scene_pq_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    # odd seeds: sparse key path; seeds 4-11: one class one-sided in the whole scene (modes 0-3)
    one_sided = None if seed < 4 else seed % 4
    frames = random_scene(rng, id_scale=1 if seed % 2 == 0 else 10**7, one_sided=one_sided)
    cols = [list(x) for x in zip(*frames)]
    for min_frac, rule, mode, merge in itertools.product(
        [0.0, 0.06], ["reference", "absent_counts_as_small", "small_in_both"], ["drop", "keep"], [False, True]
    ):
        kwargs = dict(
            things=[1, 2],
            stuff=[0, 3],
            void_gt=[4],
            void_pred=[5],
            min_class_fraction=min_frac,
            small_class_rule=rule,
            void_gt_mode=mode,
            merge_things=merge,
        )
        r = scene_pq(*cols, **kwargs)
        stats, pq = brute_force_pq(frames, [1, 2], [0, 3], {4}, {5}, min_frac, rule, mode, merge)
        assert sorted(r.per_class) == sorted(stats), kwargs
        for c, (tp, fp, fn, ious) in stats.items():
            s = r.per_class[c]
            assert (s.tp, s.fp, s.fn) == (tp, fp, fn), (kwargs, c)
            assert s.iou_sum == pytest.approx(ious)
        assert (math.isnan(r.pq) and math.isnan(pq)) or r.pq == pytest.approx(pq), kwargs
        # frame_pq = mean over frames of the per-frame brute force
        rf = frame_pq(*cols, **kwargs)
        per_frame = [brute_force_pq([f], [1, 2], [0, 3], {4}, {5}, min_frac, rule, mode, merge)[1] for f in frames]
        valid = [v for v in per_frame if not math.isnan(v)]
        assert rf.per_frame_pq == pytest.approx(per_frame, nan_ok=True)
        assert rf.pq == pytest.approx(sum(valid) / len(valid)) if valid else math.isnan(rf.pq)


def test_scene_pq_invariant_to_frame_chunking(monkeypatch):
    # pooled statistics must not depend on how frames are grouped into chunks internally
    import lift3d.metrics.panoptic as panoptic

    rng = np.random.default_rng(123)
    cols = [list(x) for x in zip(*random_scene(rng, num_frames=5))]
    kwargs = dict(things=[1, 2], stuff=[0, 3], void_gt=[4], min_class_fraction=0.0)
    ref = scene_pq(*cols, **kwargs).to_dict()
    original = panoptic._chunks
    monkeypatch.setattr(panoptic, "_chunks", lambda lists, first_frame=0: original(lists, first_frame, max_pixels=1))
    assert scene_pq(*cols, **kwargs).to_dict() == ref
