r"""Instances from unit embeddings: mean shift on the sphere with a cosine threshold, and tracks over time.

Zhu et al., "Instance Segmentation with Cross-Modal Consistency" (IROS 2022), Sec. III-A "Instance Mask Generation",
a variant of the mean shift of De Brabandere et al. (2017): pick an unclustered embedding at random as the centre
``c``, take its inliers ``I = {i : d(e_i, c) < m}`` under the cosine distance scaled to ``[0, 1]``,

.. math::
    d(x, y) = \frac{1 - x^T y / (\|x\| \|y\|)}{2},

move the centre to the (re-normalised) mean of the inliers and repeat until the inlier set stops changing or an
iteration cap; the inliers are one cluster. Repeat until every embedding is clustered. Thin masks along the
transitions between objects are then dropped by their area-to-perimeter ratio (the paper: ``r = 4`` at
2048x1024), and small masks by their area.

Over time (:class:`EmbeddingTracker`), each instance's mean embedding is matched to the tracks' embeddings by the
same cosine distance (Hungarian assignment within a class, accepted below a threshold); unmatched instances start
new tracks, so ids carry over frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = [
    "MeanShiftConfig",
    "cosine_distance",
    "cosine_mean_shift",
    "area_perimeter_ratio",
    "EmbeddingTracker",
]


@dataclass
class MeanShiftConfig:
    """Inference settings of the cross-modal method (Zhu et al. 2022, Sec. III-A)."""

    threshold: float = 0.1
    """Cosine distance (scaled to [0, 1]) below which an embedding is an inlier of the centre (the paper: m = 0.1)."""
    max_iterations: int = 20
    """Mean-shift iterations per cluster at most."""
    max_clusters: int = 256
    """Clusters per class and image at most; embeddings left after that stay unlabelled."""
    min_area_perimeter_ratio: float = 1.2
    """Masks whose area / perimeter is below this are dropped (the paper: 4 at 2048x1024; a disk of radius R has
    about R / 2, a 4 x 4 square 1.33, a strip two pixels wide 1.0: 1.2 drops the slivers along boundaries and keeps
    the 15-pixel objects of 64 px images)."""
    min_pixels: int = 8
    """Masks with fewer pixels are dropped."""
    track_threshold: float = 0.15
    """Cosine distance (scaled to [0, 1]) below which an instance continues a track."""
    track_momentum: float = 0.5
    """A matched track's embedding becomes ``momentum · old + (1 - momentum) · new`` (re-normalised)."""
    seed: int = 0
    """Seed of the random centres (inference is deterministic for a given seed)."""


def cosine_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(1 - cos(x, y)) / 2`` in ``[0, 1]`` between the rows of ``x [N, C]`` and ``y [M, C]``: ``[N, M]``."""
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.nn.functional.normalize(y, dim=-1)
    return (1.0 - x @ y.T) / 2.0


@torch.no_grad()
def cosine_mean_shift(
    embeddings: torch.Tensor,
    threshold: float,
    max_iterations: int = 20,
    max_clusters: int = 256,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Mean shift on the unit sphere with a hard cosine window (Zhu et al. 2022, Sec. III-A; see the module doc).

    Args:
        embeddings: ``[P, C]`` embeddings (normalised here).
        threshold: ``m``, the inlier cosine distance in ``[0, 1]``.
        max_iterations: shifts per cluster at most.
        max_clusters: stop after this many clusters.
        generator: CPU generator of the random centres.

    Returns:
        ``[P]`` int64 cluster ids ``0, 1, ...`` in the order found; ``-1`` for embeddings left unclustered.
    """
    z = torch.nn.functional.normalize(embeddings, dim=1)
    p = z.shape[0]
    labels = torch.full((p,), -1, dtype=torch.int64, device=z.device)
    cos_limit = 1.0 - 2.0 * threshold  # d < m  <=>  cos > 1 - 2m
    for cluster in range(max_clusters):
        free = torch.nonzero(labels < 0).flatten()
        if free.numel() == 0:
            break
        pick = free[int(torch.randint(free.numel(), (), generator=generator))]
        centre = z[pick]
        inliers = torch.zeros(0, dtype=torch.int64)
        for _ in range(max_iterations):
            new = free[z[free] @ centre > cos_limit]
            if new.numel() == 0 or (new.numel() == inliers.numel() and bool((new == inliers).all())):
                break
            inliers = new
            centre = torch.nn.functional.normalize(z[inliers].mean(0), dim=0)
        if inliers.numel() == 0:
            inliers = pick.reshape(1)
        labels[inliers] = cluster
    return labels


def area_perimeter_ratio(mask: np.ndarray) -> float:
    """Area / perimeter of a ``[H, W]`` bool mask: the perimeter counts the mask's pixels that have a 4-neighbour
    outside it (the image border counts as outside). A filled ``s x s`` square gives ``s² / (4 s - 4)``; an empty
    mask gives 0."""
    m = np.asarray(mask, bool)
    area = int(m.sum())
    if area == 0:
        return 0.0
    padded = np.pad(m, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & m
    return area / max(1, area - int(interior.sum()))


class EmbeddingTracker:
    """Carries instance ids over frames by embedding similarity (one tracker per sequence).

    ``update(embeddings [N, C], classes [N]) -> track ids [N]`` for the instances of the next frame: a cost
    ``d(e_n, t_k)`` (scaled cosine distance; infinite across classes and at or above ``threshold``) is assigned by the Hungarian method; pairs
    below ``threshold`` continue track ``k`` (whose embedding moves toward the new one by ``momentum``), the rest
    start new tracks with fresh ids ``1, 2, ...``. Tracks are never closed: an object hidden for a while keeps its
    id when it reappears (a static scene seen by a moving camera).
    """

    def __init__(self, threshold: float, momentum: float = 0.5):
        self.threshold, self.momentum = threshold, momentum
        self.embeddings: list[torch.Tensor] = []
        self.classes: list[int] = []

    def update(self, embeddings: torch.Tensor, classes: np.ndarray) -> np.ndarray:
        n = embeddings.shape[0]
        ids = np.zeros(n, np.int64)
        if n == 0:
            return ids
        z = torch.nn.functional.normalize(embeddings.float().cpu(), dim=1)
        matched = np.zeros(n, bool)
        if self.embeddings:
            cost = cosine_distance(z, torch.stack(self.embeddings)).numpy().astype(np.float64)
            cost[np.asarray(classes)[:, None] != np.asarray(self.classes)[None, :]] = 1e6
            cost[cost >= self.threshold] = 1e6  # gate first, so that one far pair cannot steal a near one's track
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < self.threshold:
                    ids[r], matched[r] = c + 1, True
                    mixed = self.momentum * self.embeddings[c] + (1.0 - self.momentum) * z[r]
                    self.embeddings[c] = torch.nn.functional.normalize(mixed, dim=0)
        for r in np.nonzero(~matched)[0]:
            self.embeddings.append(z[r])
            self.classes.append(int(classes[r]))
            ids[r] = len(self.embeddings)
        return ids
