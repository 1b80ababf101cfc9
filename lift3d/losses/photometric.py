"""Photometric reconstruction loss (Contrastive Lift (Bhalgat et al. 2023), Eq. 2)."""

from __future__ import annotations

import torch


def photometric_loss(rgb_pred: torch.Tensor, rgb_gt: torch.Tensor) -> torch.Tensor:
    r"""Mean squared colour error over rays and channels (Contrastive Lift (Bhalgat et al. 2023), Eq. 2).

    .. math::
        L_{rgb} = \frac{1}{3R} \sum_{r=1}^{R} \sum_{c=1}^{3} (\hat C_{rc} - C_{rc})^2

    Args:
        rgb_pred: rendered colours, ``[num_rays, 3]``.
        rgb_gt: ground-truth pixel colours, ``[num_rays, 3]``.

    Returns:
        Scalar MSE (averaged over every element, as ``torch.nn.functional.mse_loss``; the 1/3 only
        rescales the loss relative to a per-ray sum).

    >>> photometric_loss(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.0, 0.0, 0.0]]))
    tensor(0.3333)
    """
    if rgb_pred.shape != rgb_gt.shape:
        raise ValueError(
            f"photometric_loss: rgb_pred has shape {tuple(rgb_pred.shape)} but rgb_gt has "
            f"{tuple(rgb_gt.shape)}; pass one colour per ray for both ([num_rays, 3])."
        )
    return ((rgb_pred - rgb_gt) ** 2).mean()
