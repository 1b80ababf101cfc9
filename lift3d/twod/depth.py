r"""Self-supervised monocular depth from posed video (Monodepth2, Godard et al. ICCV 2019; the depth task of paper 001).

A network predicts the depth ``D_t`` of frame ``t`` alone; it is trained without depth labels by re-synthesising
``I_t`` from its neighbours ``I_{t'}`` (Godard et al. 2019, Eq. 2):

.. math:: I_{t'→t} = I_{t'}\bigl\langle \operatorname{proj}(D_t, T_{t→t'}, K) \bigr\rangle

where ``proj`` back-projects every pixel of ``t`` with its depth, moves it into the source camera with the relative
pose ``T_{t→t'}`` and projects it with ``K``; ``⟨·⟩`` is bilinear sampling (:func:`inverse_warp`). The loss is the
minimum photometric error over the sources with the auto-mask plus edge-aware smoothness
(:mod:`lift3d.losses.reprojection`, Eqs. 1, 3, 4, 5). The relative pose comes from the known camera poses of the
sequence (``T_{t→t'} = (c2w_{t'})^{-1} c2w_t``, :func:`relative_pose`) or, for sequences without poses, from a small
pose network (:class:`PoseNetwork`, Monodepth2's separate pose encoder, axis-angle + translation).

The output of a depth decoder is a sigmoid ``σ``, mapped to a disparity between ``1 / max_depth`` and
``1 / min_depth`` (:func:`sigmoid_to_depth`, Monodepth2's bounded inverse depth). Camera axes are lift3d's
(OpenGL: x right, y up, looking down -z; pixel centres at ``u + 0.5``; :mod:`lift3d.geometry.cameras`).

:class:`DepthNetwork` is the stand-alone depth network (the ERFNet encoder of :mod:`lift3d.twod.network` and one
decoder) for the other 2D methods; the spatio-temporal network (:mod:`lift3d.twod.spatio_temporal`) has its own
depth decoder on its temporal features and uses :func:`self_supervised_depth_loss` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from lift3d.losses.reprojection import edge_aware_smoothness, min_reprojection_loss, photometric_error
from lift3d.twod.network import NETWORK_PRESETS, Decoder, Encoder, NetworkConfig

__all__ = [
    "DepthLossConfig",
    "sigmoid_to_depth",
    "relative_pose",
    "inverse_warp",
    "axis_angle_to_matrix",
    "PoseNetwork",
    "self_supervised_depth_loss",
    "DepthNetwork",
]


@dataclass
class DepthLossConfig:
    """Settings of the self-supervised depth loss (Monodepth2's values unless said otherwise)."""

    min_depth: float = 0.1
    """Smallest depth the network can output (metres; Monodepth2: 0.1)."""
    max_depth: float = 20.0
    """Largest depth the network can output (metres; Monodepth2: 100 outdoors; 20 suits generated rooms)."""
    ssim_weight: float = 0.85
    """α of the photometric error ``α/2 (1 - SSIM) + (1 - α) L1``."""
    smoothness_weight: float = 0.001
    """λ of the edge-aware smoothness term."""
    automask: bool = True
    """Drop pixels that the unwarped source explains better than the warped one (Monodepth2 Eq. 5)."""


def sigmoid_to_depth(sigmoid: torch.Tensor, min_depth: float, max_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monodepth2's bounded inverse depth: ``disp = 1/max + (1/min - 1/max) σ``, ``depth = 1 / disp``.

    ``sigmoid [...]`` in (0, 1) -> ``(disparity [...], depth [...])`` with depth in ``[min_depth, max_depth]``.
    """
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    disparity = lo + (hi - lo) * sigmoid
    return disparity, 1.0 / disparity


def relative_pose(c2w_target: torch.Tensor, c2w_source: torch.Tensor) -> torch.Tensor:
    """``T_{t→s} = (c2w_s)^{-1} c2w_t``: target-camera coordinates to source-camera coordinates.

    ``c2w_target``, ``c2w_source``: ``[..., 4, 4]`` camera-to-world (OpenGL axes). Returns ``[..., 4, 4]``.
    """
    return torch.linalg.inv(c2w_source) @ c2w_target


def inverse_warp(
    source: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor, target_to_source: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``I_{s→t}``: the source image sampled where the target's pixels land (Godard et al. 2019, Eq. 2).

    Target pixel ``(u, v)`` with depth ``z`` is the camera point
    ``p_t = [(u + ½ - c_x) z / f_x, -(v + ½ - c_y) z / f_y, -z]``; ``p_s = T_{t→s} p_t``; it lands at
    ``x_s = f_x p_{s,x} / z_s + c_x``, ``y_s = c_y - f_y p_{s,y} / z_s`` with ``z_s = -p_{s,z}`` (continuous image
    coordinates, pixel centres at half-integers), sampled bilinearly (border padding).

    Args:
        source: ``[B, C, H, W]`` source image (or any per-pixel map).
        depth: ``[B, 1, H, W]`` target depth along the optical axis.
        intrinsics: ``[B, 4]`` ``(fx, fy, cx, cy)`` of both cameras, in pixels of this ``H x W``.
        target_to_source: ``[B, 4, 4]`` ``T_{t→s}`` (:func:`relative_pose` or :class:`PoseNetwork`).

    Returns:
        ``(warped [B, C, H, W], valid [B, H, W] bool)``: ``valid`` is False where the point is behind the source
        camera or lands outside its image.
    """
    b, _, h, w = source.shape
    fx, fy, cx, cy = [intrinsics[:, i].reshape(b, 1, 1) for i in range(4)]
    v, u = torch.meshgrid(
        torch.arange(h, dtype=depth.dtype, device=depth.device) + 0.5,
        torch.arange(w, dtype=depth.dtype, device=depth.device) + 0.5,
        indexing="ij",
    )
    z = depth[:, 0]
    p = torch.stack([(u - cx) / fx * z, -(v - cy) / fy * z, -z, torch.ones_like(z)], 1).reshape(b, 4, -1)
    q = (target_to_source.to(depth.dtype) @ p)[:, :3].reshape(b, 3, h, w)
    zs = -q[:, 2]
    in_front = zs > 1e-6
    zs_safe = torch.where(in_front, zs, torch.ones_like(zs))
    xs = fx * q[:, 0] / zs_safe + cx
    ys = cy - fy * q[:, 1] / zs_safe
    grid = torch.stack([2.0 * xs / w - 1.0, 2.0 * ys / h - 1.0], -1)
    warped = F.grid_sample(source, grid.to(source.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    valid = in_front & (xs >= 0) & (xs <= w) & (ys >= 0) & (ys <= h)
    return warped, valid


def axis_angle_to_matrix(axis_angle: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    r"""Rodrigues: ``R = I + sin θ [k]_× + (1 - cos θ) [k]_×²`` with ``θ = ‖r‖``, ``k = r / θ``; returns ``[R | t]``.

    ``axis_angle [B, 3]``, ``translation [B, 3]`` -> ``[B, 4, 4]``.
    """
    b = axis_angle.shape[0]
    theta = axis_angle.norm(dim=1, keepdim=True).clamp(min=1e-8)
    k = axis_angle / theta
    zero = torch.zeros_like(k[:, 0])
    cross = torch.stack([zero, -k[:, 2], k[:, 1], k[:, 2], zero, -k[:, 0], -k[:, 1], k[:, 0], zero], 1).reshape(b, 3, 3)
    s, c = torch.sin(theta)[:, :, None], torch.cos(theta)[:, :, None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand(b, 3, 3)
    rot = eye + s * cross + (1.0 - c) * (cross @ cross)
    out = torch.zeros(b, 4, 4, dtype=axis_angle.dtype, device=axis_angle.device)
    out[:, :3, :3], out[:, :3, 3], out[:, 3, 3] = rot, translation, 1.0
    return out


class PoseNetwork(nn.Module):
    """Monodepth2's separate pose network in small: ``(I_t, I_s)`` stacked -> ``T_{t→s}``.

    Strided 3x3 convolutions (ReLU) over the 6-channel pair, a 1x1 convolution to 6 channels, averaged over the
    image and scaled by ``0.01`` (Monodepth2's scaling, so the initial motion is near identity): axis-angle and
    translation (:func:`axis_angle_to_matrix`). ``forward(target [B, 3, H, W], source [B, 3, H, W]) -> [B, 4, 4]``.
    Only needed for sequences without camera poses.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 6
        for c in widths:
            layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, 6, 1)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        x = torch.cat([target, source], 1) - 0.45
        motion = 0.01 * self.head(self.features(x)).mean((2, 3))
        return axis_angle_to_matrix(motion[:, :3], motion[:, 3:])


def self_supervised_depth_loss(
    disparity: torch.Tensor,
    depth: torch.Tensor,
    target: torch.Tensor,
    sources: torch.Tensor,
    target_to_sources: torch.Tensor,
    intrinsics: torch.Tensor,
    cfg: DepthLossConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""Monodepth2's loss for one target frame per batch item: ``L = μ L_p + λ L_s`` (Godard et al. 2019, Eqs. 1-5).

    Args:
        disparity: ``[B, 1, H, W]`` predicted inverse depth of the target (for the smoothness term).
        depth: ``[B, 1, H, W]`` predicted depth of the target (``1 / disparity``).
        target: ``[B, 3, H, W]`` target image in [0, 1].
        sources: ``[S, B, 3, H, W]`` neighbouring frames in [0, 1].
        target_to_sources: ``[S, B, 4, 4]`` ``T_{t→s}`` per source.
        intrinsics: ``[B, 4]`` ``(fx, fy, cx, cy)``.
        cfg: weights.

    Returns:
        The scalar loss and its parts: ``reprojection`` (μ L_p), ``smoothness`` (L_s), ``automask`` (fraction of
        pixels kept by μ).
    """
    errors, valids = [], []
    for s in range(sources.shape[0]):
        warped, valid = inverse_warp(sources[s], depth, intrinsics, target_to_sources[s])
        errors.append(photometric_error(target, warped, cfg.ssim_weight))
        valids.append(valid)
    identity = None
    if cfg.automask:
        identity = torch.stack([photometric_error(target, sources[s], cfg.ssim_weight) for s in range(len(sources))])
        # ties go to the warp (Monodepth2 adds random noise of 1e-5; a constant keeps runs and DDP ranks identical)
        identity = identity + 1e-5
    l_p, mask = min_reprojection_loss(torch.stack(errors), identity, torch.stack(valids))
    l_s = edge_aware_smoothness(disparity, target)
    total = l_p + cfg.smoothness_weight * l_s
    return total, {
        "reprojection": float(l_p.detach()),
        "smoothness": float(l_s.detach()),
        "automask": float(mask.float().mean()),
    }


class DepthNetwork(nn.Module):
    """A stand-alone monocular depth network: the ERFNet encoder (:mod:`lift3d.twod.network`) and one decoder whose
    sigmoid is mapped to depth by :func:`sigmoid_to_depth`.

    ``forward(images [B, 3, H, W] in [0, 1]) -> (disparity [B, 1, H, W], depth [B, 1, H, W])``; ``H``, ``W``
    divisible by 8.
    """

    def __init__(self, cfg: Optional[NetworkConfig] = None, min_depth: float = 0.1, max_depth: float = 20.0):
        super().__init__()
        self.cfg = cfg or NETWORK_PRESETS["cpu-small"]
        self.min_depth, self.max_depth = min_depth, max_depth
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg, 1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.decoder(self.encoder((images - self.mean) / self.std))
        return sigmoid_to_depth(torch.sigmoid(x), self.min_depth, self.max_depth)
