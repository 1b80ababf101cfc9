"""Write a generated scene in lift3d's scene format (docs/scene-format.md).

Layout of the folder::

    transforms.json                 intrinsics, classes, aabb, frames, train/test split (+ a "generator" record)
    layout.json                     the SceneLayout (object specs and poses, room, cameras) for other backends
    images/frame_00000.png          RGB, 8-bit
    depth/frame_00000.png           distance along the optical axis, 16-bit, millimetres (0 = unknown)
    segments/instance/...png        simulated 2D segmenter ids, 16-bit (ids arbitrary per view)
    segments/semantic/...png        simulated 2D segmenter classes, 8-bit
    segments/confidence/...png      simulated confidence, 8-bit (value / 255)
    gt/instance/...png              tracked ground-truth instance ids, 16-bit (evaluation only)
    gt/semantic/...png              ground-truth classes, 8-bit (evaluation only; ids of ``classes``)

Everything is written into a hidden temporary sibling folder which is renamed to ``out_dir`` at the end
(:func:`lift3d.io.atomic.atomic_folder`; with ``overwrite`` an existing scene is moved aside first and deleted once
the new one is in place), so a crash never leaves a half-written scene under ``out_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Optional

import imageio.v3 as iio
import numpy as np

from lift3d.generate.classes import BINARY_CLASSES, layout_classes
from lift3d.generate.config import MessyRoomsConfig, config_to_dict
from lift3d.generate.layout import SceneLayout
from lift3d.generate.views import RenderedViews, SegmenterOutputs
from lift3d.io.atomic import atomic_folder

DEPTH_UNIT = 0.001
"""Metres per depth-PNG unit (millimetres)."""
CLASSES = BINARY_CLASSES
"""The classes of ``--classes binary``; a scene's own list is :func:`lift3d.generate.classes.layout_classes`."""
SUBDIRS = (
    "images",
    "depth",
    "segments/instance",
    "segments/semantic",
    "segments/confidence",
    "gt/instance",
    "gt/semantic",
)


def depth_to_png(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres: ``round(depth / 0.001)``; depths beyond 65.535 m become 0 (unknown)."""
    mm = np.round(np.asarray(depth_m, dtype=np.float64) / DEPTH_UNIT)
    mm[~np.isfinite(mm) | (mm > np.iinfo(np.uint16).max) | (mm < 0)] = 0
    return mm.astype(np.uint16)


def split_frames(num_frames: int, test_fraction: float) -> int:
    """Number of train frames: the last ``round(test_fraction * num_frames)`` frames are test frames."""
    num_test = int(round(test_fraction * num_frames))
    return num_frames - num_test


def objects_aabb(layout: SceneLayout, margin_xy: float = 0.15, margin_z: float = 0.1) -> np.ndarray:
    """[2, 3] box around every placed object's mesh (world space) and the floor under them, enlarged by the margins.

    This is the region the neural field models: the objects and the floor around them. Walls and the floor further
    out are seen through the box and are explained by the field's background model (see ``lift3d.models``).
    """
    from lift3d.generate.assets import build_mesh

    pts = [o.rotation @ build_mesh(o.asset).vertices.T + o.translation[:, None] for o in layout.objects]
    if not pts:
        return np.array([layout.room_min, layout.room_max], dtype=np.float64)
    allp = np.concatenate(pts, axis=1)
    lo = allp.min(axis=1) - np.array([margin_xy, margin_xy, 0.0])
    hi = allp.max(axis=1) + np.array([margin_xy, margin_xy, margin_z])
    lo[2] = min(lo[2], 0.0) - margin_z * 0.5  # keep the floor plane inside
    lo[:2], hi = np.maximum(lo[:2], layout.room_min[:2]), np.minimum(hi, layout.room_max)
    return np.stack([lo, hi])


def _asset_id(asset) -> str:
    """Release-metadata asset id: ``lift3d_gso_<object folder name>`` or ``lift3d_procedural_<shape kind>``."""
    if asset.kind == "gso":
        return f"lift3d_gso_{asset.params.get('name', 'object')}"
    return f"lift3d_procedural_{asset.kind}"


def transforms_dict(layout: SceneLayout, cfg: MessyRoomsConfig, num_train: Optional[int] = None) -> Dict:
    """The ``transforms.json`` content (see docs/scene-format.md). ``aabb`` is the box around the objects (the
    region the field models); ``room_aabb`` is the closed room box. The first ``num_train`` frames are the training
    frames (default :func:`split_frames`)."""
    K = layout.intrinsics
    frames, names = [], []
    for v in range(layout.num_views):
        name = f"frame_{v:05d}.png"
        names.append(f"images/{name}")
        frames.append(
            {
                "file_path": f"images/{name}",
                "transform_matrix": layout.camera_to_world[v].tolist(),
                "instance_file_path": f"segments/instance/{name}",
                "semantic_file_path": f"segments/semantic/{name}",
                "confidence_file_path": f"segments/confidence/{name}",
                "depth_file_path": f"depth/{name}",
                "gt_instance_file_path": f"gt/instance/{name}",
                "gt_semantic_file_path": f"gt/semantic/{name}",
            }
        )
    num_train = split_frames(len(frames), cfg.test_fraction) if num_train is None else num_train
    cfg_dict = config_to_dict(cfg)
    return {
        "fl_x": K.fx,
        "fl_y": K.fy,
        "cx": K.cx,
        "cy": K.cy,
        "w": K.width,
        "h": K.height,
        **lens_keys(cfg),
        "depth_unit_scale_factor": DEPTH_UNIT,
        "classes": layout_classes(layout, cfg).to_json(),
        "aabb": objects_aabb(layout).tolist(),
        "room_aabb": [layout.room_min.tolist(), layout.room_max.tolist()],
        "frames": frames,
        "train_filenames": names[:num_train],
        "test_filenames": names[num_train:],
        "generator": {
            "name": "lift3d.generate messy_rooms",
            "backend": cfg.backend,
            "num_objects_placed": len(layout.objects),
            "config": cfg_dict,
        },
    }


def lens_keys(cfg: MessyRoomsConfig) -> Dict:
    """nerfstudio's camera keys for the config's lens distortion: ``camera_model`` OPENCV (k1, k2, p1, p2; the
    radial models with the missing coefficients 0) or OPENCV_FISHEYE (k1..k4); nothing for a pinhole camera."""
    lens = cfg.lens_distortion()
    if lens is None:
        return {}
    if lens.is_fisheye:
        return {"camera_model": "OPENCV_FISHEYE", **lens.coefficients()}
    k1, k2, p1, p2 = lens.opencv_coefficients()[:4]
    return {"camera_model": "OPENCV", "k1": k1, "k2": k2, "p1": p1, "p2": p2}


def check_output_folder(out_dir: Path, overwrite: bool) -> None:
    """Refuse to write into a non-empty existing folder unless ``overwrite`` (an empty folder is fine)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(
            f"{out_dir} already exists and is not empty; choose another output folder or pass overwrite=True."
        )


def write_frame(folder: Path, v: int, views: RenderedViews, segments: SegmenterOutputs) -> None:
    """Write the seven PNGs of view ``v`` (RGB, depth, segmenter instance / semantic / confidence, ground-truth
    instance / semantic) under ``folder``, named ``frame_{v:05d}.png`` (see the module docstring for the layout)."""
    name = f"frame_{v:05d}.png"
    iio.imwrite(folder / "images" / name, views.rgb[v])
    iio.imwrite(folder / "depth" / name, depth_to_png(views.depth[v]))
    iio.imwrite(folder / "segments/instance" / name, segments.instance[v].astype(np.uint16))
    iio.imwrite(folder / "segments/semantic" / name, segments.semantic[v].astype(np.uint8))
    conf8 = np.round(np.clip(segments.confidence[v], 0.0, 1.0) * 255.0).astype(np.uint8)
    iio.imwrite(folder / "segments/confidence" / name, conf8)
    iio.imwrite(folder / "gt/instance" / name, views.instance[v].astype(np.uint16))
    iio.imwrite(folder / "gt/semantic" / name, views.semantic[v].astype(np.uint8))


def write_scene(
    out_dir: Path,
    layout: SceneLayout,
    views: RenderedViews,
    segments: SegmenterOutputs,
    cfg: MessyRoomsConfig,
    overwrite: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    num_train: Optional[int] = None,
    extra_files: Optional[Callable[[Path], None]] = None,
) -> Path:
    """Write all frames and ``transforms.json`` atomically to ``out_dir`` (see the module docstring).

    ``num_train`` overrides the split (:func:`transforms_dict`); ``extra_files(folder)`` writes more files into the
    folder before it is renamed into place (the sequence sidecars of ``lift3d.generate.sequence``).

    ``progress(done_frames, num_frames)`` is called after each frame. Returns ``out_dir``. Raises
    ``FileExistsError`` (:func:`check_output_folder`) before writing anything if ``out_dir`` exists, is not empty
    and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite)
    with atomic_folder(out_dir, overwrite=overwrite, subdirs=SUBDIRS) as tmp:
        V = layout.num_views
        for v in range(V):
            write_frame(tmp, v, views, segments)
            if progress is not None:
                progress(v + 1, V)
        if extra_files is not None:
            extra_files(tmp)
        (tmp / "transforms.json").write_text(json.dumps(transforms_dict(layout, cfg, num_train), indent=2))
        (tmp / "layout.json").write_text(json.dumps(layout.to_dict()))
    return out_dir


def write_release_layout(
    out_dir: Path,
    layout: SceneLayout,
    views: RenderedViews,
    segments: SegmenterOutputs,
    cfg: MessyRoomsConfig,
    overwrite: bool = False,
) -> Path:
    """Write the same frames in the released Messy Rooms layout (:mod:`lift3d.data.writers.messy_rooms`):
    ``color/``, ``depth/``, ``semantic/``, ``instance/``, ``detic_semantic/``, ``detic_instance/``,
    ``detic_probabilities/`` and a kubric-style ``metadata.json``. The simulated segmenter's output plays Detic's
    part. ``metadata.json`` also lists the objects as kubric's ``instances`` (asset id, segmentation id = the
    ground-truth instance id, position and (w, x, y, z) quaternion) and the generator config under ``lift3d``.
    """
    from lift3d.data.writers.messy_rooms import write_release
    from lift3d.geometry.cameras import matrix_to_quat_wxyz

    K = layout.intrinsics
    instances = [
        {
            "asset_id": _asset_id(o.asset),
            "segmentation_id": o.instance_id,
            "positions": [o.translation.tolist()],
            "quaternions": [list(matrix_to_quat_wxyz(o.rotation))],
            "size": o.asset.size,
        }
        for o in layout.objects
    ]
    extra = {
        "instances": instances,
        "lift3d_generator": {
            "backend": cfg.backend,
            "config": config_to_dict(cfg),
            "num_objects_placed": len(layout.objects),
        },
    }
    return write_release(
        out_dir,
        rgb=views.rgb,
        depth=views.depth,
        gt_instance=views.instance,
        gt_semantic=views.semantic,
        instance=segments.instance,
        semantic=segments.semantic,
        confidence=segments.confidence,
        camera_to_world=layout.camera_to_world,
        fx=K.fx,
        fy=K.fy,
        cx=K.cx,
        cy=K.cy,
        extra_metadata=extra,
        overwrite=overwrite,
        classes=layout_classes(layout, cfg).to_json(),
    )
