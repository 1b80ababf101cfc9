"""MOTS metrics (sMOTSA, MOTSA, MOTSP, TP / FP / FN / IDS) on hand-computed sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lift3d.metrics import mots, mots_over_sequences
from lift3d.metrics.mots import match_frame

H, W = 4, 4


def gt_frame(a: bool = True, b: bool = True) -> np.ndarray:
    """Object 1 (A) fills columns 0-1 (8 pixels), object 2 (B) column 3 (4 pixels); column 2 is background."""
    m = np.zeros((H, W), np.int64)
    if a:
        m[:, 0:2] = 1
    if b:
        m[:, 3] = 2
    return m


def on_a(track_id: int) -> np.ndarray:
    m = np.zeros((H, W), np.int64)
    m[:, 0:2] = track_id
    return m


def test_perfect_tracks_score_one():
    gt = [gt_frame(), gt_frame(), gt_frame()]
    r = mots([g * 7 for g in gt], gt)  # other id values, same tracks
    assert (r.tp, r.fp, r.fn, r.ids, r.num_gt) == (6, 0, 0, 0, 6)
    assert r.smotsa == r.motsa == r.motsp == 1.0


def test_an_id_switch():
    """A tracked as 5, 5, then 7: one switch. MOTSA = (3 - 0 - 1) / 3."""
    gt = [gt_frame(b=False)] * 3
    r = mots([on_a(5), on_a(5), on_a(7)], gt)
    assert (r.tp, r.fp, r.fn, r.ids) == (3, 0, 0, 1)
    assert r.motsa == pytest.approx(2 / 3) and r.smotsa == pytest.approx(2 / 3) and r.motsp == 1.0


def test_a_missed_frame_then_the_same_id_is_no_switch():
    """A tracked as 5, missed, 5 again: the latest tracked predecessor had id 5, so FN = 1 and IDS = 0."""
    gt = [gt_frame(b=False)] * 3
    r = mots([on_a(5), np.zeros((H, W), np.int64), on_a(5)], gt)
    assert (r.tp, r.fp, r.fn, r.ids) == (2, 0, 1, 0)
    assert r.motsa == pytest.approx(2 / 3)


def test_a_missed_frame_then_another_id_is_a_switch():
    gt = [gt_frame(b=False)] * 3
    r = mots([on_a(5), np.zeros((H, W), np.int64), on_a(8)], gt)
    assert (r.tp, r.fp, r.fn, r.ids) == (2, 0, 1, 1)
    assert r.motsa == pytest.approx((2 - 0 - 1) / 3)


def test_a_false_track():
    """A tracked perfectly; a second track (id 9) on two background pixels in frames 0 and 1: FP = 2."""
    gt = [gt_frame(b=False)] * 3
    pred = [on_a(5) for _ in range(3)]
    for t in (0, 1):
        pred[t][0:2, 2] = 9
    r = mots(pred, gt)
    assert (r.tp, r.fp, r.fn, r.ids) == (3, 2, 0, 0)
    assert r.motsa == pytest.approx((3 - 2) / 3) and r.smotsa == pytest.approx((3 - 2) / 3)


def test_iou_of_exactly_one_half_is_no_match():
    """Half of A's 8 pixels: IoU = 4 / 8 = 0.5, not > 0.5, so an FP and an FN."""
    pred = np.zeros((H, W), np.int64)
    pred[:, 0] = 3
    r = mots([pred], [gt_frame(b=False)])
    assert (r.tp, r.fp, r.fn) == (0, 1, 1)
    assert r.motsa == -1.0 and math.isnan(r.motsp)


def test_soft_scores_by_hand():
    """Frame 0: id 5 = A + 2 background pixels (IoU 8/10), id 6 = B (IoU 1). Frame 1: id 6 on A (IoU 1, a switch:
    A was 5), B missed, id 9 on 3 background pixels (FP). TP 3, FP 1, FN 1, IDS 1, soft TP 2.8, |M| 4."""
    p0 = np.zeros((H, W), np.int64)
    p0[:, 0:2] = 5
    p0[0:2, 2] = 5
    p0[:, 3] = 6
    p1 = np.zeros((H, W), np.int64)
    p1[:, 0:2] = 6
    p1[0:3, 2] = 9
    r = mots([p0, p1], [gt_frame(), gt_frame()])
    assert (r.tp, r.fp, r.fn, r.ids, r.num_gt) == (3, 1, 1, 1, 4)
    assert r.soft_tp == pytest.approx(2.8)
    assert r.motsa == pytest.approx((3 - 1 - 1) / 4)
    assert r.smotsa == pytest.approx((2.8 - 1 - 1) / 4)
    assert r.motsp == pytest.approx(2.8 / 3)
    assert r.motsa == pytest.approx(1 - (r.fn + r.fp + r.ids) / r.num_gt)


def test_match_frame_pairs_by_iou():
    pred = np.zeros((H, W), np.int64)
    pred[:, 0:2] = 4
    pred[:, 2:4] = 5  # B's 4 pixels + 4 background: IoU 0.5, no match
    matches, n_pred, n_gt = match_frame(pred, gt_frame())
    assert matches == {1: (4, 1.0)} and (n_pred, n_gt) == (2, 2)


def test_sequences_pool_counts_without_switches_across_them():
    gt = [gt_frame(b=False)] * 2
    one = ([on_a(5), on_a(5)], gt)
    other = ([on_a(7), on_a(7)], gt)  # a new sequence starting with another id is no switch
    r = mots_over_sequences([one, other])
    assert (r.tp, r.fp, r.fn, r.ids, r.num_gt) == (4, 0, 0, 0, 4)


def test_bad_input_names_the_frame():
    with pytest.raises(ValueError, match="2 predicted frames but 1"):
        mots([gt_frame(), gt_frame()], [gt_frame()])
    with pytest.raises(ValueError, match="frame 1"):
        mots([gt_frame(), np.zeros((2, 2), np.int64)], [gt_frame(), gt_frame()])
    with pytest.raises(ValueError, match="integers"):
        mots([gt_frame().astype(float)], [gt_frame()])
