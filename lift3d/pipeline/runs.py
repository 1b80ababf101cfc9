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
from lift3d.data.loading import SceneOptions, load_frame
from lift3d.data.rays import load_pixel_set
from lift3d.data.sanity import scene_warnings
from lift3d.data.scene import Scene, SceneFormatError, require_segments
from lift3d.engine.checkpoint import checkpoint_made_from, fit_config_from_dict, load_checkpoint, load_model, made_from
from lift3d.engine.config import FitConfig
from lift3d.engine.inference import render_pixel_set
from lift3d.engine.outputs import read_renders, read_renders_record, write_renders
from lift3d.engine.run_dir import RunDir, RunExistsError, RunFileError
from lift3d.engine.run_lock import run_lock
from lift3d.engine.trainer import StepCallback, Trainer, resolve_device
from lift3d.metrics import frame_pq, miou, psnr, scene_pq
from lift3d.models import InferenceRenderConfig
from lift3d.models.lift_model import resolve_scene_contraction
from lift3d.pipeline.decoding import cluster_from_training_views
from lift3d.pipeline.progress import stage_progress

__all__ = [
    "ResumeMismatchError",
    "StaleResultsError",
    "RESUMABLE_KEYS",
    "config_differences",
    "fit_scene",
    "render_run",
    "evaluate_run",
    "run_scene_options",
    "score_segments",
    "score_without_ground_truth",
    "split_indices",
    "format_metrics_table",
]

RESUMABLE_KEYS = ("optim.iterations", "device", "threads", "checkpoint_every", "render_chunk")
"""Dotted config keys ``--resume`` may change: run length and where/how fast it runs, not what is trained
(clustering settings, ``cluster.*``, ``cluster_views`` and ``sweep_sizes``, are applied after training and may change
too)."""
_RESUMABLE_PREFIXES = ("cluster.", "cluster_views", "sweep_sizes")


class ResumeMismatchError(ValueError):
    """``--resume`` asked for another configuration (or scene) than the run was fitted with; nothing was written."""


class StaleResultsError(RuntimeError):
    """Results of a run (renders, clusters) were computed from another checkpoint than the run's current one, or
    the checkpoint they came from is gone; the message says which and what to run."""


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(stored: dict, requested: dict) -> list[tuple[str, object, object]]:
    """``(dotted key, stored value, requested value)`` for every key of two stored FitConfig dicts that differs and
    that ``--resume`` may not change (see :data:`RESUMABLE_KEYS`)."""
    a, b = _flatten(stored), _flatten(requested)
    out = []
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_KEYS or key.startswith(_RESUMABLE_PREFIXES):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append((key, a.get(key, "<absent>"), b.get(key, "<absent>")))
    return out


def _check_resume(run: RunDir, scene: Scene, cfg: FitConfig, preset: Optional[str]) -> Optional[dict]:
    """Before anything is written: the run's stored configuration (its checkpoint's, else ``config.json``) must be
    the requested one up to :data:`RESUMABLE_KEYS`, and the scene the same. Returns the checkpoint's
    :func:`made_from` (None without a checkpoint)."""
    ckpt = load_checkpoint(run.latest_checkpoint) if run.latest_checkpoint.exists() else None
    stored = ckpt["config"] if ckpt is not None else (run.read_record()["config"] if run.config.exists() else None)
    if stored is None:
        return None
    diffs = config_differences(stored, config_to_dict(cfg))
    if diffs:
        listed = "; ".join(f"{k}: run has {a!r}, asked {b!r}" for k, a, b in diffs[:12])
        more = f" (and {len(diffs) - 12} more)" if len(diffs) > 12 else ""
        label = ""
        if run.config.exists():
            try:
                label = f" (fitted with --preset {run.read_record().get('preset')})"
            except RunFileError:
                pass
        raise ResumeMismatchError(
            f"{run.root}: --resume asks for another configuration than the run was fitted with{label}; "
            f"{len(diffs)} keys differ: {listed}{more}. Nothing was changed. Resume with the run's own preset and "
            "options (only optim.iterations, device, threads, checkpoint_every, render_chunk and the clustering "
            "settings may change), or fit into another --out."
        )
    stored_scene = ckpt.get("scene") if ckpt is not None else None
    if stored_scene is not None and Path(stored_scene).resolve() != Path(scene.root).resolve():
        raise ResumeMismatchError(
            f"{run.root}: --resume on scene {scene.root}, but the run was fitted on {stored_scene}. Nothing was "
            "changed. Pass the run's scene, or fit into another --out."
        )
    return made_from(ckpt) if ckpt is not None else None


def fit_scene(
    data: Path,
    out: Path,
    cfg: FitConfig,
    resume: bool = False,
    preset: Optional[str] = None,
    progress: bool = True,
    log=print,
    callbacks: tuple[StepCallback, ...] = (),
    scene_options: Optional[SceneOptions] = None,
) -> dict:
    """Fit the fields with the resolved ``cfg``, then decode the instance field of training views. ``preset``
    only labels the run's ``config.json``; ``callbacks`` are called after every training step; ``scene_options``
    (reader, downscale, skipping bad frames) load the scene and are recorded in ``config.json`` so that render, eval
    and view load it the same way. Returns the fit summary (also written to ``fit.json``)."""
    scene_options = scene_options or SceneOptions()
    scene = scene_options.load(data)  # validates every frame before any work
    require_segments(scene, "lift3d fit")  # a scene without 2D segments: one line naming the fix
    box_given = scene.aabb is not None or cfg.model.aabb is not None
    cfg.model.scene_contraction = resolve_scene_contraction(cfg.model.scene_contraction, box_given)
    run = RunDir(out)
    out = run.root
    with run_lock(run.lock, f"lift3d fit {data} --out {out}" + (" --resume" if resume else ""), log=log):
        if run.latest_checkpoint.exists() and not resume:
            raise RunExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out.")
        done = _check_resume(run, scene, cfg, preset) if resume else None
        if (
            done is not None
            and done["checkpoint_step"] >= cfg.optim.iterations
            and run.fit_summary.exists()
            and run.clusters.exists()
            and not _clustering_settings_changed(run, cfg)
        ):
            log(
                f"{out}: the run already finished ({done['checkpoint_step']} iterations); nothing to do (raise "
                "--iterations to train on)."
            )
            return _read_json(run.fit_summary)
        log(
            f"scene {scene.root}: {len(scene.frames)} frames ({len(scene.train_indices)} train, "
            f"{len(scene.test_indices)} test), {len(scene.classes)} classes, depth: {'yes' if scene.has_depth else 'no'}"
        )
        for warning in scene_warnings(scene):
            log(f"WARNING: {warning}")
        # reads (and checks) every training frame
        trainer = Trainer(scene, cfg, out, progress=progress, log=log, callbacks=callbacks)
        out.mkdir(parents=True, exist_ok=True)
        run.write_json(
            run.config,
            {
                "preset": preset,
                "scene": str(scene.root.resolve()),
                "scene_options": scene_options.to_dict(),
                "config": config_to_dict(cfg),
            },
        )
        summary = trainer.fit(resume=resume)
        if done is not None and done["checkpoint_step"] >= cfg.optim.iterations:
            trainer.save()  # a finished run decoded again with other clustering settings: the checkpoint records them
        summary["made_from"] = made_from({"step": trainer.step, "config": config_to_dict(cfg)})
        t0 = time.perf_counter()
        _, info = cluster_from_training_views(
            trainer.model, scene, cfg, out, log=log, made_from=summary["made_from"], progress=progress
        )
        summary["clustering_seconds"] = round(time.perf_counter() - t0, 2)
        summary["min_cluster_size"] = info["min_cluster_size"]
        summary["num_clusters"] = info["num_clusters"]
        summary["device"] = trainer.device
        run.write_json(run.fit_summary, summary)
    return summary


def _clustering_settings_changed(run: RunDir, cfg: FitConfig) -> bool:
    """Whether ``cfg``'s clustering settings (``cluster.*``, ``cluster_views``, ``sweep_sizes``) differ from those the
    run was decoded with: a finished run resumed with other ones is decoded again (no training step runs)."""
    recorded = _read_json(run.config).get("config", {})
    recorded = config_to_dict(fit_config_from_dict(recorded)) if recorded else {}
    now = config_to_dict(cfg)
    return any(recorded.get(key) != now.get(key) for key in ("cluster", "cluster_views", "sweep_sizes"))


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFileError(
            f"{path}: cannot be read ({type(err).__name__}: {str(err)[:160]}); delete it and run the command again."
        ) from None


def run_scene_options(run: Path) -> SceneOptions:
    """The :class:`SceneOptions` the run was fitted with (defaults for runs written before they were recorded)."""
    record = RunDir(run).read_record()
    return SceneOptions(**record.get("scene_options", {}))


def _run_scene(run: Path, data: Optional[Path]) -> Scene:
    """The run's scene, loaded with the options it was fitted with (``data`` replaces the recorded folder)."""
    options = run_scene_options(run)
    return options.load(data if data is not None else RunDir(run).read_record()["scene"])


def split_indices(scene: Scene, split: str) -> list[int]:
    if split == "test":
        return list(scene.test_indices)
    if split == "train":
        return list(scene.train_indices)
    if split == "all":
        return list(range(len(scene.frames)))
    raise ValueError(f"unknown split {split!r}; use test, train or all")


def render_run(
    run: Path,
    split: str = "test",
    data: Optional[Path] = None,
    device: str = "auto",
    progress: bool = True,
    log=print,
    exact: bool = False,
    fast: Optional[InferenceRenderConfig] = None,
) -> Path:
    """Render the views of ``split`` with the fitted run, label instances with the cached centroids, write PNGs.
    ``exact``: render with the training-time path (every occupied sample) instead of the fast inference path
    (:func:`lift3d.engine.inference.render_pixel_set`), whose settings are ``fast`` (default
    :class:`lift3d.models.InferenceRenderConfig`).

    Holds the run's lock; refuses (:class:`StaleResultsError`) when ``clusters.json`` was decoded from another
    checkpoint than the current one. The renders record the checkpoint step and config hash they came from."""
    run_dir = RunDir(run)
    with run_lock(run_dir.lock, f"lift3d render {run_dir.root} --split {split}", log=log):
        scene = _run_scene(run, data)
        model, cfg, ckpt = load_model(run, resolve_device(device))
        source = made_from(ckpt)
        clusters_path = run_dir.clusters
        if not clusters_path.exists():
            raise RunFileError(
                f"{clusters_path}: missing; the fit did not finish clustering. Re-run `lift3d fit DATA --out "
                f"{run_dir.root} --resume`."
            )
        decoded_from = _clustered_from(run_dir)
        if decoded_from is not None and decoded_from != source:
            raise StaleResultsError(
                f"{clusters_path}: decoded from checkpoint step {decoded_from.get('checkpoint_step')} but "
                f"{run_dir.latest_checkpoint} is at step {source['checkpoint_step']}; the labels would not match the "
                f"model. Re-run `lift3d fit DATA --out {run_dir.root} --resume` (it finishes the fit and clusters again)."
            )
        try:
            clusters = load_labeler(clusters_path)
        except (ValueError, KeyError, TypeError) as err:
            raise RunFileError(
                f"{clusters_path}: cannot read the instance labeler ({type(err).__name__}: {str(err)[:200]}); it is "
                f"damaged. Re-run `lift3d fit DATA --out {run_dir.root} --resume`, which clusters again."
            ) from None
        views = split_indices(scene, split)
        if not views:
            raise SceneFormatError(
                f"{scene.root / 'transforms.json'}: the {split} split is empty; list frames in test_filenames "
                "(or render --split train)."
            )
        pixels = load_pixel_set(scene, views)
        t0 = time.perf_counter()
        label = f"render {len(views)} {split} views" + (" (exact path)" if exact else "")
        with stage_progress(label, int(pixels.pixel_view.numel()), "rays", progress, log) as advance:
            renders = render_pixel_set(model, pixels, cfg.render_chunk, progress=advance, exact=exact, fast=fast)
        for r in renders:
            r.instance = np.asarray(
                clusters.label(
                    r.semantic.reshape(-1), r.embedding.reshape(-1, r.embedding.shape[-1]), r.position.reshape(-1, 3)
                )
            ).reshape(r.semantic.shape)
        out_dir = run_dir.renders(split)
        write_renders(out_dir, renders, [scene.frames[i].name for i in views], made_from=source)
        log(f"rendered {len(views)} {split} views in {time.perf_counter() - t0:.1f} s -> {out_dir}")
    return out_dir


def _clustered_from(run_dir: RunDir) -> Optional[dict]:
    """The ``made_from`` recorded in ``clustering.json`` (None for runs written before it was recorded)."""
    if not run_dir.clustering.exists():
        return None
    return _read_json(run_dir.clustering).get("made_from")


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
        missing = next(i for i, g in zip(views, gts) if g.gt_instance is None)
        raise SceneFormatError(
            f"{scene.root / 'transforms.json'}, frame {missing} ({scene.frames[missing].name}): no ground truth "
            "(gt_instance_file_path / gt_semantic_file_path), so PQ and mIoU cannot be computed; `lift3d eval` on a "
            "scene without ground truth reports PSNR and the 2D consistency instead."
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
        "classes_left_out": _classes_left_out(scene, spq),
    }
    if pred_rgb is not None:
        out["psnr"] = round(float(np.mean([psnr(p, g.rgb) for p, g in zip(pred_rgb, gts)])), 3)
    return out


def score_without_ground_truth(
    scene: Scene,
    views: list[int],
    pred_sem: list[np.ndarray],
    pred_inst: list[np.ndarray],
    pred_rgb: list[np.ndarray],
) -> dict:
    """What can be scored on a scene without ground truth (a user's own capture).

    * ``psnr``: mean PSNR of the rendered colour against the views' images;
    * ``pq_frame_vs_segments``: the *2D consistency* of the lift, per-frame PQ of the rendered instance and class maps
      against the scene's own 2D segments of the same views (the input masks; per frame, so their inconsistent ids
      across views do not matter). 1.0 = the lifted instances reproduce every 2D mask; it rewards agreement with the
      segmenter, errors included, so it is a sanity check, not accuracy. None when the scene has no segments.
    """
    frames = [load_frame(scene, i) for i in views]
    out: dict = {
        "ground_truth": False,
        "psnr": round(float(np.mean([psnr(p, f.rgb) for p, f in zip(pred_rgb, frames)])), 3),
    }
    if all(f.instance is not None for f in frames):
        fpq = frame_pq(
            pred_sem,
            pred_inst,
            [f.semantic for f in frames],
            [f.instance for f in frames],
            things=scene.thing_ids,
            stuff=scene.stuff_ids,
        )
        out["pq_frame_vs_segments"] = round(float(fpq.pq), 4)
    else:
        out["pq_frame_vs_segments"] = None
    return out


def _classes_left_out(scene: Scene, spq) -> list[dict]:
    """The scene's classes not in PQ^scene's mean, each with the reason (``{"id", "name", "reason"}``)."""
    names = {c.id: c.name for c in scene.classes}
    fraction = spq.metadata.get("min_class_fraction")
    out = []
    for c in sorted(names):
        if c in spq.per_class:
            continue
        if c in spq.dropped_classes:
            reason = (
                f"covers less than min_class_fraction={fraction} of the pixels in the prediction or the ground truth "
                "(the small-class rule of Panoptic Lifting's evaluation); its pixels were scored as void"
            )
        else:
            reason = "absent from both the prediction and the ground truth of these frames"
        out.append({"id": int(c), "name": names[c], "reason": reason})
    return out


def evaluate_run(run: Path, split: str = "test", data: Optional[Path] = None, log=print) -> dict:
    """Score ``renders/<split>`` and write ``metrics.json``; renders first when they are missing or were made from
    another checkpoint than the run's current one (a resumed fit). Refuses (:class:`StaleResultsError`) when the
    run has no checkpoint: the renders could not be told fresh. ``metrics.json`` records the checkpoint step and
    config hash it was computed from, and which classes were left out of the mean and why."""
    run_dir = RunDir(run)
    with run_lock(run_dir.lock, f"lift3d eval {run_dir.root} --split {split}", log=log):
        scene = _run_scene(run, data)
        current = checkpoint_made_from(run)
        render_dir = run_dir.renders(split)
        if current is None:
            raise StaleResultsError(
                f"{run_dir.latest_checkpoint}: missing, so the renders in {render_dir} cannot be checked against the "
                f"model they came from; nothing was scored. Refit (`lift3d fit DATA --out {run_dir.root}`)."
            )
        rendered_from = (
            read_renders_record(render_dir).get("made_from") if (render_dir / "frames.json").exists() else None
        )
        if not (render_dir / "frames.json").exists():
            render_run(run, split, data, log=log)
        elif rendered_from != current:
            was = (
                "an unknown checkpoint"
                if rendered_from is None
                else f"checkpoint step {rendered_from['checkpoint_step']}"
            )
            log(
                f"{render_dir}: rendered from {was}, the run is now at step {current['checkpoint_step']}; "
                "rendering again"
            )
            render_run(run, split, data, log=log)
        views = read_renders(render_dir)
        idx = [v["frame_index"] for v in views]
        pred = ([v["semantic"] for v in views], [v["instance"] for v in views], [v["rgb"] for v in views])
        if scene.has_ground_truth:
            metrics = score_segments(scene, idx, *pred)
        else:
            log(
                f"{scene.root}: no ground-truth instance / class maps, so no PQ^scene or mIoU; reporting PSNR and the "
                "2D consistency of the rendered instances with the views' own 2D segments instead"
            )
            metrics = score_without_ground_truth(scene, idx, *pred)
        metrics = {"split": split, "num_frames": len(idx), **metrics, "made_from": current}
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
        ("PQ (per frame) vs 2D segments", m.get("pq_frame_vs_segments")),
    ]
    for k, v in (extra or {}).items():
        rows.append((k, v))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -------"]
    lines += [
        f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in rows if v is not None
    ]
    return "\n".join(lines)
