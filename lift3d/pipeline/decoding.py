"""Decode a fitted run's instance field into instance ids, from training views only.

Clustering samples come only from training views (never the test views, unlike the reference Messy Rooms
script): ``cluster_views`` evenly spaced training views are rendered in full; their pixels predicted as a thing
class give the embeddings, which the decoder the instance objective names (``InstanceObjective.decoder``, see
:mod:`lift3d.cluster.decoders`) turns into a labeler: for the embedding objectives HDBSCAN's
``min_cluster_size`` is chosen by a sweep scored with per-frame PQ (all thing classes merged) against those views'
2D segments (Contrastive Lift (Bhalgat et al. 2023), appendix B.3); linear assignment takes the argmax over its
slots. The labeler is cached in the run (``RunDir.clusters``) and labels every pixel of any view (the nearest
centroid of its predicted class, or its argmax slot).

Pixels a frame's mask excludes (``PixelSet.valid`` False, nerfstudio's ``mask_path``) give no clustering sample and
are void (not scored) in the sweep's per-frame PQ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from lift3d.cluster.decoders import decode_instance_field
from lift3d.data.rays import load_pixel_set
from lift3d.data.scene import Scene
from lift3d.engine.config import FitConfig
from lift3d.engine.inference import render_pixel_set
from lift3d.engine.run_dir import RunDir
from lift3d.metrics import frame_pq
from lift3d.models import LiftModel
from lift3d.objectives import build_objective

__all__ = ["cluster_from_training_views", "clustering_views"]


def clustering_views(train_indices: Sequence[int], k: int) -> list[int]:
    """The ``k`` evenly spaced training views whose pixels are clustered (all of them when there are no more)."""
    if k >= len(train_indices):
        return list(train_indices)
    idx = np.linspace(0, len(train_indices) - 1, k).round().astype(int)
    return [train_indices[i] for i in idx]


def cluster_from_training_views(
    model: LiftModel, scene: Scene, cfg: FitConfig, run_dir: Path, log=print, made_from: Optional[dict] = None
) -> tuple[Any, dict]:
    """Render ``cfg.cluster_views`` training views, decode them with the objective of ``cfg`` (clustering with the
    ``min_cluster_size`` sweep, or argmax over slots), save the labeler and the record in the run. ``made_from``
    (the checkpoint step and config hash of ``model``) is recorded in ``clustering.json``, so a render can tell
    clusters of another checkpoint."""
    views = clustering_views(scene.train_indices, cfg.cluster_views)
    pixels = load_pixel_set(scene, views)
    renders = render_pixel_set(model, pixels, cfg.render_chunk)
    things = scene.thing_ids
    sem = np.concatenate([r.semantic.reshape(-1) for r in renders])
    emb = np.concatenate([r.embedding.reshape(-1, r.embedding.shape[-1]) for r in renders])
    inputs_sem = [pixels.semantic[pixels.view_rows(p)].reshape(pixels.sizes[p]).numpy() for p in range(len(views))]
    void: tuple[int, ...] = ()
    if pixels.valid is not None:  # masked pixels: no clustering sample, void in the sweep's score
        keep = pixels.valid.numpy()
        sem, emb = sem[keep], emb[keep]
        void = (scene.num_classes,)  # an id no class uses
        for p in range(len(views)):
            inputs_sem[p] = np.where(
                pixels.valid[pixels.view_rows(p)].reshape(pixels.sizes[p]).numpy(), inputs_sem[p], void[0]
            )
    inputs_inst = [pixels.instance[pixels.view_rows(p)].reshape(pixels.sizes[p]).numpy() for p in range(len(views))]

    def label_views(labeler) -> list[np.ndarray]:
        return [
            np.asarray(labeler.label(r.semantic.reshape(-1), r.embedding.reshape(-1, r.embedding.shape[-1]))).reshape(
                r.semantic.shape
            )
            for r in renders
        ]

    def score(labeler) -> float:
        res = frame_pq(
            [r.semantic for r in renders],
            label_views(labeler),
            inputs_sem,
            inputs_inst,
            things=things,
            stuff=scene.stuff_ids,
            void_gt=void,
            merge_things=True,
        )
        return float(res.pq)

    info: dict = {"cluster_views": [scene.frames[i].name for i in views], "num_points": int(np.isin(sem, things).sum())}
    objective = build_objective(cfg.losses, cfg.model.embedding_dim)
    decoding = decode_instance_field(objective, emb, sem, things, cfg.cluster, cfg.sweep_sizes, score, label_views)
    info.update(decoding.info)
    if made_from is not None:
        info["made_from"] = made_from
    run = RunDir(run_dir)
    decoding.labeler.save(run.clusters)
    run.write_json(run.clustering, info)
    log(decoding.message)
    return decoding.labeler, info
