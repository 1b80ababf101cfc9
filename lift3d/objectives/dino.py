"""The DINO-style objective (Contrastive Lift (Bhalgat et al. 2023), appendix E): slow/fast pixels of the same
segment as two "views", projection heads with a centred, sharpened teacher (Caron et al. 2021)."""

from __future__ import annotations

import torch
from torch import nn

from lift3d.fields.heads import ema_update
from lift3d.losses import split_fast_slow
from lift3d.losses.dino import DinoHead, dino_loss
from lift3d.objectives.base import InstanceBatch, InstanceObjective, register_objective

__all__ = ["DinoObjective"]


@register_objective("dino")
class DinoObjective(InstanceObjective):
    """Student head on fast embeddings ``[|F|, D]``, teacher head on slow embeddings ``[|S|, D]``, cross-entropy
    between same-segment pairs (see :func:`lift3d.losses.dino_loss`). The heads live on the model as
    ``dino_fast`` (trained with the fast field) and ``dino_slow`` (follows ``dino_fast`` by EMA, holds the
    centre); they are training-only and not part of a rendered model. Logs ``inst``."""

    training_only_prefixes = ("dino_",)

    def attach(self, model: nn.Module) -> None:
        """Projection heads: the fast one is trained, the slow one starts as its copy and follows it by EMA."""
        model.dino_fast = DinoHead(self.embedding_dim, num_prototypes=self.losses.dino_prototypes)
        model.dino_slow = DinoHead(self.embedding_dim, num_prototypes=self.losses.dino_prototypes)
        model.dino_slow.load_state_dict(model.dino_fast.state_dict())
        for p in model.dino_slow.parameters():
            p.requires_grad_(False)

    def extra_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return list(model.dino_fast.parameters())

    def loss(self, model: nn.Module, batch: InstanceBatch, generator: torch.Generator, logs: dict) -> torch.Tensor:
        rows, ids = batch.rows, batch.ids
        fast_idx, slow_idx = split_fast_slow(rows.numel(), generator)
        fast = model.render_embedding(batch.samples, rows[fast_idx])
        slow = model.render_embedding(batch.samples, rows[slow_idx], slow=True)
        loss, batch_center = dino_loss(fast, ids[fast_idx], slow, ids[slow_idx], model.dino_fast, model.dino_slow)
        model.dino_slow.update_center(batch_center, momentum=model.instance.momentum)
        logs["inst"] = float(loss.detach())
        return loss

    def after_step(self, model: nn.Module) -> None:
        model.instance.update_slow()
        ema_update(model.dino_slow, model.dino_fast, model.instance.momentum)
