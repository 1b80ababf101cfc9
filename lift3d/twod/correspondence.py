r"""Which samples of a camera + LiDAR sequence are positives of each other, and which samples are drawn.

Zhu et al., "Instance Segmentation with Cross-Modal Consistency" (IROS 2022), Sec. III-A: the contrastive loss runs
over the union of samples from every input (the image at ``t``, the image at ``t + 1``, the LiDAR scans), and two
samples are positives when their instance ids agree. This module gives every sample its id:

* **across modalities** (:func:`project_lidar_points`, :func:`pixel_labels_of_points`): a LiDAR point ``p`` (LiDAR
  frame) goes to the camera frame with the rig's ``lidar_to_camera`` transform and then to the pixel it projects to
  with the camera's intrinsics; points behind the camera or outside the image have no pixel, and points hidden from
  the camera (their depth farther than the camera's depth at that pixel) are not paired;
* **across time** (:func:`warp_labels_with_flow`): the labels of frame ``t`` are carried to frame ``t + 1`` by the
  flow (nearest-pixel forward splatting, so ids are never interpolated); pixels occluded at ``t + 1`` (the flow's
  validity mask), pixels that leave the image, target pixels that no source pixel reaches (the "range map" of
  Wang et al., CVPR 2018, is zero there) and target pixels reached by two different ids are invalid (``-1``);
* **within the instance**: plain ground-truth ids.

Sampling (:func:`sample_evenly`) draws ``K`` samples spread evenly over the instances of one input, a fraction of
them (the paper: half) within ``b`` pixels of an instance boundary (:func:`boundary_mask`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from lift3d.geometry import IntrinsicsLike, project

__all__ = [
    "project_lidar_points",
    "pixel_labels_of_points",
    "warp_labels_with_flow",
    "boundary_mask",
    "sample_evenly",
]


def project_lidar_points(
    points_lidar: np.ndarray, lidar_to_camera: np.ndarray, intrinsics: IntrinsicsLike, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The pixel each LiDAR point projects to.

    ``p_cam = T_{lidar→camera} [p; 1]`` (camera axes as in :mod:`lift3d.geometry.cameras`: x right, y up, looking
    down -z), then the pinhole projection ``(u, v) = floor(f_x x / z + c_x, c_y - f_y y / z)`` with ``z = -p_cam,z``.

    Args:
        points_lidar: ``[N, 3]`` points in the LiDAR frame.
        lidar_to_camera: ``[4, 4]`` rigid transform from the LiDAR frame to the camera frame.
        intrinsics: the camera's pinhole intrinsics.
        height, width: image size.

    Returns:
        ``(u [N] int64, v [N] int64, z [N] float64, inside [N] bool)``: column, row, depth along the optical axis,
        and whether the point is in front of the camera and inside the image.
    """
    camera_to_lidar = np.linalg.inv(np.asarray(lidar_to_camera, dtype=np.float64))
    return project(np.asarray(points_lidar, dtype=np.float64), camera_to_lidar, intrinsics, height, width)


def pixel_labels_of_points(
    pixel_labels: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    inside: np.ndarray,
    camera_depth: Optional[np.ndarray] = None,
    depth_tolerance: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Pair projected LiDAR points with pixels: the pixel's flat index and label per point.

    Args:
        pixel_labels: ``[H, W]`` integer labels of the image (``-1`` invalid).
        u, v, z, inside: ``[N]`` each, from :func:`project_lidar_points`.
        camera_depth: optional ``[H, W]`` optical-axis depth of the camera; a point farther than
            ``camera_depth · (1 + depth_tolerance)`` at its pixel is hidden from the camera and left unpaired
            (the two sensors see around an edge differently).
        depth_tolerance: relative depth tolerance of that test.

    Returns:
        ``(pixel [N] int64, label [N] int64)``: the flat pixel index ``v·W + u`` (``-1`` unpaired) and the pixel's
        label (``-1`` unpaired or invalid).
    """
    h, w = pixel_labels.shape
    paired = np.asarray(inside, bool).copy()
    uu, vv = np.where(paired, u, 0), np.where(paired, v, 0)
    if camera_depth is not None:
        d = camera_depth[vv, uu]
        paired &= ~(np.isfinite(d) & (d > 0) & (z > d * (1.0 + depth_tolerance)))
    pixel = np.where(paired, vv * w + uu, -1).astype(np.int64)
    label = np.where(paired, pixel_labels[vv, uu], -1).astype(np.int64)
    return pixel, label


def warp_labels_with_flow(
    labels: torch.Tensor, flow: torch.Tensor, valid: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Carry frame ``t``'s labels to frame ``t + 1`` along the forward flow (Zhu et al. 2022, Sec. III-A).

    Pixel ``(u, v)`` of frame ``t`` (centre ``(u + 0.5, v + 0.5)``) moves to the pixel
    ``(floor(u + 0.5 + f_u), floor(v + 0.5 + f_v))`` of frame ``t + 1`` (nearest resampling: ids are never mixed).

    Args:
        labels: ``[H, W]`` int64 labels of frame ``t`` (``-1`` = invalid, never carried).
        flow: ``[H, W, 2]`` float displacement ``(du, dv)`` in pixels from ``t`` to ``t + 1``.
        valid: ``[H, W]`` bool, False where the source pixel is occluded at ``t + 1`` (or the flow is unknown).

    Returns:
        ``[H, W]`` int64 labels of frame ``t + 1``: ``-1`` where no valid source pixel lands (disoccluded or
        uncovered), or where sources with different labels land on the same pixel.
    """
    h, w = labels.shape
    vs, us = torch.meshgrid(torch.arange(h, device=labels.device), torch.arange(w, device=labels.device), indexing="ij")
    tu = torch.floor(us + 0.5 + flow[..., 0]).long()
    tv = torch.floor(vs + 0.5 + flow[..., 1]).long()
    keep = (labels >= 0) & (tu >= 0) & (tu < w) & (tv >= 0) & (tv < h) & torch.isfinite(flow).all(-1)
    if valid is not None:
        keep &= valid.bool()
    target = (tv * w + tu)[keep]
    source = labels[keep]
    lowest = torch.full((h * w,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=labels.device)
    highest = torch.full((h * w,), -1, dtype=torch.int64, device=labels.device)
    lowest.scatter_reduce_(0, target, source, reduce="amin")
    highest.scatter_reduce_(0, target, source, reduce="amax")
    out = torch.where((highest >= 0) & (lowest == highest), highest, torch.full_like(highest, -1))
    return out.reshape(h, w)


def boundary_mask(labels: torch.Tensor, width: int) -> torch.Tensor:
    """``[H, W]`` bool: pixels with a different label within ``width`` pixels (Chebyshev distance, the window
    ``(2 width + 1)²`` clipped at the image border). ``labels [H, W]`` int; ``width = 0`` gives all False."""
    if width <= 0:
        return torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    x = labels.double()[None, None]
    k = 2 * width + 1
    hi = torch.nn.functional.max_pool2d(x, k, stride=1, padding=width)
    lo = -torch.nn.functional.max_pool2d(-x, k, stride=1, padding=width)
    return (hi != lo)[0, 0]


def sample_evenly(
    labels: torch.Tensor,
    num_samples: int,
    generator: torch.Generator,
    near_boundary: Optional[torch.Tensor] = None,
    boundary_fraction: float = 0.5,
) -> torch.Tensor:
    """Draw about ``num_samples`` positions spread evenly over the instances (Zhu et al. 2022, Sec. III-A, Fig. 3).

    Every valid label (``>= 0``) gets an equal share ``num_samples // n_labels`` (the remainder to randomly
    chosen labels); inside a label, ``round(share · boundary_fraction)`` positions come from those flagged in
    ``near_boundary`` and the rest from the others, each pool topped up from the other when it runs short; an
    instance smaller than its share gives all its positions. No position is drawn twice.

    Args:
        labels: ``[...]`` int labels of any shape (``-1`` invalid); positions are flat indices into it.
        num_samples: ``K``, the samples per input (the paper: 8192 per frame).
        generator: torch generator (CPU) of the draws.
        near_boundary: ``[...]`` bool of the same shape, or None (no boundary preference).
        boundary_fraction: share of each instance's samples taken near the boundary (the paper: 0.5).

    Returns:
        ``[M]`` int64 flat indices, ``M <= num_samples``.
    """
    flat = labels.reshape(-1).cpu()
    ids = torch.unique(flat[flat >= 0])
    if ids.numel() == 0 or num_samples <= 0:
        return torch.zeros(0, dtype=torch.int64)
    share = torch.full((ids.numel(),), num_samples // ids.numel(), dtype=torch.int64)
    extra = torch.randperm(ids.numel(), generator=generator)[: num_samples % ids.numel()]
    share[extra] += 1
    boundary = (
        near_boundary.reshape(-1).cpu() if near_boundary is not None else torch.zeros_like(flat, dtype=torch.bool)
    )
    out = []
    for k, q in zip(ids.tolist(), share.tolist()):
        members = flat == k
        edge = torch.nonzero(members & boundary).flatten()
        inner = torch.nonzero(members & ~boundary).flatten()
        want_edge = int(round(q * boundary_fraction)) if near_boundary is not None else 0
        take_edge = min(len(edge), max(want_edge, q - len(inner)))
        take_inner = min(len(inner), q - take_edge)
        out.append(edge[torch.randperm(len(edge), generator=generator)[:take_edge]])
        out.append(inner[torch.randperm(len(inner), generator=generator)[:take_inner]])
    return torch.cat(out)
