"""Post-training clustering of rendered instance embeddings (per semantic thing class) and the cached
centroids that label any view."""

from .embedding_clusterer import (
    ClassClusters,
    ClusterConfig,
    SceneClusters,
    fit_class_clusters,
    fit_scene_clusters,
    sweep_min_cluster_size,
)

__all__ = [
    "ClusterConfig",
    "ClassClusters",
    "SceneClusters",
    "fit_class_clusters",
    "fit_scene_clusters",
    "sweep_min_cluster_size",
]
