"""Metric-learning objectives on the fast field (Contrastive Lift (Bhalgat et al. 2023), appendix E): associative
embedding (Newell et al. 2017) and the margin-based discriminative loss (De Brabandere et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

from lift3d.losses import associative_embedding_loss, margin_contrastive_loss
from lift3d.objectives.base import InstanceBatch, InstanceObjective, register_objective

__all__ = ["AssociativeEmbeddingObjective", "MarginObjective"]


@register_objective("associative-embedding")
class AssociativeEmbeddingObjective(InstanceObjective):
    """Pull the fast embeddings ``[P, D]`` of a segment to their mean, push segment means apart (see
    :func:`lift3d.losses.associative_embedding_loss` for the equation). Logs ``inst``."""

    def loss(self, model: nn.Module, batch: InstanceBatch, generator: torch.Generator, logs: dict) -> torch.Tensor:
        emb = model.render_embedding(batch.samples, batch.rows)
        loss = associative_embedding_loss(emb, batch.ids)
        logs["inst"] = float(loss.detach())
        return loss


@register_objective("margin")
class MarginObjective(InstanceObjective):
    """Hinged pair loss on the fast embeddings ``[P, D]``: positive pairs pulled within ``losses.margin_positive``,
    negative pairs pushed beyond ``losses.margin_negative`` (see :func:`lift3d.losses.margin_contrastive_loss`).
    Logs ``inst``."""

    def loss(self, model: nn.Module, batch: InstanceBatch, generator: torch.Generator, logs: dict) -> torch.Tensor:
        emb = model.render_embedding(batch.samples, batch.rows)
        loss = margin_contrastive_loss(
            emb, batch.ids, pos_margin=self.losses.margin_positive, neg_margin=self.losses.margin_negative
        )
        logs["inst"] = float(loss.detach())
        return loss
