r"""Exact optical flow of a static scene from depth and camera poses, with an occlusion mask.

Pixel conventions are those of :mod:`lift3d.geometry.cameras` (pixel ``(u, v)`` has its centre at
``(u + 0.5, v + 0.5)``, depth is along the optical axis, OpenGL camera axes). For pixel centre ``p`` of frame
``t`` with depth :math:`z_t(p)`,

.. math::
    X = T_t \bigl[z_t(p)\, K^{-1} p\bigr], \qquad
    (p', z') = \pi\bigl(K, T_{t+1}^{-1} X\bigr), \qquad
    \text{flow}(p) = p' - p,

where :math:`\pi` projects to continuous image coordinates and returns the optical-axis depth :math:`z'` of the
point in camera ``t + 1``. The point is visible in frame ``t + 1`` (``valid``) iff :math:`p'` lies in
``[0, W) x [0, H)``, :math:`z' > 0` and

.. math::
    |z' - \hat z_{t+1}(p')| \le \max(\tau_{abs}, \tau_{rel} z'),

with :math:`\hat z_{t+1}(p')` frame ``t + 1``'s depth at :math:`p'`, interpolated bilinearly in *inverse* depth
between the four nearest pixel centres (inverse depth is affine in the image coordinates on a plane, so the
interpolation is exact on planar surfaces; across a depth edge it mixes the two sides and the test fails, which
marks the pixel occluded). This module is a leaf: numpy only.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from lift3d.geometry.cameras import IntrinsicsLike, _pinhole, backproject

__all__ = ["flow_from_depth", "sample_inverse_depth", "warp_nearest", "warp_bilinear"]


def sample_inverse_depth(depth: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Depth of ``depth`` ``[H, W]`` at continuous image points ``(x, y)`` (any equal shapes; pixel centres at
    ``+0.5``), interpolated bilinearly in inverse depth: :math:`\hat z = 1 / \sum_k w_k / z_k` over the four nearest
    pixel centres (clamped at the border). Returns float64 of the shape of ``x``; 0 where a neighbour has no depth
    (``<= 0`` or not finite)."""
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    gx, gy = np.asarray(x, np.float64) - 0.5, np.asarray(y, np.float64) - 0.5
    x0, y0 = np.floor(gx), np.floor(gy)
    ax, ay = gx - x0, gy - y0
    x0i, y0i = x0.astype(np.int64), y0.astype(np.int64)
    inv = np.zeros_like(gx)
    known = np.ones(gx.shape, dtype=bool)
    for dy, dx, weight in ((0, 0, (1 - ax) * (1 - ay)), (0, 1, ax * (1 - ay)), (1, 0, (1 - ax) * ay), (1, 1, ax * ay)):
        xi = np.clip(x0i + dx, 0, w - 1)
        yi = np.clip(y0i + dy, 0, h - 1)
        z = depth[yi, xi]
        ok = np.isfinite(z) & (z > 0)
        known &= ok | (weight == 0)
        inv += weight * np.where(ok, 1.0 / np.where(ok, z, 1.0), 0.0)
    return np.where(known & (inv > 0), 1.0 / np.where(inv > 0, inv, 1.0), 0.0)


def flow_from_depth(
    depth: np.ndarray,
    camera_to_world: np.ndarray,
    next_camera_to_world: np.ndarray,
    intrinsics: IntrinsicsLike,
    next_depth: Optional[np.ndarray] = None,
    next_intrinsics: Optional[IntrinsicsLike] = None,
    depth_tolerance_relative: float = 0.03,
    depth_tolerance_m: float = 0.01,
) -> Tuple[np.ndarray, np.ndarray]:
    """Forward optical flow from frame ``t`` to frame ``t + 1`` of a static scene, and its visibility mask.

    Args:
        depth: ``[H, W]`` optical-axis depth of frame ``t`` (metres; ``<= 0`` or not finite = unknown).
        camera_to_world: ``[4, 4]`` pose of frame ``t`` (OpenGL axes).
        next_camera_to_world: ``[4, 4]`` pose of frame ``t + 1``.
        intrinsics: pinhole camera of frame ``t`` (:class:`~lift3d.geometry.cameras.Intrinsics` or ``(fx, fy, cx,
            cy)``).
        next_depth: ``[H', W']`` depth of frame ``t + 1`` for the occlusion test; None: only the image bounds and
            ``z' > 0`` decide ``valid`` (and ``H', W' = H, W``).
        next_intrinsics: camera of frame ``t + 1`` (default: ``intrinsics``).
        depth_tolerance_relative, depth_tolerance_m: the tolerances of the occlusion test (module docstring).

    Returns:
        ``(flow float32 [H, W, 2], valid bool [H, W])``: ``flow[v, u] = (du, dv)`` in pixels, i.e. the point seen at
        pixel centre ``(u + 0.5, v + 0.5)`` lands at ``(u + 0.5 + du, v + 0.5 + dv)`` (module docstring for the
        equation); ``valid`` False where the point is occluded in frame ``t + 1``, leaves its image or has no depth
        (flow is 0 where the depth is unknown).
    """
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    next_intrinsics = intrinsics if next_intrinsics is None else next_intrinsics
    fx, fy, cx, cy = _pinhole(next_intrinsics, "flow_from_depth")
    hn, wn = (h, w) if next_depth is None else np.asarray(next_depth).shape
    points, known = backproject(depth, camera_to_world, intrinsics)  # [H, W, 3], [H, W]
    c2w = np.asarray(next_camera_to_world, dtype=np.float64)
    p = (np.nan_to_num(points) - c2w[:3, 3]) @ c2w[:3, :3]  # R^T (X - t), [H, W, 3]
    z = -p[..., 2]
    in_front = known & (z > 0)
    safe_z = np.where(in_front, z, 1.0)
    x_next = fx * p[..., 0] / safe_z + cx
    y_next = cy - fy * p[..., 1] / safe_z
    v, u = np.meshgrid(np.arange(h, dtype=np.float64) + 0.5, np.arange(w, dtype=np.float64) + 0.5, indexing="ij")
    flow = np.stack([x_next - u, y_next - v], axis=-1)
    flow[~in_front] = 0.0
    valid = in_front & (x_next >= 0) & (x_next < wn) & (y_next >= 0) & (y_next < hn)
    if next_depth is not None:
        seen = sample_inverse_depth(next_depth, np.where(valid, x_next, 0.5), np.where(valid, y_next, 0.5))
        tolerance = np.maximum(depth_tolerance_m, depth_tolerance_relative * z)
        valid &= (seen > 0) & (np.abs(z - seen) <= tolerance)
    return flow.astype(np.float32), valid


def warp_nearest(next_image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp ``next_image`` (``[H', W', ...]``) onto frame ``t`` with its forward ``flow`` ``[H, W, 2]``:
    ``out[v, u] = next_image[floor(v + 0.5 + dv), floor(u + 0.5 + du)]`` (nearest pixel, clamped at the border).
    Where ``valid`` is True the result shows frame ``t``'s surface point as frame ``t + 1`` sees it."""
    h, w = flow.shape[:2]
    hn, wn = next_image.shape[:2]
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    col = np.clip(np.floor(u + flow[..., 0]).astype(np.int64), 0, wn - 1)
    row = np.clip(np.floor(v + flow[..., 1]).astype(np.int64), 0, hn - 1)
    return next_image[row, col]


def warp_bilinear(next_image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp ``next_image`` (``[H', W']`` or ``[H', W', C]``, float) onto frame ``t`` with its forward
    ``flow`` ``[H, W, 2]``, bilinearly: ``out[v, u]`` is ``next_image`` sampled at the continuous point
    ``(u + 0.5 + du, v + 0.5 + dv)`` (pixel centres at ``+0.5``; clamped at the border). Returns float64."""
    image = np.asarray(next_image, dtype=np.float64)
    squeeze = image.ndim == 2
    if squeeze:
        image = image[..., None]
    h, w = flow.shape[:2]
    hn, wn = image.shape[:2]
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    x = np.clip(u + flow[..., 0], 0.0, wn - 1.0)  # (u + 0.5 + du) - 0.5: in units of pixel-centre indices
    y = np.clip(v + flow[..., 1], 0.0, hn - 1.0)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, wn - 1), np.minimum(y0 + 1, hn - 1)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    out = (1 - ax) * (1 - ay) * image[y0, x0] + ax * (1 - ay) * image[y0, x1]
    out += (1 - ax) * ay * image[y1, x0] + ax * ay * image[y1, x1]
    return out[..., 0] if squeeze else out
