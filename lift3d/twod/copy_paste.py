r"""Copy-paste of coherent depth regions into another frame, with depth-consistent scale and a z-test (Zeng et al.,
"Copy-Pasting Coherent Depth Regions Improves Contrastive Learning for Urban-Scene Segmentation", BMVC 2022; paper
003). The pasted frame is the "second context" of a region: the contrastive loss pulls each pasted pixel towards the
same pixel in the source frame, so every pasted pixel comes with the exact source pixel it was copied from.

**Scale rule.** Both frames are assumed to share the camera (same focal length). A region whose median depth is
``z_s`` in the source, moved along the viewing direction to depth ``z_p``, appears scaled by

.. math:: s = z_s / z_p

(pinhole: image size is proportional to ``1 / z``). The paste depth is chosen from where the region lands
(:func:`paste_regions`): an anchor pixel of the target with depth ``z_t`` is drawn, and ``z_p = r z_t`` with
``r`` in :attr:`CopyPasteConfig.front_ratio`, so the region stands a little in front of the surface it is put on,
restricted so that ``s`` stays within :attr:`CopyPasteConfig.scale_range` (the object keeps a plausible size: never
magnified or shrunk beyond that range). Anchors for which no ``z_p`` satisfies both are not drawn.

**Depth of the pasted pixels.** ``translate`` (default): the region is moved rigidly, ``z' = z + (z_p - z_s)``, so
its depth relief is the object's own; ``scale``: ``z' = z z_p / z_s``, the relief scaled with the distance.
Pixels that would land at ``z' <= 0`` are dropped.

**Resampling.** Nearest neighbour by inverse mapping: target pixel centre ``q`` takes the source pixel whose centre
is nearest to ``c_s + (q - c_t) / s`` (``c_s`` the region's pixel centroid, ``c_t`` the anchor's pixel centre), and
only if that source pixel belongs to the region; so each pasted pixel has exactly one source pixel.

**z-test.** A pasted pixel is kept only where it is in front of what the frame already shows there,
``z' < z_target(q)`` (target pixels with unknown depth, 0, count as infinitely far). Regions are pasted one after the
other, each tested against the depth including the earlier pastes; a later paste in front replaces an earlier one
and its correspondence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Tuple

import numpy as np

__all__ = ["CopyPasteConfig", "PastedPair", "paste_region", "paste_regions", "PasteCanvas"]


@dataclass
class CopyPasteConfig:
    """How many source regions are pasted, which, and where (paper 003's copy-paste; the paper gives no values)."""

    num_regions: int = 3
    """Regions of the source pasted into the target (fewer when fewer regions qualify)."""
    min_area_fraction: float = 0.005
    """A source region qualifies only if it covers at least this fraction of the source frame."""
    max_area_fraction: float = 0.25
    """... and at most this fraction (the background surface, e.g. the floor and walls as one region, is not
    pasted)."""
    front_ratio: Tuple[float, float] = (0.6, 0.95)
    """Range of ``r = z_p / z_t``: the paste depth relative to the target's depth at the anchor pixel (below 1: the
    region stands in front of the surface it lands on)."""
    scale_range: Tuple[float, float] = (0.5, 2.0)
    """Allowed image scale ``s = z_s / z_p`` of a pasted region (plausible sizes: at most halved or doubled)."""
    depth_rule: Literal["translate", "scale"] = "translate"
    """Depth of the pasted pixels: ``translate`` ``z' = z + z_p - z_s`` (rigid move, the object's relief kept) or
    ``scale`` ``z' = z z_p / z_s``."""


@dataclass
class PastedPair:
    """A source frame and a target frame with source regions pasted in, with the exact pixel correspondence."""

    source: np.ndarray
    """``[H, W, 3]`` uint8, the source image (first context)."""
    pasted: np.ndarray
    """``[H, W, 3]`` uint8, the target image with source regions pasted in (second context)."""
    pasted_depth: np.ndarray
    """``[H, W]`` float32, the target depth after pasting."""
    source_index: np.ndarray
    """``[M]`` int64 flat pixel index ``y * W + x`` into ``source`` of each visible pasted pixel."""
    pasted_index: np.ndarray
    """``[M]`` int64 flat pixel index into ``pasted`` (same order; sorted, each pixel once)."""
    region: np.ndarray
    """``[M]`` int64 region id (of the source's region map) of each pair."""


class PasteCanvas:
    """The target frame being pasted into: image, depth and, per pixel, the source pixel and region pasted there."""

    def __init__(self, target_image: np.ndarray, target_depth: np.ndarray):
        self.image = np.array(target_image, dtype=np.uint8, copy=True)
        depth = np.asarray(target_depth, dtype=np.float32)
        # unknown depth (0 or not finite) counts as infinitely far for the z-test
        self.depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.inf).astype(np.float32)
        self.source_pixel = np.full(depth.shape, -1, dtype=np.int64)
        self.region = np.full(depth.shape, -1, dtype=np.int64)

    def output_depth(self) -> np.ndarray:
        """``[H, W]`` float32 depth after pasting, 0 where still unknown."""
        return np.where(np.isfinite(self.depth), self.depth, 0.0).astype(np.float32)


def _region_stats(regions: np.ndarray, depth: np.ndarray, region_id: int) -> Tuple[np.ndarray, np.ndarray, float]:
    ys, xs = np.nonzero(regions == region_id)
    centroid = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
    return centroid, box, float(np.median(depth[ys, xs]))


def paste_region(
    canvas: PasteCanvas,
    source_image: np.ndarray,
    source_depth: np.ndarray,
    source_regions: np.ndarray,
    region_id: int,
    anchor_xy: Tuple[int, int],
    paste_depth: float,
    depth_rule: Literal["translate", "scale"] = "translate",
) -> int:
    """Paste one source region into ``canvas`` with its centroid on pixel ``anchor_xy``, moved to depth ``z_p``.

    Scale ``s = z_s / z_p`` (``z_s`` the region's median source depth); nearest-neighbour inverse mapping
    ``p = c_s + (q - c_t) / s``; depth by ``depth_rule``; z-test ``z' < canvas.depth(q)`` (module docstring).

    Args:
        canvas: the target being pasted into; updated in place.
        source_image: ``[H, W, 3]`` uint8.
        source_depth: ``[H, W]`` float depth in metres.
        source_regions: ``[H, W]`` int64 region ids (``-1`` none).
        region_id: the region to paste.
        anchor_xy: ``(x, y)`` target pixel on which the region's centroid lands.
        paste_depth: ``z_p`` in metres.
        depth_rule: ``translate`` or ``scale``.

    Returns:
        The number of target pixels this paste wrote (visible after the z-test at the time of pasting).
    """
    height, width = source_regions.shape
    centroid, box, z_source = _region_stats(source_regions, source_depth, region_id)
    scale = z_source / paste_depth
    anchor = np.array([anchor_xy[0] + 0.5, anchor_xy[1] + 0.5])
    # target bounding box of the scaled region, one pixel of margin for rounding
    lo = np.floor(anchor + (box[:2] - centroid) * scale).astype(int) - 1
    hi = np.ceil(anchor + (box[2:] - centroid) * scale).astype(int) + 1
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], canvas.depth.shape[1]), min(hi[1], canvas.depth.shape[0])
    if x0 >= x1 or y0 >= y1:
        return 0
    qy, qx = np.mgrid[y0:y1, x0:x1]
    px = np.floor(centroid[0] + (qx + 0.5 - anchor[0]) / scale).astype(np.int64)
    py = np.floor(centroid[1] + (qy + 0.5 - anchor[1]) / scale).astype(np.int64)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    qx, qy, px, py = qx[inside], qy[inside], px[inside], py[inside]
    member = source_regions[py, px] == region_id
    qx, qy, px, py = qx[member], qy[member], px[member], py[member]
    z = source_depth[py, px].astype(np.float64)
    new_depth = z + (paste_depth - z_source) if depth_rule == "translate" else z * (paste_depth / z_source)
    visible = (new_depth > 0) & (new_depth < canvas.depth[qy, qx])
    qx, qy, px, py, new_depth = qx[visible], qy[visible], px[visible], py[visible], new_depth[visible]
    canvas.image[qy, qx] = source_image[py, px]
    canvas.depth[qy, qx] = new_depth
    canvas.source_pixel[qy, qx] = py * width + px
    canvas.region[qy, qx] = region_id
    return int(len(qx))


def _eligible_regions(source_regions: np.ndarray, config: CopyPasteConfig) -> np.ndarray:
    ids, counts = np.unique(source_regions[source_regions >= 0], return_counts=True)
    fraction = counts / source_regions.size
    return ids[(fraction >= config.min_area_fraction) & (fraction <= config.max_area_fraction)]


def _draw_placement(
    z_source: float, target_depth: np.ndarray, rng: np.random.Generator, config: CopyPasteConfig
) -> Tuple[Tuple[int, int], float] | None:
    """Anchor pixel and paste depth: ``z_p`` in ``[r_lo z_t, r_hi z_t]`` and in ``[z_s / s_hi, z_s / s_lo]``."""
    r_lo, r_hi = config.front_ratio
    s_lo, s_hi = config.scale_range
    known = np.isfinite(target_depth) & (target_depth > 0)
    lower = np.maximum(r_lo * target_depth, z_source / s_hi)
    upper = np.minimum(r_hi * target_depth, z_source / s_lo)
    feasible = np.flatnonzero(known & (lower <= upper))
    if len(feasible) == 0:
        return None
    pick = int(rng.choice(feasible))
    y, x = divmod(pick, target_depth.shape[1])
    paste_depth = float(rng.uniform(lower.flat[pick], upper.flat[pick]))
    return (x, y), paste_depth


def _validate(source_image, source_depth, source_regions, target_image, target_depth) -> None:
    shape = source_regions.shape
    named = {
        "source_image": (source_image.shape[:2], source_image.ndim == 3),
        "source_depth": (source_depth.shape, source_depth.ndim == 2),
        "target_image": (target_image.shape[:2], target_image.ndim == 3),
        "target_depth": (target_depth.shape, target_depth.ndim == 2),
    }
    for name, (hw, ndim_ok) in named.items():
        if not ndim_ok or hw != shape:
            raise ValueError(
                f"paste_regions: {name} has shape {hw} but source_regions is {shape}; give equal-size frames"
            )


def paste_regions(
    source_image: np.ndarray,
    source_depth: np.ndarray,
    source_regions: np.ndarray,
    target_image: np.ndarray,
    target_depth: np.ndarray,
    rng: np.random.Generator,
    config: CopyPasteConfig = CopyPasteConfig(),
) -> PastedPair:
    """Paste up to :attr:`CopyPasteConfig.num_regions` regions of the source into the target (paper 003).

    Regions covering between :attr:`CopyPasteConfig.min_area_fraction` and :attr:`CopyPasteConfig.max_area_fraction`
    of the frame qualify; ``num_regions`` of them are drawn without replacement. For each, an anchor pixel and a
    paste depth are drawn (module docstring, "Scale rule") and the region is pasted with :func:`paste_region`.

    Args:
        source_image: ``[H, W, 3]`` uint8.
        source_depth: ``[H, W]`` float depth in metres (0 unknown).
        source_regions: ``[H, W]`` int64 region ids of the source (:func:`lift3d.twod.regions.coherent_depth_regions`).
        target_image: ``[H, W, 3]`` uint8.
        target_depth: ``[H, W]`` float depth in metres (0 unknown: infinitely far for the z-test).
        rng: random generator (regions, anchors, depths).
        config: :class:`CopyPasteConfig`.

    Returns:
        :class:`PastedPair` with ``M`` visible pasted pixels and their source pixels.
    """
    _validate(source_image, source_depth, source_regions, target_image, target_depth)
    canvas = PasteCanvas(target_image, target_depth)
    eligible = _eligible_regions(source_regions, config)
    chosen = rng.choice(eligible, size=min(config.num_regions, len(eligible)), replace=False)
    for region_id in chosen.tolist():
        _, _, z_source = _region_stats(source_regions, source_depth, region_id)
        placement = _draw_placement(z_source, np.asarray(target_depth, dtype=np.float64), rng, config)
        if placement is None:
            continue
        anchor, paste_depth = placement
        paste_region(
            canvas, source_image, source_depth, source_regions, region_id, anchor, paste_depth, config.depth_rule
        )
    pasted_index = np.flatnonzero(canvas.source_pixel >= 0)
    return PastedPair(
        source=np.array(source_image, dtype=np.uint8, copy=True),
        pasted=canvas.image,
        pasted_depth=canvas.output_depth(),
        source_index=canvas.source_pixel.reshape(-1)[pasted_index],
        pasted_index=pasted_index.astype(np.int64),
        region=canvas.region.reshape(-1)[pasted_index],
    )
