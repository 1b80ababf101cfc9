"""Quality and speed of the 2D segmenters of ``lift3d segments predict`` on generated Messy Rooms scenes.

For each scene (``--scenes SEED:ENVIRONMENT:OBJECTS``, generated with ``--views`` views of ``--resolution``
pixels into ``--work``, or reused when already there) the segmenter (``--segmenter``, default ``classical``;
``--weights`` for the others) segments every view, and its maps are scored against the scene's ground truth with
per-frame panoptic quality (:func:`lift3d.metrics.panoptic.frame_pq`, the ids of a view need not agree with other
views); the scene's own simulated 2D segmenter (``--segmenter-noise``, the generator's detic-like noise) is scored the
same way as a reference. Also recorded: seconds per view (median), the machine's load average.

    .venv/bin/python -m tools.bench_segmenters --out docs/results/segmenters/classical.json --work /tmp/segbench
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from lift3d.data.loading import load_frame, load_scene
from lift3d.io import atomic_write_json
from lift3d.metrics.panoptic import frame_pq
from lift3d.segmenters import SegmenterOptions, build_segmenter


def _pq(scene, sem, inst, data) -> dict:
    r = frame_pq(
        sem,
        inst,
        [d.gt_semantic for d in data],
        [d.gt_instance for d in data],
        things=scene.thing_ids,
        stuff=scene.stuff_ids,
    )
    return {"pq": round(r.pq, 4), "pq_things": round(r.pq_things, 4), "pq_stuff": round(r.pq_stuff, 4)}


def bench_scene(scene_dir: Path, segmenter) -> dict:
    scene = load_scene(scene_dir)
    data = [load_frame(scene, f.index, with_ground_truth=True) for f in scene.frames]
    outputs, seconds = [], []
    for d in data:
        t0 = time.perf_counter()
        outputs.append(segmenter.segment(d.rgb, d.depth if segmenter.uses_depth else None))
        seconds.append(time.perf_counter() - t0)
    return {
        "scene": str(scene_dir),
        "views": len(data),
        "segmenter": _pq(scene, [o.semantic for o in outputs], [o.instance for o in outputs], data),
        "simulated_segmenter": _pq(scene, [d.semantic for d in data], [d.instance for d in data], data),
        "seconds_per_view": round(statistics.median(seconds), 4),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--work", type=Path, required=True, help="folder of the generated scenes (reused when present)")
    p.add_argument("--scenes", nargs="+", default=["0:old_room:10", "1:old_room:20", "2:large_corridor:10"])
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--segmenter-noise", default="detic-like")
    p.add_argument("--segmenter", default="classical")
    p.add_argument("--weights", default=None)
    p.add_argument("--colour-only", action="store_true", help="classical: the colour path even where depth is known")
    args = p.parse_args(argv)

    from lift3d.generate import MessyRoomsConfig, generate_scene
    from lift3d.segmenters.classical import ClassicalConfig

    settings = {"classical": ClassicalConfig(depth_mode=not args.colour_only)}
    segmenter = build_segmenter(args.segmenter, SegmenterOptions(weights=args.weights, settings=settings))
    results = []
    for spec in args.scenes:
        seed, environment, objects = spec.split(":")
        scene_dir = args.work / f"s{seed}-{environment}-{objects}"
        if not (scene_dir / "transforms.json").exists():
            cfg = MessyRoomsConfig(
                num_objects=int(objects),
                num_views=args.views,
                resolution=args.resolution,
                environment=environment,
                seed=int(seed),
                segmenter_noise=args.segmenter_noise,
            )
            generate_scene(cfg, scene_dir, progress=False)
        results.append(bench_scene(scene_dir, segmenter))
        print(results[-1])
    out = {
        "segmenter": segmenter.describe(),
        "scenes": results,
        "mean_pq": round(statistics.mean(r["segmenter"]["pq"] for r in results), 4),
        "mean_pq_simulated_segmenter": round(statistics.mean(r["simulated_segmenter"]["pq"] for r in results), 4),
        "load_average": os.getloadavg(),
    }
    atomic_write_json(args.out, out)
    print(f"mean per-frame PQ {out['mean_pq']} (simulated detic-like segmenter {out['mean_pq_simulated_segmenter']})")


if __name__ == "__main__":
    main()
