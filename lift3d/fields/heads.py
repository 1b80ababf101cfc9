"""Semantic field and the instance-embedding fields (fast, and the EMA-following slow copy).

Both are shallow MLPs on the normalised position (Contrastive Lift, Sec. 3: no grid encoding), optionally with a
frequency encoding, or with a multiresolution hash-grid encoding in front (``HeadConfig.encoding = "hashgrid"``:
the MLP then sees the grid features next to the frequency-encoded position, which lets a small head hold
hundreds of small objects). They are rendered with the density field's *detached* weights, so their losses
never reach density or colour.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from lift3d.fields.hashgrid import HashGridTorch
from lift3d.fields.mlp import MLP, FrequencyEncoding

__all__ = ["HeadConfig", "SemanticField", "InstanceField", "ema_update"]


@dataclass
class HeadConfig:
    """An MLP head on xyz."""

    hidden_dim: int = 256
    """Width of each hidden layer."""
    hidden_layers: int = 3
    """Number of hidden layers (Contrastive Lift: 3 for the instance field, 4 for the semantic field)."""
    position_frequencies: int = 0
    """Frequency-encoding octaves of xyz before the MLP; 0 = raw xyz as in the paper."""
    encoding: Literal["frequency", "hashgrid"] = "frequency"
    """``frequency``: the MLP sees the frequency-encoded xyz only (paper: raw xyz). ``hashgrid``: it also sees
    a multiresolution hash-grid encoding of xyz (pure PyTorch, :class:`lift3d.fields.hashgrid.HashGridTorch`),
    trained with ``OptimConfig.lr_head_grid``."""
    hash_levels: int = 8
    """hashgrid: number of resolution levels."""
    hash_features: int = 2
    """hashgrid: features per level."""
    hash_log2_table_size: int = 15
    """hashgrid: log2 of the entries per level (coarse levels are stored densely when they fit)."""
    hash_base_resolution: int = 8
    """hashgrid: resolution of the coarsest level over the field's cube."""
    hash_max_resolution: int = 128
    """hashgrid: resolution of the finest level over the field's cube."""


class _PositionMLP(nn.Module):
    """``x [N, 3] in [-1, 1]^3 -> MLP([grid(x), freq(x)]) [N, out_dim]`` (the grid part only with ``hashgrid``)."""

    def __init__(self, cfg: HeadConfig, out_dim: int):
        super().__init__()
        if cfg.encoding not in ("frequency", "hashgrid"):
            raise ValueError(f"HeadConfig.encoding must be 'frequency' or 'hashgrid', got {cfg.encoding!r}")
        self.encoding = FrequencyEncoding(3, cfg.position_frequencies)
        self.grid = None
        in_dim = self.encoding.out_dim
        if cfg.encoding == "hashgrid":
            self.grid = HashGridTorch(
                cfg.hash_levels,
                cfg.hash_features,
                cfg.hash_log2_table_size,
                cfg.hash_base_resolution,
                cfg.hash_max_resolution,
            )
            in_dim += self.grid.out_dim
        self.mlp = MLP(in_dim, cfg.hidden_dim, cfg.hidden_layers, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoding(x)
        if self.grid is not None:
            h = torch.cat([self.grid(x), h], dim=-1)
        return self.mlp(h)

    def grid_parameters(self) -> list[nn.Parameter]:
        """The hash tables (empty without ``hashgrid``); they get their own learning rate."""
        return [] if self.grid is None else list(self.grid.parameters())

    def network_parameters(self) -> list[nn.Parameter]:
        """The MLP's weights."""
        return list(self.mlp.parameters())


class SemanticField(_PositionMLP):
    """x [N, 3] -> class probabilities p [N, C] (softmax per sample)."""

    def __init__(self, cfg: HeadConfig, num_classes: int):
        super().__init__(cfg, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(super().forward(x), dim=-1)


@torch.no_grad()
def ema_update(slow: nn.Module, fast: nn.Module, momentum: float) -> None:
    r"""Slow parameters follow the fast ones: :math:`\theta_s \leftarrow m \theta_s + (1 - m) \theta_f`."""
    for ps, pf in zip(slow.parameters(), fast.parameters()):
        ps.mul_(momentum).add_(pf.detach(), alpha=1.0 - momentum)


class InstanceField(nn.Module):
    """Fast embedding field f(x) trained by gradient, and a slow copy that is never optimised.

    The slow field starts as a copy of the fast one and follows it by :func:`ema_update` (Contrastive Lift, Sec. 3.2).
    Its parameters have ``requires_grad = False`` so no loss can reach it.
    """

    def __init__(self, cfg: HeadConfig, embedding_dim: int = 3, momentum: float = 0.9):
        super().__init__()
        self.embedding_dim, self.momentum = embedding_dim, momentum
        self.fast = _PositionMLP(cfg, embedding_dim)
        self.slow = copy.deepcopy(self.fast)
        for p in self.slow.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, slow: bool = False) -> torch.Tensor:
        """x [N, 3] -> embeddings [N, D] from the fast (default) or slow field."""
        if slow:
            with torch.no_grad():
                return self.slow(x)
        return self.fast(x)

    def update_slow(self) -> None:
        ema_update(self.slow, self.fast, self.momentum)
