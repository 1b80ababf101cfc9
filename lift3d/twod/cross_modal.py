"""The cross-modal method (Zhu et al., "Instance Segmentation with Cross-Modal Consistency", IROS 2022): train,
evaluate and predict (``lift3d twod train / eval / predict --method cross-modal``).

Two networks (:mod:`.cross_modal_network`), one per sensor, output ``c``-channel embeddings. For every training
item (:mod:`.cross_modal_data`: frame ``t``, frame ``t + 1`` and the LiDAR scan at ``t``) samples are drawn evenly
over the instances of each input, half near boundaries (:func:`~lift3d.twod.correspondence.sample_evenly`):
from image ``t`` with its ground-truth ids, from image ``t + 1`` with the ids warped along the flow (the temporal
positives), from the range image with the LiDAR ids, each LiDAR sample joined by the pixel of image ``t`` it
projects to (the cross-modal positives). All samples of one item enter one multi-positive NT-Xent
(:func:`lift3d.losses.ntxent.multi_positive_ntxent`, Eqs. 1-3), plus the norm regulariser (Eq. 4, ``λ = 0.01``,
Eq. 5) and a cross-entropy on the class head. The ablation of the paper's Table I is ``lidar_positives`` /
``temporal_positives`` off.

Inference runs on the image alone: mean shift on the unit sphere per predicted thing class, masks filtered by
size and area / perimeter (:mod:`.mean_shift`); over a clip, ids are carried by embedding similarity
(:class:`~lift3d.twod.mean_shift.EmbeddingTracker`), giving tracks.

Training runs single-process or under DDP exactly as :mod:`lift3d.twod.train` (the same global batch split
over ranks; GroupNorm, so N ranks equal one process); checkpoints are ``checkpoints/step_XXXXXXX.pt`` with the
meta data needed to rebuild the model (``method: cross-modal``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from lift3d.data.sequence import load_sequence, load_sequence_frame
from lift3d.io import atomic_torch_save, atomic_write_bytes, atomic_write_json
from lift3d.losses.ntxent import embedding_norm_regulariser, multi_positive_ntxent
from lift3d.metrics.mots import mots_over_sequences
from lift3d.twod.correspondence import boundary_mask, sample_evenly
from lift3d.twod.cross_modal_config import METHOD, CrossModalConfig, CrossModalError
from lift3d.twod.cross_modal_data import CrossModalDataset, collate_cross_modal
from lift3d.twod.cross_modal_network import RANGE_PRESETS, ImageEmbeddingNet, RangeEmbeddingNet
from lift3d.twod.dataset import ClassSpace
from lift3d.twod.distributed import batch_indices, dist_env, init_distributed, training_progress
from lift3d.twod.evaluate import colour_ids, contact_sheet, score_predictions
from lift3d.twod.mean_shift import EmbeddingTracker, MeanShiftConfig, area_perimeter_ratio, cosine_mean_shift
from lift3d.twod.model import Prediction, TwodModelError, latest_twod_checkpoint, prediction_maps
from lift3d.twod.network import NETWORK_PRESETS
from lift3d.twod.spatial_embeddings import Instance

__all__ = [
    "CrossModalConfig",
    "CrossModalModel",
    "cluster_unit_embeddings",
    "cross_modal_loss",
    "train_cross_modal",
    "load_cross_modal_model",
    "evaluate_cross_modal",
    "write_tracked_maps",
    "predict_cross_modal",
]


class CrossModalModel:
    """The image and range branches with their class space and settings; :meth:`predict` segments an image."""

    def __init__(self, preset: str, classes: ClassSpace, cfg: CrossModalConfig, device: str = "cpu"):
        self.preset, self.classes, self.cfg, self.device = preset, classes, cfg, device
        self.image_net = ImageEmbeddingNet(NETWORK_PRESETS[preset], cfg.embedding_dim, len(classes.classes)).to(device)
        self.range_net = RangeEmbeddingNet(RANGE_PRESETS[preset], cfg.embedding_dim, not cfg.crop_to_camera).to(device)

    def meta(self) -> dict:
        return {
            "method": METHOD,
            "preset": self.preset,
            "classes": self.classes.to_dict(),
            "cross_modal": asdict(self.cfg),
        }

    def state_dict(self) -> dict:
        return {"image": self.image_net.state_dict(), "range": self.range_net.state_dict()}

    def parameters(self) -> list:
        return list(self.image_net.parameters()) + list(self.range_net.parameters())

    @torch.no_grad()
    def embed(self, image: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image [H, W, 3]`` uint8 (or ``[3, H, W]`` tensor) -> (unit embeddings ``[c, H, W]``, class
        probabilities ``[n_classes, H, W]``), on the CPU; sides not divisible by 8 are padded and cut back."""
        self.image_net.eval()
        if isinstance(image, np.ndarray):
            image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        h, w = image.shape[1:]
        x = torch.nn.functional.pad(image.float().to(self.device)[None] / 255.0, (0, (-w) % 8, 0, (-h) % 8))
        emb, logits = self.image_net(x)
        emb = torch.nn.functional.normalize(emb[0, :, :h, :w], dim=0)
        return emb.cpu(), torch.softmax(logits[0, :, :h, :w], 0).cpu()

    def predict_with_embeddings(self, image) -> tuple[Prediction, torch.Tensor, torch.Tensor]:
        """(:class:`~lift3d.twod.model.Prediction`, mean unit embedding of each instance ``[N, c]``, the unit
        embedding map ``[c, H, W]``)."""
        emb, probs = self.embed(image)
        instances, means = cluster_unit_embeddings(emb, probs, self.classes, self.cfg.mean_shift)
        return prediction_maps(self.classes, instances, probs), means, emb

    def predict(self, image) -> Prediction:
        """Instances of one image (no tracking): see :meth:`predict_with_embeddings`."""
        return self.predict_with_embeddings(image)[0]


def cluster_unit_embeddings(
    embeddings: torch.Tensor, probs: torch.Tensor, classes: ClassSpace, cfg: MeanShiftConfig
) -> tuple[list[Instance], torch.Tensor]:
    """Instances of one image (Zhu et al. 2022, Sec. III-A "Instance Mask Generation").

    ``embeddings [c, H, W]`` unit vectors, ``probs [n_classes, H, W]``. The pixels whose most likely class is
    thing class ``k`` are clustered by :func:`~lift3d.twod.mean_shift.cosine_mean_shift` (per class, which is what
    the paper's concatenation of the one-hot class to the embedding achieves); a cluster is kept when it has at
    least ``min_pixels`` pixels and an area / perimeter ratio of at least ``min_area_perimeter_ratio``. Its score
    is the mean probability of its class over its pixels (the paper's confidence). Returns the instances (sorted by
    score, highest first) and their mean embeddings ``[N, c]``.
    """
    generator = torch.Generator().manual_seed(cfg.seed)
    best = probs.argmax(0)
    index = {cid: i for i, cid in enumerate(classes.class_ids)}
    found: list[tuple[Instance, torch.Tensor]] = []
    for channel, cid in enumerate(classes.thing_ids):
        pixels = best == index[cid]
        if int(pixels.sum()) < cfg.min_pixels:
            continue
        z = embeddings[:, pixels].T  # [P, c]
        labels = cosine_mean_shift(z, cfg.threshold, cfg.max_iterations, cfg.max_clusters, generator)
        for k in torch.unique(labels[labels >= 0]).tolist():
            mask = torch.zeros_like(pixels)
            mask[pixels] = labels == k
            if int(mask.sum()) < cfg.min_pixels or area_perimeter_ratio(mask.numpy()) < cfg.min_area_perimeter_ratio:
                continue
            score = float(probs[index[cid]][mask].mean())
            found.append((Instance(mask=mask, score=score, channel=channel), z[labels == k].mean(0)))
    found.sort(key=lambda t: -t[0].score)
    means = torch.stack([m for _, m in found]) if found else torch.zeros(0, embeddings.shape[0])
    return [i for i, _ in found], torch.nn.functional.normalize(means, dim=1) if found else means


def _samples(emb: torch.Tensor, labels: torch.Tensor, count: int, cfg: CrossModalConfig, gen, width: int):
    """Draw ``count`` samples of one input: (embeddings ``[n, c]``, ids ``[n]``, flat indices ``[n]``)."""
    near = boundary_mask(labels, width) if cfg.boundary_fraction > 0 else None
    idx = sample_evenly(labels, count, gen, near, cfg.boundary_fraction).to(emb.device)
    return emb.reshape(emb.shape[0], -1)[:, idx].T, labels.reshape(-1)[idx], idx


def cross_modal_loss(
    image_emb: torch.Tensor,
    image_logits: torch.Tensor,
    range_emb: Optional[torch.Tensor],
    batch: dict,
    cfg: CrossModalConfig,
    generators: Sequence[torch.Generator],
) -> tuple[torch.Tensor, dict]:
    """The training loss of one batch (Zhu et al. 2022, Eq. 5 plus the class cross-entropy).

    ``image_emb [B', c, H, W]`` and ``image_logits [B', n_classes, H, W]`` hold the ``B`` frames ``t`` and, with
    ``temporal_positives``, then the ``B`` frames ``t + 1`` (``B' = 2B``); ``range_emb [B, c, beams, W_az]`` or None.
    ``batch`` is :func:`~lift3d.twod.cross_modal_data.collate_cross_modal`'s output; ``generators[b]`` draws item
    ``b``'s samples. Per item the samples of every input enter one NT-Xent; the result is the mean over items
    plus ``norm_weight`` times the norm regulariser plus ``semantic_weight`` times the cross-entropy.
    """
    b_items = batch["labels"].shape[0]
    device = image_emb.device
    per_item = []
    counts = {"samples_image": 0, "samples_next": 0, "samples_lidar": 0}
    for b in range(b_items):
        gen = generators[b]
        labels = batch["labels"][b].to(device)
        e, ids, _ = _samples(image_emb[b], labels, cfg.samples_per_image, cfg, gen, cfg.boundary_width)
        embs, idss = [e], [ids]
        counts["samples_image"] += len(ids)
        if cfg.temporal_positives:
            nxt = batch["next_labels"][b].to(device)
            e, ids, _ = _samples(image_emb[b_items + b], nxt, cfg.samples_per_image, cfg, gen, cfg.boundary_width)
            embs.append(e), idss.append(ids)
            counts["samples_next"] += len(ids)
        if cfg.lidar_positives and range_emb is not None:
            pixel = batch["range_pixel"][b].to(device)
            rl = torch.where(pixel >= 0, batch["range_labels"][b].to(device), torch.full_like(pixel, -1))
            e, ids, idx = _samples(range_emb[b], rl, cfg.samples_per_scan, cfg, gen, 1)
            partner = pixel.reshape(-1)[idx]
            embs += [e, image_emb[b].reshape(image_emb.shape[1], -1)[:, partner].T]
            idss += [ids, labels.reshape(-1)[partner]]
            counts["samples_lidar"] += len(ids)
        per_item.append(
            multi_positive_ntxent(
                torch.cat(embs), torch.cat(idss), cfg.temperature, cfg.exclude_positives_from_denominator, cfg.reduction
            )
        )
    contrastive = torch.stack(per_item).mean()
    norm = embedding_norm_regulariser(image_emb)
    if range_emb is not None and cfg.lidar_positives:
        norm = 0.5 * (norm + embedding_norm_regulariser(range_emb))
    sem_target = batch["semantic"]
    if cfg.temporal_positives:
        sem_target = torch.cat([sem_target, batch["next_semantic"]])
    semantic = _per_image_cross_entropy(image_logits, sem_target.to(device))
    total = contrastive + cfg.norm_weight * norm + cfg.semantic_weight * semantic
    parts = {k: float(v.detach()) for k, v in (("contrastive", contrastive), ("norm", norm), ("semantic", semantic))}
    parts.update({k: v / b_items for k, v in counts.items()})
    return total, parts


def _per_image_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over images of each image's mean cross-entropy over its labelled pixels (``target`` -1 = ignored), so
    that DDP's average over equal shares equals the single-process value. ``logits [B, K, H, W]``, ``target
    [B, H, W]``; images without a labelled pixel count 0."""
    ce = torch.nn.functional.cross_entropy(logits, target.clamp(min=0), reduction="none")  # [B, H, W]
    valid = (target >= 0).to(ce.dtype)
    return ((ce * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp(min=1.0)).mean()


def _item_generator(seed: int, step: int, position: int) -> torch.Generator:
    """The sample draws of the item at ``position`` of the global batch of ``step`` (the same on every rank)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 4099 + position)


def train_cross_modal(
    sequences: list[Path],
    out: Path,
    train: Any,
    cfg: CrossModalConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_step: Optional[Callable[[int, float], None]] = None,
) -> Path:
    """Train the cross-modal method on every usable frame of ``sequences`` into the run folder ``out``.

    ``train`` (a :class:`lift3d.twod.train.TwodTrainConfig`) gives the shared settings (``preset``, ``steps``, ``batch_size``, ``lr`` with the poly decay,
    ``weight_decay``, ``augment`` (its colour jitter only), ``seed``, ``threads``, ``device``, checkpointing,
    ``time_limit_minutes``); ``cfg`` the method's. Runs under DDP when ``WORLD_SIZE > 1`` (torchrun) like
    :func:`lift3d.twod.train.train_twod`. Returns ``out``.
    """
    rank, world, local_rank = dist_env()
    torch.set_num_threads(train.threads)
    out = Path(out)
    if train.batch_size % world:
        raise CrossModalError(f"batch_size {train.batch_size} is not divisible by the {world} DDP processes.")
    if not resume and latest_twod_checkpoint(out) is not None:
        raise CrossModalError(f"{out} already holds checkpoints; pass --resume to continue or choose another --out.")
    device = init_distributed(world, local_rank, train.device)
    data = CrossModalDataset(
        sequences,
        temporal=cfg.temporal_positives,
        lidar=cfg.lidar_positives,
        temporal_labels=cfg.temporal_labels,
        depth_test=cfg.depth_test,
        crop_to_camera=cfg.crop_to_camera,
        augment=train.augment,
        seed=train.seed,
    )
    torch.manual_seed(train.seed)
    model = CrossModalModel(train.preset, data.classes, cfg, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    start, history = _resume(out, model, opt, device) if resume else (0, [])
    image_net, range_net = model.image_net, model.range_net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [local_rank] if device.startswith("cuda") else None
        image_net = DDP(model.image_net, device_ids=ids)
        if cfg.lidar_positives:
            range_net = DDP(model.range_net, device_ids=ids)
    if rank == 0:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        config = {**asdict(train), "method": METHOD, "cross_modal": asdict(cfg)}
        atomic_write_json(
            out / "config.json",
            {"config": config, "scenes": [str(Path(s).resolve()) for s in sequences], "world": world},
        )
    share = train.batch_size // world
    t0 = time.perf_counter()
    bar = training_progress(progress and rank == 0, train.steps, start, "cross-modal train")
    try:
        for step in range(start, train.steps):
            image_net.train(), range_net.train()
            for g in opt.param_groups:
                g["lr"] = train.lr * (1.0 - step / train.steps) ** 0.9
            picks = batch_indices(len(data), train.batch_size, step, train.seed)[rank * share : (rank + 1) * share]
            items = []
            for epoch, i in picks:
                data.set_epoch(epoch)
                items.append(data[i])
            batch = collate_cross_modal(items)
            images = batch["image"]
            if cfg.temporal_positives:
                images = torch.cat([images, batch["next_image"]])
            emb, logits = image_net(images.float().to(device) / 255.0)
            range_emb = range_net(batch["range_input"].to(device)) if cfg.lidar_positives else None
            gens = [_item_generator(train.seed, step, rank * share + j) for j in range(len(items))]
            loss, parts = cross_modal_loss(emb, logits, range_emb, batch, cfg, gens)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            history.append({"step": step + 1, "loss": value, **parts})
            if on_step is not None:
                on_step(step + 1, value)
            if bar is not None:
                bar[0].update(bar[1], advance=1, description=f"cross-modal loss {value:.3f}")
            done = step + 1 == train.steps
            over = train.time_limit_minutes is not None and time.perf_counter() - t0 > 60 * train.time_limit_minutes
            if rank == 0 and ((step + 1) % train.checkpoint_every == 0 or done or over):
                _checkpoint(out, model, opt, step + 1, history, train.keep_checkpoints, time.perf_counter() - t0)
            if over:
                break
    finally:
        if bar is not None:
            bar[0].stop()
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
    return out


def _resume(out: Path, model: CrossModalModel, opt, device: str) -> tuple[int, list]:
    path = latest_twod_checkpoint(out)
    if path is None:
        return 0, []
    state = torch.load(path, map_location=device, weights_only=True)
    model.image_net.load_state_dict(state["model"]["image"])
    model.range_net.load_state_dict(state["model"]["range"])
    opt.load_state_dict(state["optimizer"])
    start = int(state["step"])
    history = json.loads((out / "train.json").read_text())["history"][:start] if (out / "train.json").exists() else []
    return start, history


def _checkpoint(out: Path, model: CrossModalModel, opt, step: int, history: list, keep: int, seconds: float) -> None:
    state = {"meta": model.meta(), "model": model.state_dict(), "step": step, "optimizer": opt.state_dict()}
    atomic_torch_save(out / "checkpoints" / f"step_{step:07d}.pt", state)
    for old in sorted((out / "checkpoints").glob("step_*.pt"))[:-keep]:
        old.unlink()
    atomic_write_json(out / "train.json", {"step": step, "seconds_this_session": seconds, "history": history})


def _checkpoint_path(run_or_file: Path) -> Path:
    path = Path(run_or_file)
    if path.is_dir():
        found = latest_twod_checkpoint(path)
        if found is None:
            raise TwodModelError(
                f"{path}: no checkpoints/step_*.pt; train first (lift3d twod train --method cross-modal --out {path})."
            )
        return found
    if not path.is_file():
        raise TwodModelError(
            f"{path}: no such 2D run folder or checkpoint; pass the --out folder of lift3d twod train."
        )
    return path


def load_cross_modal_model(run_or_file: Path, device: str = "cpu") -> tuple[CrossModalModel, dict]:
    """Load a trained cross-modal model (a run folder's latest checkpoint, or a checkpoint file); returns the
    model (eval mode) and the raw checkpoint."""
    path = _checkpoint_path(run_or_file)
    state = torch.load(path, map_location=device, weights_only=True)  # plain data only
    meta = state["meta"]
    if meta.get("method") != METHOD:
        raise TwodModelError(f"{path}: a {meta.get('method', 'spatial-embeddings')} network, not a cross-modal one.")
    raw = dict(meta["cross_modal"])
    raw["mean_shift"] = MeanShiftConfig(**raw["mean_shift"])
    model = CrossModalModel(meta["preset"], ClassSpace.from_dict(meta["classes"]), CrossModalConfig(**raw), device)
    model.image_net.load_state_dict(state["model"]["image"])
    model.range_net.load_state_dict(state["model"]["range"])
    model.image_net.eval(), model.range_net.eval()
    return model, state


def track_clip(model: CrossModalModel, frames: Sequence[np.ndarray]) -> tuple[list[Prediction], list, list]:
    """Segment the images ``frames`` (``[H, W, 3]`` uint8, in time order) and carry ids over them.

    Returns the per-frame predictions, the per-frame track-id maps (``[H, W]`` int64, 0 = none) and the per-frame
    unit embedding maps ``[c, H, W]``.
    """
    tracker = EmbeddingTracker(model.cfg.mean_shift.track_threshold, model.cfg.mean_shift.track_momentum)
    preds, tracks, embs = [], [], []
    for rgb in frames:
        p, means, emb = model.predict_with_embeddings(rgb)
        ids = tracker.update(means, p.classes)
        lut = np.concatenate([[0], ids]).astype(np.int64)
        preds.append(p)
        tracks.append(lut[p.instance.astype(np.int64)])
        embs.append(emb)
    return preds, tracks, embs


def temporal_consistency(
    emb_t: torch.Tensor, emb_next: torch.Tensor, gt_t: np.ndarray, gt_next: np.ndarray, things: set, threshold: float
) -> list[float]:
    """Zhu et al. 2022, Table V: the scaled cosine distance between an instance's mean embedding at ``t`` and at
    ``t + 1`` (ground-truth masks; the ids are track ids), one value per thing instance seen in both frames.

    ``emb_* [c, H, W]`` unit embeddings, ``gt_* [H, W]`` ids; ``things``: the ids to score. ``threshold`` is unused
    here (the caller counts values below it)."""
    del threshold
    out = []
    for k in sorted(things):
        a, b = gt_t == k, gt_next == k
        if a.any() and b.any():
            ma = torch.nn.functional.normalize(emb_t[:, torch.from_numpy(a)].mean(1), dim=0)
            mb = torch.nn.functional.normalize(emb_next[:, torch.from_numpy(b)].mean(1), dim=0)
            out.append(float((1.0 - ma @ mb) / 2.0))
    return out


def _things_only(gt_inst: np.ndarray, gt_sem: np.ndarray, thing_classes: set) -> np.ndarray:
    """``gt_inst [H, W]`` with every id whose majority class is not a thing set to 0 (MOTS scores things)."""
    keep = np.asarray(sorted(_thing_ids_of(gt_inst, gt_sem, thing_classes)), np.int64)
    return np.where(np.isin(gt_inst, keep), gt_inst, 0)


def _thing_ids_of(gt_inst: np.ndarray, gt_sem: np.ndarray, thing_classes: set) -> set:
    ids = set()
    for k in np.unique(gt_inst[gt_inst > 0]).tolist():
        values, counts = np.unique(gt_sem[gt_inst == k], return_counts=True)
        if int(values[np.argmax(counts)]) in thing_classes:
            ids.add(int(k))
    return ids


def evaluate_cross_modal(
    run: Path,
    sequences: Sequence[Path],
    name: str = "eval",
    device: str = "cpu",
    threads: int = 1,
    sheet: int = 6,
    mean_shift: Optional[MeanShiftConfig] = None,
) -> dict:
    """Evaluate a cross-modal run on every clip of ``sequences`` (with ground truth): COCO mask AP and per-frame PQ
    of the per-frame masks (:func:`lift3d.twod.evaluate.score_predictions`), MOTS of the tracks
    (``lift3d.metrics.mots`` when present), the temporal consistency of Table V, frames per second; writes
    ``RUN/eval/<name>.json`` and a contact sheet (image, ground truth, tracks) ``<name>.png``. ``mean_shift``
    replaces the inference settings stored with the model (to choose them on training sequences)."""
    torch.set_num_threads(threads)
    model, state = load_cross_modal_model(run, device)
    if mean_shift is not None:
        model.cfg.mean_shift = mean_shift
    things = model.classes.thing_ids
    stuff = [c.id for c in model.classes.classes if not c.thing]
    preds, gts, track_seqs, gt_seqs, distances, rows, seconds = [], [], [], [], [], [], 0.0
    for path in sequences:
        seq = load_sequence(path)
        for clip in seq.clips:
            frames = [load_sequence_frame(seq, i) for i in clip.frames]
            rgbs = [np.clip(np.round(f.rgb * 255.0), 0, 255).astype(np.uint8) for f in frames]
            t0 = time.perf_counter()
            p, tracks, embs = track_clip(model, rgbs)
            seconds += time.perf_counter() - t0
            preds += p
            gts += [(f.gt_instance.astype(np.int64), f.gt_semantic.astype(np.int64)) for f in frames]
            track_seqs.append(tracks)
            gt_seqs.append([_things_only(g, s, set(things)) for g, s in gts[-len(frames) :]])
            for j in range(len(frames) - 1):
                ids = _thing_ids_of(gts[-len(frames) + j][0], gts[-len(frames) + j][1], set(things))
                distances += temporal_consistency(
                    embs[j], embs[j + 1], frames[j].gt_instance, frames[j + 1].gt_instance, ids, 0.0
                )
            if len(rows) < sheet:
                rows.append([rgbs[0], colour_ids(gts[-len(frames)][0]), colour_ids(tracks[0])])
                rows.append([rgbs[-1], colour_ids(gts[-1][0]), colour_ids(tracks[-1])])
    result = score_predictions(preds, gts, things, stuff)
    result.update(_mots(track_seqs, gt_seqs))
    m = model.cfg.mean_shift.threshold
    result.update(
        temporal_cosine_distance=float(np.mean(distances)) if distances else None,
        temporal_accuracy=float(np.mean(np.asarray(distances) < m)) if distances else None,
        num_frames=len(preds),
        num_clips=len(track_seqs),
        frames_per_second=len(preds) / max(seconds, 1e-9),
        step=int(state["step"]),
        method=METHOD,
        mean_shift=asdict(model.cfg.mean_shift),
        scenes=[str(Path(s).resolve()) for s in sequences],
    )
    out_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    json_path, sheet_path = out_dir / "eval" / f"{name}.json", out_dir / "eval" / f"{name}.png"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(json_path, result)
    if rows:
        atomic_write_bytes(sheet_path, contact_sheet(rows[:sheet]))
    return {**result, "json": str(json_path), "sheet": str(sheet_path)}


def _mots(track_seqs: list, gt_seqs: list) -> dict:
    """MOTS (sMOTSA, MOTSA, MOTSP, TP / FP / FN / IDS; :func:`lift3d.metrics.mots.mots_over_sequences`, clips
    pooled) of the tracks against the ground-truth thing instances."""
    return {"mots": mots_over_sequences(list(zip(track_seqs, gt_seqs))).as_dict()}


def write_tracked_maps(model: CrossModalModel, scene, folder: Path) -> int:
    """Segment every frame of ``scene`` and write ``folder/{instance,semantic,confidence}/<stem>.{png,npy}``; when
    the scene is a sequence, the instance ids are track ids over each clip (consistent over time), else per-frame
    ids. Returns the number of instances over all frames."""
    from lift3d.data.images import write_id_map
    from lift3d.data.loading import load_frame

    for sub in ("instance", "semantic", "confidence"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    groups = [[f.index] for f in scene.frames]
    if (scene.root / "sequence.json").exists():
        seq = load_sequence(scene.root, check_files=False)
        in_clips = {i for c in seq.clips for i in c.frames}
        groups = [list(c.frames) for c in seq.clips] + [[i] for i in range(len(scene.frames)) if i not in in_clips]
    total = 0
    for group in groups:
        rgbs = [np.clip(np.round(load_frame(scene, i).rgb * 255.0), 0, 255).astype(np.uint8) for i in group]
        preds, tracks, _ = track_clip(model, rgbs)
        for i, p, t in zip(group, preds, tracks):
            stem = Path(scene.frames[i].name).stem
            write_id_map(folder / "instance" / f"{stem}.png", t, bits=16)
            write_id_map(folder / "semantic" / f"{stem}.png", p.semantic, bits=16)
            np.save(folder / "confidence" / f"{stem}.npy", p.confidence)
            total += len(p.instances)
    return total


def predict_cross_modal(
    data: Path,
    model: Path,
    out: Optional[Path] = None,
    name: str = "twod",
    force: bool = False,
    device: str = "cpu",
    threads: int = 1,
) -> Path:
    """:func:`lift3d.twod.predict.predict_scene_segments` with a cross-modal network: the scene's 2D input becomes
    its tracked masks (``segments/<name>/``)."""
    from lift3d.twod.predict import predict_scene_segments

    return predict_scene_segments(
        data,
        model,
        out=out,
        name=name,
        force=force,
        device=device,
        threads=threads,
        loader=load_cross_modal_model,
        writer=write_tracked_maps,
    )
