"""Training of a 2D instance-embedding network (``lift3d twod train``), single-process or under torch DDP.

Methods: ``spatial-embeddings`` (:func:`train_twod` on the frames of scenes) and ``spatio-temporal``
(:func:`train_spatio_temporal` on ``clip_length`` windows of the clips of sequences; paper 001).

Started with ``torchrun --nproc_per_node N``, the same code runs one process per rank (gloo on the CPU, nccl on
CUDA): every rank draws the same global batch of ``batch_size`` items for a step (a permutation seeded by the epoch),
takes its contiguous share of ``batch_size / N`` items, and DDP averages the gradients, so with a batch-independent
network (GroupNorm) the weights after each step equal the single-process run's on the same global batch, within
float tolerance. Rank 0 writes the run folder: ``config.json``, ``checkpoints/step_XXXXXXX.pt`` (atomic),
``train.json`` (loss history). ``resume=True`` continues from the latest checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

import torch

from lift3d.io import atomic_write_json
from lift3d.twod.clips import ClipAugmentConfig, ClipDataset, collate_clips
from lift3d.twod.cross_modal_config import CrossModalConfig
from lift3d.twod.dataset import AugmentConfig, FrameDataset, collate
from lift3d.twod.distributed import batch_indices, dist_env, init_distributed, training_progress
from lift3d.twod.model import TwodModel, latest_twod_checkpoint, load_twod_model, save_twod_checkpoint
from lift3d.twod.network import NETWORK_PRESETS, NetworkConfig
from lift3d.twod.spatial_embeddings import ClusteringConfig, SpatialEmbeddingLossConfig, spatial_embedding_loss
from lift3d.twod.spatio_temporal import SpatioTemporalConfig, spatio_temporal_loss
from lift3d.twod.tracking import TrackingConfig
from lift3d.twod.video_model import SpatioTemporalModel, load_spatio_temporal_model, save_spatio_temporal_checkpoint

__all__ = ["TwodTrainConfig", "train_twod", "train_spatio_temporal", "TwodTrainError"]


class TwodTrainError(ValueError):
    """A 2D training run cannot start; the message names the problem and the fix."""


@dataclass
class TwodTrainConfig:
    """Settings of one 2D training run."""

    method: Literal["spatial-embeddings", "spatio-temporal", "cross-modal"] = "spatial-embeddings"
    """The 2D method: ``spatial-embeddings`` (Neven et al. 2019, single images, ``--data`` scenes),
    ``spatio-temporal`` (paper 001: causal temporal model, discriminative loss over clips, self-supervised depth;
    ``--data`` sequences, ``batch_size`` clips per step) or ``cross-modal`` (Zhu et al. 2022: camera + LiDAR NT-Xent
    over time; ``--data`` sequences with LiDAR)."""
    preset: Literal["cpu-small", "paper", "tiny"] = "cpu-small"
    """Network size (``lift3d.twod.network.NETWORK_PRESETS``): ``paper`` = ERFNet's widths, ``cpu-small`` for CPUs."""
    steps: int = 2000
    """Optimiser steps."""
    batch_size: int = 4
    """Global batch (split evenly over DDP ranks; must be divisible by their number)."""
    lr: float = 5e-4
    """Adam learning rate at step 0; decays as ``(1 - step / steps)^0.9`` (the paper's poly schedule)."""
    weight_decay: float = 1e-4
    """Adam weight decay."""
    pixels_per_unit: float = 64.0
    """Pixels per unit of the coordinate map; the ``tanh`` offsets reach this many pixels. The paper uses 1024 at
    2048x1024 (half the width); 64 suits the 96-128 px images lift3d trains on (1024 there makes the offsets'
    targets ~0.01 and Adam's steps noisy)."""
    initial_bandwidth_pixels: float = 5.0
    """Standard deviation of the initial Gaussian in pixels (sets the sigma bias; the paper's σ = 1 at 1024 px/unit
    is ~5 px)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training augmentations."""
    loss: SpatialEmbeddingLossConfig = field(default_factory=SpatialEmbeddingLossConfig)
    """Loss weights."""
    clustering: ClusteringConfig = field(default_factory=lambda: ClusteringConfig(min_pixels=8))
    """Inference settings stored with the model (min_pixels 8 suits ~100x100 images; the paper uses 128)."""
    cross_modal: CrossModalConfig = field(default_factory=CrossModalConfig)
    """Settings of ``--method cross-modal`` (ablations: ``--cross-modal.lidar-positives False``,
    ``--cross-modal.temporal-positives False``)."""
    spatio_temporal: SpatioTemporalConfig = field(default_factory=SpatioTemporalConfig)
    """Network switches and loss weights of ``--method spatio-temporal`` (ablations: ``--spatio-temporal.no-temporal``,
    ``--spatio-temporal.no-depth``)."""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """Clustering and tracking settings of ``--method spatio-temporal``, stored with the model."""
    clip_augment: ClipAugmentConfig = field(default_factory=ClipAugmentConfig)
    """Clip augmentations of ``--method spatio-temporal`` (flip with mirrored cameras, colour)."""
    checkpoint_every: int = 250
    """Write a checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Keep the newest this many checkpoints."""
    seed: int = 0
    """Seed of the initial weights, the batch order and the augmentations."""
    threads: int = 1
    """torch CPU threads per process."""
    device: str = "cpu"
    """``cpu`` or ``cuda`` (under torchrun: ``cuda:<local rank>``)."""
    time_limit_minutes: Optional[float] = None
    """Stop (with a checkpoint) after this much wall time even if ``steps`` is not reached."""
    init: Optional[Path] = None
    """``spatial-embeddings`` only: start the encoder from a ``lift3d twod pretrain`` run (its latest checkpoint)
    instead of random weights; the decoders start random. The preset must match the pretraining's."""
    label_fraction: float = 1.0
    """``spatial-embeddings`` only: train on this fraction of the labelled frames (a subset drawn with ``seed``,
    at least one frame; the chosen frames are listed in ``config.json``)."""

    def network(self) -> NetworkConfig:
        return NETWORK_PRESETS[self.preset]


def train_twod(
    scenes: list[Path],
    out: Path,
    cfg: TwodTrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_step: Optional[Callable[[int, float], None]] = None,
) -> Path:
    """Train on every frame of ``scenes`` (all must have ground truth) into the run folder ``out``; returns
    ``out``. Runs under DDP when ``WORLD_SIZE > 1`` (torchrun). ``on_step(step, loss)`` is called after each step."""
    if cfg.method != "spatial-embeddings" and (cfg.init is not None or cfg.label_fraction != 1.0):
        raise TwodTrainError(f"--init and --label-fraction apply to --method spatial-embeddings, not {cfg.method}.")
    if cfg.method == "cross-modal":
        from lift3d.twod.cross_modal import train_cross_modal

        return train_cross_modal(scenes, out, cfg, cfg.cross_modal, resume=resume, progress=progress, on_step=on_step)
    if cfg.method == "spatio-temporal":
        return train_spatio_temporal(scenes, out, cfg, resume=resume, progress=progress, on_step=on_step)
    rank, world, local_rank, device = _start(out, cfg, resume)
    out = Path(out)
    data = FrameDataset(scenes, augment=cfg.augment, seed=cfg.seed)
    data.items = labelled_subset(data.items, cfg.label_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = TwodModel(
        cfg.network(),
        data.classes,
        cfg.pixels_per_unit,
        cfg.clustering,
        device=device,
        initial_bandwidth_pixels=cfg.initial_bandwidth_pixels,
    )
    if cfg.init is not None:
        from lift3d.twod.pretrain import load_pretrained_encoder

        load_pretrained_encoder(cfg.init, model.net.encoder)
    opt = torch.optim.Adam(model.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, net = _resume_wrap_and_record(
        model, opt, load_twod_model, out, cfg, scenes, resume, rank, world, local_rank, device
    )
    if rank == 0 and cfg.label_fraction < 1.0:
        record = json.loads((out / "config.json").read_text())
        record["labelled_frames"] = [[str(data.scenes[si].root), fi] for si, fi in data.items]
        atomic_write_json(out / "config.json", record)
    share = cfg.batch_size // world
    t0 = time.perf_counter()
    bar = training_progress(progress and rank == 0, cfg.steps, start, "twod train")
    step = start
    try:
        for step in range(start, cfg.steps):
            net.train()
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (1.0 - step / cfg.steps) ** 0.9
            idx = batch_indices(len(data), cfg.batch_size, step, cfg.seed)[rank * share : (rank + 1) * share]
            batch = collate([_sample(data, epoch, i) for epoch, i in idx])
            images = batch["images"].float().to(device) / 255.0
            o = net(images)
            loss, parts = spatial_embedding_loss(
                o.offsets,
                o.sigma,
                o.seed_logits,
                batch["instance"].to(device),
                batch["instance_classes"],
                cfg.loss,
                cfg.pixels_per_unit,
                o.semantic_logits,
                batch["semantic"].to(device),
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append({"step": step + 1, "loss": float(loss.detach()), **parts})
            if on_step is not None:
                on_step(step + 1, float(loss.detach()))
            if bar is not None:
                bar[0].update(bar[1], advance=1, description=f"twod train loss {float(loss.detach()):.3f}")
            done = step + 1 == cfg.steps
            over = cfg.time_limit_minutes is not None and time.perf_counter() - t0 > 60 * cfg.time_limit_minutes
            if rank == 0 and ((step + 1) % cfg.checkpoint_every == 0 or done or over):
                _checkpoint(out, model, opt, step + 1, history, cfg.keep_checkpoints, time.perf_counter() - t0)
            if over:
                break
    finally:
        if bar is not None:
            bar[0].stop()
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
    return out


def labelled_subset(items: list, fraction: float, seed: int) -> list:
    """The first ``max(1, round(fraction * n))`` of ``items`` in a permutation seeded by ``seed`` (kept in their
    original order): the labelled frames of a ``--label-fraction`` run."""
    if not 0.0 < fraction <= 1.0:
        raise TwodTrainError(f"--label-fraction {fraction} must lie in (0, 1] (e.g. 0.1 for 10% of the frames).")
    if fraction == 1.0:
        return list(items)
    keep = max(1, int(round(fraction * len(items))))
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()[:keep]
    return [items[i] for i in sorted(order)]


def _resume_wrap_and_record(
    model,
    opt,
    loader,
    out: Path,
    cfg: TwodTrainConfig,
    scenes,
    resume: bool,
    rank: int,
    world: int,
    local_rank: int,
    device: str,
):
    """Shared by the methods' loops: continue from the run's latest checkpoint (``loader(out, device)`` -> (model,
    checkpoint)) when resuming, wrap ``model.net`` in DDP when ``world > 1``, and (rank 0) write ``config.json``.
    Returns ``(start step, loss history, the network to train)``."""
    start, history = 0, []
    if resume and latest_twod_checkpoint(out) is not None:
        loaded, state = loader(out, device=device)
        model.net.load_state_dict(loaded.net.state_dict())
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        if (out / "train.json").exists():
            history = json.loads((out / "train.json").read_text())["history"][:start]
    net = model.net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model.net, device_ids=[local_rank] if device.startswith("cuda") else None)
    if rank == 0:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            out / "config.json",
            {"config": _jsonable(asdict(cfg)), "scenes": [str(Path(s).resolve()) for s in scenes], "world": world},
        )
    return start, history, net


def _start(out: Path, cfg: TwodTrainConfig, resume: bool) -> tuple[int, int, int, str]:
    """Checks and DDP set-up shared by the methods: ``(rank, world, local rank, device)``."""
    rank, world, local_rank = dist_env()
    torch.set_num_threads(cfg.threads)
    if cfg.batch_size % world:
        raise TwodTrainError(f"batch_size {cfg.batch_size} is not divisible by the {world} DDP processes.")
    if not resume and latest_twod_checkpoint(Path(out)) is not None:
        raise TwodTrainError(f"{out} already holds checkpoints; pass --resume to continue or choose another --out.")
    return rank, world, local_rank, init_distributed(world, local_rank, cfg.device)


def train_spatio_temporal(
    sequences: list[Path],
    out: Path,
    cfg: TwodTrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_step: Optional[Callable[[int, float], None]] = None,
) -> Path:
    """Train paper 001's network on every ``clip_length`` window of the clips of ``sequences`` (with ground truth)
    into the run folder ``out``; the same DDP scheme, checkpoints and ``train.json`` as :func:`train_twod` (one
    batch item = one clip)."""
    rank, world, local_rank, device = _start(out, cfg, resume)
    out = Path(out)
    st = cfg.spatio_temporal
    data = ClipDataset(sequences, st.clip_length, augment=cfg.clip_augment, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = SpatioTemporalModel(cfg.network(), data.classes, st, cfg.tracking, device=device)
    opt = torch.optim.Adam(model.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, net = _resume_wrap_and_record(
        model, opt, load_spatio_temporal_model, out, cfg, sequences, resume, rank, world, local_rank, device
    )
    share = cfg.batch_size // world
    t0 = time.perf_counter()
    bar = training_progress(progress and rank == 0, cfg.steps, start, "twod train")
    try:
        for step in range(start, cfg.steps):
            net.train()
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (1.0 - step / cfg.steps) ** 0.9
            idx = batch_indices(len(data), cfg.batch_size, step, cfg.seed)[rank * share : (rank + 1) * share]
            batch = collate_clips([_sample(data, epoch, i) for epoch, i in idx])
            images = batch["images"].float().to(device) / 255.0
            o = net(images)
            loss, parts = spatio_temporal_loss(
                o,
                images,
                batch["instance"].to(device),
                batch["semantic"].to(device),
                st,
                batch["camera_to_world"].to(device),
                batch["intrinsics"].to(device),
                model.net.pose,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append({"step": step + 1, "loss": float(loss.detach()), **parts})
            if on_step is not None:
                on_step(step + 1, float(loss.detach()))
            if bar is not None:
                bar[0].update(
                    bar[1], advance=1, description=f"twod train (spatio-temporal) loss {float(loss.detach()):.3f}"
                )
            done = step + 1 == cfg.steps
            over = cfg.time_limit_minutes is not None and time.perf_counter() - t0 > 60 * cfg.time_limit_minutes
            if rank == 0 and ((step + 1) % cfg.checkpoint_every == 0 or done or over):
                save_spatio_temporal_checkpoint(out / "checkpoints" / f"step_{step + 1:07d}.pt", model, opt, step + 1)
                _finish_checkpoint(out, step + 1, history, cfg.keep_checkpoints, time.perf_counter() - t0)
            if over:
                break
    finally:
        if bar is not None:
            bar[0].stop()
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
    return out


def _sample(data, epoch: int, index: int):
    data.set_epoch(epoch)
    return data[index]


def _checkpoint(out: Path, model: TwodModel, opt, step: int, history: list, keep: int, seconds: float) -> None:
    save_twod_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt", model, opt, step)
    _finish_checkpoint(out, step, history, keep, seconds)


def _finish_checkpoint(out: Path, step: int, history: list, keep: int, seconds: float) -> None:
    for old in sorted((out / "checkpoints").glob("step_*.pt"))[:-keep]:
        old.unlink()
    atomic_write_json(out / "train.json", {"step": step, "seconds_this_session": seconds, "history": history})


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
