"""The lifted methods of the study: shared fields fitted once per scene, then one instance phase per method.

Protocol of Contrastive Lift, Sec. 5 on Messy Rooms: density, colour and semantics are fitted ONCE per scene and shared;
every method then trains only its own instance field on top of the frozen shared fields (paper Table 6: "we only
optimise the instance embedding field with associated losses, while the density/colour/semantic fields are
frozen"), is decoded (clustering, or argmax for linear assignment) and scored on the test views.

- :func:`fit_shared_fields`: the base run (``losses.instance_weight = 0``; segment consistency kept, it trains the
  shared semantic field) -> ``RUN/checkpoints/latest.pt``; resumable.
- :func:`method_trainer`: a :class:`~lift3d.engine.trainer.Trainer` for one method with the shared fields loaded
  and a fresh, seeded instance field.
- :func:`fit_and_score_method`: instance phase (timed step by step), decoding from training views only, test-view
  render, PQ^scene / per-frame PQ / mIoU.
- :func:`interleaved_throughput`: instance-phase iterations per second of several (scene, method) trainers, measured
  in short blocks taken round-robin so that background load on a shared machine hits every entry alike.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from lift3d.config_io import config_to_dict
from lift3d.data.rays import load_pixel_set
from lift3d.data.scene import Scene
from lift3d.engine.checkpoint import fit_config_from_dict, load_checkpoint
from lift3d.engine.config import FitConfig
from lift3d.engine.inference import render_pixel_set
from lift3d.engine.run_dir import RunDir
from lift3d.engine.trainer import Trainer
from lift3d.io.atomic import atomic_write_json
from lift3d.pipeline import cluster_from_training_views, score_segments
from lift3d.presets import get_preset

__all__ = [
    "METHOD_PRESETS",
    "method_config",
    "num_slots_for",
    "fit_shared_fields",
    "method_trainer",
    "fit_and_score_method",
    "interleaved_throughput",
    "robust_rate",
    "thing_scored",
    "shared_fit_key",
    "stored_shared_fit_key",
    "write_json_atomic",
]

METHOD_PRESETS = {
    "slow-fast": "contrastive-lift",
    "no-concentration": "contrastive-lift-no-concentration",
    "vanilla": "vanilla",
    "vanilla-concentration": "vanilla-concentration",
    "linear-assignment": "panoptic-lifting",
    "associative-embedding": "associative-embedding",
    "margin": "margin",
    "dino": "dino",
}
"""Study method name -> the paper-size preset whose instance objective (``losses.instance_loss`` and
``losses.concentration_weight``) the method uses; everything else comes from the study's base preset."""


def num_slots_for(num_objects: int, max_segments_per_view: int, margin: float) -> int:
    """K of the linear-assignment field: an upper bound on the objects of the scene.

    ``K = ceil((1 + margin) * max(N, S))`` with ``N`` the objects dropped into the scene (an upper bound on those
    that survive physics) and ``S`` the most 2D segments in one training image (the loss matches at most K
    segments per image). PanopLi uses a fixed K = 500 on Messy Rooms; here K grows with the scene, as the slot
    count of paper Table 6 does.
    """
    return int(math.ceil((1.0 + margin) * max(int(num_objects), int(max_segments_per_view))))


def method_config(base: FitConfig, method: str, num_slots: int, embedding_dim: Optional[int] = None) -> FitConfig:
    """``base`` with the instance objective of ``method`` (see :data:`METHOD_PRESETS`).

    Linear assignment outputs ``num_slots`` logits (``losses.num_slots = K``); every other method keeps the
    base embedding size unless ``embedding_dim`` is given (the embedding-size sweep, paper Fig. 5).
    """
    if method not in METHOD_PRESETS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHOD_PRESETS)}")
    cfg = copy.deepcopy(base)
    src = get_preset(METHOD_PRESETS[method]).losses
    cfg.losses.instance_loss = src.instance_loss
    cfg.losses.concentration_weight = src.concentration_weight
    cfg.losses.num_slots = int(num_slots)  # read only by linear assignment
    if embedding_dim is not None:
        cfg.model.embedding_dim = int(embedding_dim)
    return cfg


def write_json_atomic(path: Path, obj) -> None:
    """``obj`` as indented JSON in ``path``, written beside it and renamed (a reader never sees half a file)."""
    atomic_write_json(path, obj)


_DECODE_ONLY = ("cluster", "cluster_views", "sweep_sizes", "render_chunk", "checkpoint_every")
_INSTANCE_ONLY_LOSSES = (
    "instance_loss",
    "kernel",
    "kernel_bandwidth",
    "concentration_weight",
    "concentration_form",
    "margin_positive",
    "margin_negative",
    "dino_prototypes",
    "num_slots",
    "instance_start",
)
_INSTANCE_ONLY_MODEL = ("instance", "embedding_dim", "ema_momentum")


def shared_fit_key(shared_cfg: FitConfig) -> dict:
    """The part of a shared-fields configuration (``instance_weight = 0``) that the shared fit depends on: the
    config as a dict without decoding settings and without what only the instance objective or field reads
    (the instance field is never loaded from the shared checkpoint)."""
    return _shared_fit_key_of_dict(config_to_dict(shared_cfg))


def _shared_fit_key_of_dict(d: dict) -> dict:
    d = json.loads(json.dumps(d))
    for k in _DECODE_ONLY:
        d.pop(k, None)
    for k in _INSTANCE_ONLY_LOSSES:
        d["losses"].pop(k, None)
    for k in _INSTANCE_ONLY_MODEL:
        d["model"].pop(k, None)
    d["optim"].pop("lr_instance", None)
    d.pop("threads", None)  # how many CPU threads ran it, not what was fitted
    return d


def shared_fields_config(fit: FitConfig) -> FitConfig:
    """The shared fit's configuration for a method's ``fit``: no instance loss, and the image step of the segment
    consistency loss as the paper's (one image per step, pixels uniform over it) whatever the method's instance
    steps use (``optim.instance_images`` / ``instance_pixel_sampling`` are instance-phase settings here)."""
    import dataclasses

    return dataclasses.replace(
        fit,
        losses=dataclasses.replace(fit.losses, instance_weight=0.0),
        optim=dataclasses.replace(fit.optim, instance_images=1, instance_pixel_sampling="image"),
    )


def fit_shared_fields(scene: Scene, shared_cfg: FitConfig, run_dir: Path, log: Callable = print) -> dict:
    """Fit density, colour and semantics once (``shared_cfg`` must have ``losses.instance_weight = 0``).

    Resumes an interrupted fit; returns (and caches in ``RUN/fit.json``) the fit summary.
    """
    if shared_cfg.losses.instance_weight != 0:
        raise ValueError(
            "fit_shared_fields: the shared fields are fitted without an instance objective; set "
            "losses.instance_weight=0 in the base configuration."
        )
    run_dir = Path(run_dir)
    done = RunDir(run_dir).fit_summary
    record = {"scene": str(Path(scene.root).resolve()), "config": config_to_dict(shared_cfg)}
    stored = RunDir(run_dir).config
    if stored.exists() and stored_shared_fit_key(stored) != [record["scene"], shared_fit_key(shared_cfg)]:
        # another scene or configuration: its checkpoint and summary must not be reused
        log(f"{run_dir}: fitted with another configuration or scene; fitting again")
        shutil.rmtree(run_dir)
    if done.exists():
        return json.loads(done.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stored, record)
    trainer = Trainer(scene, shared_cfg, run_dir, progress=True, log=log)
    summary = trainer.fit(resume=True)
    summary["device"] = trainer.device
    write_json_atomic(done, summary)
    return summary


def stored_shared_fit_key(path: Path) -> list:
    """``[scene, shared_fit_key]`` of a shared run's ``config.json``."""
    rec = json.loads(path.read_text())
    if "config" not in rec:
        return [rec.get("scene"), None]
    # through the config class: settings added since the run was recorded take their defaults
    return [rec.get("scene"), _shared_fit_key_of_dict(config_to_dict(fit_config_from_dict(rec["config"])))]


def _load_shared_fields(trainer: Trainer, base_run: Path) -> None:
    """Copy every field of the base run except the instance field (and training-only heads) into ``trainer``."""
    ckpt_path = RunDir(base_run).latest_checkpoint
    ckpt = load_checkpoint(ckpt_path, trainer.device)  # plain data only (weights_only): no code from the file
    state = ckpt["model"]
    if not np.allclose(np.asarray(ckpt["aabb"]), trainer.aabb, atol=1e-5):
        raise ValueError(
            f"{ckpt_path}: its box {ckpt['aabb']} differs from the scene's {trainer.aabb.tolist()}; the "
            "base run was fitted on another scene. Delete the study's work folder for this scene."
        )
    grid = getattr(trainer.model.radiance, "density_grid", None)
    key = "radiance.density_grid.planes.0"
    if grid is not None and key in state and state[key].shape[-1] != grid.resolution:
        trainer.model.radiance.upsample(int(state[key].shape[-1]))  # the base fit ended on an upsampled grid
    private = ("instance.", "dino_")
    missing, unexpected = trainer.model.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith(private)}, strict=False
    )
    missing = [k for k in missing if not k.startswith(private)]
    if missing or unexpected:
        raise ValueError(
            f"{ckpt_path}: the shared fields do not fit the method's model (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}); the base and method configs must differ only in the "
            "instance objective."
        )
    if trainer.model.occupancy is not None and ckpt.get("occupancy") is not None:
        trainer.model.occupancy.load_state_dict(
            {k: (v.to(trainer.device) if torch.is_tensor(v) else v) for k, v in ckpt["occupancy"].items()}
        )


def method_trainer(scene: Scene, cfg: FitConfig, base_run: Path, run_dir: Path, log: Callable = print) -> Trainer:
    """A trainer for one method: the base run's shared fields, a fresh instance field seeded by ``cfg.seed``."""
    trainer = Trainer(scene, cfg, run_dir, progress=False, log=log)
    _load_shared_fields(trainer, base_run)
    torch.manual_seed(cfg.seed)  # every method starts its instance field from the same seed
    trainer.reset_instance_field()
    return trainer


def robust_rate(step_seconds: Sequence[float], warmup: int) -> dict:
    """Iterations per second from per-step wall times, the first ``warmup`` steps left out.

    ``mean``: steps / total time (what a progress bar shows); ``median``: 1 / median step time, which a burst of
    load from other processes on a shared machine barely moves.
    """
    t = np.asarray(step_seconds[warmup:] if len(step_seconds) > warmup else step_seconds, dtype=np.float64)
    if t.size == 0 or t.sum() <= 0:
        return {"mean": float("nan"), "median": float("nan")}
    return {"mean": round(float(t.size / t.sum()), 3), "median": round(float(1.0 / np.median(t)), 3)}


def fit_and_score_method(
    scene: Scene, cfg: FitConfig, base_run: Path, run_dir: Path, steps: int, log: Callable = print, label: str = ""
) -> dict:
    """Instance phase of one method (``steps`` timed :meth:`Trainer.train_instance_step`), decoding from training
    views only (clusters or argmax slots are written to ``run_dir``), test-view render and scores."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        RunDir(run_dir).config,
        {"scene": str(Path(scene.root).resolve()), "base_run": str(base_run), "config": config_to_dict(cfg)},
    )
    t_start = time.perf_counter()
    trainer = method_trainer(scene, cfg, base_run, run_dir, log=log)
    step_seconds, every, running = [], max(steps // 5, 1), {}
    for s in range(steps):
        t0 = time.perf_counter()
        logs = trainer.train_instance_step()
        step_seconds.append(time.perf_counter() - t0)
        for k, v in logs.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        if (s + 1) % every == 0 or s + 1 == steps:
            rate = (s + 1) / max(sum(step_seconds), 1e-9)
            log(
                f"  {label} instance step {s + 1}/{steps} {rate:.1f} it/s ETA {(steps - s - 1) / max(rate, 1e-9):.0f} s  "
                + " ".join(f"{k}={v:.3g}" for k, v in running.items())
            )
    t_train = time.perf_counter() - t_start
    t0 = time.perf_counter()
    labeler, info = cluster_from_training_views(trainer.model, scene, cfg, run_dir, log=lambda m: log(f"  {label} {m}"))
    t_cluster = time.perf_counter() - t0
    t0 = time.perf_counter()
    views = list(scene.test_indices)
    renders = render_pixel_set(trainer.model, load_pixel_set(scene, views), cfg.render_chunk)
    inst = [
        np.asarray(
            labeler.label(
                r.semantic.reshape(-1), r.embedding.reshape(-1, r.embedding.shape[-1]), r.position.reshape(-1, 3)
            )
        ).reshape(r.semantic.shape)
        for r in renders
    ]
    t_render = time.perf_counter() - t0
    scores = score_segments(scene, views, [r.semantic for r in renders], inst, [r.rgb for r in renders])
    scores["thing_scored"] = thing_scored(scene, scores)
    rate = robust_rate(step_seconds, warmup=min(5, steps // 10))
    out = {
        **scores,
        "instance_steps": steps,
        "embedding_dim": trainer.objective.output_dim,
        "instance_it_per_s_mean": rate["mean"],
        "instance_it_per_s_median": rate["median"],
        "final_losses": {k: round(float(v), 5) for k, v in running.items()},
        "min_cluster_size": info.get("min_cluster_size"),
        "num_clusters": info.get("num_clusters"),
        "seconds_instance_phase": round(t_train, 2),
        "seconds_decode": round(t_cluster, 2),
        "seconds_render_test": round(t_render, 2),
    }
    write_json_atomic(RunDir(run_dir).metrics, out)
    return out


def thing_scored(scene: Scene, scores: dict) -> bool:
    """Whether PQ^scene scored any thing class. The small-class rule drops a class present in the prediction with
    < 0.5% of the pixels: such a prediction is then scored on stuff alone (and can reach PQ 1); a prediction
    without any thing pixel keeps the class and its objects are false negatives."""
    return any(str(c) in scores.get("per_class", {}) for c in scene.thing_ids)


def interleaved_throughput(trainers: dict, rounds: int, block: int, warmup: int = 3, log: Callable = print) -> dict:
    """Instance-phase it/s of every trainer in ``trainers`` (key -> Trainer), measured round-robin.

    Each trainer first runs ``warmup`` untimed steps; then, ``rounds`` times, every trainer in turn runs ``block``
    timed steps. The rate of a key is the median over rounds of ``block / block seconds`` (paper Table 6 reports
    mean +- std over its iterations; the per-round rates are kept for that). Returns
    ``{key: {"it_per_s": median, "mean": ..., "std": ..., "rounds": [...]}}``.
    """
    for t in trainers.values():
        for _ in range(warmup):
            t.train_instance_step()
    per = {k: [] for k in trainers}
    for r in range(rounds):
        for k, t in trainers.items():
            t0 = time.perf_counter()
            for _ in range(block):
                t.train_instance_step()
            per[k].append(block / max(time.perf_counter() - t0, 1e-9))
        log(f"  throughput round {r + 1}/{rounds}: " + ", ".join(f"{k}={v[-1]:.1f}" for k, v in per.items()))
    return {
        k: {
            "it_per_s": round(float(np.median(v)), 3),
            "mean": round(float(np.mean(v)), 3),
            "std": round(float(np.std(v)), 3),
            "rounds": [round(float(x), 3) for x in v],
        }
        for k, v in per.items()
    }
