"""Panoptic quality: scene-level PQ (PQ^scene) and per-frame PQ over integer id maps.

PQ^scene (Panoptic Lifting, used by Contrastive Lift, Contrastive Lift Sec. 5) treats a whole scene as
one big image: a *segment* is every pixel of every frame that carries one ``(class, id)`` pair,
so an object whose predicted id changes between views is split into several segments and is
penalised. Per-frame PQ (Kirillov et al.) scores each frame on its own and ignores whether ids
agree across views.

The procedure, as the Panoptic Lifting / Contrastive Lift evaluation computes it (project method
notes, "Scene-level PQ"), for the pixels of all frames pooled together (the caller resizes pred
and GT to a common size per frame, e.g. 512x512 nearest, beforehand):

1. GT pixels whose class is in ``void_gt`` are void and never count in N below. With
   ``void_gt_mode="drop"`` (default, as the reference evaluation does) they are removed before
   anything else, so a prediction on them simply loses those pixels (the rest of the segment is
   still scored, and is an FP if unmatched); with ``"keep"`` they stay as void GT, subtracted from
   unions and counting towards the ">50 % on void GT" excuse of step 6.
2. Predicted pixels whose class is negative, in ``void_pred`` or not in ``things | stuff`` are
   *void predictions*.
3. The small-class rule (:func:`kept_classes`), as Panoptic Lifting's evaluation applies it
   (``get_non_robust_classes_for_image`` and ``unused_classes`` in its ``panoptic_quality``): with N
   the evaluated pixels (GT not void_gt; pred pixels are counted on the same pixels), a class of
   ``things | stuff`` is dropped iff it is absent from both pred and GT, or it is *present* on a side
   with fewer than ``min_class_fraction`` (0.5 %) x N pixels there. A class present in GT and
   missing from the prediction is **kept**: its GT segments are false negatives. A class the
   prediction invents (present there above the threshold, absent from GT) is kept: its segments
   are false positives. (``small_class_rule="absent_counts_as_small"``, lift3d's former
   default, treated a count of 0 as small and so scored a missed class as if it did not exist;
   ``"small_in_both"`` drops only classes small on both sides; neither is the reference.) The pixels
   of a dropped class *become void in place*:

   - a GT pixel of a dropped class becomes **void GT**: it stays in the evaluation, so a predicted
     segment covering it keeps it in |P| but it is subtracted from the union (``|P on void GT|``)
     and counts towards the ">50 % on void GT" excuse of step 6;
   - a predicted pixel of a dropped class becomes a **void prediction**: it stays, so a GT segment
     covered by it keeps it in |G| but it is subtracted from the union (``|void pred on G|``) and
     counts towards the ">50 % predicted void" excuse of step 6.

   This is the "void colour" reading of the reference (a category outside the evaluated set is
   mapped to void, not deleted); deleting the pixels instead would give the same IoUs but would
   turn excused segments into FPs / FNs.
4. Instance ids of stuff classes are set to 0 in pred and GT (one segment per stuff class). Thing
   ids carry no special value: ``(thing, 0)`` is a segment like any other.
5. A predicted segment P and a GT segment G of the same class match iff IoU(P, G) > 0.5 with

   .. math::
       I = |P \\cap G|,\\qquad
       U = |P| - |P \\cap \\mathrm{void_{GT}}| + |G| - |G \\cap \\mathrm{void_{pred}}| - I,\\qquad
       \\mathrm{IoU} = I / U .

   IoU > 0.5 makes matches unique (one G per P and one P per G).
6. Unmatched G is a false negative unless ``|G ∩ void_pred| / |G| > 0.5``; unmatched P is a false
   positive unless ``|P ∩ void_GT| / |P| > 0.5``.
7. Per class c:

   .. math::
       PQ_c = \\frac{\\sum_{(P,G)\\in TP_c} \\mathrm{IoU}(P,G)}{|TP_c| + |FP_c|/2 + |FN_c|/2},\\quad
       SQ_c = \\frac{\\sum_{TP_c} \\mathrm{IoU}}{|TP_c|},\\quad
       RQ_c = \\frac{|TP_c|}{|TP_c| + |FP_c|/2 + |FN_c|/2},

   so PQ_c = SQ_c RQ_c. PQ, SQ, RQ are the unweighted means over the remaining classes (things and
   stuff together). A remaining class with TP + FP + FN = 0 (all of its segments excused) carries
   no evidence and is left out of the means (its stats are NaN); SQ_c is 0 when TP_c = 0 and the
   class has FPs or FNs. (The reference prints SQ and RQ swapped; PQ is unaffected; lift3d reports
   them as defined here.)

Implementation: each ``(class, id)`` pair is encoded as one int64 key
``class * span + id - id_min``; three passes over chunks of frames (class counts, segment areas,
pred x GT overlap table) use ``bincount`` on dense keys (``np.unique`` when the key space is
sparse), so 50 frames of 512x512 with 500 objects take about half a second on a small CPU and
memory stays bounded by the chunk size plus two int32 keys per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np

MATCH_IOU = 0.5
"""A same-class pred/GT pair is a true positive iff IoU > MATCH_IOU (0.5 makes matches unique)."""

VOID_EXCUSE_FRACTION = 0.5
"""An unmatched GT (pred) segment is not an FN (FP) if more than this fraction of it is predicted
void (lies on void GT)."""

MIN_CLASS_FRACTION = 0.005
"""Default: classes with fewer than 0.5 % of the evaluated pixels (in pred or GT) become void."""

_DENSE_KEY_LIMIT = 1 << 22
"""Key spaces up to this size are counted with ``np.bincount`` (32 MiB of counts); larger, sparse
key spaces fall back to ``np.unique``."""


@dataclass
class ClassStats:
    """Matching counts and quality of one class."""

    tp: int
    """Matched (IoU > 0.5) pred/GT segment pairs."""
    fp: int
    """Unmatched predicted segments not excused by void GT."""
    fn: int
    """Unmatched GT segments not excused by void predictions."""
    iou_sum: float
    """Sum of the IoUs of the true positives."""
    pq: float
    """iou_sum / (tp + fp/2 + fn/2); NaN when tp + fp + fn = 0."""
    sq: float
    """iou_sum / tp; 0 when tp = 0 (and fp + fn > 0); NaN when tp + fp + fn = 0."""
    rq: float
    """tp / (tp + fp/2 + fn/2); NaN when tp + fp + fn = 0."""

    @staticmethod
    def from_counts(tp: int, fp: int, fn: int, iou_sum: float) -> "ClassStats":
        """Build the stats (with PQ, SQ, RQ) from raw counts."""
        denom = tp + 0.5 * fp + 0.5 * fn
        if denom == 0:
            nan = float("nan")
            return ClassStats(int(tp), int(fp), int(fn), float(iou_sum), nan, nan, nan)
        sq = iou_sum / tp if tp > 0 else 0.0
        return ClassStats(
            int(tp), int(fp), int(fn), float(iou_sum), float(iou_sum / denom), float(sq), float(tp / denom)
        )

    @property
    def has_evidence(self) -> bool:
        """True when the class has at least one TP, FP or FN (it enters the class means)."""
        return self.tp + self.fp + self.fn > 0

    def to_dict(self) -> dict:
        """Plain-Python dict (JSON-serialisable)."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "iou_sum": self.iou_sum,
            "pq": self.pq,
            "sq": self.sq,
            "rq": self.rq,
        }


@dataclass
class PanopticResult:
    """Result of :func:`scene_pq` or :func:`frame_pq`. Values in [0, 1] (multiply by 100 for tables)."""

    pq: float
    """Mean PQ over classes with evidence (scene_pq) or mean over frames of the per-frame class mean (frame_pq). NaN if nothing was scored."""
    sq: float
    """Mean SQ, averaged like ``pq``."""
    rq: float
    """Mean RQ, averaged like ``pq``."""
    per_class: dict[int, ClassStats]
    """Stats per remaining class id. For frame_pq the counts are summed over frames and PQ/SQ/RQ are recomputed from the sums."""
    pq_things: float = float("nan")
    """Mean PQ over thing classes only (same averaging as ``pq``)."""
    pq_stuff: float = float("nan")
    """Mean PQ over stuff classes only (same averaging as ``pq``)."""
    dropped_classes: tuple[int, ...] = ()
    """Classes present in pred or GT but turned void by the < min_class_fraction rule (frame_pq: in at least one frame); classes absent from both are not listed."""
    num_frames: int = 0
    """Number of frames evaluated."""
    per_frame_pq: list[float] | None = None
    """frame_pq only: PQ of every frame (NaN for a frame with nothing to score)."""
    metadata: dict = field(default_factory=dict)
    """Settings used (kind, merge_things, min_class_fraction, ...)."""

    def to_dict(self) -> dict:
        """Plain-Python dict (JSON-serialisable; NaN stays float NaN)."""
        return {
            "pq": self.pq,
            "sq": self.sq,
            "rq": self.rq,
            "pq_things": self.pq_things,
            "pq_stuff": self.pq_stuff,
            "per_class": {int(c): s.to_dict() for c, s in sorted(self.per_class.items())},
            "dropped_classes": [int(c) for c in self.dropped_classes],
            "num_frames": self.num_frames,
            "per_frame_pq": None if self.per_frame_pq is None else [float(v) for v in self.per_frame_pq],
            "metadata": dict(self.metadata),
        }


# ----------------------------------------------------------------------------- input handling


def _as_frames(x, name: str) -> list[np.ndarray]:
    """A list of [H, W] arrays from a list/tuple of arrays or tensors, or one [H, W] / [F, H, W] array."""
    if isinstance(x, (list, tuple)):
        frames = [np.asarray(f) for f in x]
    else:
        arr = np.asarray(x)
        if arr.ndim == 2:
            frames = [arr]
        elif arr.ndim == 3:
            frames = list(arr)
        else:
            raise ValueError(f"{name}: expected a list of [H, W] id maps or one [F, H, W] array, got shape {arr.shape}")
    for i, f in enumerate(frames):
        if f.ndim != 2:
            raise ValueError(
                f"{name}, frame {i}: expected an [H, W] id map, got shape {f.shape}; pass one 2D array per frame"
            )
        if not (np.issubdtype(f.dtype, np.integer) or f.dtype == np.bool_):
            raise ValueError(
                f"{name}, frame {i}: id maps must be integer arrays, got dtype {f.dtype}; convert with .astype(np.int64) "
                "(round first if the values came from a float image)"
            )
        if f.dtype == np.bool_:
            frames[i] = f.astype(np.uint8)
        elif f.dtype == np.uint64:
            if f.size and int(f.max()) >= 1 << 62:
                raise ValueError(
                    f"{name}, frame {i}: ids up to {int(f.max())} do not fit int64; relabel them to small integers"
                )
            frames[i] = f.astype(np.int64)
    return frames


def _check_frames(pred_sem, pred_inst, gt_sem, gt_inst) -> tuple[list, list, list, list]:
    names = ("pred_sem", "pred_inst", "gt_sem", "gt_inst")
    lists = [_as_frames(x, n) for x, n in zip((pred_sem, pred_inst, gt_sem, gt_inst), names)]
    lengths = {n: len(frames) for n, frames in zip(names, lists)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"number of frames differs between inputs: {lengths}; pass the same frames in the same order")
    for i in range(len(lists[0])):
        shapes = {n: frames[i].shape for n, frames in zip(names, lists)}
        if len(set(shapes.values())) != 1:
            raise ValueError(
                f"frame {i}: id maps have different shapes {shapes}; resize pred and GT to the same size "
                "(nearest neighbour) before scoring"
            )
    return tuple(lists)  # type: ignore[return-value]


def _class_sets(things, stuff, void_gt, void_pred) -> tuple[frozenset, frozenset, frozenset, frozenset]:
    things, stuff = frozenset(int(c) for c in things), frozenset(int(c) for c in stuff)
    void_gt, void_pred = frozenset(int(c) for c in void_gt), frozenset(int(c) for c in void_pred)
    if things & stuff:
        raise ValueError(
            f"classes {sorted(things & stuff)} are listed as both things and stuff; each class is one or the other"
        )
    if void_gt & (things | stuff):
        raise ValueError(
            f"void_gt classes {sorted(void_gt & (things | stuff))} are also things/stuff; a void class is not scored"
        )
    if void_pred & (things | stuff):
        raise ValueError(
            f"void_pred classes {sorted(void_pred & (things | stuff))} are also things/stuff; a void class is not scored"
        )
    if not things | stuff:
        raise ValueError("things and stuff are both empty: nothing to score")
    if any(c < 0 for c in things | stuff):
        raise ValueError(
            f"things/stuff contain negative ids {sorted(c for c in things | stuff if c < 0)}; negative ids mean 'void prediction'"
        )
    return things, stuff, void_gt, void_pred


# ----------------------------------------------------------------------------- counting helpers


def _map_labels(labels: np.ndarray, keys: np.ndarray, values: np.ndarray, default: int) -> np.ndarray:
    """``values[j]`` where ``labels == keys[j]``, else ``default``.

    labels [n] any integer dtype; keys [K] sorted unique int64; values [K] int64 -> [n] int64. A
    lookup table over ``[labels.min(), labels.max()]`` when that range is small, else a binary search.
    """
    if labels.size == 0:
        return np.zeros(0, np.int64)
    if keys.size == 0:
        return np.full(labels.shape, default, np.int64)
    lo, hi = int(labels.min()), int(labels.max())
    if hi - lo < _DENSE_KEY_LIMIT:
        lut = np.full(hi - lo + 1, default, np.int64)
        inside = (keys >= lo) & (keys <= hi)
        lut[keys[inside] - lo] = values[inside]
        if lo == 0:
            return lut[labels]
        if lo > 0:  # labels - lo stays in range for any dtype
            return lut[labels - lo]
        return lut[labels.astype(np.int64) - lo]
    labels = labels.astype(np.int64, copy=False)
    idx = np.minimum(np.searchsorted(keys, labels), keys.size - 1)
    return np.where(keys[idx] == labels, values[idx], default).astype(np.int64)


def _class_index(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Index of each label [n] in the sorted class ids ``classes`` [K], or -1 where it is none of them."""
    return _map_labels(labels, classes, np.arange(classes.size, dtype=np.int64), -1)


class _KeyCounter:
    """Counts of non-negative int64 keys accumulated over chunks of pixels.

    Dense (one ``np.bincount`` table of size ``space``) when the key space is small, else sparse
    (``np.unique`` per chunk, merged at the end).
    """

    def __init__(self, space: int):
        self.space = int(space)
        self.dense = self.space <= _DENSE_KEY_LIMIT
        self.counts = np.zeros(self.space if self.dense else 0, np.int64)
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: np.ndarray) -> None:
        """Count the keys [n] of one chunk."""
        if self.dense:
            self.counts += np.bincount(keys, minlength=self.space)
        else:
            self.parts.append(np.unique(keys, return_counts=True))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted keys with a non-zero count [m], their counts [m])."""
        if self.dense:
            keys = np.flatnonzero(self.counts)
            return keys, self.counts[keys]
        if not self.parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys, inverse = np.unique(np.concatenate([k for k, _ in self.parts]), return_inverse=True)
        counts = np.bincount(
            inverse.reshape(-1), weights=np.concatenate([c for _, c in self.parts]), minlength=keys.size
        )
        return keys, counts.astype(np.int64)


# ----------------------------------------------------------------------------- core


@dataclass
class _Chunk:
    """Consecutive frames pooled into flat integer arrays [n] (the input dtypes, not widened)."""

    first_frame: int
    offsets: np.ndarray  # [frames + 1] pixel offsets of the frames inside the chunk
    ps: np.ndarray
    pi: np.ndarray
    gs: np.ndarray
    gi: np.ndarray


def _chunks(lists, first_frame: int = 0, max_pixels: int = 1 << 19) -> list[_Chunk]:
    """Group consecutive frames into chunks of about ``max_pixels`` pixels (bounded memory, cache-friendly)."""
    chunks, group = [], []

    def flush():
        if group:
            cols = [np.concatenate([lists[j][f].reshape(-1) for f in group]) for j in range(4)]
            offsets = np.concatenate([[0], np.cumsum([lists[0][f].size for f in group])]).astype(np.int64)
            chunks.append(_Chunk(first_frame + group[0], offsets, *cols))
            group.clear()

    size = 0
    for f in range(len(lists[0])):
        group.append(f)
        size += lists[0][f].size
        if size >= max_pixels:
            flush()
            size = 0
    flush()
    return chunks


SMALL_CLASS_RULES = ("reference", "absent_counts_as_small", "small_in_both")
"""Names accepted by ``small_class_rule`` (module docstring, step 3); only ``"reference"`` is the reference rule."""


@dataclass
class _ClassTables:
    """Step 1-2 lookup of every chunk pixel's class: original class ids -> scored class index."""

    scored_ids: np.ndarray
    """Scored class ids [K] (thing classes merged into the smallest one when ``merge_things``)."""
    is_thing: np.ndarray
    """[K] bool: the scored class is a thing (its instance ids matter)."""
    pred_keys: np.ndarray
    """Sorted original class ids [K0] recognised in predictions."""
    pred_values: np.ndarray
    """[K0] scored class index of each ``pred_keys`` entry."""
    gt_keys: np.ndarray
    """Sorted original class ids [K0 + V] recognised in GT (scored classes and void_gt)."""
    gt_values: np.ndarray
    """[K0 + V] scored class index of each ``gt_keys`` entry, -2 for void_gt classes."""
    void_gt_mode: str
    """``"drop"`` or ``"keep"`` (step 1)."""

    @staticmethod
    def build(
        things: frozenset, stuff: frozenset, void_gt: frozenset, merge_things: bool, void_gt_mode: str
    ) -> "_ClassTables":
        classes = np.array(sorted(things | stuff), np.int64)  # original class ids [K0]
        merged = min(things) if (merge_things and things) else None
        if merged is not None:
            scored_ids = np.array(sorted({merged} | set(stuff)), np.int64)
            to_scored = np.searchsorted(scored_ids, [merged if c in things else c for c in classes.tolist()]).astype(
                np.int64
            )
        else:
            scored_ids, to_scored = classes, np.arange(classes.size, dtype=np.int64)
        is_thing = np.array([c in things or c == merged for c in scored_ids.tolist()], bool)
        void_ids = np.array(sorted(void_gt), np.int64)
        gt_keys = np.concatenate([classes, void_ids])
        order = np.argsort(gt_keys)
        gt_values = np.concatenate([to_scored, np.full(void_ids.size, -2, np.int64)])[order]
        return _ClassTables(scored_ids, is_thing, classes, to_scored, gt_keys[order], gt_values, void_gt_mode)

    @property
    def num_classes(self) -> int:
        return int(self.scored_ids.size)

    def classify(self, ch: _Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steps 1-2 on one chunk: (pred class index [n], -1 = void prediction; GT class index [n], -2 =
        void_gt; pred class index where GT is not void_gt, else -1, for the small-class counts)."""
        pcls = _map_labels(ch.ps, self.pred_keys, self.pred_values, -1)
        gcls = _map_labels(ch.gs, self.gt_keys, self.gt_values, -3)
        unknown = gcls == -3
        if unknown.any():
            first = int(np.flatnonzero(unknown)[0])
            frame = ch.first_frame + int(np.searchsorted(ch.offsets, first, side="right")) - 1
            ids = np.unique(ch.gs[unknown])[:10].tolist()
            raise ValueError(
                f"frame {frame}: GT class ids {ids} are neither things, stuff nor void_gt; "
                "add them to void_gt (or to things/stuff) so every GT pixel has a role"
            )
        on_void = gcls == -2
        if self.void_gt_mode == "drop":
            pcls[on_void] = -1  # a dropped pixel takes no part at all: void in pred and GT
            return pcls, gcls, pcls
        return pcls, gcls, np.where(on_void, -1, pcls)


def _count_classes(chunks: list[_Chunk], tables: _ClassTables) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Pass 1: (pred pixels per scored class [K] where GT is not void_gt, GT pixels per class [K],
    smallest and largest instance id seen on either side)."""
    k = tables.num_classes
    pred_counts, gt_counts = np.zeros(k, np.int64), np.zeros(k, np.int64)
    id_lo, id_hi = 0, 0
    for ch in chunks:
        _, gcls, pcls_eval = tables.classify(ch)
        gt_counts += np.bincount(gcls + 2, minlength=k + 2)[2:]
        pred_counts += np.bincount(pcls_eval + 1, minlength=k + 1)[1:]
        for ids in (ch.pi, ch.gi):
            if ids.size:
                id_lo, id_hi = min(id_lo, int(ids.min())), max(id_hi, int(ids.max()))
    return pred_counts, gt_counts, id_lo, id_hi


def kept_classes(
    pred_counts: np.ndarray, gt_counts: np.ndarray, min_class_fraction: float, rule: str = "reference"
) -> tuple[np.ndarray, np.ndarray]:
    """Step 3, the small-class rule: which classes are scored and which are turned void.

    With N = ``gt_counts.sum()`` evaluated pixels (GT not void_gt; the prediction is counted on the same
    pixels, so both sides have N) and t = ``min_class_fraction`` * N:

    - ``"reference"`` (Panoptic Lifting's evaluation, reused by Contrastive Lift): a class is dropped iff
      it is absent from both sides, or *present* on a side with fewer than t pixels there:
      :math:`\\mathrm{drop}_c = (n^P_c = 0 \\wedge n^G_c = 0) \\vee (0 < n^P_c < t) \\vee (0 < n^G_c < t)`.
      A class present in GT and missing from the prediction stays (its GT segments are FNs), and a
      class the prediction invents (>= t pixels) stays (its segments are FPs).
    - ``"absent_counts_as_small"`` (lift3d's former default, *not* the reference): a count of 0 counts as
      small, so a class the prediction misses entirely is dropped and scored as if it did not exist.
    - ``"small_in_both"`` (*not* the reference): dropped only when small on both sides.

    Args:
        pred_counts, gt_counts: pixels per class [K] in the prediction / GT.
    Returns:
        (keep [K] bool, dropped [K] bool: present on some side but turned void; absent classes are in neither).
    """
    if rule not in SMALL_CLASS_RULES:
        hint = (
            " ('either' is now 'absent_counts_as_small', 'both' is 'small_in_both')"
            if rule in ("either", "both")
            else ""
        )
        raise ValueError(f"small_class_rule must be one of {SMALL_CLASS_RULES}, got {rule!r}{hint}")
    threshold = min_class_fraction * int(gt_counts.sum())
    present = (pred_counts > 0) | (gt_counts > 0)
    small_p, small_g = pred_counts < threshold, gt_counts < threshold
    if rule == "reference":
        small = ((pred_counts > 0) & small_p) | ((gt_counts > 0) & small_g)
    elif rule == "absent_counts_as_small":
        small = small_p | small_g
    else:
        small = small_p & small_g
    return present & ~small, present & small


@dataclass
class _Segments:
    """Pass 2 result: the segments of one side. Segment j has key ``keys1[j]`` (class/id key + 1);
    index n (= ``area.size``) is the void slot."""

    keys1: np.ndarray
    """[n + 1] segment keys, the void key 0 last."""
    area: np.ndarray
    """[n] pixels per segment."""
    cls: np.ndarray
    """[n] scored class index per segment."""

    @staticmethod
    def from_counter(counter: _KeyCounter, span: int) -> "_Segments":
        keys1, area = counter.result()
        has_void = keys1.size > 0 and keys1[0] == 0
        seg_keys1 = np.concatenate([keys1[1:], [0]]) if has_void else np.concatenate([keys1, [0]])
        area = area[1:] if has_void else area
        return _Segments(seg_keys1, area, (seg_keys1[: area.size] - 1) // span)

    @property
    def n(self) -> int:
        return int(self.area.size)


def _overlaps(
    key_pairs: list, key_space: int, pred: _Segments, gt: _Segments
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass 3: |P ∩ G| for every (pred segment or void = pred.n, GT segment or void = gt.n) pair that
    overlaps: (rows [m], cols [m], intersections [m])."""
    dense = key_space <= _DENSE_KEY_LIMIT
    if dense:
        p_table = np.zeros(key_space, np.int64)
        p_table[pred.keys1] = np.arange(pred.n + 1)
        g_table = np.zeros(key_space, np.int64)
        g_table[gt.keys1] = np.arange(gt.n + 1)
    else:
        p_sorted, g_sorted = np.argsort(pred.keys1), np.argsort(gt.keys1)
    pair_counter = _KeyCounter((pred.n + 1) * (gt.n + 1))
    for kp1, kg1 in key_pairs:
        if dense:
            sp, sg = p_table[kp1], g_table[kg1]
        else:
            sp = p_sorted[np.searchsorted(pred.keys1[p_sorted], kp1)]
            sg = g_sorted[np.searchsorted(gt.keys1[g_sorted], kg1)]
        pair_counter.add(sp * (gt.n + 1) + sg)
    cells, inter = pair_counter.result()
    return cells // (gt.n + 1), cells % (gt.n + 1), inter


def _match(pred: _Segments, gt: _Segments, rows, cols, inter, num_classes: int) -> tuple[np.ndarray, ...]:
    """Steps 5-6: (TP [K], FP [K], FN [K], sum of TP IoUs [K]) from the overlap table."""
    p_on_void = np.zeros(pred.n + 1, np.int64)  # |P ∩ void GT|
    g_on_void = np.zeros(gt.n + 1, np.int64)  # |G ∩ void pred|
    sel = cols == gt.n
    p_on_void[rows[sel]] = inter[sel]
    sel = rows == pred.n
    g_on_void[cols[sel]] = inter[sel]

    pair = (rows < pred.n) & (cols < gt.n)
    r, c, i = rows[pair], cols[pair], inter[pair].astype(np.float64)
    same = pred.cls[r] == gt.cls[c]
    r, c, i = r[same], c[same], i[same]
    union = pred.area[r] - p_on_void[r] + gt.area[c] - g_on_void[c] - i
    iou = i / union
    m = iou > MATCH_IOU
    tp = np.bincount(pred.cls[r[m]], minlength=num_classes)
    iou_sum = np.bincount(pred.cls[r[m]], weights=iou[m], minlength=num_classes)
    p_matched = np.zeros(pred.n, bool)
    p_matched[r[m]] = True
    g_matched = np.zeros(gt.n, bool)
    g_matched[c[m]] = True
    fp_seg = ~p_matched & ~(p_on_void[: pred.n] > VOID_EXCUSE_FRACTION * pred.area)
    fn_seg = ~g_matched & ~(g_on_void[: gt.n] > VOID_EXCUSE_FRACTION * gt.area)
    fp = np.bincount(pred.cls[fp_seg], minlength=num_classes)
    fn = np.bincount(gt.cls[fn_seg], minlength=num_classes)
    return tp, fp, fn, iou_sum


def _pq_pooled(
    chunks: list[_Chunk],
    things: frozenset,
    stuff: frozenset,
    void_gt: frozenset,
    min_class_fraction: float,
    small_class_rule: str,
    void_gt_mode: str,
    merge_things: bool,
) -> tuple[dict[int, ClassStats], tuple[int, ...]]:
    """PQ stats of all pixels of ``chunks`` pooled together (module docstring, steps 1-7).

    Returns ({class id: stats} for the remaining classes, classes turned void by the small-class rule).
    Three passes over the pixels: class counts, segment areas, pred x GT overlaps.
    """
    if void_gt_mode not in ("drop", "keep"):
        raise ValueError(f"void_gt_mode must be 'drop' or 'keep', got {void_gt_mode!r}")
    tables = _ClassTables.build(things, stuff, void_gt, merge_things, void_gt_mode)
    num_classes = tables.num_classes

    # pass 1 and step 3: class counts, then absent / small classes become void in place
    pred_counts, gt_counts, id_lo, id_hi = _count_classes(chunks, tables)
    keep, dropped_mask = kept_classes(pred_counts, gt_counts, min_class_fraction, small_class_rule)
    dropped = tuple(int(c) for c in tables.scored_ids[dropped_mask])

    # step 4: one int64 key per (class, id): class * span + id - id_lo (stuff ids -> 0), stored + 1 so
    # that 0 = void; tables are indexed by class index + 2 (entry 0: void_gt, entry 1: void prediction)
    span = id_hi - id_lo + 1
    if (num_classes + 1) * span >= (1 << 62):
        raise ValueError(
            f"instance ids range over [{id_lo}, {id_hi}], too wide to encode; relabel them to small integers"
        )
    key_space = num_classes * span + 1
    key_dtype = np.int32 if key_space < (1 << 31) else np.int64  # halves the memory kept between passes
    base1 = np.zeros(num_classes + 2, np.int64)
    base1[2:] = np.where(keep, np.arange(num_classes) * span - id_lo + 1, 0)
    use_id = np.zeros(num_classes + 2, np.int64)
    use_id[2:] = keep & tables.is_thing

    # pass 2: segments and their areas (the keys are kept for pass 3)
    p_counter, g_counter = _KeyCounter(key_space), _KeyCounter(key_space)
    key_pairs = []
    for ch in chunks:
        pcls, gcls, _ = tables.classify(ch)
        kp1 = (base1[pcls + 2] + ch.pi * use_id[pcls + 2]).astype(key_dtype, copy=False)
        kg1 = (base1[gcls + 2] + ch.gi * use_id[gcls + 2]).astype(key_dtype, copy=False)
        p_counter.add(kp1)
        g_counter.add(kg1)
        key_pairs.append((kp1, kg1))
    pred, gt = _Segments.from_counter(p_counter, span), _Segments.from_counter(g_counter, span)

    # pass 3 and steps 5-6: overlaps, matching, unmatched segments
    rows, cols, inter = _overlaps(key_pairs, key_space, pred, gt)
    tp, fp, fn, iou_sum = _match(pred, gt, rows, cols, inter, num_classes)
    per_class = {
        int(tables.scored_ids[k]): ClassStats.from_counts(int(tp[k]), int(fp[k]), int(fn[k]), float(iou_sum[k]))
        for k in np.flatnonzero(keep).tolist()
    }
    return per_class, dropped


def _class_means(
    per_class: dict[int, ClassStats], things: frozenset, merge_things: bool
) -> tuple[float, float, float, float, float]:
    """(PQ, SQ, RQ, PQ_things, PQ_stuff): unweighted means over classes with evidence (NaN if none)."""
    scored = {c: s for c, s in per_class.items() if s.has_evidence}
    thing_keys = {min(things)} if (merge_things and things) else set(things)

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    return (
        mean([s.pq for s in scored.values()]),
        mean([s.sq for s in scored.values()]),
        mean([s.rq for s in scored.values()]),
        mean([s.pq for c, s in scored.items() if c in thing_keys]),
        mean([s.pq for c, s in scored.items() if c not in thing_keys]),
    )


def scene_pq(
    pred_sem: Sequence[np.ndarray],
    pred_inst: Sequence[np.ndarray],
    gt_sem: Sequence[np.ndarray],
    gt_inst: Sequence[np.ndarray],
    things: Iterable[int],
    stuff: Iterable[int],
    void_gt: Iterable[int] = (),
    *,
    void_pred: Iterable[int] = (),
    min_class_fraction: float = MIN_CLASS_FRACTION,
    small_class_rule: Literal["reference", "absent_counts_as_small", "small_in_both"] = "reference",
    void_gt_mode: Literal["drop", "keep"] = "drop",
    merge_things: bool = False,
) -> PanopticResult:
    """Scene-level panoptic quality PQ^scene (Panoptic Lifting's metric, Contrastive Lift Sec. 5).

    All pixels of all frames are pooled; a segment is every pixel with one ``(class, id)`` pair, so
    ids must be consistent across views to score well. See the module docstring for the exact
    procedure (void handling, small-class rule, matching, excuses); in short

    .. math::
        PQ = \\frac{1}{|C|} \\sum_{c \\in C} \\frac{\\sum_{TP_c} \\mathrm{IoU}}{|TP_c| + |FP_c|/2 + |FN_c|/2},
        \\quad \\mathrm{IoU} = \\frac{I}{|P| - |P \\cap \\mathrm{void_{GT}}| + |G| - |G \\cap \\mathrm{void_{pred}}| - I}.

    Args:
        pred_sem, pred_inst, gt_sem, gt_inst: per-frame integer id maps, each a list of ``[H, W]``
            arrays (or one ``[F, H, W]`` array); frames may differ in size but the four maps of a
            frame must have the same shape. Nothing is resized here: resize (nearest) beforehand.
        things, stuff: disjoint class ids scored as things (instance ids matter) / stuff (ids -> 0).
        void_gt: GT classes that are void (e.g. ``(0,)`` on ScanNet; ``()`` on Messy Rooms, where 0
            is the background stuff class). Every other GT class must be in things or stuff.
        void_pred: predicted classes meaning "no prediction". Negative class ids and any class
            outside ``things | stuff`` are void predictions too.
        min_class_fraction: classes with fewer than this fraction of the evaluated pixels become
            void (0 disables the rule; classes absent from both are always dropped).
        small_class_rule: ``"reference"`` (default: drop a class absent from both sides or present on
            a side under the threshold; see :func:`kept_classes`), or the non-reference variants
            ``"absent_counts_as_small"`` (a class missing on a side is dropped, not penalised) and
            ``"small_in_both"``.
        void_gt_mode: ``"drop"`` removes void_gt pixels (reference); ``"keep"`` keeps them as void GT.
        merge_things: score all thing classes as one class (keyed by the smallest thing id), as the
            clustering sweep does: a thing segment is then ``(thing, id)`` whatever its semantic
            class, so thing instance ids must be unique across thing classes.

    Returns:
        :class:`PanopticResult` with ``pq``, ``sq``, ``rq`` in [0, 1] and per-class stats.

    >>> import numpy as np
    >>> sem = [np.array([[0, 1, 1, 1]])]; inst = [np.array([[0, 5, 5, 6]])]
    >>> scene_pq(sem, inst, sem, inst, things=[1], stuff=[0], min_class_fraction=0).pq
    1.0
    """
    things_s, stuff_s, void_gt_s, void_pred_s = _class_sets(things, stuff, void_gt, void_pred)
    lists = _check_frames(pred_sem, pred_inst, gt_sem, gt_inst)
    per_class, dropped = _pq_pooled(
        _chunks(lists), things_s, stuff_s, void_gt_s, min_class_fraction, small_class_rule, void_gt_mode, merge_things
    )
    pq, sq, rq, pq_t, pq_s = _class_means(per_class, things_s, merge_things)
    return PanopticResult(
        pq=pq,
        sq=sq,
        rq=rq,
        per_class=per_class,
        pq_things=pq_t,
        pq_stuff=pq_s,
        dropped_classes=dropped,
        num_frames=len(lists[0]),
        metadata=_metadata(
            "scene", min_class_fraction, small_class_rule, void_gt_mode, merge_things, void_gt_s, void_pred_s
        ),
    )


def frame_pq(
    pred_sem: Sequence[np.ndarray],
    pred_inst: Sequence[np.ndarray],
    gt_sem: Sequence[np.ndarray],
    gt_inst: Sequence[np.ndarray],
    things: Iterable[int],
    stuff: Iterable[int],
    void_gt: Iterable[int] = (),
    *,
    void_pred: Iterable[int] = (),
    min_class_fraction: float = MIN_CLASS_FRACTION,
    small_class_rule: Literal["reference", "absent_counts_as_small", "small_in_both"] = "reference",
    void_gt_mode: Literal["drop", "keep"] = "drop",
    merge_things: bool = False,
) -> PanopticResult:
    """Per-frame panoptic quality, averaged over frames (ids need not agree across views).

    Each frame f is scored alone with exactly the procedure of :func:`scene_pq` (so
    ``frame_pq`` of a single frame equals ``scene_pq`` of it; the small-class rule is applied per
    frame, pass ``min_class_fraction=0`` for textbook per-image PQ), giving
    :math:`PQ_f = \\frac{1}{|C_f|}\\sum_{c \\in C_f} PQ_{f,c}` over the classes C_f remaining in that
    frame with at least one TP, FP or FN; then

    .. math::
        PQ = \\frac{1}{|F'|} \\sum_{f \\in F'} PQ_f

    over the frames F' that have any such class (SQ, RQ, PQ_things, PQ_stuff likewise).
    ``per_class`` holds TP/FP/FN/IoU sums over all frames with PQ/SQ/RQ recomputed from the sums;
    ``per_frame_pq`` lists PQ_f (NaN for frames with nothing to score). With ``merge_things=True``
    this is the score of the clustering sweep (min_cluster_size chosen against 2D masks).

    Arguments are those of :func:`scene_pq`.

    >>> import numpy as np
    >>> sem = [np.array([[1, 1]]), np.array([[1, 1]])]
    >>> frame_pq(sem, [np.array([[3, 3]]), np.array([[4, 4]])], sem, [np.array([[7, 7]])] * 2,
    ...          things=[1], stuff=[], min_class_fraction=0).pq
    1.0
    """
    things_s, stuff_s, void_gt_s, void_pred_s = _class_sets(things, stuff, void_gt, void_pred)
    lists = _check_frames(pred_sem, pred_inst, gt_sem, gt_inst)
    totals: dict[int, list] = {}
    per_frame: list[tuple[float, float, float, float, float]] = []
    dropped_all: set[int] = set()
    for f in range(len(lists[0])):
        frame_lists = tuple([frames[f]] for frames in lists)
        per_class, dropped = _pq_pooled(
            _chunks(frame_lists, first_frame=f),
            things_s,
            stuff_s,
            void_gt_s,
            min_class_fraction,
            small_class_rule,
            void_gt_mode,
            merge_things,
        )
        dropped_all.update(dropped)
        per_frame.append(_class_means(per_class, things_s, merge_things))
        for c, s in per_class.items():
            t = totals.setdefault(c, [0, 0, 0, 0.0])
            t[0] += s.tp
            t[1] += s.fp
            t[2] += s.fn
            t[3] += s.iou_sum
    arr = np.array(per_frame, np.float64).reshape(-1, 5)

    def frame_mean(col: int) -> float:
        vals = arr[:, col]
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if vals.size else float("nan")

    return PanopticResult(
        pq=frame_mean(0),
        sq=frame_mean(1),
        rq=frame_mean(2),
        per_class={c: ClassStats.from_counts(*t) for c, t in sorted(totals.items())},
        pq_things=frame_mean(3),
        pq_stuff=frame_mean(4),
        dropped_classes=tuple(sorted(dropped_all)),
        num_frames=len(lists[0]),
        per_frame_pq=[float(v) for v in arr[:, 0]],
        metadata=_metadata(
            "frame", min_class_fraction, small_class_rule, void_gt_mode, merge_things, void_gt_s, void_pred_s
        ),
    )


def _metadata(kind, min_class_fraction, small_class_rule, void_gt_mode, merge_things, void_gt, void_pred) -> dict:
    return {
        "kind": kind,
        "min_class_fraction": float(min_class_fraction),
        "small_class_rule": small_class_rule,
        "void_gt_mode": void_gt_mode,
        "merge_things": bool(merge_things),
        "void_gt": sorted(void_gt),
        "void_pred": sorted(void_pred),
        "match_iou": MATCH_IOU,
    }
