"""Presets: every named configuration of ``lift3d fit`` lives here.

- ``contrastive-lift``: Contrastive Lift (Bhalgat et al. 2023) as published (TensoRF VM 16/48 components growing
  128^3 -> 192^3, instance MLP 3x256 on raw xyz, D = 3, slow-fast + concentration, 400k iterations with semantics
  at 40k, instance at 160k, segment consistency at 280k, 2048 rays). Meant for a GPU.
- ``cpu-small``: the CPU preset used by ``lift3d demo``: small grid, occupancy grid, depth-guided sampling and a
  line-of-sight loss, a short schedule (minutes on 2 cores for a ~96x96, 40-view scene). Unlike the paper, its
  semantic and instance MLPs see xyz through a 4-octave frequency encoding: with raw xyz a 1500-iteration
  schedule leaves the semantic field too smooth (measured on a 64x64, 8-object scene: PQ^scene 0.61 raw vs 0.91
  encoded, docs/results/cpu-small-ablation.md); the semantic MLP also sees a hash-grid encoding (on the
  100-object study scene: PQ^scene 0.702 -> 0.763, test mIoU 0.845 -> 0.888, docs/results/cpu-small-choices), and the heads are
  evaluated at the 8 heaviest samples of a ray at most (``head_max_samples``: the instance step's cost then no
  longer grows with blurrier density in larger scenes).
- Instance-objective variants, each in a paper-size and a ``cpu-small-`` form, everything else shared:
  ``no-concentration`` (slow-fast without Eq. 5; paper-size name ``contrastive-lift-no-concentration``),
  ``vanilla`` (Eq. 3), ``vanilla-concentration`` (Table 3), ``panoptic-lifting`` (linear assignment; K = 500
  paper-size, 100 on CPU: override with ``--losses.num-slots K``), ``associative-embedding``, ``margin``,
  ``dino`` (appendix E).
- ``gpu-fast``: aimed at a 600-view 256x256 Messy Rooms scene in at most 10 minutes on one H100 / H200: hash-grid
  radiance (tinycudann when it imports), the packed CUDA path (``model.packed_sampling = cuda``; colour MLP in
  bfloat16), 20k iterations
  of 4096 rays. Not measured yet (no GPU was lent when it was written): ``tools/bench_gpu.py`` measures it.
- ``tiny``: a seconds-long configuration for tests.

Presets are resolved here and by the callers (CLI, demo, tools); the engine is handed the resulting
:class:`FitConfig` and never imports this module. Overrides: :func:`lift3d.config_io.apply_overrides`.
"""

from __future__ import annotations

from typing import Callable, Optional

from lift3d.cluster import ClusterConfig
from lift3d.engine.config import FitConfig, LossConfig, OptimConfig
from lift3d.fields.heads import HeadConfig
from lift3d.fields.radiance import RadianceFieldConfig
from lift3d.models import ModelConfig

__all__ = ["PRESETS", "get_preset"]


def _contrastive_lift() -> FitConfig:
    return FitConfig(
        model=ModelConfig(
            radiance=RadianceFieldConfig(
                backbone="tensorf",
                grid_resolution=128,
                final_grid_resolution=192,
                upsample_steps=(20_000, 40_000, 60_000, 80_000),
                density_components=16,
                appearance_components=48,
            ),
            semantic=HeadConfig(256, 4),
            instance=HeadConfig(256, 3),
            embedding_dim=3,
            ema_momentum=0.9,
            num_samples=256,
            num_samples_render=384,
            occupancy_resolution=128,
        ),
        losses=LossConfig(semantic_start=40_000, instance_start=160_000, segment_consistency_start=280_000),
        optim=OptimConfig(
            iterations=400_000,
            rays_per_batch=2048,
            instance_pixels=1024,
            lr_grid=1e-2,
            lr_network=5e-4,
            lr_instance=5e-4,
        ),
        cluster=ClusterConfig(),
        cluster_views=24,
        sweep_sizes=tuple(range(10, 200, 10)),
        render_chunk=8192,
        checkpoint_every=5000,
    )


def _cpu_small() -> FitConfig:
    return FitConfig(
        model=ModelConfig(
            radiance=RadianceFieldConfig(
                backbone="tensorf",
                grid_resolution=64,
                final_grid_resolution=96,
                upsample_steps=(500,),
                density_components=8,
                appearance_components=12,
                appearance_dim=16,
                color_hidden_dim=64,
                color_hidden_layers=1,
            ),
            semantic=HeadConfig(128, 2, position_frequencies=4, encoding="hashgrid"),
            instance=HeadConfig(128, 3, position_frequencies=4),
            embedding_dim=3,
            ema_momentum=0.9,
            num_samples=32,
            num_samples_render=128,
            depth_guided_samples=8,
            depth_band=0.04,
            occupancy_resolution=48,
            occupancy_decay=0.7,
            head_max_samples=8,
        ),
        losses=LossConfig(
            semantic_start=100,
            instance_start=250,
            segment_consistency_start=900,
            semantic_weight=0.5,
            depth_weight=0.5,
            free_space_weight=0.5,
        ),
        optim=OptimConfig(
            iterations=1500,
            rays_per_batch=1024,
            instance_pixels=512,
            lr_grid=2e-2,
            lr_network=2e-3,
            lr_instance=1e-3,
            occupancy_update_every=16,
            occupancy_warmup=32,
        ),
        cluster=ClusterConfig(max_points=20_000),
        cluster_views=6,
        sweep_sizes=(10, 20, 40, 60, 80, 120, 160),
        render_chunk=4096,
        checkpoint_every=250,
    )


def _tiny() -> FitConfig:
    cfg = _cpu_small()
    cfg.model.radiance = RadianceFieldConfig(
        backbone="tensorf",
        grid_resolution=32,
        final_grid_resolution=32,
        density_components=4,
        appearance_components=6,
        appearance_dim=8,
        color_hidden_dim=32,
        color_hidden_layers=1,
    )
    cfg.model.semantic = HeadConfig(32, 1)
    cfg.model.instance = HeadConfig(64, 2)
    cfg.model.num_samples, cfg.model.num_samples_render, cfg.model.occupancy_resolution = 32, 48, 24
    cfg.losses = LossConfig(semantic_start=5, instance_start=10, segment_consistency_start=15)
    cfg.optim = OptimConfig(
        iterations=30, rays_per_batch=256, instance_pixels=128, occupancy_warmup=8, occupancy_update_every=8
    )
    cfg.cluster_views, cfg.sweep_sizes, cfg.checkpoint_every = 2, (5, 10), 10
    return cfg


def _gpu_fast() -> FitConfig:
    """Contrastive Lift's method aimed at a 600-view 256x256 Messy Rooms scene in at most 10 minutes on one
    H100 / H200 (issue 14): the paper's fields with a hash-grid radiance backbone (tinycudann when it imports),
    the packed CUDA path (nerfacc occupancy marching + packed rendering, :mod:`lift3d.models.packed_sampling`),
    20k iterations of 4096 rays with the paper's loss onsets scaled by 20k / 400k. Not yet measured on a GPU:
    ``tools/bench_gpu.py`` measures it."""
    cfg = _contrastive_lift()
    cfg.model.radiance = RadianceFieldConfig(backbone="hashgrid", hash_implementation="auto")
    cfg.model.packed_sampling, cfg.model.mixed_precision = "cuda", True
    cfg.model.num_samples, cfg.model.num_samples_render = 256, 384
    cfg.losses = LossConfig(semantic_start=2_000, instance_start=8_000, segment_consistency_start=14_000)
    cfg.optim = OptimConfig(
        iterations=20_000,
        rays_per_batch=4096,
        instance_pixels=2048,
        lr_grid=1e-2,
        lr_network=5e-4,
        lr_instance=5e-4,
    )
    cfg.cluster_views, cfg.checkpoint_every, cfg.render_chunk = 12, 5000, 65536
    return cfg


def _variant(
    base: Callable[[], FitConfig], instance_loss: str, concentration_weight: float, num_slots: Optional[int] = None
) -> Callable[[], FitConfig]:
    """A preset that differs from ``base`` only in its instance objective (Contrastive Lift (Bhalgat et al. 2023),
    Tables 2-3, appendix E)."""

    def make() -> FitConfig:
        cfg = base()
        cfg.losses.instance_loss = instance_loss
        cfg.losses.concentration_weight = concentration_weight
        if num_slots is not None:
            cfg.losses.num_slots = num_slots  # K logits, an upper bound on the number of objects
        return cfg

    return make


# name suffix -> (instance objective, concentration weight, K slots paper-size, K slots on CPU)
_VARIANTS = {
    "": ("slow-fast", 1.0, None, None),
    "no-concentration": ("slow-fast", 0.0, None, None),
    "vanilla": ("vanilla", 0.0, None, None),
    "vanilla-concentration": ("vanilla", 1.0, None, None),
    "panoptic-lifting": ("linear-assignment", 0.0, 500, 100),  # K = 500 as Panoptic Lifting on Messy Rooms
    "associative-embedding": ("associative-embedding", 0.0, None, None),
    "margin": ("margin", 0.0, None, None),
    "dino": ("dino", 0.0, None, None),
}

PRESETS: dict[str, Callable[[], FitConfig]] = {"tiny": _tiny, "gpu-fast": _gpu_fast}
for _suffix, (_loss, _conc, _k_paper, _k_cpu) in _VARIANTS.items():
    # paper-size presets: contrastive-lift (the method), vanilla, panoptic-lifting, ...
    _paper_name = {"": "contrastive-lift", "no-concentration": "contrastive-lift-no-concentration"}.get(
        _suffix, _suffix
    )
    PRESETS[_paper_name] = _variant(_contrastive_lift, _loss, _conc, _k_paper)
    # CPU presets: cpu-small, cpu-small-vanilla, cpu-small-panoptic-lifting, ...
    PRESETS["cpu-small" + (f"-{_suffix}" if _suffix else "")] = _variant(_cpu_small, _loss, _conc, _k_cpu)


def get_preset(name: str) -> FitConfig:
    """A fresh :class:`FitConfig` of the preset ``name``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
