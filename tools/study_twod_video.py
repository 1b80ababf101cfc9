"""Paper 001's spatio-temporal method on generated video: training variants (the paper's Table 2 ablation: with /
without the temporal model, with / without the depth head) at a fixed CPU budget each, evaluated on sequences they
never saw (MOTS, AP, per-frame PQ, PQ^scene of the tracks per clip, depth metrics), and optionally the lift on top
of the full model's per-frame masks against the model's own tracks on one sequence's test clip.

    .venv/bin/python -m tools.study_twod_video --train SEQ ... --test SEQ ... --work DIR --out OUT.json \\
        [--variants full no-temporal no-depth neither] [--minutes 4] [--steps 3000] [--threads 2] \\
        [--lift-scene SEQ --lift-preset cpu-small]

Writes OUT.json (settings, per-variant training steps / seconds / final losses and evaluation) and copies each
variant's evaluation JSON and contact sheet next to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from lift3d.data.loading import load_frame, load_scene
from lift3d.io import atomic_write_json
from lift3d.pipeline.runs import score_segments
from lift3d.twod.predict import predict_scene_segments
from lift3d.twod.train import TwodTrainConfig, train_twod
from lift3d.twod.video_eval import evaluate_spatio_temporal

VARIANTS = {
    "full": {"temporal": True, "depth": True},
    "no-temporal": {"temporal": False, "depth": True},
    "no-depth": {"temporal": True, "depth": False},
    "neither": {"temporal": False, "depth": False},
}


def _config(a, variant: str) -> TwodTrainConfig:
    cfg = TwodTrainConfig(
        method="spatio-temporal",
        preset=a.preset,
        steps=a.steps,
        batch_size=a.batch_size,
        lr=a.lr,
        threads=a.threads,
        checkpoint_every=a.steps,
        time_limit_minutes=a.minutes,
        seed=a.seed,
    )
    cfg.spatio_temporal.temporal = VARIANTS[variant]["temporal"]
    cfg.spatio_temporal.depth = VARIANTS[variant]["depth"]
    cfg.spatio_temporal.clip_length = a.clip_length
    return cfg


def _summary(ev: dict) -> dict:
    keys = ("AP", "AP50", "AP75", "frame_pq", "frame_pq_things", "scene_pq", "frames_per_second", "num_frames")
    out = {k: ev[k] for k in keys}
    out["mots"] = ev["mots"]
    out["depth"] = ev["depth"]
    return out


def run_variant(a, variant: str, out_dir: Path) -> dict:
    run = a.work / variant
    cfg = _config(a, variant)
    t0 = time.perf_counter()
    if not (run / "train.json").exists():
        train_twod(a.train, run, cfg, progress=False)
    seconds = time.perf_counter() - t0
    history = json.loads((run / "train.json").read_text())["history"]
    last = history[-50:]
    losses = {k: float(np.mean([h[k] for h in last])) for k in last[-1] if k != "step"}
    ev = evaluate_spatio_temporal(run, a.test, name="unseen", threads=a.threads)
    shutil.copy(ev["json"], out_dir / f"stnet_{variant}_unseen.json")
    shutil.copy(ev["sheet"], out_dir / f"stnet_{variant}_unseen.png")
    return {
        "steps": len(history),
        "train_seconds_this_call": round(seconds, 1),
        "loss_last50": losses,
        "loss_first50": float(np.mean([h["loss"] for h in history[:50]])),
        "unseen": _summary(ev),
    }


def lift_comparison(a, model: Path) -> dict:
    """The model's own tracks vs the lift on its per-frame masks, on the test clip(s) of ``a.lift_scene``."""
    from tools.twod_lift import clip_mots
    from tools.twod_lift import run as lift_run

    work = a.work / "lift"
    tracks_scene = work / "scene-tracks"
    if not (tracks_scene / "segments" / "twod" / "model.json").exists():
        predict_scene_segments(a.lift_scene, model, out=tracks_scene, force=True, threads=a.threads, ids="tracks")
    scene = load_scene(tracks_scene)
    test = list(scene.test_indices)
    frames = [load_frame(scene, i) for i in test]
    tracks = score_segments(scene, test, [f.semantic for f in frames], [f.instance for f in frames])
    tracks.pop("per_class", None)
    tracks["mots"] = clip_mots(a.lift_scene, test, [f.semantic for f in frames], [f.instance for f in frames])
    lifted = lift_run(model, a.lift_scene, work / "per-frame", a.lift_preset, a.threads, ids="per-frame")
    return {"test_views": test, "own_tracks": tracks, **lifted}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=Path, nargs="+", required=True, help="training sequences")
    p.add_argument("--test", type=Path, nargs="+", required=True, help="unseen sequences to evaluate on")
    p.add_argument("--work", type=Path, required=True, help="folder for the runs")
    p.add_argument("--out", type=Path, required=True, help="JSON to write")
    p.add_argument("--variants", nargs="+", default=["full", "no-temporal", "no-depth"], choices=list(VARIANTS))
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--steps", type=int, default=3000, help="planned steps (the lr schedule); --minutes caps them")
    p.add_argument("--minutes", type=float, default=4.0, help="wall-time cap per variant")
    p.add_argument("--batch-size", type=int, default=2, help="clips per step")
    p.add_argument("--clip-length", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lift-scene", type=Path, default=None, help="sequence for the lift comparison (optional)")
    p.add_argument("--lift-preset", default="cpu-small")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}, "variants": {}}
    result["settings"]["train"] = [str(s) for s in a.train]
    result["settings"]["test"] = [str(s) for s in a.test]
    for v in a.variants:
        result["variants"][v] = run_variant(a, v, a.out.parent)
        atomic_write_json(a.out, result)
        u = result["variants"][v]["unseen"]
        m, d = u["mots"], u["depth"]
        print(
            f"{v:<12} steps {result['variants'][v]['steps']:>5}  sMOTSA {m['sMOTSA']:.3f} MOTSA {m['MOTSA']:.3f} "
            f"MOTSP {m['MOTSP']:.3f} IDS {m['IDS']}  AP {u['AP']:.3f}  PQ {u['frame_pq']:.3f}  "
            f"PQscene/clip {u['scene_pq']:.3f}" + (f"  AbsRel {d['abs_rel']:.3f} d1 {d['delta1']:.3f}" if d else ""),
            flush=True,
        )
    if a.lift_scene is not None:
        result["lift"] = lift_comparison(a, a.work / a.variants[0])
        atomic_write_json(a.out, result)
        for k in ("own_tracks", "twod_network", "lifted", "simulated_segmenter"):
            r = result["lift"][k]
            mo = r.get("mots")
            tail = f"  sMOTSA {mo['smotsa']:.4f} MOTSA {mo['motsa']:.4f} IDS {mo['ids']}" if mo else ""
            print(f"{k:<20} PQ^scene {r['pq_scene']:.4f}  PQ {r['pq_frame']:.4f}  mIoU {r['miou']:.4f}{tail}")
    return result


if __name__ == "__main__":
    main()
