"""Short SwAV pilots that show why plain SwAV collapsed on generated rooms and which part of SwAV's small-batch recipe
fixes it: each named configuration trains the image-level SwAV of ``lift3d twod pretrain`` for a few steps (or a
wall-time cap) and logs, every ``--every`` steps, on that step's batch:

- ``loss`` and ``ln K`` (the uniform code's loss), ``used`` (distinct prototypes that are an item's most likely
  code) and ``code_max`` (mean largest code entry; ``1 / K`` is the uniform code),
- ``cos_images``: mean cosine between the projected features of different frames (first global crops),
  ``cos_crops``: mean cosine between the two global crops of one frame (invariance is learnt when it exceeds
  ``cos_images``),
- ``spread_samples`` / ``spread_prototypes``: standard deviation of the scores ``z · c_k`` over the batch items
  (what Sinkhorn's codes see) and over the prototypes (what the predictions ``softmax(z · c / τ)`` see), and
  ``q_max`` / ``p_max``, the mean largest entry of the codes and of the predictions. When ``q`` is flatter than
  ``p`` the loss flattens the predictions: the collapse.

    .venv/bin/python -m tools.swav_pilot --data SCENE ... --out pilots.json [--steps 150] [--seconds 60] \\
        [--configs first-run bn-head-k1000 ...]

It runs the package's own code (``PretrainNetwork``, ``swav_batch``, ``swav_loss``, ``FeatureQueue``) in one
process with the loop of :func:`lift3d.twod.pretrain.pretrain` (Adam, poly decay, prototype freeze, queue start).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lift3d.io import atomic_write_json
from lift3d.losses.swav import swav_codes
from lift3d.twod.distributed import batch_indices
from lift3d.twod.pretrain import (
    FeatureQueue,
    PretrainConfig,
    PretrainNetwork,
    _Features,
    schedule_steps,
    swav_batch,
    swav_loss,
)
from lift3d.twod.pretrain_data import PretrainFrames

_FIRST_RUN = dict(prototypes=1000, head_batch_norm=False, small_crops=0, freeze_prototypes_epochs=0.0)
_RECIPE = dict(prototypes=100, head_batch_norm=True, freeze_prototypes_epochs=1.0)
CONFIGS: dict[str, dict] = {
    "first-run": dict(_FIRST_RUN, queue_length=0),
    "first-run-k100": dict(_FIRST_RUN, prototypes=100, queue_length=0),
    "bn-head-k1000": dict(_RECIPE, prototypes=1000, small_crops=0, queue_length=0),
    "bn-head-k100-swav-small-crops": dict(_RECIPE, small_crops=6, queue_length=0),
    "bn-head-k100-two-crops": dict(_RECIPE, small_crops=0, queue_length=0),
    "bn-head-k100-two-crops-queue128-epoch2": dict(_RECIPE, small_crops=0, queue_length=128, queue_start_epochs=2.0),
    "recipe": dict(_RECIPE, small_crops=6, small_crop_fraction=0.5, small_crop_area=(0.14, 0.5), queue_length=0),
}
"""The diagnosis ladder: the first run's settings (1000 prototypes, no batch norm in the head, two crops), then
the batch-normalised head, the prototype count, SwAV's own small crops, the queue, and the recipe the study uses
(``tools/study_copy_paste.py``'s ``swav-recipe``)."""


@torch.no_grad()
def _probe(net: PretrainNetwork, batch: dict, cfg: PretrainConfig) -> dict:
    b = batch["view_a"].shape[0]
    x = torch.cat([batch["view_a"], batch["view_b"]]).float() / 255.0
    z = F.normalize(net.pooled_features([x]), dim=1)
    s = net.prototypes(z)
    q = swav_codes(s[:b], cfg.epsilon, cfg.sinkhorn_iterations)
    p = torch.softmax(s[:b] / cfg.temperature, dim=1)
    cos = z[:b] @ z[:b].t()
    off = cos[~torch.eye(b, dtype=torch.bool)]
    return {
        "cos_images": float(off.mean()),
        "cos_crops": float((z[:b] * z[b:]).sum(1).mean()),
        "spread_samples": float(s[:b].std(0).mean()),
        "spread_prototypes": float(s.std(1).mean()),
        "q_max": float(q.max(1).values.mean()),
        "p_max": float(p.max(1).values.mean()),
    }


def pilot(data: PretrainFrames, overrides: dict, steps: int, seconds: float, every: int, threads: int) -> dict:
    """Train one configuration (``PretrainConfig(method="swav", **overrides)``) and log the probes."""
    torch.set_num_threads(threads)
    cfg = PretrainConfig(method="swav", steps=600, **overrides)  # the study's 600-step learning-rate schedule
    torch.manual_seed(cfg.seed)
    net = PretrainNetwork(cfg.network(), cfg.projection_hidden, cfg.projection_dim, cfg.prototypes, cfg.head_batch_norm)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    queue = FeatureQueue(cfg.queue_length, cfg.projection_dim, "cpu") if cfg.queue_length > 0 else None
    freeze, queue_start = schedule_steps(cfg, len(data))
    model, log, t0 = _Features(net), [], time.perf_counter()
    for step in range(steps):
        net.train()
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (1.0 - step / cfg.steps) ** 0.9
        batch = swav_batch(data, batch_indices(len(data), cfg.batch_size, step, cfg.seed), cfg)
        loss, parts = swav_loss(net, model, batch, cfg, None, "cpu", queue, step >= queue_start)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step < freeze:
            net.prototypes.weight.grad = None
        opt.step()
        net.normalise_prototypes()
        over = time.perf_counter() - t0 > seconds
        if step % every == 0 or step == steps - 1 or over:
            entry = {"step": step + 1, "loss": float(loss.detach()), "used": parts["image_used"]}
            entry.update(code_max=parts["image_code_max"], queue=queue is not None and step >= queue_start)
            entry.update(_probe(net, batch, cfg))
            log.append(entry)
            print(
                f"  step {entry['step']:4d} loss {entry['loss']:.3f} used {entry['used']:2d} "
                f"code_max {entry['code_max']:.4f} cos images {entry['cos_images']:.3f} crops "
                f"{entry['cos_crops']:.3f} q_max {entry['q_max']:.4f} p_max {entry['p_max']:.4f}",
                flush=True,
            )
        if over:
            break
    return {
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "ln_prototypes": math.log(cfg.prototypes),
        "freeze_prototype_steps": freeze,
        "queue_start_step": queue_start if queue is not None else None,
        "steps_run": log[-1]["step"] if log else 0,
        "seconds": round(time.perf_counter() - t0, 1),
        "log": log,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="scene folders (every frame is used)")
    p.add_argument("--out", type=Path, required=True, help="JSON of every pilot's log")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--steps", type=int, default=150, help="steps per pilot (the poly decay runs over 600)")
    p.add_argument("--seconds", type=float, default=55.0, help="wall-time cap per pilot")
    p.add_argument("--every", type=int, default=10, help="log every this many steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batch order and crops")
    p.add_argument(
        "--set", default="{}", help='JSON of PretrainConfig fields applied to every config, e.g. {"lr": 1e-4}'
    )
    a = p.parse_args(argv)
    data = PretrainFrames(a.data)
    record = {"data": [str(d) for d in a.data], "frames": len(data), "seed": a.seed, "set": json.loads(a.set)}
    record["pilots"] = {}
    for name in a.configs:
        print(f"{name}: {CONFIGS[name]}", flush=True)
        overrides = dict(CONFIGS[name], seed=a.seed, **json.loads(a.set))
        record["pilots"][name] = pilot(data, overrides, a.steps, a.seconds, a.every, a.threads)
        atomic_write_json(a.out, record)
    return record


if __name__ == "__main__":
    main()
