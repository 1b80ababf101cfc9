"""The ablation of Zhu et al. 2022 (Table I) at a CPU budget: the cross-modal method with and without the LiDAR
positives and with and without the temporal positives, trained on the same sequences for the same steps, scored
on sequences it never saw (MOTS of its tracks, per-frame PQ and COCO AP of its masks, Table V's temporal
consistency).

The mean-shift threshold ``m`` is chosen per variant on a *training* sequence (best per-frame PQ among
``--thresholds``) and then applied unchanged to the unseen ones; the paper's ``m = 0.1`` is scored too.

    .venv/bin/python -m tools.xmodal_ablation --train SEQ [SEQ ...] --seen SEQ --test SEQ [SEQ ...] --work WORK \
        --out OUT.json [--steps 400] [--batch-size 4] [--threads 2] [--variants full no-lidar no-temporal camera-only]

Each variant trains into ``WORK/<variant>`` (a finished run is reused); OUT.json holds every figure, the settings
and the timings, and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from lift3d.io import atomic_write_json
from lift3d.twod.cross_modal import evaluate_cross_modal, train_cross_modal
from lift3d.twod.cross_modal_config import CrossModalConfig
from lift3d.twod.mean_shift import MeanShiftConfig
from lift3d.twod.model import latest_twod_checkpoint
from lift3d.twod.train import TwodTrainConfig

VARIANTS = {
    "full": dict(lidar_positives=True, temporal_positives=True),
    "no-lidar": dict(lidar_positives=False, temporal_positives=True),
    "no-temporal": dict(lidar_positives=True, temporal_positives=False),
    "camera-only": dict(lidar_positives=False, temporal_positives=False),
}


def _summary(result: dict) -> dict:
    keys = ("AP", "AP50", "frame_pq", "frame_pq_things", "temporal_cosine_distance", "temporal_accuracy")
    out = {k: result.get(k) for k in keys}
    out.update({k: result["mots"][k] for k in ("smotsa", "motsa", "motsp", "tp", "fp", "fn", "ids")})
    out["num_frames"], out["frames_per_second"] = result["num_frames"], result["frames_per_second"]
    return out


def run_variant(name: str, args, work: Path) -> dict:
    run = work / name
    train = TwodTrainConfig(
        method="cross-modal",
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        threads=args.threads,
        checkpoint_every=args.steps,
        seed=args.seed,
    )
    cfg = CrossModalConfig(**VARIANTS[name])
    t0 = time.perf_counter()
    ckpt = latest_twod_checkpoint(run)
    if ckpt is None or not ckpt.name.endswith(f"{args.steps:07d}.pt"):
        train_cross_modal(args.train, run, train, cfg, resume=ckpt is not None, progress=False)
    train_seconds = time.perf_counter() - t0
    history = json.loads((run / "train.json").read_text())["history"]
    by_threshold = {}
    for m in args.thresholds:
        ms = replace(MeanShiftConfig(), threshold=m)
        by_threshold[m] = _summary(
            evaluate_cross_modal(run, [args.seen], name=f"seen_m{m}", threads=args.threads, mean_shift=ms)
        )
    chosen = max(args.thresholds, key=lambda m: by_threshold[m]["frame_pq"])
    unseen = {}
    for m in sorted({chosen, 0.1}):
        ms = replace(MeanShiftConfig(), threshold=m)
        res = evaluate_cross_modal(run, args.test, name=f"unseen_m{m}", threads=args.threads, mean_shift=ms)
        unseen[m] = {"all": _summary(res)}
        for seq in args.test:  # per sequence
            one = evaluate_cross_modal(
                run, [seq], name=f"unseen_{Path(seq).name}_m{m}", threads=args.threads, mean_shift=ms
            )
            unseen[m][Path(seq).name] = _summary(one)
    return {
        "variant": name,
        "settings": VARIANTS[name],
        "train_seconds": train_seconds,
        "loss_first_25": sum(h["loss"] for h in history[:25]) / max(1, len(history[:25])),
        "loss_last_25": sum(h["loss"] for h in history[-25:]) / max(1, len(history[-25:])),
        "seen_by_threshold": by_threshold,
        "chosen_threshold": chosen,
        "unseen": unseen,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", nargs="+", required=True, type=Path)
    p.add_argument("--seen", required=True, type=Path, help="a training sequence: chooses the mean-shift threshold")
    p.add_argument("--test", nargs="+", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--thresholds", nargs="+", type=float, default=[0.05, 0.1, 0.15, 0.2])
    args = p.parse_args()
    results = []
    for name in args.variants:
        results.append(run_variant(name, args, args.work))
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        settings = {k: ([str(x) for x in v] if isinstance(v, list) else v) for k, v in settings.items()}
        atomic_write_json(args.out, {"settings": settings, "results": results})
    print("variant      m     sMOTSA  MOTSA  MOTSP  IDS  PQ     AP     temporal-acc  train-s")
    for r in results:
        m = r["chosen_threshold"]
        u = r["unseen"][m]["all"]
        print(
            f"{r['variant']:<12} {m:<5} {u['smotsa']:.3f}  {u['motsa']:.3f}  {u['motsp']:.3f}  {u['ids']:<4} "
            f"{u['frame_pq']:.3f}  {u['AP']:.3f}  {u['temporal_accuracy']:.3f}         {r['train_seconds']:.0f}"
        )


if __name__ == "__main__":
    main()
