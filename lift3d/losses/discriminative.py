r"""Discriminative instance-embedding loss over space and time.

De Brabandere, Neven and Van Gool, "Semantic Instance Segmentation with a Discriminative Loss Function" (2017),
Eqs. 1-4, in the spatio-temporal form of "Learning a Spatio-Temporal Embedding for Video Instance Segmentation"
(paper 001, Eqs. 1-4): the pixels ``S_k`` of instance ``k`` are gathered over **every frame of the clip**, so the pull
term attracts an object's pixels of frame ``t`` to the same centre as those of frame ``t + 1`` and the embedding is a
track id. With ``K`` instances, embeddings ``y_i`` and centres ``μ_k = 1/|S_k| Σ_{i∈S_k} y_i``:

.. math::
    L_a = \frac{1}{K} \sum_{k=1}^{K} \frac{1}{|S_k|} \sum_{i \in S_k} \max(0, \lVert μ_k - y_i \rVert_2 - ρ_a)^2
    \qquad \text{(pull, Eq. 1)}

    L_r = \frac{1}{K (K - 1)} \sum_{k_1 \ne k_2} \max(0, 2 ρ_r - \lVert μ_{k_1} - μ_{k_2} \rVert_2)^2
    \qquad \text{(push, Eq. 2)}

    L_{reg} = \frac{1}{K} \sum_{k=1}^{K} \lVert μ_k \rVert_2 \qquad \text{(Eq. 3)}

    L = λ_1 L_a + λ_2 L_r + λ_3 L_{reg} \qquad \text{(Eq. 4)}

Paper 001 sets ``ρ_a = 0.5`` (De Brabandere's ``δ_v``), ``ρ_r = 1.5`` (``δ_d``), ``λ_1 = λ_2 = 1``, ``λ_3 = 0.001``.
With zero loss every pixel lies within ``ρ_a`` of its centre and centres are ``2 ρ_r`` apart, so with
``ρ_r > 2 ρ_a`` a pixel is nearer to every pixel of its instance than to any other instance's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DiscriminativeLossConfig", "discriminative_loss", "instance_centres"]


@dataclass
class DiscriminativeLossConfig:
    """Margins and weights of the discriminative loss (paper 001, Sec. 5.2)."""

    pull_margin: float = 0.5
    """ρ_a (De Brabandere's δ_v): pixels closer than this to their instance centre are not pulled."""
    push_margin: float = 1.5
    """ρ_r (δ_d): centres closer than ``2 ρ_r`` are pushed apart."""
    w_pull: float = 1.0
    """λ_1."""
    w_push: float = 1.0
    """λ_2."""
    w_reg: float = 0.001
    """λ_3."""


def instance_centres(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres ``μ_k`` (paper 001, under Eq. 1) of the instances present in ``labels``.

    ``embeddings [N, p]``, ``labels [N]`` int (only labels > 0 count). Returns ``(ids [K], centres [K, p])`` with
    ``ids`` sorted.
    """
    keep = labels > 0
    ids, inverse = torch.unique(labels[keep], return_inverse=True)
    k = ids.numel()
    sums = embeddings.new_zeros(k, embeddings.shape[1]).index_add_(0, inverse, embeddings[keep])
    counts = torch.bincount(inverse, minlength=k).to(embeddings.dtype)
    return ids, sums / counts[:, None]


def discriminative_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, cfg: DiscriminativeLossConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Paper 001 Eq. 4 (De Brabandere et al. 2017 Eqs. 1-4) over one clip; see the module docstring.

    Args:
        embeddings: ``[N, p]`` embeddings of every pixel of the clip (all frames flattened together; a pixel of
            frame ``t`` and one of frame ``t'`` with the same label belong to one instance).
        labels: ``[N]`` int instance (track) ids, consistent over the clip; ``<= 0`` pixels are ignored.
        cfg: margins and weights.

    Returns:
        The scalar loss and its parts ``{"pull", "push", "reg"}`` (floats). No instance gives 0; one instance has
        no push term.

    >>> e = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    >>> loss, parts = discriminative_loss(e, torch.tensor([1, 1, 2]), DiscriminativeLossConfig())
    >>> round(parts["pull"], 4)  # instance 1: both pixels 1.0 from the centre, (1 - 0.5)^2 = 0.25; halved over K = 2
    0.125
    """
    if embeddings.shape[0] != labels.shape[0]:
        raise ValueError(
            f"discriminative_loss: {embeddings.shape[0]} embeddings but {labels.shape[0]} labels; pass one label per "
            "embedding ([N, p] and [N])."
        )
    keep = labels > 0
    if not bool(keep.any()):
        zero = embeddings.sum() * 0.0
        return zero, {"pull": 0.0, "push": 0.0, "reg": 0.0}
    ids, centres = instance_centres(embeddings, labels)
    emb, lab = embeddings[keep], labels[keep]
    inverse = torch.searchsorted(ids, lab)
    k = ids.numel()
    dist = (emb - centres[inverse]).norm(dim=1)
    hinge = torch.clamp(dist - cfg.pull_margin, min=0.0) ** 2
    per_instance = embeddings.new_zeros(k).index_add_(0, inverse, hinge)
    counts = torch.bincount(inverse, minlength=k).to(embeddings.dtype)
    pull = (per_instance / counts).mean()
    if k > 1:
        diff = centres[:, None, :] - centres[None, :, :]
        off = ~torch.eye(k, dtype=torch.bool, device=embeddings.device)
        cdist = diff[off].norm(dim=1)  # [K (K - 1)], no zero-distance diagonal (its norm has no gradient)
        push = (torch.clamp(2.0 * cfg.push_margin - cdist, min=0.0) ** 2).mean()
    else:
        push = embeddings.new_zeros(())
    reg = centres.norm(dim=1).mean()
    total = cfg.w_pull * pull + cfg.w_push * push + cfg.w_reg * reg
    return total, {"pull": float(pull.detach()), "push": float(push.detach()), "reg": float(reg.detach())}
