"""Does lifting improve on a trained 2D network's masks? (Contrastive Lift, Bhalgat et al. 2023, Table 5's question.)

For one scene the network never saw: the network segments every view (``lift3d segments predict``, into a copy of
the scene), ``lift3d fit`` lifts those masks with a preset, and the test views are scored three ways against the
ground truth with the same metrics (:func:`lift3d.pipeline.runs.score_segments`: PQ^scene, per-frame PQ, mIoU):

* the network's 2D masks alone (ids are per view, so PQ^scene counts their inconsistency across views);
* the lifted field's renders (``lift3d eval``);
* for reference, the scene's own simulated segmenter (the study's usual 2D input).

    .venv/bin/python -m tools.twod_lift --model RUN2D --scene SCENE --work WORK --out OUT.json [--preset cpu-small]

Writes OUT.json (every figure, the commands' settings, timings).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lift3d.data.loading import load_frame, load_scene
from lift3d.data.sequence import load_sequence
from lift3d.engine.outputs import read_renders
from lift3d.io import atomic_write_json
from lift3d.metrics.mots import mots_over_sequences
from lift3d.pipeline import evaluate_run, fit_scene
from lift3d.pipeline.runs import score_segments
from lift3d.presets import get_preset
from lift3d.twod.clips import thing_track_ids
from lift3d.twod.cross_modal import predict_cross_modal
from lift3d.twod.model import twod_method
from lift3d.twod.predict import predict_scene_segments


def _segments_of(scene, views):
    frames = [load_frame(scene, i) for i in views]
    return [f.semantic for f in frames], [f.instance for f in frames]


def clip_mots(scene_dir: Path, views: list[int], pred_sem: list, pred_inst: list) -> dict | None:
    """MOTS (sMOTSA, MOTSA, MOTSP, TP / FP / FN / IDS; :mod:`lift3d.metrics.mots`) of per-view predictions over the
    sequence's test clips, pooled: each clip's frames in time order are one sequence, predicted and ground-truth ids
    kept for thing-class masks only (:func:`lift3d.twod.clips.thing_track_ids`). The lift's rendered ids are the same
    object in every view, so its renders are tracks as they stand; a 2D network's per-frame ids are not (every
    re-identification fails). None when ``scene_dir`` is not a sequence or ``views`` holds no whole test clip."""
    if not (Path(scene_dir) / "sequence.json").exists():
        return None
    seq = load_sequence(scene_dir, check_files=False)
    scene = seq.scene
    things = scene.thing_ids
    where = {v: k for k, v in enumerate(views)}
    pairs = []
    for clip in seq.clips_of_split("test"):
        if not all(f in where for f in clip.frames):
            continue
        gts = [load_frame(scene, f, with_ground_truth=True) for f in clip.frames]
        pred = [thing_track_ids(pred_inst[where[f]], pred_sem[where[f]], things) for f in clip.frames]
        gt = [thing_track_ids(g.gt_instance, g.gt_semantic, things) for g in gts]
        pairs.append((pred, gt))
    if not pairs:
        return None
    out = mots_over_sequences(pairs).as_dict()
    out["clips"] = len(pairs)
    return out


def run(model: Path, scene_dir: Path, work: Path, preset: str, threads: int, log=print, ids: str = "tracks") -> dict:
    torch.set_num_threads(threads)
    work.mkdir(parents=True, exist_ok=True)
    predicted = work / "scene-twod"
    t0 = time.perf_counter()
    if not (predicted / "segments" / "twod" / "model.json").exists():
        if twod_method(model) == "cross-modal":  # its masks carry track ids over each clip
            predict_cross_modal(scene_dir, model, out=predicted, force=True, threads=threads)
        else:
            predict_scene_segments(scene_dir, model, out=predicted, force=True, threads=threads, ids=ids)
    t_predict = time.perf_counter() - t0
    scene = load_scene(predicted)
    original = load_scene(scene_dir)
    test = list(scene.test_indices)
    out = {"scene": str(scene_dir.resolve()), "model": str(model.resolve()), "preset": preset, "test_views": test}
    out["twod_network"] = score_segments(scene, test, *_segments_of(scene, test))
    out["simulated_segmenter"] = score_segments(original, test, *_segments_of(original, test))
    run_dir = work / f"lift-{preset}"
    t1 = time.perf_counter()
    if not (run_dir / "fit.json").exists():
        fit_scene(predicted, run_dir, get_preset(preset), preset=preset, progress=False, log=log)
    t_fit = time.perf_counter() - t1
    lifted = evaluate_run(run_dir, "test", log=log)
    out["lifted"] = {k: v for k, v in lifted.items()}
    rendered = {v["frame_index"]: v for v in read_renders(run_dir / "renders" / "test")}
    sources = {
        "twod_network": _segments_of(scene, test),
        "simulated_segmenter": _segments_of(original, test),
        "lifted": ([rendered[i]["semantic"] for i in test], [rendered[i]["instance"] for i in test]),
    }
    for k, (sem, inst) in sources.items():
        out[k]["mots"] = clip_mots(scene_dir, test, sem, inst)
    out["seconds"] = {"predict": round(t_predict, 1), "fit_and_cluster": round(t_fit, 1)}
    for k in ("twod_network", "simulated_segmenter", "lifted"):
        out[k].pop("per_class", None)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="2D run folder (lift3d twod train --out)")
    p.add_argument("--scene", type=Path, required=True, help="scene with ground truth the network never saw")
    p.add_argument("--work", type=Path, required=True, help="folder for the predicted scene and the lift run")
    p.add_argument("--out", type=Path, required=True, help="JSON to write")
    p.add_argument("--preset", default="cpu-small", help="lift3d fit preset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ids", default="tracks", choices=["tracks", "per-frame"], help="spatio-temporal networks only")
    a = p.parse_args(argv)
    result = run(a.model, a.scene, a.work, a.preset, a.threads, ids=a.ids)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out, result)
    keys = ("pq_scene", "pq_frame", "miou")
    for k in ("twod_network", "lifted", "simulated_segmenter"):
        mo = result[k].get("mots")
        tail = f"  sMOTSA {mo['smotsa']:.4f} MOTSA {mo['motsa']:.4f} IDS {mo['ids']}" if mo else ""
        print(f"{k:<20} " + "  ".join(f"{m} {result[k][m]:.4f}" for m in keys) + tail)
    return result


if __name__ == "__main__":
    main()
