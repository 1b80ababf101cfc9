"""Peak memory (RSS) of a 500-object, 1200-view 256x256 Messy Rooms scene: generating it, fitting it, clustering it.

Each stage runs in its own child process (this script with ``--stage``), which reports its own peak resident set
size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and wall time; the parent writes one JSON line (``--out``)::

    python -m tools.bench_memory --work /tmp/bench-memory --out docs/results/memory/n500-1200v-256.json

``generate``: :func:`lift3d.generate.generate_scene` (reused when the scene is there); ``cluster``: the clustering
path at its bound on the fitted run (see ``_cluster_stage``); ``fit``: ``lift3d fit`` with
the ``cpu-small`` preset for ``--iterations`` steps (a short fit: memory, not quality) followed by its clustering
(``--cluster-views`` rendered training views, the clustering sample bounded by the preset's ``cluster.max_points``).
The goal (issue 14): the fit and clustering stay within 24 GiB of RAM.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

GIB = 1024**3


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _stage(args) -> None:
    t0 = time.perf_counter()
    scene = args.work / "scene"
    if args.stage == "generate":
        from lift3d.generate import MessyRoomsConfig, generate_scene

        if not (scene / "transforms.json").exists():
            cfg = MessyRoomsConfig(
                num_objects=args.objects, num_views=args.views, resolution=args.resolution, seed=args.seed
            )
            generate_scene(cfg, scene, progress=True, overwrite=True)
    elif args.stage == "cluster":
        result = _cluster_stage(args)
        result.update({"stage": args.stage, "peak_rss_bytes": _peak_rss_bytes(), "seconds": time.perf_counter() - t0})
        print(json.dumps(result))
        return
    else:
        from lift3d.cli import entrypoint as cli

        cli(
            [
                "fit",
                str(scene),
                "--out",
                str(args.work / "run"),
                "--preset",
                args.preset,
                "--iterations",
                str(args.iterations),
                "--cluster-views",
                str(args.cluster_views),
                "--set",
                f"threads={args.threads}",
            ]
        )
    print(json.dumps({"stage": args.stage, "peak_rss_bytes": _peak_rss_bytes(), "seconds": time.perf_counter() - t0}))


def _cluster_stage(args) -> dict:
    """The clustering path at its bound, whatever the fit has learnt: render ``--cluster-views`` training views of
    the fitted run (:func:`lift3d.pipeline.decoding.render_clustering_views`, as the fit does), treat every rendered
    pixel as one thing class (after a short fit hardly any pixel is predicted as a thing yet), and run the fit's
    ``min_cluster_size`` sweep on them with the surface points joined (``cluster.max_points`` points at most, the
    bound that keeps clustering memory independent of the scene's size)."""
    import dataclasses

    import numpy as np

    from lift3d.cluster import fit_scene_clusters, tree_cache
    from lift3d.data.loading import load_scene
    from lift3d.engine.checkpoint import load_model
    from lift3d.pipeline.decoding import render_clustering_views

    model, cfg, _ = load_model(args.work / "run")
    scene = load_scene(args.work / "scene")
    cfg = dataclasses.replace(cfg, cluster_views=args.cluster_views)
    _, _, renders = render_clustering_views(model, scene, cfg)
    emb = np.concatenate([r.embedding.reshape(-1, r.embedding.shape[-1]) for r in renders])
    pos = np.concatenate([r.position.reshape(-1, 3) for r in renders])
    sem = np.ones(len(emb), np.int64)
    clusters = {}
    with tree_cache() as cache:
        for size in cfg.sweep_sizes:
            fitted = fit_scene_clusters(emb, sem, [1], cfg.cluster, size, cache, pos, 1.0)
            clusters[str(size)] = fitted.num_instances
    return {
        "rendered_points": len(emb),
        "clustered_points": min(len(emb), cfg.cluster.max_points),
        "clusters": clusters,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="folder for the scene and the run")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (one line)")
    p.add_argument("--objects", type=int, default=500)
    p.add_argument("--views", type=int, default=1200)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--cluster-views", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stage", choices=["generate", "fit", "cluster"], default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--stages", nargs="+", default=["generate", "fit", "cluster"], choices=["generate", "fit", "cluster"]
    )
    args = p.parse_args(argv)
    if args.stage:
        _stage(args)
        return {}
    passed = [a for a in (sys.argv[1:] if argv is None else argv)]
    result = {"objects": args.objects, "views": args.views, "resolution": args.resolution, "preset": args.preset}
    result["iterations"], result["cluster_views"] = args.iterations, args.cluster_views
    for stage in args.stages:
        proc = subprocess.run(
            [sys.executable, "-m", "tools.bench_memory", *passed, "--stage", stage],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        result[f"{stage}_peak_rss_gib"] = round(rec["peak_rss_bytes"] / GIB, 2)
        result[f"{stage}_seconds"] = round(rec["seconds"], 1)
        if stage == "cluster":
            result["cluster_points"] = {"rendered": rec["rendered_points"], "clustered": rec["clustered_points"]}
            result["cluster_sweep_clusters"] = rec["clusters"]
        print(f"{stage}: peak RSS {result[f'{stage}_peak_rss_gib']} GiB in {result[f'{stage}_seconds']} s", flush=True)
    peaks = [result[f"{s}_peak_rss_gib"] for s in ("fit", "cluster") if f"{s}_peak_rss_gib" in result]
    result["within_24_gib"] = bool(peaks) and max(peaks) <= 24
    print(json.dumps(result))
    if args.out:
        from lift3d.io import atomic_write_json

        atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
