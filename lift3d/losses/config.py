"""Weights, schedule and instance objective of a fit's losses (the losses themselves are the pure functions of
this package; the objective classes that use them live in :mod:`lift3d.objectives`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LossConfig"]


@dataclass
class LossConfig:
    """Loss weights, instance objective and the stage schedule (onsets are iterations)."""

    instance_loss: Literal["slow-fast", "vanilla", "linear-assignment", "associative-embedding", "margin", "dino"] = (
        "slow-fast"
    )
    """Name of the instance objective, a key of :data:`lift3d.objectives.OBJECTIVES` (one class per objective
    there). slow-fast: Contrastive Lift (Bhalgat et al. 2023) Eq. 4 (+ concentration Eq. 5 when
    concentration_weight > 0); vanilla: Eq. 3 on the fast field alone (+ concentration of the fast embeddings to
    their own detached segment means when concentration_weight > 0, Table 3); linear-assignment: Panoptic
    Lifting (Siddiqui et al. 2023; the field outputs ``num_slots`` logits, Hungarian matching per image; decoded
    by argmax, no clustering); associative-embedding / margin: appendix E metric-learning losses on the fast
    field; dino: appendix E DINO-style slow/fast with projection heads and centering."""
    kernel: Literal["gaussian", "exp_distance"] = "gaussian"
    """Similarity kernel of the slow-fast loss: the paper's Gaussian RBF exp(-||f-s||^2 / bandwidth^2) or the
    reference code's exp(-||f-s||)."""
    kernel_bandwidth: float = 1.0
    """Width of the similarity kernel."""
    concentration_weight: float = 1.0
    """Weight of the concentration loss (Contrastive Lift (Bhalgat et al. 2023), Eq. 5); 0 disables it."""
    concentration_form: Literal["squared", "gaussian"] = "squared"
    """Concentration as in the paper (squared distance to the slow centroid) or the reference code's
    -exp(-||f - c||^2) * confidence."""
    instance_weight: float = 1.0
    """Weight of the instance objective."""
    semantic_weight: float = 0.1
    """Weight of the confidence-weighted semantic cross-entropy."""
    semantic_confidence: Literal["segmenter", "class-balanced", "off"] = "segmenter"
    """How the 2D segmenter's confidences weigh the semantic cross-entropy (:func:`lift3d.losses.semantic_ray_weights`):
    ``segmenter`` as given (the paper); ``class-balanced`` normalised to a mean of 1 within each class of the batch,
    so a segmenter that is less sure of its object masks than of the background cannot tilt the field towards the
    background; ``off`` unweighted."""
    segment_consistency_weight: float = 0.12
    """Weight of Panoptic Lifting's segment-consistency loss (0.1 x 1.2 in the reference)."""
    depth_weight: float = 0.1
    """Weight of the depth loss (squared error of expected depth, relative to the scene scale); used only when
    the scene provides depth."""
    free_space_weight: float = 0.0
    """Weight of the line-of-sight loss (only with depth): the rendering weight that falls outside
    ``depth +- model.depth_band`` is pushed to zero, which empties free space fast."""
    depth_weight_per_pixel: bool = True
    """Weigh every pixel with depth alike, whether the depth map is dense or sparse (SfM points, 0 = unknown): the
    depth and line-of-sight losses (means over the batch's rays that carry depth) are scaled by the fraction of
    the batch's rays that carry depth (1 for dense depth, so dense fits are unchanged). False: plain means over the
    rays with depth, which give each of a sparse map's few points 1 / density times the weight of a dense map's
    pixel (0.36% valid: 280x; the issue saw such fits do worse than no depth; tools/study_sparse_depth.py)."""
    margin_positive: float = 0.5
    """margin loss: positive pairs are pulled until closer than this."""
    margin_negative: float = 1.5
    """margin loss: negative pairs are pushed until further than this."""
    dino_prototypes: int = 64
    """dino: number of prototypes of the projection heads."""
    num_slots: int = 500
    """linear-assignment: K, the number of slots (logits) the instance field outputs, an upper bound on the
    objects of the scene (Panoptic Lifting uses 500 on Messy Rooms). Other objectives ignore it; their field
    outputs ``model.embedding_dim`` values."""
    semantic_start: int = 200
    """Iteration at which the semantic loss starts (before it: RGB only)."""
    instance_start: int = 400
    """Iteration at which the instance loss starts."""
    segment_consistency_start: int = 700
    """Iteration at which segment consistency starts."""
