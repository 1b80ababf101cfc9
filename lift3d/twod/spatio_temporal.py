"""Spatio-temporal instance embeddings (paper 001: "Learning a Spatio-Temporal Embedding for Video Instance
Segmentation", ICLR 2020 submission), re-derived from the paper (it has no public code).

Network (Sec. 4, :class:`SpatioTemporalNetwork`): every frame of a clip goes through the ERFNet encoder of
:mod:`lift3d.twod.network` (the paper uses a ResNet-18; lift3d keeps the part-1 encoder so both methods share it);
the causal temporal model (:class:`lift3d.twod.temporal.CausalTemporalModel`) turns the encodings ``x_s, s <= t``
into ``z_t``; decoders map ``z_t`` to the ``p``-dimensional instance embedding ``y_t``, the class logits (lift3d's
stand-in for the paper's separately trained background-mask network: a pixel is foreground when its most likely
class is a thing class) and, as the auxiliary task, the depth ``d_t`` (:mod:`lift3d.twod.depth`).

Loss (Eq. 8, :func:`spatio_temporal_loss`): ``λ_1 L_a + λ_2 L_r + λ_3 L_reg`` over the whole clip
(:func:`lift3d.losses.discriminative.discriminative_loss`: an instance's pixels of all frames share one centre) +
``λ_4 L_vs`` (Monodepth2's minimum reprojection with auto-mask and smoothness, sources ``t - 1`` and ``t + 1`` inside
the clip, relative poses from the sequence's cameras or a pose network) + the class cross-entropy.

The ablations of paper 001 Table 2 are switches of :class:`SpatioTemporalConfig`: ``temporal=False`` (no temporal
model: ``z_t = x_t``) and ``depth=False`` (no depth decoder, no ``L_vs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from lift3d.losses.discriminative import DiscriminativeLossConfig, discriminative_loss
from lift3d.twod.depth import DepthLossConfig, PoseNetwork, relative_pose, self_supervised_depth_loss, sigmoid_to_depth
from lift3d.twod.network import Decoder, Encoder, NetworkConfig
from lift3d.twod.temporal import CausalTemporalModel

__all__ = [
    "SpatioTemporalConfig",
    "SpatioTemporalOutput",
    "SpatioTemporalNetwork",
    "spatio_temporal_loss",
]


@dataclass
class SpatioTemporalConfig:
    """The spatio-temporal method's network switches and loss weights (paper 001, Sec. 5.2 unless said otherwise)."""

    embedding_dim: int = 8
    """p, the embedding dimension (paper: 8)."""
    clip_length: int = 5
    """Frames per training clip (paper: 5; Table 4 studies it); also the life span of a track's memory."""
    temporal: bool = True
    """Use the causal temporal model (False: the ablation 'without temporal model')."""
    temporal_blocks: int = 4
    """Residual 3-D blocks (paper: 12); only the first and last convolve over time."""
    temporal_kernel: int = 2
    """Temporal kernel size of those two blocks (paper: 2)."""
    depth: bool = True
    """Predict depth as the auxiliary task (False: the ablation 'without depth')."""
    w_depth: float = 1.0
    """λ_4, weight of the view-synthesis (depth) loss (paper: 1)."""
    w_semantic: float = 1.0
    """Weight of the class cross-entropy (the foreground / class head)."""
    pose_network: bool = False
    """Estimate the relative poses with :class:`lift3d.twod.depth.PoseNetwork` instead of the sequence's cameras
    (for video without poses; the paper's setting)."""
    discriminative: DiscriminativeLossConfig = field(default_factory=DiscriminativeLossConfig)
    """Margins ρ_a, ρ_r and weights λ_1..λ_3."""
    depth_loss: DepthLossConfig = field(default_factory=DepthLossConfig)
    """Monodepth2's settings (depth range, SSIM weight, smoothness, auto-mask)."""


@dataclass
class SpatioTemporalOutput:
    """The heads of :class:`SpatioTemporalNetwork` for ``B`` clips of ``T`` frames of ``H x W``."""

    embedding: torch.Tensor
    """[B, T, p, H, W] instance embeddings."""
    semantic_logits: torch.Tensor
    """[B, T, n_classes, H, W] class logits."""
    disparity: Optional[torch.Tensor]
    """[B, T, 1, H, W] inverse depth (None without the depth head)."""
    depth: Optional[torch.Tensor]
    """[B, T, 1, H, W] depth in metres (None without the depth head)."""


class SpatioTemporalNetwork(nn.Module):
    """Encoder per frame -> causal temporal model -> embedding, class and depth decoders (paper 001, Fig. 2).

    ``forward(clips [B, T, 3, H, W] in [0, 1]) -> SpatioTemporalOutput``; ``H``, ``W`` divisible by 8. The output at
    frame ``t`` depends on frames ``<= t`` only.
    """

    def __init__(self, network: NetworkConfig, n_classes: int, cfg: SpatioTemporalConfig):
        super().__init__()
        self.network_cfg, self.cfg, self.n_classes = network, cfg, n_classes
        self.encoder = Encoder(network)
        channels = network.widths[2]
        self.temporal = (
            CausalTemporalModel(channels, cfg.temporal_blocks, cfg.temporal_kernel, network.groups)
            if cfg.temporal
            else None
        )
        self.decoder_embedding = Decoder(network, cfg.embedding_dim)
        self.decoder_semantic = Decoder(network, n_classes)
        self.decoder_depth = Decoder(network, 1) if cfg.depth else None
        self.pose = PoseNetwork() if cfg.depth and cfg.pose_network else None
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def temporal_features(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips [B, T, 3, H, W]`` -> ``z [B * T, C, H / 8, W / 8]`` (frame-major inside each clip)."""
        b, t, _, h, w = clips.shape
        if h % 8 or w % 8:
            raise ValueError(f"image size {w}x{h} (w x h) must be divisible by 8; crop or pad the frames.")
        x = self.encoder((clips.reshape(b * t, 3, h, w) - self.mean) / self.std)
        if self.temporal is None:
            return x
        c, hh, ww = x.shape[1:]
        z = self.temporal(x.reshape(b, t, c, hh, ww).transpose(1, 2))  # [B, C, T, h, w]
        return z.transpose(1, 2).reshape(b * t, c, hh, ww)

    def forward(self, clips: torch.Tensor) -> SpatioTemporalOutput:
        b, t, _, h, w = clips.shape
        z = self.temporal_features(clips)
        emb = self.decoder_embedding(z).reshape(b, t, -1, h, w)
        sem = self.decoder_semantic(z).reshape(b, t, -1, h, w)
        disparity = depth = None
        if self.decoder_depth is not None:
            sig = torch.sigmoid(self.decoder_depth(z)).reshape(b, t, 1, h, w)
            disparity, depth = sigmoid_to_depth(sig, self.cfg.depth_loss.min_depth, self.cfg.depth_loss.max_depth)
        return SpatioTemporalOutput(embedding=emb, semantic_logits=sem, disparity=disparity, depth=depth)


def spatio_temporal_loss(
    out: SpatioTemporalOutput,
    images: torch.Tensor,
    instance: torch.Tensor,
    semantic: torch.Tensor,
    cfg: SpatioTemporalConfig,
    camera_to_world: Optional[torch.Tensor] = None,
    intrinsics: Optional[torch.Tensor] = None,
    pose_network: Optional[PoseNetwork] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Paper 001 Eq. 8 (+ the class cross-entropy), averaged over the ``B`` clips of a batch.

    Args:
        out: the network's heads for the clips.
        images: ``[B, T, 3, H, W]`` frames in [0, 1] (for the view synthesis).
        instance: ``[B, T, H, W]`` int track ids of thing instances, consistent over each clip (0 = background or
            stuff: no embedding term).
        semantic: ``[B, T, H, W]`` class-logit channels (-1 = ignore).
        cfg: weights and switches.
        camera_to_world: ``[B, T, 4, 4]`` the frames' poses (OpenGL axes); needed for ``L_vs`` unless a pose network
            is given.
        intrinsics: ``[B, 4]`` ``(fx, fy, cx, cy)`` of the clip's camera; needed for ``L_vs``.
        pose_network: estimates ``T_{t→s}`` from the image pair instead of the poses.

    Returns:
        The loss and its parts ``pull``, ``push``, ``reg``, ``semantic``, ``depth``, ``automask``.
    """
    b, t, p, h, w = out.embedding.shape
    total = out.embedding.new_zeros(())
    parts = {"pull": 0.0, "push": 0.0, "reg": 0.0, "semantic": 0.0, "depth": 0.0, "automask": 0.0}
    for i in range(b):
        emb = out.embedding[i].permute(0, 2, 3, 1).reshape(-1, p)
        l_inst, pi = discriminative_loss(emb, instance[i].reshape(-1), cfg.discriminative)
        total = total + l_inst / b
        for k in ("pull", "push", "reg"):
            parts[k] += pi[k] / b
    valid = semantic >= 0
    if cfg.w_semantic > 0 and bool(valid.any()):
        logits = out.semantic_logits.reshape(b * t, -1, h, w)
        ce = F.cross_entropy(logits, semantic.reshape(b * t, h, w).clamp(min=0), reduction="none")
        l_sem = (ce * valid.reshape(b * t, h, w)).sum() / valid.numel()
        total = total + cfg.w_semantic * l_sem
        parts["semantic"] = float(l_sem.detach())
    if out.depth is not None and cfg.w_depth > 0 and t > 1:
        if intrinsics is None or (camera_to_world is None and pose_network is None):
            raise ValueError("the depth loss needs intrinsics and camera poses (or a pose network).")
        l_vs = out.embedding.new_zeros(())
        for s in range(t):
            neighbours = [n for n in (s - 1, s + 1) if 0 <= n < t]
            sources = torch.stack([images[:, n] for n in neighbours])
            if pose_network is not None:
                rel = torch.stack([pose_network(images[:, s], images[:, n]) for n in neighbours])
            else:
                rel = torch.stack([relative_pose(camera_to_world[:, s], camera_to_world[:, n]) for n in neighbours])
            loss_s, ps = self_supervised_depth_loss(
                out.disparity[:, s], out.depth[:, s], images[:, s], sources, rel, intrinsics, cfg.depth_loss
            )
            l_vs = l_vs + loss_s / t
            parts["automask"] += ps["automask"] / t
        total = total + cfg.w_depth * l_vs
        parts["depth"] = float(l_vs.detach())
    return total, parts
