r"""2D tracking baselines of Contrastive Lift Table 4: make a 2D segmenter's per-view instance ids consistent.

A 2D instance segmenter labels every view independently, so the same object carries unrelated ids in
different views. Contrastive Lift compares lifting against three ways of tracking the 2D segments through the
sequence (frames in the given order), all by Hungarian matching (``scipy.optimize.linear_sum_assignment``):

1. :func:`track_by_iou`: mask IoU between consecutive frames.
2. :func:`track_by_depth_warping`: the previous frame's tracked masks are warped into the current view
   with ground-truth depth and poses, then IoU as in 1.
3. :func:`track_by_point_cloud_fusion`: segments are back-projected and fused into a global voxel map;
   a new segment is matched to the global id whose voxels it overlaps most, so an object that leaves the
   view and comes back keeps its id.

Shared conventions. Input: a list of ``[H, W]`` integer maps (0 = no segment, other ids arbitrary per
frame). Output: a list of ``[H, W]`` int64 maps with the same segments (a segment is never split or
merged) and global ids ``1, 2, ...``; 0 stays 0. Global ids are given in order of first appearance, and
within a frame new ids go to unmatched segments in increasing order of their input id, so frame 0 is
relabelled ``1..n`` by increasing input id. A matched pair must reach the threshold; Hungarian matching
keeps matches one-to-one within a frame, so two segments of one frame never share a global id.
Cameras follow the scene format (see :mod:`lift3d.geometry.cameras`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from lift3d.geometry.cameras import Intrinsics, IntrinsicsLike, backproject

from .warping import voxel_keys, warp_instance_map

__all__ = ["track_by_iou", "track_by_depth_warping", "track_by_point_cloud_fusion", "mask_overlaps"]


def mask_overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel overlaps between the segments of two id maps of the same shape (id 0 ignored).

    Returns:
        ``(ids_a [A], ids_b [B], intersection [A, B], area_a [A], area_b [B])`` with ids sorted increasing;
        IoU is ``intersection / (area_a[:, None] + area_b[None, :] - intersection)``.
    """
    a = np.asarray(a).ravel().astype(np.int64)
    b = np.asarray(b).ravel().astype(np.int64)
    ids_a, inv_a, area_a = np.unique(a, return_inverse=True, return_counts=True)
    ids_b, inv_b, area_b = np.unique(b, return_inverse=True, return_counts=True)
    inter = np.bincount(inv_a * ids_b.size + inv_b, minlength=ids_a.size * ids_b.size).reshape(ids_a.size, ids_b.size)
    ka, kb = ids_a > 0, ids_b > 0
    return ids_a[ka], ids_b[kb], inter[np.ix_(ka, kb)], area_a[ka], area_b[kb]


def _iou(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids_a, ids_b, IoU [A, B])`` between the segments of two id maps."""
    ids_a, ids_b, inter, area_a, area_b = mask_overlaps(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return ids_a, ids_b, inter / np.maximum(union, 1)


def _hungarian(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one pairs ``(row, col)`` maximising the total score, keeping those with ``score >= threshold``.

    Pairs with zero score are never kept, even with ``threshold = 0``.
    """
    if score.size == 0:
        return []
    rows, cols = linear_sum_assignment(score, maximize=True)
    keep = (score[rows, cols] >= threshold) & (score[rows, cols] > 0)
    return list(zip(rows[keep].tolist(), cols[keep].tolist()))


def _relabel(frame: np.ndarray, local_to_global: dict[int, int], next_id: int) -> tuple[np.ndarray, int]:
    """Map a frame's input ids to global ids; unmatched ids get ``next_id, next_id + 1, ...`` in increasing order.

    ``local_to_global`` is completed in place with the new ids; returns ``(tracked map, next free id)``.
    """
    frame = np.asarray(frame).astype(np.int64)
    local_ids, inverse = np.unique(frame, return_inverse=True)
    mapped = np.zeros(local_ids.size, dtype=np.int64)
    for k, lid in enumerate(local_ids.tolist()):
        if lid == 0:
            continue
        if lid not in local_to_global:
            local_to_global[lid] = next_id
            next_id += 1
        mapped[k] = local_to_global[lid]
    return mapped[inverse].reshape(frame.shape), next_id


def _check_maps(name: str, instance_maps: Sequence[np.ndarray]) -> list[np.ndarray]:
    maps = [np.asarray(m) for m in instance_maps]
    for t, m in enumerate(maps):
        if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
            raise ValueError(
                f"{name}: frame {t}: expected an [H, W] integer instance map, got shape {m.shape} dtype "
                f"{m.dtype}; pass the 2D segmenter's id maps (0 = no segment)."
            )
        if m.size and m.min() < 0:
            raise ValueError(f"{name}: frame {t}: negative instance ids; ids must be >= 0 (0 = no segment).")
    return maps


def _intrinsics_array(name: str, intrinsics: IntrinsicsLike | Sequence[IntrinsicsLike]) -> np.ndarray:
    """``[4]`` or ``[T, 4]`` float64 ``(fx, fy, cx, cy)`` from :class:`Intrinsics` objects or 4-tuples."""

    def vector(x):
        if isinstance(x, Intrinsics):
            x.require_pinhole(name)
            return x.vector()
        return x

    if isinstance(intrinsics, Intrinsics):
        return vector(intrinsics)
    return np.asarray([vector(x) for x in intrinsics], dtype=np.float64)


def _check_geometry(
    name: str,
    maps: list[np.ndarray],
    depths: Sequence[np.ndarray],
    camera_to_world: Sequence[np.ndarray],
    intrinsics: IntrinsicsLike | Sequence[IntrinsicsLike],
) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[float, float, float, float]]]:
    n = len(maps)
    depths = [np.asarray(d, dtype=np.float64) for d in depths]
    c2w = [np.asarray(c, dtype=np.float64) for c in camera_to_world]
    intr = _intrinsics_array(name, intrinsics)
    if intr.shape == (4,):
        intr = np.broadcast_to(intr, (n, 4))
    if len(depths) != n or len(c2w) != n or intr.shape != (n, 4):
        raise ValueError(
            f"{name}: {n} instance maps but {len(depths)} depth maps, {len(c2w)} poses and intrinsics of shape "
            f"{intr.shape}; pass one depth map, one [4, 4] camera-to-world and one (fx, fy, cx, cy) per frame "
            f"(or a single (fx, fy, cx, cy) shared by all)."
        )
    for t in range(n):
        if depths[t].shape != maps[t].shape:
            raise ValueError(
                f"{name}: frame {t}: depth {depths[t].shape} and instance map {maps[t].shape} differ in size."
            )
        if c2w[t].shape != (4, 4):
            raise ValueError(f"{name}: frame {t}: camera_to_world must be [4, 4], got {c2w[t].shape}.")
    return depths, c2w, [tuple(float(x) for x in row) for row in intr]


def track_by_iou(instance_maps: Sequence[np.ndarray], iou_threshold: float = 0.5) -> list[np.ndarray]:
    r"""Tracking method (1) of Contrastive Lift Table 4: Hungarian matching on consecutive-frame mask IoU.

    For frame ``t >= 1``, with the tracked (global-id) map of frame ``t - 1`` and the input map of frame ``t``:
    :math:`\mathrm{IoU}_{gm} = |G_g \cap M_m| / |G_g \cup M_m|`; the assignment maximising :math:`\sum`IoU
    is computed and a current segment ``m`` inherits global id ``g`` iff
    :math:`\mathrm{IoU}_{gm} \ge` ``iou_threshold``; otherwise it gets a new global id. Only the previous
    frame is looked at: an object missing from one frame comes back with a new id.

    Args:
        instance_maps: ``T`` maps ``[H, W]`` (integer, 0 = no segment), all the same size.
        iou_threshold: minimum IoU for a match.

    Returns:
        ``T`` int64 maps ``[H, W]`` with global ids (see the module docstring).
    """
    maps = _check_maps("track_by_iou", instance_maps)
    out: list[np.ndarray] = []
    next_id = 1
    for t, frame in enumerate(maps):
        local_to_global: dict[int, int] = {}
        if t > 0:
            if frame.shape != maps[t - 1].shape:
                raise ValueError(
                    f"track_by_iou: frame {t} is {frame.shape} but frame {t - 1} is {maps[t - 1].shape}; "
                    f"IoU tracking needs equal sizes (use track_by_depth_warping across cameras of any size)."
                )
            prev_ids, cur_ids, iou = _iou(out[-1], frame)
            for i, j in _hungarian(iou, iou_threshold):
                local_to_global[int(cur_ids[j])] = int(prev_ids[i])
        tracked, next_id = _relabel(frame, local_to_global, next_id)
        out.append(tracked)
    return out


def track_by_depth_warping(
    instance_maps: Sequence[np.ndarray],
    depths: Sequence[np.ndarray],
    camera_to_world: Sequence[np.ndarray],
    intrinsics: IntrinsicsLike | Sequence[IntrinsicsLike],
    iou_threshold: float = 0.5,
) -> list[np.ndarray]:
    r"""Tracking method (2) of Contrastive Lift Table 4: IoU after depth-aware pose warping.

    For frame ``t >= 1`` the tracked map of frame ``t - 1`` is forward-warped into camera ``t`` with frame
    ``t - 1``'s depth and both poses (:func:`~lift3d.baselines.warping.warp_instance_map`: back-project,
    project, z-buffer so the nearest point wins, unfilled pixels 0). Then as :func:`track_by_iou`, with
    the IoU between the warped previous masks and the current masks.

    Args:
        instance_maps: ``T`` maps ``[H_t, W_t]`` (integer, 0 = no segment).
        depths: ``T`` depth maps ``[H_t, W_t]``, metres along the optical axis (invalid: ``<= 0`` or NaN).
        camera_to_world: ``T`` poses ``[4, 4]``, OpenGL axes (x right, y up, looking down -z).
        intrinsics: ``T`` tuples ``(fx, fy, cx, cy)``, or one tuple for all frames.
        iou_threshold: minimum IoU for a match.

    Returns:
        ``T`` int64 maps with global ids.
    """
    name = "track_by_depth_warping"
    maps = _check_maps(name, instance_maps)
    depths, c2w, intr = _check_geometry(name, maps, depths, camera_to_world, intrinsics)
    out: list[np.ndarray] = []
    next_id = 1
    for t, frame in enumerate(maps):
        local_to_global: dict[int, int] = {}
        if t > 0:
            warped = warp_instance_map(out[-1], depths[t - 1], c2w[t - 1], intr[t - 1], c2w[t], intr[t], frame.shape)
            prev_ids, cur_ids, iou = _iou(warped, frame)
            for i, j in _hungarian(iou, iou_threshold):
                local_to_global[int(cur_ids[j])] = int(prev_ids[i])
        tracked, next_id = _relabel(frame, local_to_global, next_id)
        out.append(tracked)
    return out


def _sum_by_pair(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct pairs ``(a, b)`` sorted by ``(a, b)`` with the summed ``weights`` of each pair (all int64)."""
    order = np.lexsort((b, a))
    a, b, weights = a[order], b[order], weights[order]
    if a.size == 0:
        return a, b, weights
    start = np.flatnonzero(np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])])
    return a[start], b[start], np.add.reduceat(weights, start)


class _VoxelIdMap:
    """Global voxel map: how many times each (voxel, global id) pair was observed.

    Stored as three aligned int64 arrays sorted by (key, id): ``keys``, ``ids``, ``counts``. A voxel's
    label is its most observed id (ties: the smaller id); the labels are refreshed after every :meth:`add`.
    """

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.ids = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        self._label_keys = np.zeros(0, dtype=np.int64)
        self._labels = np.zeros(0, dtype=np.int64)

    def labels(self, keys: np.ndarray) -> np.ndarray:
        """Majority global id of each voxel key ``[N]`` (0 for voxels never observed)."""
        if self._label_keys.size == 0:
            return np.zeros(keys.shape, dtype=np.int64)
        pos = np.clip(np.searchsorted(self._label_keys, keys), 0, self._label_keys.size - 1)
        return np.where(self._label_keys[pos] == keys, self._labels[pos], 0)

    def add(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Add one observation per given (voxel key, global id) pair."""
        self.keys, self.ids, self.counts = _sum_by_pair(
            np.concatenate([self.keys, keys.astype(np.int64)]),
            np.concatenate([self.ids, ids.astype(np.int64)]),
            np.concatenate([self.counts, np.ones(keys.size, dtype=np.int64)]),
        )
        order = np.lexsort((self.ids, -self.counts, self.keys))  # per key: most observed, then smallest id
        self._label_keys, first = np.unique(self.keys[order], return_index=True)
        self._labels = self.ids[order][first]


def track_by_point_cloud_fusion(
    instance_maps: Sequence[np.ndarray],
    depths: Sequence[np.ndarray],
    camera_to_world: Sequence[np.ndarray],
    intrinsics: IntrinsicsLike | Sequence[IntrinsicsLike],
    voxel_size: float = 0.02,
    overlap_threshold: float = 0.3,
) -> list[np.ndarray]:
    r"""Tracking method (3) of Contrastive Lift Table 4: incremental fusion of segments in a 3D voxel map.

    A global map counts, for every voxel, how often each global id was observed in it; a voxel's label is
    its most observed id. Frame by frame:

    1. back-project every segmented pixel with valid depth and hash it to its voxel
       (:func:`~lift3d.baselines.warping.voxel_keys`); ``V_m`` = the distinct voxels of segment ``m``;
    2. overlap :math:`o_{mg} = |\{x \in V_m : \mathrm{label}(x) = g\}| / |V_m|` with every global id ``g``
       seen so far (in any earlier frame, not only the previous one);
    3. Hungarian assignment maximising :math:`\sum o_{mg}`; ``m`` inherits ``g`` iff
       :math:`o_{mg} \ge` ``overlap_threshold``, otherwise it gets a new global id;
    4. each segment adds one observation of its global id to each voxel of ``V_m``.

    A segment without any valid depth cannot be matched and gets a new id. The voxel map only grows (the
    scene is assumed static); the overlap is relative to the segment's own voxels, so a segment that sees
    a new side of an object matches only as far as the surfaces already fused overlap it.

    Args:
        instance_maps: ``T`` maps ``[H_t, W_t]`` (integer, 0 = no segment).
        depths: ``T`` depth maps ``[H_t, W_t]``, metres along the optical axis (invalid: ``<= 0`` or NaN).
        camera_to_world: ``T`` poses ``[4, 4]``, OpenGL axes.
        intrinsics: ``T`` tuples ``(fx, fy, cx, cy)``, or one tuple for all frames.
        voxel_size: voxel edge in metres.
        overlap_threshold: minimum overlap fraction :math:`o_{mg}` for a match.

    Returns:
        ``T`` int64 maps with global ids.
    """
    name = "track_by_point_cloud_fusion"
    maps = _check_maps(name, instance_maps)
    depths, c2w, intr = _check_geometry(name, maps, depths, camera_to_world, intrinsics)
    volume = _VoxelIdMap()
    out: list[np.ndarray] = []
    next_id = 1
    for t, frame in enumerate(maps):
        points, valid = backproject(depths[t], c2w[t], intr[t])
        mask = valid & (frame > 0)
        seg_of_voxel, voxel, _ = _sum_by_pair(  # distinct (input id, voxel key) pairs
            frame[mask].astype(np.int64), voxel_keys(points[mask], voxel_size), np.zeros(int(mask.sum()), np.int64)
        )
        local_to_global: dict[int, int] = {}
        if voxel.size and volume.keys.size:
            labels = volume.labels(voxel)
            cur_ids, seg_index, seg_size = np.unique(seg_of_voxel, return_inverse=True, return_counts=True)
            glob_ids, glob_index = np.unique(labels, return_inverse=True)
            hits = np.zeros((cur_ids.size, glob_ids.size))
            np.add.at(hits, (seg_index.ravel(), glob_index.ravel()), 1.0)
            overlap = hits / seg_size[:, None]
            overlap[:, glob_ids == 0] = 0.0  # voxels never observed
            for i, j in _hungarian(overlap, overlap_threshold):
                local_to_global[int(cur_ids[i])] = int(glob_ids[j])
        tracked, next_id = _relabel(frame, local_to_global, next_id)
        if voxel.size:
            lut_ids = np.fromiter(local_to_global.keys(), dtype=np.int64)
            lut_gids = np.fromiter(local_to_global.values(), dtype=np.int64)
            order = np.argsort(lut_ids)
            gids = lut_gids[order][np.searchsorted(lut_ids[order], seg_of_voxel)]
            volume.add(voxel, gids)
        out.append(tracked)
    return out
