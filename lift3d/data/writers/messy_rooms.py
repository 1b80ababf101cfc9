"""Writer of the released Messy Rooms layout (Contrastive Lift, Bhalgat et al. 2023).

The layout and its camera conventions are described in :mod:`lift3d.data.messy_rooms_format`; whatever is written
here reads back with :mod:`lift3d.data.readers.messy_rooms` (``load_scene``) with poses, intrinsics and ids
unchanged. Whole release folders are written atomically (:func:`lift3d.io.atomic_folder`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np

from lift3d.data.images import write_depth_png, write_rgb
from lift3d.data.loading import load_frame, load_scene
from lift3d.data.messy_rooms_format import (
    CLASSES,
    DEFAULT_RELEASE_DEPTH,
    RELEASE_DIRS,
    DepthKind,
    release_camera_metadata,
)
from lift3d.geometry.cameras import ray_length_per_z
from lift3d.io import atomic_folder

__all__ = ["frame_name", "write_release_frame", "write_release", "export_scene_to_release"]


def frame_name(index: int) -> str:
    """File stem of frame ``index`` in a release written by lift3d: ``00000``, ``00001``, ..."""
    return f"{index:05d}"


def write_release_frame(
    root: Path,
    index: int,
    rgb: np.ndarray,
    depth_z: Optional[np.ndarray],
    gt_instance: np.ndarray,
    gt_semantic: np.ndarray,
    instance: np.ndarray,
    semantic: np.ndarray,
    confidence: np.ndarray,
    ray_factor: Optional[np.ndarray],
    depth_kind: DepthKind,
) -> None:
    """Write one frame's files under ``root`` (folders must exist). ``depth_z`` is metres along the optical axis
    (``[H, W]``, 0 = unknown), stored as ``depth_kind`` in 16-bit millimetres (``ray_factor`` from
    :func:`~lift3d.geometry.cameras.ray_length_per_z` converts z to distance)."""
    name = frame_name(index)
    write_rgb(root / "color" / f"{name}.png", np.asarray(rgb)[..., :3])
    if depth_z is not None:
        d = np.asarray(depth_z, dtype=np.float64)
        if depth_kind == "distance":
            d = d * ray_factor
        write_depth_png(root / "depth" / f"{name}.png", d)
    for folder, arr, dtype in (
        ("instance", gt_instance, np.int32),
        ("semantic", gt_semantic, np.uint8),
        ("detic_instance", instance, np.int32),
        ("detic_semantic", semantic, np.uint8),
    ):
        arr = np.asarray(arr)
        if arr.min(initial=0) < np.iinfo(dtype).min or arr.max(initial=0) > np.iinfo(dtype).max:
            raise ValueError(f"{root / folder / name}.npy: ids {arr.min()}..{arr.max()} do not fit {np.dtype(dtype)}.")
        np.save(root / folder / f"{name}.npy", arr.astype(dtype))
    np.save(root / "detic_probabilities" / f"{name}.npy", np.clip(np.asarray(confidence, np.float32), 0.0, 1.0))


@contextlib.contextmanager
def release_folder(out_dir: Path, overwrite: bool, with_depth: bool) -> Iterator[Path]:
    """Yield a temporary release folder (``RELEASE_DIRS`` made, ``depth/`` only ``with_depth``) beside
    ``out_dir``; on normal exit it replaces ``out_dir`` in one rename, on any exception it is removed and
    ``out_dir`` is left as it was (:func:`lift3d.io.atomic_folder`)."""
    with atomic_folder(Path(out_dir), overwrite=overwrite, subdirs=RELEASE_DIRS) as tmp:
        if not with_depth:
            shutil.rmtree(tmp / "depth")
        yield tmp


def _metadata(
    camera: Dict,
    width: int,
    height: int,
    num_frames: int,
    depth_kind: DepthKind,
    extra: Optional[Dict],
    classes: Optional[List[Dict]] = None,
) -> Dict:
    meta = {
        "metadata": {"resolution": [width, height], "num_frames": num_frames},
        "camera": camera,
        "lift3d": {
            "depth": depth_kind,
            "depth_unit": 0.001,
            "classes": CLASSES if classes is None else classes,
            "written_by": "lift3d.data.messy_rooms",
        },
    }
    if extra:
        meta.update(extra)
    return meta


def write_release(
    out_dir: Path,
    *,
    rgb: np.ndarray,
    depth: Optional[np.ndarray],
    gt_instance: np.ndarray,
    gt_semantic: np.ndarray,
    instance: np.ndarray,
    semantic: np.ndarray,
    confidence: np.ndarray,
    camera_to_world: np.ndarray,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    depth_kind: DepthKind = DEFAULT_RELEASE_DEPTH,
    extra_metadata: Optional[Dict] = None,
    overwrite: bool = False,
    classes: Optional[List[Dict]] = None,
) -> Path:
    """Write ``[V, ...]`` stacks in the released Messy Rooms layout (see the module docstring), atomically.

    ``rgb [V, H, W, 3]`` uint8; ``depth [V, H, W]`` metres along the optical axis (or None); ground-truth
    ``gt_instance`` / ``gt_semantic`` and the segmenter's ``instance`` / ``semantic`` ``[V, H, W]`` integers;
    ``confidence [V, H, W]`` in [0, 1]; ``camera_to_world [V, 4, 4]`` OpenGL axes; pinhole intrinsics in pixels.
    ``extra_metadata`` entries are added to metadata.json at the top level (e.g. kubric-style ``instances``);
    ``classes`` (``[{"id", "name", "thing"}]``, default the two Messy Rooms classes) goes to ``lift3d.classes``.
    """
    V, H, W = np.asarray(gt_instance).shape
    out_dir = Path(out_dir)
    with release_folder(out_dir, overwrite, with_depth=depth is not None) as tmp:
        factor = ray_length_per_z(fx, fy, cx, cy, W, H)
        for v in range(V):
            write_release_frame(
                tmp,
                v,
                rgb[v],
                None if depth is None else depth[v],
                gt_instance[v],
                gt_semantic[v],
                instance[v],
                semantic[v],
                confidence[v],
                factor,
                depth_kind,
            )
        camera = release_camera_metadata(camera_to_world, fx, fy, cx, cy, W, H)
        meta = _metadata(camera, W, H, V, depth_kind, extra_metadata, classes)
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=1))
    return out_dir


def export_scene_to_release(
    scene_dir: Path, out_dir: Path, depth_kind: DepthKind = DEFAULT_RELEASE_DEPTH, overwrite: bool = False
) -> Path:
    """Convert a lift3d scene (with ground truth; one shared set of intrinsics) into the release layout.

    Frames are written in ``transforms.json`` order as ``00000, 00001, ...``; note that the release's split rule
    (last 20 %) replaces the scene's own split. A scene without confidence maps gets confidence 1.
    """
    scene = load_scene(scene_dir)
    if not scene.has_ground_truth:
        raise ValueError(
            f"{scene.root}: the release layout needs ground truth (gt_instance_file_path and "
            "gt_semantic_file_path on every frame)."
        )
    f0 = scene.frames[0]
    for f in scene.frames:
        if (f.width, f.height) != (f0.width, f0.height) or not np.allclose(f.intrinsics(), f0.intrinsics()):
            raise ValueError(
                f"{scene.root}: frame {f.index} ({f.name}) has other intrinsics than frame 0; the "
                "release layout has one camera K for all frames."
            )
    out_dir = Path(out_dir)
    with release_folder(out_dir, overwrite, with_depth=scene.has_depth) as tmp:
        factor = ray_length_per_z(f0.fx, f0.fy, f0.cx, f0.cy, f0.width, f0.height)
        for f in scene.frames:
            d = load_frame(scene, f.index, with_ground_truth=True)
            rgb8 = np.round(d.rgb * 255.0).astype(np.uint8)
            conf = d.confidence if d.confidence is not None else np.ones(d.instance.shape, np.float32)
            write_release_frame(
                tmp,
                f.index,
                rgb8,
                d.depth,
                d.gt_instance,
                d.gt_semantic,
                d.instance,
                d.semantic,
                conf,
                factor,
                depth_kind,
            )
        c2w = np.stack([f.camera_to_world for f in scene.frames])
        camera = release_camera_metadata(c2w, f0.fx, f0.fy, f0.cx, f0.cy, f0.width, f0.height)
        meta = _metadata(camera, f0.width, f0.height, len(scene.frames), depth_kind, {"lift3d_source": str(scene.root)})
        meta["lift3d"]["classes"] = [{"id": c.id, "name": c.name, "thing": c.thing} for c in scene.classes]
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=1))
    return out_dir
