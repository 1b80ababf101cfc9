"""``classical``: a weights-free segmenter (scikit-image) for demos and for scenes where no network is at hand.

Steps for one view ``image [H, W, 3]`` (and ``depth [H, W]`` when the scene has depth):

1. Graph-based over-segmentation (Felzenszwalb & Huttenlocher, "Efficient Graph-Based Image Segmentation", IJCV
   2004; ``skimage.segmentation.felzenszwalb``) of the colour image, with the depth appended as a fourth channel
   ``depth_weight * d / median(d)`` when depth is given, so depth edges cut regions even between equal colours.
2. Region merging: two adjacent regions ``a, b`` merge (transitively) when their mean colours are close,
   :math:`\\lVert \\bar c_a - \\bar c_b \\rVert_2 < \\tau_c` (``merge_colour_distance``, RGB in [0, 1]), and, with
   depth, fewer than half of the pixel pairs along their shared boundary jump in depth by more than ``tau_d``
   relative: :math:`|d_p - d_q| > \\tau_d \\max(d_p, d_q)` (``merge_depth_jump``).
3. Classes (the class scheme): class 0 ``background`` (stuff) and class 1 ``object`` (thing). A merged region is
   background when it touches the image border and covers at least ``background_min_fraction`` of the image, or
   when it covers more than ``object_max_fraction``; it then has instance id 0. Regions smaller than
   ``min_object_pixels`` are left unlabelled (class 0, instance 0, confidence 0: the lift ignores them). Every other
   region is one ``object`` instance, numbered 1, 2, ... in raster order of its first pixel; confidence 1.
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
    merge_depth_jump: float = 0.05
    """tau_d: relative depth jump across a boundary pixel pair that counts as a depth edge (blocks merging)."""
    background_min_fraction: float = 0.1
    """A region touching the image border and covering at least this fraction of the image is background."""
    object_max_fraction: float = 0.5
    """A region covering more than this fraction of the image is background wherever it lies."""
    min_object_pixels: int = 16
    """Regions smaller than this are left unlabelled (confidence 0)."""


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
        with warnings.catch_warnings():  # a 4th (depth) channel is intended, not an RGBA image
            warnings.filterwarnings("ignore", message=".*third dimension of 4.*", category=RuntimeWarning)
            regions = self._skimage_segmentation.felzenszwalb(
                self._features(image, depth),
                scale=cfg.scale,
                sigma=cfg.sigma,
                min_size=cfg.min_segment_pixels,
                channel_axis=-1,
            )
        merged = merge_regions(regions, image, depth, cfg.merge_colour_distance, cfg.merge_depth_jump)
        k = int(merged.max()) + 1
        area = np.bincount(merged.ravel(), minlength=k)
        border = np.zeros(k, bool)
        border[np.unique(np.concatenate([merged[0], merged[-1], merged[:, 0], merged[:, -1]]))] = True
        background = (border & (area >= cfg.background_min_fraction * H * W)) | (area > cfg.object_max_fraction * H * W)
        small = ~background & (area < cfg.min_object_pixels)
        is_object = ~background & ~small
        # instance ids 1, 2, ... in raster order of each object's first pixel
        _, first = np.unique(merged.ravel(), return_index=True)
        order = [r for r in np.argsort(first, kind="stable") if is_object[r]]
        ids = np.zeros(k, np.int64)
        ids[order] = np.arange(1, len(order) + 1)
        instance = ids[merged]
        semantic = np.where(is_object[merged], OBJECT_CLASS.id, BACKGROUND_CLASS.id).astype(np.int64)
        confidence = np.where(small[merged], 0.0, 1.0).astype(np.float32)
        return Segmentation(instance, semantic, confidence)

    def describe(self) -> dict:
        return {"segmenter": self.name, "config": asdict(self.config)}


def _build(options: SegmenterOptions) -> ClassicalSegmenter:
    return ClassicalSegmenter(options.settings.get("classical", ClassicalConfig()))


SPEC = register_segmenter(
    SegmenterSpec(
        name="classical",
        description="weights-free: Felzenszwalb regions merged by colour (and depth), one 'object' thing class",
        downloads="nothing (scikit-image, installed with lift3d[viewer])",
        build=_build,
    )
)
