"""Volume rendering on a [num_rays, num_samples] layout: nerfacc's function or its pure-PyTorch twin.

For samples with intervals :math:`[t_i, t_{i+1})` of length :math:`\\delta_i` and densities :math:`\\sigma_i`
(Contrastive Lift (Bhalgat et al. 2023), Eq. 1, the NeRF quadrature of Mildenhall et al. 2020):

.. math:: \\alpha_i = 1 - \\exp(-\\sigma_i \\delta_i), \\quad T_i = \\prod_{j<i}(1 - \\alpha_j)
          = \\exp\\Big(-\\sum_{j<i} \\sigma_j \\delta_j\\Big), \\quad w_i = T_i \\alpha_i,

and any per-sample quantity :math:`f_i` renders to :math:`\\hat f = \\sum_i w_i f_i`.

Which implementation runs is decided once per run by :func:`lift3d.backends.resolve_backends` and passed in as
``backend``. On a dense layout nerfacc 0.5.3 computes the same torch operations in the same order as
:func:`render_weights_torch` (bit-identical on CPU and CUDA); its CUDA kernels serve the packed layout, whose twin
is :func:`render_weights_packed_torch` (held to nerfacc in ``tests/gpu``).
"""

from __future__ import annotations

import torch

from lift3d.backends import VolumeRenderingBackend

__all__ = [
    "render_weights",
    "render_weights_torch",
    "render_weights_packed_torch",
    "accumulate",
    "render_semantic_log_probs",
]


def render_weights_torch(t_starts: torch.Tensor, t_ends: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch weights :math:`w_i = T_i \\alpha_i` (module docstring; Contrastive Lift (Bhalgat et al.
    2023), Eq. 1): t_starts, t_ends, sigmas [num_rays, num_samples] -> weights [num_rays, num_samples]."""
    sigma_delta = sigmas * (t_ends - t_starts)
    alpha = 1.0 - torch.exp(-sigma_delta)
    # T_i = exp(-sum_{j<i} sigma_j delta_j)
    trans = torch.exp(-torch.cumsum(torch.cat([torch.zeros_like(sigma_delta[:, :1]), sigma_delta[:, :-1]], -1), -1))
    return trans * alpha


def render_weights_packed_torch(
    t_starts: torch.Tensor, t_ends: torch.Tensor, sigmas: torch.Tensor, ray_indices: torch.Tensor, num_rays: int
) -> torch.Tensor:
    """Pure-PyTorch twin of nerfacc's packed ``render_weight_from_density``: the weights of
    :func:`render_weights_torch` for samples flattened over rays.

    t_starts, t_ends, sigmas [num_samples_total]; ray_indices [num_samples_total] (long, sorted: a ray's samples are
    contiguous and in order along the ray) -> weights [num_samples_total]. The samples are scattered to a padded
    [num_rays, max_samples] layout (padding after a ray's last sample changes none of its sums) and gathered back.
    """
    ray_indices = ray_indices.long()
    counts = torch.bincount(ray_indices, minlength=num_rays)
    first = torch.cumsum(counts, 0) - counts  # [num_rays] index of each ray's first sample
    position = torch.arange(ray_indices.shape[0], device=ray_indices.device) - first[ray_indices]
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    dense = torch.zeros(num_rays, width, dtype=sigmas.dtype, device=sigmas.device)
    sigma_delta = dense.index_put((ray_indices, position), sigmas * (t_ends - t_starts))
    alpha = 1.0 - torch.exp(-sigma_delta)
    trans = torch.exp(-torch.cumsum(torch.cat([torch.zeros_like(sigma_delta[:, :1]), sigma_delta[:, :-1]], -1), -1))
    return (trans * alpha)[ray_indices, position]


def render_weights(
    t_starts: torch.Tensor, t_ends: torch.Tensor, sigmas: torch.Tensor, backend: VolumeRenderingBackend = "torch"
) -> torch.Tensor:
    """Weights :math:`w_i = T_i \\alpha_i` (Contrastive Lift (Bhalgat et al. 2023), Eq. 1) by the resolved
    ``backend``: [num_rays, num_samples] x3 -> [num_rays, num_samples].

    ``backend`` comes from :func:`lift3d.backends.resolve_backends`; an error raised inside nerfacc propagates."""
    if backend == "torch":
        return render_weights_torch(t_starts, t_ends, sigmas)
    if backend == "nerfacc":
        import nerfacc  # resolve_backends has checked that it imports

        return nerfacc.render_weight_from_density(t_starts, t_ends, sigmas)[0]
    raise ValueError(
        f"volume-rendering backend {backend!r}: expected 'nerfacc' or 'torch' (use lift3d.backends.resolve_backends)."
    )


def accumulate(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_i w_i f_i`: weights [R, S], values [R, S, D] -> [R, D]."""
    return torch.einsum("rs,rsd->rd", weights, values)


def render_semantic_log_probs(weights: torch.Tensor, probs: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rendered class log-probabilities (Panoptic Lifting, Siddiqui et al. 2023; Contrastive Lift):

    .. math:: \\log\\Big(\\frac{\\sum_i w_i p_{i}}{\\sum_c \\sum_i w_i p_{ic}} + \\epsilon\\Big)

    weights [R, S], probs [R, S, C] -> [R, C].
    """
    acc = accumulate(weights, probs)
    return torch.log(acc / acc.sum(-1, keepdim=True).clamp_min(1e-12) + eps)
