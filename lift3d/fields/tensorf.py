"""TensoRF vector-matrix (VM) decomposition (Chen et al., ECCV 2022), pure PyTorch.

A feature grid :math:`\\mathcal{G}(x) \\in \\mathbb{R}^{C}` over :math:`[-1, 1]^3` is factorised into three
plane-line pairs, one per axis split (XY-Z, XZ-Y, YZ-X):

.. math::
    \\mathcal{G}_c(x) = \\sum_{m=1}^{3} M^{m}_{c}(x_{\\bar m}) \\, v^{m}_{c}(x_m)

with bilinearly interpolated planes :math:`M^m \\in \\mathbb{R}^{C \\times R \\times R}` and linearly
interpolated lines :math:`v^m \\in \\mathbb{R}^{C \\times R}`. ``reduce="sum"`` sums over components and
modes (the density grid, a scalar per point); ``reduce="concat"`` returns the ``3C`` per-mode products (the
appearance features).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TensoRFVM"]

# (plane axes, line axis) per mode.
_MODES = ((0, 1, 2), (0, 2, 1), (1, 2, 0))


class TensoRFVM(nn.Module):
    def __init__(
        self, num_components: int, resolution: int, init_scale: float = 0.1, reduce: Literal["sum", "concat"] = "sum"
    ):
        super().__init__()
        self.num_components, self.resolution, self.reduce = num_components, resolution, reduce
        self.planes = nn.ParameterList(
            [nn.Parameter(init_scale * torch.randn(1, num_components, resolution, resolution)) for _ in _MODES]
        )
        self.lines = nn.ParameterList(
            [nn.Parameter(init_scale * torch.randn(1, num_components, resolution, 1)) for _ in _MODES]
        )
        self.out_dim = 1 if reduce == "sum" else 3 * num_components

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3] in [-1, 1] -> [N] (sum) or [N, 3C] (concat)."""
        n = x.shape[0]
        outs = []
        for (a, b, c), plane, line in zip(_MODES, self.planes, self.lines):
            # grid_sample takes (x=width coord, y=height coord); plane[h, w] indexes (axis b, axis a).
            pg = x[:, [a, b]].view(1, n, 1, 2)
            lg = torch.stack([torch.zeros_like(x[:, c]), x[:, c]], dim=-1).view(1, n, 1, 2)
            pf = F.grid_sample(plane, pg, mode="bilinear", align_corners=True).view(self.num_components, n)
            lf = F.grid_sample(line, lg, mode="bilinear", align_corners=True).view(self.num_components, n)
            outs.append(pf * lf)
        feats = torch.cat(outs, dim=0)  # [3C, N]
        if self.reduce == "sum":
            return feats.sum(0)
        return feats.t()

    @torch.no_grad()
    def upsample(self, resolution: int) -> None:
        """Resize planes and lines to ``resolution`` (bilinear), as TensoRF grows its grid during training."""
        for i in range(3):
            self.planes[i] = nn.Parameter(
                F.interpolate(self.planes[i].data, size=(resolution, resolution), mode="bilinear", align_corners=True)
            )
            self.lines[i] = nn.Parameter(
                F.interpolate(self.lines[i].data, size=(resolution, 1), mode="bilinear", align_corners=True)
            )
        self.resolution = resolution
