"""The user-facing jobs behind the CLI: fit a scene, render a run, evaluate it.

Each takes a resolved :class:`FitConfig` or a run folder (its files are named in :mod:`lift3d.engine.run_dir`);
presets and overrides are resolved by the caller (:mod:`lift3d.cli`, :mod:`lift3d.demo`, tools).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from lift3d.cluster.slots import load_labeler
from lift3d.config_io import config_to_dict
from lift3d.data.loading import load_frame, load_scene
from lift3d.data.rays import load_pixel_set
from lift3d.data.scene import Scene
from lift3d.engine.checkpoint import load_model
from lift3d.engine.config import FitConfig
from lift3d.engine.inference import render_pixel_set
from lift3d.engine.outputs import read_renders, write_renders
from lift3d.engine.run_dir import RunDir
from lift3d.engine.trainer import StepCallback, Trainer, resolve_device
from lift3d.metrics import frame_pq, miou, psnr, scene_pq
from lift3d.pipeline.decoding import cluster_from_training_views

__all__ = ["fit_scene", "render_run", "evaluate_run", "score_segments", "split_indices", "format_metrics_table"]


def fit_scene(
    data: Path,
    out: Path,
    cfg: FitConfig,
    resume: bool = False,
    preset: Optional[str] = None,
    progress: bool = True,
    log=print,
    callbacks: tuple[StepCallback, ...] = (),
) -> dict:
    """Fit the fields with the resolved ``cfg``, then decode the instance field of training views. ``preset``
    only labels the run's ``config.json``; ``callbacks`` are called after every training step. Returns the fit
    summary (also written to ``fit.json``)."""
    scene = load_scene(data)  # validates every frame before any work
    run = RunDir(out)
    out = run.root
    if run.latest_checkpoint.exists() and not resume:
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out.")
    log(
        f"scene {scene.root}: {len(scene.frames)} frames ({len(scene.train_indices)} train, "
        f"{len(scene.test_indices)} test), {len(scene.classes)} classes, depth: {'yes' if scene.has_depth else 'no'}"
    )
    # reads (and checks) every training frame
    trainer = Trainer(scene, cfg, out, progress=progress, log=log, callbacks=callbacks)
    out.mkdir(parents=True, exist_ok=True)
    run.write_json(run.config, {"preset": preset, "scene": str(scene.root.resolve()), "config": config_to_dict(cfg)})
    summary = trainer.fit(resume=resume)
    t0 = time.perf_counter()
    _, info = cluster_from_training_views(trainer.model, scene, cfg, out, log=log)
    summary["clustering_seconds"] = round(time.perf_counter() - t0, 2)
    summary["min_cluster_size"] = info["min_cluster_size"]
    summary["num_clusters"] = info["num_clusters"]
    summary["device"] = trainer.device
    run.write_json(run.fit_summary, summary)
    return summary


def _run_scene(run: Path, data: Optional[Path]) -> Scene:
    if data is not None:
        return load_scene(data)
    return load_scene(RunDir(run).read_record()["scene"])


def split_indices(scene: Scene, split: str) -> list[int]:
    if split == "test":
        return list(scene.test_indices)
    if split == "train":
        return list(scene.train_indices)
    if split == "all":
        return list(range(len(scene.frames)))
    raise ValueError(f"unknown split {split!r}; use test, train or all")


def render_run(
    run: Path, split: str = "test", data: Optional[Path] = None, device: str = "auto", progress: bool = True, log=print
) -> Path:
    """Render the views of ``split`` with the fitted run, label instances with the cached centroids, write PNGs."""
    run_dir = RunDir(run)
    scene = _run_scene(run, data)
    model, cfg, _ = load_model(run, resolve_device(device))
    clusters_path = run_dir.clusters
    if not clusters_path.exists():
        raise FileNotFoundError(
            f"{clusters_path}: missing; the fit did not finish clustering. Re-run `lift3d fit --resume`."
        )
    clusters = load_labeler(clusters_path)
    views = split_indices(scene, split)
    if not views:
        raise ValueError(f"{scene.root}: the {split} split is empty.")
    pixels = load_pixel_set(scene, views)
    from rich.progress import Progress

    t0 = time.perf_counter()
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"render {split}", total=len(views))
        renders = render_pixel_set(model, pixels, cfg.render_chunk, progress=lambda: bar.advance(task))
    for r in renders:
        r.instance = np.asarray(
            clusters.label(r.semantic.reshape(-1), r.embedding.reshape(-1, r.embedding.shape[-1]))
        ).reshape(r.semantic.shape)
    out_dir = run_dir.renders(split)
    write_renders(out_dir, renders, [scene.frames[i].name for i in views])
    log(f"rendered {len(views)} {split} views in {time.perf_counter() - t0:.1f} s -> {out_dir}")
    return out_dir


def score_segments(
    scene: Scene,
    views: list[int],
    pred_sem: list[np.ndarray],
    pred_inst: list[np.ndarray],
    pred_rgb: Optional[list[np.ndarray]] = None,
) -> dict:
    """PQ^scene, per-frame PQ, mIoU (and PSNR) of per-view predictions against the scene's ground truth."""
    gts = [load_frame(scene, i, with_ground_truth=True) for i in views]
    if any(g.gt_instance is None for g in gts):
        raise ValueError(
            f"{scene.root}: the scene has no ground truth (gt_instance_file_path / gt_semantic_file_path); "
            "cannot evaluate."
        )
    gt_sem, gt_inst = [g.gt_semantic for g in gts], [g.gt_instance for g in gts]
    things, stuff = scene.thing_ids, scene.stuff_ids
    spq = scene_pq(pred_sem, pred_inst, gt_sem, gt_inst, things=things, stuff=stuff)
    fpq = frame_pq(pred_sem, pred_inst, gt_sem, gt_inst, things=things, stuff=stuff)
    m_iou, _ = miou(pred_sem, gt_sem, sorted(c.id for c in scene.classes))
    out = {
        "pq_scene": round(float(spq.pq), 4),
        "sq_scene": round(float(spq.sq), 4),
        "rq_scene": round(float(spq.rq), 4),
        "pq_frame": round(float(fpq.pq), 4),
        "miou": round(float(m_iou), 4),
        "per_class": {str(k): v.to_dict() for k, v in spq.per_class.items()},
    }
    if pred_rgb is not None:
        out["psnr"] = round(float(np.mean([psnr(p, g.rgb) for p, g in zip(pred_rgb, gts)])), 3)
    return out


def evaluate_run(run: Path, split: str = "test", data: Optional[Path] = None, log=print) -> dict:
    """Score ``renders/<split>`` (rendering first when missing) and write ``metrics.json``."""
    run_dir = RunDir(run)
    scene = _run_scene(run, data)
    render_dir = run_dir.renders(split)
    if not (render_dir / "frames.json").exists():
        render_run(run, split, data, log=log)
    views = read_renders(render_dir)
    idx = [v["frame_index"] for v in views]
    metrics = score_segments(
        scene, idx, [v["semantic"] for v in views], [v["instance"] for v in views], [v["rgb"] for v in views]
    )
    metrics = {"split": split, "num_frames": len(idx), **metrics}
    run_dir.write_json(run_dir.metrics, metrics)
    log(format_metrics_table(metrics))
    return metrics


def format_metrics_table(m: dict, extra: Optional[dict] = None) -> str:
    rows = [
        ("PQ^scene", m.get("pq_scene")),
        ("SQ^scene", m.get("sq_scene")),
        ("RQ^scene", m.get("rq_scene")),
        ("PQ (per frame)", m.get("pq_frame")),
        ("mIoU", m.get("miou")),
        ("PSNR (dB)", m.get("psnr")),
    ]
    for k, v in (extra or {}).items():
        rows.append((k, v))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -------"]
    lines += [
        f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in rows if v is not None
    ]
    return "\n".join(lines)
