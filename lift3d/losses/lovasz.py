"""The Lovász hinge: a convex, piecewise-linear surrogate of the Jaccard loss of one binary mask.

Berman, Rannen Triki and Blaschko, "The Lovász-Softmax loss" (CVPR 2018), Eq. 9 and Algorithm 1; used by
Neven et al., "Instance Segmentation by Jointly Optimizing Spatial Embeddings and Clustering Bandwidth" (CVPR 2019)
on the Gaussian instance score. Written from the equations.

The Jaccard loss of a set ``M`` of mispredicted pixels against a ground-truth mask ``G`` is

    Δ_J(M) = 1 - |G \\ M| / |G ∪ (M \\ G)|  =  |M| / |G ∪ M|,

a submodular set function. Its Lovász extension, evaluated at a non-negative error vector ``m`` sorted in
decreasing order ``m_π1 >= m_π2 >= ...``, is

    Δ̄_J(m) = Σ_i m_πi · (Δ_J({π1..πi}) - Δ_J({π1..π(i-1)})),

and the Lovász hinge applies it to the hinge errors ``m_i = max(0, 1 - s_i · y_i)`` of logits ``s`` with labels
``y ∈ {-1, +1}``.
"""

from __future__ import annotations

import torch

__all__ = ["jaccard_loss_increments", "lovasz_hinge"]


def jaccard_loss_increments(gt_sorted: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Increments ``Δ_J({π1..πi}) - Δ_J({π1..π(i-1)})`` of the Jaccard loss along a pixel order.

    ``gt_sorted [P]`` (bool or 0/1) is the ground truth of the pixels in the order ``π``. With ``g = |G|``,
    ``c_i`` = ground-truth pixels among the first ``i`` and ``n_i = i - c_i`` the others, the set of the first ``i``
    pixels has ``|G \\ M| = g - c_i`` and ``|G ∪ M| = g + n_i``, so ``Δ_J(i) = 1 - (g - c_i) / (g + n_i)``.
    Returns ``[P]`` of ``dtype`` (the first entry is ``Δ_J`` of the first pixel alone).
    """
    gt = gt_sorted.to(dtype)
    g = gt.sum()
    intersection = g - gt.cumsum(0)
    union = g + (1.0 - gt).cumsum(0)
    jaccard_loss = 1.0 - intersection / union
    if gt.numel() > 1:
        jaccard_loss[1:] = jaccard_loss[1:] - jaccard_loss[:-1].clone()
    return jaccard_loss


def lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász hinge of one binary mask (Berman et al. 2018, Eq. 9): ``Δ̄_J(max(0, 1 - s ⊙ (2y - 1)))``.

    ``logits [...]`` real scores (positive = inside the mask), ``labels [...]`` of the same shape, 0/1 or bool.
    Returns a scalar. It equals ``Δ_J(M)`` when every pixel of ``M`` has hinge error 1 and every other pixel
    error <= 0 (e.g. logits ``±1`` right, ``0`` wrong), is positively homogeneous in the errors, and is
    differentiable almost everywhere with gradient ``-(2y_i - 1) · increment(rank of i)`` on pixels with positive
    error. An empty input gives 0 (with a gradient path).
    """
    logits = logits.reshape(-1)
    labels = labels.reshape(-1).to(logits.dtype if logits.is_floating_point() else torch.float32)
    if logits.numel() == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, order = torch.sort(errors, descending=True)
    increments = jaccard_loss_increments(labels[order], errors.dtype)
    return torch.dot(torch.relu(errors_sorted), increments)
