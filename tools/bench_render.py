"""Render and clustering speed of a fitted run at a real resolution, fast path vs exact path, and PQ^scene of both.

Two commands, each writing JSON:

``view``: one camera of the run's scene (a test view's pose) re-rendered at ``--height`` x ``--width`` (the focal
length scaled with the height, the principal point at the centre) on the CPU.

1. **Render**: the exact path (``render_pixel_set(exact=True)``: :meth:`LiftModel.sample_rays`, density and colour
   at every occupied sample, heads by the model's rule; what ``lift3d render`` did before) and the fast path
   (:func:`lift3d.models.march_rays` + :func:`lift3d.models.render_heads`), each timed on the same rays: the whole
   view, or with ``--exact-rows-every K`` the exact path only on every K-th row (its rays per second; the fast path
   is rendered in full and also compared on those rows). Rays per second, seconds per view (measured, or for the
   exact path on a subset: rays / rate, marked ``extrapolated``), the fast path's work counts, and the agreement of
   the two renders on the shared rays (colour, depth, class, embedding).
2. **Clustering** the view's rendered embeddings as ``lift3d fit`` decodes its clustering views (per thing class,
   HDBSCAN with the ``min_cluster_size`` sweep scored by per-frame PQ against the view's "2D segments"; here the
   run's own cached centroids label the fast render to serve as those segments, so the sweep has a realistic
   target): *before* = every pixel of the view and a fresh HDBSCAN per candidate size (the code before this
   change), *after* = the view on the grid of ``cluster.max_view_pixels`` (``subsample_views``) and HDBSCAN's
   tree computed once (``tree_cache``). Seconds of each, and the chosen size and cluster counts.

``pq``: for each fitted run, decode the instance field from its clustering views and render the test views with
the exact path, then again with the fast path, and score both (PQ^scene, SQ, RQ, per-frame PQ, mIoU, PSNR) against
the scene's ground truth; also the fast render labelled with the exact path's clusters (the render's own effect).

    python -m tools.bench_render view --run RUN --out docs/results/own-data/render-speed.json
    python -m tools.bench_render pq --runs RUN25 RUN100 --out docs/results/own-data/render-speed-pq.json

Timings are wall seconds on a possibly shared machine (the load average is recorded); ``--threads`` sets torch's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lift3d.cluster import ClusterConfig, fit_scene_clusters, sweep_min_cluster_size, tree_cache
from lift3d.cluster.slots import load_labeler
from lift3d.data.loading import load_scene
from lift3d.data.rays import PixelSet
from lift3d.engine.checkpoint import load_model
from lift3d.engine.inference import ViewRender, render_pixel_set
from lift3d.engine.run_dir import RunDir
from lift3d.io.atomic import atomic_write_json
from lift3d.metrics import frame_pq
from lift3d.models import InferenceRenderConfig, MarchStats
from lift3d.pipeline.decoding import cluster_from_training_views, subsample_views, view_stride
from lift3d.pipeline.runs import score_segments

__all__ = ["camera_pixels", "bench_view", "bench_pq", "main"]


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
    }


def camera_pixels(run: Path, height: int, width: int, frame: int | None = None) -> tuple[PixelSet, dict]:
    """A one-view :class:`PixelSet` of ``height`` x ``width`` at the pose of the run scene's ``frame`` (default its
    first test view): focal length scaled by ``height / frame height``, principal point at the image centre."""
    scene = load_scene(RunDir(run).read_record()["scene"])
    index = scene.test_indices[0] if frame is None else frame
    f = scene.frames[index]
    fx, fy, _, _ = (float(v) for v in f.intrinsics())
    scale = height / f.height
    p = height * width
    vv, uu = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = PixelSet(
        view_ids=[index],
        c2w=torch.tensor(np.asarray(f.camera_to_world)[None], dtype=torch.float32),
        intrinsics=torch.tensor([[fx * scale, fy * scale, width / 2, height / 2]], dtype=torch.float32),
        sizes=[(height, width)],
        offsets=torch.tensor([0, p]),
        pixel_view=torch.zeros(p, dtype=torch.long),
        pixel_uv=torch.stack([uu.reshape(-1), vv.reshape(-1)], -1),
        rgb=torch.zeros(p, 3),
        instance=torch.zeros(p, dtype=torch.long),
        semantic=torch.zeros(p, dtype=torch.long),
        confidence=torch.ones(p),
    )
    return pixels, {"frame": scene.frames[index].name, "height": height, "width": width, "focal_scale": scale}


def _rows_subset(pixels: PixelSet, every: int) -> PixelSet:
    """Every ``every``-th image row of a one-view PixelSet (all its columns)."""
    h, w = pixels.sizes[0]
    rows = torch.arange(h * w).reshape(h, w)[::every].reshape(-1)
    p = int(rows.numel())
    fields = {
        f.name: getattr(pixels, f.name)[rows]
        for f in dataclasses.fields(pixels)
        if isinstance(getattr(pixels, f.name), torch.Tensor) and getattr(pixels, f.name).shape[:1] == (h * w,)
    }
    return dataclasses.replace(pixels, sizes=[(p // w, w)], offsets=torch.tensor([0, p]), **fields)


def _timed_render(model, pixels: PixelSet, chunk: int, exact: bool) -> tuple[ViewRender, float, MarchStats]:
    stats = MarchStats()
    t0 = time.perf_counter()
    render = render_pixel_set(model, pixels, chunk, exact=exact, stats=stats)[0]
    return render, time.perf_counter() - t0, stats


def _agreement(a: ViewRender, b: ViewRender) -> dict:
    return {
        "rgb_max_abs": float(np.abs(a.rgb - b.rgb).max()),
        "rgb_mean_abs": float(np.abs(a.rgb - b.rgb).mean()),
        "depth_mean_abs": float(np.abs(a.depth - b.depth).mean()),
        "semantic_equal_fraction": float((a.semantic == b.semantic).mean()),
        "embedding_mean_abs": float(np.abs(a.embedding - b.embedding).mean()),
        "embedding_p99_abs": float(np.quantile(np.abs(a.embedding - b.embedding).max(-1), 0.99)),
    }


def _decode_view(render: ViewRender, segments: np.ndarray, things, stuff, cfg, sweep_sizes, memory) -> dict:
    """Decode one rendered view as ``decode_by_clustering`` does for ``lift3d fit`` (the ``min_cluster_size`` sweep
    scored by per-frame PQ against ``segments``, then the final fit) with ``memory`` (a ``tree_cache``, or
    ``joblib.Memory(None)``: no cache, a fresh HDBSCAN per size as before); seconds and the choice."""
    sem = render.semantic.reshape(-1)
    emb = render.embedding.reshape(-1, render.embedding.shape[-1])

    def score(labeler) -> float:
        ids = np.asarray(labeler.label(sem, emb)).reshape(render.semantic.shape)
        res = frame_pq(
            [render.semantic], [ids], [render.semantic], [segments], things=things, stuff=stuff, merge_things=True
        )
        return float(res.pq)

    t0 = time.perf_counter()
    best, scores = sweep_min_cluster_size(emb, sem, things, cfg, list(sweep_sizes), score, memory=memory)
    clusters = fit_scene_clusters(emb, sem, things, cfg, best, memory)
    return {
        "pixels": int(sem.size),
        "seconds": round(time.perf_counter() - t0, 2),
        "min_cluster_size": best,
        "num_clusters": {str(c): cc.num_clusters for c, cc in clusters.classes.items()},
        "sweep": {str(k): round(v, 4) for k, v in scores.items()},
    }


def bench_view(args) -> dict:
    """Render the camera ``--repeat`` times with each fast variant (``--head-samples``) and the exact path (on its
    rows), interleaved so that a busy spell of a shared machine hits every path; medians reported, all kept."""
    run = Path(args.run)
    model, cfg, _ = load_model(run, "cpu")
    if args.occupancy_all and model.occupancy is not None:
        model.occupancy.occupied[:] = True  # a grid that prunes nothing: every sample in the box is marched
    pixels, camera = camera_pixels(run, args.height, args.width, args.frame)
    total = args.height * args.width
    out: dict = {"run": str(run), "camera": camera, "chunk": cfg.render_chunk, "repeat": args.repeat}
    out["occupancy_all"] = bool(args.occupancy_all)
    out["machine"] = _machine()
    sub = pixels if args.exact_rows_every <= 1 else _rows_subset(pixels, args.exact_rows_every)
    rays = int(sub.pixel_view.numel())
    seconds: dict = {k: [] for k in args.head_samples}
    exact_seconds: list = []
    renders: dict = {}
    for _ in range(args.repeat):
        for k in args.head_samples:
            stats = MarchStats()
            t0 = time.perf_counter()
            renders[k] = render_pixel_set(
                model, pixels, cfg.render_chunk, fast=InferenceRenderConfig(head_samples=k), stats=stats
            )[0]
            seconds[k].append(round(time.perf_counter() - t0, 2))
            out.setdefault("fast_variants", {})[f"head_samples={k}"] = {
                "rays": total,
                "work": dataclasses.asdict(stats),
            }
            print(f"fast (head_samples={k}): {total} rays in {seconds[k][-1]:.1f} s", flush=True)
        if not args.skip_exact:
            exact, exact_s, _ = _timed_render(model, sub, cfg.render_chunk, exact=True)
            exact_seconds.append(round(exact_s, 2))
            print(f"exact: {rays} rays in {exact_s:.1f} s", flush=True)
    for k in args.head_samples:
        entry = out["fast_variants"][f"head_samples={k}"]
        median = float(np.median(seconds[k]))
        entry.update(seconds_all=seconds[k], seconds=round(median, 2), rays_per_second=round(total / median, 1))
    first = args.head_samples[0]
    out["fast"] = out["fast_variants"][f"head_samples={first}"]
    if not args.skip_exact:
        rate = rays / float(np.median(exact_seconds))
        out["exact"] = {
            "rays": rays,
            "rows_every": args.exact_rows_every,
            "seconds_all": exact_seconds,
            "seconds": round(float(np.median(exact_seconds)), 2),
            "rays_per_second": round(rate, 1),
            "seconds_per_view": round(total / rate, 1),
            "seconds_per_view_is": "measured" if rays == total else "extrapolated (view rays / measured rate)",
        }
        for k in args.head_samples:
            entry = out["fast_variants"][f"head_samples={k}"]
            fast_sub = renders[k] if rays == total else _strided_rows(renders[k], args.exact_rows_every)
            entry["agreement_with_exact"] = _agreement(exact, fast_sub)
            entry["speedup"] = round(entry["rays_per_second"] / rate, 2)
            print(f"head_samples={k}: {entry['seconds']} s a view, speed-up {entry['speedup']}x", flush=True)
        out["agreement_on_exact_rays"] = out["fast"]["agreement_with_exact"]
        out["speedup"] = out["fast"]["speedup"]
    if not args.skip_clustering:
        out["clustering"] = _bench_clustering(run, model, cfg, pixels, renders[first], args)
    return out


def _strided_rows(render: ViewRender, every: int) -> ViewRender:
    return dataclasses.replace(
        render,
        rgb=render.rgb[::every],
        depth=render.depth[::every],
        semantic=render.semantic[::every],
        embedding=render.embedding[::every],
    )


def _bench_clustering(run: Path, model, cfg, pixels: PixelSet, fast: ViewRender, args) -> dict:
    from joblib import Memory

    scene = load_scene(RunDir(run).read_record()["scene"])
    things, stuff = scene.thing_ids, scene.stuff_ids
    labeler = load_labeler(RunDir(run).clusters)
    segments = np.asarray(
        labeler.label(
            fast.semantic.reshape(-1),
            fast.embedding.reshape(-1, fast.embedding.shape[-1]),
            fast.position.reshape(-1, 3),
        )
    )
    segments = segments.reshape(fast.semantic.shape)
    ccfg: ClusterConfig = cfg.cluster
    out: dict = {
        "segments": "the run's cached centroids applied to the fast render (a realistic target for the sweep)",
        "sweep_sizes": list(cfg.sweep_sizes),
        "max_points": ccfg.max_points,
        "max_view_pixels": ccfg.max_view_pixels,
    }
    print("clustering before: every pixel, a fresh HDBSCAN per size ...", flush=True)
    out["before"] = _decode_view(fast, segments, things, stuff, ccfg, cfg.sweep_sizes, Memory(None))
    print(f"  {out['before']['seconds']} s", flush=True)
    # After: the view on the grid of cluster.max_view_pixels, rendered by the fast path (timed), and the tree cache.
    grid = subsample_views(pixels, ccfg.max_view_pixels)
    stride = view_stride(*pixels.sizes[0], ccfg.max_view_pixels)
    t0 = time.perf_counter()
    grid_render = render_pixel_set(model, grid, cfg.render_chunk)[0]
    render_s = time.perf_counter() - t0
    with tree_cache() as cache:
        out["after"] = _decode_view(
            grid_render, segments[::stride, ::stride], things, stuff, ccfg, cfg.sweep_sizes, cache
        )
    out["after"].update(render_grid_seconds=round(render_s, 2), grid=list(grid.sizes[0]), stride=stride)
    print(f"clustering after: {out['after']['seconds']} s (+ {render_s:.1f} s rendering the grid {grid.sizes[0]})")
    return out


def _score_with(labeler, renders, scene, views) -> dict:
    inst = [
        np.asarray(
            labeler.label(
                r.semantic.reshape(-1), r.embedding.reshape(-1, r.embedding.shape[-1]), r.position.reshape(-1, 3)
            )
        ).reshape(r.semantic.shape)
        for r in renders
    ]
    metrics = score_segments(scene, views, [r.semantic for r in renders], inst, [r.rgb for r in renders])
    metrics.pop("per_class", None)
    metrics.pop("classes_left_out", None)
    return metrics


def bench_pq(args) -> dict:
    """Per run: for the exact path and the fast path with each ``--head-samples`` k, decode the instance field from
    the run's clustering views rendered by that path, render the test views by it and score them; the fast renders
    are also scored with the exact path's clusters."""
    from lift3d.data.rays import load_pixel_set

    out: dict = {"machine": _machine(), "head_samples": list(args.head_samples), "runs": {}}
    for run in args.runs:
        run = Path(run)
        model, cfg, _ = load_model(run, "cpu")
        scene = load_scene(RunDir(run).read_record()["scene"])
        views = list(scene.test_indices)
        pixels = load_pixel_set(scene, views)
        entry: dict = {
            "scene": str(scene.root),
            "test_views": len(views),
            "rays": int(pixels.pixel_view.numel()),
            "cluster_views": cfg.cluster_views,
            "paths": {},
        }
        variants = [("exact", True, None)] + [
            (f"fast (head_samples={k})", False, InferenceRenderConfig(head_samples=k)) for k in args.head_samples
        ]
        exact_labeler = None
        for name, exact, fast in variants:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                labeler, info = cluster_from_training_views(
                    model, scene, cfg, Path(tmp), log=lambda *_: None, exact=exact, fast=fast
                )
                decode = {
                    "seconds": round(time.perf_counter() - t0, 2),
                    "min_cluster_size": info["min_cluster_size"],
                    "num_clusters": info["num_clusters"],
                }
            t0 = time.perf_counter()
            renders = render_pixel_set(model, pixels, cfg.render_chunk, exact=exact, fast=fast)
            seconds = time.perf_counter() - t0
            item = {
                "decode": decode,
                "render_seconds": round(seconds, 2),
                "render_rays_per_second": round(entry["rays"] / seconds, 1),
                "own_clusters": _score_with(labeler, renders, scene, views),
            }
            if exact:
                exact_labeler = labeler
            else:
                item["exact_path_clusters"] = _score_with(exact_labeler, renders, scene, views)
            entry["paths"][name] = item
            print(f"{run}: {name}: {item['own_clusters']} render {seconds:.1f} s, decode {decode}", flush=True)
        out["runs"][str(run)] = entry
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_render", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    view = sub.add_parser("view", help="render + clustering time of one view at a real resolution")
    view.add_argument("--run", required=True)
    view.add_argument("--height", type=int, default=540)
    view.add_argument("--width", type=int, default=960)
    view.add_argument("--frame", type=int, default=None, help="frame index of the pose (default: first test view)")
    view.add_argument("--exact-rows-every", type=int, default=1, help="exact path on every K-th row only")
    view.add_argument("--skip-exact", action="store_true")
    view.add_argument(
        "--occupancy-all",
        action="store_true",
        help="mark every cell of the occupancy grid occupied (a field whose grid prunes nothing, e.g. cloudy space)",
    )
    view.add_argument("--repeat", type=int, default=1, help="renders of each path, interleaved (median reported)")
    view.add_argument("--head-samples", type=int, nargs="+", default=[2], help="fast-path variants (first: main)")
    view.add_argument("--skip-clustering", action="store_true")
    pq = sub.add_parser("pq", help="PQ^scene of the exact and the fast path on fitted runs' test views")
    pq.add_argument("--runs", nargs="+", required=True)
    pq.add_argument("--head-samples", type=int, nargs="+", default=[0, 4, 2, 1], help="fast-path variants to score")
    for p in (view, pq):
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    result = bench_view(args) if args.command == "view" else bench_pq(args)
    result = {
        "command": "python -m tools.bench_render " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        **result,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
