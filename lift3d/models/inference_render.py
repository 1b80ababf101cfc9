"""Rendering a fitted model fast: empty-space skipping, early ray termination, colour only where weights matter.

:meth:`LiftModel.sample_rays` (the *exact* path, also used in training) evaluates density and colour at every
sample of every ray that lies in an occupied cell, then composites. At render time most of that work is wasted:
behind the first surface the transmittance is ~0, so nothing there can change the picture. :func:`march_rays`
computes the same weights on the same samples (same stratified positions, same box, same occupancy grid, same
interval lengths) but

1. **skips empty space**: the rays are marched ``samples_per_step`` samples at a time; in each step, positions
   and occupancy are computed for the rays still running only, and density only at their samples that lie in
   occupied cells of the model's occupancy grid;
2. **terminates early**: the optical depth :math:`\\tau = \\sum_{j} \\sigma_j \\delta_j` is accumulated step by
   step and a ray stops once its transmittance :math:`T = e^{-\\tau}` falls below ``transmittance_eps``; every
   weight it would still receive is :math:`w_i = T_i \\alpha_i \\le T < \\epsilon` (Contrastive Lift (Bhalgat et
   al. 2023), Eq. 1: :math:`w_i = T_i (1 - e^{-\\sigma_i \\delta_i})`, :math:`T_i = e^{-\\sum_{j<i}\\sigma_j
   \\delta_j}`), and their sum is at most :math:`T < \\epsilon`;
3. **evaluates colour only where it matters**: the colour branch runs only at samples whose weight exceeds
   ``color_weight_threshold`` (the density pass comes first), the skipped weight given the kept samples' mean
   colour;
4. **evaluates the heads at few samples** (:func:`render_heads`): with ``head_samples = k > 0`` the semantic and
   instance heads see only each ray's k heaviest samples, their weights rescaled to the ray's opacity (the rule of
   ``ModelConfig.head_max_samples``, :meth:`LiftModel.render_head`, with a smaller k); ``head_samples = 0`` keeps
   the model's own rule, which never selects a sample past termination when
   ``transmittance_eps <= head_weight_threshold``.

Hence, against the exact path, the rendered colour differs by at most :math:`\\epsilon` plus the skipped colour
weights (times a colour difference), the depth by at most :math:`\\epsilon t_{far}`, and with ``head_samples = 0`` the heads see the same samples
with the same weights (up to float rounding of the cumulative sums). ``tests/test_inference_render.py`` holds the
two paths together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from lift3d.models.lift_model import LiftModel, RaySamples
from lift3d.render.samplers import intervals_from_t, ray_aabb, stratified_t

__all__ = [
    "InferenceRenderConfig",
    "MarchStats",
    "march_rays",
    "render_heads",
    "keep_heaviest_samples",
    "sample_layout",
]


HEAD_SAMPLES_DEFAULT = 2
"""Default of :attr:`InferenceRenderConfig.head_samples` (docs/results/own-data/render-speed.md measures it)."""


@dataclass
class InferenceRenderConfig:
    """How :func:`march_rays` trades exactness for speed (the defaults keep it within ~1e-4 of the exact path)."""

    transmittance_eps: float = 1e-4
    """Early ray termination: a ray stops once its transmittance falls below this; the weight it would still have
    received is below it too. Keep it <= ``ModelConfig.head_weight_threshold`` so the heads see the exact path's
    samples. 0 disables termination."""
    samples_per_step: int = 16
    """Samples per ray looked at per marching step (finished rays are dropped between steps). Smaller wastes fewer
    evaluations past a surface, larger has less per-step overhead."""
    color_weight_threshold: float = 1e-3
    """The colour branch runs only at samples whose weight exceeds this; the kept weights of a ray are rescaled to
    the ray's whole weight, i.e. the skipped weight is given the kept samples' mean colour (the pixel changes by at
    most the skipped weight times the colour difference). 0 = at every sample with a non-zero weight (exact)."""
    head_samples: int = HEAD_SAMPLES_DEFAULT
    """The semantic and instance heads are evaluated at each ray's this many heaviest samples, their weights
    rescaled to the ray's opacity (:func:`keep_heaviest_samples`); the heads are most of the cost of a view.
    0 = the model's own rule (``ModelConfig.head_weight_threshold`` / ``head_max_samples``: exact)."""


@dataclass
class MarchStats:
    """Work done by :func:`march_rays` (accumulated over calls): what a benchmark or a test can count."""

    rays: int = 0
    """Rays marched."""
    samples: int = 0
    """Stratified samples of those rays (rays x samples per ray): what the exact path places."""
    examined_samples: int = 0
    """Samples whose position and occupancy were looked at (those before each ray's termination)."""
    occupied_samples: int = 0
    """Of those, the samples inside the box in occupied cells."""
    density_evaluations: int = 0
    """Samples where density was evaluated (occupied and before termination; the exact path evaluates it at every
    occupied sample of the ray)."""
    color_evaluations: int = 0
    """Samples where the colour branch was evaluated."""
    head_evaluations: int = 0
    """Samples where the semantic and instance heads were evaluated (by :func:`render_heads`)."""


@torch.no_grad()
def march_rays(
    model: LiftModel,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    background: Optional[torch.Tensor] = None,
    num_samples: Optional[int] = None,
    cfg: Optional[InferenceRenderConfig] = None,
    stats: Optional[MarchStats] = None,
) -> RaySamples:
    """Render rays for inference (no autograd) with empty-space skipping and early ray termination.

    The drop-in fast twin of ``model.sample_rays(origins, dirs, None, jitter=False, with_color=True,
    num_samples=num_samples, background=background)`` (module docstring: what differs and by how much).

    Args:
        origins, dirs: [R, 3] world rays (``dirs`` with camera-space z = -1, so ``t`` is optical-axis depth).
        background: [3] or [R, 3] colour behind the box when the model has no background MLP.
        num_samples: stratified samples per ray (default ``model.cfg.num_samples_render``).
        cfg: the speed settings (default :class:`InferenceRenderConfig`).
        stats: if given, the work done is added to it.

    Returns:
        :class:`RaySamples` with ``points`` [R, S, 3] (cube), ``weights`` [R, S] (0 at skipped samples), ``t`` [R, S]
        and ``rgb`` [R, 3]; ``model.render_semantic`` / ``model.render_embedding`` take it as they take the exact
        path's samples.
    """
    cfg = cfg or InferenceRenderConfig()
    mcfg = model.cfg
    n = num_samples or mcfg.num_samples_render
    o_b, d_b, t_mid, length, hit, to_field = sample_layout(model, origins, dirs, n)
    weights = _march_weights(model, o_b, d_b, t_mid, length, hit, to_field, cfg, stats)
    pts = to_field(o_b[:, None, :] + t_mid[..., None] * d_b[:, None, :])  # [R, S, 3]

    # Colour only where the weight matters (the density pass told us where); the kept weights of a ray are rescaled
    # to its whole weight, so the skipped ones count with the kept samples' mean colour instead of black.
    kept = weights > cfg.color_weight_threshold
    ray, sample = kept.nonzero(as_tuple=True)
    viewdirs = torch.nn.functional.normalize(dirs, dim=-1)
    rgb = torch.zeros(origins.shape[0], 3, dtype=pts.dtype, device=pts.device)
    total = weights.sum(-1, keepdim=True)
    if ray.numel():
        _, colour = model.radiance(pts[ray, sample], viewdirs[ray])
        rgb = rgb.index_add(0, ray, weights[ray, sample, None] * colour)
        rgb = rgb * (total / (weights * kept).sum(-1, keepdim=True).clamp_min(1e-12))
    remaining = (1.0 - total).clamp_min(0.0)
    if model.background_mlp is not None:
        rgb = rgb + remaining * torch.sigmoid(model.background_mlp(model.background_encoding(viewdirs)))
    elif background is not None:
        rgb = rgb + remaining * background
    if stats is not None:
        stats.rays += int(origins.shape[0])
        stats.samples += int(t_mid.numel())
        stats.color_evaluations += int(ray.numel())
    return RaySamples(points=pts, weights=weights, t=t_mid, rgb=rgb)


def sample_layout(
    model: LiftModel, origins: torch.Tensor, dirs: torch.Tensor, num_samples: int
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]
]:
    """The samples :meth:`LiftModel.sample_rays` places on rays without jitter and depth, without evaluating a field.

    origins, dirs [R, 3] world -> (o_b, d_b [R, 3]: the rays in box coordinates, ``x_b = (x - centre) / half_size``;
    t_mid [R, S] sample positions; length [R, S] interval lengths in the opacity's units; hit [R] bool: the ray has
    samples; ``to_field``: box coordinates [..., 3] -> the fields' cube, the identity or, for a model with a scene
    contraction, the model's contraction). A sample's field point is ``to_field(o_b + t d_b)``.

    It must place what ``sample_rays`` places: ``tests/test_inference_render.py`` compares the two renders (and, for
    a model with a scene contraction, with the contraction on)."""
    cfg = model.cfg
    o_b = model.to_box(origins) if hasattr(model, "to_box") else model.to_cube(origins)
    d_b = dirs / model.half_size
    if getattr(model, "contracted", False):  # a scene contraction: samples past the box, in disparity
        from lift3d.render import samplers

        far = cfg.contraction_far / d_b.norm(dim=-1).clamp_min(1e-9)
        t, _, _ = samplers.unbounded_t(o_b, d_b, num_samples, cfg.num_samples_outside, far, jitter=False)
        hit = torch.ones(origins.shape[0], dtype=torch.bool, device=origins.device)

        def to_field(x: torch.Tensor) -> torch.Tensor:
            return samplers.contract_box(x, cfg.contraction_shell)

    else:
        near, far = ray_aabb(o_b, d_b)
        hit = far > near
        far = torch.where(hit, far, near + 1e-3)
        t = stratified_t(near, far, num_samples, jitter=False)

        def to_field(x: torch.Tensor) -> torch.Tensor:
            return x

    t_starts, t_ends = intervals_from_t(t, far, float("inf"))
    t_mid = 0.5 * (t_starts + t_ends)
    length = (t_ends - t_starts) * dirs.norm(dim=-1, keepdim=True) / model.scene_scale * cfg.distance_scale
    return o_b, d_b, t_mid, length, hit, to_field


def _march_weights(
    model: LiftModel,
    o_c: torch.Tensor,
    d_c: torch.Tensor,
    t_mid: torch.Tensor,
    length: torch.Tensor,
    hit: torch.Tensor,
    to_field: Callable[[torch.Tensor], torch.Tensor],
    cfg: InferenceRenderConfig,
    stats: Optional[MarchStats],
) -> torch.Tensor:
    """Weights [R, S] of Contrastive Lift Eq. 1 (0 at every sample not evaluated), marching the rays
    ``samples_per_step`` samples at a time: positions and occupancy are computed only for the rays still running,
    density only at their occupied samples, and a ray stops once its transmittance is below ``transmittance_eps``.

    o_c, d_c [R, 3] rays in box coordinates; t_mid [R, S] sample positions; length [R, S] interval lengths (opacity
    units); hit [R] bool (the ray has samples); to_field: box coordinates -> the fields' cube (:func:`sample_layout`)."""
    num_rays, num_samples = t_mid.shape
    weights = torch.zeros(num_rays, num_samples, dtype=t_mid.dtype, device=t_mid.device)
    optical_depth = torch.zeros(num_rays, dtype=t_mid.dtype, device=t_mid.device)  # tau of the samples marched
    stop_depth = math.inf if cfg.transmittance_eps <= 0 else -math.log(cfg.transmittance_eps)
    step = max(1, int(cfg.samples_per_step))
    rows = hit.nonzero(as_tuple=True)[0]
    examined = occupied = 0
    for first in range(0, num_samples, step):
        if rows.numel() == 0:
            break
        last = min(first + step, num_samples)
        tm = t_mid[rows, first:last]  # [r, g]
        pts = to_field(o_c[rows, None, :] + tm[..., None] * d_c[rows, None, :])  # [r, g, 3] field points
        # occupancy.query is False outside the cube: it is the cube test too
        live = model.occupancy.query(pts) if model.occupancy is not None else (pts.abs() <= 1.0).all(-1)
        r_idx, g_idx = live.nonzero(as_tuple=True)
        examined += int(live.numel())
        occupied += int(r_idx.numel())
        if r_idx.numel() == 0:
            continue
        sigma = model.radiance.density(pts[r_idx, g_idx])
        sigma_delta = torch.zeros_like(tm)
        sigma_delta[r_idx, g_idx] = sigma * length[rows[r_idx], first + g_idx]
        # T_i = exp(-(tau_before + sum_{j<i in this step} sigma_j delta_j)), w_i = T_i (1 - exp(-sigma_i delta_i))
        before = optical_depth[rows, None] + torch.cumsum(sigma_delta, -1) - sigma_delta
        weights[rows, first:last] = torch.exp(-before) * (1.0 - torch.exp(-sigma_delta))
        optical_depth[rows] += sigma_delta.sum(-1)
        rows = rows[optical_depth[rows] < stop_depth]
    if stats is not None:
        stats.examined_samples += examined
        stats.occupied_samples += occupied
        stats.density_evaluations += occupied
    return weights


def keep_heaviest_samples(weights: torch.Tensor, k: int) -> torch.Tensor:
    """Each ray's ``k`` largest weights, rescaled so the ray's opacity is unchanged; the others 0:
    :math:`\\tilde w_i = w_i \\frac{\\sum_j w_j}{\\sum_{i' \\in K} w_{i'}}` for :math:`i \\in K` (the k largest).

    weights [R, S] -> [R, S] (unchanged when ``k <= 0`` or ``k >= S``)."""
    if k <= 0 or k >= weights.shape[-1]:
        return weights
    top_w, top_i = torch.topk(weights, k, dim=-1)
    scale = weights.sum(-1, keepdim=True) / top_w.sum(-1, keepdim=True).clamp_min(1e-12)
    return torch.zeros_like(weights).scatter_(1, top_i, top_w * scale)


@torch.no_grad()
def render_heads(
    model: LiftModel,
    samples: RaySamples,
    cfg: Optional[InferenceRenderConfig] = None,
    stats: Optional[MarchStats] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rendered class log-probabilities [R, C] and fast instance embeddings [R, D] of ``samples`` (from
    :func:`march_rays` or ``sample_rays``), by :meth:`LiftModel.render_semantic` / :meth:`LiftModel.render_embedding`
    on the weights of :func:`keep_heaviest_samples` with ``cfg.head_samples`` (the full weights when 0)."""
    cfg = cfg or InferenceRenderConfig()
    k = cfg.head_samples
    if 0 < k < samples.weights.shape[-1]:
        # Compact [R, k] samples: render_semantic / render_embedding work on any number of samples per ray.
        top_w, top_i = torch.topk(samples.weights, k, dim=-1)
        scale = samples.weights.sum(-1, keepdim=True) / top_w.sum(-1, keepdim=True).clamp_min(1e-12)
        points = torch.gather(samples.points, 1, top_i[..., None].expand(-1, -1, samples.points.shape[-1]))
        kept = RaySamples(points=points, weights=top_w * scale, t=torch.gather(samples.t, 1, top_i))
    else:
        kept = samples
    if stats is not None:
        above = (kept.weights > model.cfg.head_weight_threshold).sum(-1)
        limit = model.cfg.head_max_samples
        stats.head_evaluations += int((above.clamp(max=limit) if limit > 0 else above).sum())
    return model.render_semantic(kept), model.render_embedding(kept)
