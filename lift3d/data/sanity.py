"""Physical plausibility of a validated scene: what may be intended but usually is a mistake, said before any work.

:func:`scene_warnings` returns one sentence per problem, each naming the frame and file and how to fix it; ``lift3d
fit`` prints them as ``WARNING:`` lines before training. Checked on every frame, train and test:

* a camera far outside the others: its distance to the median camera position is more than
  :data:`POSE_OUTLIER_FACTOR` times the median such distance (the box around the cameras grows with it);
* depth in the wrong unit: the median depth of the scene is more than :data:`DEPTH_SCALE_FACTOR` times smaller or
  larger than the cameras' median distance to the point nearest all camera axes (e.g. metres written into a
  millimetre PNG), or one frame's median depth is that far from the scene's;
* an empty test split (``lift3d eval`` will have nothing to score);
* frames dropped as unreadable (``skip_bad_frames``), each with its reason;
* sparse depth (fewer than :data:`SPARSE_DEPTH_DENSITY` of the pixels hold a depth: SfM points), said once.
"""

from __future__ import annotations

import numpy as np

from lift3d.data.images import read_depth
from lift3d.data.scene import Scene, scene_file

__all__ = ["scene_warnings", "describe_scene", "POSE_OUTLIER_FACTOR", "DEPTH_SCALE_FACTOR", "SPARSE_DEPTH_DENSITY"]

POSE_OUTLIER_FACTOR = 20.0
"""A camera whose distance to the median camera position exceeds this many times the median distance is flagged."""
DEPTH_SCALE_FACTOR = 20.0
"""Median depth more than this factor away from the camera-to-scene distance (either way) is flagged."""
SPARSE_DEPTH_DENSITY = 0.5
"""Depth maps whose mean fraction of valid pixels (``scene.extras['depth_density']``) is below this are sparse."""


def _where(scene: Scene, i: int) -> str:
    return f"{scene_file(scene)}, frame {i} ({scene.frames[i].name})"


def _pose_warnings(scene: Scene, centres: np.ndarray) -> list[str]:
    """``centres`` [N, 3] camera positions."""
    if len(centres) < 3:
        return []
    dist = np.linalg.norm(centres - np.median(centres, axis=0), axis=1)
    typical = float(np.median(dist))
    if typical <= 0:
        return []
    far = [i for i in range(len(centres)) if dist[i] > POSE_OUTLIER_FACTOR * typical]
    return [
        f"{_where(scene, i)}: the camera is {dist[i]:.3g} from the median camera position while the cameras are "
        f"typically {typical:.3g} from it ({dist[i] / typical:.0f}x); the modelled box grows to contain it. Check "
        "its transform_matrix (units, a missing inverse), or remove the frame."
        for i in far
    ]


def _focus_distance(scene: Scene, centres: np.ndarray) -> float:
    """Median distance of the cameras to the point nearest all their optical axes (least squares)."""
    axes = np.stack([-f.camera_to_world[:3, 2] for f in scene.frames])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    a_mat, b_vec = np.zeros((3, 3)), np.zeros(3)
    for c, a in zip(centres, axes):
        proj = np.eye(3) - np.outer(a, a)
        a_mat += proj
        b_vec += proj @ c
    focus = np.linalg.lstsq(a_mat, b_vec, rcond=None)[0]
    return float(np.median(np.linalg.norm(centres - focus, axis=1)))


def _depth_warnings(scene: Scene, centres: np.ndarray) -> list[str]:
    if not scene.has_depth:
        return []
    medians = []
    for f in scene.frames:
        d = read_depth(f.depth_path, scene.depth_unit_scale_factor)
        valid = d[d > 0]
        medians.append(float(np.median(valid)) if valid.size else np.nan)
    medians = np.asarray(medians)
    if not np.isfinite(medians).any():
        return [f"{scene_file(scene)}: every depth map is empty (all 0 = unknown); depth is not used."]
    scene_median = float(np.nanmedian(medians))
    out = []
    reference = _focus_distance(scene, centres) if len(centres) >= 2 else 0.0
    if reference > 0 and not (1 / DEPTH_SCALE_FACTOR <= scene_median / reference <= DEPTH_SCALE_FACTOR):
        out.append(
            f"{scene_file(scene)}: the median depth is {scene_median:.4g} m but the cameras are about "
            f"{reference:.3g} from what they look at ({reference / scene_median:.3g}x); the depth unit looks wrong "
            f"(depth_unit_scale_factor = {scene.depth_unit_scale_factor} m per PNG unit, e.g. "
            f"{scene.frames[0].depth_path.name} of frame 0). Set depth_unit_scale_factor to the metres per unit "
            "of the depth PNGs."
        )
    for i, m in enumerate(medians):
        if np.isfinite(m) and not (1 / DEPTH_SCALE_FACTOR <= m / scene_median <= DEPTH_SCALE_FACTOR):
            out.append(
                f"{_where(scene, i)}: depth {scene.frames[i].depth_path.name} has median {m:.4g} m, "
                f"{max(m / scene_median, scene_median / m):.0f}x away from the scene's {scene_median:.4g} m; check "
                "its unit."
            )
    return out


def scene_warnings(scene: Scene) -> list[str]:
    """Plausibility warnings of ``scene`` (module docstring), each naming the file, the frame and the fix."""
    centres = np.stack([f.camera_to_world[:3, 3] for f in scene.frames])
    out = _pose_warnings(scene, centres) + _depth_warnings(scene, centres)
    for skipped in scene.extras.get("skipped_frames", []):
        out.append(f"skipped frame {skipped['index']} ({skipped['name']}) as unreadable: {skipped['reason']}")
    density = scene.extras.get("depth_density")
    if scene.has_depth and density is not None and density < SPARSE_DEPTH_DENSITY:
        out.append(
            f"{scene_file(scene)}: the depth maps are sparse ({100 * density:.2f}% of pixels hold a "
            "depth, e.g. SfM points splatted into the images); only those pixels carry depth."
        )
    if not scene.test_indices:
        out.append(
            f"{scene_file(scene)}: the test split is empty (test_filenames); every frame is trained on "
            "and `lift3d eval` will have no held-out view to score."
        )
    return out


def describe_scene(scene: Scene) -> str:
    """One line for a fit log: reader, frames and split, cameras (lens models with their coefficients), depth
    (dense / sparse with its density), masks, segments, downscale and skipped frames."""
    models = {}
    for f in scene.frames:
        d = f.distortion
        key = "pinhole" if d is None else f"{d.model} ({', '.join(f'{p:.4g}' for p in d.params)})"
        models[key] = models.get(key, 0) + 1
    cameras = "; ".join(f"{k}" + (f" x{n}" if len(models) > 1 else "") for k, n in models.items())
    density = scene.extras.get("depth_density")
    if not scene.has_depth:
        depth = "none"
    elif density is None:
        depth = "yes"
    else:
        kind = "sparse" if density < SPARSE_DEPTH_DENSITY else "dense"
        depth = f"{kind} ({100 * density:.2f}% of pixels)"
    masked = sum(f.mask_path is not None for f in scene.frames)
    parts = [
        f"{scene.extras.get('format', 'scene')} {scene_file(scene)}",
        f"{len(scene.frames)} frames ({len(scene.train_indices)} train, {len(scene.test_indices)} test)",
        f"camera: {cameras}",
        f"depth: {depth}",
        f"masks: {masked} frames" if masked else "masks: none",
        "segments: yes" if scene.has_segments else "segments: none",
    ]
    if scene.extras.get("downscale", 1) > 1:
        parts.append(f"downscale {scene.extras['downscale']}")
    if scene.extras.get("skipped_frames"):
        parts.append(f"{len(scene.extras['skipped_frames'])} frames skipped")
    return ", ".join(parts)
