"""Losses: pure functions on rendered tensors (no knowledge of fields or trainers).

One module per family: :mod:`.photometric` (Contrastive Lift (Bhalgat et al. 2023), Eq. 2), :mod:`.semantic` (cross-entropy and
Panoptic Lifting's segment consistency), :mod:`.contrastive` (Contrastive Lift (Bhalgat et al. 2023), Eqs. 3-5).
"""

from .contrastive import (
    concentration_loss,
    slow_fast_contrastive_loss,
    split_fast_slow,
    vanilla_contrastive_loss,
)
from .photometric import photometric_loss
from .semantic import segment_consistency_loss, segment_consistency_targets, semantic_loss, semantic_ray_weights

__all__ = [
    "photometric_loss",
    "semantic_loss",
    "semantic_ray_weights",
    "segment_consistency_loss",
    "segment_consistency_targets",
    "slow_fast_contrastive_loss",
    "concentration_loss",
    "split_fast_slow",
    "vanilla_contrastive_loss",
]

# Baseline objectives: Panoptic Lifting's linear assignment and Contrastive Lift appendix E alternatives.
from .assignment import linear_assignment_loss, select_segments
from .dino import DinoHead, dino_loss
from .metric_learning import associative_embedding_loss, margin_contrastive_loss

__all__ += [
    "linear_assignment_loss",
    "select_segments",
    "associative_embedding_loss",
    "margin_contrastive_loss",
    "DinoHead",
    "dino_loss",
]
