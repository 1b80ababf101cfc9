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
    """float32 [R] optical-axis depth of the surface, ``sum_i w_i t_i / sum_i w_i`` (0 where the opacity is 0)."""
    opacity: np.ndarray
    """float32 [R] ``sum_i w_i``."""
    semantic: np.ndarray
    """int64 [R] argmax of the rendered class distribution."""
    embedding: np.ndarray
    """float32 [R, D] rendered fast instance embedding."""


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
    rgb, dep, opa, sem, emb = [], [], [], [], []
    try:
        for i in range(0, origins.shape[0], chunk):
            o, d = origins[i : i + chunk].to(dev), dirs[i : i + chunk].to(dev)
            s = model.sample_rays(
                o, d, None, train=False, with_color=True, num_samples=num_samples, background=torch.zeros(3, device=dev)
            )
            op = s.opacity
            rgb.append(s.rgb.clamp(0, 1).cpu())
            dep.append(torch.where(op > 1e-6, s.depth / op.clamp_min(1e-6), torch.zeros_like(op)).cpu())
            opa.append(op.cpu())
            sem.append(model.render_semantic(s).argmax(-1).cpu())
            emb.append(model.render_embedding(s).cpu())
    finally:
        model.train(was_training)
    cat = lambda xs: torch.cat(xs).numpy()  # noqa: E731
    return RayRender(
        rgb=cat(rgb).astype(np.float32),
        depth=cat(dep).astype(np.float32),
        opacity=cat(opa).astype(np.float32),
        semantic=cat(sem).astype(np.int64),
        embedding=cat(emb).astype(np.float32),
    )
