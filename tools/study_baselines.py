"""2D baselines of the study (Contrastive Lift Table 4): the segmenter's own masks, raw or tracked through the sequence.

Every tracker runs over ALL frames of the scene in frame-index order (train and test views interleaved as the
camera sequence gives them), so a test frame is tracked from the frames before it; only the test frames are
scored, with the same PQ^scene as the lifted methods. The predicted class of a pixel is the 2D segmenter's class.

- ``2d-raw``: the per-view ids as the segmenter gives them (inconsistent across views by construction).
- ``2d-track-iou``: Hungarian matching on consecutive-frame mask IoU (tracking method 1).
- ``2d-track-warp``: IoU after warping the previous frame with ground-truth depth and poses (method 2).
- ``2d-track-fusion``: incremental fusion of the segments into a voxel map with ground-truth depth (method 3).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from lift3d.baselines import track_by_depth_warping, track_by_iou, track_by_point_cloud_fusion
from lift3d.data.loading import load_frame
from lift3d.data.scene import Scene
from lift3d.pipeline import score_segments
from tools.study_lift import thing_scored

__all__ = ["BASELINES", "score_baselines"]

BASELINES = ("2d-raw", "2d-track-iou", "2d-track-warp", "2d-track-fusion")


def score_baselines(scene: Scene, voxel_size: float = 0.02, log: Callable = print) -> dict:
    """``{baseline: scores}`` for every entry of :data:`BASELINES` on the scene's test frames.

    ``voxel_size`` (metres) is the point-cloud fusion's voxel edge; the scene must have depth for methods 2, 3.
    """
    order = list(range(len(scene.frames)))
    frames = [load_frame(scene, i) for i in order]
    if any(f.depth is None for f in frames):
        raise ValueError(f"{scene.root}: the depth-based trackers need depth maps (depth_file_path) for every frame.")
    inst = [f.instance for f in frames]
    depth = [f.depth for f in frames]
    c2w = [scene.frames[i].camera_to_world for i in order]
    intr = [tuple(scene.frames[i].intrinsics()) for i in order]
    test = list(scene.test_indices)
    tracked = {
        "2d-raw": lambda: inst,
        "2d-track-iou": lambda: track_by_iou(inst),
        "2d-track-warp": lambda: track_by_depth_warping(inst, depth, c2w, intr),
        "2d-track-fusion": lambda: track_by_point_cloud_fusion(inst, depth, c2w, intr, voxel_size=voxel_size),
    }
    out = {}
    for name in BASELINES:
        t0 = time.perf_counter()
        maps = tracked[name]()
        s = score_segments(scene, test, [frames[i].semantic for i in test], [np.asarray(maps[i]) for i in test])
        s["thing_scored"] = thing_scored(scene, s)
        out[name] = {**s, "seconds": round(time.perf_counter() - t0, 2)}
        log(f"  {name}: PQ^scene {s['pq_scene']:.3f}, per-frame PQ {s['pq_frame']:.3f}")
    return out
