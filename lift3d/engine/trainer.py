"""Per-scene fitting: the loss schedule, optimisers, EMA of the slow field, progress and atomic checkpoints.

One iteration:
1. ``rays_per_batch`` random pixels over all training views -> photometric loss (+ depth loss when the scene has
   depth; + semantic cross-entropy after ``semantic_start``).
2. after ``instance_start``: ONE random training image, up to ``instance_pixels`` of its pixels that carry a 2D
   segment. Their weights are computed without gradient (instance/segment losses never reach density). The
   thing-segment pixels are split at random into a fast half and a slow half (paper 004 Eq. 4); pairs only
   ever form within that image. After the step the slow field follows the fast one by EMA.
3. after ``segment_consistency_start``: Panoptic Lifting's segment consistency on the same image's pixels.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from lift3d.data.rays import PixelSet, load_pixel_set, scene_bounds
from lift3d.data.scene import Scene
from lift3d.engine.config import FitConfig
from lift3d.fields.heads import ema_update
from lift3d.losses import (associative_embedding_loss, concentration_loss, linear_assignment_loss,
                           margin_contrastive_loss, photometric_loss, segment_consistency_loss, semantic_loss,
                           slow_fast_contrastive_loss, split_fast_slow, vanilla_contrastive_loss)
from lift3d.losses.dino import DinoHead, dino_loss
from lift3d.models import LiftModel

__all__ = ["Trainer", "resolve_device", "save_checkpoint", "load_model", "config_to_dict", "config_from_dict"]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device cpu.")
    return name


def config_to_dict(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def config_from_dict(cls, d: dict):
    """Rebuild a (nested) dataclass config from :func:`config_to_dict` output (unknown keys are ignored, so runs
    written by an older lift3d still load; JSON lists become tuples where the field's default is a tuple)."""
    defaults = cls()
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        default, value = getattr(defaults, f.name), d[f.name]
        if dataclasses.is_dataclass(default):
            kwargs[f.name] = config_from_dict(type(default), value)
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[f.name] = tuple(value)
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary file, then rename: a checkpoint is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_model(run_dir: Path, device: str = "cpu") -> tuple[LiftModel, FitConfig, dict]:
    """The fitted model of a run folder (``checkpoints/latest.pt`` + ``config.json``)."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoints" / "latest.pt"
    if not ckpt_path.exists():
        raise FileNotFoundError(f"{ckpt_path}: no checkpoint; run `lift3d fit DATA --out {run_dir}` first.")
    ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
    cfg = config_from_dict(FitConfig, ckpt["config"])
    model = LiftModel(cfg.model, ckpt["num_classes"], np.asarray(ckpt["aabb"]), device)
    _resize_grids(model, ckpt["model"])
    # Training-only modules (the DINO baseline's projection heads) are not part of the rendered model.
    model.load_state_dict({k: v for k, v in ckpt["model"].items() if not k.startswith("dino_")})
    if model.occupancy is not None and ckpt.get("occupancy") is not None:
        model.occupancy.load_state_dict({k: (v.to(device) if torch.is_tensor(v) else v) for k, v in ckpt["occupancy"].items()})
    return model.to(device), cfg, ckpt


def _resize_grids(model: LiftModel, state: dict) -> None:
    """A checkpoint saved after a TensoRF upsample has larger planes: grow the fresh model to match."""
    key = "radiance.density_grid.planes.0"
    if key in state and state[key].shape[-1] != getattr(model.radiance, "density_grid", None).resolution:
        model.radiance.upsample(int(state[key].shape[-1]))


class Trainer:
    """Fits a :class:`LiftModel` to a scene; see the module docstring for one iteration."""

    def __init__(self, scene: Scene, cfg: FitConfig, run_dir: Path, progress: bool = True, log=print):
        self.scene, self.cfg, self.run_dir = scene, cfg, Path(run_dir)
        self.progress, self.log = progress, log
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.train = load_pixel_set(scene, scene.train_indices)
        self.aabb = scene_bounds(scene, self.train)
        self.model = LiftModel(cfg.model, scene.num_classes, self.aabb, self.device).to(self.device)
        if cfg.losses.instance_loss == "dino":
            # Projection heads of the DINO-style baseline: the fast one is trained, the slow one follows by EMA.
            self.model.dino_fast = DinoHead(cfg.model.embedding_dim, num_prototypes=cfg.losses.dino_prototypes)
            self.model.dino_slow = DinoHead(cfg.model.embedding_dim, num_prototypes=cfg.losses.dino_prototypes)
            self.model.dino_slow.load_state_dict(self.model.dino_fast.state_dict())
            for p in self.model.dino_slow.parameters():
                p.requires_grad_(False)
        self.thing_ids = torch.tensor(scene.thing_ids)
        # Pixels usable for instance/segment losses, grouped by view.
        seg_valid = self.train.instance > 0
        self.view_segment_rows = [r[seg_valid[r]] for r in (self.train.view_rows(p) for p in range(self.train.num_views))]
        self.instance_views = [p for p, r in enumerate(self.view_segment_rows) if r.numel() >= 8]
        if cfg.losses.instance_loss == "linear-assignment":
            most = max(int(torch.unique(self.train.instance[r]).numel()) for r in self.view_segment_rows)
            if most > cfg.model.embedding_dim:
                log(f"warning: a training image has {most} 2D segments but the linear-assignment field has only "
                    f"K = {cfg.model.embedding_dim} slots; the smallest segments are ignored. K must bound the number "
                    "of objects: raise it with --set model.embedding_dim=K.")
        self._make_optimisers()
        self.step = 0
        self.history: list[dict] = []

    # ------------------------------------------------------------------ setup
    def _make_optimisers(self) -> None:
        m, o = self.model, self.cfg.optim
        self.opt_field = torch.optim.Adam([
            {"params": m.radiance.grid_parameters(), "lr": o.lr_grid},
            {"params": m.radiance.network_parameters(), "lr": o.lr_network},
            {"params": m.semantic.network_parameters(), "lr": o.lr_network},
            {"params": m.semantic.grid_parameters(), "lr": o.lr_head_grid},
        ] + ([{"params": list(m.background_mlp.parameters()), "lr": o.lr_network}] if m.background_mlp is not None else []),
            betas=(0.9, 0.99))
        inst_params = m.instance.fast.network_parameters()
        if getattr(m, "dino_fast", None) is not None:
            inst_params += list(m.dino_fast.parameters())
        self.opt_instance = torch.optim.Adam([
            {"params": inst_params, "lr": o.lr_instance},
            {"params": m.instance.fast.grid_parameters(), "lr": o.lr_head_grid},
        ], betas=(0.9, 0.99))
        self.base_lrs = [[g["lr"] for g in opt.param_groups] for opt in (self.opt_field, self.opt_instance)]

    def _set_lr(self) -> None:
        frac = self.step / max(self.cfg.optim.iterations, 1)
        factor = self.cfg.optim.lr_decay_final ** frac
        for opt, lrs in zip((self.opt_field, self.opt_instance), self.base_lrs):
            for g, lr in zip(opt.param_groups, lrs):
                g["lr"] = lr * factor

    def _upsample_if_due(self) -> None:
        r = self.cfg.model.radiance
        if r.backbone != "tensorf" or self.step not in r.upsample_steps:
            return
        k = list(r.upsample_steps).index(self.step) + 1
        n = len(r.upsample_steps)
        res = int(round(math.exp(math.log(r.grid_resolution) + (math.log(r.final_grid_resolution)
                                                                   - math.log(r.grid_resolution)) * k / n)))
        self.model.radiance.upsample(res)
        self._make_optimisers()  # the grid parameters are new tensors

    # ------------------------------------------------------------------ checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoints" / "latest.pt"

    def save(self) -> None:
        occ = self.model.occupancy.state_dict() if self.model.occupancy is not None else None
        save_checkpoint(self.ckpt_path, {
            "step": self.step, "config": config_to_dict(self.cfg), "model": self.model.state_dict(),
            "occupancy": occ, "opt_field": self.opt_field.state_dict(), "opt_instance": self.opt_instance.state_dict(),
            "num_classes": self.scene.num_classes, "aabb": self.aabb.tolist(), "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(), "history": self.history, "scene": str(self.scene.root),
        })

    def resume(self) -> bool:
        if not self.ckpt_path.exists():
            return False
        ckpt = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
        _resize_grids(self.model, ckpt["model"])
        self.model.load_state_dict(ckpt["model"])
        self._make_optimisers()
        self.opt_field.load_state_dict(ckpt["opt_field"])
        self.opt_instance.load_state_dict(ckpt["opt_instance"])
        if ckpt.get("occupancy") is not None and self.model.occupancy is not None:
            self.model.occupancy.load_state_dict(ckpt["occupancy"])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.step, self.history = ckpt["step"], ckpt.get("history", [])
        return True

    # ------------------------------------------------------------------ one iteration
    def _background(self, n: int) -> torch.Tensor:
        mode = self.cfg.optim.background
        if mode == "black":
            return torch.zeros(3)
        if mode == "white":
            return torch.ones(3)
        return (torch.rand(1, generator=self.generator) < 0.5).float().expand(3)

    def train_step(self) -> dict:
        cfg, lc, tr, model = self.cfg, self.cfg.losses, self.train, self.model
        self._upsample_if_due()
        self._set_lr()
        o = cfg.optim
        if model.occupancy is not None and self.step >= o.occupancy_warmup and (self.step - o.occupancy_warmup) % o.occupancy_update_every == 0:
            model.update_occupancy()
        logs: dict[str, float] = {}

        # 1. random rays: photometric (+ depth, + semantic)
        rows = torch.randint(0, tr.rgb.shape[0], (o.rays_per_batch,), generator=self.generator)
        origins, dirs = tr.rays(rows)
        depth = tr.depth[rows] if tr.depth is not None else None
        bg = self._background(rows.shape[0])
        samples = model.sample_rays(origins, dirs, depth, train=True, with_color=True, background=bg)
        loss = photometric_loss(samples.rgb, tr.rgb[rows])
        logs["rgb"] = float(loss.detach())
        if depth is not None and lc.depth_weight > 0:
            valid = depth > 0
            end = model.to_cube(origins + dirs * depth[:, None])
            inside = valid & (end.abs() <= 1.0).all(-1)  # the surface seen lies in the modelled box
            if inside.any():
                d_err = (samples.depth[inside] - depth[inside]) / model.scene_scale
                d_loss = (d_err ** 2).mean()
                loss = loss + lc.depth_weight * d_loss
                logs["depth"] = float(d_loss.detach())
            if valid.any():
                if lc.free_space_weight > 0:
                    fs = self._free_space_loss(samples, dirs[valid], depth[valid], valid)
                    loss = loss + lc.free_space_weight * fs
                    logs["fs"] = float(fs.detach())
        if self.step >= lc.semantic_start and lc.semantic_weight > 0:
            log_probs = model.render_semantic(samples)
            s_loss = semantic_loss(log_probs, tr.semantic[rows], tr.confidence[rows])
            loss = loss + lc.semantic_weight * s_loss
            logs["sem"] = float(s_loss.detach())
        self.opt_field.zero_grad(set_to_none=True)
        loss.backward()

        # 2./3. one image: instance and segment-consistency losses (density without gradient)
        inst_on = self.step >= lc.instance_start and lc.instance_weight > 0
        seg_on = self.step >= lc.segment_consistency_start and lc.segment_consistency_weight > 0
        self._image_step(inst_on, seg_on, logs)
        self.opt_field.step()
        self.step += 1
        return logs

    def _image_step(self, inst_on: bool, seg_on: bool, logs: dict) -> None:
        """One training image's pixels: segment consistency (gradient into the semantic field, applied by the
        caller's field optimiser step) and the instance objective (its own optimiser step + EMA of the slow field)."""
        if not (inst_on or seg_on) or not self.instance_views:
            return
        lc, o, tr, model = self.cfg.losses, self.cfg.optim, self.train, self.model
        view = self.instance_views[int(torch.randint(len(self.instance_views), (1,), generator=self.generator))]
        cand = self.view_segment_rows[view]
        pick = cand[torch.randperm(cand.numel(), generator=self.generator)[: o.instance_pixels]]
        o2, d2 = tr.rays(pick)
        dp = tr.depth[pick] if tr.depth is not None else None
        with torch.no_grad():
            img_samples = model.sample_rays(o2, d2, dp, train=True, with_color=False, density_grad=False)
        if seg_on:
            lp = model.render_semantic(img_samples)
            sc = segment_consistency_loss(lp, tr.instance[pick])
            (lc.segment_consistency_weight * sc).backward()
            logs["seg"] = float(sc.detach())
        if inst_on:
            is_thing = torch.isin(tr.semantic[pick], self.thing_ids)
            thing_rows = is_thing.nonzero().squeeze(-1)
            if thing_rows.numel() >= 4:
                inst_loss = self._instance_loss(img_samples, thing_rows, tr.instance[pick][thing_rows],
                                                tr.confidence[pick][thing_rows], logs)
                self.opt_instance.zero_grad(set_to_none=True)
                (lc.instance_weight * inst_loss).backward()
                self.opt_instance.step()
                model.instance.update_slow()
                if getattr(model, "dino_fast", None) is not None:
                    ema_update(model.dino_slow, model.dino_fast, model.instance.momentum)

    def train_instance_step(self) -> dict:
        """One step of the instance objective alone, every other field frozen (paper 004 Sec. 5 on Messy Rooms:
        density, colour and semantics are fitted once and shared; each method then trains only its instance
        field). This is the step whose rate paper Table 6 reports."""
        logs: dict[str, float] = {}
        self._image_step(True, False, logs)
        self.step += 1
        return logs

    def reset_instance_field(self) -> None:
        """Fresh fast/slow instance fields (and heads) for the current config, with a new optimiser."""
        from lift3d.fields.heads import InstanceField

        m = self.model
        m.instance = InstanceField(self.cfg.model.instance, self.cfg.model.embedding_dim, self.cfg.model.ema_momentum)
        self._make_optimisers()

    def _free_space_loss(self, samples, dirs: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Line-of-sight loss: :math:`\\frac{1}{R}\\sum_r \\sum_{i: |t_i - D_r| \\|d_r\\| > b} w_{ri}` with b =
        ``depth_band`` times the scene scale (world units). [R] rays with valid depth."""
        band = self.cfg.model.depth_band * self.model.scene_scale
        dist = (samples.t[valid] - depth[:, None]).abs() * dirs.norm(dim=-1, keepdim=True)
        return (samples.weights[valid] * (dist > band)).sum(-1).mean()

    def _instance_loss(self, samples, rows: torch.Tensor, ids: torch.Tensor, conf: torch.Tensor, logs: dict) -> torch.Tensor:
        lc, model = self.cfg.losses, self.model
        kind = lc.instance_loss
        if kind in ("vanilla", "associative-embedding", "margin", "linear-assignment"):
            emb = model.render_embedding(samples, rows)
            if kind == "vanilla":
                loss = vanilla_contrastive_loss(emb, ids)
            elif kind == "associative-embedding":
                loss = associative_embedding_loss(emb, ids)
            elif kind == "margin":
                loss = margin_contrastive_loss(emb, ids, pos_margin=lc.margin_positive, neg_margin=lc.margin_negative)
            else:
                # Panoptic Lifting: rendered (weighted-sum) logits of K slots, Hungarian matching per image.
                loss, _ = linear_assignment_loss(emb, ids, confidence=conf)
            logs["inst"] = float(loss.detach())
            if kind == "vanilla" and lc.concentration_weight > 0:
                # paper Table 3 "vanilla + concentration": fast embeddings pulled to their own detached means
                conc = concentration_loss(emb, ids, emb.detach(), ids, confidence=conf, form=lc.concentration_form)
                logs["conc"] = float(conc.detach())
                loss = loss + lc.concentration_weight * conc
            return loss
        fast_idx, slow_idx = split_fast_slow(rows.numel(), self.generator)
        if kind == "dino":
            f = model.render_embedding(samples, rows[fast_idx])
            s = model.render_embedding(samples, rows[slow_idx], slow=True)
            loss, batch_center = dino_loss(f, ids[fast_idx], s, ids[slow_idx], model.dino_fast, model.dino_slow)
            model.dino_slow.update_center(batch_center, momentum=model.instance.momentum)
            logs["inst"] = float(loss.detach())
            return loss
        f = model.render_embedding(samples, rows[fast_idx])
        s = model.render_embedding(samples, rows[slow_idx], slow=True)
        con = slow_fast_contrastive_loss(f, ids[fast_idx], s, ids[slow_idx], kernel=lc.kernel,
                                         bandwidth=lc.kernel_bandwidth)
        logs["con"] = float(con.detach())
        loss = con
        if lc.concentration_weight > 0:
            conc = concentration_loss(f, ids[fast_idx], s, ids[slow_idx], confidence=conf[fast_idx],
                                      form=lc.concentration_form)
            logs["conc"] = float(conc.detach())
            loss = loss + lc.concentration_weight * conc
        return loss

    def stage(self) -> str:
        """Names of the losses active at the current step, e.g. ``rgb+sem+inst``."""
        lc = self.cfg.losses
        parts = ["rgb"]
        for name, start, weight in (("sem", lc.semantic_start, lc.semantic_weight),
                                    ("inst", lc.instance_start, lc.instance_weight),
                                    ("seg", lc.segment_consistency_start, lc.segment_consistency_weight)):
            if self.step >= start and weight > 0:
                parts.append(name)
        return "+".join(parts)

    # ------------------------------------------------------------------ loop
    def fit(self, resume: bool = False) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.resume():
            self.log(f"resumed from {self.ckpt_path} at iteration {self.step}")
        total = self.cfg.optim.iterations
        t0 = time.perf_counter()
        start_step = self.step
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = [TextColumn("[bold]fit[/] {task.fields[stage]:<17}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[rate]:>6} it/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                   TextColumn("{task.fields[losses]}")]
        running: dict[str, float] = {}
        import sys

        live = self.progress and sys.stdout.isatty()
        line_every = max(total // 10, 1)  # without a terminal: a plain progress line every 10%
        with Progress(*columns, disable=not live, transient=False) as bar:
            task = bar.add_task("fit", total=total, completed=self.step, stage=self.stage(), rate="-", losses="")
            while self.step < total:
                logs = self.train_step()
                for k, v in logs.items():
                    running[k] = 0.9 * running.get(k, v) + 0.1 * v
                if self.step % 10 == 0 or self.step == total:
                    rate = (self.step - start_step) / max(time.perf_counter() - t0, 1e-9)
                    bar.update(task, completed=self.step, stage=self.stage(), rate=f"{rate:.1f}",
                               losses=" ".join(f"{k}={v:.3g}" for k, v in running.items()))
                if self.progress and not live and (self.step % line_every == 0 or self.step == total):
                    rate = (self.step - start_step) / max(time.perf_counter() - t0, 1e-9)
                    eta = (total - self.step) / max(rate, 1e-9)
                    self.log(f"fit {self.step}/{total} [{self.stage()}] {rate:.1f} it/s ETA {eta:.0f} s  "
                             + " ".join(f"{k}={v:.3g}" for k, v in running.items()))
                if self.step % 50 == 0 or self.step == total:
                    self.history.append({"step": self.step, **{k: round(v, 5) for k, v in running.items()}})
                if self.step % self.cfg.checkpoint_every == 0 or self.step == total:
                    self.save()
        elapsed = time.perf_counter() - t0
        summary = {"iterations": total, "seconds": round(elapsed, 2),
                   "iterations_per_second": round((total - start_step) / max(elapsed, 1e-9), 2),
                   "final_losses": {k: round(v, 5) for k, v in running.items()}}
        return summary
