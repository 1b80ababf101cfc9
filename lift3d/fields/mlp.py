"""Small multi-layer perceptrons and the frequency (positional) encoding."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MLP", "FrequencyEncoding"]


class MLP(nn.Module):
    """``in_dim -> hidden x num_hidden_layers -> out_dim`` with ReLU between layers, no output activation."""

    def __init__(self, in_dim: int, hidden_dim: int, num_hidden_layers: int, out_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(d, hidden_dim), nn.ReLU(inplace=True)]
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, in_dim] -> [N, out_dim]."""
        return self.net(x)


class FrequencyEncoding(nn.Module):
    r"""NeRF positional encoding :math:`\gamma(x) = [x, \sin(2^k \pi x), \cos(2^k \pi x)]_{k<L}`.

    [N, D] -> [N, D (1 + 2L)] (the identity is kept when ``include_input``).
    """

    def __init__(self, in_dim: int, num_frequencies: int, include_input: bool = True):
        super().__init__()
        self.num_frequencies = num_frequencies
        self.include_input = include_input
        self.register_buffer("freqs", (2.0 ** torch.arange(num_frequencies)) * math.pi, persistent=False)
        self.out_dim = in_dim * (int(include_input) + 2 * num_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_frequencies == 0:
            return x
        xf = (x[..., None] * self.freqs).flatten(-2)
        parts = [x] if self.include_input else []
        return torch.cat(parts + [torch.sin(xf), torch.cos(xf)], dim=-1)
