"""Re-clustering by eye: the embeddings the fit clustered, cached once, clustered again at another
``min_cluster_size`` in seconds (no refit); saving writes the run's ``clusters.json`` atomically."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lift3d.cluster import SceneClusters, fit_scene_clusters
from lift3d.export.points import view_pixels
from lift3d.export.rays import render_rays
from lift3d.export.run import ExportedRun
from lift3d.geometry.cameras import camera_rays
from lift3d.pipeline.decoding import clustering_views


@dataclass
class EmbeddingCache:
    """Rendered class and embedding of every pixel of the clustering views."""

    semantic: np.ndarray
    """int64 [N]."""
    embedding: np.ndarray
    """float32 [N, D]."""
    views: list[int]
    """Frame indices rendered."""


def cache_clustering_embeddings(opened: ExportedRun) -> EmbeddingCache:
    """Render the clustering views of the run (``cfg.cluster_views`` evenly spaced training views) once."""
    views = clustering_views(list(opened.scene.train_indices), opened.cfg.cluster_views)
    sem, emb = [], []
    for idx in views:
        f = opened.scene.frames[idx]
        o, d = camera_rays(
            torch.tensor(f.camera_to_world, dtype=torch.float32),
            torch.tensor(f.intrinsics(), dtype=torch.float32),
            view_pixels(f.width, f.height, 1),
            f.distortion,
        )
        r = render_rays(opened.model, o, d, opened.cfg.render_chunk)
        sem.append(r.semantic)
        emb.append(r.embedding)
    return EmbeddingCache(np.concatenate(sem), np.concatenate(emb), views)


def recluster(opened: ExportedRun, cache: EmbeddingCache, min_cluster_size: int) -> SceneClusters:
    """Cluster the cached embeddings at ``min_cluster_size`` with the run's clustering settings (the same call as
    the fit's decoder, :func:`lift3d.cluster.fit_scene_clusters`)."""
    if not isinstance(opened.labeler, SceneClusters):
        raise ValueError(
            f"{opened.run.clusters}: this run decodes instances by argmax over slots; there is no clustering to redo."
        )
    return fit_scene_clusters(
        cache.embedding, cache.semantic, opened.scene.thing_ids, opened.cfg.cluster, int(min_cluster_size)
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
