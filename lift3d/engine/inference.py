"""After fitting: render whole views of a fitted model (RGB, depth, semantic class, instance embedding).

Decoding the rendered instance field into ids (clustering or argmax) happens a layer above, in
:mod:`lift3d.pipeline.decoding`, so the engine never imports :mod:`lift3d.cluster` or :mod:`lift3d.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from lift3d.data.rays import PixelSet
from lift3d.models import LiftModel

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


@torch.no_grad()
def render_pixel_set(model: LiftModel, pixels: PixelSet, chunk: int = 4096, progress=None) -> list[ViewRender]:
    """Render every pixel of every view of ``pixels`` (no depth used: views are treated as novel)."""
    model.eval()
    out = []
    for pos, frame_index in enumerate(pixels.view_ids):
        rows = pixels.view_rows(pos)
        h, w = pixels.sizes[pos]
        rgb, dep, sem, emb = [], [], [], []
        for i in range(0, rows.numel(), chunk):
            r = rows[i : i + chunk]
            o, d = pixels.rays(r)
            s = model.sample_rays(o, d, None, jitter=False, with_color=True, background=torch.zeros(3))
            rgb.append(s.rgb)
            dep.append(s.depth)
            sem.append(model.render_semantic(s).argmax(-1))
            emb.append(model.render_embedding(s))
        out.append(
            ViewRender(
                frame_index=frame_index,
                rgb=torch.cat(rgb).clamp(0, 1).reshape(h, w, 3).numpy(),
                depth=torch.cat(dep).reshape(h, w).numpy(),
                semantic=torch.cat(sem).reshape(h, w).numpy().astype(np.int64),
                embedding=torch.cat(emb).reshape(h, w, -1).numpy(),
            )
        )
        if progress is not None:
            progress()
    model.train()
    return out
