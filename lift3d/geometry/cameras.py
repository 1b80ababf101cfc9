r"""Pinhole cameras: the one intrinsics type, camera rays, projection / back-projection and quaternions.

Conventions (those of the scene format, ``docs/scene-format.md``):

* camera axes are OpenGL's: x right, y up, the camera looks down -z; ``camera_to_world`` is ``[R | t]``;
* pixel ``(u, v)`` (column, row) has its centre at ``(u + 0.5, v + 0.5)``;
* depth ``z`` is the distance along the optical axis (``z > 0`` in front of the camera).

With intrinsics ``(fx, fy, cx, cy)`` the camera-space direction through a pixel centre, scaled to a unit -z
component, is

.. math::
    d_{cam} = \Bigl[\frac{u + 0.5 - c_x}{f_x},\ -\frac{v + 0.5 - c_y}{f_y},\ -1\Bigr]^\top,
    \qquad X = R\, (z\, d_{cam}) + t,

so the point at optical-axis depth ``z`` is ``o + z d_world``. Projection inverts it:
:math:`p = R^\top (X - t)`, :math:`z = -p_z`, continuous image coordinates
:math:`(f_x p_x / z + c_x,\ c_y - f_y p_y / z)` whose floor is the pixel.

Quaternion helpers carry the component order in their names: ``wxyz`` (kubric, Blender, the Messy Rooms
release) and ``xyzw`` (pybullet, scipy).

This module is a leaf: numpy and torch only (scipy is imported lazily by the matrix -> quaternion helpers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    "Distortion",
    "Intrinsics",
    "IntrinsicsLike",
    "camera_rays",
    "backproject",
    "project",
    "ray_length_per_z",
    "quat_wxyz_to_matrix",
    "quat_xyzw_to_matrix",
    "matrix_to_quat_wxyz",
    "matrix_to_quat_xyzw",
]


# --------------------------------------------------------------------------------------------------------------
# Intrinsics
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distortion:
    """A lens distortion model, kept for readers of real captures (COLMAP ``OPENCV``, ``FISHEYE`` ...).

    No distortion model is supported yet: every function that maps between pixels and rays raises
    :class:`NotImplementedError` for a camera that carries one (undistort the images first).
    """

    model: str
    """Name of the model, e.g. ``"opencv"`` (k1, k2, p1, p2) or ``"fisheye"`` (k1..k4)."""
    params: Tuple[float, ...] = ()
    """The model's coefficients, in the order the model's name implies."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one camera, in pixels. See the module docstring for the conventions."""

    fx: float
    """Focal length along the image columns (pixels)."""
    fy: float
    """Focal length along the image rows (pixels)."""
    cx: float
    """Principal point, column coordinate (pixels; the image spans ``[0, width]``)."""
    cy: float
    """Principal point, row coordinate (pixels; the image spans ``[0, height]``)."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    distortion: Optional[Distortion] = None
    """Lens distortion; None for an ideal pinhole (the only camera supported today)."""

    @property
    def matrix(self) -> np.ndarray:
        """``[3, 3]`` float64 ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (OpenCV's pixel convention)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    def vector(self) -> np.ndarray:
        """``[4]`` float64 ``(fx, fy, cx, cy)``, the layout :func:`camera_rays` takes."""
        return np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)

    def require_pinhole(self, what: str) -> None:
        """Raise :class:`NotImplementedError` naming ``what`` when the camera carries a distortion model."""
        if self.distortion is not None:
            raise NotImplementedError(
                f"{what}: the camera has a '{self.distortion.model}' distortion model, which lift3d does not "
                "support yet; undistort the images (e.g. colmap image_undistorter) and give pinhole intrinsics."
            )


IntrinsicsLike = Union[Intrinsics, Sequence[float]]
"""An :class:`Intrinsics` or a sequence ``(fx, fy, cx, cy)`` in pixels."""


def _pinhole(intrinsics: IntrinsicsLike, what: str) -> Tuple[float, float, float, float]:
    if isinstance(intrinsics, Intrinsics):
        intrinsics.require_pinhole(what)
        return intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    return fx, fy, cx, cy


# --------------------------------------------------------------------------------------------------------------
# Rays, back-projection and projection
# --------------------------------------------------------------------------------------------------------------


def camera_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray origins and directions through pixel centres.

    ``d_cam = [(u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1]``, ``d_world = R d_cam``, ``o = t``.

    Args:
        c2w: ``[N, 4, 4]`` or ``[4, 4]`` camera-to-world (OpenGL axes).
        intrinsics: ``[N, 4]`` or ``[4]`` ``(fx, fy, cx, cy)`` (e.g. :meth:`Intrinsics.vector` as a tensor).
        uv: ``[N, 2]`` integer pixel coordinates (column u, row v).
    Returns:
        origins ``[N, 3]`` and directions ``[N, 3]`` whose camera-space z component is -1, so ``o + t d`` is the
        point at optical-axis depth ``t``.
    """
    uv = uv.to(torch.float32) + 0.5
    if intrinsics.dim() == 1:
        intrinsics = intrinsics.expand(uv.shape[0], 4)
    if c2w.dim() == 2:
        c2w = c2w.expand(uv.shape[0], 4, 4)
    fx, fy, cx, cy = intrinsics.unbind(-1)
    d_cam = torch.stack([(uv[:, 0] - cx) / fx, -(uv[:, 1] - cy) / fy, -torch.ones_like(fx)], dim=-1)
    dirs = torch.einsum("nij,nj->ni", c2w[:, :3, :3], d_cam)
    return c2w[:, :3, 3].clone(), dirs


def backproject(depth: np.ndarray, c2w: np.ndarray, intrinsics: IntrinsicsLike) -> tuple[np.ndarray, np.ndarray]:
    """World points of every pixel centre of a depth map: ``X = R (z d_cam) + t`` (module docstring).

    Args:
        depth: ``[H, W]`` optical-axis depth in metres; pixels that are not finite or ``<= 0`` are invalid.
        c2w: ``[4, 4]`` camera-to-world (OpenGL axes).
        intrinsics: :class:`Intrinsics` (pinhole) or ``(fx, fy, cx, cy)``.

    Returns:
        ``(points [H, W, 3] float64, valid [H, W] bool)``; invalid pixels hold NaN.
    """
    depth = np.asarray(depth, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    fx, fy, cx, cy = _pinhole(intrinsics, "backproject")
    h, w = depth.shape
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, np.nan)
    p_cam = np.stack([(u + 0.5 - cx) / fx * z, -(v + 0.5 - cy) / fy * z, -z], axis=-1)  # [H, W, 3]
    points = p_cam @ c2w[:3, :3].T + c2w[:3, 3]
    return points, valid


def project(
    points: np.ndarray, c2w: np.ndarray, intrinsics: IntrinsicsLike, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels hit by world points in a camera (inverse of :func:`backproject`).

    ``p = R^T (X - t)``, ``z = -p_z``, ``(u, v) = floor(fx p_x / z + cx, cy - fy p_y / z)``.

    Args:
        points: ``[N, 3]`` world points.
        c2w: ``[4, 4]`` camera-to-world of the target camera.
        intrinsics: :class:`Intrinsics` (pinhole) or ``(fx, fy, cx, cy)`` of the target camera.
        height, width: image size of the target camera.

    Returns:
        ``(u [N] int64, v [N] int64, z [N] float64, inside [N] bool)``: column, row, optical-axis depth and
        whether the point is in front of the camera (``z > 0``) and inside the image.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    c2w = np.asarray(c2w, dtype=np.float64)
    fx, fy, cx, cy = _pinhole(intrinsics, "project")
    p = (points - c2w[:3, 3]) @ c2w[:3, :3]  # R^T (X - t), row vectors
    z = -p[:, 2]
    in_front = z > 0
    safe_z = np.where(in_front, z, 1.0)
    uc = fx * p[:, 0] / safe_z + cx
    vc = cy - fy * p[:, 1] / safe_z
    finite = np.isfinite(uc) & np.isfinite(vc)
    u = np.floor(np.where(finite, uc, -1.0)).astype(np.int64)
    v = np.floor(np.where(finite, vc, -1.0)).astype(np.int64)
    inside = in_front & finite & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return u, v, z, inside


def ray_length_per_z(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    """``[H, W]`` factor ``distance / z = || ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1) ||`` of every pixel.

    Multiplying an optical-axis depth map by it gives the distance from the camera centre along each pixel's ray.
    """
    u = (np.arange(width) + 0.5 - cx) / fx
    v = (np.arange(height) + 0.5 - cy) / fy
    return np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)


# --------------------------------------------------------------------------------------------------------------
# Quaternions
# --------------------------------------------------------------------------------------------------------------


def _unit_quaternion_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    """Rotation ``[3, 3]`` of the unit quaternion ``w + x i + y j + z k`` (Hamilton convention)."""
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_wxyz_to_matrix(q: Sequence[float], normalize: bool = True) -> np.ndarray:
    """Quaternion ``(w, x, y, z)`` (kubric / Blender / Messy Rooms order) -> rotation ``[3, 3]`` float64.

    ``normalize`` divides ``q`` by its norm first; pass False for a quaternion that is already unit length.
    """
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q / np.linalg.norm(q) if normalize else q
    return _unit_quaternion_matrix(w, x, y, z)


def quat_xyzw_to_matrix(q: Sequence[float], normalize: bool = True) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` (pybullet / scipy order) -> rotation ``[3, 3]`` float64.

    ``normalize`` divides ``q`` by its norm first; pass False for a quaternion that is already unit length.
    """
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = q / np.linalg.norm(q) if normalize else q
    return _unit_quaternion_matrix(w, x, y, z)


def _matrix_to_xyzw(R: np.ndarray, w_nonnegative: bool) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    if w_nonnegative and q[3] < 0:  # q and -q are the same rotation: pick the one with w >= 0
        q = -q
    return q


def matrix_to_quat_wxyz(R: np.ndarray, w_nonnegative: bool = True) -> Tuple[float, float, float, float]:
    """Rotation ``[3, 3]`` -> unit quaternion ``(w, x, y, z)``; with ``w_nonnegative`` the one of ``+-q`` with
    ``w >= 0`` (else whichever scipy returns)."""
    x, y, z, w = _matrix_to_xyzw(R, w_nonnegative)
    return float(w), float(x), float(y), float(z)


def matrix_to_quat_xyzw(R: np.ndarray, w_nonnegative: bool = True) -> np.ndarray:
    """Rotation ``[3, 3]`` -> unit quaternion ``[4]`` ``(x, y, z, w)``; with ``w_nonnegative`` the one of ``+-q``
    with ``w >= 0`` (else whichever scipy returns)."""
    return _matrix_to_xyzw(R, w_nonnegative)
