"""The contrastive objectives of Contrastive Lift (Bhalgat et al. 2023): slow-fast (Eq. 4) and vanilla (Eq. 3),
each with or without the concentration term (Eq. 5; ``losses.concentration_weight``, 0 disables it)."""

from __future__ import annotations

import torch
from torch import nn

from lift3d.losses import concentration_loss, slow_fast_contrastive_loss, split_fast_slow, vanilla_contrastive_loss
from lift3d.objectives.base import InstanceBatch, InstanceObjective, register_objective

__all__ = ["SlowFastObjective", "VanillaObjective"]


@register_objective("slow-fast")
class SlowFastObjective(InstanceObjective):
    r"""Contrastive Lift (Bhalgat et al. 2023), Eq. 4 (+ Eq. 5). The image's thing pixels are split at random
    into a fast set F and a slow set S; fast embeddings ``[|F|, D]`` (trained) are contrasted against slow-field
    embeddings ``[|S|, D]`` (no gradient) of the same image:
    :math:`L = -\frac{1}{|F^+|}\sum_{i \in F^+} \log \frac{\sum_{j \in S, y_j = y_i} \exp k_{ij}}{\sum_{j \in S}
    \exp k_{ij}}` with the kernel :math:`k_{ij}` of ``losses.kernel`` (see
    :func:`lift3d.losses.slow_fast_contrastive_loss`); plus ``concentration_weight`` times the pull of every fast
    embedding towards its segment's slow centroid (Eq. 5). Logs ``con`` and ``conc``."""

    def loss(self, model: nn.Module, batch: InstanceBatch, generator: torch.Generator, logs: dict) -> torch.Tensor:
        lc, rows, ids, conf = self.losses, batch.rows, batch.ids, batch.confidence
        fast_idx, slow_idx = split_fast_slow(rows.numel(), generator)
        fast = model.render_embedding(batch.samples, rows[fast_idx])
        slow = model.render_embedding(batch.samples, rows[slow_idx], slow=True)
        con = slow_fast_contrastive_loss(
            fast, ids[fast_idx], slow, ids[slow_idx], kernel=lc.kernel, bandwidth=lc.kernel_bandwidth
        )
        logs["con"] = float(con.detach())
        loss = con
        if lc.concentration_weight > 0:
            conc = concentration_loss(
                fast, ids[fast_idx], slow, ids[slow_idx], confidence=conf[fast_idx], form=lc.concentration_form
            )
            logs["conc"] = float(conc.detach())
            loss = loss + lc.concentration_weight * conc
        return loss


@register_objective("vanilla")
class VanillaObjective(InstanceObjective):
    """Contrastive Lift (Bhalgat et al. 2023), Eq. 3 on the fast field alone: a supervised contrastive loss over
    every pair of the image's thing pixels ``[P, D]``. With ``concentration_weight > 0`` (Table 3, "vanilla +
    concentration") the fast embeddings are also pulled to their own detached segment means. Logs ``inst`` and
    ``conc``."""

    def loss(self, model: nn.Module, batch: InstanceBatch, generator: torch.Generator, logs: dict) -> torch.Tensor:
        lc, ids, conf = self.losses, batch.ids, batch.confidence
        emb = model.render_embedding(batch.samples, batch.rows)
        loss = vanilla_contrastive_loss(emb, ids)
        logs["inst"] = float(loss.detach())
        if lc.concentration_weight > 0:
            conc = concentration_loss(emb, ids, emb.detach(), ids, confidence=conf, form=lc.concentration_form)
            logs["conc"] = float(conc.detach())
            loss = loss + lc.concentration_weight * conc
        return loss
