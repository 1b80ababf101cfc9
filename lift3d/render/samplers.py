"""Sample placement along rays: AABB clipping, stratified samples, depth-guided samples, occupancy grid, and the
scene contraction of unbounded captures with its samples (linear in the box, in disparity beyond it)."""

from __future__ import annotations

import math
from typing import Optional

import torch

__all__ = [
    "ray_aabb",
    "stratified_t",
    "disparity_t",
    "depth_band_t",
    "OccupancyGrid",
    "intervals_from_t",
    "march_occupied",
    "contract_box",
    "uncontract_box",
    "unbounded_t",
]


def ray_aabb(origins: torch.Tensor, dirs: torch.Tensor, near_min: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab intersection with the cube [-1, 1]^3: origins, dirs [R, 3] -> (near, far) [R], far <= near on a miss."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-1.0 - origins) * inv, (1.0 - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(near_min)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far


def stratified_t(
    near: torch.Tensor, far: torch.Tensor, num_samples: int, jitter: bool, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """num_samples sample positions per ray in [near, far], one per equal bin (jittered in training). [R] -> [R, S]."""
    u = torch.arange(num_samples, dtype=near.dtype, device=near.device)
    if jitter:
        u = u + torch.rand(near.shape[0], num_samples, generator=generator, device=near.device)
    else:
        u = u + 0.5
    frac = u / num_samples
    return near[:, None] + (far - near).clamp_min(0)[:, None] * frac


def disparity_t(
    near: torch.Tensor, far: torch.Tensor, num_samples: int, jitter: bool, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    r"""num_samples positions per ray in [near, far] spaced uniformly in disparity (mip-NeRF 360's sampling of
    the contracted region): :math:`t = 1 / (u / f + (1 - u) / n)` for one ``u`` per equal bin of [0, 1]
    (jittered in training). near, far [R] (> 0) -> [R, S], sorted."""
    u = stratified_t(torch.zeros_like(near), torch.ones_like(near), num_samples, jitter, generator)
    return 1.0 / (u / far[:, None] + (1.0 - u) / near[:, None])


def contract_box(x: torch.Tensor, shell: float = 1.0) -> torch.Tensor:
    r"""Scene contraction of mip-NeRF 360 (Barron et al. 2022, Eq. 10) around the foreground box, scaled into the
    field's cube [-1, 1]^3.

    With the box normalised to [-1, 1]^3 (``x`` = box coordinates) and :math:`\|x\| = \|x\|_\infty` (the
    box-shaped variant nerfstudio uses for its scene box, so that the identity region is the box itself):

    .. math::
        \mathrm{contract}(x) = \begin{cases} x & \|x\| \le 1 \\
        \left(1 + k\,(1 - \tfrac{1}{\|x\|})\right) \tfrac{x}{\|x\|} & \|x\| > 1 \end{cases},
        \qquad y = \mathrm{contract}(x) / (1 + k)

    :math:`k` = ``shell`` is the shell's width in box half-sizes; :math:`k = 1` is Eq. 10 exactly
    (:math:`2 - 1/\|x\|`). Everything beyond the box, out to infinity, lands in the shell
    :math:`1 < \|\mathrm{contract}(x)\| < 1 + k`; the map is continuous, and for k = 1 also its radial
    derivative (1 on both sides of the box surface). The box fills :math:`[-1, 1]^3 / (1 + k)` of the field's cube.
    x [..., 3] -> y [..., 3] in [-1, 1]^3.
    """
    norm = x.abs().amax(-1, keepdim=True).clamp_min(1e-12)
    outer = (1.0 + shell * (1.0 - 1.0 / norm)) * (x / norm)
    return torch.where(norm <= 1.0, x, outer) / (1.0 + shell)


def uncontract_box(y: torch.Tensor, shell: float = 1.0, max_norm: float = 1e6) -> torch.Tensor:
    r"""Inverse of :func:`contract_box`: field cube [..., 3] -> box coordinates [..., 3]. With :math:`z = (1+k) y`
    and :math:`r = \|z\|_\infty > 1`, :math:`x = \frac{z}{r} \cdot \frac{k}{1 + k - r}` (the shell's outer
    surface, :math:`r = 1 + k`, is infinity: clamped at ``max_norm``)."""
    z = y * (1.0 + shell)
    r = z.abs().amax(-1, keepdim=True).clamp_min(1e-12)
    radius = (shell / (1.0 + shell - r).clamp_min(shell / max_norm)).clamp(max=max_norm)
    return torch.where(r <= 1.0, z, z / r * radius)


def unbounded_t(
    origins: torch.Tensor,
    dirs: torch.Tensor,
    num_box: int,
    num_outside: int,
    far: torch.Tensor,
    jitter: bool,
    near_min: float = 1e-3,
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample positions of rays through a contracted scene (box = [-1, 1]^3 in the rays' coordinates): ``num_box``
    spaced linearly over the ray's span in the box (as without contraction), ``num_outside // 4`` linearly from
    ``near_min`` to where the ray enters the box, and the rest in disparity (:func:`disparity_t`) from where it
    leaves the box to ``far`` [R] (the ray parameter of "infinity"). A ray that misses the box splits at its closest approach to the box's centre
    instead (its box samples then coincide there and span zero length).

    origins, dirs [R, 3] (box coordinates) -> (t [R, S] sorted, entry [R], exit [R]) with
    S = num_box + num_outside."""
    near_box, far_box = ray_aabb(origins, dirs, near_min)
    hit = far_box > near_box
    closest = -(origins * dirs).sum(-1) / (dirs * dirs).sum(-1).clamp_min(1e-12)
    closest = torch.minimum(closest.clamp_min(near_min), far * 0.5)
    entry = torch.where(hit, near_box, closest)
    exit_ = torch.minimum(torch.where(hit, far_box, closest), far * 0.5)
    entry = torch.minimum(entry, exit_)
    num_pre = num_outside // 4
    parts = [stratified_t(entry, exit_, num_box, jitter, generator)]
    if num_pre > 0:
        parts.append(stratified_t(torch.full_like(entry, near_min), entry, num_pre, jitter, generator))
    if num_outside - num_pre > 0:
        parts.append(disparity_t(exit_, far, num_outside - num_pre, jitter, generator))
    t, _ = torch.cat(parts, -1).sort(-1)
    return t, entry, exit_


def depth_band_t(
    depth: torch.Tensor, band: float, num_samples: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Depth-guided samples uniformly in [depth - band, depth + band]: [R] -> [R, S] (sorted)."""
    u = (
        torch.arange(num_samples, dtype=depth.dtype) + torch.rand(depth.shape[0], num_samples, generator=generator)
    ) / num_samples
    return depth[:, None] + band * (2.0 * u - 1.0)


def intervals_from_t(t: torch.Tensor, far: torch.Tensor, last_step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted sample positions [R, S] -> intervals (starts, ends) [R, S]: [t_i, t_{i+1}), the last one
    ``last_step`` long (clipped to far)."""
    t_end_last = torch.minimum(t[:, -1:] + last_step, torch.maximum(far[:, None], t[:, -1:]))
    ends = torch.cat([t[:, 1:], t_end_last], dim=-1)
    return t, ends


class OccupancyGrid:
    """A binary grid over [-1, 1]^3 that marks cells where density may be non-zero (pure PyTorch twin of
    nerfacc's ``OccGridEstimator``, whose sampling is CUDA-only).

    Every ``update`` evaluates density at one random point per cell, keeps an exponential moving maximum
    ``d <- max(decay * d, sigma(x))`` and marks cells with ``d * step > threshold`` occupied (as nerfacc).
    Until the first update every cell is occupied.
    """

    def __init__(self, resolution: int = 64, threshold: float = 0.01, decay: float = 0.95, device: str = "cpu"):
        self.resolution, self.threshold, self.decay = resolution, threshold, decay
        self.density = torch.zeros(resolution**3, device=device)
        self.occupied = torch.ones(resolution**3, dtype=torch.bool, device=device)
        self.num_updates = 0

    def cell_centres(self, jitter: bool) -> torch.Tensor:
        r = self.resolution
        idx = torch.arange(r**3, device=self.density.device)
        ijk = torch.stack([idx // (r * r), (idx // r) % r, idx % r], dim=-1).float()
        off = torch.rand_like(ijk) if jitter else torch.full_like(ijk, 0.5)
        return (ijk + off) / r * 2.0 - 1.0

    @torch.no_grad()
    def update(self, density_fn, step_size: float, chunk: int = 1 << 16) -> None:
        pts = self.cell_centres(jitter=True)
        sig = torch.cat([density_fn(pts[i : i + chunk]) for i in range(0, pts.shape[0], chunk)])
        self.density = torch.maximum(self.density * self.decay, sig)
        thr = min(self.threshold / step_size, float(self.density.mean()))
        self.occupied = self.density > thr
        self.num_updates += 1

    def query(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., 3] in [-1, 1] -> bool [...] (False outside the cube)."""
        r = self.resolution
        ijk = ((x + 1.0) * 0.5 * r).floor().long()
        inside = ((ijk >= 0) & (ijk < r)).all(-1)
        ijk = ijk.clamp(0, r - 1)
        flat = (ijk[..., 0] * r + ijk[..., 1]) * r + ijk[..., 2]
        return self.occupied[flat] & inside

    def state_dict(self) -> dict:
        return {"density": self.density, "occupied": self.occupied, "num_updates": self.num_updates}

    def load_state_dict(self, s: dict) -> None:
        self.density, self.occupied, self.num_updates = s["density"], s["occupied"], s["num_updates"]


def march_occupied(
    grid: OccupancyGrid, origins: torch.Tensor, dirs: torch.Tensor, step_size: float, near_plane: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed-step marching that keeps the steps whose midpoint lies in an occupied cell: the pure-PyTorch twin of
    nerfacc's ``OccGridEstimator.sampling`` (one level over [-1, 1]^3, no cone angle, no stratification, no
    density-based culling), held to it in ``tests/gpu``.

    Step :math:`k \\ge 0` of a ray is the interval :math:`[t_0 + k \\Delta, t_0 + (k+1) \\Delta)` with
    :math:`t_0` = ``near_plane`` and :math:`\\Delta` = ``step_size``; it is kept iff
    :math:`o + (t_0 + (k + \\tfrac12)\\Delta) d` lies inside the cube in an occupied cell.

    origins, dirs [num_rays, 3] -> (ray_indices [n] long, t_starts [n], t_ends [n]), sorted by ray then by t
    (nerfacc's packed layout).
    """
    _, far = ray_aabb(origins, dirs)
    last_t = max(near_plane, float(far.max())) if far.numel() else near_plane  # the farthest exit from the cube
    num_steps = int(math.ceil((last_t - near_plane) / step_size)) + 1
    t_starts = near_plane + step_size * torch.arange(num_steps, dtype=origins.dtype, device=origins.device)
    t_mid = t_starts + 0.5 * step_size  # [K]
    pts = origins[:, None, :] + t_mid[None, :, None] * dirs[:, None, :]  # [R, K, 3]
    ray_indices, k = grid.query(pts).nonzero(as_tuple=True)
    return ray_indices, t_starts[k], t_starts[k] + step_size
