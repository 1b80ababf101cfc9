"""Panoptic Lifting's linear-assignment objective (Siddiqui et al. 2023; the "PanopLi" baseline of Contrastive
Lift): the instance field outputs K slot logits, 2D segments are matched to slots per image by a Hungarian
assignment, and a pixel's instance is the argmax of its rendered logits (no clustering)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from lift3d.losses import linear_assignment_loss
from lift3d.objectives.base import InstanceBatch, InstanceObjective, register_objective

__all__ = ["LinearAssignmentObjective"]


@register_objective("linear-assignment")
class LinearAssignmentObjective(InstanceObjective):
    r"""Cross-entropy of the rendered (weighted-sum) slot logits ``[P, K]`` to the slots matched to the image's
    segments: :math:`L = \frac{1}{|R_+|}\sum_{r \in R_+} w_r (-\log p_{r,\pi(l_r)})`, :math:`\pi` the Hungarian
    matching of segments to slots on detached probabilities (see :func:`lift3d.losses.linear_assignment_loss`).
    ``K = losses.num_slots`` bounds the objects of the scene. Logs ``inst``. Decoded by argmax over the K slots
    on thing pixels (no clustering, no sweep)."""

    decoder = "argmax"

    @classmethod
    def upgrade_stored_config(cls, config: dict) -> dict:
        """Runs written before ``losses.num_slots`` existed stored K as ``model.embedding_dim``."""
        losses, model = config.get("losses", {}), config.get("model", {})
        if "num_slots" not in losses and "embedding_dim" in model:
            config = {**config, "losses": {**losses, "num_slots": model["embedding_dim"]}}
        return config

    @property
    def output_dim(self) -> int:
        """K, the number of slots (``losses.num_slots``)."""
        return int(self.losses.num_slots)

    def check_segments(self, segments_per_view: Sequence[int], log: Callable[[str], None]) -> None:
        most = max(segments_per_view, default=0)
        if most > self.output_dim:
            log(
                f"warning: a training image has {most} 2D segments but the linear-assignment field has only "
                f"K = {self.output_dim} slots; the smallest segments are ignored. K must bound the number "
                "of objects: raise it with --losses.num-slots K (or --set losses.num_slots=K)."
            )

    def loss(self, model: nn.Module, batch: InstanceBatch, generator: torch.Generator, logs: dict) -> torch.Tensor:
        logits = model.render_embedding(batch.samples, batch.rows)
        loss, _ = linear_assignment_loss(logits, batch.ids, confidence=batch.confidence)
        logs["inst"] = float(loss.detach())
        return loss
