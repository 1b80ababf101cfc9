"""``classical``: a weights-free segmenter (scikit-image) for demos and for scenes where no network is at hand.

Two paths for one view ``image [H, W, 3]``; the depth path when the scene has dense depth (``depth [H, W]``, at
least ``depth_min_valid_fraction`` of it known, and ``depth_mode``), the colour path otherwise.

Depth path (geometry; textures and shadows do not matter):

1. Background planes (floor, walls, table top): RANSAC on the inverse depth, which is affine in the pixel
   coordinates for a plane, :math:`1/z = a u + b v + c` (:func:`background_planes`).
2. The other pixels split into 4-connected components by cutting at relative depth jumps
   :math:`|d_p - d_q| > \\tau_d \\max(d_p, d_q)` (``merge_depth_jump``, :func:`depth_regions`).

Colour path:

1. Graph-based over-segmentation (Felzenszwalb & Huttenlocher, "Efficient Graph-Based Image Segmentation", IJCV
   2004; ``skimage.segmentation.felzenszwalb``) of the colour image, with the depth appended as a fourth channel
   ``depth_weight * d / median(d)`` when (sparse) depth is given, so depth edges cut regions.
2. Region merging: two adjacent regions ``a, b`` merge (transitively) when their mean colours are close,
   :math:`\\lVert \\bar c_a - \\bar c_b \\rVert_2 < \\tau_c` (``merge_colour_distance``, RGB in [0, 1]), and, with
   depth, fewer than half of the pixel pairs along their shared boundary jump in depth by more than ``tau_d``
   (:func:`merge_regions`).

Classes (the class scheme, both paths): class 0 ``background`` (stuff) and class 1 ``object`` (thing). A region is
background when it is a background plane, when it touches the image border and covers at least
``background_min_fraction`` of the image, or when it covers more than ``object_max_fraction``; it then has
instance id 0. Regions smaller than ``min_object_pixels`` and pixels of unknown depth (depth path) are left
unlabelled (class 0, instance 0, confidence 0: the lift ignores them). Every other region is one ``object``
instance, numbered 1, 2, ... in raster order of its first pixel; confidence 1.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from lift3d.data.scene import SceneClass
from lift3d.segmenters.base import (
    BACKGROUND_CLASS,
    Segmentation,
    Segmenter,
    SegmenterOptions,
    SegmenterSpec,
    register_segmenter,
    require_module,
)

__all__ = ["ClassicalConfig", "ClassicalSegmenter", "merge_regions", "OBJECT_CLASS"]

OBJECT_CLASS = SceneClass(1, "object", True)
"""The one thing class of the classical segmenter."""


@dataclass(frozen=True)
class ClassicalConfig:
    """Settings of the classical segmenter (see the module docstring for the steps they drive)."""

    scale: float = 100.0
    """Felzenszwalb's scale k: larger values give larger regions."""
    sigma: float = 0.0
    """Width (pixels) of the Gaussian smoothing before the over-segmentation; 0 keeps sharp edges (smoothing leaves
    thin blended strips along edges)."""
    min_segment_pixels: int = 8
    """Felzenszwalb's minimum region size in pixels (smaller regions are absorbed by a neighbour)."""
    merge_colour_distance: float = 0.1
    """tau_c: adjacent regions whose mean RGB colours (in [0, 1]) are closer than this merge."""
    depth_weight: float = 1.0
    """Weight of the normalised depth channel in the over-segmentation (0: depth not used there)."""
    merge_depth_jump: float = 0.02
    """tau_d: relative depth jump across a boundary pixel pair that counts as a depth edge (blocks merging)."""
    background_min_fraction: float = 0.1
    """A region touching the image border and covering at least this fraction of the image is background."""
    object_max_fraction: float = 0.5
    """A region covering more than this fraction of the image is background wherever it lies."""
    min_object_pixels: int = 16
    """Regions smaller than this are left unlabelled (confidence 0)."""
    depth_mode: bool = True
    """With depth: segment by geometry (background planes + depth-connected components) instead of by colour."""
    depth_min_valid_fraction: float = 0.5
    """The depth path needs at least this fraction of pixels with known depth (sparse SfM depth is not enough)."""
    plane_tolerance: float = 0.01
    """epsilon: a pixel is on a plane when its inverse depth is within epsilon / z of the plane's (~1% of depth);
    raise it for noisy sensor depth."""
    max_planes: int = 3
    """Background planes searched for (floor, walls)."""
    plane_min_fraction: float = 0.2
    """A plane is background when it holds at least this fraction of the pixels with known depth (large flat faces
    of near objects hold less)."""
    ransac_iterations: int = 200
    """RANSAC hypotheses per plane."""


def background_planes(depth: np.ndarray, cfg: ClassicalConfig, seed: int = 0) -> np.ndarray:
    """Pixels of the large planes of a depth map (floor, walls, table top): ``[H, W]`` bool.

    For a pinhole camera the inverse depth of a plane is affine in the pixel coordinates,
    :math:`1/z(u, v) = a u + b v + c`, so no intrinsics are needed. Up to ``max_planes`` times: RANSAC
    (``ransac_iterations`` hypotheses from 3 random pixels, scored on at most 4000 sampled pixels) then a
    least-squares refit on the inliers, a pixel being an inlier when :math:`|1/z - (a u + b v + c)| \\le
    \\epsilon / z` (``plane_tolerance`` :math:`\\epsilon`, about a relative depth error); a plane is kept when it
    holds at least ``plane_min_fraction`` of the known pixels and touches the image border. ``depth [H, W]``
    metres, 0 = unknown (never a plane pixel)."""
    H, W = depth.shape
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W]
    design = np.stack([u.ravel(), v.ravel(), np.ones(H * W)], axis=1).astype(np.float64)
    known = depth.ravel() > 0
    inverse = np.where(known, 1.0 / np.where(known, depth.ravel(), 1.0), 0.0)
    remaining, planes = known.copy(), np.zeros(H * W, bool)

    def inliers(coef, rows):
        return np.abs(design[rows] @ coef - inverse[rows]) <= cfg.plane_tolerance * inverse[rows]

    for _ in range(cfg.max_planes):
        candidates = np.flatnonzero(remaining)
        if len(candidates) < max(3, cfg.plane_min_fraction * known.sum()):
            break
        sample = rng.choice(candidates, min(4000, len(candidates)), replace=False)
        best, best_count = None, -1
        for triple in rng.choice(sample, (cfg.ransac_iterations, 3)):
            coef, _, rank, _ = np.linalg.lstsq(design[triple], inverse[triple], rcond=None)
            count = int(inliers(coef, sample).sum()) if rank == 3 else -1
            if count > best_count:
                best, best_count = coef, count
        refit = sample[inliers(best, sample)]
        best = np.linalg.lstsq(design[refit], inverse[refit], rcond=None)[0]
        plane = np.zeros(H * W, bool)
        plane[candidates] = inliers(best, candidates)
        on_border = plane.reshape(H, W)[[0, -1], :].any() or plane.reshape(H, W)[:, [0, -1]].any()
        if plane.sum() < cfg.plane_min_fraction * known.sum() or not on_border:
            break
        planes |= plane
        remaining &= ~plane
    return planes.reshape(H, W)


def depth_regions(depth: np.ndarray, cfg: ClassicalConfig) -> tuple[np.ndarray, int, int]:
    """The depth path: ``(regions [H, W] int64, plane region id, unknown region id)``. Region 0 holds the pixels
    of :func:`background_planes`, region 1 those of unknown depth; the other pixels are split into 4-connected
    components by cutting every neighbour pair with a relative depth jump :math:`|d_p - d_q| > \\tau_d \\max(d_p,
    d_q)` (``merge_depth_jump``): pixels next to a jump are left out of the components and then join the nearest
    one. Components get ids 2, 3, ..."""
    from scipy import ndimage

    planes = background_planes(depth, cfg)
    known = depth > 0
    d = depth.astype(np.float64)
    cut = np.zeros(depth.shape, bool)
    for axis in (0, 1):
        a = d[:-1] if axis == 0 else d[:, :-1]
        b = d[1:] if axis == 0 else d[:, 1:]
        jump = (a > 0) & (b > 0) & (np.abs(a - b) > cfg.merge_depth_jump * np.maximum(a, b))
        if axis == 0:
            cut[:-1] |= jump
            cut[1:] |= jump
        else:
            cut[:, :-1] |= jump
            cut[:, 1:] |= jump
    foreground = known & ~planes
    components, count = ndimage.label(foreground & ~cut)
    if count:
        nearest = ndimage.distance_transform_edt(components == 0, return_distances=False, return_indices=True)
        components = np.where(foreground, components[nearest[0], nearest[1]], 0)
    regions = np.where(planes, 0, np.where(~known, 1, components + 1)).astype(np.int64)
    regions[foreground & (components == 0)] = 1
    return regions, 0, 1


def _adjacent_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every 4-neighbour pixel pair whose labels differ: ``(label_a, label_b, flat_p, flat_q)`` with
    ``label_a < label_b``, each ``[num_pairs]``."""
    H, W = labels.shape
    flat = np.arange(H * W).reshape(H, W)
    p = np.concatenate([flat[:, :-1].ravel(), flat[:-1, :].ravel()])
    q = np.concatenate([flat[:, 1:].ravel(), flat[1:, :].ravel()])
    lab = labels.ravel()
    differ = lab[p] != lab[q]
    p, q = p[differ], q[differ]
    a, b = np.minimum(lab[p], lab[q]), np.maximum(lab[p], lab[q])
    return a, b, p, q


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def merge_regions(
    labels: np.ndarray,
    image: np.ndarray,
    depth: Optional[np.ndarray],
    colour_distance: float,
    depth_jump: float,
) -> np.ndarray:
    """Merge adjacent regions of ``labels [H, W]`` (ints ``0..K-1``) whose mean colours in ``image [H, W, 3]``
    are closer than ``colour_distance`` and (with ``depth [H, W]``, 0 = unknown) whose shared boundary has depth
    jumps :math:`|d_p - d_q| > \\tau_d \\max(d_p, d_q)` on fewer than half of its pixel pairs with known depth.
    Merging is transitive (connected components of the qualifying region graph, the colours being those of the
    unmerged regions). Returns ``[H, W]`` int64 labels ``0..K'-1``."""
    labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    k = int(labels.max()) + 1
    lab = labels.ravel()
    area = np.bincount(lab, minlength=k).astype(np.float64)
    mean = np.stack([np.bincount(lab, image[..., c].ravel(), k) / area for c in range(3)], axis=1)
    a, b, p, q = _adjacent_pairs(labels)
    if len(a) == 0:
        return labels.astype(np.int64)
    pair_keys, inverse = np.unique(a * k + b, return_inverse=True)
    pa, pb = pair_keys // k, pair_keys % k
    close = np.linalg.norm(mean[pa] - mean[pb], axis=1) < colour_distance
    if depth is not None:
        d = depth.ravel().astype(np.float64)
        known = (d[p] > 0) & (d[q] > 0)
        jump = known & (np.abs(d[p] - d[q]) > depth_jump * np.maximum(d[p], d[q]))
        n_known = np.bincount(inverse, known, len(pair_keys))
        n_jump = np.bincount(inverse, jump, len(pair_keys))
        close &= n_jump < 0.5 * np.maximum(n_known, 1e-9)
    parent = np.arange(k)
    for i, j in zip(pa[close], pb[close]):
        ri, rj = _find(parent, int(i)), _find(parent, int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([_find(parent, i) for i in range(k)])
    return np.unique(roots[labels], return_inverse=True)[1].reshape(labels.shape).astype(np.int64)


class ClassicalSegmenter(Segmenter):
    """Felzenszwalb over-segmentation + colour/depth region merging + a background rule (module docstring)."""

    name = "classical"
    uses_depth = True

    def __init__(self, config: ClassicalConfig = ClassicalConfig()):
        self.config = config
        self._skimage_segmentation = require_module(
            "skimage.segmentation", "classical", "pip install 'lift3d[viewer]' (scikit-image)"
        )

    @property
    def classes(self) -> list[SceneClass]:
        return [BACKGROUND_CLASS, OBJECT_CLASS]

    def _features(self, image: np.ndarray, depth: Optional[np.ndarray]) -> np.ndarray:
        """``[H, W, 3]`` colour, or ``[H, W, 4]`` with the normalised depth (unknown depth -> the median)."""
        if depth is None or self.config.depth_weight <= 0 or not (depth > 0).any():
            return image
        median = float(np.median(depth[depth > 0]))
        d = np.where(depth > 0, depth, median) / median
        return np.concatenate([image, (self.config.depth_weight * d)[..., None].astype(np.float32)], axis=-1)

    def segment(self, image: np.ndarray, depth: Optional[np.ndarray] = None) -> Segmentation:
        cfg = self.config
        image = np.asarray(image, np.float32)
        H, W = image.shape[:2]
        use_depth = depth is not None and cfg.depth_mode and (depth > 0).mean() >= cfg.depth_min_valid_fraction
        if use_depth:
            regions, forced_background, unknown = depth_regions(depth, cfg)
        else:
            regions, forced_background, unknown = self._colour_regions(image, depth), None, None
        k = int(regions.max()) + 1
        area = np.bincount(regions.ravel(), minlength=k)
        border = np.zeros(k, bool)
        border[np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))] = True
        background = (border & (area >= cfg.background_min_fraction * H * W)) | (area > cfg.object_max_fraction * H * W)
        small = ~background & (area < cfg.min_object_pixels)
        if forced_background is not None:
            background[forced_background] = True
            small[forced_background] = False
        if unknown is not None:
            small[unknown], background[unknown] = True, False
        is_object = ~background & ~small
        # instance ids 1, 2, ... in raster order of each object's first pixel
        _, first = np.unique(regions.ravel(), return_index=True)
        present = np.unique(regions.ravel())
        order = [int(present[i]) for i in np.argsort(first, kind="stable") if is_object[present[i]]]
        ids = np.zeros(k, np.int64)
        ids[order] = np.arange(1, len(order) + 1)
        instance = ids[regions]
        semantic = np.where(is_object[regions], OBJECT_CLASS.id, BACKGROUND_CLASS.id).astype(np.int64)
        confidence = np.where(small[regions], 0.0, 1.0).astype(np.float32)
        return Segmentation(instance, semantic, confidence)

    def _colour_regions(self, image: np.ndarray, depth: Optional[np.ndarray]) -> np.ndarray:
        """Steps 1-2 of the colour path: ``[H, W]`` int64 region labels ``0..K-1``."""
        cfg = self.config
        with warnings.catch_warnings():  # a 4th (depth) channel is intended, not an RGBA image
            warnings.filterwarnings("ignore", message=".*third dimension of 4.*", category=RuntimeWarning)
            regions = self._skimage_segmentation.felzenszwalb(
                self._features(image, depth),
                scale=cfg.scale,
                sigma=cfg.sigma,
                min_size=cfg.min_segment_pixels,
                channel_axis=-1,
            )
        return merge_regions(regions, image, depth, cfg.merge_colour_distance, cfg.merge_depth_jump)

    def describe(self) -> dict:
        return {"segmenter": self.name, "config": asdict(self.config)}


def _build(options: SegmenterOptions) -> ClassicalSegmenter:
    return ClassicalSegmenter(options.settings.get("classical", ClassicalConfig()))


SPEC = register_segmenter(
    SegmenterSpec(
        name="classical",
        description="weights-free: depth planes + depth-connected components, or colour regions without depth",
        downloads="nothing (scikit-image, installed with lift3d[viewer])",
        build=_build,
    )
)
