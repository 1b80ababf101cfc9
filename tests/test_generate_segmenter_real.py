"""The ``detic-real`` segmenter noise: boundary bleed, class confusion, and per-frame PQ far below ``detic-like``."""

from dataclasses import replace

import numpy as np

from lift3d.generate.segmenter import (
    SEGMENTER_PRESETS,
    SegmenterNoise,
    WorkingSegments,
    bleed_boundaries,
    confuse_classes,
    simulate_segmenter,
)


def strip_pair() -> np.ndarray:
    """Segment 1 (columns 2..5) touching segment 2 (columns 6..9), rows 2..9; a lone segment 3 far away."""
    gt = np.zeros((24, 24), np.int64)
    gt[2:10, 2:6] = 1
    gt[2:10, 6:10] = 2
    gt[16:20, 16:20] = 3
    return gt


def test_bleed_takes_a_neighbour_rim_and_never_claims_empty_pixels():
    noise = SegmenterNoise(bleed_prob=0.5, bleed_max_px=1)
    for seed in range(200):  # a seed where segment 1 bleeds and segments 2 and 3 do not
        r = np.random.default_rng(seed)
        if r.random() < 0.5 and int(r.integers(1, 2)) == 1 and r.random() >= 0.5 and r.random() >= 0.5:
            break
    gt = strip_pair()
    seg = WorkingSegments(gt.copy(), 4)
    bleed_boundaries(seg, np.random.default_rng(seed), noise)
    expected = gt.copy()
    expected[2:10, 6] = 1  # one column of segment 2 (its 4-neighbour rim next to segment 1)
    np.testing.assert_array_equal(seg.label, expected)
    assert seg.noisy == {1}


def test_bleed_of_an_isolated_segment_changes_nothing():
    gt = np.zeros((16, 16), np.int64)
    gt[4:8, 4:8] = 1
    seg = WorkingSegments(gt.copy(), 2)
    bleed_boundaries(seg, np.random.default_rng(0), SegmenterNoise(bleed_prob=1.0, bleed_max_px=3))
    np.testing.assert_array_equal(seg.label, gt)  # no touching segment, and "no segment" pixels are never taken


def test_class_confusion_draws_another_class_and_stuff_loses_the_instance():
    rng = np.random.default_rng(0)
    inst = np.zeros((8, 40), np.uint16)
    sem = np.zeros((8, 40), np.uint8)
    for k in range(20):  # 20 segments of class 2, two columns each
        inst[:, 2 * k : 2 * k + 2] = 100 + k
        sem[:, 2 * k : 2 * k + 2] = 2
    gt_sem = np.full((8, 40), 3, np.uint8)  # classes 0..3: C = 4
    before = inst.copy()
    confuse_classes(inst, sem, gt_sem, rng, SegmenterNoise(class_confusion_prob=1.0))
    for k in range(20):
        cols = slice(2 * k, 2 * k + 2)
        new = np.unique(sem[:, cols])
        assert len(new) == 1 and new[0] in (0, 1, 3)  # never its own class 2
        if new[0] == 0:
            assert (inst[:, cols] == 0).all()
        else:
            np.testing.assert_array_equal(inst[:, cols], before[:, cols])
    assert len(np.unique(sem)) == 3  # 20 uniform draws over 3 classes hit all three (p of missing one < 1e-3)


def test_new_steps_draw_nothing_when_off():
    """detic-like masks are unchanged by the new steps: same output as with the steps' knobs explicitly 0."""
    gt = strip_pair()
    noise = SEGMENTER_PRESETS["detic-like"]
    a = simulate_segmenter(gt, (gt > 0).astype(np.uint8), np.random.default_rng(5), noise)
    b = simulate_segmenter(
        gt,
        (gt > 0).astype(np.uint8),
        np.random.default_rng(5),
        replace(noise, bleed_prob=0.0, class_confusion_prob=0.0),
    )
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_detic_real_per_frame_pq_is_far_below_detic_like(tmp_path):
    """On a small generated scene: detic-like things-PQ in the 80s, detic-real's near the 40s it was calibrated to."""
    from lift3d.data.loading import load_frame, load_scene
    from lift3d.generate import MessyRoomsConfig, generate_scene
    from tools.bench_segmenter_noise import score_preset

    generate_scene(MessyRoomsConfig(num_objects=25, num_views=6, resolution=128, seed=3), tmp_path, progress=False)
    scene = load_scene(tmp_path)
    data = [load_frame(scene, f.index, with_ground_truth=True) for f in scene.frames]
    like = score_preset(scene, data, "detic-like", 3)
    real = score_preset(scene, data, "detic-real", 3)
    assert like["pq_things"] > 75
    assert 30 < real["pq_things"] < 60
    assert real["pq"] < like["pq"] - 10
