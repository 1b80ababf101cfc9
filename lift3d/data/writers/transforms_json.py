"""Write any loaded :class:`~lift3d.data.scene.Scene` as a nerfstudio ``transforms.json`` (lift3d's scene format).

Used to give a scene read by another reader (a COLMAP project) the file that ``lift3d segments import`` and
``lift3d segments predict`` point at the new segment maps: the frames keep their files (paths are written relative
to the folder of the new file), poses, per-frame intrinsics and lens model (``camera_model`` and coefficients, the
inverse of the reader's mapping in ``docs/scene-format.md``), split, classes, depth, masks and segments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

from lift3d.data.scene import Frame, Scene
from lift3d.geometry.cameras import Distortion
from lift3d.io import atomic_write_json

__all__ = ["scene_to_transforms", "write_transforms_json", "CAMERA_MODEL_KEYS"]

CAMERA_MODEL_KEYS = {
    "opencv": ("OPENCV", ("k1", "k2", "p1", "p2")),
    "full_opencv": ("FULL_OPENCV", ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
    "opencv_fisheye": ("OPENCV_FISHEYE", ("k1", "k2", "k3", "k4")),
    "simple_radial": ("SIMPLE_RADIAL", ("k1",)),
    "radial": ("RADIAL", ("k1", "k2")),
}
"""``Distortion.model`` -> (nerfstudio ``camera_model``, the keys its ``params`` are written to, in order)."""


def _camera_keys(distortion: Optional[Distortion]) -> Dict:
    if distortion is None:
        return {"camera_model": "PINHOLE"}
    name, keys = CAMERA_MODEL_KEYS[distortion.model]
    return {"camera_model": name, **{k: float(v) for k, v in zip(keys, distortion.params)}}


def _relative(path: Optional[Path], root: Path) -> Optional[str]:
    return None if path is None else Path(os.path.relpath(path, root)).as_posix()


def _frame_entry(f: Frame, root: Path) -> Dict:
    entry = {
        "file_path": _relative(f.image_path, root),
        "transform_matrix": f.camera_to_world.tolist(),
        "fl_x": f.fx,
        "fl_y": f.fy,
        "cx": f.cx,
        "cy": f.cy,
        "w": f.width,
        "h": f.height,
        **_camera_keys(f.distortion),
    }
    for key, path in (
        ("instance_file_path", f.instance_path),
        ("semantic_file_path", f.semantic_path),
        ("confidence_file_path", f.confidence_path),
        ("depth_file_path", f.depth_path),
        ("gt_instance_file_path", f.gt_instance_path),
        ("gt_semantic_file_path", f.gt_semantic_path),
        ("mask_path", f.mask_path),
    ):
        if path is not None:
            entry[key] = _relative(path, root)
    return entry


def scene_to_transforms(scene: Scene, root: Path) -> Dict:
    """The ``transforms.json`` dict of ``scene`` for a file in folder ``root`` (paths relative to it)."""
    root = Path(root)
    frames = [_frame_entry(f, root) for f in scene.frames]
    meta: Dict = {
        "classes": [{"id": c.id, "name": c.name, "thing": c.thing} for c in scene.classes],
        "depth_unit_scale_factor": scene.depth_unit_scale_factor,
        "frames": frames,
        "train_filenames": [frames[i]["file_path"] for i in scene.train_indices],
        "test_filenames": [frames[i]["file_path"] for i in scene.test_indices],
        "lift3d_source": {"format": scene.extras.get("format"), "path": str(scene.extras.get("scene_file", root))},
    }
    if scene.aabb is not None:
        meta["aabb"] = scene.aabb.tolist()
    if scene.extras.get("sfm_points_path") and scene.extras.get("format") == "colmap":
        meta["lift3d_sfm_model"] = _relative(Path(scene.extras["sfm_points_path"]), root)
    return meta


def write_transforms_json(scene: Scene, path: Path) -> Path:
    """Write ``scene`` as the ``transforms.json`` at ``path`` (atomically). Returns ``path``."""
    path = Path(path)
    return atomic_write_json(path, scene_to_transforms(scene, path.parent))
