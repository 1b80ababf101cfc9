"""SwAV's online codes and swapped-prediction loss (Caron et al., "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments", NeurIPS 2020), re-derived from the paper; pure functions on tensors.

Notation (paper Sec. 3.1): ``B`` features ``z_b`` (unit vectors, ``[B, D]``), ``K`` prototypes ``c_k`` (unit vectors,
``C`` = ``[K, D]``), the scores ``C^T Z`` (here ``[K, B]``) and the codes ``Q`` (``[K, B]``). Used by paper 003
(copy-paste coherent depth regions) at pixel and region level with ``K`` = 1000, ``ε`` = 0.05, 3 iterations and
``τ`` = 0.1.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ["sinkhorn_knopp", "swav_codes", "swapped_prediction_loss", "multi_crop_swapped_prediction_loss"]


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor,
    epsilon: float = 0.05,
    iterations: int = 3,
    all_reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> torch.Tensor:
    """The equipartitioned transport plan of SwAV Eq. 3, by the Sinkhorn-Knopp iterations of its appendix.

    Eq. 3 maximises ``Tr(Q^T C^T Z) + ε H(Q)`` over the transportation polytope
    ``{Q ∈ R_+^{K×B} : Q 1_B = 1_K / K, Q^T 1_K = 1_B / B}`` (every prototype gets ``1/K`` of the mass, every
    sample ``1/B``); its solution is ``Q* = diag(u) exp(C^T Z / ε) diag(v)`` with renormalisation vectors
    ``u ∈ R^K``, ``v ∈ R^B``, found by alternately scaling the rows of ``exp(C^T Z / ε)`` to sum ``1/K`` and its
    columns to sum ``1/B`` (``iterations`` times each, rows first; the columns are exact on return, the rows
    converge as the iterations grow).

    ``scores [B, K]`` (``z_b · c_k``, i.e. ``(C^T Z)^T``) -> ``Q [K, B]`` (sums to 1). Computed without gradient;
    the scores are shifted by their maximum before ``exp`` (a constant factor that the scaling removes).

    Under DDP each process holds ``B_r`` of the ``B`` columns: ``all_reduce`` (a sum over the processes, e.g.
    ``torch.distributed.all_reduce``) makes the row sums and ``B`` global, so every process gets its columns of
    the plan of the whole batch (the maximum shift is then per process, which the scaling also removes).
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be [B, K], got shape {tuple(scores.shape)}")
    logits = scores.detach().double().t() / epsilon  # [K, B]
    q = torch.exp(
        logits - (logits.max() if logits.numel() else 0.0)
    )  # no columns (an empty rank under DDP): q is empty
    reduce = all_reduce or (lambda t: t)
    k = q.shape[0]
    b = float(reduce(torch.tensor(float(q.shape[1]), dtype=q.dtype)))
    for _ in range(iterations):
        q /= reduce(q.sum(dim=1, keepdim=True)) * k  # rows -> 1/K
        q /= q.sum(dim=0, keepdim=True) * b  # columns -> 1/B
    return q.to(scores.dtype)


@torch.no_grad()
def swav_codes(
    scores: torch.Tensor,
    epsilon: float = 0.05,
    iterations: int = 3,
    all_reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> torch.Tensor:
    """Per-sample codes ``q_b`` = column ``b`` of :func:`sinkhorn_knopp`'s ``Q`` over its sum ``1/B`` (SwAV uses
    the soft codes, each a distribution over the ``K`` prototypes): ``scores [B, K]`` -> ``codes [B, K]``, rows
    summing to 1."""
    q = sinkhorn_knopp(scores, epsilon, iterations, all_reduce).t()
    return q / q.sum(dim=1, keepdim=True)


def swapped_prediction_loss(
    scores_a: torch.Tensor,
    scores_b: torch.Tensor,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
    all_reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    queue_scores_a: Optional[torch.Tensor] = None,
    queue_scores_b: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """SwAV Eq. 1-2: predict each view's code from the other view's features, averaged over the ``B`` pairs.

    ``L(z_a, z_b) = ℓ(z_a, q_b) + ℓ(z_b, q_a)``, ``ℓ(z_t, q_s) = -Σ_k q_s^(k) log p_t^(k)``,
    ``p_t^(k) = exp(z_t · c_k / τ) / Σ_k' exp(z_t · c_k' / τ)``; the codes ``q`` are :func:`swav_codes` of each
    view's own scores (no gradient through them).

    ``scores_a``, ``scores_b`` ``[B, K]``: ``z · c_k`` of the two views of the same ``B`` items (pixels, regions or
    images), row ``b`` of both describing the same item; ``all_reduce`` as in :func:`sinkhorn_knopp`. Returns the
    scalar ``mean_b L / 2``.

    SwAV's queue for small batches (its Sec. 4 / appendix: when ``B`` is far below ``K`` the equipartition over the
    batch alone is degenerate): ``queue_scores_a``, ``queue_scores_b`` ``[Q, K]``, the scores of stored features of
    earlier batches with the current prototypes, join each view's Sinkhorn step (the codes are computed on
    ``[queue; batch]`` and the batch's rows kept); they add no loss terms. The two-crop case of
    :func:`multi_crop_swapped_prediction_loss`.
    """
    if scores_a.shape != scores_b.shape:
        raise ValueError(f"the two views' scores differ in shape: {tuple(scores_a.shape)} vs {tuple(scores_b.shape)}")
    loss, _ = multi_crop_swapped_prediction_loss(
        [scores_a, scores_b], temperature, epsilon, iterations, all_reduce, [queue_scores_a, queue_scores_b]
    )
    return loss


def multi_crop_swapped_prediction_loss(
    crop_scores: Sequence[torch.Tensor],
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
    all_reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    queue_scores: Optional[Sequence[Optional[torch.Tensor]]] = None,
    assign_crops: int = 2,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """SwAV's swapped prediction with multi-crop (Caron et al. 2020, Sec. 3.2, Eq. 1 generalised to ``V + 2``
    views): codes are computed only from the first ``assign_crops`` (the global crops), and each of them is predicted
    from every other crop, small ones included:

    ``L = 1 / |A| Σ_{i ∈ A} 1 / (N - 1) Σ_{v ≠ i} ℓ(z_v, q_i)``, ``ℓ(z_v, q_i) = -Σ_k q_i^(k) log p_v^(k)``,

    ``A`` the assignment crops, ``N = len(crop_scores)``, ``p_v = softmax(z_v · C / τ)``, ``q_i`` =
    :func:`swav_codes` of crop ``i``'s scores (with ``queue_scores[i]`` ``[Q, K]`` joining its Sinkhorn step when
    given, as in :func:`swapped_prediction_loss`); averaged over the ``B`` items. With two crops this is
    ``(ℓ(z_b, q_a) + ℓ(z_a, q_b)) / 2``.

    ``crop_scores``: ``N`` tensors ``[B, K]`` (row ``b`` of each is a view of the same item). Returns the scalar loss
    and the codes ``[B, K]`` of the assignment crops (for diagnostics: used prototypes, code sharpness).
    """
    n = len(crop_scores)
    if not 2 <= assign_crops <= n:
        raise ValueError(f"need 2 <= assign_crops ({assign_crops}) <= number of crops ({n})")
    shape = crop_scores[0].shape
    for s in crop_scores[1:]:
        if s.shape[0] != shape[0] or s.shape[1:] != shape[1:]:
            raise ValueError(f"the crops' scores differ in shape: {tuple(shape)} vs {tuple(s.shape)}")
    queue_scores = list(queue_scores) if queue_scores is not None else [None] * assign_crops
    codes = [
        _codes_with_queue(
            crop_scores[i], queue_scores[i] if i < len(queue_scores) else None, epsilon, iterations, all_reduce
        )
        for i in range(assign_crops)
    ]
    log_p = [F.log_softmax(s / temperature, dim=1) for s in crop_scores]
    total = crop_scores[0].new_zeros(())
    for i, q in enumerate(codes):
        cross = sum((q * log_p[v]).sum(1) for v in range(n) if v != i)
        total = total - (cross / (n - 1)).mean()
    return total / assign_crops, codes


def _codes_with_queue(scores, queue_scores, epsilon, iterations, all_reduce) -> torch.Tensor:
    if queue_scores is None or len(queue_scores) == 0:
        return swav_codes(scores, epsilon, iterations, all_reduce)
    both = torch.cat([queue_scores.detach(), scores.detach()])
    return swav_codes(both, epsilon, iterations, all_reduce)[len(queue_scores) :]
