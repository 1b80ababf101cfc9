"""Semantic segmentation quality: mean intersection over union (mIoU) from a pixel confusion matrix."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from lift3d.metrics.panoptic import MIN_CLASS_FRACTION, _as_frames, _class_index


def confusion_matrix(
    pred_sem: Sequence[np.ndarray],
    gt_sem: Sequence[np.ndarray],
    classes: int | Iterable[int],
    void_gt: Iterable[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel confusion matrix over all frames, GT void pixels excluded.

    ``M[g, p]`` = number of pixels with GT class ``ids[g]`` and predicted class ``ids[p]``; the
    last column ``M[:, K]`` counts pixels predicted as a class outside ``ids`` (a miss for the GT
    class). ``ids`` = the scored classes: ``classes`` (``range(classes)`` if an int) minus void_gt.

    Args:
        pred_sem, gt_sem: lists of integer ``[H, W]`` class maps (or ``[F, H, W]`` arrays), same
            shape per frame.
        classes: number of classes or the class ids.
        void_gt: GT classes whose pixels are not evaluated.

    Returns:
        ``(M [K, K + 1] int64, ids [K] int64)``.
    """
    ids = (
        np.arange(classes, dtype=np.int64)
        if isinstance(classes, (int, np.integer))
        else np.array(sorted({int(c) for c in classes}), np.int64)
    )
    void_ids = np.array(sorted({int(c) for c in void_gt}), np.int64)
    ids = ids[~np.isin(ids, void_ids)]
    k = ids.size
    preds, gts = _as_frames(pred_sem, "pred_sem"), _as_frames(gt_sem, "gt_sem")
    if len(preds) != len(gts):
        raise ValueError(
            f"pred_sem has {len(preds)} frames but gt_sem has {len(gts)}; pass the same frames in the same order"
        )
    conf = np.zeros((k, k + 1), np.int64)
    for f, (p, g) in enumerate(zip(preds, gts)):
        if p.shape != g.shape:
            raise ValueError(
                f"frame {f}: pred_sem shape {p.shape} != gt_sem shape {g.shape}; resize (nearest) to the same size first"
            )
        p, g = p.reshape(-1).astype(np.int64, copy=False), g.reshape(-1).astype(np.int64, copy=False)
        if void_ids.size:
            keep = ~np.isin(g, void_ids)
            p, g = p[keep], g[keep]
        gi, pi = _class_index(g, ids), _class_index(p, ids)
        if (gi < 0).any():
            unknown = np.unique(g[gi < 0])[:10].tolist()
            raise ValueError(
                f"frame {f}: GT class ids {unknown} are neither scored classes nor void_gt; add them to classes or void_gt"
            )
        pi = np.where(pi < 0, k, pi)
        conf += np.bincount(gi * (k + 1) + pi, minlength=k * (k + 1)).reshape(k, k + 1)
    return conf, ids


def miou(
    pred_sem: Sequence[np.ndarray],
    gt_sem: Sequence[np.ndarray],
    classes: int | Iterable[int],
    void_gt: Iterable[int] = (),
    *,
    min_class_fraction: float = MIN_CLASS_FRACTION,
) -> tuple[float, dict[int, float]]:
    """Mean IoU over classes, pooled over all pixels of all frames whose GT is not void.

    .. math::
        \\mathrm{IoU}_c = \\frac{M_{cc}}{\\sum_p M_{cp} + \\sum_g M_{gc} - M_{cc}},\\qquad
        \\mathrm{mIoU} = \\frac{1}{|C'|} \\sum_{c \\in C'} \\mathrm{IoU}_c,

    with M the confusion matrix of :func:`confusion_matrix` (rows GT, columns pred; predictions
    outside the scored classes only add to the row sums). C' excludes the classes with fewer than
    ``min_class_fraction`` (0.5 %) of the N evaluated pixels in BOTH pred and GT (method.md,
    "mIoU"), and classes absent from both. Classes in ``void_gt`` are not scored.

    Args:
        pred_sem, gt_sem: lists of integer ``[H, W]`` class maps (or ``[F, H, W]`` arrays).
        classes: number of classes (ids ``0..classes-1``) or an iterable of class ids.
        void_gt: GT classes whose pixels are not evaluated (e.g. ``(0,)`` on ScanNet).
        min_class_fraction: the small-class threshold (0 keeps every class present anywhere).

    Returns:
        ``(miou, per_class_iou)``: the mean (NaN if no class remains) and ``{class id: IoU}`` for
        the classes in C'.

    >>> import numpy as np
    >>> miou([np.array([[0, 0, 1, 1]])], [np.array([[0, 1, 1, 1]])], classes=2)[0]  # (1/2 + 2/3) / 2
    0.5833333333333333
    """
    conf, ids = confusion_matrix(pred_sem, gt_sem, classes, void_gt)
    k = ids.size
    num_eval = int(conf.sum())
    tp = np.diagonal(conf[:, :k]).astype(np.float64)
    gt_count = conf.sum(axis=1)
    pred_count = conf[:, :k].sum(axis=0)
    union = gt_count + pred_count - tp
    threshold = min_class_fraction * num_eval
    small = (gt_count < threshold) & (pred_count < threshold)
    scored = ~small & (union > 0)
    per_class = {int(ids[c]): float(tp[c] / union[c]) for c in np.flatnonzero(scored).tolist()}
    value = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return value, per_class


def semantic_miou(
    pred: np.ndarray | Sequence[np.ndarray],
    gt: np.ndarray | Sequence[np.ndarray],
    num_classes: int,
    ignore: Optional[int] = None,
) -> tuple[float, np.ndarray]:
    """Per-class IoU and their mean, the plain definition of semantic segmentation papers (no small-class rule).

    .. math::
        \\mathrm{IoU}_c = \\frac{TP_c}{TP_c + FP_c + FN_c},\\qquad
        \\mathrm{mIoU} = \\frac{1}{|C'|} \\sum_{c \\in C'} \\mathrm{IoU}_c,

    pooled over all pixels of all frames, with ``TP_c`` the pixels of GT class ``c`` predicted ``c``, ``FP_c`` the
    pixels predicted ``c`` whose GT is another (non-ignored) class, ``FN_c`` the pixels of GT class ``c`` predicted
    anything else (a prediction outside ``0..num_classes-1`` is a miss). ``C'``: the classes present in GT or
    prediction (``IoU_c`` is NaN for the others). Pixels whose GT is ``ignore`` are not evaluated.

    Args:
        pred, gt: integer class maps ``[H, W]`` / ``[F, H, W]`` or lists of ``[H, W]`` maps (same shapes);
            GT ids in ``0..num_classes-1`` or ``ignore``.
        num_classes: number of classes ``K``.
        ignore: GT id of pixels left out (e.g. 255 or -1); None evaluates every pixel.

    Returns:
        ``(miou, per_class_iou [K] float64)`` (``miou`` NaN when no class is present).

    >>> semantic_miou(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]]), 2)[0]  # (1/2 + 2/3) / 2
    0.5833333333333333
    """
    preds = [np.asarray(p) for p in (pred if isinstance(pred, (list, tuple)) else [pred])]
    gts = [np.asarray(g) for g in (gt if isinstance(gt, (list, tuple)) else [gt])]
    if len(preds) != len(gts):
        raise ValueError(f"semantic_miou: {len(preds)} predicted maps but {len(gts)} GT maps")
    k = int(num_classes)
    conf = np.zeros((k, k + 1), np.int64)  # rows GT class, columns predicted class (k = outside 0..k-1)
    for f, (p, g) in enumerate(zip(preds, gts)):
        if p.shape != g.shape:
            raise ValueError(f"semantic_miou: map {f}: prediction shape {p.shape} != GT shape {g.shape}")
        p, g = p.reshape(-1).astype(np.int64), g.reshape(-1).astype(np.int64)
        if ignore is not None:
            keep = g != ignore
            p, g = p[keep], g[keep]
        if g.size and (g.min() < 0 or g.max() >= k):
            bad = np.unique(g[(g < 0) | (g >= k)])[:10].tolist()
            raise ValueError(f"semantic_miou: map {f}: GT ids {bad} are outside 0..{k - 1} and not ignore={ignore}")
        p = np.where((p < 0) | (p >= k), k, p)
        conf += np.bincount(g * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)
    tp = np.diagonal(conf[:, :k]).astype(np.float64)
    union = conf.sum(axis=1) + conf[:, :k].sum(axis=0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    present = ~np.isnan(per_class)
    return (float(per_class[present].mean()) if present.any() else float("nan")), per_class
