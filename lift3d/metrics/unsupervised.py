"""Unsupervised semantic segmentation, scored as paper 003 (and PiCIE, Cho et al. 2021) score it: cluster the
pixel features into as many clusters as there are classes (k-means), match clusters to classes one-to-one with the
Hungarian algorithm on their pixel overlap, then pixel accuracy and mIoU of the matched labelling."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["kmeans_pixel_clusters", "match_clusters_to_classes", "unsupervised_segmentation_scores"]


def kmeans_pixel_clusters(
    features: Sequence[np.ndarray],
    num_clusters: int,
    seed: int = 0,
    fit_pixels: int = 50_000,
    normalise: bool = True,
) -> list[np.ndarray]:
    """k-means over the pixels of all frames: ``features`` = list of ``[H, W, D]`` float arrays -> list of
    ``[H, W]`` int64 cluster ids ``0..num_clusters-1``.

    The centres are fitted on at most ``fit_pixels`` pixels drawn uniformly (seeded) from all frames, then every
    pixel takes its nearest centre. ``normalise`` L2-normalises each pixel's feature first (cosine geometry, as
    the features are trained on the unit sphere).
    """
    from sklearn.cluster import KMeans

    flat = [np.asarray(f, np.float32).reshape(-1, f.shape[-1]) for f in features]
    if normalise:
        flat = [f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) for f in flat]
    every = np.concatenate(flat)
    rng = np.random.default_rng(seed)
    fit = every[rng.choice(len(every), size=min(fit_pixels, len(every)), replace=False)]
    km = KMeans(n_clusters=num_clusters, n_init=3, random_state=seed).fit(fit)
    return [km.predict(f).astype(np.int64).reshape(feat.shape[:2]) for f, feat in zip(flat, features)]


def match_clusters_to_classes(
    clusters: Sequence[np.ndarray], gt: Sequence[np.ndarray], num_clusters: int, class_ids: Sequence[int]
) -> tuple[dict[int, int], np.ndarray]:
    """Hungarian matching of clusters to classes maximising the pixels they share.

    ``clusters``, ``gt``: lists of ``[H, W]`` int maps (cluster ids ``0..num_clusters-1``; class ids, pixels whose
    class is not in ``class_ids`` are ignored). Returns ``({cluster: class id}, overlap [num_clusters, C])`` with
    ``overlap[k, c]`` = pixels of cluster ``k`` with class ``class_ids[c]``; solved by
    ``scipy.optimize.linear_sum_assignment`` on ``-overlap`` (clusters left over when ``num_clusters > C`` map to
    no class).
    """
    ids = np.asarray(list(class_ids), np.int64)
    order = np.argsort(ids)
    overlap = np.zeros((num_clusters, len(ids)), np.int64)
    for k_map, g_map in zip(clusters, gt):
        g = np.asarray(g_map, np.int64).ravel()
        pos = np.minimum(np.searchsorted(ids[order], g), len(ids) - 1)
        keep = ids[order][pos] == g
        np.add.at(overlap, (np.asarray(k_map, np.int64).ravel()[keep], order[pos][keep]), 1)
    rows, cols = linear_sum_assignment(-overlap)
    return {int(r): int(ids[c]) for r, c in zip(rows, cols)}, overlap


def unsupervised_segmentation_scores(
    clusters: Sequence[np.ndarray],
    gt: Sequence[np.ndarray],
    class_ids: Sequence[int],
    num_clusters: Optional[int] = None,
) -> dict:
    """Pixel accuracy and mIoU of cluster maps after Hungarian matching (:func:`match_clusters_to_classes`).

    ``clusters``: list of ``[H, W]`` int cluster ids; ``gt``: list of ``[H, W]`` class ids (pixels outside
    ``class_ids`` are not scored); ``num_clusters`` defaults to ``len(class_ids)``.
    ``Acc = Σ_c TP_c / N`` and ``mIoU = mean_c TP_c / (TP_c + FP_c + FN_c)`` over the classes present in the
    ground truth or the matched prediction, with ``TP_c`` the pixels of the cluster matched to ``c`` that are ``c``.
    Returns ``{"accuracy", "miou", "per_class_iou": {class id: IoU}, "mapping": {cluster: class id}}``.
    """
    ids = [int(c) for c in class_ids]
    k = num_clusters or len(ids)
    mapping, overlap = match_clusters_to_classes(clusters, gt, k, ids)
    scored = overlap.sum()
    gt_pixels = overlap.sum(0)  # [C]
    tp = np.zeros(len(ids), np.int64)
    pred_pixels = np.zeros(len(ids), np.int64)
    for cluster, cls in mapping.items():
        c = ids.index(cls)
        tp[c] = overlap[cluster, c]
        pred_pixels[c] = overlap[cluster].sum()
    union = gt_pixels + pred_pixels - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    return {
        "accuracy": float(tp.sum() / max(scored, 1)),
        "miou": float(np.nanmean(iou)) if present.any() else 0.0,
        "per_class_iou": {ids[c]: float(iou[c]) for c in range(len(ids)) if present[c]},
        "mapping": mapping,
        "num_pixels": int(scored),
    }
