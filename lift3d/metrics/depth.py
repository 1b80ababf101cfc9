r"""Monocular depth metrics (Eigen, Puhrsch and Fergus, NeurIPS 2014; the set Monodepth2 and paper 001 report).

Over the valid pixels ``p`` (ground truth finite, ``> 0`` and inside ``[min_depth, max_depth]``), with prediction
``d`` and ground truth ``d*``:

.. math::
    \mathrm{AbsRel} = \overline{|d - d^*| / d^*}, \quad
    \mathrm{SqRel} = \overline{(d - d^*)^2 / d^*}, \quad
    \mathrm{RMSE} = \sqrt{\overline{(d - d^*)^2}}, \quad
    \mathrm{RMSE}_{\log} = \sqrt{\overline{(\log d - \log d^*)^2}}, \quad
    δ_k = \overline{[\max(d / d^*, d^* / d) < 1.25^k]}

Predictions are clamped to ``[min_depth, max_depth]`` first. ``median_scaling`` multiplies the prediction by
``median(d*) / median(d)`` per image (the convention for monocular methods trained without metric scale; with known
poses the scale is metric and it stays off).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["depth_metrics", "DEPTH_METRIC_NAMES"]

DEPTH_METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


def depth_metrics(
    predictions: Sequence[np.ndarray] | np.ndarray,
    ground_truth: Sequence[np.ndarray] | np.ndarray,
    min_depth: float = 1e-3,
    max_depth: float = 1e3,
    median_scaling: bool = False,
) -> dict[str, float]:
    """AbsRel, SqRel, RMSE, RMSE log and δ < 1.25, 1.25², 1.25³ pooled over every valid pixel of every image.

    ``predictions``, ``ground_truth``: one ``[H, W]`` depth map per image (or one array of them). Returns the
    metrics (module docstring) and ``num_pixels``; raises ``ValueError`` for shapes that differ or no valid pixel.

    >>> m = depth_metrics([np.array([[2.0, 2.0]])], [np.array([[1.0, 2.0]])])
    >>> m["abs_rel"], m["rmse"], m["delta1"]
    (0.5, 0.7071067811865476, 0.5)
    """
    preds, gts = [], []
    if len(predictions) != len(ground_truth):
        raise ValueError(f"depth_metrics: {len(predictions)} predictions but {len(ground_truth)} ground-truth maps.")
    for i, (p, g) in enumerate(zip(predictions, ground_truth)):
        p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
        if p.shape != g.shape:
            raise ValueError(f"depth_metrics: image {i}: prediction {p.shape} and ground truth {g.shape} differ.")
        valid = np.isfinite(g) & (g > 0) & (g >= min_depth) & (g <= max_depth) & np.isfinite(p)
        if not valid.any():
            continue
        p, g = p[valid], g[valid]
        if median_scaling:
            p = p * (np.median(g) / max(np.median(p), 1e-12))
        preds.append(np.clip(p, min_depth, max_depth))
        gts.append(g)
    if not preds:
        raise ValueError("depth_metrics: no pixel has a valid ground-truth depth.")
    d, t = np.concatenate(preds), np.concatenate(gts)
    ratio = np.maximum(d / t, t / d)
    return {
        "abs_rel": float(np.mean(np.abs(d - t) / t)),
        "sq_rel": float(np.mean((d - t) ** 2 / t)),
        "rmse": float(np.sqrt(np.mean((d - t) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(d) - np.log(t)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "num_pixels": int(d.size),
    }
