"""Cluster rendered instance embeddings into objects, per semantic thing class, and label any view.

Pipeline (Contrastive Lift (Bhalgat et al. 2023), Sec. 3, "Rendering instance segmentation maps"; details as the
reference code):

1. For each thing class, take the rendered fast-field embeddings of the pixels whose semantic argmax is
   that class (``[N, dim]``).
2. Drop outliers: a point is an outlier when, in any dimension, it lies more than ``outlier_sigma``
   standard deviations from that dimension's mean.
3. Rescale every dimension to ``[0, 1]`` with the inliers' min/max. The affine map is stored so that
   novel points are mapped identically (novel points may fall outside ``[0, 1]``; they are not clipped).
4. Subsample at most ``max_points`` inliers (seeded) and cluster them with HDBSCAN (or DBSCAN /
   MeanShift); the number of objects is never an input.
5. One centroid per cluster in the rescaled space. Every pixel of the class (outliers and noise
   included) is labelled by its nearest centroid.

With ``ClusterConfig.position_weight`` w > 0 (lift3d's addition) each point's rendered surface point ``x`` is
joined to its rescaled embedding as ``w (x - x_min) / L`` (``L`` the largest side of the inliers' box, one scale
for the three axes so the room keeps its shape) before steps 4-5: objects that share an embedding because they
were never seen in one image are still told apart by where they are.

Instance ids are made globally unique across classes by a per-class offset; stuff pixels get 0.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from lift3d.engine.config import ClusterConfig  # the settings live with the FitConfig
from lift3d.io.atomic import atomic_write_json

_FORMAT = "lift3d.scene_clusters"
_FORMAT_VERSION = 1


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _like(labels: np.ndarray, ref):
    """Return ``labels`` as a torch long tensor on ``ref``'s device if ``ref`` is a tensor."""
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(labels, dtype=torch.long, device=ref.device)
    return labels


@dataclass
class ClassClusters:
    """Cached clusters of one semantic class: the rescaling and the centroids in the rescaled space."""

    offset: np.ndarray
    """``[dim]`` inliers' per-dimension minimum (subtracted before scaling)."""
    scale: np.ndarray
    """``[dim]`` inliers' per-dimension max - min (1 where the range is 0)."""
    centroids: np.ndarray
    """``[num_clusters, dim]`` centroids in the rescaled space (at least one); ``[num_clusters, dim + 3]`` when
    positions are joined (``position_weight > 0``)."""
    position_weight: float = 0.0
    """Weight of the joined surface point (0: the embedding alone)."""
    position_offset: np.ndarray | None = None
    """``[3]`` inliers' minimum surface point (world units), when ``position_weight > 0``."""
    position_scale: float = 1.0
    """Largest side of the inliers' surface points' bounding box (world units), when ``position_weight > 0``."""

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def uses_position(self) -> bool:
        return self.position_weight > 0

    def rescale(self, embeddings, positions=None) -> np.ndarray:
        """``[M, dim]`` embeddings -> ``(e - offset) / scale`` as float64 numpy, joined with
        ``position_weight (x - position_offset) / position_scale`` for ``positions`` ``[M, 3]`` when the clusters
        use positions."""
        x = _to_numpy(embeddings).astype(np.float64, copy=False)
        if x.ndim != 2 or x.shape[1] != self.offset.shape[0]:
            raise ValueError(
                f"ClassClusters: embeddings must be [num_points, {self.offset.shape[0]}], got {x.shape}; "
                "render with the same embedding_dim that the clusters were fitted on."
            )
        z = (x - self.offset) / self.scale
        if not self.uses_position:
            return z
        if positions is None:
            raise ValueError(
                "ClassClusters: these clusters were fitted on embeddings joined with surface points "
                f"(cluster.position_weight={self.position_weight}); pass each pixel's rendered surface point "
                "(position [M, 3]) to label it."
            )
        p = _to_numpy(positions).astype(np.float64, copy=False).reshape(-1, 3)
        if len(p) != len(z):
            raise ValueError(f"ClassClusters: {len(z)} embeddings but {len(p)} positions.")
        return np.concatenate([z, self.position_weight * (p - self.position_offset) / self.position_scale], axis=1)

    def assign(self, embeddings, positions=None):
        """Label ``[M, dim]`` embeddings (with their ``[M, 3]`` surface points when the clusters use positions)
        with the index ``0..K-1`` of the nearest centroid (Euclidean, in the rescaled space). Every point gets a
        label. Returns ``[M]`` int64 (a torch long tensor if the input is a tensor)."""
        x = self.rescale(embeddings, positions)
        if x.shape[0] == 0:
            return _like(np.zeros(0, dtype=np.int64), embeddings)
        _, idx = cKDTree(self.centroids).query(x, k=1)
        return _like(np.asarray(idx, dtype=np.int64), embeddings)

    def to_dict(self) -> dict:
        d = {"offset": self.offset.tolist(), "scale": self.scale.tolist(), "centroids": self.centroids.tolist()}
        if self.uses_position:
            d["position"] = {
                "weight": float(self.position_weight),
                "offset": self.position_offset.tolist(),
                "scale": float(self.position_scale),
            }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClassClusters":
        centroids = np.asarray(d["centroids"], dtype=np.float64)
        offset = np.asarray(d["offset"], dtype=np.float64)
        pos = d.get("position")
        dim = offset.shape[0] + (3 if pos else 0)
        return cls(
            offset=offset,
            scale=np.asarray(d["scale"], dtype=np.float64),
            centroids=centroids.reshape(-1, dim),
            position_weight=float(pos["weight"]) if pos else 0.0,
            position_offset=np.asarray(pos["offset"], dtype=np.float64) if pos else None,
            position_scale=float(pos["scale"]) if pos else 1.0,
        )


def _inlier_mask(x: np.ndarray, sigma: float) -> np.ndarray:
    mean, std = x.mean(axis=0), x.std(axis=0)
    inliers = np.all(np.abs(x - mean) <= sigma * std, axis=1)
    return inliers if inliers.any() else np.ones(len(x), dtype=bool)


@contextmanager
def tree_cache() -> Iterator[Any]:
    """A cache of HDBSCAN's minimum spanning tree for the calls made inside the ``with`` block (a
    ``joblib.Memory`` in a temporary folder, removed on exit; HDBSCAN's own ``memory`` option).

    The tree depends on the points and ``min_samples`` only, not on ``min_cluster_size``: a sweep over
    ``min_cluster_size`` on the same points computes it once and only condenses it again per size (the
    expensive part of HDBSCAN is the tree). The labels are those of an uncached HDBSCAN."""
    from joblib import Memory

    with tempfile.TemporaryDirectory(prefix="lift3d-hdbscan-") as folder:
        yield Memory(folder, verbose=0)


def _run_algorithm(
    x: np.ndarray, cfg: ClusterConfig, min_cluster_size: int, memory: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``[n, dim]`` rescaled points -> (labels [n] with -1 = noise, weights [n] for centroids).
    ``memory``: a :func:`tree_cache` (HDBSCAN only)."""
    weights = np.ones(len(x))
    if cfg.algorithm == "hdbscan":
        import hdbscan

        kwargs = {} if memory is None else {"memory": memory}
        clusterer = hdbscan.HDBSCAN(
            min_cluster_size=max(2, min_cluster_size),
            min_samples=cfg.min_samples,
            allow_single_cluster=cfg.allow_single_cluster,
            **kwargs,
        ).fit(x)
        if cfg.weighted_centroids:
            weights = np.asarray(clusterer.probabilities_, dtype=np.float64)
        return np.asarray(clusterer.labels_), weights
    if cfg.algorithm == "dbscan":
        from sklearn.cluster import DBSCAN

        labels = DBSCAN(eps=cfg.dbscan_eps, min_samples=cfg.min_samples).fit_predict(x)
    elif cfg.algorithm == "meanshift":
        from sklearn.cluster import MeanShift

        labels = MeanShift(bandwidth=cfg.meanshift_bandwidth, bin_seeding=True).fit_predict(x)
    else:
        raise ValueError(f"ClusterConfig.algorithm: unknown {cfg.algorithm!r}; use 'hdbscan', 'dbscan' or 'meanshift'.")
    # Same meaning of min_cluster_size for every back-end: smaller clusters become noise.
    labels = np.asarray(labels).copy()
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    for cid in ids[counts < min_cluster_size]:
        labels[labels == cid] = -1
    return labels, weights


def fit_class_clusters(
    embeddings,
    cfg: ClusterConfig,
    min_cluster_size: int | None = None,
    memory: Any = None,
    positions=None,
    position_weight: float = 0.0,
) -> ClassClusters:
    """Fit the clusters of one semantic class (module docstring, steps 2-5).

    Args:
        embeddings: ``[N, dim]`` rendered instance embeddings of the class's pixels (numpy or torch).
        cfg: clustering configuration.
        min_cluster_size: overrides ``cfg.min_cluster_size``; one of the two must be set.
        memory: a :func:`tree_cache` shared by calls on the same points (a sweep); None = no cache.
        positions: ``[N, 3]`` rendered surface points of the same pixels (needed when ``position_weight > 0``).
        position_weight: weight of the joined surface point (module docstring; 0: the embedding alone).

    Returns:
        :class:`ClassClusters` with ``K >= 1`` centroids. Centroids are the members' means in the rescaled
        space (HDBSCAN: weighted by membership strength when ``cfg.weighted_centroids``). When the
        algorithm finds no cluster (or there are fewer points than ``min_cluster_size``), the single
        centroid is the mean of the fitted points.
    """
    size = cfg.min_cluster_size if min_cluster_size is None else min_cluster_size
    if size is None:
        raise ValueError(
            "fit_class_clusters: min_cluster_size is None in both the argument and ClusterConfig; set it, "
            "or choose it with sweep_min_cluster_size(...)."
        )
    x = _to_numpy(embeddings).astype(np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"fit_class_clusters: expected non-empty [N, dim] embeddings, got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError("fit_class_clusters: embeddings contain NaN or inf; check the rendered instance field.")
    inliers = _inlier_mask(x, cfg.outlier_sigma)
    inl = x[inliers]
    offset = inl.min(axis=0)
    scale = inl.max(axis=0) - offset
    scale = np.where(scale > 0, scale, 1.0)
    z = (inl - offset) / scale
    position_offset, position_scale = None, 1.0
    if position_weight > 0:
        if positions is None:
            raise ValueError("fit_class_clusters: position_weight > 0 needs the points' positions [N, 3].")
        p = _to_numpy(positions).astype(np.float64).reshape(-1, 3)
        if len(p) != len(x) or not np.isfinite(p).all():
            raise ValueError(f"fit_class_clusters: positions must be finite [{len(x)}, 3], got {p.shape}.")
        p = p[inliers]
        position_offset = p.min(axis=0)
        position_scale = float((p.max(axis=0) - position_offset).max()) or 1.0
        z = np.concatenate([z, position_weight * (p - position_offset) / position_scale], axis=1)
    if len(z) > cfg.max_points:
        rng = np.random.default_rng(cfg.seed)
        z = z[rng.choice(len(z), size=cfg.max_points, replace=False)]

    centroids = []
    if len(z) >= max(2, size):
        labels, weights = _run_algorithm(z, cfg, size, memory)
        for cid in np.unique(labels[labels >= 0]):
            members = labels == cid
            w = weights[members]
            centroids.append(np.average(z[members], axis=0, weights=w) if w.sum() > 0 else z[members].mean(axis=0))
    if not centroids:
        centroids = [z.mean(axis=0)]
    return ClassClusters(
        offset=offset,
        scale=scale,
        centroids=np.stack(centroids),
        position_weight=float(position_weight) if position_weight > 0 else 0.0,
        position_offset=position_offset,
        position_scale=position_scale,
    )


@dataclass
class SceneClusters:
    """Per thing class clusters, and the mapping of (class, cluster) to a scene-wide instance id.

    Instance ids: class ``c`` (in ascending order of the thing classes) owns the ids
    ``id_offset[c] + 1 .. id_offset[c] + K_c`` with ``id_offset`` the running total of the previous
    classes' ``K``, so ids are positive, contiguous and never collide across classes. 0 = no instance
    (stuff pixels, and thing pixels of a class that had no pixel to fit on).
    """

    thing_classes: tuple[int, ...]
    """Semantic class ids that are things (sorted)."""
    classes: dict[int, ClassClusters] = field(default_factory=dict)
    """Fitted clusters per thing class (a thing class absent from the fitting data has no entry)."""

    def id_offsets(self) -> dict[int, int]:
        offsets, total = {}, 0
        for c in sorted(self.classes):
            offsets[c] = total
            total += self.classes[c].num_clusters
        return offsets

    @property
    def num_instances(self) -> int:
        """Total number of instance ids (all classes)."""
        return sum(cc.num_clusters for cc in self.classes.values())

    def instance_classes(self) -> dict[int, int]:
        """Map each instance id to its semantic class."""
        out = {}
        for c, off in self.id_offsets().items():
            for k in range(self.classes[c].num_clusters):
                out[off + k + 1] = c
        return out

    @property
    def uses_position(self) -> bool:
        """Whether labelling needs each pixel's surface point (clusters fitted with ``position_weight > 0``)."""
        return any(cc.uses_position for cc in self.classes.values())

    def label(self, sem, emb, position=None):
        """Instance id of every pixel.

        Args:
            sem: semantic class per pixel, ``[H, W]`` or ``[M]`` (numpy or torch).
            emb: instance embeddings, ``[*sem.shape, dim]``.
            position: rendered surface points ``[*sem.shape, 3]`` (world units); required when
                :attr:`uses_position`, ignored otherwise.

        Returns:
            Instance ids with ``sem``'s shape (int64 numpy, or torch long if ``sem`` is a tensor):
            0 for stuff, ``id_offset[c] + 1 + nearest centroid`` for thing class ``c``.
        """
        s = _to_numpy(sem)
        e = _to_numpy(emb)
        if e.shape[:-1] != s.shape:
            raise ValueError(
                f"SceneClusters.label: emb has shape {e.shape} but sem has {s.shape}; emb must be "
                "[*sem.shape, embedding_dim]."
            )
        s_flat = s.reshape(-1)
        e_flat = e.reshape(-1, e.shape[-1])
        p_flat = None
        if self.uses_position:
            if position is None:
                raise ValueError(
                    "SceneClusters.label: these clusters join each pixel's surface point to its embedding "
                    "(cluster.position_weight > 0); pass position=[*sem.shape, 3] (o + depth * d)."
                )
            p_flat = _to_numpy(position).reshape(-1, 3)
            if len(p_flat) != len(s_flat):
                raise ValueError(f"SceneClusters.label: {len(p_flat)} positions for {len(s_flat)} pixels.")
        out = np.zeros(s_flat.shape, dtype=np.int64)
        for c, off in self.id_offsets().items():
            mask = s_flat == c
            if mask.any():
                out[mask] = off + 1 + self.classes[c].assign(e_flat[mask], None if p_flat is None else p_flat[mask])
        return _like(out.reshape(s.shape), sem)

    def save(self, path: str | os.PathLike) -> None:
        """Write to a small JSON file atomically (:func:`lift3d.io.atomic_write_json`)."""
        path = Path(path)
        data = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "thing_classes": [int(c) for c in self.thing_classes],
            "classes": {str(c): cc.to_dict() for c, cc in sorted(self.classes.items())},
        }
        atomic_write_json(path, data, indent=None)  # float repr round-trips float64 exactly

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SceneClusters":
        """Read a file written by :meth:`save`."""
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read cluster centroids ({err}); re-run the clustering step.") from err
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a lift3d cluster file (missing format {_FORMAT!r}); re-run clustering.")
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{path}: cluster file version {data.get('version')} is not supported (expected "
                f"{_FORMAT_VERSION}); re-run the clustering step with this lift3d."
            )
        classes = {int(c): ClassClusters.from_dict(d) for c, d in data["classes"].items()}
        return cls(thing_classes=tuple(int(c) for c in data["thing_classes"]), classes=classes)


def fit_scene_clusters(
    emb,
    sem,
    thing_classes: Iterable[int],
    cfg: ClusterConfig,
    min_cluster_size: int | None = None,
    memory: Any = None,
    positions=None,
    position_weight: float = 0.0,
) -> SceneClusters:
    """Fit :class:`ClassClusters` for every thing class present in ``sem`` (``memory``: a :func:`tree_cache`;
    ``positions`` ``[N, 3]`` and ``position_weight``: see :func:`fit_class_clusters`).

    Args:
        emb: ``[N, dim]`` rendered fast-field embeddings (pixels of views the method may see: never the
            test views).
        sem: ``[N]`` predicted semantic class (rendered argmax) of the same pixels.
        thing_classes: semantic ids that are things; every other class is stuff (instance 0).
        cfg: clustering configuration.
        min_cluster_size: overrides ``cfg.min_cluster_size``.
    """
    e = _to_numpy(emb)
    s = _to_numpy(sem).reshape(-1)
    e = e.reshape(-1, e.shape[-1])
    if len(e) != len(s):
        raise ValueError(f"fit_scene_clusters: {len(e)} embeddings but {len(s)} semantic labels.")
    things = tuple(sorted(int(c) for c in thing_classes))
    p = None if positions is None else _to_numpy(positions).reshape(-1, 3)
    classes = {}
    for c in things:
        mask = s == c
        if mask.any():
            classes[c] = fit_class_clusters(
                e[mask], cfg, min_cluster_size, memory, None if p is None else p[mask], position_weight
            )
    return SceneClusters(thing_classes=things, classes=classes)


def sweep_min_cluster_size(
    emb,
    sem,
    thing_classes: Iterable[int],
    cfg: ClusterConfig,
    candidate_sizes: Sequence[int] | None = None,
    score_fn: Callable[[SceneClusters], float] | None = None,
    progress: Callable[[int], None] | None = None,
    memory: Any = None,
    positions=None,
    position_weight: float = 0.0,
) -> tuple[int, dict[int, float]]:
    """Choose ``min_cluster_size`` by fitting every candidate: the smallest size whose score is within
    ``cfg.sweep_tolerance`` of the best score.

    Why not the plain argmax: the score lift3d uses (per-frame PQ against the 2D masks of training views) is
    blind to one error, the same cluster given to two objects that are never seen in one image. Larger sizes
    make that error more frequent (fewer clusters) while the per-frame score keeps creeping up once
    fragmentation is gone, so the argmax drifts to sizes that merge objects across views. The smallest size on
    the score's plateau is the knee: fragmentation gone, as many clusters as the data supports.
    ``sweep_tolerance = 0`` is the argmax (ties to the smallest size).

    Args:
        emb, sem, thing_classes, cfg: as :func:`fit_scene_clusters`.
        candidate_sizes: sizes to try (default ``cfg.sweep_sizes``).
        score_fn: higher is better. In lift3d it labels the training views with the fitted clusters and
            returns the per-frame PQ against the 2D segmenter's masks (all thing classes merged).
        progress: called with 1 after each candidate.
        memory: a :func:`tree_cache` (None: one is made for the sweep); HDBSCAN's tree is computed once per
            class and reused by every candidate.
        positions, position_weight: surface points joined to the embeddings (:func:`fit_class_clusters`).

    Returns:
        ``(chosen_size, {size: score})``.
    """
    if score_fn is None:
        raise ValueError("sweep_min_cluster_size: score_fn is required (e.g. per-frame PQ on training views).")
    sizes = sorted(set(int(v) for v in (cfg.sweep_sizes if candidate_sizes is None else candidate_sizes)))
    if not sizes:
        raise ValueError("sweep_min_cluster_size: no candidate sizes; pass candidate_sizes or cfg.sweep_sizes.")
    things = tuple(thing_classes)
    if cfg.sweep_tolerance < 0:
        raise ValueError(f"ClusterConfig.sweep_tolerance must be >= 0, got {cfg.sweep_tolerance}")
    scores = {}
    with nullcontext(memory) if memory is not None else tree_cache() as cache:
        for size in sizes:
            clusters = fit_scene_clusters(emb, sem, things, cfg, size, cache, positions, position_weight)
            scores[size] = float(score_fn(clusters))
            if progress is not None:
                progress(1)
    best = max(scores.values())
    chosen = min(size for size, score in scores.items() if score >= best - cfg.sweep_tolerance)
    return chosen, scores
