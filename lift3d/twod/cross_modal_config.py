"""Settings of the cross-modal method (Zhu et al., IROS 2022), apart from its code so that the shared training
configuration (:class:`lift3d.twod.train.TwodTrainConfig`) can hold them without importing the method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lift3d.twod.mean_shift import MeanShiftConfig

__all__ = ["METHOD", "CrossModalConfig", "CrossModalError"]

METHOD = "cross-modal"
"""The method's name (``lift3d twod train --method cross-modal``; recorded in its checkpoints)."""


class CrossModalError(ValueError):
    """A cross-modal run cannot start or its inputs do not fit; the message names the file and the fix."""


@dataclass
class CrossModalConfig:
    """Settings of the cross-modal method (Zhu et al. 2022, Sec. III); the shared training settings (steps,
    batch, learning rate, network preset, ...) are those of ``lift3d twod train``."""

    embedding_dim: int = 32
    """Embedding channels ``c`` of both branches (the paper: 32)."""
    temperature: float = 0.1
    """NT-Xent temperature ``τ``."""
    exclude_positives_from_denominator: bool = True
    """Eq. 1's indicator: the denominator holds only other ids (False: every other sample, SupCon)."""
    reduction: Literal["anchor-mean", "pair-sum"] = "anchor-mean"
    """``anchor-mean`` (SupCon: mean over anchors of the mean over positives) or ``pair-sum`` (Eq. 3)."""
    samples_per_image: int = 384
    """Samples per image (the paper: K1 = 8192 at 2048x1024, 0.4% of the pixels; 384 is ~9% of a 64x64 image)."""
    samples_per_scan: int = 192
    """Samples per LiDAR scan, drawn among the returns that project into the image."""
    boundary_fraction: float = 0.5
    """Share of each instance's samples drawn near its boundary (the paper: half)."""
    boundary_width: int = 2
    """Pixels from a boundary that count as near it (the paper: b = 10 at 2048x1024)."""
    lidar_positives: bool = True
    """Contrast LiDAR samples with the image's (the cross-modal positives); off = camera only."""
    temporal_positives: bool = True
    """Contrast frame t + 1's samples (flow-warped ids) with frame t's; off = single frame."""
    temporal_labels: Literal["warped", "ground-truth"] = "warped"
    """Ids of frame t + 1: frame t's carried along the flow (the paper) or t + 1's own ground truth."""
    depth_test: bool = True
    """Pair a LiDAR return with its pixel only when the camera's depth does not hide it."""
    crop_to_camera: bool = True
    """Give the range branch only the range-image columns the camera sees (the paper's 64x512 crop of 64x2048)."""
    norm_weight: float = 0.01
    """λ of the norm regulariser (Eq. 5; the paper: 0.01)."""
    semantic_weight: float = 1.0
    """Weight of the cross-entropy of the image branch's class head."""
    mean_shift: MeanShiftConfig = field(default_factory=MeanShiftConfig)
    """Inference: mean-shift threshold, mask filters, tracking (stored with the model)."""
