"""Render arbitrary world rays through a fitted model: colour, depth, opacity, class and instance embedding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lift3d.models import LiftModel


@dataclass
class RayRender:
    """Rendered quantities of R rays."""

    rgb: np.ndarray
    """float32 [R, 3] in [0, 1] (over a black background where the model has no background model)."""
    depth: np.ndarray
    """float32 [R] optical-axis depth of the surface: the median of the ray's weight distribution, the first sample
    ``t_k`` with ``sum_{i<=k} w_i >= sum_i w_i / 2`` (0 where the opacity is 0). Unlike the mean
    ``sum_i w_i t_i / sum_i w_i`` it never places a point between a foreground edge and the background."""
    opacity: np.ndarray
    """float32 [R] ``sum_i w_i``."""
    semantic: np.ndarray
    """int64 [R] argmax of the rendered class distribution."""
    semantic_confidence: np.ndarray
    """float32 [R] probability of that class."""
    embedding: np.ndarray
    """float32 [R, D] rendered fast instance embedding."""


def median_depth(weights: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """weights, t [R, S] (samples in increasing t) -> [R] the first ``t_k`` whose cumulative weight reaches half
    of the ray's total weight."""
    cum = weights.cumsum(-1)
    k = (cum < 0.5 * cum[:, -1:]).sum(-1).clamp(max=t.shape[-1] - 1)
    return t.gather(1, k[:, None])[:, 0]


@torch.no_grad()
def render_rays(
    model: LiftModel, origins: torch.Tensor, dirs: torch.Tensor, chunk: int = 8192, num_samples: int | None = None
) -> RayRender:
    """Render rays ``o + t d`` (origins, dirs [R, 3] world, ``d`` with camera-space z = -1 so ``t`` is optical-axis
    depth) in chunks of ``chunk``; the model's training mode is restored afterwards. ``num_samples`` overrides
    the samples per ray (fewer = coarser and faster, the viewer's preview)."""
    was_training = model.training
    model.eval()
    dev = model.aabb.device
    rgb, dep, opa, sem, conf, emb = [], [], [], [], [], []
    try:
        for i in range(0, origins.shape[0], chunk):
            o, d = origins[i : i + chunk].to(dev), dirs[i : i + chunk].to(dev)
            s = model.sample_rays(
                o,
                d,
                None,
                jitter=False,
                with_color=True,
                num_samples=num_samples,
                background=torch.zeros(3, device=dev),
            )
            op = s.opacity
            rgb.append(s.rgb.clamp(0, 1).cpu())
            dep.append(torch.where(op > 1e-6, median_depth(s.weights, s.t), torch.zeros_like(op)).cpu())
            opa.append(op.cpu())
            logp_max, arg = model.render_semantic(s).max(-1)
            sem.append(arg.cpu())
            conf.append(logp_max.exp().cpu())
            emb.append(model.render_embedding(s).cpu())
    finally:
        model.train(was_training)
    cat = lambda xs: torch.cat(xs).numpy()  # noqa: E731
    return RayRender(
        rgb=cat(rgb).astype(np.float32),
        depth=cat(dep).astype(np.float32),
        opacity=cat(opa).astype(np.float32),
        semantic=cat(sem).astype(np.int64),
        semantic_confidence=cat(conf).astype(np.float32),
        embedding=cat(emb).astype(np.float32),
    )
