"""Configuration of a fit: model, optimisation, loss schedule, clustering. Presets live in :mod:`lift3d.configs`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from lift3d.cluster import ClusterConfig
from lift3d.models import ModelConfig

__all__ = ["LossConfig", "OptimConfig", "FitConfig"]


@dataclass
class LossConfig:
    """Loss weights, instance objective and the stage schedule (onsets are iterations)."""

    instance_loss: Literal["slow-fast", "vanilla", "linear-assignment", "associative-embedding", "margin",
                           "dino"] = "slow-fast"
    """Instance objective. slow-fast: paper 004 Eq. 4 (+ concentration Eq. 5 when concentration_weight > 0);
    vanilla: Eq. 3 on the fast field alone (+ concentration of the fast embeddings to their own detached segment
    means when concentration_weight > 0, paper Table 3); linear-assignment: Panoptic Lifting (the field outputs
    model.embedding_dim = K logits, Hungarian matching per image; decoded by argmax, no clustering);
    associative-embedding / margin: appendix E metric-learning losses on the fast field; dino: appendix E
    DINO-style slow/fast with projection heads and centering."""
    kernel: Literal["gaussian", "exp_distance"] = "gaussian"
    """Similarity kernel of the slow-fast loss: the paper's Gaussian RBF exp(-||f-s||^2 / bandwidth^2) or the
    reference code's exp(-||f-s||)."""
    kernel_bandwidth: float = 1.0
    """Width of the similarity kernel."""
    concentration_weight: float = 1.0
    """Weight of the concentration loss (paper 004 Eq. 5); 0 disables it."""
    concentration_form: Literal["squared", "gaussian"] = "squared"
    """Concentration as in the paper (squared distance to the slow centroid) or the reference code's
    -exp(-||f - c||^2) * confidence."""
    instance_weight: float = 1.0
    """Weight of the instance objective."""
    semantic_weight: float = 0.1
    """Weight of the confidence-weighted semantic cross-entropy."""
    segment_consistency_weight: float = 0.12
    """Weight of Panoptic Lifting's segment-consistency loss (0.1 x 1.2 in the reference)."""
    depth_weight: float = 0.1
    """Weight of the depth loss (squared error of expected depth, relative to the scene scale); used only when
    the scene provides depth."""
    free_space_weight: float = 0.0
    """Weight of the line-of-sight loss (only with depth): the rendering weight that falls outside
    ``depth +- model.depth_band`` is pushed to zero, which empties free space fast."""
    margin_positive: float = 0.5
    """margin loss: positive pairs are pulled until closer than this."""
    margin_negative: float = 1.5
    """margin loss: negative pairs are pushed until further than this."""
    dino_prototypes: int = 64
    """dino: number of prototypes of the projection heads."""
    semantic_start: int = 200
    """Iteration at which the semantic loss starts (before it: RGB only)."""
    instance_start: int = 400
    """Iteration at which the instance loss starts."""
    segment_consistency_start: int = 700
    """Iteration at which segment consistency starts."""


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
    """Candidate HDBSCAN min_cluster_size values (paper appendix B.3), scored by per-frame PQ against the 2D
    segments of the clustering views."""
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
