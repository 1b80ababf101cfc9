"""Volume rendering on a [num_rays, num_samples] layout (nerfacc's batched functions; CPU and CUDA).

For samples with intervals :math:`[t_i, t_{i+1})` of length :math:`\\delta_i` and densities
:math:`\\sigma_i`: :math:`\\alpha_i = 1 - \\exp(-\\sigma_i \\delta_i)`,
:math:`T_i = \\prod_{j<i}(1 - \\alpha_j)`, :math:`w_i = T_i \\alpha_i` (paper 004 Eq. 1), and any
per-sample quantity :math:`f_i` renders to :math:`\\hat f = \\sum_i w_i f_i`.
"""

from __future__ import annotations

import torch

__all__ = ["render_weights", "render_weights_torch", "accumulate", "render_semantic_log_probs"]


def render_weights_torch(t_starts: torch.Tensor, t_ends: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch twin of :func:`render_weights`: [R, S] x3 -> weights [R, S]."""
    sigma_delta = sigmas * (t_ends - t_starts)
    alpha = 1.0 - torch.exp(-sigma_delta)
    # T_i = exp(-sum_{j<i} sigma_j delta_j)
    trans = torch.exp(-torch.cumsum(torch.cat([torch.zeros_like(sigma_delta[:, :1]), sigma_delta[:, :-1]], -1), -1))
    return trans * alpha


def render_weights(t_starts: torch.Tensor, t_ends: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Weights :math:`w_i = T_i \\alpha_i` for [R, S] intervals and densities (nerfacc batched path)."""
    try:
        import nerfacc

        return nerfacc.render_weight_from_density(t_starts, t_ends, sigmas)[0]
    except (ImportError, OSError, AttributeError, RuntimeError):  # pragma: no cover
        return render_weights_torch(t_starts, t_ends, sigmas)


def accumulate(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_i w_i f_i`: weights [R, S], values [R, S, D] -> [R, D]."""
    return torch.einsum("rs,rsd->rd", weights, values)


def render_semantic_log_probs(weights: torch.Tensor, probs: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rendered class log-probabilities (Panoptic Lifting / paper 004):

    .. math:: \\log\\Big(\\frac{\\sum_i w_i p_{i}}{\\sum_c \\sum_i w_i p_{ic}} + \\epsilon\\Big)

    weights [R, S], probs [R, S, C] -> [R, C].
    """
    acc = accumulate(weights, probs)
    return torch.log(acc / acc.sum(-1, keepdim=True).clamp_min(1e-12) + eps)
