"""The automatic foreground box of a capture: the region most cameras look at.

A capture without an ``aabb`` still tells where its subject is: cameras point at it, so it lies near the point
closest to all optical axes and inside many cameras' view frusta, while the far floor, walls and sky behind it are
seen by few cameras each. :func:`foreground_box` keeps the surface points (depth back-projections or SfM points)
that lie inside the frusta of at least ``min_view_fraction`` of the cameras and no farther from the focus than
``max_focus_distance`` times the cameras' median distance to it, and boxes them with trimmed percentiles. Without
points it boxes the part of a lattice around the focus that enough cameras see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from lift3d.geometry.cameras import project

__all__ = ["BoundsError", "BoxConfig", "ForegroundBox", "optical_axes_focus", "frustum_view_counts", "foreground_box"]


class BoundsError(ValueError):
    """A foreground box given by the user (``--model.aabb``) that is not a box."""


@dataclass
class BoxConfig:
    """How :func:`foreground_box` chooses the box."""

    min_view_fraction: float = 0.3
    """A point is foreground when at least this fraction of the cameras has it inside its view frustum."""
    max_focus_distance: float = 1.5
    """... and it lies within this many median camera distances of the focus (the point nearest all optical axes)."""
    percentile: float = 2.0
    """Trimmed percentiles ``[p, 100 - p]`` of the foreground points per axis (outlier-robust extent)."""
    margin: float = 0.1
    """Each side is pushed out by this fraction of the box's largest side (the trimmed extremes, the tops of
    objects on a floor, whose points are few)."""
    lattice_points: int = 40
    """Lattice points per axis of the camera-only fallback (no depth, no SfM points)."""


@dataclass
class ForegroundBox:
    """A foreground box and where it came from."""

    box: np.ndarray
    """[2, 3] world-space (min, max) corners."""
    source: str
    """What it was computed from, e.g. ``depth (41,203 of 200,000 points in >= 15% of 36 frusta)``."""

    def describe(self) -> str:
        """The fit log's line, e.g. ``foreground box from depth (...): [-1.2 -1.1 -0.1] .. [1.3 1.0 0.6]``."""
        lo, hi = (np.array2string(c, precision=3, suppress_small=True) for c in self.box)
        return f"foreground box from {self.source}: {lo} .. {hi}"


def optical_axes_focus(centres: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Least-squares point nearest to all optical axes.

    Minimises :math:`\\sum_i \\|(I - a_i a_i^T)(p - c_i)\\|^2` over p (camera centres :math:`c_i`, unit axes
    :math:`a_i`); its normal equations are :math:`\\sum_i (I - a_i a_i^T) p = \\sum_i (I - a_i a_i^T) c_i`.
    centres, axes: [V, 3] -> [3] (the pseudo-inverse solution when the axes are parallel).
    """
    axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    proj = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # [V, 3, 3]
    return np.linalg.lstsq(proj.sum(0), np.einsum("vij,vj->i", proj, centres), rcond=None)[0]


def frustum_view_counts(
    points: np.ndarray, camera_to_world: np.ndarray, intrinsics: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """Number of cameras whose view frustum holds each point (in front of the camera and projecting into its
    image; occlusion ignored, lens distortion ignored). points [N, 3], camera_to_world [V, 4, 4], intrinsics
    [V, 4] (fx, fy, cx, cy), sizes [V, 2] (height, width) -> [N] int64."""
    counts = np.zeros(len(points), np.int64)
    for c2w, k, (h, w) in zip(camera_to_world, intrinsics, sizes):
        counts += project(points, c2w, tuple(float(x) for x in k), int(h), int(w))[3]
    return counts


def _lattice(focus: np.ndarray, radius: float, n: int) -> np.ndarray:
    lin = np.linspace(-radius, radius, n)
    g = np.stack(np.meshgrid(lin, lin, lin, indexing="ij"), -1).reshape(-1, 3)
    return g + focus


def foreground_box(
    camera_to_world: np.ndarray,
    intrinsics: np.ndarray,
    sizes: np.ndarray,
    points: Optional[np.ndarray] = None,
    points_source: str = "points",
    cfg: Optional[BoxConfig] = None,
) -> ForegroundBox:
    """The foreground box of a capture (module docstring).

    Args:
        camera_to_world: [V, 4, 4] OpenGL camera-to-world (cameras look down -z).
        intrinsics: [V, 4] (fx, fy, cx, cy) per camera.
        sizes: [V, 2] (height, width) per camera.
        points: [N, 3] surface points (depth back-projections or SfM points), or None for the camera-only box.
        points_source: how the log names ``points`` (``depth``, ``SfM points``).

    Returns:
        :class:`ForegroundBox` with ``box`` [2, 3]. When fewer than 8 points pass the tests the camera-only box is
        used instead (and the source says so).
    """
    cfg = cfg or BoxConfig()
    camera_to_world = np.asarray(camera_to_world, np.float64)
    centres, axes = camera_to_world[:, :3, 3], -camera_to_world[:, :3, 2]
    focus = optical_axes_focus(centres, axes)
    reach = float(np.median(np.linalg.norm(centres - focus, axis=1)))
    num_views = len(camera_to_world)
    need = max(1, int(np.ceil(cfg.min_view_fraction * num_views)))
    why = ""
    if points is not None and len(points):
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(1)]
        near = np.linalg.norm(pts - focus, axis=1) <= cfg.max_focus_distance * reach
        seen = frustum_view_counts(pts, camera_to_world, intrinsics, sizes) >= need
        kept = pts[near & seen]
        if len(kept) >= 8:
            frac = f"{cfg.min_view_fraction:.0%}"
            source = f"{points_source} ({len(kept):,} of {len(pts):,} points in >= {frac} of {num_views} frusta)"
            return ForegroundBox(_trimmed_box(kept, cfg), source)
        why = f"; too few of the {len(pts):,} {points_source} are seen by enough cameras"
    grid = _lattice(focus, reach, cfg.lattice_points)
    kept = grid[frustum_view_counts(grid, camera_to_world, intrinsics, sizes) >= need]
    if len(kept) < 8:  # no region is shared by enough cameras: a cube around the focus
        return ForegroundBox(np.stack([focus - reach, focus + reach]), f"camera centres and axes{why}")
    return ForegroundBox(_trimmed_box(kept, cfg), f"camera frusta (>= {cfg.min_view_fraction:.0%} of {num_views}){why}")


def _trimmed_box(points: np.ndarray, cfg: BoxConfig) -> np.ndarray:
    lo = np.percentile(points, cfg.percentile, axis=0)
    hi = np.percentile(points, 100.0 - cfg.percentile, axis=0)
    pad = float((hi - lo).max()) * cfg.margin + 1e-3
    return np.stack([lo - pad, hi + pad])
