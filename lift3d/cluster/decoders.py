"""The two ways a run's rendered instance field becomes instance ids, each returning a labeler and its record:
clustering of embeddings (per thing class, ``min_cluster_size`` fixed or swept) and argmax over slots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from lift3d.cluster.embedding_clusterer import ClusterConfig, fit_scene_clusters, sweep_min_cluster_size, tree_cache
from lift3d.cluster.slots import ArgmaxSlots

__all__ = ["Decoding", "DECODERS", "decode_by_clustering", "decode_by_argmax", "decode_instance_field"]


@dataclass
class Decoding:
    """What decoding the rendered instance field of a run gives: the labeler and its record."""

    labeler: Any
    """Labels pixels from (semantic, embedding): ``label(sem [M], emb [M, D]) -> ids [M]``; has ``save(path)``."""
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
) -> Decoding:
    """Cluster ``embeddings`` [N, D] of the pixels predicted as each thing class (``semantic`` [N]).
    ``progress(1)`` is called after each candidate of the sweep.

    ``min_cluster_size`` is ``cfg.min_cluster_size`` when set, else the candidate of ``sweep_sizes`` chosen by
    :func:`sweep_min_cluster_size` with ``score(clusters)`` (higher is better). The
    :class:`Decoding` holds a :class:`SceneClusters` and records the sweep's scores, the chosen size and the
    clusters per class."""
    info: dict = {}
    if cfg.min_cluster_size is not None:
        best = int(cfg.min_cluster_size)
        clusters = fit_scene_clusters(embeddings, semantic, thing_classes, cfg, best)
        info["sweep"] = {}
        if progress is not None:
            progress(len(sweep_sizes))
    else:
        with tree_cache() as cache:  # HDBSCAN's tree once per class, for every candidate and the final fit
            best, scores = sweep_min_cluster_size(
                embeddings, semantic, thing_classes, cfg, list(sweep_sizes), score, progress, cache
            )
            clusters = fit_scene_clusters(embeddings, semantic, thing_classes, cfg, best, cache)
        info["sweep"] = {str(k): round(float(v), 4) for k, v in scores.items()}
    info["min_cluster_size"] = best
    info["num_clusters"] = {str(c): int(cc.num_clusters) for c, cc in clusters.classes.items()}
    return Decoding(clusters, info, f"clustering: min_cluster_size={best}, clusters per class {info['num_clusters']}")


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
    "clustering": lambda objective, emb, sem, things, cfg, sweep_sizes, score, label_views, progress=None: (
        decode_by_clustering(emb, sem, things, cfg, sweep_sizes, score, progress)
    ),
    "argmax": lambda objective, emb, sem, things, cfg, sweep_sizes, score, label_views, progress=None: decode_by_argmax(
        things, objective.output_dim, label_views
    ),
}
"""Decoder name (``InstanceObjective.decoder``) -> ``fn(objective, embeddings, semantic, thing_classes, cfg,
sweep_sizes, score, label_views, progress=None) -> Decoding``. A new way of decoding is one entry here;
``progress(n)``, if given, counts the ``len(sweep_sizes)`` steps of a sweep."""


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
    """
    name = getattr(objective, "decoder", None)
    if name not in DECODERS:
        raise KeyError(
            f"instance objective {getattr(objective, 'name', objective)!r} names decoder {name!r}; "
            f"registered decoders: {sorted(DECODERS)} (add one to lift3d.cluster.decoders.DECODERS)"
        )
    return DECODERS[name](
        objective, embeddings, semantic, thing_classes, cfg, sweep_sizes, score, label_views, progress=progress
    )
