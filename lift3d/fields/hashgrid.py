"""Multiresolution hash encoding (Müller et al., Instant-NGP 2022): pure PyTorch, tinycudann when present.

For level :math:`l` with resolution :math:`N_l = \\lfloor N_{min} b^l \\rfloor`,
:math:`b = \\exp((\\ln N_{max} - \\ln N_{min}) / (L - 1))`, a point :math:`x \\in [0, 1]^3` falls in the cell
with corners :math:`\\lfloor x N_l \\rfloor + \\{0,1\\}^3`. Each corner :math:`c` looks up a learned feature
:math:`\\theta_l[h(c)] \\in \\mathbb{R}^F` where :math:`h(c) = c` (dense index) when :math:`(N_l+1)^3 \\le T`
and :math:`h(c) = (c_x \\oplus c_y \\pi_2 \\oplus c_z \\pi_3) \\bmod T` otherwise. The level's feature is the
trilinear interpolation of the 8 corners; the encoding concatenates the L levels: ``[N, 3] -> [N, L F]``.

The torch implementation (:class:`HashGridTorch`) is the reference; :func:`make_hash_grid` returns the
tinycudann encoding on CUDA when ``import tinycudann`` works and the torch one otherwise (warning once).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
from torch import nn

__all__ = ["HashGridTorch", "make_hash_grid", "tinycudann_available"]

_PRIMES = (1, 2654435761, 805459861)
_warned = False


def tinycudann_available() -> bool:
    try:
        import tinycudann  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        return False
    return True


class HashGridTorch(nn.Module):
    def __init__(self, num_levels: int = 8, features_per_level: int = 2, log2_table_size: int = 15,
                 base_resolution: int = 16, max_resolution: int = 256, init_scale: float = 1e-4):
        super().__init__()
        self.num_levels, self.features_per_level = num_levels, features_per_level
        self.table_size = 2 ** log2_table_size
        growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(num_levels - 1, 1))
        # floor(N_min b^l) with a tolerance, so that float rounding (4 * 1.9999999 = 7.9999998) does not drop a level
        # to N - 1: the last level is N_max.
        self.resolutions = [int(math.floor(base_resolution * growth ** l + 1e-6)) for l in range(num_levels)]
        sizes = [min((r + 1) ** 3, self.table_size) for r in self.resolutions]
        self.register_buffer("level_offsets", torch.tensor([0] + list(torch.tensor(sizes).cumsum(0).tolist())),
                             persistent=False)
        self.dense = [(r + 1) ** 3 <= self.table_size for r in self.resolutions]
        self.table = nn.Parameter(torch.empty(sum(sizes), features_per_level).uniform_(-init_scale, init_scale))
        corners = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])
        self.register_buffer("corners", corners, persistent=False)
        self.out_dim = num_levels * features_per_level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3] in [-1, 1] -> [N, L F]."""
        x01 = ((x + 1.0) * 0.5).clamp(0.0, 1.0)
        feats = []
        for l, res in enumerate(self.resolutions):
            pos = x01 * res
            base = pos.floor().long().clamp(max=res - 1)
            frac = pos - base  # [N, 3]
            c = base[:, None, :] + self.corners[None]  # [N, 8, 3]
            if self.dense[l]:
                idx = (c[..., 0] * (res + 1) + c[..., 1]) * (res + 1) + c[..., 2]
            else:
                idx = (c[..., 0] * _PRIMES[0]) ^ (c[..., 1] * _PRIMES[1]) ^ (c[..., 2] * _PRIMES[2])
                idx = idx % self.table_size
            idx = idx + self.level_offsets[l]
            w = torch.where(self.corners[None].bool(), frac[:, None, :], 1.0 - frac[:, None, :]).prod(-1)  # [N, 8]
            feats.append((self.table[idx] * w[..., None]).sum(1))
        return torch.cat(feats, dim=-1)


class _TcnnHashGrid(nn.Module):  # pragma: no cover - needs CUDA + tinycudann
    def __init__(self, num_levels, features_per_level, log2_table_size, base_resolution, max_resolution):
        super().__init__()
        import tinycudann as tcnn

        growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(num_levels - 1, 1))
        self.enc = tcnn.Encoding(3, {"otype": "HashGrid", "n_levels": num_levels,
                                     "n_features_per_level": features_per_level,
                                     "log2_hashmap_size": log2_table_size,
                                     "base_resolution": base_resolution, "per_level_scale": growth})
        self.out_dim = num_levels * features_per_level

    def forward(self, x):
        return self.enc(((x + 1.0) * 0.5).clamp(0.0, 1.0)).float()


def make_hash_grid(implementation: Literal["auto", "torch", "tcnn"] = "auto", device: str = "cpu", **kwargs) -> nn.Module:
    """The hash grid encoder: tinycudann when ``implementation`` allows it, CUDA is used and it imports."""
    global _warned
    want_tcnn = implementation == "tcnn" or (implementation == "auto" and str(device).startswith("cuda"))
    if want_tcnn and tinycudann_available() and str(device).startswith("cuda"):
        return _TcnnHashGrid(**kwargs)
    if implementation == "tcnn" or (want_tcnn and not _warned):
        warnings.warn("tinycudann is not importable (or no CUDA device): using the pure-PyTorch hash grid.")
        _warned = True
    return HashGridTorch(**kwargs)
