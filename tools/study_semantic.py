"""Ablate the shared fit's semantic field on one study scene: does the lifted class map find the objects?

The lift clusters only pixels that the semantic field renders as a thing class, so a semantic field that renders
no object pixel leaves nothing to segment (issue 14: the N = 500 scene with ``detic-real`` 2D input, test mIoU
38.7 = background only). This tool fits the shared fields (density, colour, semantics; no instance objective) of one
scene of a study configuration once per variant, each variant a list of dotted fit overrides, renders the test
views and writes, per variant: test mIoU and per-class IoU, the fraction of test pixels rendered as a thing class
against the ground truth's, and the fit's wall time. It also records what the 2D input says about things on the
training views (fraction of thing pixels, mean confidence on thing and stuff pixels), which is what the semantic
loss sees.

    python -m tools.study_semantic --config cpu-small --objects 500 --set threads=2 segmenter_noise=detic-real \\
        --iterations 1500 --variant segmenter: --variant class-balanced:losses.semantic_confidence=class-balanced \\
        --work outputs/semantic-probe --out docs/results/cpu-small-n500-real/semantic.json

Variants run one after another; a finished variant (its JSON entry) is not fitted again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["main", "input_class_statistics", "parse_variant"]


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME:OVERRIDE[,OVERRIDE...]`` -> (name, overrides); ``NAME:`` has no override."""
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise SystemExit(f"--variant {text!r}: expected NAME:OVERRIDE[,OVERRIDE...] (NAME: for none)")
    return name, [x for x in rest.split(",") if x]


def input_class_statistics(scene, views: list[int]) -> dict:
    """What the 2D input says about things on ``views``: thing-pixel fraction of the segmenter's class maps and of
    the ground truth, mean confidence on the segmenter's thing and stuff pixels."""
    from lift3d.data.loading import load_frame

    things = np.asarray(sorted(scene.thing_ids))
    n_px = n_thing = n_gt_thing = 0
    conf_thing = conf_stuff = 0.0
    n_stuff = 0
    for i in views:
        f = load_frame(scene, i, with_ground_truth=True)
        is_thing = np.isin(f.semantic, things)
        conf = np.ones(f.semantic.shape, np.float64) if f.confidence is None else np.asarray(f.confidence, np.float64)
        n_px += is_thing.size
        n_thing += int(is_thing.sum())
        n_stuff += int((~is_thing).sum())
        conf_thing += float(conf[is_thing].sum())
        conf_stuff += float(conf[~is_thing].sum())
        if f.gt_semantic is not None:
            n_gt_thing += int(np.isin(f.gt_semantic, things).sum())
    return {
        "views": len(views),
        "input_thing_fraction": round(n_thing / max(n_px, 1), 4),
        "gt_thing_fraction": round(n_gt_thing / max(n_px, 1), 4),
        "mean_confidence_thing": round(conf_thing / max(n_thing, 1), 4),
        "mean_confidence_stuff": round(conf_stuff / max(n_stuff, 1), 4),
    }


def _score_semantics(scene, trainer_model, views: list[int], chunk: int) -> dict:
    from lift3d.data.loading import load_frame
    from lift3d.data.rays import load_pixel_set
    from lift3d.engine.inference import render_pixel_set
    from lift3d.metrics.semantic import miou

    renders = render_pixel_set(trainer_model, load_pixel_set(scene, views), chunk)
    pred = [np.asarray(r.semantic) for r in renders]
    gt = [load_frame(scene, i, with_ground_truth=True).gt_semantic for i in views]
    m, per_class = miou(pred, gt, sorted(c.id for c in scene.classes))
    things = np.asarray(sorted(scene.thing_ids))
    px = sum(p.size for p in pred)
    return {
        "test_miou": round(float(m), 4),
        "test_iou_per_class": {str(k): round(float(v), 4) for k, v in per_class.items()},
        "test_pred_thing_fraction": round(sum(int(np.isin(p, things).sum()) for p in pred) / px, 4),
        "test_gt_thing_fraction": round(sum(int(np.isin(g, things).sum()) for g in gt) / px, 4),
    }


def main(argv: Optional[list[str]] = None) -> dict:
    from lift3d.config_io import apply_overrides
    from lift3d.data.loading import load_scene
    from tools.study import STUDY_CONFIGS, _apply_study_overrides, fit_config_for, prepare_scene
    from tools.study_lift import fit_shared_fields, shared_fields_config, write_json_atomic

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="cpu-small", choices=sorted(STUDY_CONFIGS))
    ap.add_argument("--objects", type=int, required=True, help="scene size N (one scene)")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="StudyConfig overrides")
    ap.add_argument("--iterations", type=int, default=None, help="shared-fit iterations (default: the study's)")
    ap.add_argument("--variant", action="append", required=True, help="NAME:OVERRIDE[,OVERRIDE...] (repeatable)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    variants = [parse_variant(v) for v in args.variant]
    cfg = _apply_study_overrides(dataclasses.replace(STUDY_CONFIGS[args.config], objects=(args.objects,)), args.set)
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out.setdefault("invocations", []).append(
        "python -m tools.study_semantic " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    out["study_config"] = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    out.setdefault("variants", {})
    scene_dir = args.work / f"N{args.objects}"
    prepare_scene(cfg, args.objects, scene_dir)
    scene = load_scene(scene_dir)
    out["scene"] = {"path": str(scene_dir), "objects": args.objects, "views": len(scene.frames)}
    out["input_train"] = input_class_statistics(scene, list(scene.train_indices))
    for name, overrides in variants:
        if name in out["variants"]:
            print(f"{name}: done earlier, kept")
            continue
        fit = fit_config_for(cfg, args.objects, len(scene.train_indices))
        extra = list(overrides) + ([f"optim.iterations={args.iterations}"] if args.iterations else [])
        fit = shared_fields_config(apply_overrides(fit, extra))
        run = args.work / "runs" / name
        t0 = time.perf_counter()
        summary = fit_shared_fields(scene, fit, run)
        seconds = time.perf_counter() - t0
        from lift3d.engine.trainer import Trainer
        from tools.study_lift import _load_shared_fields

        trainer = Trainer(scene, fit, run / "probe", progress=False)
        _load_shared_fields(trainer, run)
        trainer.model.eval()
        entry = {
            "overrides": extra,
            "iterations": fit.optim.iterations,
            "seconds_fit": round(seconds, 1),
            **_score_semantics(scene, trainer.model, list(scene.test_indices), fit.render_chunk),
            "fit_iterations_per_second": summary.get("iterations_per_second"),
        }
        out["variants"][name] = entry
        print(
            f"{name}: test mIoU {entry['test_miou']:.3f} thing px {entry['test_pred_thing_fraction']:.3f} "
            f"(GT {entry['test_gt_thing_fraction']:.3f}) IoU {entry['test_iou_per_class']} fit {seconds:.0f} s"
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, out)
    return out


if __name__ == "__main__":
    main()
