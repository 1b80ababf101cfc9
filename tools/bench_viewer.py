"""Measure the viewer and the export on a fitted run (CPU): viewer start-up, live-render frame time at 128x128 (and
the coarse preview), a click, re-clustering, export time and file sizes; optionally a screenshot of the viewer in
headless chromium. Writes JSON; nothing here is asserted.

    python -m tools.bench_viewer RUN --out outputs/bench_viewer.json [--screenshot docs/img/viewer.png]

The run is copied first (the viewer may write clusters.json), so RUN is never modified.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), [round(t, 4) for t in times]


def bench(run: Path, data: Path | None, repeats: int, screenshot: Path | None, clicks: int) -> dict:
    import torch

    from lift3d.data.loading import load_frame
    from lift3d.export import ExportConfig, export_run, load_export_inputs
    from lift3d.geometry.cameras import project
    from lift3d.viewer import CameraView, cache_clustering_embeddings, pick_pixel, recluster
    from lift3d.viewer.app import RunViewer, ViewerConfig
    from lift3d.viewer.render import render_camera
    from tools.headless_chromium import free_port

    work = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    shutil.copytree(run, work / "run")
    out: dict = {"run": str(run), "torch_threads": torch.get_num_threads()}

    t0 = time.perf_counter()
    opened = load_export_inputs(work / "run", data, "cpu")
    viewer = RunViewer(opened, ViewerConfig(port=free_port()), log=lambda *_: None)
    out["viewer_startup_seconds"] = round(time.perf_counter() - t0, 3)
    out["viewer_points"] = len(viewer.points)
    scene = opened.scene
    f = scene.frames[scene.train_indices[0]]
    scale = 128 / f.height
    cam128 = CameraView(f.camera_to_world, f.fx * scale, f.fy * scale, f.cx * scale, f.cy * scale, 128, 128)
    for mode in ("rgb", "instance"):
        med, all_t = _median_seconds(lambda: render_camera(opened, cam128, mode, viewer.pca), repeats)
        out[f"frame_seconds_128x128_{mode}"] = round(med, 4)
        out[f"frame_seconds_128x128_{mode}_all"] = all_t
    s48 = 48 / f.height
    cam48 = CameraView(f.camera_to_world, f.fx * s48, f.fy * s48, f.cx * s48, f.cy * s48, 48, 48)
    med, _ = _median_seconds(lambda: render_camera(opened, cam48, "rgb", num_samples=24), repeats)
    out["preview_seconds_48x48_24_samples"] = round(med, 4)

    # clicks at the projected centres of the exported instances, in the view that shows each most
    pts = opened.points
    picks = []
    for i in opened.instance_ids[:clicks]:
        xyz = pts.xyz[pts.instance == i]
        if not len(xyz):
            continue
        views, counts = np.unique(pts.view[pts.instance == i], return_counts=True)
        fr = scene.frames[int(views[counts.argmax()])]
        u, v, _, inside = project(xyz.mean(0, keepdims=True), fr.camera_to_world, fr.intrinsics(), fr.height, fr.width)
        if not inside[0]:
            continue
        cam = CameraView(fr.camera_to_world, fr.fx, fr.fy, fr.cx, fr.cy, fr.width, fr.height)
        t0 = time.perf_counter()
        p = pick_pixel(opened, cam, u[0] + 0.5, v[0] + 0.5)
        dt = time.perf_counter() - t0
        gt = load_frame(scene, scene.frames.index(fr), with_ground_truth=True).gt_instance
        picks.append(
            {
                "frame": fr.name,
                "pixel": [int(u[0]), int(v[0])],
                "selected_instance": p.instance,
                "class": opened.class_name(p.class_id),
                "depth": round(p.depth, 4),
                "point": [round(float(x), 4) for x in p.point],
                "gt_object_at_pixel": int(gt[v[0], u[0]]) if gt is not None else None,
                "seconds": round(dt, 4),
            }
        )
    out["clicks"] = picks

    cache = cache_clustering_embeddings(opened)
    size = json.loads(opened.run.clustering.read_text()).get("min_cluster_size") or 10
    t0 = time.perf_counter()
    labeler = recluster(opened, cache, size)
    out["recluster_seconds"] = round(time.perf_counter() - t0, 3)
    out["recluster_num_instances"] = labeler.num_instances

    viewer_png = None
    if screenshot is not None:
        from tools.headless_chromium import HeadlessChromium

        with HeadlessChromium(1280, 800) as browser:
            t0 = time.perf_counter()
            browser.open(f"http://127.0.0.1:{viewer.server.get_port()}")
            browser.wait_for_text("Instances", 120)
            out["browser_first_panel_seconds"] = round(time.perf_counter() - t0, 3)
            time.sleep(4)
            browser.screenshot(screenshot)
            viewer_png = str(screenshot)
    out["screenshot"] = viewer_png
    viewer.close()

    # a fresh open, as `lift3d export` runs
    opened = load_export_inputs(work / "run", data, "cpu")
    t0 = time.perf_counter()
    doc = export_run(opened, work / "export", "both", None, "ply", ExportConfig(), log=lambda *_: None)
    out["export_seconds"] = round(time.perf_counter() - t0, 2)
    out["export_bytes_total"] = int(sum(doc["bytes"].values()))
    out["export_bytes"] = doc["bytes"]
    out["export_num_instances"] = doc["num_instances"]
    out["export_points"] = int(len(opened.points))
    out["export_mesh_faces"] = int(len(opened.mesh.faces))
    shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("outputs/bench_viewer.json"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clicks", type=int, default=3)
    ap.add_argument("--screenshot", type=Path, default=None)
    a = ap.parse_args(argv)
    res = bench(a.run, a.data, a.repeats, a.screenshot, a.clicks)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if not k.endswith("_all") and k != "export_bytes"}, indent=2))


if __name__ == "__main__":
    main()
