"""The causal temporal model of paper 001 (Sec. 4 and App. A.1): residual 3-D convolutions over per-frame encodings.

Frame ``t``'s temporal feature ``z_t`` depends only on the encodings ``x_s``, ``s <= t``: every convolution over time
is padded on the past side only (``(k_t - 1) · d_t`` zero frames before the clip, none after,
:class:`CausalConv3d`), and the normalisation is per frame (:class:`FrameGroupNorm`; a GroupNorm over ``[C, T, H, W]``
would let frame ``t + 1`` shift frame ``t``'s statistics). Each residual block is paper 001's: a ``1x1x1`` projection
halving the channels, a causal ``k_t x 3 x 3`` convolution, a ``1x1x1`` projection back, added to the input; only the
first and the last block convolve over time (``k_t = 2``), the others use ``k_t = 1``. The spatial size is kept.
The temporal receptive field is ``1 + 2 (k_t - 1)`` frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalConv3d", "FrameGroupNorm", "CausalResidualBlock", "CausalTemporalModel"]


class CausalConv3d(nn.Module):
    """A 3-D convolution ``k_t x k_h x k_w`` over ``[B, C, T, H, W]`` whose output at ``t`` sees inputs ``<= t``.

    Time is padded with ``(k_t - 1) · dilation_t`` zero frames in front and none behind; space symmetrically
    (``k // 2``). Output ``[B, C_out, T, H, W]``.
    """

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (2, 3, 3), time_dilation: int = 1):
        super().__init__()
        kt, kh, kw = kernel
        self.time_pad = (kt - 1) * time_dilation
        self.space_pad = (kw // 2, kw // 2, kh // 2, kh // 2)
        self.conv = nn.Conv3d(cin, cout, kernel, dilation=(time_dilation, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.space_pad + (self.time_pad, 0)))


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm applied to every frame of ``[B, C, T, H, W]`` on its own (statistics over ``C / G, H, W``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).transpose(1, 2)


def _frame_norm(channels: int, groups: int) -> FrameGroupNorm:
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return FrameGroupNorm(g, channels)


class CausalResidualBlock(nn.Module):
    """Paper 001's block: ``1x1x1`` (C -> C/2), causal ``k_t x 3 x 3``, ``1x1x1`` (C/2 -> C), + input, ReLU."""

    def __init__(self, channels: int, time_kernel: int, groups: int):
        super().__init__()
        mid = max(1, channels // 2)
        self.reduce = nn.Conv3d(channels, mid, 1)
        self.n1 = _frame_norm(mid, groups)
        self.conv = CausalConv3d(mid, mid, (time_kernel, 3, 3))
        self.n2 = _frame_norm(mid, groups)
        self.expand = nn.Conv3d(mid, channels, 1)
        self.n3 = _frame_norm(channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.n1(self.reduce(x)))
        y = torch.relu(self.n2(self.conv(y)))
        return torch.relu(x + self.n3(self.expand(y)))


class CausalTemporalModel(nn.Module):
    """``blocks`` residual blocks; the first and last convolve over ``time_kernel`` frames, the rest over one.

    ``forward(x [B, C, T, H, W]) -> [B, C, T, H, W]``; output frame ``t`` is a function of input frames ``<= t``.
    """

    def __init__(self, channels: int, blocks: int = 4, time_kernel: int = 2, groups: int = 4):
        super().__init__()
        if blocks < 1:
            raise ValueError(f"the temporal model needs at least one block (got {blocks}).")
        kernels = [time_kernel if i in (0, blocks - 1) else 1 for i in range(blocks)]
        self.blocks = nn.Sequential(*[CausalResidualBlock(channels, k, groups) for k in kernels])
        self.receptive_field = 1 + sum(k - 1 for k in kernels)
        """Number of frames (the current one included) that one output frame sees."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)
