r"""Coherent depth regions: pixels grouped by their coherence in 3D (Zeng, Lengyel, Tömen, van Gemert, "Copy-Pasting
Coherent Depth Regions Improves Contrastive Learning for Urban-Scene Segmentation", BMVC 2022; paper 003).

The grouping is the paper's heuristic, step by step (:func:`coherent_depth_regions`):

1. **Superpixels.** SLIC (scikit-image) on the image, as many superpixels as keep
   :attr:`DepthRegionConfig.pixels_per_superpixel` pixels in each (the paper: 10 000 superpixels on 1024x2048
   frames), smaller on low-resolution frames so that a superpixel spans at most
   :attr:`DepthRegionConfig.max_superpixel_angle` (:func:`superpixel_size`); pixels without depth are dropped.
2. **3D centroids.** Every pixel is back-projected with its depth, ``X = z K^{-1} [u + 0.5, v + 0.5, 1]^T`` (pixel
   centres at ``u + 0.5``, as everywhere in lift3d), and each superpixel gets the mean ``c_i`` of its points.
3. **Graph.** Superpixels that touch (4-neighbourhood) are joined by an edge weighted by their normalised 3D distance

   .. math:: w_{ij} = \sigma\!\left(\frac{48\,\lVert c_i - c_j \rVert}{z_{max} + z_{min}} - 4\right)

   (:func:`depth_edge_weight`), ``σ`` the logistic sigmoid and ``z_min``, ``z_max`` the frame's depth range: a weight
   near 0 means "same surface", near 1 "a depth jump".
4. **Communities.** Louvain (or greedy modularity) community detection from networkx on the similarity
   ``1 - w_ij``.
5. **Merging.** Neighbouring communities are merged, the pair with the lowest inter-community weight first, while that
   weight is below 0.20 (:func:`merge_communities`). The inter-community weight of two communities is the mean
   ``w_ij`` over the superpixel edges that join them (the paper does not say how it aggregates; the mean keeps a long
   shared border and a short one comparable).

The regions follow depth discontinuities, not surface orientation: a floor running smoothly into a wall is one
region, an object standing in front of a wall is another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np
from skimage.segmentation import slic

__all__ = [
    "DepthRegionConfig",
    "coherent_depth_regions",
    "superpixels",
    "superpixel_centroids",
    "superpixel_adjacency",
    "superpixel_size",
    "depth_edge_weight",
    "detect_communities",
    "merge_communities",
]

#: Pixels per superpixel in the paper: 10 000 SLIC superpixels on 1024x2048 Cityscapes frames.
PAPER_PIXELS_PER_SUPERPIXEL = 1024 * 2048 / 10_000


@dataclass
class DepthRegionConfig:
    """Parameters of the coherent-depth-region grouping; defaults are paper 003's values where it gives them."""

    pixels_per_superpixel: float = PAPER_PIXELS_PER_SUPERPIXEL
    """Pixels per SLIC superpixel (paper: 10 000 superpixels on 1024x2048 frames, about 210 pixels each); the number of
    superpixels of a frame is its count of pixels with a known depth divided by this, so small frames keep the
    paper's superpixel size rather than its superpixel count."""
    slic_compactness: float = 10.0
    """SLIC's balance of colour against image distance (scikit-image's default; the paper does not give one)."""
    slic_sigma: float = 0.0
    """Width of the Gaussian smoothing SLIC applies to the image first, in pixels (0: none, scikit-image's default)."""
    distance_gain: float = 48.0
    """The 48 in ``w = sigmoid(48 ||c_i - c_j|| / (z_max + z_min) - 4)`` (paper 003)."""
    distance_offset: float = 4.0
    """The 4 in ``w = sigmoid(48 ||c_i - c_j|| / (z_max + z_min) - 4)`` (paper 003)."""
    max_superpixel_angle: float | None = 0.03
    """Upper bound on the width of one superpixel seen from the camera, ``sqrt(pixels per superpixel) / f`` in
    radians (``f = sqrt(fx fy)``); smaller frames get smaller superpixels so that it holds. Two neighbouring
    superpixels on one surface at depth ``z`` are about ``theta z`` apart, and the weight merges them only below about
    ``0.054 (z_max + z_min)``, so wide superpixels cut flat walls apart. On the paper's frames (210 px per
    superpixel, f = 2262.52 px) ``theta`` is 0.0064 and the bound never binds; on a 128 px frame with a 70 degree
    lens (f = 91 px) the paper's superpixel size gives 0.16. None: always :attr:`pixels_per_superpixel`."""
    min_pixels_per_superpixel: float = 4.0
    """Floor of the superpixel size that :attr:`max_superpixel_angle` may ask for (pixels)."""
    merge_threshold: float = 0.20
    """Neighbouring communities are merged while their inter-community weight (mean ``w`` over the edges joining them)
    is below this (paper 003: 0.20)."""
    community_method: Literal["louvain", "greedy_modularity"] = "louvain"
    """networkx community detection on the similarity ``1 - w``: ``louvain`` (fast) or ``greedy_modularity``
    (Clauset-Newman-Moore, slower, deterministic without a seed)."""
    modularity_resolution: float = 1.0
    """Resolution of the modularity both methods optimise (above 1: more, smaller communities before merging)."""
    seed: int = 0
    """Seed of Louvain's node order, so a frame always gives the same regions."""


def superpixels(
    image: np.ndarray, valid: np.ndarray, pixels_per_superpixel: float, config: DepthRegionConfig
) -> np.ndarray:
    """SLIC superpixels of the image (``H W / pixels_per_superpixel`` of them), kept where the depth is known.

    SLIC runs on the whole image (its grid start is much faster than the k-means start of a masked SLIC); pixels
    without depth are then dropped, so a superpixel may lose part of its pixels.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        valid: ``[H, W]`` bool, True where the depth is known.
        pixels_per_superpixel: target superpixel size in pixels (:func:`superpixel_size`).
        config: :class:`DepthRegionConfig` (compactness, smoothing).

    Returns:
        ``[H, W]`` int64 superpixel ids ``0..S-1`` (consecutive), ``-1`` where ``valid`` is False.
    """
    num_valid = int(valid.sum())
    labels = np.full(valid.shape, -1, dtype=np.int64)
    if num_valid == 0:
        return labels
    n_segments = max(1, int(round(valid.size / pixels_per_superpixel)))
    slic_labels = slic(
        image,
        n_segments=n_segments,
        compactness=config.slic_compactness,
        sigma=config.slic_sigma,
        start_label=0,
        channel_axis=-1,
    )
    inside = valid
    _, consecutive = np.unique(slic_labels[inside], return_inverse=True)
    labels[inside] = consecutive.reshape(-1)
    return labels


def superpixel_centroids(labels: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Mean back-projected 3D point of each superpixel.

    Every labelled pixel ``(u, v)`` with depth ``z`` becomes ``X = z K^{-1} [u + 0.5, v + 0.5, 1]^T`` (camera frame,
    x right, y down, z forward; distances do not depend on the axis convention), and ``c_i`` is the mean of the points
    of superpixel ``i``.

    Args:
        labels: ``[H, W]`` int64 superpixel ids ``0..S-1``, ``-1`` for unlabelled pixels.
        depth: ``[H, W]`` optical-axis depth in metres (used where ``labels >= 0``).
        intrinsics: ``[3, 3]`` pinhole matrix ``K``.

    Returns:
        ``[S, 3]`` float64 centroids.
    """
    num_superpixels = int(labels.max()) + 1
    v, u = np.nonzero(labels >= 0)
    ids = labels[v, u]
    z = depth[v, u].astype(np.float64)
    pixels = np.stack([u + 0.5, v + 0.5, np.ones_like(z)], axis=0)  # [3, N]
    points = (np.linalg.inv(np.asarray(intrinsics, dtype=np.float64)) @ pixels) * z  # [3, N]
    counts = np.bincount(ids, minlength=num_superpixels).astype(np.float64)
    sums = np.stack([np.bincount(ids, weights=points[k], minlength=num_superpixels) for k in range(3)], axis=1)
    return sums / np.maximum(counts, 1.0)[:, None]


def superpixel_adjacency(labels: np.ndarray) -> np.ndarray:
    """Pairs of superpixels that touch across a horizontal or vertical pixel border.

    Args:
        labels: ``[H, W]`` int64 superpixel ids ``0..S-1``, ``-1`` for unlabelled pixels (never part of an edge).

    Returns:
        ``[E, 2]`` int64 edges ``(i, j)`` with ``i < j``, each once, sorted.
    """
    num_superpixels = int(labels.max()) + 1
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        touching = (a != b) & (a >= 0) & (b >= 0)
        lo = np.minimum(a[touching], b[touching])
        hi = np.maximum(a[touching], b[touching])
        pairs.append(lo * num_superpixels + hi)
    keys = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, dtype=np.int64)
    return np.stack([keys // max(num_superpixels, 1), keys % max(num_superpixels, 1)], axis=1).astype(np.int64)


def superpixel_size(intrinsics: np.ndarray, config: DepthRegionConfig) -> float:
    """Pixels per superpixel for a frame: :attr:`DepthRegionConfig.pixels_per_superpixel`, made smaller where needed
    so that one superpixel spans at most :attr:`DepthRegionConfig.max_superpixel_angle` radians,
    ``min(pixels_per_superpixel, max(min_pixels_per_superpixel, (max_superpixel_angle * f)^2))``, ``f = sqrt(fx fy)``.

    Args:
        intrinsics: ``[3, 3]`` pinhole matrix ``K`` of the frame.
        config: :class:`DepthRegionConfig`.
    """
    if config.max_superpixel_angle is None:
        return config.pixels_per_superpixel
    focal = math.sqrt(float(intrinsics[0, 0]) * float(intrinsics[1, 1]))
    bound = max(config.min_pixels_per_superpixel, (config.max_superpixel_angle * focal) ** 2)
    return min(config.pixels_per_superpixel, bound)


def depth_edge_weight(
    centroids: np.ndarray, edges: np.ndarray, z_min: float, z_max: float, gain: float, offset: float
) -> np.ndarray:
    r"""Paper 003's edge weight between neighbouring superpixels:

    .. math:: w_{ij} = \sigma\!\left(\frac{g\,\lVert c_i - c_j \rVert}{z_{max} + z_{min}} - o\right),
              \qquad g = 48,\ o = 4

    Normalising by ``z_max + z_min`` makes the weight independent of the scene's scale: the weight is 0.5 where two
    centroids are ``4 (z_max + z_min) / g`` apart and 0.2 (the merge threshold) at ``2.61 (z_max + z_min) / g``.

    Args:
        centroids: ``[S, 3]`` superpixel centroids in metres.
        edges: ``[E, 2]`` int64 pairs of neighbouring superpixels.
        z_min: smallest known depth of the frame (metres).
        z_max: largest known depth of the frame (metres).
        gain: ``g``.
        offset: ``o``.

    Returns:
        ``[E]`` float64 weights in ``(0, 1)``.
    """
    distance = np.linalg.norm(centroids[edges[:, 0]] - centroids[edges[:, 1]], axis=1)
    logits = gain * distance / (z_max + z_min) - offset
    return 1.0 / (1.0 + np.exp(-logits))


def detect_communities(
    num_superpixels: int, edges: np.ndarray, similarity: np.ndarray, config: DepthRegionConfig
) -> np.ndarray:
    """Community detection (networkx) on the superpixel graph weighted by ``similarity = 1 - w``.

    Args:
        num_superpixels: ``S``; superpixels without an edge form a community of their own.
        edges: ``[E, 2]`` int64 pairs of neighbouring superpixels.
        similarity: ``[E]`` edge weights for the modularity.
        config: method, resolution and seed.

    Returns:
        ``[S]`` int64 community id of every superpixel.
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(num_superpixels))
    graph.add_weighted_edges_from(
        zip(edges[:, 0].tolist(), edges[:, 1].tolist(), similarity.tolist()), weight="similarity"
    )
    if config.community_method == "louvain":
        groups = nx.community.louvain_communities(
            graph, weight="similarity", resolution=config.modularity_resolution, seed=config.seed
        )
    elif config.community_method == "greedy_modularity":
        groups = nx.community.greedy_modularity_communities(
            graph, weight="similarity", resolution=config.modularity_resolution
        )
    else:
        raise ValueError(
            f"DepthRegionConfig.community_method is {config.community_method!r}; use 'louvain' or 'greedy_modularity'"
        )
    community = np.empty(num_superpixels, dtype=np.int64)
    for index, members in enumerate(sorted(groups, key=min)):
        community[list(members)] = index
    return community


def merge_communities(community: np.ndarray, edges: np.ndarray, weight: np.ndarray, threshold: float) -> np.ndarray:
    """Merge neighbouring communities while their inter-community weight is below ``threshold`` (paper 003: 0.20).

    The inter-community weight of communities ``A`` and ``B`` is the mean edge weight over the superpixel edges
    joining them, ``W(A, B) = sum_{(i,j) in E(A,B)} w_ij / |E(A,B)|``. Repeatedly the neighbouring pair with the
    smallest ``W`` is merged (sums and counts add, so ``W`` of the merged community with each neighbour is again the
    mean over all joining edges), until no pair is below ``threshold``.

    Args:
        community: ``[S]`` int64 community id of every superpixel.
        edges: ``[E, 2]`` int64 pairs of neighbouring superpixels.
        weight: ``[E]`` edge weights ``w_ij``.
        threshold: merge while ``W < threshold``.

    Returns:
        ``[S]`` int64 merged community id of every superpixel (ids of surviving communities, not consecutive).
    """
    a, b = community[edges[:, 0]], community[edges[:, 1]]
    between = a != b
    lo, hi = np.minimum(a[between], b[between]), np.maximum(a[between], b[between])
    neighbours: dict[int, dict[int, list[float]]] = {}
    for i, j, w in zip(lo.tolist(), hi.tolist(), weight[between].tolist()):
        stats = neighbours.setdefault(i, {}).setdefault(j, [0.0, 0])
        stats[0] += w
        stats[1] += 1
        neighbours.setdefault(j, {})[i] = stats
    parent = np.arange(int(community.max()) + 1 if community.size else 0)
    while True:
        best = min(
            ((stats[0] / stats[1], i, j) for i, row in neighbours.items() for j, stats in row.items() if i < j),
            default=None,
        )
        if best is None or best[0] >= threshold:
            break
        _, keep, gone = best
        parent[parent == gone] = keep
        for other, stats in neighbours.pop(gone).items():
            del neighbours[other][gone]
            if other == keep:
                continue
            merged = neighbours[keep].get(other)
            if merged is None:
                merged = [0.0, 0]
                neighbours[keep][other] = merged
                neighbours[other][keep] = merged
            merged[0] += stats[0]
            merged[1] += stats[1]
    return parent[community]


def _validate(image: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"coherent_depth_regions: image must be [H, W, 3], got shape {image.shape}")
    if depth.shape != image.shape[:2]:
        raise ValueError(f"coherent_depth_regions: depth {depth.shape} must match the image's {image.shape[:2]}")
    if np.asarray(intrinsics).shape != (3, 3):
        raise ValueError(f"coherent_depth_regions: intrinsics must be a [3, 3] matrix, got {np.shape(intrinsics)}")


def coherent_depth_regions(
    image: np.ndarray,
    depth: np.ndarray,
    intrinsics: np.ndarray,
    config: DepthRegionConfig = DepthRegionConfig(),
) -> np.ndarray:
    """Group a frame's pixels into regions coherent in 3D (paper 003; the steps in the module docstring).

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        depth: ``[H, W]`` float32 optical-axis depth in metres; 0 (or not finite) where unknown.
        intrinsics: ``[3, 3]`` pinhole matrix ``K`` of the frame.
        config: :class:`DepthRegionConfig`.

    Returns:
        ``[H, W]`` int64 region ids ``0..R-1`` numbered in raster order of their first pixel, ``-1`` where the depth
        is unknown.
    """
    _validate(image, depth, intrinsics)
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    labels = superpixels(image, valid, superpixel_size(np.asarray(intrinsics), config), config)
    regions = np.full(depth.shape, -1, dtype=np.int64)
    if labels.max() < 0:
        return regions
    centroids = superpixel_centroids(labels, depth, intrinsics)
    edges = superpixel_adjacency(labels)
    z_min, z_max = float(depth[valid].min()), float(depth[valid].max())
    weight = depth_edge_weight(centroids, edges, z_min, z_max, config.distance_gain, config.distance_offset)
    community = detect_communities(len(centroids), edges, 1.0 - weight, config)
    merged = merge_communities(community, edges, weight, config.merge_threshold)
    labelled = labels >= 0
    per_pixel = merged[labels[labelled]]
    ids, first = np.unique(per_pixel, return_index=True)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(ids))
    regions[labelled] = rank[np.searchsorted(ids, per_pixel)]
    return regions
