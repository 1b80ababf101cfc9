"""Post-training clustering of rendered instance embeddings (per semantic thing class) and the cached
centroids that label any view; the decoders that turn a rendered instance field into a labeler."""

from .decoders import DECODERS, Decoding, decode_by_argmax, decode_by_clustering, decode_instance_field
from .embedding_clusterer import (
    ClassClusters,
    ClusterConfig,
    SceneClusters,
    fit_class_clusters,
    fit_scene_clusters,
    sweep_min_cluster_size,
    tree_cache,
)

__all__ = [
    "ClusterConfig",
    "ClassClusters",
    "SceneClusters",
    "fit_class_clusters",
    "fit_scene_clusters",
    "sweep_min_cluster_size",
    "tree_cache",
    "Decoding",
    "decode_by_clustering",
    "decode_by_argmax",
    "decode_instance_field",
    "DECODERS",
]
