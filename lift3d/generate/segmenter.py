"""A simulated 2D instance segmenter: turns tracked ground-truth instance maps into per-view, inconsistently
labelled, imperfect masks like those of Detic on Messy Rooms (Contrastive Lift (Bhalgat et al., NeurIPS 2023),
Sec. 4-5).

Noise model, applied to one view in this order (all draws from the ``rng`` passed in, in a fixed order, so a
seeded generator gives reproducible masks):

1. **drop**: a ground-truth mask smaller than ``min_area_fraction`` of the image is always missed; a mask whose
   visible part is in several pieces (heavily occluded) is missed with ``occluded_drop_prob``; any other mask is
   missed with ``drop_prob``. Missed pixels get instance 0 and semantic 0.
2. **merge**: every pair of touching masks (4-neighbours) becomes one segment with ``merge_prob``.
3. **split**: every segment is cut in two along a random line through its centroid with ``split_prob``.
4. **boundary jitter**: with ``jitter_prob`` a segment is eroded (into "no segment") or dilated (into "no
   segment" pixels only) by 1..``jitter_max_px`` pixels.
5. **spurious segments**: ``Poisson(spurious_per_view)`` random ellipses on "no segment" pixels, class "object".
6. **relabel**: segment ids become distinct random values in 1..65535 (ids are arbitrary per view, as for a real
   segmenter).
7. **confidence**: each segment gets a score ``U(confidence_range)``, times ``noisy_confidence_factor`` if it was
   merged, split, jittered or spurious; pixels without a segment get ``background_confidence``. Per pixel,
   ``conf = score * (1 - boundary_confidence_drop * exp(-dist / boundary_width_px))`` with ``dist`` the distance
   (pixels) to the nearest segment boundary.

``clean`` keeps only step 6 (a bijection GT id <-> predicted id per view, confidence 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Tuple

import numpy as np
from scipy import ndimage

MAX_ID = 65535
OBJECT_CLASS = 1
"""Class given to spurious segments and to dilated pixels that were background."""


@dataclass(frozen=True)
class SegmenterNoise:
    """Probabilities and magnitudes of the simulated segmenter's errors (see the module docstring)."""

    min_area_fraction: float = 0.0
    """Masks with fewer pixels than this fraction of the image are always dropped (too small to detect)."""
    drop_prob: float = 0.0
    """Probability that a (large enough, unfragmented) mask is missed."""
    occluded_drop_prob: float = 0.0
    """Probability that a mask whose visible part has several connected pieces (heavily occluded) is missed."""
    merge_prob: float = 0.0
    """Probability that two touching masks are reported as one segment."""
    split_prob: float = 0.0
    """Probability that a segment is cut in two along a random line through its centroid."""
    jitter_prob: float = 0.0
    """Probability that a segment's boundary is eroded or dilated."""
    jitter_max_px: int = 1
    """Largest erosion/dilation radius in pixels."""
    spurious_per_view: float = 0.0
    """Mean number (Poisson) of spurious segments per view."""
    spurious_radius_fraction: Tuple[float, float] = (0.03, 0.08)
    """Range of the semi-axes of a spurious ellipse, as a fraction of the image side."""
    confidence_range: Tuple[float, float] = (1.0, 1.0)
    """Range of the per-segment score of a correct segment."""
    noisy_confidence_factor: float = 1.0
    """Score multiplier of merged, split, jittered and spurious segments."""
    background_confidence: float = 1.0
    """Confidence of pixels without a segment."""
    boundary_confidence_drop: float = 0.0
    """Relative confidence drop at a segment boundary (0 = none, 1 = confidence 0 on the boundary)."""
    boundary_width_px: float = 1.5
    """Distance (pixels) over which the boundary drop decays by a factor e."""


SEGMENTER_PRESETS: Dict[str, SegmenterNoise] = {
    "clean": SegmenterNoise(),
    "detic-like": SegmenterNoise(
        min_area_fraction=0.0006, drop_prob=0.06, occluded_drop_prob=0.3, merge_prob=0.08, split_prob=0.06,
        jitter_prob=0.3, jitter_max_px=1, spurious_per_view=0.3, confidence_range=(0.6, 0.95),
        noisy_confidence_factor=0.7, background_confidence=0.8, boundary_confidence_drop=0.5, boundary_width_px=1.5,
    ),
    "heavy": SegmenterNoise(
        min_area_fraction=0.002, drop_prob=0.15, occluded_drop_prob=0.5, merge_prob=0.2, split_prob=0.2,
        jitter_prob=0.6, jitter_max_px=2, spurious_per_view=1.5, spurious_radius_fraction=(0.03, 0.12),
        confidence_range=(0.4, 0.9), noisy_confidence_factor=0.6, background_confidence=0.6,
        boundary_confidence_drop=0.7, boundary_width_px=2.0,
    ),
}


def _touching_pairs(label: np.ndarray) -> np.ndarray:
    """Sorted unique pairs ``[P, 2]`` (a < b) of different non-zero labels that are 4-neighbours."""
    pairs = []
    for a, b in ((label[:, :-1], label[:, 1:]), (label[:-1, :], label[1:, :])):
        m = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([np.minimum(a[m], b[m]), np.maximum(a[m], b[m])], 1))
    pairs = np.concatenate(pairs)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def _boundary_distance(label: np.ndarray) -> np.ndarray:
    """Distance (pixels) from every pixel to the nearest pixel whose 4-neighbour has another label."""
    edge = np.zeros(label.shape, bool)
    dh = label[:, :-1] != label[:, 1:]
    dv = label[:-1, :] != label[1:, :]
    edge[:, :-1] |= dh
    edge[:, 1:] |= dh
    edge[:-1, :] |= dv
    edge[1:, :] |= dv
    if not edge.any():
        return np.full(label.shape, np.inf)
    return ndimage.distance_transform_edt(~edge)


def simulate_segmenter(gt_instance: np.ndarray, gt_semantic: np.ndarray, rng: np.random.Generator,
                       noise: SegmenterNoise) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate a 2D segmenter on one view (see the module docstring for the noise model).

    ``gt_instance``: ``[H, W]`` int ground-truth ids (0 = background); ``gt_semantic``: ``[H, W]`` class ids.
    Returns ``instance`` ``[H, W]`` uint16 (0 = no segment, other ids arbitrary), ``semantic`` ``[H, W]`` uint8 and
    ``confidence`` ``[H, W]`` float32 in ``[0, 1]``.
    """
    gt = np.asarray(gt_instance).astype(np.int64)
    H, W = gt.shape
    label = gt.copy()
    noisy = set()
    next_id = int(gt.max()) + 1

    # 1. drop small, occluded or unlucky masks
    ids, areas = np.unique(gt[gt > 0], return_counts=True)
    for i, area in zip(ids, areas):
        mask = gt == i
        if area < noise.min_area_fraction * H * W:
            label[mask] = 0
            continue
        fragmented = noise.occluded_drop_prob > 0 and ndimage.label(mask)[1] > 1
        p = noise.occluded_drop_prob if fragmented else noise.drop_prob
        if rng.random() < p:
            label[mask] = 0

    # 2. merge touching pairs (union-find over the ids)
    if noise.merge_prob > 0:
        parent = {}

        def root(x: int) -> int:
            while parent.get(x, x) != x:
                x = parent[x]
            return x

        for a, b in _touching_pairs(label):
            if rng.random() < noise.merge_prob:
                ra, rb = root(int(a)), root(int(b))
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
                    noisy.add(min(ra, rb))
        if parent:
            lut = np.arange(next_id)
            for x in list(parent):
                lut[x] = root(x)
            label = lut[label]

    # 3. split along a random line through the centroid
    if noise.split_prob > 0:
        for i in np.unique(label[label > 0]):
            if rng.random() >= noise.split_prob:
                continue
            ys, xs = np.nonzero(label == i)
            angle = rng.uniform(0.0, np.pi)
            side = (xs - xs.mean()) * np.cos(angle) + (ys - ys.mean()) * np.sin(angle) > 0
            if side.any() and (~side).any():
                label[ys[side], xs[side]] = next_id
                noisy.update((int(i), next_id))
                next_id += 1

    # 4. boundary jitter (erode into / dilate into "no segment")
    if noise.jitter_prob > 0:
        for i in np.unique(label[label > 0]):
            if rng.random() >= noise.jitter_prob:
                continue
            radius = int(rng.integers(1, noise.jitter_max_px + 1))
            grow = rng.random() < 0.5
            mask = label == i
            if grow:
                label[ndimage.binary_dilation(mask, iterations=radius) & (label == 0)] = i
            else:
                core = ndimage.binary_erosion(mask, iterations=radius)
                if core.any():
                    label[mask & ~core] = 0
            noisy.add(int(i))

    # 5. spurious segments on "no segment" pixels
    if noise.spurious_per_view > 0:
        yy, xx = np.mgrid[0:H, 0:W] + 0.5
        for _ in range(int(rng.poisson(noise.spurious_per_view))):
            cy, cx = rng.uniform(0, H), rng.uniform(0, W)
            ra, rb = rng.uniform(*noise.spurious_radius_fraction, size=2) * min(H, W)
            t = rng.uniform(0, np.pi)
            u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
            v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
            blob = ((u / ra) ** 2 + (v / rb) ** 2 <= 1.0) & (label == 0)
            if blob.any():
                label[blob] = next_id
                noisy.add(next_id)
                next_id += 1

    # 6. relabel into arbitrary distinct ids 1..65535
    seg_ids = np.unique(label[label > 0])
    if len(seg_ids) > MAX_ID:
        raise ValueError(f"{len(seg_ids)} segments in one view; at most {MAX_ID} fit a uint16 instance map.")
    new_ids = rng.choice(MAX_ID, size=len(seg_ids), replace=False) + 1
    lut = np.zeros(next_id, dtype=np.int64)
    lut[seg_ids] = new_ids
    instance = lut[label].astype(np.uint16)

    # semantic class of each segment: majority ground-truth class among its pixels (object class if none)
    gt_sem = np.asarray(gt_semantic).astype(np.int64)
    semantic = np.zeros((H, W), np.uint8)
    for i in seg_ids:
        mask = label == i
        classes = gt_sem[mask]
        classes = classes[classes > 0]
        semantic[mask] = np.bincount(classes).argmax() if len(classes) else OBJECT_CLASS

    # 7. confidence
    lo, hi = noise.confidence_range
    score = np.full(next_id, noise.background_confidence)
    if len(seg_ids):
        score[seg_ids] = rng.uniform(lo, hi, size=len(seg_ids))
        noisy_present = sorted(noisy & set(seg_ids.tolist()))
        score[noisy_present] *= noise.noisy_confidence_factor
    confidence = score[label]
    if noise.boundary_confidence_drop > 0:
        dist = _boundary_distance(label)
        confidence = confidence * (1.0 - noise.boundary_confidence_drop * np.exp(-dist / noise.boundary_width_px))
    return instance, semantic, np.clip(confidence, 0.0, 1.0).astype(np.float32)


def preset(name: str, **overrides) -> SegmenterNoise:
    """Noise preset ``clean``, ``detic-like`` or ``heavy``, with optional field overrides."""
    if name not in SEGMENTER_PRESETS:
        raise ValueError(f"Unknown segmenter noise preset {name!r}; expected one of {sorted(SEGMENTER_PRESETS)}.")
    return replace(SEGMENTER_PRESETS[name], **overrides)
