"""``lift3d demo``: generate a small scene, fit it, render and evaluate the held-out views, make a contact sheet.

Writes under OUT: ``scene/`` (the generated scene), ``run/`` (the fit), ``metrics.json`` with ``pq_scene`` (lifted)
and ``pq_scene_2d_input`` (the simulated segmenter's raw masks on the same test views, scored the same way), and
``contact_sheet.png`` (rows: RGB, GT instances, 2D input, lifted; one column per test view).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from lift3d.data.images import write_rgb
from lift3d.data.loading import load_frame, load_scene
from lift3d.engine.outputs import instance_to_rgb, read_renders
from lift3d.engine.run_dir import RunDir
from lift3d.io.atomic import atomic_write_json
from lift3d.pipeline import evaluate_run, fit_scene, format_metrics_table, score_segments
from lift3d.presets import get_preset

__all__ = ["run_demo", "contact_sheet"]


def contact_sheet(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile rows of [H, W, 3] uint8/float images (same size) into one uint8 image with white gaps."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (h + gap) - gap, ncol * (w + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            im = im if im.dtype == np.uint8 else (np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)
            sheet[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = im
    return sheet


def run_demo(opts, log=print) -> dict:
    from lift3d.generate import generate_scene
    from lift3d.generate.config import MessyRoomsConfig

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    scene_dir, run_dir = out / "scene", out / "run"
    gen_cfg = MessyRoomsConfig(
        num_objects=opts.objects,
        num_views=opts.views,
        resolution=opts.resolution,
        segmenter_noise=opts.segmenter_noise,
        seed=opts.seed,
    )
    t0 = time.perf_counter()
    if scene_dir.exists():
        shutil.rmtree(scene_dir)
    generate_scene(gen_cfg, scene_dir)
    t_generate = time.perf_counter() - t0
    if run_dir.exists():
        shutil.rmtree(run_dir)
    fit_cfg = get_preset(opts.preset)
    fit_cfg.seed = int(opts.seed)
    fit_summary = fit_scene(scene_dir, run_dir, fit_cfg, preset=opts.preset)
    metrics = evaluate_run(run_dir, "test", log=lambda *_: None)

    scene = load_scene(scene_dir)
    views = read_renders(RunDir(run_dir).renders("test"))
    idx = [v["frame_index"] for v in views]
    frames = [load_frame(scene, i, with_ground_truth=True) for i in idx]
    inputs = score_segments(scene, idx, [f.semantic for f in frames], [f.instance for f in frames])
    result = {
        "pq_scene": metrics["pq_scene"],
        "sq_scene": metrics["sq_scene"],
        "rq_scene": metrics["rq_scene"],
        "pq_frame": metrics["pq_frame"],
        "miou": metrics["miou"],
        "psnr": metrics["psnr"],
        "pq_scene_2d_input": inputs["pq_scene"],
        "pq_frame_2d_input": inputs["pq_frame"],
        "num_objects": opts.objects,
        "num_views": opts.views,
        "resolution": opts.resolution,
        "segmenter_noise": opts.segmenter_noise,
        "preset": opts.preset,
        "seed": opts.seed,
        "num_test_views": len(idx),
        "seconds_generate": round(t_generate, 1),
        "seconds_fit": fit_summary["seconds"],
        "seconds_cluster": fit_summary["clustering_seconds"],
        "iterations_per_second": fit_summary["iterations_per_second"],
        "min_cluster_size": fit_summary["min_cluster_size"],
        "num_clusters": fit_summary["num_clusters"],
        "seconds_total": round(time.perf_counter() - t_start, 1),
    }
    atomic_write_json(out / "metrics.json", result)
    sheet = contact_sheet(
        [
            [f.rgb for f in frames],
            [instance_to_rgb(f.gt_instance) for f in frames],
            [instance_to_rgb(f.instance) for f in frames],
            [instance_to_rgb(v["instance"]) for v in views],
        ]
    )
    write_rgb(out / "contact_sheet.png", sheet)
    log(
        format_metrics_table(
            metrics, {"PQ^scene of the 2D input": inputs["pq_scene"], "total seconds": result["seconds_total"]}
        )
    )
    log(f"wrote {out / 'metrics.json'} and {out / 'contact_sheet.png'} (rows: RGB, GT instances, 2D input, lifted)")
    log(
        f"look at it in the browser: lift3d view {run_dir}   (then open http://localhost:7007; over SSH: ssh -L 7007:localhost:7007 HOST)"
    )
    log(f"export its objects:        lift3d export {run_dir} --out {out / 'export'}")
    return result
