"""Where an instance-phase step of the study spends its time, per scene size (diagnostic for paper Table 6).

One instance step = (a) march the image's rays through the frozen density field (no gradient) and (b) the
instance objective: evaluate the instance head at the samples whose weight exceeds the threshold (at most
``head_max_samples`` of them per ray), the loss, its backward pass, the optimiser step and the EMA of the slow
field. (a) does not depend on the method; (b) is what paper Table 6 compares. Both are timed separately, round-robin over the scenes, on the shared fields of a finished
study (``WORK/runs/N<NNN>/shared``):

    python -m tools.study_profile --config cpu-small --work outputs/study/cpu-small-v2 --objects 25 100 500 \
        --out docs/results/cpu-small/profile.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lift3d.objectives import InstanceBatch
from tools.study import STUDY_CONFIGS, fit_config_for
from tools.study_lift import method_config, method_trainer, num_slots_for


def split_step(trainer) -> tuple[float, float, int, int]:
    """One instance step of ``trainer`` timed in two parts: (march seconds, objective seconds, rays, head samples).

    Mirrors :meth:`Trainer._image_step` with the instance objective only."""
    tr, model, o = trainer.train_pixels, trainer.model, trainer.cfg.optim
    view = trainer.instance_views[int(torch.randint(len(trainer.instance_views), (1,), generator=trainer.generator))]
    cand = trainer.view_segment_rows[view]
    pick = cand[torch.randperm(cand.numel(), generator=trainer.generator)[: o.instance_pixels]]
    t0 = time.perf_counter()
    o2, d2 = tr.rays(pick)
    dp = tr.depth[pick] if tr.depth is not None else None
    with torch.no_grad():
        samples = model.sample_rays(o2, d2, dp, jitter=True, with_color=False, density_grad=False)
    t1 = time.perf_counter()
    thing_rows = torch.isin(tr.semantic[pick], trainer.thing_ids).nonzero().squeeze(-1)
    batch = InstanceBatch(samples, thing_rows, tr.instance[pick][thing_rows], tr.confidence[pick][thing_rows])
    loss = trainer.instance_loss(batch, {})
    trainer.opt_instance.zero_grad(set_to_none=True)
    loss.backward()
    trainer.opt_instance.step()
    trainer.objective.after_step(model)
    t2 = time.perf_counter()
    above = (samples.weights[thing_rows] > model.cfg.head_weight_threshold).sum(-1)  # [rays]
    k = model.cfg.head_max_samples
    evaluated = above.clamp(max=k) if k > 0 else above  # render_head keeps the k heaviest of them
    return t1 - t0, t2 - t1, int(thing_rows.numel()), int(evaluated.sum()), int(above.sum())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="cpu-small", choices=sorted(STUDY_CONFIGS))
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--objects", type=int, nargs="+", default=[25, 500])
    p.add_argument("--methods", nargs="+", default=["slow-fast", "linear-assignment"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block", type=int, default=20)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the table")
    a = p.parse_args(argv)
    cfg = STUDY_CONFIGS[a.config]
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    from lift3d.data.loading import load_frame, load_scene

    trainers = {}
    for n in a.objects:
        scene = load_scene(a.work / "scenes" / f"N{n:03d}")
        fit = fit_config_for(cfg, n, len(scene.train_indices))
        segs = max(
            len(np.unique(f.instance[f.instance > 0])) for f in (load_frame(scene, i) for i in scene.train_indices)
        )
        for m in a.methods:
            mcfg = method_config(fit, m, num_slots_for(n, segs, cfg.slot_margin))  # the K of the study
            trainers[(m, n)] = method_trainer(
                scene,
                mcfg,
                a.work / "runs" / f"N{n:03d}" / "shared",
                a.work / "runs" / f"N{n:03d}" / f"{m}-profile",
                log=lambda *_: None,
            )
    rec = {k: [] for k in trainers}
    for t in trainers.values():
        for _ in range(3):
            split_step(t)
    for r in range(a.rounds):
        for k, t in trainers.items():
            for _ in range(a.block):
                rec[k].append(split_step(t))
    out = {}
    for (m, n), rows in rec.items():
        arr = np.asarray(rows, dtype=np.float64)
        out.setdefault(m, {})[str(n)] = {
            "march_ms": round(float(np.median(arr[:, 0]) * 1e3), 2),
            "objective_ms": round(float(np.median(arr[:, 1]) * 1e3), 2),
            "thing_rays": int(np.median(arr[:, 2])),
            "head_samples": int(np.median(arr[:, 3])),
            "samples_above_threshold": int(np.median(arr[:, 4])),
            "embedding_dim": trainers[(m, n)].objective.output_dim,
            "grid": trainers[(m, n)].cfg.model.radiance.final_grid_resolution,
        }
        e = out[m][str(n)]
        print(
            f"{m:>18} N={n:<4} D/K={e['embedding_dim']:<4} grid {e['grid']:<4} march {e['march_ms']:6.2f} ms  "
            f"objective {e['objective_ms']:6.2f} ms  ({e['thing_rays']} thing rays, {e['head_samples']} head samples "
            f"of {e['samples_above_threshold']} above the weight threshold)"
        )
    if a.out:
        a.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
