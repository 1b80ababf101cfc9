"""The released Messy Rooms layout (Contrastive Lift, Bhalgat et al. 2023): constants and the camera record.

Shared by the reader (:mod:`lift3d.data.readers.messy_rooms`) and the writer
(:mod:`lift3d.data.writers.messy_rooms`). A release folder (see ``docs/messy-rooms-format.md`` for every
assumption)::

    metadata.json                 kubric-style: "metadata" (resolution, num_frames), "camera" (normalised K,
                                  positions, (w, x, y, z) quaternions of a Blender camera, focal_length, ...)
    color/00000.png               RGB (or RGBA), 8-bit; frames are the numeric stems of color/*.png, sorted
    depth/00000.png               16-bit millimetres
    semantic/00000.npy            ground-truth classes (0 background, 1 object), integer [H, W]
    instance/00000.npy            ground-truth instance ids, consistent across frames, integer [H, W]
    detic_semantic/00000.npy      the 2D segmenter's (Detic's) classes
    detic_instance/00000.npy      the 2D segmenter's instance ids (arbitrary per frame)
    detic_probabilities/00000.npy the 2D segmenter's per-pixel confidence, float [H, W]
    invalid/00000.jpg             (optional) non-zero where a pixel is to be ignored

Cameras (the Contrastive Lift reference loader): ``K_pixels = diag(W, H, 1) @ K`` then absolute values, so
``fx = |K00| W, cx = |K02| W, fy = |K11| H, cy = |K12| H``; the camera-to-world of frame ``i`` is
``[R(q_i) | p_i]`` with ``q_i = (w, x, y, z)``: a Blender camera (looks down -z, y up), which *is* lift3d's
OpenGL ``transform_matrix``; ``[R | p] @ diag(1, -1, -1, 1)`` is the OpenCV camera-to-world.
"""

from __future__ import annotations

import math
from typing import Dict, Literal, Tuple

import numpy as np

from lift3d.data.scene import SceneFormatError
from lift3d.geometry.cameras import matrix_to_quat_wxyz, quat_wxyz_to_matrix

__all__ = [
    "RELEASE_DIRS",
    "TEST_FRACTION",
    "SENSOR_WIDTH_MM",
    "DepthKind",
    "DEFAULT_RELEASE_DEPTH",
    "CLASSES",
    "read_release_cameras",
    "release_camera_metadata",
]

RELEASE_DIRS = ("color", "depth", "semantic", "instance", "detic_semantic", "detic_instance", "detic_probabilities")
TEST_FRACTION = 0.2
"""The reference holds out the last 20 % of the frames sorted by number."""
SENSOR_WIDTH_MM = 36.0
"""Sensor width written to ``metadata.json`` (kubric's default); only the ratio focal_length / sensor_width matters."""
DepthKind = Literal["distance", "z"]
"""``distance``: metres from the camera centre along the pixel's ray (kubric's ``depth`` layer);
``z``: metres along the optical axis (kubric's ``z`` layer, lift3d's convention)."""
DEFAULT_RELEASE_DEPTH: DepthKind = "distance"
"""Assumed for a release whose metadata.json does not say (``lift3d.depth``): kubric's ``depth`` layer. Override
with the environment variable ``LIFT3D_RELEASE_DEPTH`` (``distance``, ``z`` or ``none`` to ignore depth)."""
CLASSES = [{"id": 0, "name": "background", "thing": False}, {"id": 1, "name": "object", "thing": True}]
"""Classes of a release whose metadata.json lists none: background (stuff) and one thing class."""


def release_camera_metadata(
    camera_to_world: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int, height: int
) -> Dict:
    """The kubric-style ``camera`` record: normalised ``K``, per-frame ``positions`` and ``(w, x, y, z)``
    ``quaternions`` of the Blender camera (= the OpenGL camera-to-world ``[V, 4, 4]``), ``focal_length`` (mm),
    ``sensor_width`` (mm) and the horizontal ``field_of_view`` (radians).

    ``K = [[fx/W, 0, -cx/W], [0, -fy/H, -cy/H], [0, 0, -1]]`` (kubric's sign convention: a camera looking down
    -z with y up); the reference loader takes absolute values after scaling rows by W and H. Quaternions have
    ``w >= 0``.
    """
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    K = [[fx / width, 0.0, -cx / width], [0.0, -fy / height, -cy / height], [0.0, 0.0, -1.0]]
    return {
        "K": K,
        "focal_length": fx * SENSOR_WIDTH_MM / width,
        "sensor_width": SENSOR_WIDTH_MM,
        "field_of_view": 2.0 * math.atan2(width / 2.0, fx),
        "positions": c2w[:, :3, 3].tolist(),
        "quaternions": [list(matrix_to_quat_wxyz(m[:3, :3])) for m in c2w],
    }


def read_release_cameras(
    meta: Dict, width: int, height: int, where: str = "metadata.json"
) -> Tuple[Tuple[float, float, float, float], np.ndarray]:
    """``((fx, fy, cx, cy), camera_to_world [V, 4, 4])`` from a release's ``metadata.json`` dict.

    Intrinsics: ``K_pixels = |diag(W, H, 1) @ K|`` (the reference loader's rule). Poses: ``[R(q) | p]`` of the
    Blender camera, i.e. OpenGL axes as lift3d's ``transform_matrix``.
    """
    try:
        cam = meta["camera"]
        K = np.abs(np.asarray(cam["K"], dtype=np.float64) * np.array([[width], [height], [1.0]]))
        positions = np.asarray(cam["positions"], dtype=np.float64)
        quats = np.asarray(cam["quaternions"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise SceneFormatError(
            f"{where}: expected camera.K (3x3), camera.positions [N, 3] and camera.quaternions "
            f"[N, 4] (w, x, y, z) as kubric writes them ({type(err).__name__}: {err})."
        ) from None
    if K.shape != (3, 3) or positions.ndim != 2 or positions.shape[1] != 3 or quats.shape != (len(positions), 4):
        raise SceneFormatError(
            f"{where}: camera.K must be 3x3, camera.positions [N, 3] and camera.quaternions "
            f"[N, 4]; got {K.shape}, {positions.shape}, {quats.shape}."
        )
    if not (np.isfinite(K).all() and np.isfinite(positions).all() and np.isfinite(quats).all()):
        raise SceneFormatError(f"{where}: camera values must be finite.")
    if (np.linalg.norm(quats, axis=1) < 1e-8).any():
        raise SceneFormatError(f"{where}: camera.quaternions holds a zero quaternion.")
    c2w = np.tile(np.eye(4), (len(positions), 1, 1))
    for i, (p, q) in enumerate(zip(positions, quats)):
        c2w[i, :3, :3] = quat_wxyz_to_matrix(q)
        c2w[i, :3, 3] = p
    return (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])), c2w
