"""COCO-style average precision of instance masks (AP, AP50, AP75), numpy only.

The protocol of the COCO detection evaluation for segmentation masks (area range "all", at most ``max_detections``
per image and class, no crowd regions), written from its definition: per class, detections of all images are
ranked by score; at each IoU threshold ``t ∈ {0.50, 0.55, ..., 0.95}`` each detection (in decreasing score within
its image) is matched to the unmatched ground-truth instance of its class and image with the highest IoU ``>= t``;
precision is made monotone (the maximum over higher recall) and sampled at 101 recall points ``0, 0.01, ..., 1``
(0 past the highest recall reached). AP is the mean over IoU thresholds, recall points and classes that have
ground truth; AP50 / AP75 fix the threshold.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["mask_ap", "gt_instances"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def gt_instances(instance_map: np.ndarray, semantic_map: np.ndarray, things: Iterable[int]):
    """Ground-truth instances of one image: ``(masks [K, H, W] bool, classes [K])`` for every non-zero id of
    ``instance_map [H, W]`` whose majority class in ``semantic_map [H, W]`` is in ``things`` (increasing id)."""
    things = set(int(t) for t in things)
    masks, classes = [], []
    ids = np.unique(instance_map)
    for k in ids[ids != 0]:
        m = instance_map == k
        values, counts = np.unique(semantic_map[m], return_counts=True)
        cls = int(values[np.argmax(counts)])
        if cls in things:
            masks.append(m)
            classes.append(cls)
    h, w = instance_map.shape
    return (np.stack(masks) if masks else np.zeros((0, h, w), bool)), np.asarray(classes, np.int64)


def _iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred [N, H, W]``, ``gt [K, H, W]`` bool -> ``[N, K]`` IoU."""
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros((len(pred), len(gt)))
    p = pred.reshape(len(pred), -1).astype(np.float64)
    g = gt.reshape(len(gt), -1).astype(np.float64)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _match_image(ious: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``ious [N, K]`` of detections in decreasing score -> ``[T, N]`` bool: true positive at each threshold."""
    n, k = ious.shape
    tp = np.zeros((len(thresholds), n), bool)
    for ti, t in enumerate(thresholds):
        taken = np.zeros(k, bool)
        for d in range(n):
            best, m = min(t, 1 - 1e-10), -1
            for g in range(k):
                if taken[g] or ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m >= 0:
                taken[m] = True
                tp[ti, d] = True
    return tp


def _precision_at_recalls(tp: np.ndarray, num_gt: int) -> np.ndarray:
    """``tp [N]`` bool in score order -> precision ``[101]`` at the recall points (COCO's interpolation)."""
    tps = np.cumsum(tp).astype(np.float64)
    fps = np.cumsum(~tp).astype(np.float64)
    recall = tps / num_gt
    precision = tps / (tps + fps + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    out = np.zeros(len(RECALL_POINTS))
    valid = idx < len(precision)
    out[valid] = precision[idx[valid]]
    return out


def mask_ap(
    pred_masks: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    pred_classes: Sequence[np.ndarray],
    gt_instance_maps: Sequence[np.ndarray],
    gt_semantic_maps: Sequence[np.ndarray],
    things: Iterable[int],
    max_detections: int = 100,
) -> dict:
    """COCO mask AP over a set of images.

    Per image ``i``: ``pred_masks[i] [N_i, H, W]`` bool, ``pred_scores[i] [N_i]``, ``pred_classes[i] [N_i]`` (class
    ids), ``gt_instance_maps[i]`` / ``gt_semantic_maps[i] [H, W]`` (ground-truth instances: see
    :func:`gt_instances`); ``things``: the thing class ids. Returns ``{"AP", "AP50", "AP75"}`` in ``[0, 1]``
    (NaN when no class has ground truth), ``"per_class": {class: AP}`` and ``"num_gt"``, ``"num_pred"``.
    """
    things = sorted(set(int(t) for t in things))
    n_img = len(gt_instance_maps)
    if not (len(pred_masks) == len(pred_scores) == len(pred_classes) == len(gt_semantic_maps) == n_img):
        raise ValueError("mask_ap: every argument needs one entry per image.")
    gts = [gt_instances(np.asarray(a), np.asarray(b), things) for a, b in zip(gt_instance_maps, gt_semantic_maps)]
    precision = {}  # class -> [T, R]
    num_pred = 0
    for c in things:
        scores, tps, num_gt = [], [], 0
        for i in range(n_img):
            g = gts[i][0][gts[i][1] == c]
            cls = np.asarray(pred_classes[i]).reshape(-1)
            sel = np.flatnonzero(cls == c)
            s = np.asarray(pred_scores[i], np.float64).reshape(-1)[sel]
            order = np.argsort(-s, kind="mergesort")[:max_detections]
            masks = np.asarray(pred_masks[i]).astype(bool)[sel][order] if len(sel) else np.zeros((0,) + g.shape[1:])
            num_gt += len(g)
            num_pred += len(order)
            scores.append(s[order])
            tps.append(_match_image(_iou(masks.astype(bool), g), IOU_THRESHOLDS))
        if num_gt == 0:
            continue
        all_scores = np.concatenate(scores)
        rank = np.argsort(-all_scores, kind="mergesort")
        tp_all = np.concatenate(tps, axis=1)[:, rank]
        precision[c] = np.stack([_precision_at_recalls(tp_all[t], num_gt) for t in range(len(IOU_THRESHOLDS))])
    if not precision:
        nan = float("nan")
        return {"AP": nan, "AP50": nan, "AP75": nan, "per_class": {}, "num_gt": 0, "num_pred": num_pred}
    stack = np.stack(list(precision.values()))  # [C, T, R]
    return {
        "AP": float(stack.mean()),
        "AP50": float(stack[:, 0].mean()),
        "AP75": float(stack[:, 5].mean()),
        "per_class": {c: float(p.mean()) for c, p in precision.items()},
        "num_gt": int(sum(len(g[1]) for g in gts)),
        "num_pred": num_pred,
    }
