"""Configuration of a fit: model, optimisation, loss schedule, clustering. Presets live in :mod:`lift3d.presets`
(the engine never imports them: it is handed a resolved :class:`FitConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from lift3d.cluster import ClusterConfig
from lift3d.losses.config import LossConfig
from lift3d.models import ModelConfig

__all__ = ["LossConfig", "OptimConfig", "FitConfig"]


@dataclass
class OptimConfig:
    """Optimisers and batches."""

    iterations: int = 4000
    """Total training iterations."""
    rays_per_batch: int = 2048
    """Random rays (over all training views) per step for the photometric, depth and semantic losses."""
    instance_pixels: int = 1024
    """Pixels of ONE training image per instance step (split into fast and slow halves)."""
    lr_grid: float = 2e-2
    """Learning rate of the feature grids (TensoRF planes/lines, hash tables)."""
    lr_network: float = 1e-3
    """Learning rate of the colour MLP and the semantic field."""
    lr_instance: float = 5e-4
    """Learning rate of the fast instance field (its own optimiser)."""
    lr_head_grid: float = 1e-2
    """Learning rate of the semantic and instance heads' hash tables (``HeadConfig.encoding = "hashgrid"``)."""
    lr_decay_final: float = 0.1
    """Learning rates decay exponentially to this fraction at the last iteration."""
    occupancy_update_every: int = 16
    """Iterations between occupancy-grid updates."""
    occupancy_warmup: int = 64
    """First occupancy update (before it, every sample is evaluated)."""
    background: Literal["black", "white", "random"] = "random"
    """Colour composited behind the field in training (random = white with p = 0.5, as the reference)."""


@dataclass
class FitConfig:
    """Everything one ``lift3d fit`` uses."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Fields and ray sampling."""
    losses: LossConfig = field(default_factory=LossConfig)
    """Losses and their schedule."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimisation."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """Clustering of rendered embeddings into instances."""
    cluster_views: int = 8
    """Training views rendered in full to collect clustering samples and score the min_cluster_size sweep."""
    sweep_sizes: tuple[int, ...] = (10, 20, 40, 60, 80, 100, 130, 160, 190)
    """Candidate HDBSCAN min_cluster_size values (Contrastive Lift (Bhalgat et al. 2023), appendix B.3), scored by
    per-frame PQ against the 2D segments of the clustering views."""
    render_chunk: int = 4096
    """Rays per chunk when rendering whole views."""
    checkpoint_every: int = 500
    """Iterations between atomic checkpoints."""
    seed: int = 0
    """Seed of every random choice (rays, pixel groups, clustering subsamples)."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'."""
    threads: Optional[int] = None
    """torch CPU threads (None: torch's default)."""
