"""Simulated 2D segmenter: clean = pure relabelling, detic-like error rates match the configured probabilities."""

from dataclasses import replace

import numpy as np
import pytest

from lift3d.generate.segmenter import (
    SEGMENTER_PRESETS,
    SegmenterNoise,
    WorkingSegments,
    merge_touching,
    preset,
    segment_confidence,
    simulate_segmenter,
    split_segments,
)


def discs(rng: np.random.Generator, size: int = 96, grid: int = 3, radius: float = 6.0) -> np.ndarray:
    """``grid x grid`` separated discs (ids 1..grid^2) at jittered cell centres; far apart, never touching."""
    gt = np.zeros((size, size), np.int64)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    cell = size / grid
    for k in range(grid * grid):
        cy = (k // grid + 0.5) * cell + rng.uniform(-3, 3)
        cx = (k % grid + 0.5) * cell + rng.uniform(-3, 3)
        gt[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k + 1
    return gt


def touching_pairs(size: int = 96) -> np.ndarray:
    """Four pairs of squares, the two squares of a pair share an edge; pairs are far apart."""
    gt = np.zeros((size, size), np.int64)
    for p, (y, x) in enumerate([(8, 8), (8, 56), (56, 8), (56, 56)]):
        gt[y : y + 16, x : x + 12] = 2 * p + 1
        gt[y : y + 16, x + 12 : x + 24] = 2 * p + 2
    return gt


def scene_like(rng: np.random.Generator) -> np.ndarray:
    gt = discs(rng)
    gt[40:60, 10:30] = 20  # a square touching nothing
    gt[0:5, 0:5] = 21
    return gt


def test_clean_is_a_pure_relabelling_per_view():
    rng = np.random.default_rng(0)
    noise = SEGMENTER_PRESETS["clean"]
    previous = None
    for view in range(10):
        gt = scene_like(rng)
        gt[gt == 3] = 0  # ids need not be contiguous
        inst, sem, conf = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng(view), noise)
        assert inst.dtype == np.uint16 and sem.dtype == np.uint8 and conf.dtype == np.float32
        pairs = np.unique(np.stack([gt.ravel(), inst.ravel().astype(np.int64)], 1), axis=0)
        # a bijection: every GT id maps to exactly one predicted id and vice versa; 0 <-> 0
        assert len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))
        assert ((pairs[:, 0] == 0) == (pairs[:, 1] == 0)).all()
        np.testing.assert_array_equal(sem, (gt > 0).astype(np.uint8))
        np.testing.assert_array_equal(conf, 1.0)
        ids = set(pairs[1:, 1].tolist())
        assert previous is None or ids != previous  # ids are arbitrary per view
        previous = ids


def test_same_generator_state_same_masks():
    gt = scene_like(np.random.default_rng(0))
    a = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng(5), preset("heavy"))
    b = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng(5), preset("heavy"))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def _classify(gt: np.ndarray, inst: np.ndarray):
    """Per GT mask: dropped (most pixels have no segment) or the number of predicted ids covering it."""
    dropped, pieces = [], []
    for k in np.unique(gt[gt > 0]):
        pred = inst[gt == k].astype(np.int64)
        if (pred == 0).mean() > 0.5:
            dropped.append(True)
            continue
        dropped.append(False)
        ids, counts = np.unique(pred[pred > 0], return_counts=True)
        pieces.append(int((counts >= 0.1 * (gt == k).sum()).sum()))
    return np.array(dropped), np.array(pieces)


def test_detic_like_drop_and_split_rates_match_the_configuration():
    noise = SEGMENTER_PRESETS["detic-like"]
    rng = np.random.default_rng(1)
    dropped, pieces = [], []
    for view in range(250):  # 2250 masks
        gt = discs(rng)
        inst, sem, conf = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng([9, view]), noise)
        d, p = _classify(gt, inst)
        dropped.append(d)
        pieces.append(p)
        assert (sem[inst == 0] == 0).all() and (sem[inst > 0] == 1).all()
    dropped, pieces = np.concatenate(dropped), np.concatenate(pieces)
    # binomial standard errors are ~0.005 here; the tolerance is ~4 of them
    assert dropped.mean() == pytest.approx(noise.drop_prob, abs=0.02)
    assert (pieces == 2).mean() == pytest.approx(noise.split_prob, abs=0.02)
    assert (pieces <= 2).all()


def test_merge_rate_of_touching_masks_matches_the_configuration():
    noise = SegmenterNoise(merge_prob=0.3)
    gt = touching_pairs()
    merged = []
    for view in range(300):
        inst, _, _ = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng([3, view]), noise)
        for p in range(4):
            merged.append(inst[gt == 2 * p + 1][0] == inst[gt == 2 * p + 2][0])
            assert len(np.unique(inst[(gt == 2 * p + 1) | (gt == 2 * p + 2)])) in (1, 2)
    assert np.mean(merged) == pytest.approx(0.3, abs=0.05)


def test_small_and_fragmented_masks_are_dropped():
    gt = np.zeros((96, 96), np.int64)
    gt[10:12, 10:12] = 1  # 4 px < 0.0006 * 96^2 = 5.5 px: always missed
    gt[40:60, 40:50] = 2
    gt[40:60, 55:65] = 2  # one object seen in two pieces (occluded in the middle)
    noise = replace(SEGMENTER_PRESETS["detic-like"], occluded_drop_prob=1.0, spurious_per_view=0.0)
    for view in range(20):
        inst, sem, _ = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng(view), noise)
        assert (inst[gt == 1] == 0).all() and (inst[gt == 2] == 0).all() and (sem == 0).all()


def test_spurious_segments_appear_on_background_with_the_configured_rate():
    noise = SegmenterNoise(spurious_per_view=2.0)
    gt = np.zeros((64, 64), np.int64)
    counts = []
    for view in range(300):
        inst, sem, _ = simulate_segmenter(gt, gt.astype(np.uint8), np.random.default_rng(view), noise)
        # overlapping ellipses are drawn only on free pixels, so each draws one id (rarely none)
        counts.append(len(np.unique(inst[inst > 0])))
        assert ((sem > 0) == (inst > 0)).all()
    assert np.mean(counts) == pytest.approx(2.0, abs=0.25)


def test_confidence_is_lower_near_boundaries_and_on_noisy_segments():
    noise = preset("detic-like", drop_prob=0.0, split_prob=0.0, merge_prob=0.0, jitter_prob=0.0, spurious_per_view=0.0)
    gt = np.zeros((64, 64), np.int64)
    gt[16:48, 16:48] = 1
    _, _, conf = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng(0), noise)
    assert 0.0 <= conf.min() and conf.max() <= 1.0
    interior, edge = conf[30, 30], conf[16, 30]
    lo, hi = noise.confidence_range
    assert lo <= interior <= hi
    # a pixel on the boundary (distance 0) keeps 1 - boundary_confidence_drop of its segment's score
    assert edge == pytest.approx(interior * (1 - noise.boundary_confidence_drop), rel=1e-3)
    split = replace(noise, split_prob=1.0)
    inst, _, conf_split = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng(0), split)
    assert len(np.unique(inst[inst > 0])) == 2
    assert conf_split[inst > 0].max() <= hi * noise.noisy_confidence_factor + 1e-6


def test_presets_are_ordered_by_noise():
    clean, detic, heavy = (SEGMENTER_PRESETS[k] for k in ("clean", "detic-like", "heavy"))
    for field in ("drop_prob", "merge_prob", "split_prob", "jitter_prob", "spurious_per_view"):
        assert getattr(clean, field) == 0 < getattr(detic, field) < getattr(heavy, field)
    with pytest.raises(ValueError, match="Unknown segmenter noise preset"):
        preset("noisy")


def test_merge_touching_joins_pairs_under_the_smaller_id():
    label = np.zeros((6, 10), np.int64)
    label[1:4, 1:3], label[1:4, 3:5], label[1:4, 7:9] = 4, 2, 9  # 4 and 2 touch, 9 stands alone
    seg = WorkingSegments(label.copy(), 10)
    merge_touching(seg, np.random.default_rng(0), SegmenterNoise(merge_prob=1.0))
    expected = label.copy()
    expected[expected == 4] = 2
    np.testing.assert_array_equal(seg.label, expected)
    assert seg.noisy == {2} and seg.next_id == 10


def test_split_segments_cuts_through_the_centroid_into_a_new_id():
    label = np.zeros((8, 8), np.int64)
    label[2:6, 2:6] = 3
    seg = WorkingSegments(label.copy(), 4)
    split_segments(seg, np.random.default_rng(1), SegmenterNoise(split_prob=1.0))
    assert seg.next_id == 5 and seg.noisy == {3, 4}
    assert set(np.unique(seg.label).tolist()) == {0, 3, 4}
    assert ((seg.label > 0) == (label > 0)).all()  # the two halves cover the square exactly
    replay = np.random.default_rng(1)
    replay.random()  # the draw that decided to split
    t = replay.uniform(0.0, np.pi)  # the cut's angle
    ys, xs = np.nonzero(label == 3)  # pixel indices; the centroid is (2 + 5) / 2 = 3.5 on both axes
    new_side = (xs - 3.5) * np.cos(t) + (ys - 3.5) * np.sin(t) > 0
    np.testing.assert_array_equal(seg.label[ys, xs], np.where(new_side, 4, 3))
    assert 0 < new_side.sum() < 16


def test_segment_confidence_follows_the_boundary_formula():
    # one row: two background pixels, then segment 7 (noisy); the boundary lies between pixels 1 and 2
    seg = WorkingSegments(np.array([[0, 0, 7, 7]], np.int64), 8, {7})
    noise = SegmenterNoise(
        confidence_range=(0.8, 0.8),
        noisy_confidence_factor=0.5,
        background_confidence=0.9,
        boundary_confidence_drop=0.5,
        boundary_width_px=1.0,
    )
    conf = segment_confidence(seg, np.array([7]), np.random.default_rng(0), noise)
    e = np.exp(-1.0)  # distance 1 from the boundary for the outer pixels, 0 for the two beside it
    expected = [0.9 * (1 - 0.5 * e), 0.9 * 0.5, 0.4 * 0.5, 0.4 * (1 - 0.5 * e)]
    assert conf.dtype == np.float32
    np.testing.assert_allclose(conf[0], expected, rtol=1e-6)
