"""How many of a scene's test-view objects the clustering views can hold at all.

The clusters of a lifted run are fitted on the pixels of ``cluster_views`` evenly spaced training views
(:func:`lift3d.pipeline.decoding.clustering_views`); an object none of them shows cannot get a cluster of its own,
whatever the instance field learned. This counts, from the ground truth, the objects of the test views that appear
with at least ``--min-pixels`` pixels in the chosen clustering views, for several view counts (it reads ground
truth; it is a diagnosis, never part of a fit).

    python -m tools.cluster_coverage outputs/study/cpu-small-v3/scenes/N500 --views 80 160 320 960 \\
        --out docs/results/cpu-small-n500-cover/coverage.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lift3d.data.loading import load_frame, load_scene
from lift3d.io.atomic import atomic_write_json
from lift3d.pipeline.decoding import clustering_views


def object_pixels(scene, index: int) -> dict[int, int]:
    """Ground-truth instance id -> pixel count in frame ``index`` (id 0, no object, left out)."""
    gt = load_frame(scene, index, with_ground_truth=True).gt_instance
    if gt is None:
        raise ValueError(f"{scene.frames[index].name}: no ground-truth instance map; coverage needs one")
    ids, counts = np.unique(np.asarray(gt), return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts) if i > 0}


def coverage(scene_dir: Path, view_counts: list[int], min_pixels: list[int]) -> dict:
    scene = load_scene(scene_dir)
    train = {i: object_pixels(scene, i) for i in scene.train_indices}
    test_objects = sorted({o for i in scene.test_indices for o in object_pixels(scene, i)})
    rows = []
    for k in view_counts:
        total: dict[int, int] = {}
        for v in clustering_views(scene.train_indices, k):
            for o, c in train[v].items():
                total[o] = total.get(o, 0) + c
        for m in min_pixels:
            rows.append(
                {
                    "cluster_views": min(k, len(scene.train_indices)),
                    "min_pixels": m,
                    "test_objects_covered": sum(1 for o in test_objects if total.get(o, 0) >= m),
                }
            )
    per_view = [float(np.median(seen)) for o in test_objects if (seen := [px[o] for px in train.values() if o in px])]
    return {
        "scene": str(scene_dir),
        "train_views": len(scene.train_indices),
        "test_objects": len(test_objects),
        "test_objects_in_no_training_view": len(test_objects) - len(per_view),
        "median_pixels_per_training_view_of_a_test_object": float(np.median(per_view)) if per_view else 0.0,
        "rows": rows,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scene", type=Path)
    p.add_argument("--views", type=int, nargs="+", default=[80, 160, 320, 960], help="clustering view counts")
    p.add_argument("--min-pixels", type=int, nargs="+", default=[1, 20, 40])
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    a = p.parse_args(argv)
    try:
        res = coverage(a.scene, a.views, a.min_pixels)
    except (OSError, ValueError) as e:  # SceneFormatError is a ValueError: one line, no traceback
        raise SystemExit(f"cluster_coverage: {e}") from None
    print(f"{a.scene}: {res['train_views']} training views, {res['test_objects']} objects in the test views")
    for r in res["rows"]:
        print(
            f"  {r['cluster_views']:4d} clustering views: {r['test_objects_covered']:4d} / {res['test_objects']} "
            f"test objects with >= {r['min_pixels']} px in them"
        )
    if a.out is not None:
        atomic_write_json(a.out, res)
    return res


if __name__ == "__main__":
    main()
