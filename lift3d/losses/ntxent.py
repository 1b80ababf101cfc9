r"""Multi-positive NT-Xent over labelled embeddings (the cross-modal consistency loss).

Zhu, Casser, Mahjourian, Kretzschmar and Pirk, "Instance Segmentation with Cross-Modal Consistency" (IROS 2022),
Eqs. 1-5, written from the equations; the multi-positive form without the exclusion is the supervised contrastive
loss of Khosla et al., "Supervised Contrastive Learning" (NeurIPS 2020), Eq. 2 (``L^sup_out``), itself the
NT-Xent of Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations" (ICML 2020).

A set ``U`` of ``N`` samples (pixels of several images, LiDAR points, ...) carries embeddings ``e_i`` and instance
ids ``id(i)``; two samples are a positive pair when their ids agree. With the cosine similarity (Eq. 2)
``sim(x, y) = x^T y / (‖x‖ ‖y‖)`` and a temperature ``τ``, the loss of a positive pair ``(i, j)`` is (Eq. 1)

.. math::
    l_{i,j} = -\log \frac{\exp(sim(e_i, e_j) / τ)}{\sum_{k \in D(i)} \exp(sim(e_i, e_k) / τ)},

where the denominator runs over ``D(i) = {k ≠ i}`` (SimCLR / SupCon) or, with the paper's exclusion of same-id
pairs, over the negatives only, ``D(i) = {k : id(k) ≠ id(i)}`` (Eq. 1's indicator ``1[id(i) ≠ id(k)]``). The loss
over the set is either the paper's Eq. 3, ``l_c = 1/|U| Σ_{i ≠ j, id(i) = id(j)} l_{i,j}``, or SupCon's mean over
anchors of the mean over each anchor's positives ``P(i)``, ``1/|A| Σ_{i∈A} 1/|P(i)| Σ_{j∈P(i)} l_{i,j}`` (``A``: the
anchors with at least one positive). When every instance holds the same number ``m`` of samples (the paper's even
sampling) the two differ by the constant factor ``m - 1``.

The regulariser of Eq. 4 is the mean norm of the raw (unnormalised) embeddings, ``l_r = 1/(hw) Σ ‖E(x, y)‖``, and
the total loss is Eq. 5, ``l = l_c + λ l_r`` with ``λ = 0.01``.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["multi_positive_ntxent", "embedding_norm_regulariser"]


def multi_positive_ntxent(
    embeddings: torch.Tensor,
    ids: torch.Tensor,
    temperature: float = 0.1,
    exclude_positives_from_denominator: bool = True,
    reduction: Literal["anchor-mean", "pair-sum"] = "anchor-mean",
) -> torch.Tensor:
    r"""Multi-positive NT-Xent of labelled embeddings (Zhu et al. 2022, Eqs. 1-3; Khosla et al. 2020, Eq. 2).

    Args:
        embeddings: ``[N, C]`` raw embeddings (normalised here: the similarity is the cosine, Eq. 2).
        ids: ``[N]`` integer instance ids; samples with ``id < 0`` are left out (invalid labels).
        temperature: ``τ``.
        exclude_positives_from_denominator: True: ``D(i)`` holds the other ids only (Eq. 1); False: every
            ``k ≠ i`` (SupCon). Without the exclusion ``l_{i,j} ≥ 0``; with it ``l_{i,j}`` goes below 0 once the
            positive is more similar than the negatives together.
        reduction: ``"anchor-mean"``: mean over anchors of the mean over their positives (SupCon);
            ``"pair-sum"``: the sum over ordered positive pairs divided by ``|U|`` (Eq. 3).

    Returns:
        A scalar. Anchors without a positive, or (with the exclusion) without a negative, add nothing; with no
        such pair at all the result is 0 with a gradient path.
    """
    if embeddings.ndim != 2 or ids.shape != embeddings.shape[:1]:
        raise ValueError(f"embeddings must be [N, C] and ids [N]; got {tuple(embeddings.shape)} and {tuple(ids.shape)}")
    keep = ids >= 0
    z = torch.nn.functional.normalize(embeddings[keep], dim=1)
    ids = ids[keep]
    n = z.shape[0]
    if n < 2:
        return embeddings.sum() * 0.0
    logits = z @ z.T / temperature  # [N, N]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    same = ids[:, None] == ids[None, :]
    positive = same & ~eye
    denominator = ~same if exclude_positives_from_denominator else ~eye
    usable = denominator.any(1) & positive.any(1)
    # rows without any denominator term get every column so that logsumexp (and its gradient) stays finite
    safe_denominator = denominator | ~denominator.any(1, keepdim=True)
    log_denominator = torch.logsumexp(logits.masked_fill(~safe_denominator, float("-inf")), dim=1)  # [N]
    pair_mask = positive & usable[:, None]
    pair_loss = torch.where(pair_mask, log_denominator[:, None] - logits, 0.0)  # [N, N]
    if not bool(pair_mask.any()):
        return embeddings.sum() * 0.0
    if reduction == "pair-sum":
        return pair_loss.sum() / n
    if reduction != "anchor-mean":
        raise ValueError(f"reduction must be 'anchor-mean' or 'pair-sum', got {reduction!r}")
    per_anchor = pair_loss.sum(1) / pair_mask.sum(1).clamp(min=1)
    return per_anchor[usable].mean()


def embedding_norm_regulariser(embeddings: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    r"""Zhu et al. 2022, Eq. 4: the mean L2 norm of raw embeddings, ``l_r = 1/(hw) Σ_{x,y} ‖E(x, y)‖_2``.

    ``embeddings`` of any shape with the channels on ``channel_dim`` (``[B, C, H, W]`` by default, or ``[N, C]``
    with ``channel_dim=1``); returns a scalar (the mean over every other position).
    """
    return embeddings.norm(dim=channel_dim).mean()
