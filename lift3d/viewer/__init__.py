"""The interactive viewer (``lift3d view``, ``lift3d fit --view``) on viser. It attaches to finished runs through
their folder (:class:`lift3d.engine.run_dir.RunDir`) and to a running fit only through the trainer's step
callback; nothing below imports it. viser is imported when a viewer starts (extra ``lift3d[viewer]``)."""

from .camera import c2w_to_viser, pinhole_from_fov, viser_to_c2w
from .recluster import EmbeddingCache, cache_clustering_embeddings, recluster, save_clusters
from .render import CameraView, EmbeddingPCA, Pick, pick_pixel, pick_ray, render_camera

__all__ = [
    "CameraView",
    "EmbeddingCache",
    "EmbeddingPCA",
    "Pick",
    "c2w_to_viser",
    "cache_clustering_embeddings",
    "pick_pixel",
    "pick_ray",
    "pinhole_from_fov",
    "recluster",
    "render_camera",
    "save_clusters",
    "viser_to_c2w",
]
