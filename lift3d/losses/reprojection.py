r"""Self-supervised monocular depth losses (Monodepth2: Godard, Mac Aodha, Firman and Brostow, "Digging Into
Self-Supervised Monocular Depth Estimation", ICCV 2019), re-derived from the paper's equations.

A target image ``I_t`` is re-synthesised from a source image ``I_{t'}`` through the predicted depth ``D_t`` and the
relative pose (``I_{t'→t}``, Eq. 2; the warp is :func:`lift3d.twod.depth.inverse_warp`). Here:

* :func:`ssim` and :func:`photometric_error`: ``pe(I_a, I_b) = α/2 (1 - SSIM(I_a, I_b)) + (1 - α) ‖I_a - I_b‖_1``,
  ``α = 0.85`` (Eq. 1's error, per pixel);
* :func:`min_reprojection_loss`: the per-pixel minimum over the source frames (Eq. 4) with the auto-mask of static
  pixels (Eq. 5) ``μ = [min_{t'} pe(I_t, I_{t'→t}) < min_{t'} pe(I_t, I_{t'})]``;
* :func:`edge_aware_smoothness`: ``L_s = |∂_x d*_t| e^{-|∂_x I_t|} + |∂_y d*_t| e^{-|∂_y I_t|}`` on the
  mean-normalised inverse depth ``d*_t = d_t / mean(d_t)`` (Eq. 3).

The total of Monodepth2 is ``L = μ L_p + λ L_s`` with ``λ = 0.001``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ssim", "photometric_error", "min_reprojection_loss", "edge_aware_smoothness"]

SSIM_C1 = 0.01**2
"""SSIM's stabilising constant ``(k_1 L)^2`` with ``k_1 = 0.01`` and dynamic range ``L = 1``."""
SSIM_C2 = 0.03**2
"""SSIM's ``(k_2 L)^2`` with ``k_2 = 0.03``."""


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Structural similarity per pixel over 3x3 windows (mean filter, reflection padding), as Monodepth2 uses it.

    .. math::
        SSIM = \frac{(2 μ_a μ_b + C_1)(2 σ_{ab} + C_2)}{(μ_a^2 + μ_b^2 + C_1)(σ_a^2 + σ_b^2 + C_2)}

    ``a``, ``b``: ``[B, C, H, W]`` in [0, 1]. Returns ``[B, C, H, W]`` in [-1, 1] (1 for identical images).
    """
    pad = lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect")  # noqa: E731
    mu_a, mu_b = F.avg_pool2d(pad(a), 3, 1), F.avg_pool2d(pad(b), 3, 1)
    var_a = F.avg_pool2d(pad(a * a), 3, 1) - mu_a**2
    var_b = F.avg_pool2d(pad(b * b), 3, 1) - mu_b**2
    cov = F.avg_pool2d(pad(a * b), 3, 1) - mu_a * mu_b
    num = (2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)
    return num / den


def photometric_error(target: torch.Tensor, synthesised: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    r"""Monodepth2's photometric error ``pe`` (Godard et al. 2019, Sec. 3, under Eq. 2), per pixel:

    .. math:: pe(I_a, I_b) = \frac{α}{2} (1 - SSIM(I_a, I_b)) + (1 - α) \lVert I_a - I_b \rVert_1

    with the SSIM and L1 terms averaged over the colour channels. ``target``, ``synthesised``: ``[B, 3, H, W]`` in
    [0, 1]. Returns ``[B, H, W]`` (0 for identical images).
    """
    l1 = (target - synthesised).abs().mean(1)
    structural = ((1.0 - ssim(target, synthesised)) / 2.0).clamp(0.0, 1.0).mean(1)
    return alpha * structural + (1.0 - alpha) * l1


def min_reprojection_loss(
    reprojection_errors: torch.Tensor,
    identity_errors: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-pixel minimum reprojection (Godard et al. 2019, Eq. 4) with auto-masking (Eq. 5), averaged over pixels.

    .. math::
        L_p = \frac{1}{|Ω|} \sum_{p ∈ Ω} μ(p) \min_{t'} pe(I_t, I_{t'→t})(p), \qquad
        μ = \Bigl[\min_{t'} pe(I_t, I_{t'→t}) < \min_{t'} pe(I_t, I_{t'})\Bigr]

    Args:
        reprojection_errors: ``[S, B, H, W]`` ``pe(I_t, I_{t'→t})`` for ``S`` source frames.
        identity_errors: ``[S', B, H, W]`` ``pe(I_t, I_{t'})`` of the unwarped sources (None: no auto-mask). Pixels
            that the unwarped source already explains (static relative to the camera, or textureless) drop out.
        valid: ``[S, B, H, W]`` bool, sources whose warp left the image or hit no depth are excluded from the
            minimum (None: all valid); a pixel with no valid source is masked.

    Returns:
        ``(loss scalar, mask μ [B, H, W] bool)``; the mean runs over all ``B H W`` pixels (masked pixels add 0).
    """
    errors = reprojection_errors
    if valid is not None:
        errors = torch.where(valid, errors, torch.full_like(errors, float("inf")))
    best = errors.min(0).values
    mask = torch.isfinite(best)
    if identity_errors is not None:
        mask = mask & (best < identity_errors.min(0).values)
    loss = torch.where(mask, best, torch.zeros_like(best)).mean()
    return loss, mask


def edge_aware_smoothness(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    r"""Edge-aware smoothness (Godard et al. 2019, Eq. 3) of the mean-normalised disparity ``d* = d / mean(d)``:

    .. math:: L_s = \overline{|∂_x d^*| e^{-|∂_x I|}} + \overline{|∂_y d^*| e^{-|∂_y I|}}

    with image gradients averaged over the colour channels and each term averaged over its pixels.
    ``disparity [B, 1, H, W]`` (inverse depth), ``image [B, 3, H, W]``. Returns a scalar (0 for a constant
    disparity).
    """
    d = disparity / (disparity.mean((2, 3), keepdim=True) + 1e-7)
    dx = (d[..., :, 1:] - d[..., :, :-1]).abs()
    dy = (d[..., 1:, :] - d[..., :-1, :]).abs()
    ix = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    iy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()
