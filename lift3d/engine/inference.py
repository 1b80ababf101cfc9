"""After fitting: render whole views of a fitted model (RGB, depth, semantic class, instance embedding).

Views are rendered by the fast inference path (:func:`lift3d.models.march_rays` and
:func:`lift3d.models.render_heads`: empty-space skipping, early ray termination, colour and heads only where weights
matter) unless ``exact=True`` asks for the training-time path
(:meth:`LiftModel.sample_rays`: every occupied sample evaluated), which the fast path is tested against.

Decoding the rendered instance field into ids (clustering or argmax) happens a layer above, in
:mod:`lift3d.pipeline.decoding`, so the engine never imports :mod:`lift3d.cluster` or :mod:`lift3d.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from lift3d.data.rays import PixelSet
from lift3d.models import InferenceRenderConfig, LiftModel, MarchStats, march_rays, render_heads

__all__ = ["ViewRender", "render_pixel_set"]


@dataclass
class ViewRender:
    """Rendered outputs of one view, [H, W] (x channels)."""

    frame_index: int
    rgb: np.ndarray
    """float32 [H, W, 3]."""
    depth: np.ndarray
    """float32 [H, W] expected optical-axis depth."""
    semantic: np.ndarray
    """int64 [H, W] argmax of the rendered class probabilities."""
    embedding: np.ndarray
    """float32 [H, W, D] fast instance embedding."""
    instance: Optional[np.ndarray] = None
    """int64 [H, W] instance ids after clustering (0 = stuff)."""
    position: Optional[np.ndarray] = None
    """float32 [H, W, 3] expected surface point ``o + depth d`` in world units (``d`` has camera-space z = -1);
    what :class:`lift3d.cluster.SceneClusters` joins to the embedding when ``cluster.position_weight > 0``."""


@torch.inference_mode()
def render_pixel_set(
    model: LiftModel,
    pixels: PixelSet,
    chunk: int = 4096,
    progress: Optional[Callable[[int], None]] = None,
    exact: bool = False,
    fast: Optional[InferenceRenderConfig] = None,
    stats: Optional[MarchStats] = None,
) -> list[ViewRender]:
    """Render every pixel of every view of ``pixels`` (no depth used: views are treated as novel), ``chunk`` rays
    at a time in inference mode (no autograd).

    Args:
        progress: called with the number of rays rendered after every chunk (e.g. a progress bar's advance).
        exact: render with :meth:`LiftModel.sample_rays` (every occupied sample; today's training-time path)
            instead of the fast :func:`lift3d.models.march_rays`.
        fast: settings of the fast path (default :class:`InferenceRenderConfig`).
        stats: the fast path adds the work it did to it (field evaluations; ignored with ``exact``).
    """
    was_training = model.training
    model.eval()
    device = model.aabb.device
    background = torch.zeros(3, device=device)
    out = []
    try:
        for pos, frame_index in enumerate(pixels.view_ids):
            rows = pixels.view_rows(pos)
            h, w = pixels.sizes[pos]
            rgb, dep, sem, emb, pos = [], [], [], [], []
            for i in range(0, rows.numel(), chunk):
                r = rows[i : i + chunk]
                o, d = (x.to(device) for x in pixels.rays(r))
                if exact:
                    s = model.sample_rays(o, d, None, jitter=False, with_color=True, background=background)
                    log_probs, embedding = model.render_semantic(s), model.render_embedding(s)
                else:
                    s = march_rays(model, o, d, background=background, cfg=fast, stats=stats)
                    log_probs, embedding = render_heads(model, s, fast, stats)
                rgb.append(s.rgb.cpu())
                dep.append(s.depth.cpu())
                pos.append((o + s.depth[:, None] * d).cpu())
                sem.append(log_probs.argmax(-1).cpu())
                emb.append(embedding.cpu())
                if progress is not None:
                    progress(int(r.numel()))
            out.append(
                ViewRender(
                    frame_index=frame_index,
                    rgb=torch.cat(rgb).clamp(0, 1).reshape(h, w, 3).numpy(),
                    depth=torch.cat(dep).reshape(h, w).numpy(),
                    semantic=torch.cat(sem).reshape(h, w).numpy().astype(np.int64),
                    embedding=torch.cat(emb).reshape(h, w, -1).numpy(),
                    position=torch.cat(pos).reshape(h, w, 3).numpy(),
                )
            )
    finally:
        model.train(was_training)
    return out
