"""Density and view-dependent colour over the normalised scene cube [-1, 1]^3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from lift3d.backends import HashGridBackend, resolve_hash_grid
from lift3d.fields.hashgrid import make_hash_grid
from lift3d.fields.mlp import MLP, FrequencyEncoding
from lift3d.fields.tensorf import TensoRFVM

__all__ = ["RadianceFieldConfig", "RadianceField"]


@dataclass
class RadianceFieldConfig:
    """Density + colour field."""

    backbone: Literal["tensorf", "hashgrid"] = "tensorf"
    """Feature grid: TensoRF vector-matrix decomposition (as in the paper) or a multiresolution hash grid."""
    grid_resolution: int = 128
    """TensoRF: plane/line resolution at the start of training."""
    final_grid_resolution: int = 192
    """TensoRF: resolution the grid grows to (linearly in log space over ``upsample_steps``)."""
    upsample_steps: tuple[int, ...] = ()
    """TensoRF: iterations at which the grid is upsampled towards ``final_grid_resolution``."""
    density_components: int = 16
    """TensoRF: density components per plane-line pair."""
    appearance_components: int = 48
    """TensoRF: appearance components per plane-line pair."""
    appearance_dim: int = 27
    """Width of the appearance feature fed to the colour MLP."""
    density_shift: float = -10.0
    """Density = softplus(grid feature + shift); a negative shift starts the scene empty."""
    hash_levels: int = 12
    """Hash grid: number of levels."""
    hash_log2_table_size: int = 17
    """Hash grid: log2 of the table size per level."""
    hash_max_resolution: int = 512
    """Hash grid: finest level resolution."""
    hash_implementation: Literal["auto", "torch", "tcnn"] = "auto"
    """Hash grid: tinycudann on CUDA when it imports (auto), else pure PyTorch; an explicit ``tcnn`` that cannot run
    is an error. Resolved once per run by :func:`lift3d.backends.resolve_backends`."""
    color_hidden_dim: int = 128
    """Colour MLP width."""
    color_hidden_layers: int = 2
    """Colour MLP hidden layers."""
    viewdir_frequencies: int = 2
    """Positional-encoding frequencies of the view direction (and of the appearance feature, TensoRF)."""


class RadianceField(nn.Module):
    def __init__(self, cfg: RadianceFieldConfig, device: str = "cpu", hash_grid: Optional[HashGridBackend] = None):
        """``hash_grid``: the run's resolved hash-grid backend (``Backends.hash_grid``); None resolves
        ``cfg.hash_implementation`` for ``device`` (only with the hash-grid backbone)."""
        super().__init__()
        self.cfg = cfg
        if cfg.backbone == "tensorf":
            self.density_grid = TensoRFVM(cfg.density_components, cfg.grid_resolution, init_scale=0.1, reduce="sum")
            self.appearance_grid = TensoRFVM(
                cfg.appearance_components, cfg.grid_resolution, init_scale=0.1, reduce="concat"
            )
            self.appearance_basis = nn.Linear(self.appearance_grid.out_dim, cfg.appearance_dim, bias=False)
            self.feature_encoding = FrequencyEncoding(cfg.appearance_dim, cfg.viewdir_frequencies)
            feat_dim = self.feature_encoding.out_dim
        else:
            if hash_grid is None:
                hash_grid = resolve_hash_grid(device, cfg.hash_implementation)[0]
            self.encoding = make_hash_grid(
                hash_grid,
                num_levels=cfg.hash_levels,
                features_per_level=2,
                log2_table_size=cfg.hash_log2_table_size,
                base_resolution=16,
                max_resolution=cfg.hash_max_resolution,
            )
            self.density_mlp = MLP(self.encoding.out_dim, 64, 1, 1 + cfg.appearance_dim)
            feat_dim = cfg.appearance_dim
        self.viewdir_encoding = FrequencyEncoding(3, cfg.viewdir_frequencies)
        self.color_mlp = MLP(feat_dim + self.viewdir_encoding.out_dim, cfg.color_hidden_dim, cfg.color_hidden_layers, 3)

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3] in [-1, 1] -> sigma [N] >= 0 (per unit of normalised length)."""
        return self._density_and_feature(x, need_feature=False)[0]

    def _density_and_feature(self, x: torch.Tensor, need_feature: bool):
        if self.cfg.backbone == "tensorf":
            sigma = F.softplus(self.density_grid(x) + self.cfg.density_shift)
            feat = None
            if need_feature:
                feat = self.feature_encoding(self.appearance_basis(self.appearance_grid(x)))
            return sigma, feat
        h = self.density_mlp(self.encoding(x))
        sigma = F.softplus(h[:, 0] + self.cfg.density_shift)
        return sigma, (h[:, 1:] if need_feature else None)

    def forward(self, x: torch.Tensor, viewdirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, 3], viewdirs: [N, 3] unit -> (sigma [N], rgb [N, 3] in [0, 1])."""
        sigma, feat = self._density_and_feature(x, need_feature=True)
        rgb = torch.sigmoid(self.color_mlp(torch.cat([feat, self.viewdir_encoding(viewdirs)], dim=-1)))
        return sigma, rgb

    def grid_parameters(self) -> list[nn.Parameter]:
        """Parameters of the feature grids (trained with a larger learning rate)."""
        if self.cfg.backbone == "tensorf":
            return list(self.density_grid.parameters()) + list(self.appearance_grid.parameters())
        return list(self.encoding.parameters())

    def network_parameters(self) -> list[nn.Parameter]:
        grid = {id(p) for p in self.grid_parameters()}
        return [p for p in self.parameters() if id(p) not in grid]

    def upsample(self, resolution: int) -> None:
        if self.cfg.backbone == "tensorf":
            self.density_grid.upsample(resolution)
            self.appearance_grid.upsample(resolution)
