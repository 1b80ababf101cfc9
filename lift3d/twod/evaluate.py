"""``lift3d twod eval``: a trained 2D network on scenes with ground truth.

Scores: COCO mask AP / AP50 / AP75 over the thing instances (:func:`lift3d.metrics.mask_ap`), the per-frame
panoptic quality of the predicted instance + class maps (:func:`lift3d.metrics.frame_pq`, the same metric the lift
is scored with) and the semantic mIoU with each class's IoU (:func:`lift3d.metrics.semantic_miou`), plus the
network's frames per second on this machine; and a contact sheet (image, ground truth, prediction per row).
Written to ``RUN2D/eval/<name>.json`` and ``.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from lift3d.io import atomic_write_bytes, atomic_write_json
from lift3d.metrics import frame_pq, mask_ap, semantic_miou
from lift3d.twod.dataset import FrameDataset
from lift3d.twod.model import load_twod_model

__all__ = ["evaluate_twod", "score_predictions", "semantic_scores", "colour_ids", "contact_sheet"]


def colour_ids(ids: np.ndarray) -> np.ndarray:
    """``ids [H, W]`` -> ``[H, W, 3]`` uint8: black for 0, a fixed pseudo-random colour per id."""
    k = ids.astype(np.uint64) * np.uint64(2654435761)
    rgb = np.stack([(k >> np.uint64(s)) & np.uint64(255) for s in (0, 8, 16)], -1).astype(np.uint8)
    rgb = (rgb // 2 + 100).astype(np.uint8)
    rgb[ids == 0] = 0
    return rgb


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], scale: int = 2) -> bytes:
    """PNG bytes of a grid: ``rows`` of ``[H, W, 3]`` uint8 tiles of one size, each enlarged ``scale`` times."""
    lines = [np.concatenate(list(r), axis=1) for r in rows]
    grid = np.concatenate(lines, axis=0).repeat(scale, 0).repeat(scale, 1)
    import io

    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    return buf.getvalue()


def semantic_scores(
    pred_sem: Sequence[np.ndarray], gt_sem: Sequence[np.ndarray], class_ids: Sequence[int], names: dict[int, str]
) -> dict:
    """Semantic mIoU and per-class IoU (:func:`lift3d.metrics.semantic_miou`) of class-id maps ``[H, W]``.

    The scene's class ids ``class_ids`` (not necessarily contiguous, e.g. ``--classes families``) are mapped to
    ``0..K-1`` in sorted order; GT pixels of other ids are ignored, predictions of other ids count as misses.
    Returns ``{"semantic_miou": float, "per_class_iou": {name: IoU or None (class absent from GT and prediction)}}``.
    """
    ids = sorted(int(c) for c in class_ids)
    lut = {c: i for i, c in enumerate(ids)}

    def channels(m: np.ndarray, outside: int) -> np.ndarray:
        out = np.full(m.shape, outside, np.int64)
        for c, i in lut.items():
            out[m == c] = i
        return out

    value, per_class = semantic_miou(
        [channels(np.asarray(p), len(ids)) for p in pred_sem],
        [channels(np.asarray(g), -1) for g in gt_sem],
        len(ids),
        ignore=-1,
    )
    return {
        "semantic_miou": value,
        "per_class_iou": {
            names.get(c, str(c)): (None if np.isnan(iou) else float(iou)) for c, iou in zip(ids, per_class.tolist())
        },
    }


def score_predictions(preds, gts, things: list[int], stuff: list[int], names: Optional[dict[int, str]] = None) -> dict:
    """AP (COCO), AP50, AP75, per-frame PQ and semantic mIoU (with per-class IoU, :func:`semantic_scores`) of a
    list of :class:`~lift3d.twod.model.Prediction` against ``gts`` = list of ``(gt instance [H, W], gt semantic
    [H, W])``; ``names``: class id -> name for the per-class IoU (default the ids)."""
    masks = [
        np.stack([i.mask.cpu().numpy() for i in p.instances]) if p.instances else np.zeros((0,) + p.instance.shape)
        for p in preds
    ]
    ap = mask_ap(
        masks, [p.scores for p in preds], [p.classes for p in preds], [g[0] for g in gts], [g[1] for g in gts], things
    )
    pq = frame_pq(
        [p.semantic for p in preds],
        [p.instance.astype(np.int64) for p in preds],
        [g[1] for g in gts],
        [g[0] for g in gts],
        things=things,
        stuff=stuff,
    )
    return {
        "AP": ap["AP"],
        "AP50": ap["AP50"],
        "AP75": ap["AP75"],
        "frame_pq": float(pq.pq),
        "frame_pq_things": float(pq.pq_things),
        "frame_pq_stuff": float(pq.pq_stuff),
        **semantic_scores([p.semantic for p in preds], [g[1] for g in gts], list(things) + list(stuff), names or {}),
        "num_gt_instances": ap["num_gt"],
        "num_pred_instances": ap["num_pred"],
    }


def evaluate_twod(
    run: Path,
    scenes: Sequence[Path],
    name: str = "eval",
    device: str = "cpu",
    threads: int = 1,
    sheet: int = 6,
) -> dict:
    """Evaluate the network of ``run`` on every frame of ``scenes`` (see the module docstring); returns the
    written figures with ``json`` and ``sheet`` paths."""
    torch.set_num_threads(threads)
    run = Path(run)
    model, state = load_twod_model(run, device=device)
    data = FrameDataset(list(scenes), classes=model.classes)
    preds, gts, rows, seconds = [], [], [], 0.0
    picks = set(np.linspace(0, len(data) - 1, min(sheet, len(data))).round().astype(int).tolist())
    per_scene: dict[str, list[int]] = {}
    for i in range(len(data)):
        rgb, gi, gs = data.raw(i)
        t0 = time.perf_counter()
        p = model.predict(rgb)
        seconds += time.perf_counter() - t0
        preds.append(p)
        gts.append((gi, gs))
        per_scene.setdefault(str(data.scenes[data.items[i][0]].root), []).append(i)
        if i in picks:
            rows.append([rgb, colour_ids(gi), colour_ids(p.instance.astype(np.int64))])
    things = model.classes.thing_ids
    stuff = [c.id for c in model.classes.classes if not c.thing]
    names = {c.id: c.name for c in model.classes.classes}
    result = score_predictions(preds, gts, things, stuff, names)
    result["per_scene"] = {
        s: score_predictions([preds[i] for i in idx], [gts[i] for i in idx], things, stuff, names)
        for s, idx in per_scene.items()
    }
    result.update(
        num_frames=len(preds),
        frames_per_second=len(preds) / max(seconds, 1e-9),
        resolution=list(preds[0].instance.shape) if preds else None,
        step=int(state["step"]),
        scenes=[str(Path(s).resolve()) for s in scenes],
    )
    out_dir = run if run.is_dir() else run.parent
    json_path = out_dir / "eval" / f"{name}.json"
    sheet_path = out_dir / "eval" / f"{name}.png"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(json_path, result)
    if rows:
        atomic_write_bytes(sheet_path, contact_sheet(rows))
    return {**result, "json": str(json_path), "sheet": str(sheet_path)}
