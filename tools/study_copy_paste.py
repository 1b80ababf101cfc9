"""Paper 003's two tables on generated scenes: pretraining (none / plain SwAV / copy-paste λ = 1 / λ = 0.5), then
(a) unsupervised semantic segmentation with the pretrained encoder's features (k-means + Hungarian: Acc, mIoU) and
(b) fine-tuning with spatial embeddings at several label fractions (semantic mIoU, instance AP, AP50).

    .venv/bin/python -m tools.study_copy_paste --train SCENE ... --eval SCENE ... --work DIR --out OUT.json \\
        [--pretrain-steps 500] [--finetune-steps 400] [--fractions 0.1 1.0] [--threads 2] \\
        [--pretrain-minutes M] [--finetune-minutes M] \\
        [--regions.merge-threshold 0.05 --regions.modularity-resolution 3.0] [--prototypes 100] [--depth scene|RUN2D]

Every cell runs as a ``lift3d`` command line (recorded with its wall time in OUT.json) in its own run folder under
``DIR``; the grid is resumable: a finished cell is read back, an interrupted training run continues with
``--resume``. Pretraining and fine-tuning use equal step budgets per configuration (the wall time each took is
reported). Unknown options (``--regions.*``, ``--prototypes``, ...) are passed to every ``twod pretrain``. Run it
under the team's lock: ``flock /tmp/lift3d-heavy.lock python -m tools.study_copy_paste ...``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lift3d.io import atomic_write_json

_LEGACY = ["--small-crops", "0", "--freeze-prototypes-epochs", "0", "--queue-start-epochs", "0", "--no-head-batch-norm"]
_RECIPE = ["--freeze-prototypes-epochs", "1", "--head-batch-norm", "--epsilon", "0.02"]
PRETRAININGS = {
    "swav": ["--method", "swav", "--queue-length", "0", *_LEGACY],
    "swav-queue": ["--method", "swav", "--queue-length", "256", *_LEGACY],
    "swav-recipe": [
        "--method", "swav", "--queue-length", "0", *_RECIPE,
        "--small-crops", "6", "--small-crop-fraction", "0.5", "--small-crop-area", "0.14", "0.5",
    ],
    "copy-paste-1": ["--method", "copy-paste", "--lambda-pixel", "1.0", "--queue-length", "0", *_RECIPE],
    "copy-paste-0.5": ["--method", "copy-paste", "--lambda-pixel", "0.5", "--queue-length", "0", *_RECIPE],
}  # fmt: skip
"""Pretraining configurations (the ``scratch`` row has none). ``swav`` / ``swav-queue``: the first run's plain SwAV
without and with a 256-feature queue from the start (both collapsed to the uniform code; pinned to that run's
settings: no prototype freeze, no multi-crop, no batch norm in the head). ``swav-recipe``: SwAV's small-batch recipe
as measured to train here (prototypes frozen for the first epoch, a batch-normalised projection head, Sinkhorn
ε 0.02, 2 global + 6 small crops of half the frame's side covering 14-50% of it, no queue). ``copy-paste-1`` (pixel
level only) and ``copy-paste-0.5``: paper 003 with the same freeze, head and ε and no region queue, so that they and
``swav-recipe`` differ only in the views and the level of the loss. The prototype count is common to all (pass ``--prototypes``)."""
INITS = ["scratch", *PRETRAININGS]


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "lift3d.cli", *args]


def _run(args: list[str], log: Path) -> dict:
    """Run ``lift3d ARGS`` (output appended to ``log``); returns the command line and its wall time."""
    cmd = "lift3d " + shlex.join(args)
    print(f"$ {cmd}", flush=True)
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"$ {cmd}\n")
        fh.flush()
        subprocess.run(_cli(args), check=True, stdout=fh, stderr=subprocess.STDOUT)
    return {"command": cmd, "seconds": round(time.perf_counter() - t0, 1)}


def _finished(run: Path, steps: int) -> bool:
    f = run / "train.json"
    return f.exists() and json.loads(f.read_text())["step"] >= steps


def _train_record(run: Path) -> dict:
    """Steps and the mean of the last 20 steps' loss; for a pretraining also ln K and the code diagnostics
    (``*_used``: distinct prototypes that are an item's most likely code, ``*_code_max``: mean largest code entry)
    over the same steps, and the fraction of the last 100 steps whose loss lies within 0.01 of ln K (the uniform
    code's loss: 1.0 for a collapsed run)."""
    t = json.loads((run / "train.json").read_text())
    last = t["history"][-20:]
    record = {"steps": t["step"], "final_loss_mean_last_20": float(np.mean([h["loss"] for h in last]))}
    if "ln_prototypes" in t:
        record["ln_prototypes"] = t["ln_prototypes"]
        for key in sorted({k for h in last for k in h if k.endswith(("_used", "_code_max"))}):
            record[f"{key}_mean_last_20"] = float(np.mean([h[key] for h in last if key in h]))
        level = "image" if "image" in last[-1] else "pixel"
        tail = t["history"][-100:]
        near = sum(abs(h[level] - t["ln_prototypes"]) < 0.01 for h in tail)
        record[f"{level}_last_100_fraction_within_0.01_of_ln_k"] = near / len(tail)
    return record


def _pretrain(a, name: str, log: Path, cells: dict) -> Path:
    run = a.work / "pretrain" / name
    args = ["twod", "pretrain", *PRETRAININGS[name], "--data", *map(str, a.train), "--out", str(run)]
    args += ["--steps", str(a.pretrain_steps), "--batch-size", str(a.batch_size), "--threads", str(a.threads)]
    args += ["--checkpoint-every", str(max(1, a.pretrain_steps // 4)), "--seed", str(a.seed), "--depth", a.depth]
    args += a.region_args
    if a.pretrain_minutes:
        args += ["--time-limit-minutes", str(a.pretrain_minutes)]
    key = f"pretrain/{name}"
    if not _finished(run, a.pretrain_steps):
        resume = ["--resume"] if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()) else []
        cells[key] = {**_run(args + resume, log), "resumed": bool(resume)}
    cells.setdefault(key, {"command": "lift3d " + shlex.join(args)})
    cells[key].update(_train_record(run))
    return run


def _unsupervised(a, init: str, log: Path, cells: dict) -> dict:
    out = a.work / "unsupervised" / f"{init}.json"
    source = "random" if init == "scratch" else str(a.work / "pretrain" / init)
    args = ["twod", "eval-features", source, "--data", *map(str, a.eval), "--out", str(out)]
    args += ["--threads", str(a.threads), "--seed", str(a.seed)]
    key = f"unsupervised/{init}"
    if not out.exists():
        cells[key] = _run(args, log)
    cells.setdefault(key, {"command": "lift3d " + shlex.join(args)})
    r = json.loads(out.read_text())
    cells[key].update(accuracy=r["accuracy"], miou=r["miou"], num_frames=r["num_frames"], classes=len(r["classes"]))
    return cells[key]


def _finetune(a, init: str, fraction: float, log: Path, cells: dict) -> dict:
    name = f"{init}_labels{fraction:g}"
    run = a.work / "finetune" / name
    args = ["twod", "train", "--data", *map(str, a.train), "--out", str(run), "--steps", str(a.finetune_steps)]
    args += ["--batch-size", str(a.batch_size), "--lr", str(a.finetune_lr), "--pixels-per-unit", "48"]
    args += ["--threads", str(a.threads), "--checkpoint-every", str(max(1, a.finetune_steps // 4))]
    args += ["--seed", str(a.seed), "--label-fraction", f"{fraction:g}"]
    if init != "scratch":
        args += ["--init", str(a.work / "pretrain" / init)]
    if a.finetune_minutes:
        args += ["--time-limit-minutes", str(a.finetune_minutes)]
    key = f"finetune/{name}"
    if not _finished(run, a.finetune_steps):
        resume = ["--resume"] if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()) else []
        cells[key] = {**_run(args + resume, log), "resumed": bool(resume)}
    cells.setdefault(key, {"command": "lift3d " + shlex.join(args)})
    cells[key].update(_train_record(run))
    ev = run / "eval" / "unseen.json"
    eval_args = ["twod", "eval", str(run), "--data", *map(str, a.eval), "--name", "unseen", "--threads", str(a.threads)]
    if not ev.exists():
        cells[key]["eval"] = _run(eval_args, log)
    cells[key].setdefault("eval", {"command": "lift3d " + shlex.join(eval_args)})
    r = json.loads(ev.read_text())
    cells[key].update(AP=r["AP"], AP50=r["AP50"], frame_pq=r["frame_pq"], semantic_miou=r["semantic_miou"])
    head = run / "eval" / "unseen_class_head.json"
    if not head.exists():
        atomic_write_json(head, class_head_miou(run, a.eval))
    cells[key]["class_head_miou"] = json.loads(head.read_text())["miou"]
    return cells[key]


def class_head_miou(run: Path, scenes: list[Path]) -> dict:
    """Semantic mIoU (:func:`lift3d.metrics.semantic_miou`) of the class head's per-pixel argmax over all classes
    (a semantic segmentation network's output; ``twod eval``'s class maps instead paint thing classes only inside
    detected instances) on every frame of ``scenes``."""
    import torch

    from lift3d.metrics import semantic_miou
    from lift3d.twod.dataset import FrameDataset
    from lift3d.twod.model import load_twod_model

    model, _ = load_twod_model(run)
    data = FrameDataset(list(scenes), classes=model.classes)
    preds, gts = [], []
    for i in range(len(data)):
        rgb, _, gs = data.raw(i)
        h, w = gs.shape
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
        x = torch.nn.functional.pad(x, (0, (-w) % 8, 0, (-h) % 8))
        with torch.no_grad():
            logits = model.net(x).semantic_logits[0, :, :h, :w]
        preds.append(logits.argmax(0).numpy())
        gts.append(model.classes.semantic_channels(gs))
    value, per_class = semantic_miou(preds, gts, len(model.classes.class_ids), ignore=-1)
    names = [c.name for c in model.classes.classes]
    return {
        "miou": float(value),
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, per_class)},
    }


def tables(cells: dict, fractions: list[float]) -> str:
    """The two tables as markdown."""
    rows = ["| init | Acc | mIoU |", "|---|---|---|"]
    for init in INITS:
        c = cells.get(f"unsupervised/{init}")
        if c and "accuracy" in c:
            rows.append(f"| {init} | {100 * c['accuracy']:.2f} | {100 * c['miou']:.2f} |")
    keys = ("semantic_miou", "class_head_miou", "AP", "AP50")
    head = "| init | " + " | ".join(f"mIoU {f:g} | head mIoU {f:g} | AP {f:g} | AP50 {f:g}" for f in fractions) + " |"
    rows2 = [head, "|---|" + "---|" * (len(keys) * len(fractions))]
    for init in INITS:
        vals = []
        for f in fractions:
            c = cells.get(f"finetune/{init}_labels{f:g}", {})
            vals += [f"{100 * c[k]:.2f}" if k in c else "–" for k in keys]
        if any(v != "–" for v in vals):
            rows2.append(f"| {init} | " + " | ".join(vals) + " |")
    return "\n".join(rows) + "\n\n" + "\n".join(rows2) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=Path, nargs="+", required=True, help="pretraining and fine-tuning scenes")
    p.add_argument("--eval", type=Path, nargs="+", required=True, help="unseen scenes the tables are scored on")
    p.add_argument("--work", type=Path, required=True, help="run folders of every cell")
    p.add_argument("--out", type=Path, required=True, help="the study's JSON")
    p.add_argument("--pretrain-steps", type=int, default=500)
    p.add_argument("--finetune-steps", type=int, default=400)
    p.add_argument("--pretrain-minutes", type=float, default=None, help="wall-time cap per pretraining (safety)")
    p.add_argument("--finetune-minutes", type=float, default=None, help="wall-time cap per fine-tuning (safety)")
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--depth", default="scene", help="scene or a spatio-temporal run (its depth head)")
    p.add_argument("--only", choices=["pretrain", "unsupervised", "finetune"], nargs="+", default=None)
    p.add_argument("--inits", choices=INITS, nargs="+", default=INITS, help="rows to run (default: all)")
    a, extra = p.parse_known_args(argv)
    a.region_args = extra  # passed to every `twod pretrain` (e.g. --regions.merge-threshold 0.05)
    a.work.mkdir(parents=True, exist_ok=True)
    log = a.work / "study.log"
    cells: dict = json.loads(a.out.read_text())["cells"] if a.out.exists() else {}
    stages = a.only or ["pretrain", "unsupervised", "finetune"]

    def save() -> dict:
        record = {
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "region_args"},
            "region_args": a.region_args,
            "train": [str(s) for s in a.train],
            "eval": [str(s) for s in a.eval],
            "cells": cells,
            "tables_markdown": tables(cells, a.fractions),
        }
        record["settings"]["train"] = [str(s) for s in a.train]
        record["settings"]["eval"] = [str(s) for s in a.eval]
        atomic_write_json(a.out, record)
        return record

    if "pretrain" in stages:
        for name in [n for n in PRETRAININGS if n in a.inits]:
            _pretrain(a, name, log, cells)
            save()
    if "unsupervised" in stages:
        for init in a.inits:
            _unsupervised(a, init, log, cells)
            save()
    if "finetune" in stages:
        for fraction in a.fractions:
            for init in a.inits:
                _finetune(a, init, fraction, log, cells)
                save()
    record = save()
    print(record["tables_markdown"])
    return record


if __name__ == "__main__":
    main()
