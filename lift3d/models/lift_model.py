"""LiftModel: the fields of one scene and how a batch of rays is rendered through them.

World points are mapped to the field's cube by ``x_n = (x - centre) / half_size`` (per axis). A ray
``x(t) = o + t d`` (``t`` = optical-axis depth, see :mod:`lift3d.data.rays`) keeps its parameter ``t`` in the
cube; interval lengths used for opacity are measured in world units divided by ``scene_scale`` (the largest
half size), times ``distance_scale``:  :math:`\\alpha_i = 1 - \\exp(-\\sigma_i \\, s \\, \\delta t_i \\|d\\| / h)`.

With ``scene_contraction = "mipnerf360"`` the box coordinates are further contracted (mip-NeRF 360, Eq. 10; see
:func:`lift3d.render.samplers.contract_box`): the box fills the middle of the field's cube and everything beyond
it, out to infinity, the shell around it; rays are sampled past the box (in disparity) and the occupancy grid
covers the contracted cube. Opacity still uses world lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Optional

import numpy as np
import torch
from torch import nn

from lift3d.backends import Backends, resolve_backends
from lift3d.fields.heads import HeadConfig, InstanceField, SemanticField
from lift3d.fields.mlp import MLP, FrequencyEncoding
from lift3d.fields.radiance import RadianceField, RadianceFieldConfig
from lift3d.models.ray_samples import RaySamples
from lift3d.render.samplers import (
    OccupancyGrid,
    contract_box,
    depth_band_t,
    intervals_from_t,
    ray_aabb,
    stratified_t,
    unbounded_t,
    uncontract_box,
)
from lift3d.render.volume import render_weights

__all__ = ["ModelConfig", "LiftModel", "RaySamples", "resolve_scene_contraction"]


@dataclass
class ModelConfig:
    """Fields and ray sampling."""

    radiance: RadianceFieldConfig = field(default_factory=RadianceFieldConfig)
    """Density + colour field."""
    semantic: HeadConfig = field(default_factory=lambda: HeadConfig(hidden_dim=256, hidden_layers=4))
    """Semantic MLP on xyz (Contrastive Lift: 4 hidden layers of 256)."""
    instance: HeadConfig = field(default_factory=lambda: HeadConfig(hidden_dim=256, hidden_layers=3))
    """Instance-embedding MLP on xyz (Contrastive Lift: 3 hidden layers of 256, raw xyz)."""
    embedding_dim: int = 3
    """Instance embedding dimension D of the embedding objectives (Contrastive Lift: 3 is nearly optimal). An
    objective may declare another output width (linear assignment: ``losses.num_slots``)."""
    ema_momentum: float = 0.9
    """Slow field update ``slow <- m slow + (1 - m) fast`` once per instance step."""
    distance_scale: float = 25.0
    """Multiplies interval lengths (in units of the scene's largest half size) in the opacity."""
    num_samples: int = 96
    """Stratified samples per ray over its span inside the box (before occupancy culling)."""
    num_samples_render: int = 192
    """Stratified samples per ray when rendering views (no depth)."""
    depth_guided_samples: int = 8
    """Extra samples per training ray in a band around the given depth (0 disables; only with depth)."""
    depth_band: float = 0.03
    """Half-width of the depth band, as a fraction of the scene's largest half size."""
    occupancy_resolution: int = 64
    """Cells per axis of the occupancy grid that skips empty space (0 disables)."""
    occupancy_threshold: float = 0.01
    """Opacity per sample step under which a cell is empty."""
    occupancy_decay: float = 0.95
    """Per-update decay of each cell's running-max density (lower forgets the early, cloudy field faster)."""
    head_weight_threshold: float = 1e-4
    """Semantic and instance heads are evaluated only at samples whose weight exceeds this."""
    head_max_samples: int = 0
    """If > 0, the heads are evaluated at most at this many samples per ray, those of largest weight, their
    weights rescaled to the ray's total weight (see :meth:`LiftModel.render_head`). Bounds the cost of a head
    pass by rays x this, whatever the scene's size or how sharp its density is; 0 = every sample above
    ``head_weight_threshold`` (exact)."""
    background: Literal["direction", "none"] = "direction"
    """What a ray sees after leaving the box: ``direction`` = a small MLP of the view direction (an environment
    model for walls and far floor outside the modelled box); ``none`` = a fixed colour given at render time."""
    background_class: Optional[int] = 0
    """Semantic class of the mass left when a ray leaves the box (the transmittance at exit); None: no class."""
    scene_contraction: Literal["auto", "none", "mipnerf360"] = "auto"
    """``none``: the field models the box only; rays are clipped to it and what lies beyond is the background
    model's. ``mipnerf360``: mip-NeRF 360's contraction (Eq. 10, box-shaped): the box at the centre of the field's
    cube, everything beyond it contracted into a shell around it, so an unbounded capture's far floor, walls and
    sky are modelled too (at a resolution falling with distance); rays get ``num_samples_outside`` more samples.
    ``auto`` (resolved when a fit starts, see :func:`resolve_scene_contraction`): ``none`` when the box is given
    (the scene's ``aabb`` or ``aabb`` below), ``mipnerf360`` when it is the automatic foreground box."""
    contraction_shell: float = 1.0
    """Width of the contracted shell in box half-sizes (1 = mip-NeRF 360's Eq. 10; the box then spans the middle
    half of the field's cube per axis; smaller values give the box more of the grid)."""
    num_samples_outside: int = 32
    """With contraction: extra samples per ray outside the box, a quarter linearly between the camera and the box,
    the rest uniformly in disparity from the box's exit to ``contraction_far``."""
    contraction_far: float = 100.0
    """With contraction: where rays end, in box half-sizes from the camera (contracted to 99% of the shell)."""
    aabb: Optional[tuple[float, float, float, float, float, float]] = None
    """Foreground box ``xmin ymin zmin xmax ymax zmax`` (world units) overriding the scene's ``aabb`` and the
    automatic box (see :func:`lift3d.data.rays.scene_bounds`); None = the scene's, else automatic."""
    volume_rendering_backend: Literal["auto", "nerfacc", "torch"] = "auto"
    """Who computes the rendering weights: nerfacc (auto: on CUDA when its extension loads) or the pure-PyTorch
    twin (auto on CPU: the same operations); resolved once per run by :func:`lift3d.backends.resolve_backends`."""
    packed_sampling: Literal["off", "cuda", "on"] = "off"
    """Ray sampling layout: ``off`` = dense stratified samples; ``cuda`` = packed occupancy-grid marching
    (:mod:`lift3d.models.packed_sampling`, nerfacc on CUDA) on CUDA devices, dense elsewhere; ``on`` = packed on
    every device (torch twin on CPU). Packed needs the occupancy grid; rays with depth-guided samples stay dense."""
    mixed_precision: bool = False
    """Packed path only: evaluate the colour MLP under bfloat16 autocast (density, weights and compositing stay
    float32: the exponentials of Eq. 1 are where low precision would hurt)."""


def resolve_scene_contraction(setting: str, box_given: bool) -> str:
    """``auto`` -> ``none`` when the foreground box is given (a scene's ``aabb`` or ``--model.aabb``: a bounded
    region someone chose), else ``mipnerf360`` (the automatic box of a capture that may be unbounded); other
    settings are returned as they are. Measured in docs/results/own-data/bounds.md."""
    if setting != "auto":
        return setting
    return "none" if box_given else "mipnerf360"


class LiftModel(nn.Module):
    def __init__(
        self,
        cfg: ModelConfig,
        num_classes: int,
        aabb: np.ndarray,
        device: str = "cpu",
        instance_dim: Optional[int] = None,
        backends: Optional[Backends] = None,
    ):
        """``instance_dim``: width of the instance field's output (the objective's ``output_dim``, e.g. K slots
        for linear assignment); None = ``cfg.embedding_dim``. ``backends``: the run's resolved backends (the
        trainer resolves and logs them once); None resolves ``cfg.volume_rendering_backend`` and
        ``cfg.radiance.hash_implementation`` for ``device`` here."""
        super().__init__()
        self.cfg = cfg
        if backends is None:
            backends = resolve_backends(device, cfg.volume_rendering_backend, cfg.radiance.hash_implementation)
        self.backends = backends
        self.num_classes = num_classes
        aabb = torch.as_tensor(np.asarray(aabb), dtype=torch.float32)
        self.register_buffer("aabb", aabb)
        self.radiance = RadianceField(cfg.radiance, device, hash_grid=backends.hash_grid)
        self.semantic = SemanticField(cfg.semantic, num_classes)
        self.instance = InstanceField(cfg.instance, instance_dim or cfg.embedding_dim, cfg.ema_momentum)
        self.background_mlp = None
        if cfg.background == "direction":
            self.background_encoding = FrequencyEncoding(3, 4)
            self.background_mlp = MLP(self.background_encoding.out_dim, 64, 2, 3)
        self.occupancy = (
            OccupancyGrid(cfg.occupancy_resolution, cfg.occupancy_threshold, cfg.occupancy_decay, device=device)
            if cfg.occupancy_resolution > 0
            else None
        )

    # ------------------------------------------------------------------ geometry
    @property
    def centre(self) -> torch.Tensor:
        return (self.aabb[0] + self.aabb[1]) * 0.5

    @property
    def half_size(self) -> torch.Tensor:
        return (self.aabb[1] - self.aabb[0]) * 0.5

    @property
    def scene_scale(self) -> float:
        return float(self.half_size.max())

    @property
    def contracted(self) -> bool:
        """Whether the contraction is on (an unresolved ``auto`` counts as off: a model built outside a fit)."""
        return self.cfg.scene_contraction == "mipnerf360"

    def to_box(self, x: torch.Tensor) -> torch.Tensor:
        """World [..., 3] -> box coordinates [..., 3] (the box is [-1, 1]^3): ``(x - centre) / half_size``."""
        return (x - self.centre) / self.half_size

    def in_box(self, x: torch.Tensor) -> torch.Tensor:
        """World [..., 3] -> bool [...]: inside the foreground box."""
        return (self.to_box(x).abs() <= 1.0).all(-1)

    def to_cube(self, x: torch.Tensor) -> torch.Tensor:
        """World [..., 3] -> the fields' cube [..., 3]: box coordinates, contracted when ``scene_contraction``."""
        x = self.to_box(x)
        return contract_box(x, self.cfg.contraction_shell) if self.contracted else x

    def from_cube(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_cube`."""
        if self.contracted:
            x = uncontract_box(x, self.cfg.contraction_shell)
        return x * self.half_size + self.centre

    def occupancy_step(self) -> float:
        """Typical sample spacing, in the opacity's length units, used by the occupancy threshold."""
        return self.cfg.distance_scale * 2.0 / max(self.cfg.num_samples, 1)

    @torch.no_grad()
    def update_occupancy(self) -> None:
        if self.occupancy is not None:
            self.occupancy.update(self.radiance.density, self.occupancy_step())

    # ------------------------------------------------------------------ rendering
    def uses_packed_sampling(self, depth: Optional[torch.Tensor]) -> bool:
        """Whether :meth:`sample_rays` takes the packed path (``cfg.packed_sampling``, an occupancy grid, and no
        depth-guided samples for this batch)."""
        mode = self.cfg.packed_sampling
        if mode == "off" or self.occupancy is None:
            return False
        if depth is not None and self.cfg.depth_guided_samples > 0:
            return False
        return mode == "on" or str(self.occupancy.density.device).startswith("cuda")

    def sample_rays(
        self,
        origins: torch.Tensor,
        dirs: torch.Tensor,
        depth: Optional[torch.Tensor],
        jitter: bool,
        with_color: bool,
        density_grad: bool = True,
        num_samples: Optional[int] = None,
        background: Optional[torch.Tensor] = None,
    ) -> RaySamples:
        """March rays through the field.

        Args:
            origins, dirs: [R, 3] world rays (``dirs`` with camera-space z = -1).
            depth: [R] optical-axis depth (0 = unknown) for depth-guided samples, or None.
            jitter: jitter the stratified sample positions (training). It also picks the default sample count:
                ``cfg.num_samples`` with jitter, ``cfg.num_samples_render`` without, unless ``num_samples`` is given.
            with_color: also evaluate colour and composite ``rgb`` (over ``background`` [3] or [R, 3]).
            density_grad: keep the autograd graph of density (False for instance/semantic-only batches).
        """
        cfg = self.cfg
        if self.uses_packed_sampling(depth):
            from lift3d.models.packed_sampling import sample_rays_packed

            return sample_rays_packed(self, origins, dirs, with_color, density_grad, num_samples, jitter, background)
        self.last_backend = "dense"
        n = num_samples or (cfg.num_samples if jitter else cfg.num_samples_render)
        o_c = self.to_box(origins)
        d_c = dirs / self.half_size
        if self.contracted:
            far = cfg.contraction_far / d_c.norm(dim=-1).clamp_min(1e-9)
            t, near, _ = unbounded_t(o_c, d_c, n, cfg.num_samples_outside, far, jitter=jitter)
            near = torch.full_like(near, 1e-3)  # depth-guided samples may lie anywhere on the ray
            hit = torch.ones_like(near, dtype=torch.bool)
        else:
            near, far = ray_aabb(o_c, d_c)
            hit = far > near
            far = torch.where(hit, far, near + 1e-3)
            t = stratified_t(near, far, n, jitter=jitter)
        forced = torch.zeros_like(t, dtype=torch.bool)
        if depth is not None and cfg.depth_guided_samples > 0:
            valid = depth > 0
            band = cfg.depth_band * self.scene_scale / dirs.norm(dim=-1).clamp_min(1e-6)
            u = depth_band_t(torch.zeros_like(depth), 1.0, cfg.depth_guided_samples)  # in [-1, 1]
            t_d = depth[:, None] + band[:, None] * u
            t_d = torch.where(valid[:, None], t_d, near[:, None].expand_as(t_d))
            t_d = t_d.clamp(min=near[:, None], max=far[:, None])
            t = torch.cat([t, t_d], dim=-1)
            forced = torch.cat([forced, valid[:, None].expand_as(t_d)], dim=-1)
            t, order = t.sort(dim=-1)
            forced = torch.gather(forced, 1, order)
        # Contiguous intervals [t_i, t_{i+1}) (the last one ends at far). Capping them at one stratified step would
        # leave gaps between jittered samples and under-count the optical depth by ~1/6 in training.
        t_starts, t_ends = intervals_from_t(t, far, float("inf"))
        t_mid = 0.5 * (t_starts + t_ends)
        pts = o_c[:, None, :] + t_mid[..., None] * d_c[:, None, :]  # [R, S, 3]
        if self.contracted:
            pts = contract_box(pts, cfg.contraction_shell)
        live = hit[:, None] & (pts.abs() <= 1.0).all(-1)
        if self.occupancy is not None:
            live &= self.occupancy.query(pts) | forced
        idx = live.nonzero(as_tuple=True)
        flat_pts = pts[idx]
        sigma = torch.zeros(t.shape, dtype=pts.dtype, device=pts.device)
        rgb_samples = None
        with torch.set_grad_enabled(density_grad and torch.is_grad_enabled()):
            if with_color:
                vd = torch.nn.functional.normalize(dirs, dim=-1)[idx[0]]
                s, c = self.radiance(flat_pts, vd)
                rgb_samples = torch.zeros(*t.shape, 3, dtype=pts.dtype, device=pts.device)
                rgb_samples = rgb_samples.index_put(idx, c)
            else:
                s = self.radiance.density(flat_pts)
            sigma = sigma.index_put(idx, s)
            length = (t_ends - t_starts) * dirs.norm(dim=-1, keepdim=True) / self.scene_scale * cfg.distance_scale
            weights = render_weights(torch.zeros_like(length), length, sigma, self.backends.volume_rendering)
        out = RaySamples(points=pts, weights=weights, t=t_mid)
        if with_color:
            rgb = (weights[..., None] * rgb_samples).sum(1)
            remaining = (1.0 - weights.sum(-1, keepdim=True)).clamp_min(0.0)
            if self.background_mlp is not None:
                bg = torch.sigmoid(
                    self.background_mlp(self.background_encoding(torch.nn.functional.normalize(dirs, dim=-1)))
                )
                rgb = rgb + remaining * bg
            elif background is not None:
                rgb = rgb + remaining * background
            out.rgb = rgb
        return out

    def render_head(
        self, head: Callable[[torch.Tensor], torch.Tensor], samples: RaySamples, rows: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """:math:`\\sum_i \\bar w_i f(x_i)` with the weights detached, evaluating ``head`` only where
        :math:`\\bar w_i >` ``head_weight_threshold``. rows: optional [R'] subset -> [R', D].

        With ``head_max_samples = k > 0`` the sum runs over the set :math:`K` of the k largest weights of the
        ray (those above the threshold) and each kept weight is rescaled so that the ray's opacity is unchanged:
        :math:`\\sum_{i \\in K} \\bar w_i \\frac{\\sum_j \\bar w_j}{\\sum_{i' \\in K} \\bar w_{i'}} f(x_i)`
        (exact when a ray has at most k samples above the threshold)."""
        w = samples.weights.detach()
        pts = samples.points
        if rows is not None:
            w, pts = w[rows], pts[rows]
        k = self.cfg.head_max_samples
        if k > 0 and w.shape[-1] > k:
            top_w, top_i = torch.topk(w, k, dim=-1)  # [R, k]
            scale = w.sum(-1, keepdim=True) / top_w.sum(-1, keepdim=True).clamp_min(1e-12)
            kept = (top_w > self.cfg.head_weight_threshold).nonzero(as_tuple=True)
            ray = kept[0]
            sample = top_i[kept]
            vals = head(pts[ray, sample])
            weight = (top_w * scale)[kept]
        else:
            ray, sample = (w > self.cfg.head_weight_threshold).nonzero(as_tuple=True)
            vals = head(pts[ray, sample])
            weight = w[ray, sample]
        out = torch.zeros(w.shape[0], vals.shape[-1], dtype=vals.dtype, device=vals.device)
        return out.index_add(0, ray, weight[:, None] * vals)

    def render_semantic(self, samples: RaySamples, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rendered class log-probabilities [R, C]:
        :math:`\\log(\\sum_i \\bar w_i p_i / \\sum_c \\sum_i \\bar w_i p_{ic} + 10^{-8})`
        The mass left after the box (transmittance at exit) goes to ``background_class``;
        (a 1e-6 uniform mass is added so an empty ray renders the uniform distribution)."""
        acc = self.render_head(self.semantic, samples, rows)
        if self.cfg.background_class is not None and self.cfg.background_class < acc.shape[-1]:
            w = samples.weights.detach() if rows is None else samples.weights.detach()[rows]
            remaining = (1.0 - w.sum(-1)).clamp_min(0.0)
            acc = acc.index_add(1, torch.tensor([self.cfg.background_class], device=acc.device), remaining[:, None])
        # A ray with (almost) no rendered mass gets the uniform distribution instead of log(1e-8).
        tiny = 1e-6
        return torch.log((acc + tiny / acc.shape[-1]) / (acc.sum(-1, keepdim=True) + tiny) + 1e-8)

    def render_embedding(
        self, samples: RaySamples, rows: Optional[torch.Tensor] = None, slow: bool = False
    ) -> torch.Tensor:
        """Rendered instance embeddings [R, D] from the fast (or slow) field."""
        return self.render_head(lambda x: self.instance(x, slow=slow), samples, rows)
