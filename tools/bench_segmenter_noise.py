"""Per-frame PQ of the simulated 2D segmenter's noise presets on generated Messy Rooms scenes (calibration).

For each scene size (``--objects``) a scene of ``--views`` views of ``--resolution`` pixels is generated into
``--work`` (reused when there), and every noise preset of ``--presets`` is applied to the ground-truth instance
maps of every view (:func:`lift3d.generate.segmenter.simulate_segmenter`, the generator's per-view seeds); the
masks are scored against the ground truth with per-frame panoptic quality
(:func:`lift3d.metrics.panoptic.frame_pq`). Writes one JSON file; generation only, no fit.

    python -m tools.bench_segmenter_noise --out docs/results/segmenter-noise/pq.json --work /tmp/segnoise
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lift3d.io import atomic_write_json


def score_preset(scene, data, noise_name: str, seed: int) -> dict:
    """Per-frame PQ (overall, things, stuff) of preset ``noise_name`` on the views ``data`` of ``scene``."""
    from lift3d.generate.pipeline import segmenter_rng
    from lift3d.generate.segmenter import SEGMENTER_PRESETS, SegmenterClasses, simulate_segmenter
    from lift3d.metrics.panoptic import frame_pq

    noise = SEGMENTER_PRESETS[noise_name]
    classes = SegmenterClasses(tuple(scene.thing_ids), tuple(scene.stuff_ids))  # the scene's, as the generator's
    sem, inst = [], []
    for v, d in enumerate(data):
        i, s, _ = simulate_segmenter(d.gt_instance, d.gt_semantic, segmenter_rng(seed, v), noise, classes)
        inst.append(i)
        sem.append(s)
    r = frame_pq(
        sem,
        inst,
        [d.gt_semantic for d in data],
        [d.gt_instance for d in data],
        things=scene.thing_ids,
        stuff=scene.stuff_ids,
    )
    return {
        "pq": round(100 * r.pq, 1),
        "pq_things": round(100 * r.pq_things, 1),
        "pq_stuff": round(100 * r.pq_stuff, 1),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--work", type=Path, required=True, help="folder of the generated scenes (reused when present)")
    p.add_argument("--objects", type=int, nargs="+", default=[25, 100])
    p.add_argument("--views", type=int, default=12)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--presets", nargs="+", default=["detic-like", "detic-real", "heavy"])
    p.add_argument("--classes", choices=["binary", "families"], default="binary", help="class scheme of the scenes")
    args = p.parse_args(argv)

    from lift3d.data.loading import load_frame, load_scene
    from lift3d.generate import MessyRoomsConfig, generate_scene

    rows = []
    for n in args.objects:
        scene_dir = args.work / (f"n{n}" if args.classes == "binary" else f"n{n}_{args.classes}")
        if not (scene_dir / "transforms.json").exists():
            cfg = MessyRoomsConfig(
                num_objects=n, num_views=args.views, resolution=args.resolution, seed=args.seed, classes=args.classes
            )
            generate_scene(cfg, scene_dir, progress=False)
        scene = load_scene(scene_dir)
        data = [load_frame(scene, f.index, with_ground_truth=True) for f in scene.frames]
        for name in args.presets:
            row = {"objects": n, "views": len(data), "resolution": scene.frames[0].width, "preset": name}
            row["classes"] = args.classes
            row.update(score_preset(scene, data, name, args.seed))
            rows.append(row)
            print(row, flush=True)
    out = {
        "rows": rows,
        "command": "python -m tools.bench_segmenter_noise " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    atomic_write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
