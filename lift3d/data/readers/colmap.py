r"""Reader of a COLMAP sparse model (``sparse/0``, binary or text, read with pycolmap) and its image folder.

Recognised paths: a project folder holding ``sparse/0/`` (or ``sparse/`` itself, or nerfstudio's
``colmap/sparse/0/``) with ``cameras``, ``images`` and ``points3D`` as ``.bin`` or ``.txt``, or such a model folder
itself. The images are found in ``images/`` of the project folder (for a model folder: of the folder two or three
levels up). A folder that also holds a ``transforms.json`` is read by the ``transforms_json`` reader instead.

Poses. COLMAP stores, per image, ``cam_from_world = [R | t]`` mapping world points into OpenCV camera axes (x
right, y down, z forward): :math:`p = R X + t`. lift3d's camera-to-world in OpenGL axes (x right, y up, looking down
-z) is

.. math::
    T_{c2w} = \begin{bmatrix} R^\top & -R^\top t \\ 0 & 1 \end{bmatrix}
              \operatorname{diag}(1, -1, -1, 1),

so a point projects to the same pixel :math:`u = f_x p_x / p_z + c_x`, :math:`v = f_y p_y / p_z + c_y` (COLMAP and
lift3d both put the centre of the top-left pixel at (0.5, 0.5)). The world frame is COLMAP's (not re-oriented).

Intrinsics and lens distortion come from the COLMAP camera model (:func:`lift3d.data.readers.common.colmap_camera`;
unsupported models are refused). The SfM points are recorded for automatic bounds: ``scene.extras
['sfm_points_path']`` names the model folder and :func:`read_sfm_points` returns them as ``[N, 3]``.

A COLMAP project has no 2D segments: the scene loads with ``has_segments`` False (``lift3d fit`` then says how to
add them). Frames: registered images sorted by name; every 8th (7, 15, ...) is a test frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from lift3d.data.readers.common import colmap_camera
from lift3d.data.readers.registry import SceneReader
from lift3d.data.scene import (
    Frame,
    Scene,
    SceneClass,
    SceneFormatError,
    check_frame_files,
    check_frames,
    renumber_frames,
)

__all__ = ["READER", "can_read", "find_model_folder", "load_colmap", "read_sfm_points", "colmap_to_opengl_c2w"]

TEST_EVERY = 8
"""Every 8th registered image (7, 15, 23, ...) is a test frame."""
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplied onto an OpenCV-axes camera-to-world, gives the OpenGL-axes one (flip y and z)."""


def _is_model_folder(path: Path) -> bool:
    return any((path / f"cameras{ext}").is_file() for ext in (".bin", ".txt")) and any(
        (path / f"images{ext}").is_file() for ext in (".bin", ".txt")
    )


def find_model_folder(path: Path) -> Optional[Path]:
    """The COLMAP model folder of ``path``: ``path`` itself, ``path/sparse/0``, ``path/sparse`` or
    ``path/colmap/sparse/0``, the first that holds ``cameras`` and ``images`` (``.bin`` or ``.txt``); else None."""
    path = Path(path)
    for candidate in (path, path / "sparse" / "0", path / "sparse", path / "colmap" / "sparse" / "0"):
        if candidate.is_dir() and _is_model_folder(candidate):
            return candidate
    return None


def can_read(path: Path) -> bool:
    """True for a folder (without ``transforms.json``) whose :func:`find_model_folder` finds a model."""
    path = Path(path)
    return path.is_dir() and not (path / "transforms.json").exists() and find_model_folder(path) is not None


def _images_folder(path: Path, model: Path) -> Path:
    candidates = [path / "images", model.parent / "images", model.parent.parent / "images"]
    candidates.append(model.parent.parent.parent / "images")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise SceneFormatError(
        f"{model}: a COLMAP model, but no images folder was found (looked in "
        f"{', '.join(str(c) for c in candidates[:3])}); put the images the model was made from in {path / 'images'}."
    )


def _read_reconstruction(model: Path):
    try:
        import pycolmap
    except ImportError:
        raise SceneFormatError(
            f"{model}: reading a COLMAP model needs pycolmap; install it with `pip install 'lift3d[colmap]'` "
            "(or `pip install pycolmap`)."
        ) from None
    try:
        return pycolmap.Reconstruction(str(model))
    except Exception as err:  # pycolmap raises plain RuntimeError / ValueError on damaged files
        raise SceneFormatError(
            f"{model}: the COLMAP model cannot be read ({type(err).__name__}: {str(err)[:200]}); write it again "
            "(`colmap model_converter --output_type BIN`)."
        ) from None


def colmap_to_opengl_c2w(cam_from_world: np.ndarray) -> np.ndarray:
    """``[4, 4]`` OpenGL-axes camera-to-world of a COLMAP ``[3, 4]`` (or ``[4, 4]``) world-to-camera ``[R | t]``
    in OpenCV axes (module docstring)."""
    rt = np.asarray(cam_from_world, dtype=np.float64)[:3]
    rotation, translation = rt[:, :3], rt[:, 3]
    c2w = np.eye(4)
    c2w[:3, :3] = rotation.T
    c2w[:3, 3] = -rotation.T @ translation
    return c2w @ OPENCV_TO_OPENGL


def _cam_from_world_matrix(image) -> np.ndarray:
    pose = image.cam_from_world
    pose = pose() if callable(pose) else pose  # a method since pycolmap 3.12, a property before
    return np.asarray(pose.matrix(), dtype=np.float64)


def read_sfm_points(model: Path) -> np.ndarray:
    """The SfM points of the COLMAP model folder ``model``: ``[N, 3]`` float64 world coordinates (COLMAP's frame,
    the frame of the scene's poses)."""
    rec = _read_reconstruction(Path(model))
    if not rec.points3D:
        return np.zeros((0, 3))
    return np.stack([np.asarray(p.xyz, dtype=np.float64) for p in rec.points3D.values()])


def load_colmap(path: str | Path, check_files: bool = True, skip_bad_frames: bool = False) -> Scene:
    """Read a COLMAP project or model folder (module docstring) as a :class:`~lift3d.data.scene.Scene` without
    segments. Errors (a model pycolmap cannot read, an unsupported camera model, a missing or damaged image, an
    image whose size is not its camera's) raise :class:`SceneFormatError` naming the file and the image;
    ``skip_bad_frames`` drops images that cannot be read instead (``extras['skipped_frames']``)."""
    path = Path(path)
    model = find_model_folder(path)
    if model is None:
        raise SceneFormatError(f"{path}: no COLMAP model (cameras/images .bin or .txt) in it or in sparse/0.")
    images_dir = _images_folder(path, model)
    rec = _read_reconstruction(model)
    registered = sorted((im for im in rec.images.values() if im.has_pose), key=lambda im: im.name)
    if not registered:
        raise SceneFormatError(f"{model}: the model has no registered image; run COLMAP's mapper again.")
    frames: List[Frame] = []
    for i, image in enumerate(registered):
        camera = rec.cameras[image.camera_id]
        where = f"{model}, image {image.image_id} ({image.name})"
        fx, fy, cx, cy, distortion = colmap_camera(camera.model.name, list(camera.params), where)
        frames.append(
            Frame(
                index=i,
                name=f"{images_dir.name}/{image.name}",
                image_path=images_dir / image.name,
                instance_path=None,
                semantic_path=None,
                confidence_path=None,
                depth_path=None,
                gt_instance_path=None,
                gt_semantic_path=None,
                camera_to_world=colmap_to_opengl_c2w(_cam_from_world_matrix(image)),
                fx=fx,
                fy=fy,
                cx=cx,
                cy=cy,
                width=int(camera.width),
                height=int(camera.height),
                distortion=distortion,
            )
        )
    skipped: List[dict] = []
    if check_files:
        frames, skipped = check_frames(
            frames,
            lambda f: f"{model}, frame {f.index} ({f.name})",
            lambda f: check_frame_files(f, f"{model}, frame {f.index} ({f.name})"),
            skip_bad_frames,
        )
    test = [f.index for f in frames if f.index % TEST_EVERY == TEST_EVERY - 1]
    train = [f.index for f in frames if f.index % TEST_EVERY != TEST_EVERY - 1]
    frames, train, test = renumber_frames(frames, train, test)
    extras = {
        "format": "colmap",
        "scene_file": str(model),
        "sfm_points_path": str(model),
        "num_sfm_points": len(rec.points3D),
        "depth_density": 0.0,
        "camera_models": sorted({f.distortion.model if f.distortion else "pinhole" for f in frames}),
    }
    if skipped:
        extras["skipped_frames"] = skipped
    return Scene(
        root=path,
        frames=frames,
        classes=[SceneClass(0, "background", False), SceneClass(1, "object", True)],
        train_indices=train,
        test_indices=test,
        extras=extras,
    )


READER = SceneReader(
    name="colmap",
    description="a COLMAP project (sparse/0 with cameras/images/points3D .bin or .txt, and images/) or model folder",
    can_read=can_read,
    load=load_colmap,
)
