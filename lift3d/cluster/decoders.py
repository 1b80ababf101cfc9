"""The two ways a run's rendered instance field becomes instance ids, each returning a labeler and its record:
clustering of embeddings (per thing class, ``min_cluster_size`` fixed or swept) and argmax over slots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from lift3d.cluster.embedding_clusterer import ClusterConfig, fit_scene_clusters, sweep_min_cluster_size, tree_cache
from lift3d.cluster.slots import ArgmaxSlots

__all__ = [
    "Decoding",
    "DECODERS",
    "decode_by_clustering",
    "decode_by_argmax",
    "decode_instance_field",
    "sweep_steps",
]


@dataclass
class Decoding:
    """What decoding the rendered instance field of a run gives: the labeler and its record."""

    labeler: Any
    """Labels pixels from (semantic, embedding[, surface point]): ``label(sem [M], emb [M, D], position=[M, 3])
    -> ids [M]``; has ``save(path)``."""
    info: dict
    """JSON-able record of the choice (decoding, sweep, min_cluster_size, num_clusters) for ``clustering.json``."""
    message: str
    """One line for the log."""


def decode_by_clustering(
    embeddings: np.ndarray,
    semantic: np.ndarray,
    thing_classes: Sequence[int],
    cfg: ClusterConfig,
    sweep_sizes: Sequence[int],
    score: Callable[[Any], float],
    progress: Optional[Callable[[int], None]] = None,
    positions: Optional[np.ndarray] = None,
) -> Decoding:
    """Cluster ``embeddings`` [N, D] of the pixels predicted as each thing class (``semantic`` [N]), joined with
    their surface points ``positions`` [N, 3] when ``cfg.position_weight`` is not 0. ``progress(1)`` is called
    after each candidate of the sweep.

    ``min_cluster_size`` is ``cfg.min_cluster_size`` when set, else the candidate of ``sweep_sizes`` chosen by
    :func:`sweep_min_cluster_size` with ``score(clusters)`` (higher is better).

    ``cfg.position_weight = None`` chooses the weight too: the size sweep runs for every weight of
    ``cfg.position_weights`` and the **largest** weight whose best score is within ``cfg.sweep_tolerance`` of the
    best of all is kept. The score (per-frame PQ against the 2D segments of training views) sees a weight that is
    too large (an object split in two across its own surface) but not one that is too small (two objects never
    seen in one image merged), so the largest harmless weight is the choice; no test view is used.

    The :class:`Decoding` holds a :class:`SceneClusters` and records the sweep's scores, the chosen size (and
    weight) and the clusters per class."""
    weights = [cfg.position_weight] if cfg.position_weight is not None else sorted(set(cfg.position_weights))
    if any(w > 0 for w in weights) and positions is None:
        raise ValueError(
            "decode_by_clustering: cluster.position_weight is not 0 but no surface points were given; "
            "pass the rendered positions (o + depth * d) of the pixels."
        )
    info: dict = {}
    if cfg.min_cluster_size is not None and len(weights) == 1:
        best, weight = int(cfg.min_cluster_size), float(weights[0])
        clusters = fit_scene_clusters(embeddings, semantic, thing_classes, cfg, best, None, positions, weight)
        info["sweep"] = {}
        if progress is not None:
            progress(1)
    else:
        sizes = [int(cfg.min_cluster_size)] if cfg.min_cluster_size is not None else list(sweep_sizes)
        per_weight: dict[float, tuple[int, dict[int, float]]] = {}
        with tree_cache() as cache:  # HDBSCAN's tree once per (class, weight), for every candidate size
            for w in weights:
                per_weight[float(w)] = sweep_min_cluster_size(
                    embeddings, semantic, thing_classes, cfg, sizes, score, progress, cache, positions, float(w)
                )
            top = max(max(scores.values()) for _, scores in per_weight.values())
            weight = max(
                w for w, (_, scores) in per_weight.items() if max(scores.values()) >= top - cfg.sweep_tolerance
            )
            best = per_weight[weight][0]
            clusters = fit_scene_clusters(embeddings, semantic, thing_classes, cfg, best, cache, positions, weight)
        if len(weights) == 1:
            info["sweep"] = {str(k): round(float(v), 4) for k, v in per_weight[weight][1].items()}
        else:
            info["sweep"] = {
                f"w={w:g}": {str(k): round(float(v), 4) for k, v in scores.items()}
                for w, (_, scores) in per_weight.items()
            }
    info["min_cluster_size"] = best
    info["position_weight"] = weight
    info["num_clusters"] = {str(c): int(cc.num_clusters) for c, cc in clusters.classes.items()}
    joined = f", position_weight={weight:g}" if weight > 0 or len(weights) > 1 else ""
    return Decoding(
        clusters, info, f"clustering: min_cluster_size={best}{joined}, clusters per class {info['num_clusters']}"
    )


def decode_by_argmax(
    thing_classes: Sequence[int], num_slots: int, label_views: Callable[[Any], list[np.ndarray]]
) -> Decoding:
    """Argmax over ``num_slots`` rendered slot logits on thing pixels (Panoptic Lifting; no clustering).
    ``label_views(labeler)`` labels the clustering views; the record counts the slots they use."""
    labeler = ArgmaxSlots(tuple(thing_classes), num_slots)
    used = int(len(np.unique(np.concatenate([ids.reshape(-1) for ids in label_views(labeler)])))) - 1
    info = {"decoding": "argmax", "min_cluster_size": None, "sweep": {}, "num_clusters": {"all": used}}
    return Decoding(labeler, info, f"linear assignment: argmax over {num_slots} slots, {used} used")


DECODERS: dict[str, Callable[..., Decoding]] = {
    "clustering": lambda objective, emb, sem, things, cfg, sweep_sizes, score, label_views, progress=None, positions=None: (
        decode_by_clustering(emb, sem, things, cfg, sweep_sizes, score, progress, positions)
    ),
    "argmax": lambda objective, emb, sem, things, cfg, sweep_sizes, score, label_views, progress=None, positions=None: (
        decode_by_argmax(things, objective.output_dim, label_views)
    ),
}
"""Decoder name (``InstanceObjective.decoder``) -> ``fn(objective, embeddings, semantic, thing_classes, cfg,
sweep_sizes, score, label_views, progress=None, positions=None) -> Decoding``. A new way of decoding is one entry
here; ``progress(n)``, if given, counts the steps of a sweep (:func:`sweep_steps`); ``positions`` [N, 3] are the
pixels' rendered surface points."""


def sweep_steps(cfg: ClusterConfig, sweep_sizes: Sequence[int]) -> int:
    """How many clusterings :func:`decode_by_clustering` runs (a progress bar's total)."""
    sizes = 1 if cfg.min_cluster_size is not None else len(sweep_sizes)
    weights = 1 if cfg.position_weight is not None else len(set(cfg.position_weights))
    return sizes * weights


def decode_instance_field(
    objective: Any,
    embeddings: np.ndarray,
    semantic: np.ndarray,
    thing_classes: Sequence[int],
    cfg: ClusterConfig,
    sweep_sizes: Sequence[int],
    score: Callable[[Any], float],
    label_views: Callable[[Any], list[np.ndarray]],
    progress: Optional[Callable[[int], None]] = None,
    positions: Optional[np.ndarray] = None,
) -> Decoding:
    """Decode with the decoder the instance objective names (``objective.decoder``).

    Args:
        objective: an ``InstanceObjective`` (its ``decoder`` name and ``output_dim``).
        embeddings: [N, D] rendered instance field at the pixels of the clustering views.
        semantic: [N] their predicted class.
        thing_classes: the scene's thing class ids.
        cfg: clustering settings (HDBSCAN, fixed ``min_cluster_size`` or None for the sweep).
        sweep_sizes: ``min_cluster_size`` candidates of the sweep.
        score: ``score(labeler) -> float``, higher is better (the sweep's criterion).
        label_views: ``label_views(labeler)`` labels the clustering views (argmax records the slots used).
        progress: ``progress(n)`` counts the sweep's candidates (a progress bar's advance), if the decoder sweeps.
        positions: [N, 3] the pixels' rendered surface points (``cluster.position_weight``).
    """
    name = getattr(objective, "decoder", None)
    if name not in DECODERS:
        raise KeyError(
            f"instance objective {getattr(objective, 'name', objective)!r} names decoder {name!r}; "
            f"registered decoders: {sorted(DECODERS)} (add one to lift3d.cluster.decoders.DECODERS)"
        )
    return DECODERS[name](
        objective,
        embeddings,
        semantic,
        thing_classes,
        cfg,
        sweep_sizes,
        score,
        label_views,
        progress=progress,
        positions=positions,
    )
