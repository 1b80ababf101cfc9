"""``lift3d twod eval`` of a spatio-temporal network (paper 001) on sequences with ground truth.

Every clip of every sequence (or only the clips of ``split``) is run through the causal network in time order with
a fresh tracker (:meth:`lift3d.twod.video_model.SpatioTemporalModel.predict_clip`). Scores, pooled over the clips:

* MOTS (:func:`lift3d.metrics.mots.mots`): sMOTSA, MOTSA, MOTSP and the TP / FP / FN / ID-switch counts of the
  thing tracks (ground-truth ids are track ids, ``docs/sequence-format.md``);
* COCO mask AP / AP50 / AP75 and per-frame PQ of every frame (:func:`lift3d.twod.evaluate.score_predictions`, as
  for the single-image method);
* PQ^scene of the tracks per clip (:func:`lift3d.metrics.scene_pq` over the clip's frames: an object must keep one
  id through the clip), averaged over the clips;
* depth metrics of the depth head against the generator's depth (:func:`lift3d.metrics.depth.depth_metrics`);
* frames per second of the whole inference (network + clustering + tracking) on this machine.

Written to ``RUN2D/eval/<name>.json`` with a contact sheet ``<name>.png`` (rows: frames of the first clip; columns:
image, ground truth, predicted tracks, predicted depth).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from lift3d.data.loading import load_frame
from lift3d.data.sequence import load_sequence
from lift3d.io import atomic_write_bytes, atomic_write_json
from lift3d.metrics import scene_pq
from lift3d.metrics.depth import depth_metrics
from lift3d.metrics.mots import mots_over_sequences
from lift3d.twod.clips import thing_track_ids
from lift3d.twod.evaluate import colour_ids, contact_sheet, score_predictions
from lift3d.twod.video_model import load_spatio_temporal_model

__all__ = ["evaluate_spatio_temporal", "depth_to_rgb"]


def depth_to_rgb(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """``depth [H, W]`` -> ``[H, W, 3]`` uint8 grey, near = bright (0 m white, ``max_depth`` and beyond black); the
    sheet uses the clip's 98th percentile of predicted depth as ``max_depth``."""
    v = np.clip(1.0 - depth / max(max_depth, 1e-6), 0.0, 1.0)
    return np.repeat((v * 255).astype(np.uint8)[..., None], 3, -1)


def evaluate_spatio_temporal(
    run: Path,
    sequences: Sequence[Path],
    name: str = "eval",
    split: Optional[str] = None,
    device: str = "cpu",
    threads: int = 1,
    sheet: int = 6,
) -> dict:
    """Evaluate the network of ``run`` on the clips of ``sequences`` (module docstring); returns the written figures
    with the ``json`` and ``sheet`` paths."""
    torch.set_num_threads(threads)
    run = Path(run)
    model, state = load_spatio_temporal_model(run, device=device)
    things = model.classes.thing_ids
    stuff = [c.id for c in model.classes.classes if not c.thing]
    preds, gts, pred_tracks, gt_tracks = [], [], [], []
    depth_pred, depth_gt, clip_pq, rows = [], [], [], []
    seconds, clips_done = 0.0, 0
    for path in sequences:
        seq = load_sequence(path, check_files=False)
        for clip in seq.clips:
            if split is not None and clip.split != split:
                continue
            data = [load_frame(seq.scene, i, with_ground_truth=True) for i in clip.frames]
            rgb = [np.clip(np.round(d.rgb * 255.0), 0, 255).astype(np.uint8) for d in data]
            t0 = time.perf_counter()
            out = model.predict_clip(rgb)
            seconds += time.perf_counter() - t0
            gi = [d.gt_instance.astype(np.int64) for d in data]
            gs = [d.gt_semantic.astype(np.int64) for d in data]
            preds += out.frames
            gts += list(zip(gi, gs))
            pred_tracks.append([p.instance.astype(np.int64) for p in out.frames])
            gt_tracks.append([thing_track_ids(i, s, things) for i, s in zip(gi, gs)])
            pq = scene_pq([p.semantic for p in out.frames], pred_tracks[-1], gs, gi, things=things, stuff=stuff)
            clip_pq.append(float(pq.pq))
            if out.depth is not None:
                for d, p in zip(data, out.depth):
                    if d.depth is not None:
                        depth_pred.append(p)
                        depth_gt.append(d.depth)
            if clips_done == 0:
                picks = np.linspace(0, len(rgb) - 1, min(sheet, len(rgb))).round().astype(int)
                for k in sorted(set(picks.tolist())):
                    row = [rgb[k], colour_ids(gi[k]), colour_ids(out.frames[k].instance.astype(np.int64))]
                    if out.depth is not None:
                        row.append(depth_to_rgb(out.depth[k], float(np.percentile(np.stack(out.depth), 98))))
                    rows.append(row)
            clips_done += 1
    if not clips_done:
        raise ValueError(f"no clip of split {split!r} in {[str(s) for s in sequences]}; leave out --split.")
    result = score_predictions(preds, gts, things, stuff)
    result["mots"] = _pooled_mots(pred_tracks, gt_tracks)
    result["scene_pq_per_clip"] = clip_pq
    result["scene_pq"] = float(np.mean(clip_pq))
    result["depth"] = depth_metrics(depth_pred, depth_gt) if depth_pred else None
    result.update(
        method="spatio-temporal",
        num_clips=clips_done,
        num_frames=len(preds),
        frames_per_second=len(preds) / max(seconds, 1e-9),
        resolution=list(preds[0].instance.shape),
        step=int(state["step"]),
        split=split,
        scenes=[str(Path(s).resolve()) for s in sequences],
    )
    out_dir = run if run.is_dir() else run.parent
    json_path, sheet_path = out_dir / "eval" / f"{name}.json", out_dir / "eval" / f"{name}.png"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(json_path, result)
    if rows:
        atomic_write_bytes(sheet_path, contact_sheet(rows))
    return {**result, "json": str(json_path), "sheet": str(sheet_path)}


def _pooled_mots(pred_tracks: list[list[np.ndarray]], gt_tracks: list[list[np.ndarray]]) -> dict:
    """MOTS of every clip pooled (counts summed; tracks never continue across clips), with the metrics under
    ``sMOTSA`` / ``MOTSA`` / ``MOTSP`` and the counts ``TP``, ``FP``, ``FN``, ``IDS``, ``num_gt``."""
    r = mots_over_sequences(zip(pred_tracks, gt_tracks))
    return {
        "sMOTSA": r.smotsa,
        "MOTSA": r.motsa,
        "MOTSP": r.motsp,
        "TP": r.tp,
        "FP": r.fp,
        "FN": r.fn,
        "IDS": r.ids,
        "soft_TP": r.soft_tp,
        "num_gt": r.num_gt,
    }
