"""Cameras between viser (OpenCV axes: x right, y down, z forward) and lift3d (OpenGL axes: x right, y up, looking
down -z; docs/CONVENTIONS-dev.md)."""

from __future__ import annotations

import math

import numpy as np

from lift3d.geometry.cameras import matrix_to_quat_wxyz, quat_wxyz_to_matrix

_FLIP = np.diag([1.0, -1.0, -1.0])
"""OpenCV camera axes -> OpenGL camera axes (and back): y and z change sign."""


def viser_to_c2w(wxyz, position) -> np.ndarray:
    """viser camera pose (quaternion ``wxyz`` of R_world_cam in OpenCV axes, ``position`` [3]) -> [4, 4] OpenGL
    camera-to-world ``[[R_cv diag(1, -1, -1), t], [0, 1]]``."""
    c2w = np.eye(4)
    c2w[:3, :3] = quat_wxyz_to_matrix(np.asarray(wxyz, np.float64)) @ _FLIP
    c2w[:3, 3] = np.asarray(position, np.float64)
    return c2w


def c2w_to_viser(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`viser_to_c2w`: [4, 4] OpenGL camera-to-world -> (wxyz [4], position [3])."""
    c2w = np.asarray(c2w, np.float64)
    return np.asarray(matrix_to_quat_wxyz(c2w[:3, :3] @ _FLIP)), c2w[:3, 3].copy()


def pinhole_from_fov(fov_y: float, width: int, height: int) -> tuple[float, float, float, float]:
    """Square-pixel pinhole of a ``width`` x ``height`` image with vertical field of view ``fov_y`` (radians):
    ``fy = fx = (height / 2) / tan(fov_y / 2)``, principal point at the image centre."""
    f = 0.5 * height / math.tan(0.5 * fov_y)
    return f, f, 0.5 * width, 0.5 * height


def render_size(aspect: float, height: int) -> tuple[int, int]:
    """(width, height) of a render ``height`` pixels high with the client's ``aspect`` (width / height)."""
    return max(1, int(round(aspect * height))), int(height)
