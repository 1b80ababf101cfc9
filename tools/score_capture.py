"""Score a run fitted on a re-processed capture (e.g. a generated scene's images put through COLMAP, a classical
segmenter and ``lift3d fit``) against the ground truth of the scene the images came from, matched by file name.

The poses of a COLMAP reconstruction live in their own similarity frame, but the images (and so the rendered test
views) are the same pictures, so the original scene's ground-truth maps score the renders directly: PQ^scene, per-frame
PQ and mIoU of the lift, the per-frame PQ of its 2D input (the segmenter's masks of the same views), and PSNR.

    python -m tools.score_capture --run RUN --ground-truth GENERATED_SCENE --out result.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lift3d.data.loading import load_frame, load_scene
from lift3d.engine.outputs import read_renders
from lift3d.engine.run_dir import RunDir
from lift3d.metrics import frame_pq, miou, psnr, scene_pq
from lift3d.pipeline import run_scene_options


def score_capture(run: Path, ground_truth: Path, split: str = "test") -> dict:
    record = RunDir(run).read_record()
    capture = run_scene_options(run).load(record["scene"])
    truth = load_scene(ground_truth)
    by_stem = {Path(f.name).stem: i for i, f in enumerate(truth.frames)}
    views = read_renders(RunDir(run).renders(split))
    missing = [v["name"] for v in views if Path(v["name"]).stem not in by_stem]
    if missing:
        raise SystemExit(f"{ground_truth}: no frame named like {missing[0]} (and {len(missing) - 1} more)")
    gts = [load_frame(truth, by_stem[Path(v["name"]).stem], with_ground_truth=True) for v in views]
    inputs = [load_frame(capture, v["frame_index"]) for v in views]
    gt_sem, gt_inst = [g.gt_semantic for g in gts], [g.gt_instance for g in gts]
    things, stuff = truth.thing_ids, truth.stuff_ids
    pred_sem, pred_inst = [v["semantic"] for v in views], [v["instance"] for v in views]
    spq = scene_pq(pred_sem, pred_inst, gt_sem, gt_inst, things=things, stuff=stuff)
    fpq = frame_pq(pred_sem, pred_inst, gt_sem, gt_inst, things=things, stuff=stuff)
    in_fpq = frame_pq([f.semantic for f in inputs], [f.instance for f in inputs], gt_sem, gt_inst, things, stuff)
    in_spq = scene_pq([f.semantic for f in inputs], [f.instance for f in inputs], gt_sem, gt_inst, things, stuff)
    m_iou, _ = miou(pred_sem, gt_sem, sorted(c.id for c in truth.classes))
    return {
        "run": str(run),
        "ground_truth": str(ground_truth),
        "split": split,
        "num_views": len(views),
        "lift": {
            "pq_scene": round(float(spq.pq), 4),
            "pq_scene_things": round(float(spq.per_class[things[0]].pq), 4) if things[0] in spq.per_class else None,
            "pq_frame": round(float(fpq.pq), 4),
            "miou": round(float(m_iou), 4),
            "psnr": round(float(np.mean([psnr(v["rgb"], g.rgb) for v, g in zip(views, gts)])), 3),
        },
        "segmenter_input": {"pq_frame": round(float(in_fpq.pq), 4), "pq_scene": round(float(in_spq.pq), 4)},
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="run folder of `lift3d fit` on the capture")
    ap.add_argument("--ground-truth", type=Path, required=True, help="the scene the capture's images came from")
    ap.add_argument("--split", default="test", choices=["test", "train", "all"])
    ap.add_argument("--out", type=Path, help="JSON file to write")
    args = ap.parse_args(argv)
    result = score_capture(args.run, args.ground_truth, args.split)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
