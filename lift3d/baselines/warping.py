r"""Pinhole geometry for the 2D tracking baselines: back-projection, projection, id-map warping, voxel keys.

Camera convention of the scene format (OpenGL axes: x right, y up, the camera looks down -z).
Pixel (u, v) (column, row) has its centre at (u + 0.5, v + 0.5); with intrinsics ``(fx, fy, cx, cy)``
and optical-axis depth ``z > 0``:

.. math::
    p_{cam} = z \,\Bigl[\frac{u + 0.5 - c_x}{f_x},\ -\frac{v + 0.5 - c_y}{f_y},\ -1\Bigr]^\top,
    \qquad X = R\, p_{cam} + t \quad (\text{camera-to-world } [R \mid t]).

Projection is the inverse: :math:`p = R^\top (X - t)`, :math:`z = -p_z`, continuous image coordinates
:math:`(f_x p_x / z + c_x,\ c_y - f_y p_y / z)` whose floor is the pixel (a point at a pixel centre lands on
that pixel). Everything here is numpy float64.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["backproject", "project", "warp_instance_map", "voxel_keys"]

Intrinsics = Sequence[float]
"""``(fx, fy, cx, cy)`` in pixels."""

_VOXEL_BITS = 21
_VOXEL_OFFSET = 1 << (_VOXEL_BITS - 1)


def backproject(depth: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """World points of every pixel of a depth map.

    Args:
        depth: ``[H, W]`` optical-axis depth in metres; pixels that are not finite or ``<= 0`` are invalid.
        c2w: ``[4, 4]`` camera-to-world (OpenGL axes).
        intrinsics: ``(fx, fy, cx, cy)``.

    Returns:
        ``(points [H, W, 3], valid [H, W] bool)``; invalid pixels hold NaN.
    """
    depth = np.asarray(depth, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    h, w = depth.shape
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, np.nan)
    p_cam = np.stack([(u + 0.5 - cx) / fx * z, -(v + 0.5 - cy) / fy * z, -z], axis=-1)  # [H, W, 3]
    points = p_cam @ c2w[:3, :3].T + c2w[:3, 3]
    return points, valid


def project(
    points: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels hit by world points in a camera (inverse of :func:`backproject`).

    Args:
        points: ``[N, 3]`` world points.
        c2w: ``[4, 4]`` camera-to-world of the target camera.
        intrinsics: ``(fx, fy, cx, cy)`` of the target camera.
        height, width: image size of the target camera.

    Returns:
        ``(u [N] int64, v [N] int64, z [N] float64, inside [N] bool)``: column, row, optical-axis depth and
        whether the point is in front of the camera (``z > 0``) and inside the image.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    c2w = np.asarray(c2w, dtype=np.float64)
    fx, fy, cx, cy = (float(x) for x in intrinsics)
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


def warp_instance_map(
    ids: np.ndarray,
    depth: np.ndarray,
    c2w_src: np.ndarray,
    intrinsics_src: Intrinsics,
    c2w_dst: np.ndarray,
    intrinsics_dst: Intrinsics,
    dst_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Forward-warp an id map into another camera with a z-buffer (nearest point wins).

    Every source pixel with valid depth, unsegmented ones (id 0) included, is back-projected and splatted
    onto the one target pixel it projects to; where several land on the same pixel, the one with the
    smallest target depth wins, so an unsegmented surface in front correctly hides a segment behind it.
    Target pixels that receive no point (outside the source view, disocclusions, holes when the target
    sees the surface magnified) are 0.

    Args:
        ids: ``[H, W]`` integer id map of the source view (0 = no segment).
        depth: ``[H, W]`` source depth (metres along the optical axis).
        c2w_src, intrinsics_src: source camera.
        c2w_dst, intrinsics_dst: target camera.
        dst_shape: ``(H', W')`` of the target image; the source shape when None.

    Returns:
        ``[H', W']`` int64 warped id map.
    """
    ids = np.asarray(ids)
    if ids.shape != np.shape(depth):
        raise ValueError(
            f"warp_instance_map: ids {ids.shape} and depth {np.shape(depth)} must have the same shape."
        )
    h2, w2 = ids.shape if dst_shape is None else dst_shape
    points, valid = backproject(depth, c2w_src, intrinsics_src)
    u, v, z, inside = project(points[valid], c2w_dst, intrinsics_dst, h2, w2)
    src_ids = ids[valid].astype(np.int64)[inside]
    flat = v[inside] * w2 + u[inside]
    z = z[inside]
    out = np.zeros(h2 * w2, dtype=np.int64)
    if flat.size:
        order = np.lexsort((z, flat))  # by pixel, nearest first
        first = np.unique(flat[order], return_index=True)[1]
        winners = order[first]
        out[flat[winners]] = src_ids[winners]
    return out.reshape(h2, w2)


def voxel_keys(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Hash world points to int64 voxel keys: ``floor(X / voxel_size)`` per axis, 21 bits each.

    Voxel indices must lie in ``[-2^20, 2^20)`` per axis (about +-21 km at 2 cm voxels).

    Args:
        points: ``[N, 3]`` world points (finite).
        voxel_size: voxel edge in metres (> 0).

    Returns:
        ``[N]`` int64 keys; equal keys <=> same voxel.
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_keys: voxel_size must be > 0, got {voxel_size}.")
    ijk = np.floor(np.asarray(points, dtype=np.float64).reshape(-1, 3) / voxel_size).astype(np.int64)
    if ijk.size and (ijk.min() < -_VOXEL_OFFSET or ijk.max() >= _VOXEL_OFFSET):
        raise ValueError(
            f"voxel_keys: points span voxel indices [{ijk.min()}, {ijk.max()}], beyond +-{_VOXEL_OFFSET} "
            f"at voxel_size={voxel_size}; use a larger voxel_size or recentre the scene."
        )
    ijk = ijk + _VOXEL_OFFSET
    return (ijk[:, 0] << (2 * _VOXEL_BITS)) | (ijk[:, 1] << _VOXEL_BITS) | ijk[:, 2]
