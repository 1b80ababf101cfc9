"""Packed ray sampling (occupancy-grid marching + packed volume rendering): the CUDA path of :class:`LiftModel`.

The dense path (:meth:`LiftModel.sample_rays`) evaluates ``[R, S]`` stratified samples and masks the empty ones.
The packed path marches each ray in fixed steps of ``render_step_size`` (cube units of ``t``) and keeps only the
steps whose midpoint lies in an occupied cell of the model's occupancy grid, so the fields see ``n`` samples in
nerfacc's packed layout (``ray_indices [n]``, ``t_starts [n]``, ``t_ends [n]``, sorted by ray then ``t``).
Weights are Contrastive Lift (Bhalgat et al., NeurIPS 2023) Eq. 1 on that layout,

.. math::
    w_k = T_k \\alpha_k,\\quad \\alpha_k = 1 - e^{-\\sigma_k \\delta_k},\\quad
    T_k = \\exp\\big(-\\textstyle\\sum_{j < k,\\ ray(j) = ray(k)} \\sigma_j \\delta_j\\big),

with :math:`\\delta_k` the step length in the model's opacity units (see :mod:`lift3d.models.lift_model`).

Two implementations, chosen by the run's resolved volume-rendering backend (:mod:`lift3d.backends`):

* ``nerfacc`` (CUDA): ``nerfacc.OccGridEstimator.sampling`` (its CUDA grid traversal) on a one-level estimator
  whose ``binaries`` are the model's occupancy grid, and ``nerfacc.render_weight_from_density`` with
  ``ray_indices`` (its CUDA scan kernels);
* ``torch`` (any device, the reference held to nerfacc in ``tests/gpu``):
  :func:`lift3d.render.samplers.march_occupied` and :func:`lift3d.render.volume.render_weights_packed_torch`.

The samples are then padded to ``[R, S_max]`` (``S_max``: the most samples of one ray; padding has weight 0) so
that the heads (:meth:`LiftModel.render_head`) and the losses see the dense :class:`RaySamples` they expect.
``last_backend`` of the model records which implementation ran (tests assert it).
"""

from __future__ import annotations

from typing import Optional

import torch

from lift3d.models.ray_samples import RaySamples
from lift3d.render.samplers import march_occupied
from lift3d.render.volume import render_weights_packed_torch

__all__ = ["packed_samples", "pad_packed", "sample_rays_packed", "nerfacc_estimator", "radiance_mixed_precision"]


def nerfacc_estimator(occupied: torch.Tensor, resolution: int):
    """A one-level ``nerfacc.OccGridEstimator`` over the cube ``[-1, 1]^3`` whose occupied cells are ``occupied``
    (``[resolution^3]`` bool, flat index ``(i r + j) r + k`` for cell ``(i, j, k)`` along ``(x, y, z)``: the layout
    of :class:`lift3d.render.samplers.OccupancyGrid`, which is nerfacc's ``binaries[0, i, j, k]``)."""
    import nerfacc

    est = nerfacc.OccGridEstimator(roi_aabb=[-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], resolution=resolution, levels=1)
    est = est.to(occupied.device)
    est.binaries = occupied.reshape(1, resolution, resolution, resolution).clone()
    return est


def packed_samples(
    grid, origins: torch.Tensor, dirs: torch.Tensor, step: float, backend: str, cache: Optional[dict] = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Occupied fixed steps of rays ``origins, dirs [R, 3]`` (cube coordinates) through ``grid`` (an
    :class:`~lift3d.render.samplers.OccupancyGrid`) -> (ray_indices [n] long, t_starts [n], t_ends [n]) sorted by
    ray then t. ``backend``: ``nerfacc`` or ``torch``. ``cache``: a dict keeping the nerfacc estimator between calls
    (rebuilt when the grid was updated)."""
    if backend == "nerfacc":
        key = (grid.num_updates, id(grid.occupied))
        est = cache.get(key) if cache is not None else None
        if est is None:
            est = nerfacc_estimator(grid.occupied, grid.resolution)
            if cache is not None:
                cache.clear()
                cache[key] = est
        ray_indices, t_starts, t_ends = est.sampling(
            origins.contiguous(), dirs.contiguous(), render_step_size=step, near_plane=0.0, stratified=False
        )
        return ray_indices.long(), t_starts, t_ends
    return march_occupied(grid, origins, dirs, step)


def packed_weights(
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    sigmas: torch.Tensor,
    ray_indices: torch.Tensor,
    num_rays: int,
    backend: str,
) -> torch.Tensor:
    """Eq. 1 weights [n] on the packed layout (all of ``[n]``; ``t_*`` are the opacity lengths' ends)."""
    if backend == "nerfacc":
        import nerfacc

        return nerfacc.render_weight_from_density(t_starts, t_ends, sigmas, ray_indices=ray_indices, n_rays=num_rays)[0]
    return render_weights_packed_torch(t_starts, t_ends, sigmas, ray_indices, num_rays)


def pad_packed(ray_indices: torch.Tensor, num_rays: int, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Scatter packed ``values`` (each ``[n, ...]``, sorted by ray) into ``[R, S_max, ...]`` zeros (``S_max`` >= 1)."""
    counts = torch.bincount(ray_indices, minlength=num_rays)
    s_max = max(int(counts.max()) if counts.numel() else 0, 1)
    first = torch.cumsum(counts, 0) - counts
    position = torch.arange(ray_indices.shape[0], device=ray_indices.device) - first[ray_indices]
    out = []
    for v in values:
        dense = torch.zeros(num_rays, s_max, *v.shape[1:], dtype=v.dtype, device=v.device)
        out.append(dense.index_put((ray_indices, position), v))
    return tuple(out)


def radiance_mixed_precision(radiance, pts: torch.Tensor, viewdirs: torch.Tensor):
    """``radiance(pts, viewdirs)`` (-> sigma [n], rgb [n, 3]) with density and appearance features in float32 and
    only the colour MLP under bfloat16 autocast (on the points' device type); rgb is returned as float32."""
    sigma, feat = radiance._density_and_feature(pts, need_feature=True)
    with torch.autocast(device_type=pts.device.type, dtype=torch.bfloat16):
        logits = radiance.color_mlp(torch.cat([feat, radiance.viewdir_encoding(viewdirs)], dim=-1))
    return sigma, torch.sigmoid(logits.float())


def sample_rays_packed(
    model,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    with_color: bool,
    density_grad: bool = True,
    num_samples: Optional[int] = None,
    jitter: bool = False,
    background: Optional[torch.Tensor] = None,
):
    """:meth:`LiftModel.sample_rays` on the packed layout (no depth-guided samples): ``origins, dirs [R, 3]``
    world rays -> :class:`RaySamples` with ``[R, S_max]`` padded samples. The step is ``2 / n`` cube units with
    ``n = num_samples`` or the model's training / render sample count (``jitter`` picks it, as the dense path)."""

    cfg = model.cfg
    backend = model.backends.volume_rendering
    n = num_samples or (cfg.num_samples if jitter else cfg.num_samples_render)
    step = 2.0 / n
    o_c = model.to_cube(origins)
    d_c = dirs / model.half_size
    cache = model.__dict__.setdefault("_packed_estimator_cache", {})
    ray_indices, t_starts, t_ends = packed_samples(model.occupancy, o_c, d_c, step, backend, cache)
    num_rays = origins.shape[0]
    t_mid = 0.5 * (t_starts + t_ends)
    pts = o_c[ray_indices] + t_mid[:, None] * d_c[ray_indices]
    rgb_packed = None
    with torch.set_grad_enabled(density_grad and torch.is_grad_enabled()):
        if with_color and cfg.mixed_precision:
            vd = torch.nn.functional.normalize(dirs, dim=-1)[ray_indices]
            sigma, rgb_packed = radiance_mixed_precision(model.radiance, pts, vd)
        elif with_color:
            vd = torch.nn.functional.normalize(dirs, dim=-1)[ray_indices]
            sigma, rgb_packed = model.radiance(pts, vd)
        else:
            sigma = model.radiance.density(pts)
        scale = (dirs.norm(dim=-1) / model.scene_scale * cfg.distance_scale)[ray_indices]
        length = (t_ends - t_starts) * scale
        weights = packed_weights(torch.zeros_like(length), length, sigma, ray_indices, num_rays, backend)
    model.last_backend = backend
    w_dense, p_dense, t_dense = pad_packed(ray_indices, num_rays, weights, pts, t_mid)
    out = RaySamples(points=p_dense, weights=w_dense, t=t_dense)
    if with_color:
        rgb = torch.zeros(num_rays, 3, dtype=pts.dtype, device=pts.device).index_add(
            0, ray_indices, weights[:, None] * rgb_packed
        )
        remaining = (1.0 - w_dense.sum(-1, keepdim=True)).clamp_min(0.0)
        if model.background_mlp is not None:
            bg = torch.sigmoid(
                model.background_mlp(model.background_encoding(torch.nn.functional.normalize(dirs, dim=-1)))
            )
            rgb = rgb + remaining * bg
        elif background is not None:
            rgb = rgb + remaining * background
        out.rgb = rgb
    return out
