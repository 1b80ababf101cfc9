"""Self-supervised pretraining of the part-1 encoder (``lift3d twod pretrain``): paper 003's copy-paste of coherent
depth regions with SwAV at pixel and region level, and plain SwAV as the baseline.

Network (:class:`PretrainNetwork`): :class:`lift3d.twod.network.Encoder` (the encoder :class:`BranchedERFNet` is
initialised from with ``lift3d twod train --init RUN``), a projection head of two 1x1 convolutions (``width ->
projection_hidden -> projection_dim``, the hidden layer batch-normalised by default as in SwAV's projection MLP),
applied at the encoder's 1/8 resolution (copy-paste) or to the mean-pooled encoder features (swav), and ``K``
prototypes (unit vectors, renormalised after every optimiser step as SwAV does).

Methods (:class:`PretrainConfig.method`):

- ``copy-paste`` (paper 003): each batch item is a source frame and another frame with the source's coherent depth
  regions pasted in (:func:`lift3d.twod.copy_paste.paste_regions`: depth-consistent scale, z-test), each view
  colour-jittered on its own. The head's features are sampled bilinearly at the pixel centres of the pasted pairs
  in both views. Pixel level: ``pixels_per_image`` pairs per item; region level: the mean feature of every pasted
  region in each view (over all its visible pairs). Both are SwAV swapped predictions with Sinkhorn codes over the
  whole batch (:func:`lift3d.losses.swav.swapped_prediction_loss`): ``L = λ L_pixel + (1 - λ) L_region``.
- ``swav`` (Caron et al. 2020, the baseline): two augmented global crops of a frame (flip, scale-crop, colour) and
  ``small_crops`` small ones (multi-crop), the encoder's features averaged over each crop and projected, codes from
  the global crops only, each predicted from every other crop
  (:func:`lift3d.losses.swav.multi_crop_swapped_prediction_loss`).

SwAV's small-batch recipe (both methods): the prototypes get no update during the first
``freeze_prototypes_epochs``, and the queue (``queue_length``; image level for ``swav``, region level for
``copy-paste``) joins the Sinkhorn step only from ``queue_start_epochs`` on. ``train.json`` records per step the
loss (``ln K`` = the uniform code's, in ``ln_prototypes``), the number of distinct prototypes that are an item's
most likely code (``*_used``) and the mean largest code entry (``*_code_max``; ``1 / K`` = uniform codes).

The loop is part 1's: a global batch every DDP rank agrees on (:mod:`lift3d.twod.distributed`), Adam with the poly
decay, atomic checkpoints (``RUN/checkpoints/step_XXXXXXX.pt``), ``train.json``, ``config.json``, ``--resume``.
Sinkhorn's sums are all-reduced under DDP, so the codes are those of the global batch.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lift3d.io import atomic_torch_save, atomic_write_json
from lift3d.losses.swav import multi_crop_swapped_prediction_loss
from lift3d.twod.copy_paste import CopyPasteConfig, paste_regions
from lift3d.twod.dataset import AugmentConfig, augment_frame
from lift3d.twod.distributed import batch_indices, dist_env, init_distributed, training_progress
from lift3d.twod.model import latest_twod_checkpoint, twod_checkpoint_path
from lift3d.twod.network import NETWORK_PRESETS, Encoder, NetworkConfig
from lift3d.twod.pretrain_data import PretrainFrames
from lift3d.twod.regions import DepthRegionConfig, coherent_depth_regions

__all__ = [
    "PRETRAIN_METHOD",
    "PretrainConfig",
    "PretrainNetwork",
    "PretrainError",
    "pretrain",
    "load_pretrained_network",
    "load_pretrained_encoder",
    "pixel_pair_features",
    "region_pooled_features",
]

PRETRAIN_METHOD = "pretrain"
"""The ``meta.method`` of a pretraining checkpoint (``meta.pretrain_method`` says copy-paste or swav)."""


class PretrainError(ValueError):
    """A pretraining run cannot start or a pretrained encoder cannot be loaded; the message says why and the fix."""


@dataclass
class PretrainConfig:
    """Settings of one pretraining run (paper 003 / SwAV values unless said otherwise)."""

    method: Literal["copy-paste", "swav"] = "copy-paste"
    """``copy-paste`` (paper 003: pixel + region SwAV over copy-pasted coherent depth regions) or ``swav`` (plain
    SwAV on two augmented crops, image level: the baseline)."""
    preset: Literal["cpu-small", "paper", "tiny"] = "cpu-small"
    """Encoder size (``lift3d.twod.network.NETWORK_PRESETS``); fine-tune with the same ``--preset``."""
    lambda_pixel: float = 0.5
    """λ of ``L = λ L_pixel + (1 - λ) L_region`` (paper 003: 1 and 0.5); copy-paste only."""
    depth: str = "scene"
    """Depth of the regions and the paste: ``scene`` (the scene's depth maps) or a spatio-temporal run folder (its
    self-supervised depth head, paper 001)."""
    prototypes: int = 1000
    """K, the number of SwAV prototypes (paper 003: 1000)."""
    projection_dim: int = 128
    """Dimension of the projected features and the prototypes (SwAV: 128)."""
    projection_hidden: int = 256
    """Hidden width of the projection head."""
    head_batch_norm: bool = True
    """Batch-normalise the projection head's hidden layer (SwAV's projection MLP is linear, batch norm, ReLU,
    linear). Without it the mean-pooled features of similar frames are nearly the same vector, the Sinkhorn codes
    of a batch come out uniform (all items look alike to every prototype) and plain SwAV collapsed to loss ln K.
    Under DDP the statistics are per process."""
    temperature: float = 0.1
    """τ of the predictions ``softmax(z · c / τ)`` (SwAV, paper 003: 0.1)."""
    epsilon: float = 0.05
    """ε of the Sinkhorn-Knopp codes (SwAV, paper 003: 0.05)."""
    sinkhorn_iterations: int = 3
    """Sinkhorn-Knopp iterations (SwAV, paper 003: 3)."""
    queue_length: int = 256
    """SwAV's queue for small batches: the last this many image-level (``swav``) or region-level (``copy-paste``)
    features of each view join the Sinkhorn step once the queue is full and ``queue_start_epochs`` have passed
    (SwAV: 3840, 15 batches, when the batch is below 256; 0 = none: with 8 images against 1000 prototypes plain SwAV
    collapsed to the uniform code, loss ln 1000, within 150 steps). The pixel level needs none
    (``pixels_per_image`` x batch items per step)."""
    queue_start_epochs: float = 15.0
    """The queue joins the Sinkhorn step only from this epoch on (an epoch = frames / ``batch_size`` steps; SwAV's
    small-batch recipe: from epoch 15, when the features have stopped moving fast, so that the stored features are
    not stale). It is filled from the start, so it is full when it starts. 0 = as soon as it is full."""
    freeze_prototypes_epochs: float = 1.0
    """The prototypes get no gradient (and no Adam update) during the first this many epochs (SwAV: the first
    epoch, so that the codes of an untrained network do not drag the prototypes into a degenerate start);
    0 = never frozen."""
    small_crops: int = 6
    """``swav`` only: SwAV's multi-crop, ``V`` small crops of each frame besides the two global ones (SwAV: 6);
    the codes are computed from the global crops only and predicted from every other crop, so each step has
    ``(V + 2) x batch`` predictions. 0 = the two global crops only."""
    small_crop_fraction: float = 96 / 224
    """Side of the small crops over the frame's shorter side, rounded down to a multiple of 8 (at least 8)
    (SwAV: 96 px against 224 px global crops)."""
    small_crop_area: tuple[float, float] = (0.05, 0.14)
    """Range of the fraction of the frame's area a small crop covers (SwAV: 0.05 to 0.14); drawn as a uniform zoom
    between the two ends, then a random crop, a flip and ``crops``' colour jitter."""
    pixels_per_image: int = 512
    """Pixel pairs per batch item in the pixel-level loss (drawn from its visible pasted pairs, with replacement
    when there are fewer, so every item weighs the same)."""
    min_region_pixels: int = 4
    """Pasted regions with fewer visible pairs are left out of the region-level loss."""
    steps: int = 1000
    """Optimiser steps."""
    batch_size: int = 8
    """Global batch (split evenly over DDP ranks)."""
    lr: float = 1e-3
    """Adam learning rate at step 0, poly decay ``(1 - step / steps)^0.9``."""
    weight_decay: float = 1e-6
    """Adam weight decay (SwAV: 1e-6)."""
    colour: AugmentConfig = field(
        default_factory=lambda: AugmentConfig(
            flip=False, scale_range=(1.0, 1.0), brightness=0.4, contrast=0.4, saturation=0.4
        )
    )
    """Copy-paste: colour jitter of each view (photometric only, so the pixel correspondence stays exact)."""
    crops: AugmentConfig = field(
        default_factory=lambda: AugmentConfig(
            flip=True, scale_range=(1.0, 2.0), brightness=0.4, contrast=0.4, saturation=0.4
        )
    )
    """SwAV: the augmentation of each of the two crops (flip, zoom-in crop of the frame's size, colour)."""
    regions: DepthRegionConfig = field(default_factory=DepthRegionConfig)
    """Coherent depth regions (paper 003's values)."""
    copy_paste: CopyPasteConfig = field(default_factory=CopyPasteConfig)
    """The paste (depth-consistent scale, z-test)."""
    checkpoint_every: int = 250
    """Write a checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Keep the newest this many checkpoints."""
    seed: int = 0
    """Seed of the weights, the batch order, the pastes and the augmentations."""
    threads: int = 1
    """torch CPU threads per process."""
    device: str = "cpu"
    """``cpu`` or ``cuda`` (under torchrun: ``cuda:<local rank>``)."""
    time_limit_minutes: Optional[float] = None
    """Stop (with a checkpoint) after this much wall time even if ``steps`` is not reached."""

    def network(self) -> NetworkConfig:
        return NETWORK_PRESETS[self.preset]


class PretrainNetwork(nn.Module):
    """Encoder + projection head + prototypes. ``features(images [B, 3, H, W] in [0, 1]) -> [B, D, H/8, W/8]``
    (not normalised); ``scores(z [N, D]) -> [N, K]`` = ``normalise(z) · c_k`` with the unit prototypes."""

    def __init__(
        self,
        network: NetworkConfig,
        projection_hidden: int,
        projection_dim: int,
        prototypes: int,
        head_batch_norm: bool = False,
    ):
        super().__init__()
        self.encoder = Encoder(network)
        width = network.widths[2]
        norm = [nn.BatchNorm2d(projection_hidden)] if head_batch_norm else []
        self.head = nn.Sequential(
            nn.Conv2d(width, projection_hidden, 1),
            *norm,
            nn.ReLU(inplace=True),
            nn.Conv2d(projection_hidden, projection_dim, 1),
        )
        self.prototypes = nn.Linear(projection_dim, prototypes, bias=False)
        self.normalise_prototypes()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    @torch.no_grad()
    def normalise_prototypes(self) -> None:
        """Project every prototype back onto the unit sphere (SwAV does it after every step)."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's features ``[B, width, H/8, W/8]`` (what fine-tuning starts from)."""
        return self.encoder((images - self.mean) / self.std)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(images))

    def pooled_features(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Image-level features as SwAV computes them (backbone, global average pooling, then the projection
        head): each batch of ``images`` (crops of one size each, ``[N_i, 3, H_i, W_i]``) encoded and mean-pooled,
        all concatenated and projected together (so a batch-normalised head normalises over every crop) ->
        ``[Σ N_i, D]``."""
        pooled = torch.cat([self.encode(x).mean(dim=(2, 3), keepdim=True) for x in images])
        return self.head(pooled).flatten(1)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        return self.prototypes(F.normalize(z, dim=1))


def pixel_pair_features(features: torch.Tensor, flat_index: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Features of one image at pixel centres, bilinearly from its low-resolution map.

    ``features [D, h, w]`` (the map of an ``height x width`` image), ``flat_index [M]`` int64 ``y * width + x``
    -> ``[M, D]``. Pixel ``(x, y)``'s centre is at normalised ``((x + 0.5) / width * 2 - 1, (y + 0.5) / height * 2
    - 1)`` (``grid_sample`` with ``align_corners=False``, the convention under which the feature map covers the
    image exactly; the border values extend outwards, no zero padding)."""
    x = (flat_index % width).to(features.dtype)
    y = torch.div(flat_index, width, rounding_mode="floor").to(features.dtype)
    grid = torch.stack([(x + 0.5) / width * 2 - 1, (y + 0.5) / height * 2 - 1], -1).reshape(1, 1, -1, 2)
    out = F.grid_sample(
        features[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )  # [1, D, 1, M]
    return out[0, :, 0].t()


def region_pooled_features(pair_features: torch.Tensor, region: torch.Tensor, min_pixels: int = 1):
    """Mean feature per region: ``pair_features [M, D]``, ``region [M]`` int64 ids -> ``(means [R, D], ids [R])``
    of the regions with at least ``min_pixels`` pairs (ids ascending)."""
    ids, inverse, counts = torch.unique(region, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(ids), pair_features.shape[1], dtype=pair_features.dtype, device=pair_features.device)
    sums = sums.index_add(0, inverse, pair_features)
    keep = counts >= min_pixels
    return sums[keep] / counts[keep, None].to(pair_features.dtype), ids[keep]


# --------------------------------------------------------------------------------------------------------------
# one step of each method
# --------------------------------------------------------------------------------------------------------------


def _all_reduce(world: int) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    if world <= 1:
        return None
    import torch.distributed as dist

    def reduce(t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t)
        return t

    return reduce


class FeatureQueue:
    """SwAV's FIFO queue of earlier features of the two views (``[length, D]`` each, unit vectors, no gradient);
    :meth:`scores` gives their scores with the current prototypes once it is full, None before."""

    def __init__(self, length: int, dim: int, device: str):
        self.a = torch.zeros(length, dim, device=device)
        self.b = torch.zeros(length, dim, device=device)
        self.filled = 0

    def scores(self, net: PretrainNetwork) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        if len(self.a) == 0 or self.filled < len(self.a):
            return None, None
        with torch.no_grad():
            return net.prototypes(self.a), net.prototypes(self.b)

    @torch.no_grad()
    def push(self, a: torch.Tensor, b: torch.Tensor) -> None:
        n = min(len(a), len(self.a))
        if n == 0:
            return
        self.a = torch.cat([F.normalize(a[-n:].detach(), dim=1), self.a[:-n]])
        self.b = torch.cat([F.normalize(b[-n:].detach(), dim=1), self.b[:-n]])
        self.filled = min(len(self.a), self.filled + n)

    def state(self) -> dict:
        return {"a": self.a.cpu(), "b": self.b.cpu(), "filled": self.filled}

    def load(self, state: dict) -> None:
        self.a, self.b = state["a"].to(self.a.device), state["b"].to(self.b.device)
        self.filled = int(state["filled"])


def _swav(
    net, crops: list[torch.Tensor], cfg: PretrainConfig, reduce, queue=None, use_queue: bool = True
) -> tuple[torch.Tensor, dict]:
    """Swapped prediction between the features of the crops ``[N, D]`` each (the first two are the assignment views;
    ``N`` may be 0 on one rank); with a :class:`FeatureQueue`, its features join the codes' Sinkhorn step when
    ``use_queue`` and the queue is full, and the first two crops' features are pushed after. Returns the loss and
    the diagnostics of the codes: ``used`` (distinct prototypes that are some item's most likely code) and
    ``code_max`` (mean over the items of the code's largest entry; ``1 / K`` for the uniform code)."""
    scores = [net.scores(z) for z in crops]
    qa, qb = queue.scores(net) if (queue is not None and use_queue) else (None, None)
    loss, codes = multi_crop_swapped_prediction_loss(
        scores, cfg.temperature, cfg.epsilon, cfg.sinkhorn_iterations, reduce, [qa, qb], assign_crops=2
    )
    if queue is not None:
        queue.push(crops[0], crops[1])
    if len(crops[0]) == 0:
        return sum(x.sum() for x in scores) * 0.0, {"used": 0, "code_max": 0.0}
    both = torch.cat(codes)
    diag = {"used": int(both.argmax(1).unique().numel()), "code_max": float(both.max(1).values.mean())}
    return loss, diag


def _jitter(image: np.ndarray, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """``[H, W, 3]`` uint8 -> ``[3, H, W]`` uint8 with ``cfg``'s augmentation."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
    h, w = image.shape[:2]
    dummy = torch.zeros(h, w, dtype=torch.int64)
    return augment_frame(t, dummy, dummy, cfg, gen)[0]


def _item_seed(cfg: PretrainConfig, epoch: int, index: int) -> int:
    return (cfg.seed * 1_000_003 + epoch) * 1_000_003 + index


def copy_paste_batch(data: PretrainFrames, items: list[tuple[int, int]], cfg: PretrainConfig) -> dict:
    """Build the items' (source, pasted) views: ``source``/``pasted`` ``[B, 3, H, W]`` uint8 (colour-jittered),
    per item the pairs ``source_index``, ``pasted_index``, ``region`` (``[M_b]`` int64)."""
    sources, pasted, src_idx, pst_idx, regions = [], [], [], [], []
    for epoch, i in items:
        rng = np.random.default_rng(_item_seed(cfg, epoch, i))
        j = int(rng.integers(0, len(data) - 1))
        j = j + 1 if j >= i else j  # another frame
        src_depth, src_regions = data.depth_and_regions(i)
        tgt_depth, _ = data.depth_and_regions(j)
        src_image, tgt_image = data.image(i), data.image(j)
        if tgt_image.shape != src_image.shape:
            tgt_image, tgt_depth = _fit(tgt_image, tgt_depth, src_image.shape[:2])
        pair = paste_regions(src_image, src_depth, src_regions, tgt_image, tgt_depth, rng, cfg.copy_paste)
        gen = torch.Generator().manual_seed(_item_seed(cfg, epoch, i))
        sources.append(_jitter(pair.source, cfg.colour, gen))
        pasted.append(_jitter(pair.pasted, cfg.colour, gen))
        src_idx.append(torch.from_numpy(pair.source_index.astype(np.int64)))
        pst_idx.append(torch.from_numpy(pair.pasted_index.astype(np.int64)))
        regions.append(torch.from_numpy(pair.region.astype(np.int64)))
    return {
        "source": torch.stack(sources),
        "pasted": torch.stack(pasted),
        "source_index": src_idx,
        "pasted_index": pst_idx,
        "region": regions,
    }


def _fit(image: np.ndarray, depth: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Crop / zero-pad a target frame of another size to the source's (top-left aligned)."""
    h, w = shape
    out_i = np.zeros((h, w, 3), np.uint8)
    out_d = np.zeros((h, w), np.float32)
    hh, ww = min(h, image.shape[0]), min(w, image.shape[1])
    out_i[:hh, :ww], out_d[:hh, :ww] = image[:hh, :ww], depth[:hh, :ww]
    return out_i, out_d


def copy_paste_loss(
    net: PretrainNetwork,
    model,
    batch: dict,
    cfg: PretrainConfig,
    gen: torch.Generator,
    reduce,
    device: str,
    queue: Optional[FeatureQueue] = None,
    use_queue: bool = True,
) -> tuple[torch.Tensor, dict]:
    """Paper 003's loss on a :func:`copy_paste_batch`: ``λ L_pixel + (1 - λ) L_region`` (``model`` is ``net`` or its
    DDP wrapper, which runs the forward pass); ``use_queue``: the region level's queue joins its Sinkhorn step."""
    b, _, h, w = batch["source"].shape
    images = torch.cat([batch["source"], batch["pasted"]]).float().to(device) / 255.0
    feats = model(images)  # [2B, D, h/8, w/8]
    pix_a, pix_b, reg_a, reg_b = [], [], [], []
    for k in range(b):
        si, pi = batch["source_index"][k].to(device), batch["pasted_index"][k].to(device)
        if len(si) == 0:
            continue
        fa = pixel_pair_features(feats[k], si, w, h)
        fb = pixel_pair_features(feats[b + k], pi, w, h)
        pick = torch.randint(0, len(si), (cfg.pixels_per_image,), generator=gen).to(device)
        pix_a.append(fa[pick])
        pix_b.append(fb[pick])
        if cfg.lambda_pixel < 1.0:
            region = batch["region"][k].to(device)
            ra, _ = region_pooled_features(fa, region, cfg.min_region_pixels)
            rb, _ = region_pooled_features(fb, region, cfg.min_region_pixels)
            reg_a.append(ra)
            reg_b.append(rb)
    d = feats.shape[1]
    empty = feats.new_zeros(0, d)
    cat = lambda xs: torch.cat(xs) if xs else empty  # noqa: E731
    l_pixel, diag = _swav(net, [cat(pix_a), cat(pix_b)], cfg, reduce)
    parts = {"pixel": float(l_pixel.detach()), "pairs": float(sum(len(x) for x in batch["source_index"]) / b)}
    parts.update(pixel_used=diag["used"], pixel_code_max=diag["code_max"])
    loss = cfg.lambda_pixel * l_pixel
    if cfg.lambda_pixel < 1.0:
        l_region, diag = _swav(net, [cat(reg_a), cat(reg_b)], cfg, reduce, queue, use_queue)
        loss = loss + (1.0 - cfg.lambda_pixel) * l_region
        parts.update(region=float(l_region.detach()), regions=float(sum(len(x) for x in reg_a) / b))
        parts.update(region_used=diag["used"], region_code_max=diag["code_max"])
    return loss, parts


def small_crop_augment(cfg: PretrainConfig, height: int, width: int) -> AugmentConfig:
    """The augmentation of SwAV's small crops on ``height x width`` frames: a square crop of side
    ``small_crop_fraction x min(height, width)`` (rounded down to a multiple of 8, at least 8) out of the frame
    zoomed by ``s``: the crop covers ``(side / (s min(h, w)))^2`` of a square frame's area, so ``s`` from
    ``side / (min(h, w) sqrt(a_max))`` to ``side / (min(h, w) sqrt(a_min))`` covers ``small_crop_area``; flip and
    colour as ``crops``."""
    short = min(height, width)
    side = max(8, int(cfg.small_crop_fraction * short) // 8 * 8)
    lo, hi = cfg.small_crop_area
    zoom = (side / (short * hi**0.5), side / (short * lo**0.5))
    return AugmentConfig(
        flip=cfg.crops.flip,
        scale_range=zoom,
        crop=side,
        brightness=cfg.crops.brightness,
        contrast=cfg.crops.contrast,
        saturation=cfg.crops.saturation,
    )


def swav_batch(data: PretrainFrames, items: list[tuple[int, int]], cfg: PretrainConfig) -> dict:
    """Two augmented global crops of each item's frame, ``view_a``, ``view_b`` ``[B, 3, H, W]`` uint8, and
    ``small``: ``cfg.small_crops`` tensors ``[B, 3, s, s]`` (SwAV's multi-crop, :func:`small_crop_augment`)."""
    a, b, small = [], [], [[] for _ in range(cfg.small_crops)]
    for epoch, i in items:
        image = data.image(i)
        gen = torch.Generator().manual_seed(_item_seed(cfg, epoch, i))
        a.append(_jitter(image, cfg.crops, gen))
        b.append(_jitter(image, cfg.crops, gen))
        if cfg.small_crops:
            aug = small_crop_augment(cfg, *image.shape[:2])
            for v in range(cfg.small_crops):
                small[v].append(_jitter(image, aug, gen))
    return {"view_a": torch.stack(a), "view_b": torch.stack(b), "small": [torch.stack(x) for x in small]}


def swav_loss(
    net: PretrainNetwork, model, batch: dict, cfg: PretrainConfig, reduce, device: str, queue=None, use_queue=True
):
    """SwAV's swapped prediction between the image-level (mean-pooled) features of the crops: codes from the two
    global crops, predicted from every other crop (multi-crop when ``batch["small"]`` holds small crops)."""
    b = batch["view_a"].shape[0]
    images = [torch.cat([batch["view_a"], batch["view_b"]]).float().to(device) / 255.0]
    if batch.get("small"):
        images.append(torch.cat(batch["small"]).float().to(device) / 255.0)
    pooled = model(images, pooled=True).split(b)  # (2 + V) x [B, D]: view_a, view_b, the small crops
    loss, diag = _swav(net, list(pooled), cfg, reduce, queue, use_queue)
    return loss, {"image": float(loss.detach()), "image_used": diag["used"], "image_code_max": diag["code_max"]}


# --------------------------------------------------------------------------------------------------------------
# the loop, checkpoints
# --------------------------------------------------------------------------------------------------------------


class _Features(nn.Module):
    """The module DDP wraps: ``forward = net.features``. The prototypes, used through ``net.scores`` after the
    forward pass, are still its parameters, so DDP's gradient hooks average their gradients too."""

    def __init__(self, net: PretrainNetwork):
        super().__init__()
        self.net = net

    def forward(self, images, pooled: bool = False):
        """``images [N, 3, H, W]`` -> the feature map; ``pooled``: a list of such batches (crops of several sizes:
        one forward call, as DDP wants) -> :meth:`PretrainNetwork.pooled_features`."""
        if pooled:
            return self.net.pooled_features(images)
        return self.net.features(images)


def _meta(cfg: PretrainConfig) -> dict:
    return {
        "method": PRETRAIN_METHOD,
        "pretrain_method": cfg.method,
        "network": asdict(cfg.network()),
        "preset": cfg.preset,
        "lambda_pixel": cfg.lambda_pixel,
        "depth": cfg.depth,
        "head": {
            "hidden": cfg.projection_hidden,
            "dim": cfg.projection_dim,
            "prototypes": cfg.prototypes,
            "batch_norm": cfg.head_batch_norm,
        },
    }


def schedule_steps(cfg: PretrainConfig, frames: int) -> tuple[int, int]:
    """``(freeze_steps, queue_start_step)``: the steps of ``freeze_prototypes_epochs`` and ``queue_start_epochs``
    with ``frames / batch_size`` steps per epoch (rounded to the nearest step)."""
    per_epoch = frames / cfg.batch_size
    return int(round(cfg.freeze_prototypes_epochs * per_epoch)), int(round(cfg.queue_start_epochs * per_epoch))


def pretrain(
    folders: list[Path],
    out: Path,
    cfg: PretrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_step: Optional[Callable[[int, float], None]] = None,
) -> Path:
    """Pretrain the encoder on every frame of ``folders`` (scenes or sequences) into the run folder ``out``; returns
    ``out``. Under torchrun (``WORLD_SIZE > 1``) every rank takes its share of each global batch."""
    rank, world, local_rank = dist_env()
    torch.set_num_threads(cfg.threads)
    out = Path(out)
    if cfg.batch_size % world:
        raise PretrainError(f"batch_size {cfg.batch_size} is not divisible by the {world} DDP processes.")
    if not 0.0 <= cfg.lambda_pixel <= 1.0:
        raise PretrainError(f"--lambda-pixel {cfg.lambda_pixel} must lie in [0, 1] (paper 003: 1 or 0.5).")
    if not resume and latest_twod_checkpoint(out) is not None:
        raise PretrainError(f"{out} already holds checkpoints; pass --resume to continue or choose another --out.")
    data = PretrainFrames(folders, cfg.depth)
    if len(data) < 2:
        raise PretrainError(f"{folders[0]}: pretraining needs at least 2 frames (copy-paste pastes into another).")
    print(f"lift3d twod pretrain: {cfg.method}, {len(data)} frames, depth from {data.depth}")
    device = init_distributed(world, local_rank, cfg.device)
    if cfg.method == "copy-paste":
        if rank == 0:
            data.prepare(out / "regions", cfg.regions, coherent_depth_regions, device=device, progress=progress)
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        data.cache = out / "regions"
    torch.manual_seed(cfg.seed)
    net = PretrainNetwork(
        cfg.network(),
        cfg.projection_hidden,
        cfg.projection_dim,
        cfg.prototypes,
        cfg.head_batch_norm,
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    queue = FeatureQueue(cfg.queue_length, cfg.projection_dim, device) if cfg.queue_length > 0 else None
    start, history = 0, []
    if resume and latest_twod_checkpoint(out) is not None:
        state = torch.load(latest_twod_checkpoint(out), map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if queue is not None and "queue" in state:
            queue.load(state["queue"])
        start = int(state["step"])
        if (out / "train.json").exists():
            history = json.loads((out / "train.json").read_text())["history"][:start]
    model: nn.Module = _Features(net)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[local_rank] if device.startswith("cuda") else None)
    if rank == 0:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            out / "config.json",
            {"config": _jsonable(asdict(cfg)), "data": [str(Path(f).resolve()) for f in folders], "world": world},
        )
    reduce = _all_reduce(world)
    share = cfg.batch_size // world
    freeze_steps, queue_start = schedule_steps(cfg, len(data))
    t0 = time.perf_counter()
    bar = training_progress(progress and rank == 0, cfg.steps, start, f"twod pretrain ({cfg.method})")
    try:
        for step in range(start, cfg.steps):
            model.train()
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (1.0 - step / cfg.steps) ** 0.9
            items = batch_indices(len(data), cfg.batch_size, step, cfg.seed)[rank * share : (rank + 1) * share]
            use_queue = step >= queue_start
            if cfg.method == "copy-paste":
                gen = torch.Generator().manual_seed(cfg.seed * 7919 + step * 31 + rank)
                batch = copy_paste_batch(data, items, cfg)
                loss, parts = copy_paste_loss(net, model, batch, cfg, gen, reduce, device, queue, use_queue)
            else:
                batch = swav_batch(data, items, cfg)
                loss, parts = swav_loss(net, model, batch, cfg, reduce, device, queue, use_queue)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if step < freeze_steps:  # SwAV: no prototype update in the first epoch (None grad: Adam skips them)
                net.prototypes.weight.grad = None
            opt.step()
            net.normalise_prototypes()
            value = float(loss.detach())
            queue_used = queue is not None and use_queue and queue.filled >= len(queue.a)
            history.append({"step": step + 1, "loss": value, **parts, "queue": queue_used})
            if on_step is not None:
                on_step(step + 1, value)
            if bar is not None:
                bar[0].update(bar[1], advance=1, description=f"twod pretrain ({cfg.method}) loss {value:.3f}")
            done = step + 1 == cfg.steps
            over = cfg.time_limit_minutes is not None and time.perf_counter() - t0 > 60 * cfg.time_limit_minutes
            if world > 1:  # every rank stops at the same step
                import torch.distributed as dist

                flag = torch.tensor(float(over))
                dist.all_reduce(flag)
                over = bool(flag > 0)
            if rank == 0 and ((step + 1) % cfg.checkpoint_every == 0 or done or over):
                schedule = {"freeze_prototype_steps": freeze_steps, "queue_start_step": queue_start}
                _checkpoint(out, net, opt, cfg, step + 1, history, time.perf_counter() - t0, queue, schedule)
            if over:
                break
    finally:
        if bar is not None:
            bar[0].stop()
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
    return out


def _checkpoint(
    out: Path,
    net: PretrainNetwork,
    opt,
    cfg: PretrainConfig,
    step: int,
    history: list,
    seconds: float,
    queue=None,
    schedule: Optional[dict] = None,
):
    state = {"meta": _meta(cfg), "model": net.state_dict(), "optimizer": opt.state_dict(), "step": step}
    if queue is not None:
        state["queue"] = queue.state()
    atomic_torch_save(out / "checkpoints" / f"step_{step:07d}.pt", state)
    for old in sorted((out / "checkpoints").glob("step_*.pt"))[: -cfg.keep_checkpoints]:
        old.unlink()
    record = {"step": step, "seconds_this_session": seconds, "ln_prototypes": math.log(cfg.prototypes)}
    atomic_write_json(out / "train.json", {**record, **(schedule or {}), "history": history})


def load_pretrained_network(run_or_file: Path, device: str = "cpu") -> tuple[PretrainNetwork, dict]:
    """The pretrained network of a ``lift3d twod pretrain`` run folder (its latest checkpoint) or checkpoint file,
    in eval mode, and the checkpoint's ``meta``."""
    path = twod_checkpoint_path(Path(run_or_file))
    state = torch.load(path, map_location=device, weights_only=True)
    meta = state.get("meta", {})
    if meta.get("method") != PRETRAIN_METHOD:
        raise PretrainError(
            f"{path}: a {meta.get('method', 'spatial-embeddings')} checkpoint, not a pretraining run; pass the --out "
            "folder of `lift3d twod pretrain`."
        )
    network = NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["network"].items()})
    head = meta["head"]
    dims = int(head["hidden"]), int(head["dim"]), int(head["prototypes"])
    net = PretrainNetwork(network, *dims, bool(head.get("batch_norm", False))).to(device)
    net.load_state_dict(state["model"])
    net.eval()
    return net, meta


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_pretrained_encoder(run_or_file: Path, encoder: nn.Module) -> dict:
    """Copy the ``encoder.*`` weights of a checkpoint (a ``lift3d twod pretrain`` run, or any 2D run sharing part
    1's encoder) into ``encoder`` (:class:`lift3d.twod.network.Encoder`); returns the checkpoint's ``meta``.

    Raises :class:`PretrainError` (one line) when the checkpoint has no encoder or its shapes differ."""
    path = twod_checkpoint_path(Path(run_or_file))
    state = torch.load(path, map_location="cpu", weights_only=True)
    meta = state.get("meta", {})
    weights = {k[len("encoder.") :]: v for k, v in state["model"].items() if k.startswith("encoder.")}
    if not weights:
        raise PretrainError(
            f"--init {run_or_file}: {path} holds no encoder weights; pass a `lift3d twod pretrain` run."
        )
    own = encoder.state_dict()
    if set(weights) != set(own):
        missing = sorted(set(own) ^ set(weights))[0]
        raise PretrainError(
            f"--init {run_or_file}: its encoder has other layers than this network's (first difference: {missing}); "
            f"fine-tune with the preset it was pretrained with (--preset {meta.get('preset', meta.get('network'))})."
        )
    for k, v in own.items():
        if weights[k].shape != v.shape:
            raise PretrainError(
                f"--init {run_or_file}: encoder.{k} is {tuple(weights[k].shape)} there, {tuple(v.shape)} here; "
                f"fine-tune with the preset it was pretrained with (--preset {meta.get('preset', '?')})."
            )
    encoder.load_state_dict(weights)
    return meta
