"""Per-scene fitting: the training loop (loss schedule, optimisers, progress, checkpoints every few steps).

One iteration:
1. ``rays_per_batch`` random pixels over all training views -> photometric loss (+ depth loss when the scene has
   depth, on the rays whose depth is known; + semantic cross-entropy after ``semantic_start``).
2. after ``instance_start``: ONE random training image (``instance_images`` of them), up to ``instance_pixels``
   of its pixels that carry a 2D segment (uniformly, or evenly over its segments: ``instance_pixel_sampling``). Their weights are computed without gradient (instance/segment losses never reach density). The
   image's thing pixels go to the instance objective (:mod:`lift3d.objectives`, chosen by
   ``losses.instance_loss``; e.g. split at random into a fast and a slow half, Contrastive Lift (Bhalgat et al.
   2023), Eq. 4); pairs only ever form within that image. After the step the objective's hook runs (the slow
   field follows the fast one by EMA).
3. after ``segment_consistency_start``: Panoptic Lifting's segment consistency on the same image's pixels.

Pixels a frame's mask excludes (``PixelSet.valid``) are never drawn, so they enter no loss.

After every step the trainer calls its step callbacks (:class:`StepInfo`), e.g. a viewer's; checkpoints are
handled by :mod:`lift3d.engine.checkpoint`, file names by :mod:`lift3d.engine.run_dir`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from lift3d.backends import resolve_backends
from lift3d.data.rays import describe_inputs, load_pixel_set, scene_bounds
from lift3d.data.scene import Scene, SceneFormatError
from lift3d.engine.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from lift3d.engine.config import FitConfig
from lift3d.engine.run_dir import RunDir
from lift3d.losses import photometric_loss, segment_consistency_loss, semantic_loss, semantic_ray_weights
from lift3d.losses.depth import depth_share, expected_depth_loss, line_of_sight_loss
from lift3d.models import LiftModel
from lift3d.models.lift_model import resolve_scene_contraction
from lift3d.objectives import InstanceBatch, build_objective

__all__ = ["Trainer", "StepInfo", "StepCallback", "resolve_device"]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device cpu.")
    return name


#: the confidence-weighted semantic loss is flagged when the 2D input's mean confidence on thing pixels is below this
#: fraction of its mean on stuff pixels. Measured: detic-real at N = 500 (0.27 vs 0.53, a ratio of 0.51) rendered no
#: object; detic-like (0.54 vs 0.74, a ratio of 0.73) segments at every N with the paper's weights (studies in
#: docs/results/cpu-small and docs/results/ray-vs-serial), so it is not flagged.
CONFIDENCE_IMBALANCE_WARNING = 0.6


def describe_class_confidence(pixels, thing_ids, losses) -> list[str]:
    """The fit log's line on the 2D input's classes: share of thing pixels and mean confidence on thing and stuff
    pixels, with a warning when ``losses.semantic_confidence = segmenter`` and the segmenter is much less sure of its
    object masks than of the background (the weighted cross-entropy then pulls the field towards stuff; see
    :func:`lift3d.losses.semantic_ray_weights`). Empty when the scene has no thing class or no semantic loss."""
    if not thing_ids or losses.semantic_weight <= 0:
        return []
    is_thing = torch.isin(
        pixels.semantic, torch.as_tensor(sorted(thing_ids), dtype=pixels.semantic.dtype, device=pixels.semantic.device)
    )
    n_thing = int(is_thing.sum())
    n_stuff = int(is_thing.numel() - n_thing)
    if n_thing == 0 or n_stuff == 0:
        return []
    conf = pixels.confidence
    c_thing = float(conf[is_thing].mean())
    c_stuff = float(conf[~is_thing].mean())
    lines = [
        f"2D classes: {100 * n_thing / is_thing.numel():.3g}% thing pixels, mean confidence {c_thing:.2f} on things, "
        f"{c_stuff:.2f} on stuff; semantic loss weights: {losses.semantic_confidence}"
    ]
    if losses.semantic_confidence == "segmenter" and c_thing < CONFIDENCE_IMBALANCE_WARNING * c_stuff:
        lines.append(
            f"warning: the 2D segmenter is much less sure of its object pixels ({c_thing:.2f}) than of the stuff "
            f"({c_stuff:.2f}); the confidence-weighted semantic loss leans towards stuff and may render no object "
            "(docs/results/cpu-small-n500-real). Set losses.semantic_confidence=class-balanced to weigh classes alike."
        )
    return lines


@dataclass
class StepInfo:
    """What a step callback is told after every training step."""

    trainer: "Trainer"
    """The trainer (its model, config and run folder), to read from; a callback must not change it."""
    step: int
    """Number of steps taken so far, this one included (1 after the first step)."""
    total: int
    """``optim.iterations``, the step at which the fit ends."""
    kind: str
    """``"fit"`` (:meth:`Trainer.train_step`) or ``"instance"`` (:meth:`Trainer.train_instance_step`)."""
    stage: str
    """Losses active at this step, e.g. ``rgb+sem+inst``."""
    logs: dict
    """This step's loss values by name (``rgb``, ``depth``, ``fs``, ``sem``, ``seg``, ``con``, ``conc``, ``inst``)."""


StepCallback = Callable[[StepInfo], None]
"""Called with a :class:`StepInfo` after every training step."""


class Trainer:
    """Fits a :class:`LiftModel` to a scene; see the module docstring for one iteration."""

    def __init__(
        self,
        scene: Scene,
        cfg: FitConfig,
        run_dir: Path,
        progress: bool = True,
        log=print,
        callbacks: Iterable[StepCallback] = (),
    ):
        self.scene, self.cfg, self.run_dir = scene, cfg, Path(run_dir)
        self.run = RunDir(self.run_dir)
        self.progress, self.log = progress, log
        self.callbacks: list[StepCallback] = list(callbacks)
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
        torch.manual_seed(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.train_pixels = load_pixel_set(scene, scene.train_indices)
        # Rows the random batches draw from: None = every pixel (no frame has a mask).
        self.loss_rows = self.train_pixels.usable_rows() if self.train_pixels.valid is not None else None
        if self.loss_rows is not None and self.loss_rows.numel() == 0:
            raise SceneFormatError(
                f"{scene.root}: the masks (mask_path) of the training frames exclude every pixel; nothing is left to "
                "fit. Check the masks: 0 = excluded, non-zero = used."
            )
        self.aabb = scene_bounds(scene, self.train_pixels, override=cfg.model.aabb, log=log)
        box_given = scene.aabb is not None or cfg.model.aabb is not None
        cfg.model.scene_contraction = resolve_scene_contraction(cfg.model.scene_contraction, box_given)
        if cfg.model.scene_contraction != "none":
            log(f"scene contraction: {cfg.model.scene_contraction} (beyond the box, out to infinity, in a shell)")
        self.objective = build_objective(cfg.losses, cfg.model.embedding_dim)
        self.backends = resolve_backends(
            self.device, cfg.model.volume_rendering_backend, cfg.model.radiance.hash_implementation
        )
        log(self.backends.describe())
        for line in describe_inputs(self.train_pixels):
            log(line)
        for line in describe_class_confidence(self.train_pixels, scene.thing_ids, cfg.losses):
            log(line)
        self.model = LiftModel(
            cfg.model,
            scene.num_classes,
            self.aabb,
            self.device,
            instance_dim=self.objective.output_dim,
            backends=self.backends,
        ).to(self.device)
        self.objective.attach(self.model)  # the objective's own modules (e.g. DINO heads), after the fields
        self.model.to(self.device)
        self.thing_ids = torch.tensor(scene.thing_ids)
        # Pixels usable for instance/segment losses, grouped by view.
        seg_valid = self.train_pixels.instance > 0
        if self.train_pixels.valid is not None:
            seg_valid &= self.train_pixels.valid
        self.view_segment_rows = [
            rows[seg_valid[rows]]
            for rows in (self.train_pixels.view_rows(p) for p in range(self.train_pixels.num_views))
        ]
        self.instance_views = [p for p, rows in enumerate(self.view_segment_rows) if rows.numel() >= 8]
        is_thing = torch.isin(self.train_pixels.semantic, self.thing_ids)
        self.thing_views = [p for p in self.instance_views if int(is_thing[self.view_segment_rows[p]].sum()) >= 4]
        self._warn_missing_segments()
        self.objective.check_segments(
            [int(torch.unique(self.train_pixels.instance[rows]).numel()) for rows in self.view_segment_rows], log
        )
        self.make_optimisers()
        self.step = 0
        self.history: list[dict] = []

    def _warn_missing_segments(self) -> None:
        """Say so when the training frames' 2D segments cannot drive the instance (or segment) losses."""
        losses = self.cfg.losses
        wants_inst = losses.instance_weight > 0 and losses.instance_start < self.cfg.optim.iterations
        wants_seg = (
            losses.segment_consistency_weight > 0 and losses.segment_consistency_start < self.cfg.optim.iterations
        )
        if not self.instance_views and (wants_inst or wants_seg):
            self.log(
                f"WARNING: {self.scene.root}: no training frame carries 2D segments (instance ids > 0 on at least 8 "
                "pixels of a frame); the instance and segment-consistency losses cannot run, only rgb/depth/semantics "
                "are fitted and every pixel will get instance 0. Check the frames' instance_file_path maps "
                "(or import a segmenter's output with `lift3d segments import`)."
            )
        elif not self.thing_views and wants_inst:
            names = ", ".join(c.name for c in self.scene.classes if c.thing)
            self.log(
                f"WARNING: {self.scene.root}: the 2D segments of the training frames lie only on stuff classes "
                f"(no segment on a thing class: {names}); the instance loss cannot run. Check the frames' "
                "semantic_file_path maps and the 'thing' flags of 'classes' in transforms.json."
            )

    def add_callback(self, callback: StepCallback) -> None:
        """Call ``callback(StepInfo)`` after every step from now on."""
        self.callbacks.append(callback)

    def _notify(self, kind: str, logs: dict) -> None:
        if self.callbacks:
            info = StepInfo(self, self.step, self.cfg.optim.iterations, kind, self.stage(), logs)
            for callback in self.callbacks:
                callback(info)

    # ------------------------------------------------------------------ setup
    def make_optimisers(self) -> None:
        """The field optimiser (radiance, semantic, background) and the instance optimiser (the fast field and the
        objective's extra modules), at their base learning rates."""
        m, optim = self.model, self.cfg.optim
        self.opt_field = torch.optim.Adam(
            [
                {"params": m.radiance.grid_parameters(), "lr": optim.lr_grid},
                {"params": m.radiance.network_parameters(), "lr": optim.lr_network},
                {"params": m.semantic.network_parameters(), "lr": optim.lr_network},
                {"params": m.semantic.grid_parameters(), "lr": optim.lr_head_grid},
            ]
            + (
                [{"params": list(m.background_mlp.parameters()), "lr": optim.lr_network}]
                if m.background_mlp is not None
                else []
            ),
            betas=(0.9, 0.99),
        )
        inst_params = m.instance.fast.network_parameters() + self.objective.extra_parameters(m)
        self.opt_instance = torch.optim.Adam(
            [
                {"params": inst_params, "lr": optim.lr_instance},
                {"params": m.instance.fast.grid_parameters(), "lr": optim.lr_head_grid},
            ],
            betas=(0.9, 0.99),
        )
        self.base_lrs = [[g["lr"] for g in opt.param_groups] for opt in (self.opt_field, self.opt_instance)]

    def _set_lr(self) -> None:
        frac = self.step / max(self.cfg.optim.iterations, 1)
        factor = self.cfg.optim.lr_decay_final**frac
        for opt, lrs in zip((self.opt_field, self.opt_instance), self.base_lrs):
            for g, lr in zip(opt.param_groups, lrs):
                g["lr"] = lr * factor

    def _upsample_if_due(self) -> None:
        r = self.cfg.model.radiance
        if r.backbone != "tensorf" or self.step not in r.upsample_steps:
            return
        k = list(r.upsample_steps).index(self.step) + 1
        n = len(r.upsample_steps)
        res = int(
            round(
                math.exp(
                    math.log(r.grid_resolution)
                    + (math.log(r.final_grid_resolution) - math.log(r.grid_resolution)) * k / n
                )
            )
        )
        self.model.radiance.upsample(res)
        self.make_optimisers()  # the grid parameters are new tensors

    # ------------------------------------------------------------------ checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.run.latest_checkpoint

    def save(self) -> None:
        """Write the checkpoint atomically, keeping the one before it (see :mod:`lift3d.engine.checkpoint`)."""
        save_checkpoint(self.ckpt_path, training_state(self), previous=self.run.previous_checkpoint)

    def resume(self) -> bool:
        """Continue from the run's checkpoint, if there is one; True when resumed."""
        if not self.ckpt_path.exists():
            return False
        restore_training_state(self, load_checkpoint(self.ckpt_path, self.device))
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
        """One iteration (see the module docstring); returns its losses by name."""
        cfg, weights, pixels, model = self.cfg, self.cfg.losses, self.train_pixels, self.model
        self._upsample_if_due()
        self._set_lr()
        optim = cfg.optim
        if (
            model.occupancy is not None
            and self.step >= optim.occupancy_warmup
            and (self.step - optim.occupancy_warmup) % optim.occupancy_update_every == 0
        ):
            model.update_occupancy()
        logs: dict[str, float] = {}

        # 1. random rays: photometric (+ depth, + semantic)
        if self.loss_rows is None:
            rows = torch.randint(0, pixels.rgb.shape[0], (optim.rays_per_batch,), generator=self.generator)
        else:
            pick = torch.randint(0, self.loss_rows.numel(), (optim.rays_per_batch,), generator=self.generator)
            rows = self.loss_rows[pick]
        origins, dirs = pixels.rays(rows)
        depth = pixels.depth[rows] if pixels.depth is not None else None
        bg = self._background(rows.shape[0])
        samples = model.sample_rays(origins, dirs, depth, jitter=True, with_color=True, background=bg)
        loss = photometric_loss(samples.rgb, pixels.rgb[rows])
        logs["rgb"] = float(loss.detach())
        if depth is not None and weights.depth_weight > 0:
            valid = depth > 0  # sparse depth (0 = unknown) supervises only its valid rays, each weighed per pixel
            share = depth_share(depth, weights.depth_weight_per_pixel)
            inside = valid & model.in_box(origins + dirs * depth[:, None])  # the surface seen lies in the box
            if inside.any():
                d_loss = expected_depth_loss(samples.depth, depth, inside, model.scene_scale, share)
                loss = loss + weights.depth_weight * d_loss
                logs["depth"] = float(d_loss.detach())
            if valid.any() and weights.free_space_weight > 0:
                band = self.cfg.model.depth_band * model.scene_scale
                fs = line_of_sight_loss(
                    samples.weights[valid], samples.t[valid], depth[valid], dirs[valid].norm(dim=-1), band, share
                )
                loss = loss + weights.free_space_weight * fs
                logs["fs"] = float(fs.detach())
        if self.step >= weights.semantic_start and weights.semantic_weight > 0:
            log_probs = model.render_semantic(samples)
            target = pixels.semantic[rows]
            ray_weights = semantic_ray_weights(target, pixels.confidence[rows], weights.semantic_confidence)
            s_loss = semantic_loss(log_probs, target, ray_weights)
            loss = loss + weights.semantic_weight * s_loss
            logs["sem"] = float(s_loss.detach())
        self.opt_field.zero_grad(set_to_none=True)
        loss.backward()

        # 2./3. one image: instance and segment-consistency losses (density without gradient)
        inst_on = self.step >= weights.instance_start and weights.instance_weight > 0
        seg_on = self.step >= weights.segment_consistency_start and weights.segment_consistency_weight > 0
        self._image_step(inst_on, seg_on, logs)
        self.opt_field.step()
        self.step += 1
        self._notify("fit", logs)
        return logs

    def _image_step(self, inst_on: bool, seg_on: bool, logs: dict) -> None:
        """``optim.instance_images`` training images' pixels: segment consistency (gradient into the semantic field,
        applied by the caller's field optimiser step) and the instance objective (its own optimiser step + the
        objective's after-step hook, e.g. the EMA of the slow field). Every loss is computed per image (2D ids are
        consistent within one image only) and averaged over the images."""
        if not (inst_on or seg_on) or not self.instance_views:
            return
        weights, pixels, model, optim = self.cfg.losses, self.train_pixels, self.model, self.cfg.optim
        num_images = max(1, int(optim.instance_images))
        per_image = max(8, optim.instance_pixels // num_images)
        picks = []
        for _ in range(num_images):
            view = self.instance_views[int(torch.randint(len(self.instance_views), (1,), generator=self.generator))]
            picks.append(self._draw_image_pixels(view, per_image))
        pick = torch.cat(picks) if num_images > 1 else picks[0]
        bounds = [0]
        for p in picks:
            bounds.append(bounds[-1] + p.numel())
        img_origins, img_dirs = pixels.rays(pick)
        img_depth = pixels.depth[pick] if pixels.depth is not None else None
        with torch.no_grad():
            img_samples = model.sample_rays(
                img_origins, img_dirs, img_depth, jitter=True, with_color=False, density_grad=False
            )
        segment_ids = pixels.instance[pick]
        if seg_on:
            log_probs = model.render_semantic(img_samples)
            seg_loss = sum(
                segment_consistency_loss(log_probs[a:b], segment_ids[a:b]) for a, b in zip(bounds[:-1], bounds[1:])
            ) / len(picks)
            (weights.segment_consistency_weight * seg_loss).backward()
            logs["seg"] = float(seg_loss.detach())
        if inst_on:
            is_thing = torch.isin(pixels.semantic[pick], self.thing_ids)
            confidence = pixels.confidence[pick]
            losses = []
            for a, b in zip(bounds[:-1], bounds[1:]):
                thing_rows = is_thing[a:b].nonzero().squeeze(-1) + a
                if thing_rows.numel() >= 4:
                    batch = InstanceBatch(img_samples, thing_rows, segment_ids[thing_rows], confidence[thing_rows])
                    losses.append(self.instance_loss(batch, logs))
            if losses:
                inst_loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
                self.opt_instance.zero_grad(set_to_none=True)
                (weights.instance_weight * inst_loss).backward()
                self.opt_instance.step()
                self.objective.after_step(model)

    def _draw_image_pixels(self, view: int, count: int) -> torch.Tensor:
        """Up to ``count`` random rows of ``view``'s segment pixels (``optim.instance_pixel_sampling``): uniformly,
        or evenly over its 2D segments (round robin over segments in a random order within each)."""
        candidates = self.view_segment_rows[view]
        order = torch.randperm(candidates.numel(), generator=self.generator)
        if self.cfg.optim.instance_pixel_sampling == "image" or candidates.numel() <= count:
            return candidates[order[:count]]
        ids = self.train_pixels.instance[candidates[order]]
        # rank of each (shuffled) pixel within its segment: 0 for the first pixel of each id, 1 for the second, ...
        by_id = torch.sort(ids, stable=True).indices
        sorted_ids = ids[by_id]
        starts = torch.ones_like(sorted_ids, dtype=torch.bool)
        starts[1:] = sorted_ids[1:] != sorted_ids[:-1]
        position = torch.arange(sorted_ids.numel())
        first = torch.cummax(torch.where(starts, position, torch.zeros_like(position)), 0).values
        rank = torch.empty_like(position)
        rank[by_id] = position - first
        take = torch.sort(rank, stable=True).indices[:count]
        return candidates[order[take]]

    def instance_loss(self, batch: InstanceBatch, logs: dict) -> torch.Tensor:
        """The instance objective's loss on one image's thing pixels (its parts logged into ``logs``)."""
        return self.objective.loss(self.model, batch, self.generator, logs)

    def train_instance_step(self) -> dict:
        """One step of the instance objective alone, every other field frozen (Contrastive Lift (Bhalgat et al.
        2023), Sec. 5 on Messy Rooms: density, colour and semantics are fitted once and shared; each method then
        trains only its instance field). This is the step whose rate the paper's Table 6 reports."""
        logs: dict[str, float] = {}
        self._image_step(True, False, logs)
        self.step += 1
        self._notify("instance", logs)
        return logs

    def reset_instance_field(self) -> None:
        """Fresh fast/slow instance fields (and heads) for the current config, with a new optimiser."""
        from lift3d.fields.heads import InstanceField

        m = self.model
        m.instance = InstanceField(self.cfg.model.instance, self.objective.output_dim, self.cfg.model.ema_momentum)
        self.make_optimisers()

    def stage(self) -> str:
        """Names of the losses active at the current step, e.g. ``rgb+sem+inst``: only those that actually run (no
        ``inst`` when no training frame has a segment on a thing class, no ``seg`` when none has a segment)."""
        losses = self.cfg.losses
        parts = ["rgb"]
        for name, start, weight, possible in (
            ("sem", losses.semantic_start, losses.semantic_weight, True),
            ("inst", losses.instance_start, losses.instance_weight, bool(self.thing_views)),
            ("seg", losses.segment_consistency_start, losses.segment_consistency_weight, bool(self.instance_views)),
        ):
            if self.step >= start and weight > 0 and possible:
                parts.append(name)
        return "+".join(parts)

    # ------------------------------------------------------------------ loop
    def fit(self, resume: bool = False) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.resume():
            self.log(f"resumed from {self.ckpt_path} at iteration {self.step}")
        total = self.cfg.optim.iterations
        try:
            return self._fit_loop(total)
        except KeyboardInterrupt:
            if self.step > 0:
                self.save()
                self.log(
                    f"interrupted at iteration {self.step}/{total}: checkpoint saved to {self.ckpt_path}; "
                    "continue with `lift3d fit ... --resume`"
                )
            raise

    def _fit_loop(self, total: int) -> dict:
        """Train from ``self.step`` to ``total``, saving checkpoints; returns the fit summary."""
        t0 = time.perf_counter()
        start_step = self.step
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = [
            TextColumn("[bold]fit[/] {task.fields[stage]:<17}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[rate]:>6} it/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
        ]
        # Resumed: the displayed losses continue from the last recorded ones (a finished run keeps its history).
        running: dict[str, float] = {k: v for k, v in (self.history[-1] if self.history else {}).items() if k != "step"}
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
                    bar.update(
                        task,
                        completed=self.step,
                        stage=self.stage(),
                        rate=f"{rate:.1f}",
                        losses=" ".join(f"{k}={v:.3g}" for k, v in running.items()),
                    )
                if self.progress and not live and (self.step % line_every == 0 or self.step == total):
                    rate = (self.step - start_step) / max(time.perf_counter() - t0, 1e-9)
                    eta = (total - self.step) / max(rate, 1e-9)
                    self.log(
                        f"fit {self.step}/{total} [{self.stage()}] {rate:.1f} it/s ETA {eta:.0f} s  "
                        + " ".join(f"{k}={v:.3g}" for k, v in running.items())
                    )
                if self.step % 50 == 0 or self.step == total:
                    self.history.append({"step": self.step, **{k: round(v, 5) for k, v in running.items()}})
                if self.step % self.cfg.checkpoint_every == 0 or self.step == total:
                    self.save()
        elapsed = time.perf_counter() - t0
        summary = {
            "iterations": total,
            "seconds": round(elapsed, 2),
            "iterations_per_second": round((total - start_step) / max(elapsed, 1e-9), 2),
            "final_losses": {k: round(v, 5) for k, v in running.items()},
        }
        return summary
