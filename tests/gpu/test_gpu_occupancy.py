"""nerfacc's occupancy-grid marching (``OccGridEstimator.sampling``, CUDA-only) against the pure-PyTorch twin
:func:`lift3d.render.samplers.march_occupied` on the same occupied cells: the same steps are kept."""

from __future__ import annotations

import numpy as np
import torch

from lift3d.render.samplers import OccupancyGrid, march_occupied

CUDA = "cuda"
RES = 16
"""Cells per axis."""
STEP = 0.01
"""Marching step (the cube is 2 wide: ~200 steps per crossing, ~3 per cell)."""


def _grid_and_rays(seed: int = 0, num_rays: int = 512):
    gen = torch.Generator().manual_seed(seed)
    grid = OccupancyGrid(resolution=RES, device=CUDA)
    # Occupied: a ball of radius 0.6 plus 10% of the other cells at random (isolated cells, many face crossings).
    centres = grid.cell_centres(jitter=False).cpu()
    occupied = (centres.norm(dim=-1) < 0.6) | (torch.rand(RES**3, generator=gen) < 0.1)
    grid.occupied = occupied.to(CUDA)
    # Origins on a sphere of radius 3 looking at random points of the cube (some rays miss it).
    origins = torch.nn.functional.normalize(torch.randn(num_rays, 3, generator=gen), dim=-1) * 3.0
    targets = 1.4 * (torch.rand(num_rays, 3, generator=gen) * 2 - 1)
    dirs = torch.nn.functional.normalize(targets - origins, dim=-1)
    return grid, origins.to(CUDA), dirs.to(CUDA)


def _step_keys(rays: torch.Tensor, t_starts: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Each kept step as one integer ``ray * num_steps + k`` with ``k = round(t_start / STEP)``."""
    k = torch.round(t_starts / STEP).long()
    return rays.long() * num_steps + k


def test_nerfacc_occupancy_marching_keeps_the_same_steps_as_the_twin(nerfacc_cuda):
    grid, origins, dirs = _grid_and_rays()
    estimator = nerfacc_cuda.OccGridEstimator(roi_aabb=[-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], resolution=RES).to(CUDA)
    # Same cell order: nerfacc's binaries[level, x, y, z] and OccupancyGrid's flat (x * R + y) * R + z.
    estimator.binaries = grid.occupied.view(1, RES, RES, RES).clone()
    rays_n, starts_n, ends_n = estimator.sampling(origins, dirs, near_plane=0.0, render_step_size=STEP)
    rays_t, starts_t, ends_t = march_occupied(grid, origins, dirs, STEP)
    assert rays_t.numel() > 10_000 and rays_n.numel() > 10_000
    # Both march t_k = k STEP from 0 (nerfacc adds STEP k times in float32, hence the tolerance).
    for starts, ends in ((starts_n, ends_n), (starts_t, ends_t)):
        torch.testing.assert_close(ends - starts, torch.full_like(starts, STEP), atol=1e-4, rtol=0)
        torch.testing.assert_close(starts, torch.round(starts / STEP) * STEP, atol=1e-3, rtol=0)
    num_steps = int(10.0 / STEP)
    keys_n = _step_keys(rays_n, starts_n, num_steps)
    keys_t = _step_keys(rays_t, starts_t, num_steps)
    assert torch.equal(keys_n, torch.sort(keys_n).values)  # packed layout: by ray, then along it
    assert torch.equal(keys_t, torch.sort(keys_t).values)
    only_one = torch.from_numpy(np.setxor1d(keys_n.cpu().numpy(), keys_t.cpu().numpy())).to(CUDA)
    # A step may differ only where its midpoint lies on a cell face (float rounding decides the cell).
    ray, k = only_one // num_steps, only_one % num_steps
    mid = origins[ray] + ((k.float() + 0.5) * STEP)[:, None] * dirs[ray]
    cell_coord = (mid + 1.0) * 0.5 * RES
    to_face = (cell_coord - torch.round(cell_coord)).abs().amin(-1)
    assert (to_face < 5e-3).all(), f"{int((to_face >= 5e-3).sum())} steps kept by only one of nerfacc and the twin"
    assert only_one.numel() <= 1e-2 * keys_t.numel()


def test_every_cell_occupied_marches_the_whole_crossing(nerfacc_cuda):
    grid, origins, dirs = _grid_and_rays(seed=1, num_rays=64)
    grid.occupied = torch.ones_like(grid.occupied)
    estimator = nerfacc_cuda.OccGridEstimator(roi_aabb=[-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], resolution=RES).to(CUDA)
    estimator.binaries = torch.ones(1, RES, RES, RES, dtype=torch.bool, device=CUDA)
    rays_n, _, _ = estimator.sampling(origins, dirs, near_plane=0.0, render_step_size=STEP)
    rays_t, _, _ = march_occupied(grid, origins, dirs, STEP)
    counts_n = torch.bincount(rays_n.long(), minlength=64)
    counts_t = torch.bincount(rays_t.long(), minlength=64)
    assert (counts_n - counts_t).abs().max() <= 2  # the entry and exit steps may round differently
    assert int(counts_t.max()) > 100
