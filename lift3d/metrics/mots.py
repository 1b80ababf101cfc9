r"""Multi-object tracking and segmentation metrics: sMOTSA, MOTSA, MOTSP (MOTS, Voigtlaender et al., CVPR 2019).

Tracks are sequences of per-frame id maps (``[T]`` maps of ``[H, W]`` integers, 0 = no object); an id names the same
track in every frame. In each frame ``t`` every hypothesis mask ``h`` (a predicted id's pixels) is mapped to the
ground-truth mask ``c(h)`` it overlaps with IoU > 0.5, if any. Masks do not overlap within a frame, so at most one
``h`` can reach IoU > 0.5 with a given ground-truth mask and the mapping is unique (no assignment problem). Then,
over all frames, with ``M`` the set of ground-truth masks:

.. math::
    TP = \{h : c(h) \ne \emptyset\}, \quad FP = \{h : c(h) = \emptyset\}, \quad
    FN = \{m \in M : c^{-1}(m) = \emptyset\}, \quad
    \widetilde{TP} = \sum_{h \in TP} \mathrm{IoU}(h, c(h)),

    IDS = \{m \in M : c^{-1}(m) \ne \emptyset,\ \mathrm{pred}(m) \ne \emptyset,\
           \mathrm{id}(c^{-1}(m)) \ne \mathrm{id}(c^{-1}(\mathrm{pred}(m)))\},

where :math:`\mathrm{pred}(m)` is the *latest tracked predecessor* of ``m``: the mask of the same ground-truth
track in the most recent earlier frame in which that track was matched (a frame where it was missed is skipped,
so a track that is missed and then resumed with its old id is not a switch). The metrics (MOTS, Eqs. for MOTSP,
MOTSA and sMOTSA; also Eqs. 10-12 of paper 001):

.. math::
    \mathrm{MOTSP} = \frac{\widetilde{TP}}{|TP|}, \qquad
    \mathrm{MOTSA} = 1 - \frac{|FN| + |FP| + |IDS|}{|M|} = \frac{|TP| - |FP| - |IDS|}{|M|}, \qquad
    \mathrm{sMOTSA} = \frac{\widetilde{TP} - |FP| - |IDS|}{|M|}.

Classes are not distinguished (evaluate each class's maps separately for per-class scores); there are no ignore
regions. A metric with a zero denominator is NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np

__all__ = ["MotsResult", "MotsCounter", "match_frame", "mots", "mots_over_sequences"]

MATCH_IOU = 0.5
"""A hypothesis mask matches a ground-truth mask iff their IoU is strictly greater than this (MOTS)."""


@dataclass
class MotsResult:
    """MOTS metrics and the counts they come from."""

    smotsa: float
    """Soft MOTS accuracy, ``(soft TP - |FP| - |IDS|) / |M|``."""
    motsa: float
    """MOTS accuracy, ``(|TP| - |FP| - |IDS|) / |M|``."""
    motsp: float
    """MOTS precision, ``soft TP / |TP|`` (mean IoU of the matched masks)."""
    tp: int
    """Matched hypothesis masks."""
    fp: int
    """Hypothesis masks matched to no ground-truth mask."""
    fn: int
    """Ground-truth masks matched by no hypothesis mask."""
    ids: int
    """ID switches."""
    soft_tp: float
    """Sum of the IoUs of the matched masks."""
    num_gt: int
    """``|M|``, the number of ground-truth masks (``tp + fn``)."""

    def as_dict(self) -> Dict[str, float]:
        """Plain dict for JSON."""
        return asdict(self)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def match_frame(pred: np.ndarray, gt: np.ndarray, iou_threshold: float = MATCH_IOU) -> Tuple[Dict, int, int]:
    """Match one frame's masks: IoU of every (hypothesis, ground-truth) pair that overlaps, kept above the threshold.

    Args:
        pred: ``[H, W]`` integer hypothesis ids (0 = none).
        gt: ``[H, W]`` integer ground-truth ids (0 = none).
        iou_threshold: matches need IoU strictly above it (0.5 in MOTS; below 0.5 a match need not be unique and
            the first hypothesis by id wins).

    Returns:
        ``(matches, num_pred, num_gt)``: ``matches`` maps each matched ground-truth id to ``(hypothesis id, IoU)``;
        the numbers of hypothesis and ground-truth masks in the frame.
    """
    pred = np.asarray(pred).astype(np.int64, copy=False).ravel()
    gt = np.asarray(gt).astype(np.int64, copy=False).ravel()
    pred_ids, pred_area = np.unique(pred[pred != 0], return_counts=True)
    gt_ids, gt_area = np.unique(gt[gt != 0], return_counts=True)
    both = (pred != 0) & (gt != 0)
    pairs, inter = np.unique(np.stack([pred[both], gt[both]], axis=1), axis=0, return_counts=True)
    area_p = dict(zip(pred_ids.tolist(), pred_area.tolist()))
    area_g = dict(zip(gt_ids.tolist(), gt_area.tolist()))
    matches: Dict[int, Tuple[int, float]] = {}
    used = set()
    for (p, g), i in zip(pairs.tolist(), inter.tolist()):
        iou = i / (area_p[p] + area_g[g] - i)
        if iou > iou_threshold and g not in matches and p not in used:
            matches[g] = (p, iou)
            used.add(p)
    return matches, len(pred_ids), len(gt_ids)


@dataclass
class MotsCounter:
    """Accumulates the MOTS counts frame by frame; :meth:`start_sequence` forgets the tracks' predecessors."""

    iou_threshold: float = MATCH_IOU
    """Match threshold (module docstring)."""
    tp: int = 0
    fp: int = 0
    fn: int = 0
    ids: int = 0
    soft_tp: float = 0.0
    num_gt: int = 0
    last_hypothesis: Dict[int, int] = field(default_factory=dict)
    """Ground-truth id -> hypothesis id of its latest tracked predecessor in the current sequence."""

    def start_sequence(self) -> None:
        """The next frame starts a new sequence: no ground-truth mask has a predecessor."""
        self.last_hypothesis = {}

    def add_frame(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Count one frame (``[H, W]`` id maps of equal shape) of the current sequence."""
        matches, num_pred, num_gt = match_frame(pred, gt, self.iou_threshold)
        self.tp += len(matches)
        self.fp += num_pred - len(matches)
        self.fn += num_gt - len(matches)
        self.num_gt += num_gt
        for g, (p, iou) in matches.items():
            self.soft_tp += iou
            previous = self.last_hypothesis.get(g)
            if previous is not None and previous != p:
                self.ids += 1
            self.last_hypothesis[g] = p

    def result(self) -> MotsResult:
        """The metrics of everything counted so far."""
        return MotsResult(
            smotsa=_ratio(self.soft_tp - self.fp - self.ids, self.num_gt),
            motsa=_ratio(self.tp - self.fp - self.ids, self.num_gt),
            motsp=_ratio(self.soft_tp, self.tp),
            tp=self.tp,
            fp=self.fp,
            fn=self.fn,
            ids=self.ids,
            soft_tp=self.soft_tp,
            num_gt=self.num_gt,
        )


def _add_sequence(counter: MotsCounter, pred_tracks: Sequence, gt_tracks: Sequence, which: str) -> None:
    if len(pred_tracks) != len(gt_tracks):
        raise ValueError(f"mots{which}: {len(pred_tracks)} predicted frames but {len(gt_tracks)} ground-truth frames.")
    counter.start_sequence()
    for t, (pred, gt) in enumerate(zip(pred_tracks, gt_tracks)):
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape or pred.ndim != 2:
            raise ValueError(
                f"mots{which}, frame {t}: predicted map {pred.shape} and ground-truth map {gt.shape} must be the same "
                "[H, W]; resize the prediction (nearest) to the ground truth's size."
            )
        if not (np.issubdtype(pred.dtype, np.integer) and np.issubdtype(gt.dtype, np.integer)):
            raise ValueError(f"mots{which}, frame {t}: id maps must hold integers, got {pred.dtype} and {gt.dtype}.")
        counter.add_frame(pred, gt)


def mots(
    pred_tracks: Sequence[np.ndarray], gt_tracks: Sequence[np.ndarray], iou_threshold: float = MATCH_IOU
) -> MotsResult:
    """sMOTSA, MOTSA, MOTSP and TP / FP / FN / IDS of one sequence (module docstring for the equations).

    Args:
        pred_tracks: ``[T]`` predicted id maps ``[H, W]`` (int, 0 = none), ids consistent over time (track ids).
        gt_tracks: ``[T]`` ground-truth id maps ``[H, W]`` (int, 0 = none), ids = track ids.
        iou_threshold: IoU a match must exceed (0.5).

    Raises:
        ValueError: the sequences differ in length, or a frame's maps differ in shape or are not integers.
    """
    counter = MotsCounter(iou_threshold)
    _add_sequence(counter, pred_tracks, gt_tracks, "")
    return counter.result()


def mots_over_sequences(
    sequences: Iterable[Tuple[Sequence[np.ndarray], Sequence[np.ndarray]]], iou_threshold: float = MATCH_IOU
) -> MotsResult:
    """The metrics of several sequences pooled (counts summed; no ID switch across sequences), as benchmarks
    report them. ``sequences`` yields ``(pred_tracks, gt_tracks)`` pairs like :func:`mots` takes."""
    counter = MotsCounter(iou_threshold)
    for n, (pred_tracks, gt_tracks) in enumerate(sequences):
        _add_sequence(counter, pred_tracks, gt_tracks, f" (sequence {n})")
    return counter.result()
