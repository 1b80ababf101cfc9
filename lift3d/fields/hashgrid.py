"""Multiresolution hash encoding (Müller et al., Instant-NGP 2022): pure PyTorch, or tinycudann on CUDA.

For level :math:`l` with resolution :math:`N_l = \\lfloor N_{min} b^l \\rfloor`,
:math:`b = \\exp((\\ln N_{max} - \\ln N_{min}) / (L - 1))`, a point :math:`x \\in [0, 1]^3` falls in the cell
with corners :math:`\\lfloor x N_l \\rfloor + \\{0,1\\}^3`. Each corner :math:`c` looks up a learned feature
:math:`\\theta_l[h(c)] \\in \\mathbb{R}^F` where :math:`h(c) = c` (dense index) when :math:`(N_l+1)^3 \\le T`
and :math:`h(c) = (c_x \\oplus c_y \\pi_2 \\oplus c_z \\pi_3) \\bmod T` otherwise. The level's feature is the
trilinear interpolation of the 8 corners; the encoding concatenates the L levels: ``[N, 3] -> [N, L F]``.

The torch implementation (:class:`HashGridTorch`) is the reference. :func:`make_hash_grid` builds the one the
run's resolved backend names (:func:`lift3d.backends.resolve_backends`: tinycudann only on CUDA where it
imports). tinycudann's grid is not a drop-in copy of the reference (it offsets positions by half a cell, sizes its
levels and tables its own way and stores half-precision features), so ``tests/gpu`` holds it to the same
invariants rather than to the reference's values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lift3d.backends import HashGridBackend

__all__ = ["HashGridTorch", "make_hash_grid"]

_PRIMES = (1, 2654435761, 805459861)


class HashGridTorch(nn.Module):
    """The reference hash encoding of the module docstring: [N, 3] in [-1, 1] -> [N, L F] (``out_dim = L F``)."""

    def __init__(
        self,
        num_levels: int = 8,
        features_per_level: int = 2,
        log2_table_size: int = 15,
        base_resolution: int = 16,
        max_resolution: int = 256,
        init_scale: float = 1e-4,
    ):
        super().__init__()
        self.num_levels, self.features_per_level = num_levels, features_per_level
        self.table_size = 2**log2_table_size
        growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(num_levels - 1, 1))
        # floor(N_min b^l) with a tolerance, so that float rounding (4 * 1.9999999 = 7.9999998) does not drop a level
        # to N - 1: the last level is N_max.
        self.resolutions = [int(math.floor(base_resolution * growth**level + 1e-6)) for level in range(num_levels)]
        sizes = [min((r + 1) ** 3, self.table_size) for r in self.resolutions]
        self.register_buffer(
            "level_offsets", torch.tensor([0] + list(torch.tensor(sizes).cumsum(0).tolist())), persistent=False
        )
        self.dense = [(r + 1) ** 3 <= self.table_size for r in self.resolutions]
        self.table = nn.Parameter(torch.empty(sum(sizes), features_per_level).uniform_(-init_scale, init_scale))
        corners = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])
        self.register_buffer("corners", corners, persistent=False)
        self.out_dim = num_levels * features_per_level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3] in [-1, 1] -> [N, L F]."""
        x01 = ((x + 1.0) * 0.5).clamp(0.0, 1.0)
        feats = []
        for level, res in enumerate(self.resolutions):
            pos = x01 * res
            base = pos.floor().long().clamp(max=res - 1)
            frac = pos - base  # [N, 3]
            c = base[:, None, :] + self.corners[None]  # [N, 8, 3]
            if self.dense[level]:
                idx = (c[..., 0] * (res + 1) + c[..., 1]) * (res + 1) + c[..., 2]
            else:
                idx = (c[..., 0] * _PRIMES[0]) ^ (c[..., 1] * _PRIMES[1]) ^ (c[..., 2] * _PRIMES[2])
                idx = idx % self.table_size
            idx = idx + self.level_offsets[level]
            w = torch.where(self.corners[None].bool(), frac[:, None, :], 1.0 - frac[:, None, :]).prod(-1)  # [N, 8]
            # F.embedding, not self.table[idx]: its CPU backward accumulates duplicate indices in a fixed order;
            # the backward of advanced indexing (index_put_ with accumulate) does not when torch uses several
            # threads, which made two fits with the same seed differ (measured: semantic head weights up to 0.13).
            feats.append((F.embedding(idx, self.table) * w[..., None]).sum(1))
        return torch.cat(feats, dim=-1)


class _TcnnHashGrid(nn.Module):  # pragma: no cover - needs CUDA + tinycudann (tests/gpu)
    """tinycudann's HashGrid encoding with :class:`HashGridTorch`'s interface: [N, 3] in [-1, 1] -> [N, L F] float32."""

    def __init__(
        self,
        num_levels: int = 8,
        features_per_level: int = 2,
        log2_table_size: int = 15,
        base_resolution: int = 16,
        max_resolution: int = 256,
    ):
        super().__init__()
        import tinycudann as tcnn

        growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(num_levels - 1, 1))
        self.enc = tcnn.Encoding(
            3,
            {
                "otype": "HashGrid",
                "n_levels": num_levels,
                "n_features_per_level": features_per_level,
                "log2_hashmap_size": log2_table_size,
                "base_resolution": base_resolution,
                "per_level_scale": growth,
            },
        )
        self.out_dim = num_levels * features_per_level

    def forward(self, x):
        return self.enc(((x + 1.0) * 0.5).clamp(0.0, 1.0)).float()


def make_hash_grid(backend: HashGridBackend = "torch", **kwargs) -> nn.Module:
    """The hash-grid encoder of the resolved ``backend`` (``Backends.hash_grid``): ``[N, 3]`` in [-1, 1] ->
    ``[N, L F]``. ``kwargs`` are :class:`HashGridTorch`'s size arguments (``init_scale`` only for torch)."""
    if backend == "torch":
        return HashGridTorch(**kwargs)
    if backend == "tcnn":
        return _TcnnHashGrid(**{k: v for k, v in kwargs.items() if k != "init_scale"})
    raise ValueError(
        f"hash-grid backend {backend!r}: expected 'tcnn' or 'torch' (use lift3d.backends.resolve_backends)."
    )
