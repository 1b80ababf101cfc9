r"""Depth supervision for dense or sparse depth maps (0 = unknown): the expected-depth loss and the line-of-sight
loss, each weighted per depth pixel.

A batch holds R random rays; V of them carry depth (all of them for a dense map, ~0.4% for nerfstudio's SfM depth).
Both losses are means over the rays with depth, times the share :math:`|V| / R` of the batch's rays that carry it
(``per_pixel``): every depth pixel then weighs the same whether the map is dense or sparse, and a dense map's losses
are the plain means. Without the share, each of a sparse map's few points weighs :math:`R / |V|` times more, so a
batch's gradient swings between nothing and a few hundred times a dense pixel's.
"""

from __future__ import annotations

import torch

__all__ = ["depth_share", "expected_depth_loss", "line_of_sight_loss"]


def depth_share(depth: torch.Tensor, per_pixel: bool = True) -> float:
    """:math:`|V| / R`, the share of the rays ``depth`` [R] whose depth is known (> 0); 1 when not ``per_pixel``."""
    if not per_pixel or depth.numel() == 0:
        return 1.0
    return float((depth > 0).float().mean())


def expected_depth_loss(
    rendered: torch.Tensor, depth: torch.Tensor, used: torch.Tensor, scale: float, share: float = 1.0
) -> torch.Tensor:
    r"""Squared error of the rendered expected depth, relative to the scene scale, on the rays ``used``:

    .. math::
        L_{depth} = \frac{|V|}{R} \cdot \frac{1}{|U|} \sum_{r \in U} \Bigl(\frac{\hat D_r - D_r}{s}\Bigr)^2

    Args:
        rendered: ``[R]`` expected optical-axis depth :math:`\hat D_r = \sum_i w_{ri} t_{ri}`.
        depth: ``[R]`` measured depth (0 = unknown).
        used: ``[R]`` bool, the rays U that count (depth known, surface inside the modelled box); non-empty.
        scale: the scene scale s (world units).
        share: :math:`|V| / R` (:func:`depth_share`).

    >>> expected_depth_loss(torch.tensor([1.0, 5.0, 0.0, 0.0]), torch.tensor([2.0, 5.0, 0.0, 0.0]),
    ...                     torch.tensor([True, True, False, False]), 1.0, 0.5)
    tensor(0.2500)
    """
    err = (rendered[used] - depth[used]) / scale
    return share * (err**2).mean()


def line_of_sight_loss(
    weights: torch.Tensor,
    t: torch.Tensor,
    depth: torch.Tensor,
    dir_norm: torch.Tensor,
    band: float,
    share: float = 1.0,
) -> torch.Tensor:
    r"""Rendering weight outside the band around the measured surface, on rays with depth:

    .. math::
        L_{los} = \frac{|V|}{R} \cdot \frac{1}{|V|} \sum_{r \in V} \sum_{i:\ |t_{ri} - D_r|\,\|d_r\| > b} w_{ri}

    Args:
        weights: ``[V, S]`` rendering weights of the rays with depth.
        t: ``[V, S]`` their sample positions (optical-axis depth).
        depth: ``[V]`` their measured depth.
        dir_norm: ``[V]`` :math:`\|d_r\|` (world length per unit of t).
        band: b, the half-width of the band (world units).
        share: :math:`|V| / R` (:func:`depth_share`).
    """
    dist = (t - depth[:, None]).abs() * dir_norm[:, None]
    return share * (weights * (dist > band)).sum(-1).mean()
