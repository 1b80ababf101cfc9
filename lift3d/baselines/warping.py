"""Id-map warping and voxel keys for the 2D tracking baselines.

Cameras follow the scene format (OpenGL axes: x right, y up, the camera looks down -z; pixel centres at
``(u + 0.5, v + 0.5)``); back-projection and projection are :func:`lift3d.geometry.cameras.backproject` and
:func:`lift3d.geometry.cameras.project`. Everything here is numpy float64.
"""

from __future__ import annotations

import numpy as np

from lift3d.geometry.cameras import IntrinsicsLike, backproject, project

__all__ = ["warp_instance_map", "voxel_keys"]

_VOXEL_BITS = 21
_VOXEL_OFFSET = 1 << (_VOXEL_BITS - 1)


def warp_instance_map(
    ids: np.ndarray,
    depth: np.ndarray,
    c2w_src: np.ndarray,
    intrinsics_src: IntrinsicsLike,
    c2w_dst: np.ndarray,
    intrinsics_dst: IntrinsicsLike,
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
        raise ValueError(f"warp_instance_map: ids {ids.shape} and depth {np.shape(depth)} must have the same shape.")
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
