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
5. **boundary bleed**: with ``bleed_prob`` a segment grows by 1..``bleed_max_px`` pixels into the segments it
   touches (it takes their rim pixels; a real mask's boundary is off by a few pixels on both sides of an edge).
6. **spurious segments**: ``Poisson(spurious_per_view)`` random ellipses on "no segment" pixels, class "object".
7. **relabel**: segment ids become distinct random values in 1..65535 (ids are arbitrary per view, as for a real
   segmenter).
8. **confidence**: each segment gets a score ``U(confidence_range)``, times ``noisy_confidence_factor`` if it was
   merged, split, jittered or spurious; pixels without a segment get ``background_confidence``. Per pixel,
   ``conf = score * (1 - boundary_confidence_drop * exp(-dist / boundary_width_px))`` with ``dist`` the distance
   (pixels) to the nearest segment boundary.
9. **class confusion**: with ``class_confusion_prob`` a segment is given another class. With the scene's
   classes of ``--classes families`` (several thing classes, one per asset family) the new class is drawn
   uniformly from the *other thing classes*: the segmenter mistakes one family for another (a cup for a bottle)
   and the segment keeps its instance id. With ``--classes binary`` the only other class is the background (a
   stuff class): the segment loses its instance id, the segmenter called the object part of the room.

Classes (:class:`SegmenterClasses`, the scene's thing and stuff ids): a segment takes the most frequent ground-truth
thing class under it (spurious segments, over stuff only, draw a thing class uniformly when there are several);
pixels outside every segment take a stuff class, the ground truth's where it is stuff and the nearest stuff
pixel's on a missed object (:func:`stuff_fill`; with ``binary`` always 0, the background).

Steps 5 and 9 draw nothing when their probability is 0, so presets without them (``clean``, ``detic-like``,
``heavy``) give the same masks as before these steps existed.

``detic-real`` is calibrated so that its per-frame PQ (:func:`lift3d.metrics.panoptic.frame_pq`) on generated
Messy Rooms scenes is in the low 40s, the PQ of real 2D segmenters on Messy Rooms (41-44, Contrastive Lift / PCF-Lift
Table 5 of the papers in ``/work/shared/papers``); ``detic-like`` (86-89) is a far better segmenter than any real
one. The measured figures and the command are in ``docs/results/segmenter-noise/``.

``clean`` keeps only step 7 (a bijection GT id <-> predicted id per view, confidence 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Sequence, Set, Tuple

import numpy as np
from scipy import ndimage

MAX_ID = 65535
OBJECT_CLASS = 1
"""Class given to spurious segments and to dilated pixels that were background (binary scheme)."""
STUFF = -1
"""Candidate of :func:`confuse_classes` meaning "a stuff class" (the pixels' :func:`stuff_fill`)."""


@dataclass(frozen=True)
class SegmenterClasses:
    """The class space the simulated segmenter labels in: the scene's thing and stuff class ids."""

    thing_ids: Tuple[int, ...] = (OBJECT_CLASS,)
    """Thing classes (segments with an instance id)."""
    stuff_ids: Tuple[int, ...] = (0,)
    """Stuff classes (pixels outside segments)."""


BINARY_CLASSES = SegmenterClasses()
"""``--classes binary``: thing 1 (object), stuff 0 (background)."""


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
    bleed_prob: float = 0.0
    """Probability that a segment's boundary bleeds into the segments it touches (takes their rim pixels)."""
    bleed_max_px: int = 1
    """Largest bleed width in pixels."""
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
    class_confusion_prob: float = 0.0
    """Probability that a segment is reported with a wrong class (uniform among the other classes)."""


SEGMENTER_PRESETS: Dict[str, SegmenterNoise] = {
    "clean": SegmenterNoise(),
    "detic-like": SegmenterNoise(
        min_area_fraction=0.0006,
        drop_prob=0.06,
        occluded_drop_prob=0.3,
        merge_prob=0.08,
        split_prob=0.06,
        jitter_prob=0.3,
        jitter_max_px=1,
        spurious_per_view=0.3,
        confidence_range=(0.6, 0.95),
        noisy_confidence_factor=0.7,
        background_confidence=0.8,
        boundary_confidence_drop=0.5,
        boundary_width_px=1.5,
    ),
    # calibrated to per-frame PQ in the low 40s (real segmenters on Messy Rooms); see the module docstring
    "detic-real": SegmenterNoise(
        min_area_fraction=0.003,
        drop_prob=0.22,
        occluded_drop_prob=0.5,
        merge_prob=0.35,
        split_prob=0.3,
        jitter_prob=0.6,
        jitter_max_px=2,
        bleed_prob=0.4,
        bleed_max_px=2,
        spurious_per_view=2.0,
        spurious_radius_fraction=(0.02, 0.08),
        confidence_range=(0.4, 0.9),
        noisy_confidence_factor=0.6,
        background_confidence=0.6,
        boundary_confidence_drop=0.7,
        boundary_width_px=2.0,
        class_confusion_prob=0.05,
    ),
    "heavy": SegmenterNoise(
        min_area_fraction=0.002,
        drop_prob=0.15,
        occluded_drop_prob=0.5,
        merge_prob=0.2,
        split_prob=0.2,
        jitter_prob=0.6,
        jitter_max_px=2,
        spurious_per_view=1.5,
        spurious_radius_fraction=(0.03, 0.12),
        confidence_range=(0.4, 0.9),
        noisy_confidence_factor=0.6,
        background_confidence=0.6,
        boundary_confidence_drop=0.7,
        boundary_width_px=2.0,
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


@dataclass
class WorkingSegments:
    """One view's segments while the noise steps of :func:`simulate_segmenter` change them (in place)."""

    label: np.ndarray
    """``[H, W]`` int64 segment id per pixel (0 = no segment); starts as the ground-truth ids."""
    next_id: int
    """Smallest id no segment has used yet (new segments from splits and spurious blobs take it)."""
    noisy: Set[int] = field(default_factory=set)
    """Ids of segments that were merged, split, jittered or spurious (their score is lowered in step 7)."""

    def new_id(self) -> int:
        """Take ``next_id`` for a new segment."""
        self.next_id += 1
        return self.next_id - 1


def drop_masks(gt: np.ndarray, seg: WorkingSegments, rng: np.random.Generator, noise: SegmenterNoise) -> None:
    """Step 1: miss small, heavily occluded or unlucky ground-truth masks (their pixels become "no segment").

    ``gt``: ``[H, W]`` int64 ground-truth ids. Masks with fewer than ``min_area_fraction * H * W`` pixels are always
    missed (no draw); every other mask, in increasing id order, draws once: missed if ``U(0, 1) < p`` with
    ``p = occluded_drop_prob`` when its visible part has several connected pieces, else ``p = drop_prob``.
    """
    H, W = gt.shape
    ids, areas = np.unique(gt[gt > 0], return_counts=True)
    for i, area in zip(ids, areas):
        mask = gt == i
        if area < noise.min_area_fraction * H * W:
            seg.label[mask] = 0
            continue
        fragmented = noise.occluded_drop_prob > 0 and ndimage.label(mask)[1] > 1
        p = noise.occluded_drop_prob if fragmented else noise.drop_prob
        if rng.random() < p:
            seg.label[mask] = 0


def merge_touching(seg: WorkingSegments, rng: np.random.Generator, noise: SegmenterNoise) -> None:
    """Step 2: join touching segments (4-neighbours) with probability ``merge_prob`` per pair.

    Pairs are visited in sorted order (one draw each); merged groups are tracked with union-find and take the
    smallest id of the group, which is marked noisy. No draws when ``merge_prob == 0``.
    """
    if not noise.merge_prob > 0:
        return
    parent: Dict[int, int] = {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in _touching_pairs(seg.label):
        if rng.random() < noise.merge_prob:
            ra, rb = root(int(a)), root(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
                seg.noisy.add(min(ra, rb))
    if parent:
        lut = np.arange(seg.next_id)
        for x in list(parent):
            lut[x] = root(x)
        seg.label = lut[seg.label]


def split_segments(seg: WorkingSegments, rng: np.random.Generator, noise: SegmenterNoise) -> None:
    """Step 3: cut segments in two along a random line through their centroid, with probability ``split_prob``.

    For each segment in increasing id order: one draw decides; a cut segment then draws the line's angle
    ``t ~ U(0, pi)``, and its pixels with ``(x - x_mean) cos t + (y - y_mean) sin t > 0`` get a new id (both halves
    noisy). No draws when ``split_prob == 0``.
    """
    if not noise.split_prob > 0:
        return
    label = seg.label
    for i in np.unique(label[label > 0]):
        if rng.random() >= noise.split_prob:
            continue
        ys, xs = np.nonzero(label == i)
        angle = rng.uniform(0.0, np.pi)
        side = (xs - xs.mean()) * np.cos(angle) + (ys - ys.mean()) * np.sin(angle) > 0
        if side.any() and (~side).any():
            new = seg.new_id()
            label[ys[side], xs[side]] = new
            seg.noisy.update((int(i), new))


def jitter_boundaries(seg: WorkingSegments, rng: np.random.Generator, noise: SegmenterNoise) -> None:
    """Step 4: erode or dilate segment boundaries, with probability ``jitter_prob`` per segment.

    For each segment in increasing id order: one draw decides; a jittered segment then draws a radius in
    ``1..jitter_max_px`` pixels and a coin (grow or shrink). Growing claims only "no segment" pixels; shrinking
    gives the eroded rim to "no segment" (skipped if nothing would be left). No draws when ``jitter_prob == 0``.
    """
    if not noise.jitter_prob > 0:
        return
    label = seg.label
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
        seg.noisy.add(int(i))


def bleed_boundaries(seg: WorkingSegments, rng: np.random.Generator, noise: SegmenterNoise) -> None:
    """Step 5: grow segments into the segments they touch, with probability ``bleed_prob`` per segment.

    For each segment in increasing id order: one draw decides; a bleeding segment then draws a width in
    ``1..bleed_max_px`` pixels, and the pixels of *other* segments within that many dilation steps (4-neighbour
    structuring element) of it become its pixels (it is marked noisy). Unlike step 4 it never claims "no segment"
    pixels, so touching neighbours exchange a rim as real masks do along an edge. No draws when ``bleed_prob == 0``.
    """
    if not noise.bleed_prob > 0:
        return
    label = seg.label
    for i in np.unique(label[label > 0]):
        if rng.random() >= noise.bleed_prob:
            continue
        width = int(rng.integers(1, noise.bleed_max_px + 1))
        mask = label == i
        grown = ndimage.binary_dilation(mask, iterations=width) & (label > 0) & ~mask
        label[grown] = i
        seg.noisy.add(int(i))


def add_spurious_segments(seg: WorkingSegments, rng: np.random.Generator, noise: SegmenterNoise) -> None:
    """Step 5: ``Poisson(spurious_per_view)`` random ellipses on "no segment" pixels, each a new noisy segment.

    Per ellipse the draws are: centre ``(cy, cx)`` uniform in the image, semi-axes ``(ra, rb)`` uniform in
    ``spurious_radius_fraction * min(H, W)``, angle ``t ~ U(0, pi)``. Pixel centre ``(x, y)`` is inside when
    ``(u / ra)^2 + (v / rb)^2 <= 1`` with ``u = (x - cx) cos t + (y - cy) sin t``,
    ``v = -(x - cx) sin t + (y - cy) cos t``. No draws when ``spurious_per_view == 0``.
    """
    if not noise.spurious_per_view > 0:
        return
    label = seg.label
    H, W = label.shape
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    for _ in range(int(rng.poisson(noise.spurious_per_view))):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        ra, rb = rng.uniform(*noise.spurious_radius_fraction, size=2) * min(H, W)
        t = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        blob = ((u / ra) ** 2 + (v / rb) ** 2 <= 1.0) & (label == 0)
        if blob.any():
            new = seg.new_id()
            label[blob] = new
            seg.noisy.add(new)


def relabel(seg: WorkingSegments, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Step 6: give the segments distinct random ids in ``1..65535`` (ids are arbitrary per view).

    One draw: ``rng.choice(65535, size=S, replace=False) + 1`` for the ``S`` segments in increasing id order.
    Returns the instance map ``[H, W]`` uint16 and the working ids of the segments ``[S]`` (sorted). Raises
    ``ValueError`` when more than 65535 segments would not fit a uint16 map.
    """
    label = seg.label
    seg_ids = np.unique(label[label > 0])
    if len(seg_ids) > MAX_ID:
        raise ValueError(f"{len(seg_ids)} segments in one view; at most {MAX_ID} fit a uint16 instance map.")
    new_ids = rng.choice(MAX_ID, size=len(seg_ids), replace=False) + 1
    lut = np.zeros(seg.next_id, dtype=np.int64)
    lut[seg_ids] = new_ids
    return lut[label].astype(np.uint16), seg_ids


def majority_semantic(
    label: np.ndarray,
    seg_ids: np.ndarray,
    gt_semantic: np.ndarray,
    thing_ids: Optional[Sequence[int]] = None,
    fallback: int = OBJECT_CLASS,
) -> np.ndarray:
    """Class of each segment: the most frequent ground-truth thing class under it (``fallback`` if none).

    ``label``: ``[H, W]`` working segment ids; ``seg_ids``: ``[S]`` ids to label; ``gt_semantic``: ``[H, W]``;
    ``thing_ids``: the thing classes (None: every non-zero class, the binary scheme's rule). Returns ``[H, W]``
    int64 (0 where there is no segment). Draws nothing.
    """
    gt_sem = np.asarray(gt_semantic).astype(np.int64)
    semantic = np.zeros(label.shape, np.int64)
    for i in seg_ids:
        mask = label == i
        classes = gt_sem[mask]
        classes = classes[classes > 0] if thing_ids is None else classes[np.isin(classes, thing_ids)]
        semantic[mask] = np.bincount(classes).argmax() if len(classes) else fallback
    return semantic


def stuff_fill(gt_semantic: np.ndarray, classes: SegmenterClasses) -> np.ndarray:
    """Stuff class a semantic segmenter gives each pixel outside its thing segments: the ground-truth class where
    it is stuff, elsewhere (a missed object) the class of the nearest ground-truth stuff pixel (Euclidean distance
    transform; the first stuff class when the view shows no stuff). ``[H, W]`` int64. Draws nothing."""
    gt = np.asarray(gt_semantic).astype(np.int64)
    if len(classes.stuff_ids) == 1:
        return np.full(gt.shape, classes.stuff_ids[0], np.int64)
    is_stuff = np.isin(gt, classes.stuff_ids)
    if not is_stuff.any():
        return np.full(gt.shape, classes.stuff_ids[0], np.int64)
    _, (iy, ix) = ndimage.distance_transform_edt(~is_stuff, return_indices=True)
    return gt[iy, ix]


def segment_classes(
    label: np.ndarray,
    seg_ids: np.ndarray,
    gt_semantic: np.ndarray,
    rng: np.random.Generator,
    classes: Optional[SegmenterClasses],
) -> np.ndarray:
    """Class map ``[H, W]`` uint8 of the segments and of the pixels outside them.

    ``classes`` None (the legacy binary rule): :func:`majority_semantic` with every non-zero class a thing, 0
    outside segments. Otherwise each segment gets its majority ground-truth thing class; a segment over no thing
    (spurious, or grown over stuff) gets the single thing class, or with several thing classes one drawn uniformly
    (one draw of all such segments, in increasing id order, only when there are any); pixels outside segments get
    :func:`stuff_fill`. With the binary scheme's table (thing 1, stuff 0) this equals the legacy rule and draws
    nothing.
    """
    if classes is None:
        return majority_semantic(label, seg_ids, gt_semantic).astype(np.uint8)
    semantic = majority_semantic(label, seg_ids, gt_semantic, classes.thing_ids, fallback=-1)
    unknown = [i for i in seg_ids if semantic[label == i][0] < 0] if len(seg_ids) else []
    if unknown:
        things = np.asarray(classes.thing_ids, np.int64)
        picks = things[rng.integers(len(things), size=len(unknown))] if len(things) > 1 else [things[0]] * len(unknown)
        for i, c in zip(unknown, picks):
            semantic[label == i] = c
    semantic = np.where(label > 0, semantic, stuff_fill(gt_semantic, classes))
    return semantic.astype(np.uint8)


def segment_confidence(
    seg: WorkingSegments, seg_ids: np.ndarray, rng: np.random.Generator, noise: SegmenterNoise
) -> np.ndarray:
    """Step 7: per-pixel confidence ``[H, W]`` float32 in ``[0, 1]``.

    Each segment ``s`` gets a score ``c_s ~ U(confidence_range)`` (one draw of ``S`` values, segments in increasing
    id order), times ``noisy_confidence_factor`` if it is noisy; "no segment" pixels get ``background_confidence``.
    With ``d`` the distance (pixels) to the nearest segment boundary, a pixel of segment ``s`` gets

        ``conf = clip(c_s * (1 - boundary_confidence_drop * exp(-d / boundary_width_px)), 0, 1)``.
    """
    lo, hi = noise.confidence_range
    score = np.full(seg.next_id, noise.background_confidence)
    if len(seg_ids):
        score[seg_ids] = rng.uniform(lo, hi, size=len(seg_ids))
        noisy_present = sorted(seg.noisy & set(seg_ids.tolist()))
        score[noisy_present] *= noise.noisy_confidence_factor
    confidence = score[seg.label]
    if noise.boundary_confidence_drop > 0:
        dist = _boundary_distance(seg.label)
        confidence = confidence * (1.0 - noise.boundary_confidence_drop * np.exp(-dist / noise.boundary_width_px))
    return np.clip(confidence, 0.0, 1.0).astype(np.float32)


def confuse_classes(
    instance: np.ndarray,
    semantic: np.ndarray,
    gt_semantic: np.ndarray,
    rng: np.random.Generator,
    noise: SegmenterNoise,
    classes: Optional[SegmenterClasses] = None,
) -> None:
    """Step 9: give segments a wrong class with probability ``class_confusion_prob`` (in place).

    ``instance``: ``[H, W]`` uint16 relabelled ids; ``semantic``: ``[H, W]`` uint8 classes of the segments. Each
    segment in increasing (relabelled) id order draws once; a confused segment with class ``c`` then draws its new
    class uniformly from a candidate list (one draw):

    * ``classes`` None (legacy rule): ``{0..C-1} \\ {c}`` with ``C = max(2, max(gt_semantic) + 1)``; a segment
      confused with class 0 (stuff: background) gets instance 0.
    * with a class table of several thing classes (``--classes families``): the other thing classes, so the
      segmenter mistakes one asset family for another (a cup for a bottle) and keeps the instance.
    * with a single thing class (the binary table): the only candidate is stuff; the segment gets instance 0 and
      the pixels' :func:`stuff_fill` class (with the binary table the same as the legacy rule, draws included).

    No draws when ``class_confusion_prob == 0``.
    """
    if not noise.class_confusion_prob > 0:
        return
    num_classes = max(2, int(np.asarray(gt_semantic).max()) + 1)
    fill = None
    for i in np.unique(instance[instance > 0]):
        if rng.random() >= noise.class_confusion_prob:
            continue
        mask = instance == i
        own = int(semantic[mask][0])
        if classes is None:
            others = [c for c in range(num_classes) if c != own]
        else:
            others = [c for c in classes.thing_ids if c != own] or [STUFF]
        new = others[int(rng.integers(len(others)))]
        if new == STUFF:
            fill = stuff_fill(gt_semantic, classes) if fill is None else fill
            semantic[mask] = fill[mask]
            instance[mask] = 0
            continue
        semantic[mask] = new
        if classes is None and new == 0:
            instance[mask] = 0


def simulate_segmenter(
    gt_instance: np.ndarray,
    gt_semantic: np.ndarray,
    rng: np.random.Generator,
    noise: SegmenterNoise,
    classes: Optional[SegmenterClasses] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate a 2D segmenter on one view (see the module docstring for the noise model).

    ``gt_instance``: ``[H, W]`` int ground-truth ids (0 = background); ``gt_semantic``: ``[H, W]`` class ids;
    ``classes``: the scene's thing and stuff classes (None: the legacy binary rule, class 0 stuff, others things;
    the generator passes the scene's table, :data:`BINARY_CLASSES` giving the same masks as None).
    Returns ``instance`` ``[H, W]`` uint16 (0 = no segment, other ids arbitrary), ``semantic`` ``[H, W]`` uint8 and
    ``confidence`` ``[H, W]`` float32 in ``[0, 1]``. The steps run in the module docstring's order and draw from
    ``rng`` in that order, so a seeded generator gives reproducible masks.
    """
    gt = np.asarray(gt_instance).astype(np.int64)
    seg = WorkingSegments(gt.copy(), int(gt.max()) + 1)
    drop_masks(gt, seg, rng, noise)
    merge_touching(seg, rng, noise)
    split_segments(seg, rng, noise)
    jitter_boundaries(seg, rng, noise)
    bleed_boundaries(seg, rng, noise)
    add_spurious_segments(seg, rng, noise)
    instance, seg_ids = relabel(seg, rng)
    semantic = segment_classes(seg.label, seg_ids, gt_semantic, rng, classes)
    confidence = segment_confidence(seg, seg_ids, rng, noise)
    confuse_classes(instance, semantic, gt_semantic, rng, noise, classes)
    return instance, semantic, confidence


def preset(name: str, **overrides) -> SegmenterNoise:
    """Noise preset ``clean``, ``detic-like``, ``detic-real`` or ``heavy``, with optional field overrides."""
    if name not in SEGMENTER_PRESETS:
        raise ValueError(f"Unknown segmenter noise preset {name!r}; expected one of {sorted(SEGMENTER_PRESETS)}.")
    return replace(SEGMENTER_PRESETS[name], **overrides)
