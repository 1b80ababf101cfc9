"""Configuration of a fit: model, optimisation, loss schedule, clustering. Presets live in :mod:`lift3d.presets`
(the engine never imports them: it is handed a resolved :class:`FitConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from lift3d.losses.config import LossConfig
from lift3d.models import ModelConfig

__all__ = ["LossConfig", "OptimConfig", "ClusterConfig", "FitConfig"]


@dataclass
class ClusterConfig:
    """How rendered instance embeddings are clustered into objects (run by :mod:`lift3d.cluster` after the fit;
    the settings live here, with the rest of the :class:`FitConfig`, so the engine never imports the clustering)."""

    algorithm: Literal["hdbscan", "dbscan", "meanshift"] = "hdbscan"
    """Clustering back-end. HDBSCAN is the paper's choice; DBSCAN and MeanShift are the alternatives of
    the paper's appendix (they need a length scale: ``dbscan_eps`` / ``meanshift_bandwidth``)."""
    min_cluster_size: int | None = None
    """Smallest cluster, in (subsampled) points. For HDBSCAN it is its ``min_cluster_size``; for DBSCAN
    and MeanShift, clusters with fewer members are discarded (their points are then labelled by the nearest
    kept centroid). None: choose it with :func:`lift3d.cluster.sweep_min_cluster_size`."""
    sweep_sizes: tuple[int, ...] = tuple(range(10, 200, 10))
    """Candidate ``min_cluster_size`` values for the sweep (the reference's 10..190 step 10 on Messy Rooms
    with 50k points; scale them down for small scenes or fewer rendered pixels)."""
    sweep_tolerance: float = 0.01
    """The sweep keeps the smallest candidate whose score is within this of the best (0: the argmax); see
    :func:`lift3d.cluster.sweep_min_cluster_size` for why the argmax over-merges."""
    allow_single_cluster: bool = False
    """HDBSCAN ``allow_single_cluster``. False: the root of the cluster tree (every point in one cluster) is never
    selected. With True, on the 500-object study scene (a 3-D embedding crowded with ~120 points per object)
    HDBSCAN's excess-of-mass rule preferred the root at every ``min_cluster_size``: one cluster for 500 objects
    (on the 25- and 100-object scenes both settings give the same clusters at every size). The price: at a small
    ``min_cluster_size`` one compact cloud (a class with a single object) can be split; at larger sizes nothing
    is found and the fallback gives one centroid, and the sweep chooses among the sizes."""
    min_samples: int = 1
    """HDBSCAN ``min_samples`` (1: core distance = nearest-neighbour distance, least smoothing); also
    DBSCAN's ``min_samples``."""
    max_points: int = 50000
    """At most this many inlier points per class are clustered (seeded random subsample)."""
    max_view_pixels: int = 100_000
    """Clustering views larger than this are rendered (and scored against their 2D segments) on a regular grid of
    every s-th pixel in both directions, s = ceil(sqrt(H W / max_view_pixels)) (a 540x960 view: every 3rd, 180x320);
    0 = every pixel. The clusters need far fewer points than a high-resolution view has."""
    outlier_sigma: float = 3.0
    """Points farther than this many standard deviations from the mean in any dimension are left out of
    the fit and of the min/max rescaling (they are still labelled by nearest centroid)."""
    dbscan_eps: float = 0.05
    """DBSCAN neighbourhood radius, in the rescaled ``[0, 1]`` units."""
    meanshift_bandwidth: float = 0.15
    """MeanShift flat-kernel bandwidth, in the rescaled ``[0, 1]`` units (the reference's value)."""
    weighted_centroids: bool = True
    """HDBSCAN only: centroid = members' mean weighted by HDBSCAN's membership strength
    (``probabilities_``), as HDBSCAN's ``weighted_cluster_centroid``; False: plain mean. DBSCAN and
    MeanShift always use the plain mean of the members."""
    seed: int = 0
    """Seed of the subsampling."""
    position_weight: Optional[float] = 0.0
    """Weight ``w`` of each pixel's rendered surface point joined to its embedding before clustering: the clustered
    feature is ``[e, w (x - x_min) / L]`` with ``e`` the embedding rescaled to ``[0, 1]`` per dimension, ``x`` the
    expected surface point ``o + z d`` in world units and ``L`` the largest side of the points' bounding box. The
    contrastive losses only separate objects seen in one image, so objects never seen together may share an
    embedding; their places in the room still separate them. 0: the embedding alone (the paper). None: chosen
    together with ``min_cluster_size`` from ``position_weights`` on the training views (see
    :func:`lift3d.cluster.decoders.decode_by_clustering`)."""
    position_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    """Candidates for ``position_weight = None``."""
    sample: Literal["uniform", "segment"] = "uniform"
    """Which rendered pixels of the clustering views are clustered. ``uniform``: all of them, then a seeded random
    subsample of ``max_points`` per class (the paper). ``segment``: at most ``points_per_segment`` pixels (seeded)
    of every 2D segment of every clustering view, counting only pixels rendered as a thing class, then the same
    ``max_points`` cap. With hundreds of objects a uniform sample gives a small object a handful of points, fewer
    than ``min_cluster_size``, so it cannot become a cluster; every object a view's 2D segmenter saw gets points
    with ``segment``. Only training views' own 2D segments are used (no test view, no ground truth)."""
    points_per_segment: int = 16
    """``sample = segment``: most pixels taken from one 2D segment of one clustering view."""
    max_score_views: int = 0
    """The ``min_cluster_size`` / ``position_weight`` sweep scores each candidate by per-frame PQ on at most this
    many of the clustering views (evenly spaced; 0 = all). Labelling every pixel of hundreds of views for each of
    dozens of candidates costs more than the clustering; the clusters still come from every clustering view."""


@dataclass
class OptimConfig:
    """Optimisers and batches."""

    iterations: int = 4000
    """Total training iterations."""
    rays_per_batch: int = 2048
    """Random rays (over all training views) per step for the photometric, depth and semantic losses."""
    instance_pixels: int = 1024
    """Pixels per instance step (split into fast and slow halves), drawn from ``instance_images`` training images."""
    instance_images: int = 1
    """Training images per instance step (1: the paper). ``instance_pixels`` are split evenly among them; each
    image's loss is computed on its own pixels only (2D ids are consistent within an image, never across), the
    losses are averaged and the instance field takes one optimiser step. More images per step visit more views
    for the same pixel budget, which matters when a scene has many views per object (500 objects, 1200 views)."""
    instance_pixel_sampling: Literal["image", "segment"] = "image"
    """How an image's pixels are drawn for the instance and segment-consistency losses: ``image`` uniformly
    over its segment pixels (the paper: large segments dominate), ``segment`` evenly over its 2D segments (round
    robin: every segment gives the same number of random pixels until it runs out, so small objects are seen)."""
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
    deterministic: bool = True
    """Use torch's deterministic algorithms (``torch.use_deterministic_algorithms``, process-wide, warnings only
    where an op has none): with several CPU threads, scatter-style backward passes otherwise add duplicates in a
    thread-dependent order and two fits with the same seed drift apart. False trades that for speed."""
