"""tools.cluster_coverage: objects of the test views that the clustering views show, from the ground truth."""

from __future__ import annotations

import numpy as np


def test_coverage_counts_test_objects_seen_in_the_clustering_views(tiny_scene_dir, tmp_path):
    import json

    from lift3d.data.loading import load_frame, load_scene
    from tools.cluster_coverage import main

    scene = load_scene(tiny_scene_dir)
    out = tmp_path / "coverage.json"
    res = main([str(tiny_scene_dir), "--views", "1", "3", "6", "--min-pixels", "1", "30", "--out", str(out)])
    assert json.loads(out.read_text()) == res
    rows = {(r["cluster_views"], r["min_pixels"]): r["test_objects_covered"] for r in res["rows"]}
    # by hand: the first training view alone (1 view = index 0 of the evenly spaced choice), and all six
    gt = {i: np.asarray(load_frame(scene, i, with_ground_truth=True).gt_instance) for i in range(len(scene.frames))}
    test_objects = {int(o) for i in scene.test_indices for o in np.unique(gt[i]) if o > 0}
    first = scene.train_indices[0]
    assert res["test_objects"] == len(test_objects)
    assert rows[(1, 1)] == len({o for o in test_objects if (gt[first] == o).sum() >= 1})
    assert rows[(1, 30)] == len({o for o in test_objects if (gt[first] == o).sum() >= 30})
    in_training = {o for o in test_objects if any((gt[i] == o).any() for i in scene.train_indices)}
    assert rows[(6, 1)] == len(in_training) == res["test_objects"] - res["test_objects_in_no_training_view"]
    # more views never cover fewer objects; a higher pixel threshold never covers more
    for m in (1, 30):
        assert rows[(1, m)] <= rows[(3, m)] <= rows[(6, m)]
    for k in (1, 3, 6):
        assert rows[(k, 30)] <= rows[(k, 1)]
