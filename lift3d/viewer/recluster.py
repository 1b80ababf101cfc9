"""Re-clustering by eye: the embeddings the fit clustered, cached once, clustered again at another
``min_cluster_size`` in seconds (no refit); saving writes the run's ``clusters.json`` atomically."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lift3d.cluster import SceneClusters, fit_scene_clusters
from lift3d.export.run import ExportedRun
from lift3d.pipeline.decoding import clustering_sample, render_clustering_views


@dataclass
class EmbeddingCache:
    """Rendered class, embedding and surface point of the clustered pixels of the clustering views (all valid pixels,
    or the fit's segment sample: :func:`lift3d.pipeline.decoding.clustering_sample`)."""

    semantic: np.ndarray
    """int64 [N]."""
    embedding: np.ndarray
    """float32 [N, D]."""
    position: np.ndarray
    """float32 [N, 3] rendered surface points (joined to the embedding when the fit's clusters use them)."""
    views: list[int]
    """Frame indices rendered."""


def cache_clustering_embeddings(opened: ExportedRun) -> EmbeddingCache:
    """Render the clustering views of the run once, exactly as the fit rendered them
    (:func:`lift3d.pipeline.decoding.render_clustering_views`: the same views, pixel grid and render path)."""
    views, pixels, renders = render_clustering_views(opened.model, opened.scene, opened.cfg)
    sem, emb, pos, _ = clustering_sample(pixels, renders, opened.scene.thing_ids, opened.cfg.cluster)
    return EmbeddingCache(sem, emb, pos, views)


def recluster(opened: ExportedRun, cache: EmbeddingCache, min_cluster_size: int) -> SceneClusters:
    """Cluster the cached embeddings at ``min_cluster_size`` with the run's clustering settings (the same call as
    the fit's decoder, :func:`lift3d.cluster.fit_scene_clusters`), surface points joined with the weight the fit
    chose (``cluster.position_weight``)."""
    if not isinstance(opened.labeler, SceneClusters):
        raise ValueError(
            f"{opened.run.clusters}: this run decodes instances by argmax over slots; there is no clustering to redo."
        )
    weight = max((cc.position_weight for cc in opened.labeler.classes.values()), default=0.0)
    return fit_scene_clusters(
        cache.embedding,
        cache.semantic,
        opened.scene.thing_ids,
        opened.cfg.cluster,
        int(min_cluster_size),
        positions=cache.position,
        position_weight=weight,
    )


def save_clusters(opened: ExportedRun, clusters: SceneClusters, min_cluster_size: int) -> None:
    """Write ``clusters.json`` (atomically) and note the choice in ``clustering.json``, so ``lift3d render`` and
    ``lift3d eval`` use it."""
    run = opened.run
    clusters.save(run.clusters)
    import json

    record = json.loads(run.clustering.read_text()) if run.clustering.exists() else {}
    record.update(
        {
            "min_cluster_size": int(min_cluster_size),
            "num_clusters": {str(c): int(cc.num_clusters) for c, cc in clusters.classes.items()},
            "chosen_by": "viewer",
        }
    )
    run.write_json(run.clustering, record)
