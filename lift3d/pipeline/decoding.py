"""Decode a fitted run's instance field into instance ids, from training views only.

Clustering samples come only from training views (never the test views, unlike the reference Messy Rooms
script): ``cluster_views`` evenly spaced training views are rendered (on a grid of every s-th pixel when a view has
more than ``cluster.max_view_pixels``); their pixels predicted as a thing
class give the embeddings, which the decoder the instance objective names (``InstanceObjective.decoder``, see
:mod:`lift3d.cluster.decoders`) turns into a labeler: for the embedding objectives HDBSCAN's
``min_cluster_size`` is chosen by a sweep scored with per-frame PQ (all thing classes merged) against those views'
2D segments (Contrastive Lift (Bhalgat et al. 2023), appendix B.3); linear assignment takes the argmax over its
slots. The labeler is cached in the run (``RunDir.clusters``) and labels every pixel of any view (the nearest
centroid of its predicted class, or its argmax slot).

With hundreds of objects a clustering view shows only a few of them and a uniform subsample gives a small object
fewer points than ``min_cluster_size``: ``cluster_views`` can then cover every training view, ``cluster.sample =
"segment"`` draws the same number of pixels from every 2D segment of every view (:func:`segment_balanced_rows`),
and ``cluster.max_score_views`` scores the sweep on a subset of the views.

Pixels a frame's mask excludes (``PixelSet.valid`` False, nerfstudio's ``mask_path``) give no clustering sample and
are void (not scored) in the sweep's per-frame PQ.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from lift3d.cluster.decoders import decode_instance_field, sweep_steps
from lift3d.data.rays import PixelSet, load_pixel_set
from lift3d.data.scene import Scene
from lift3d.engine.config import FitConfig
from lift3d.engine.inference import ViewRender, render_pixel_set
from lift3d.engine.run_dir import RunDir
from lift3d.metrics import frame_pq
from lift3d.models import InferenceRenderConfig, LiftModel
from lift3d.objectives import build_objective
from lift3d.pipeline.progress import stage_progress

__all__ = [
    "cluster_from_training_views",
    "clustering_sample",
    "clustering_views",
    "render_clustering_views",
    "segment_balanced_rows",
    "subsample_views",
    "view_stride",
]


def clustering_views(train_indices: Sequence[int], k: int) -> list[int]:
    """The ``k`` evenly spaced training views whose pixels are clustered (all of them when there are no more)."""
    if k >= len(train_indices):
        return list(train_indices)
    idx = np.linspace(0, len(train_indices) - 1, k).round().astype(int)
    return [train_indices[i] for i in idx]


def segment_balanced_rows(
    view_of: np.ndarray, segment: np.ndarray, eligible: np.ndarray, per_segment: int, seed: int = 0
) -> np.ndarray:
    """Rows of a clustering sample with at most ``per_segment`` rows of each (view, 2D segment) group
    (``ClusterConfig.sample = "segment"``).

    Args:
        view_of: ``[N]`` the view each pixel belongs to.
        segment: ``[N]`` its 2D segment id in that view (ids are per view: the same id in two views is two groups).
        eligible: ``[N]`` bool, the pixels that may be drawn (rendered as a thing class).
        per_segment: most rows drawn from one group (seeded, uniformly within the group).
        seed: seed of the draw.

    Returns:
        ``[M]`` sorted int64 row indices, M = sum over groups of min(group size, per_segment).
    """
    if per_segment < 1:
        raise ValueError(f"segment_balanced_rows: per_segment must be >= 1, got {per_segment}")
    cand = np.flatnonzero(eligible)
    if cand.size == 0:
        return cand.astype(np.int64)
    rng = np.random.default_rng(seed)
    cand = cand[rng.permutation(cand.size)]  # random order within each group after the stable sort below
    seg = segment[cand].astype(np.int64)
    seg -= seg.min()  # ids may be negative (void); only equality matters
    key = view_of[cand].astype(np.int64) * (int(seg.max()) + 1) + seg
    order = np.argsort(key, kind="stable")
    cand, key = cand[order], key[order]
    first = np.r_[True, key[1:] != key[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(key.size), 0))
    rank = np.arange(key.size) - start
    return np.sort(cand[rank < per_segment]).astype(np.int64)


def view_stride(height: int, width: int, max_pixels: int) -> int:
    """The smallest stride s such that every s-th pixel of an HxW view in both directions is at most
    ``max_pixels`` pixels (1 when the view is small enough, or ``max_pixels`` is 0)."""
    if max_pixels <= 0 or height * width <= max_pixels:
        return 1
    s = max(1, math.ceil(math.sqrt(height * width / max_pixels)))
    while math.ceil(height / s) * math.ceil(width / s) > max_pixels:
        s += 1
    return s


def subsample_views(pixels: PixelSet, max_pixels: int) -> PixelSet:
    """The same views on a regular grid of every s-th pixel (rows and columns, from pixel (0, 0); s by
    :func:`view_stride` per view): every per-pixel array of ``pixels`` indexed alike, sizes and offsets updated.
    Returns ``pixels`` itself when no view needs it."""
    keep, sizes, offsets = [], [], [0]
    for pos, (h, w) in enumerate(pixels.sizes):
        s = view_stride(h, w, max_pixels)
        rows = pixels.view_rows(pos).reshape(h, w)[::s, ::s]
        keep.append(rows.reshape(-1))
        sizes.append((int(rows.shape[0]), int(rows.shape[1])))
        offsets.append(offsets[-1] + rows.numel())
    if sizes == list(pixels.sizes):
        return pixels
    rows = torch.cat(keep)
    total = int(pixels.pixel_view.shape[0])
    per_pixel = {
        f.name: getattr(pixels, f.name)[rows]
        for f in dataclasses.fields(pixels)
        if isinstance(getattr(pixels, f.name), torch.Tensor) and getattr(pixels, f.name).shape[:1] == (total,)
    }
    return dataclasses.replace(pixels, sizes=sizes, offsets=torch.tensor(offsets), **per_pixel)


def render_clustering_views(
    model: LiftModel,
    scene: Scene,
    cfg: FitConfig,
    progress: bool = False,
    log=print,
    exact: bool = False,
    fast: Optional[InferenceRenderConfig] = None,
) -> tuple[list[int], PixelSet, list[ViewRender]]:
    """The views whose pixels are clustered (:func:`clustering_views`), each on a grid of at most
    ``cfg.cluster.max_view_pixels`` pixels (:func:`subsample_views`), rendered as the fit renders them: returns
    (frame indices, their :class:`PixelSet`, one :class:`ViewRender` per view). The viewer's re-clustering renders
    its cache with it, so it clusters exactly what the fit clustered."""
    views = clustering_views(scene.train_indices, cfg.cluster_views)
    pixels = subsample_views(load_pixel_set(scene, views), cfg.cluster.max_view_pixels)
    total = int(pixels.pixel_view.shape[0])
    with stage_progress(f"cluster: render {len(views)} training views", total, "rays", progress, log) as advance:
        renders = render_pixel_set(model, pixels, cfg.render_chunk, progress=advance, exact=exact, fast=fast)
    return views, pixels, renders


def clustering_sample(
    pixels: PixelSet,
    renders: Sequence[ViewRender],
    thing_ids: Sequence[int],
    cluster: Any,
    with_embedding: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The pixels of the rendered clustering views that are clustered: every valid pixel (``PixelSet.valid``), or
    with ``cluster.sample = "segment"`` at most ``cluster.points_per_segment`` thing pixels of each 2D segment of
    each view (:func:`segment_balanced_rows`). The fit and the viewer's re-clustering both take their points here.

    ``with_embedding = False`` (decoders that do not cluster, e.g. argmax over slots) leaves the embedding out:
    ``[M, 0]``. Linear assignment's 550 slot logits over 960 views of 64 x 64 are 8.6 GB, and a concatenated copy
    doubled the decode's peak memory (the N = 500 study was killed by the OOM killer there).

    Returns:
        (semantic ``[M]``, embedding ``[M, D]`` (``[M, 0]`` without it), surface point ``[M, 3]``, number of valid
        pixels rendered as a thing class before the segment sample).
    """
    sem = np.concatenate([r.semantic.reshape(-1) for r in renders])
    if with_embedding:
        emb = np.concatenate([r.embedding.reshape(-1, r.embedding.shape[-1]) for r in renders])
    else:
        emb = np.zeros((sem.shape[0], 0), np.float32)
    pos = np.concatenate([r.position.reshape(-1, 3) for r in renders])
    view_of, segment = pixels.pixel_view.numpy(), pixels.instance.numpy()
    if pixels.valid is not None:
        keep = pixels.valid.numpy()
        sem, emb, pos, view_of, segment = sem[keep], emb[keep], pos[keep], view_of[keep], segment[keep]
    is_thing = np.isin(sem, np.asarray(list(thing_ids)))
    num_rendered = int(is_thing.sum())
    if cluster.sample == "segment":
        rows = segment_balanced_rows(view_of, segment, is_thing, cluster.points_per_segment, cluster.seed)
        sem, emb, pos = sem[rows], emb[rows], pos[rows]
    elif cluster.sample != "uniform":
        raise ValueError(f"cluster.sample must be 'uniform' or 'segment', got {cluster.sample!r}")
    return sem, emb, pos, num_rendered


def cluster_from_training_views(
    model: LiftModel,
    scene: Scene,
    cfg: FitConfig,
    run_dir: Path,
    log=print,
    made_from: Optional[dict] = None,
    progress: bool = False,
    exact: bool = False,
    fast: Optional[InferenceRenderConfig] = None,
) -> tuple[Any, dict]:
    """Render ``cfg.cluster_views`` training views (each on a grid of at most ``cfg.cluster.max_view_pixels``
    pixels, :func:`subsample_views`), decode them with the objective of ``cfg`` (clustering with the
    ``min_cluster_size`` sweep, or argmax over slots), save the labeler and the record in the run. ``made_from``
    (the checkpoint step and config hash of ``model``) is recorded in ``clustering.json``, so a render can tell
    clusters of another checkpoint. ``progress``: show the rendering and the sweep (:func:`stage_progress`).
    ``exact``: render the views with the training-time path instead of the fast one (``render_pixel_set``), whose
    settings are ``fast`` (default :class:`InferenceRenderConfig`)."""
    t0 = time.perf_counter()
    views, pixels, renders = render_clustering_views(model, scene, cfg, progress, log, exact, fast)
    seconds_render = time.perf_counter() - t0
    things = scene.thing_ids
    objective = build_objective(cfg.losses, cfg.model.embedding_dim)
    sem, emb, pos, num_rendered = clustering_sample(
        pixels, renders, things, cfg.cluster, with_embedding=objective.decoder == "clustering"
    )
    inputs_sem = [pixels.semantic[pixels.view_rows(p)].reshape(pixels.sizes[p]).numpy() for p in range(len(views))]
    void: tuple[int, ...] = ()
    if pixels.valid is not None:  # masked pixels: no clustering sample, void in the sweep's score
        void = (scene.num_classes,)  # an id no class uses
        for p in range(len(views)):
            inputs_sem[p] = np.where(
                pixels.valid[pixels.view_rows(p)].reshape(pixels.sizes[p]).numpy(), inputs_sem[p], void[0]
            )
    inputs_inst = [pixels.instance[pixels.view_rows(p)].reshape(pixels.sizes[p]).numpy() for p in range(len(views))]
    scored = clustering_views(list(range(len(views))), cfg.cluster.max_score_views or len(views))

    def label_renders(labeler, rs: Sequence[ViewRender]) -> list[np.ndarray]:
        return [
            np.asarray(
                labeler.label(
                    r.semantic.reshape(-1), r.embedding.reshape(-1, r.embedding.shape[-1]), r.position.reshape(-1, 3)
                )
            ).reshape(r.semantic.shape)
            for r in rs
        ]

    def label_views(labeler) -> list[np.ndarray]:
        return label_renders(labeler, renders)

    def score(labeler) -> float:
        scored_renders = [renders[p] for p in scored]
        res = frame_pq(
            [r.semantic for r in scored_renders],
            label_renders(labeler, scored_renders),
            [inputs_sem[p] for p in scored],
            [inputs_inst[p] for p in scored],
            things=things,
            stuff=scene.stuff_ids,
            void_gt=void,
            merge_things=True,
        )
        return float(res.pq)

    info: dict = {
        "cluster_views": [scene.frames[i].name for i in views],
        "num_points": int(np.isin(sem, things).sum()),
        "num_rendered_thing_pixels": num_rendered,
        "sample": cfg.cluster.sample,
        "scored_views": len(scored),
    }
    t0 = time.perf_counter()
    sweep = sweep_steps(cfg.cluster, cfg.sweep_sizes) if objective.decoder == "clustering" else 1
    with stage_progress("cluster: min_cluster_size sweep", sweep, "sizes", progress, log) as advance:
        decoding = decode_instance_field(
            objective, emb, sem, things, cfg.cluster, cfg.sweep_sizes, score, label_views, advance, pos
        )
    info.update(decoding.info)
    info["view_sizes"] = [list(size) for size in pixels.sizes]
    info["seconds"] = {"render": round(seconds_render, 2), "decode": round(time.perf_counter() - t0, 2)}
    if made_from is not None:
        info["made_from"] = made_from
    run = RunDir(run_dir)
    decoding.labeler.save(run.clusters)
    run.write_json(run.clustering, info)
    log(decoding.message)
    return decoding.labeler, info
