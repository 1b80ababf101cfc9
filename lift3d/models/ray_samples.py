"""The samples of a batch of rays, as every sampler of :mod:`lift3d.models` returns them (the dense
:meth:`~lift3d.models.lift_model.LiftModel.sample_rays` and the packed :mod:`lift3d.models.packed_sampling`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

__all__ = ["RaySamples"]


@dataclass
class RaySamples:
    """Samples of a batch of rays and their (possibly detached) rendering weights."""

    points: torch.Tensor
    """[R, S, 3] sample positions in the field's cube."""
    weights: torch.Tensor
    """[R, S] rendering weights."""
    t: torch.Tensor
    """[R, S] sample positions along the rays (optical-axis depth)."""
    rgb: Optional[torch.Tensor] = None
    """[R, 3] rendered colour, if requested."""

    @property
    def depth(self) -> torch.Tensor:
        """[R] expected optical-axis depth ``sum_i w_i t_i``."""
        return (self.weights * self.t).sum(-1)

    @property
    def opacity(self) -> torch.Tensor:
        return self.weights.sum(-1)
