"""Labelled surface points of a fitted run, back-projected from the rendered depth of its training views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from lift3d.data.scene import Scene
from lift3d.export.rays import render_rays
from lift3d.geometry.cameras import camera_rays
from lift3d.models import LiftModel


@dataclass
class LabelledPoints:
    """N surface points in the scene's world frame."""

    xyz: np.ndarray
    """float32 [N, 3] world coordinates (scene units)."""
    rgb: np.ndarray
    """uint8 [N, 3] rendered colour."""
    instance: np.ndarray
    """int32 [N] instance id (0 = no instance / stuff)."""
    semantic: np.ndarray
    """int32 [N] semantic class id."""
    view: np.ndarray
    """int32 [N] index (into ``scene.frames``) of the training view whose pixel gave the point."""
    embedding: np.ndarray
    """float32 [N, D] rendered instance embedding (kept in memory so a new labeler can relabel the points)."""
    confidence: np.ndarray
    """float32 [N] rendered probability of the point's class."""

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def subset(self, mask: np.ndarray) -> "LabelledPoints":
        return LabelledPoints(*(getattr(self, k)[mask] for k in LABELLED_FIELDS))

    @staticmethod
    def concat(parts: Sequence["LabelledPoints"]) -> "LabelledPoints":
        if not parts:
            z = np.zeros(0, np.int32)
            return LabelledPoints(
                np.zeros((0, 3), np.float32),
                np.zeros((0, 3), np.uint8),
                z,
                z.copy(),
                z.copy(),
                np.zeros((0, 1), np.float32),
            )
        return LabelledPoints(*(np.concatenate([getattr(p, k) for p in parts]) for k in LABELLED_FIELDS))


LABELLED_FIELDS = ("xyz", "rgb", "instance", "semantic", "view", "embedding", "confidence")


def view_pixels(width: int, height: int, stride: int) -> torch.Tensor:
    """[M, 2] long (u, v) of every ``stride``-th pixel, row-major."""
    v, u = torch.meshgrid(torch.arange(0, height, stride), torch.arange(0, width, stride), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], -1)


def surface_points(
    model: LiftModel,
    scene: Scene,
    labeler,
    views: Sequence[int],
    pixel_stride: int = 1,
    min_opacity: float = 0.5,
    min_class_confidence: float = 0.0,
    chunk: int = 8192,
    progress: Optional[Callable[[], None]] = None,
) -> LabelledPoints:
    """Render every ``pixel_stride``-th pixel of each view in ``views``, keep the rays whose opacity reaches
    ``min_opacity`` and whose surface lies inside the model's box, and place a point at the rendered depth:
    ``x = o + z d`` with ``z = sum_i w_i t_i / sum_i w_i`` (``d`` has camera-space z = -1). Each point is labelled
    with the rendered class and the instance ``labeler.label(class, embedding)`` (0 where the class probability is
    below ``min_class_confidence``).

    Returns :class:`LabelledPoints` in world coordinates (the model's box normalisation is internal to it)."""
    parts = []
    lo, hi = (model.aabb[0].cpu().numpy(), model.aabb[1].cpu().numpy())
    for idx in views:
        f = scene.frames[idx]
        uv = view_pixels(f.width, f.height, pixel_stride)
        c2w = torch.tensor(f.camera_to_world, dtype=torch.float32)
        o, d = camera_rays(c2w, torch.tensor(f.intrinsics(), dtype=torch.float32), uv, f.distortion)
        r = render_rays(model, o, d, chunk)
        xyz = (o.numpy() + r.depth[:, None] * d.numpy()).astype(np.float32)
        keep = (r.opacity >= min_opacity) & np.all((xyz >= lo) & (xyz <= hi), axis=1)
        inst = np.asarray(labeler.label(r.semantic, r.embedding, xyz)).reshape(-1)
        inst = np.where(r.semantic_confidence >= min_class_confidence, inst, 0)
        parts.append(
            LabelledPoints(
                xyz=xyz[keep],
                rgb=(r.rgb[keep] * 255).round().astype(np.uint8),
                instance=inst[keep].astype(np.int32),
                semantic=r.semantic[keep].astype(np.int32),
                view=np.full(int(keep.sum()), idx, np.int32),
                embedding=r.embedding[keep],
                confidence=r.semantic_confidence[keep],
            )
        )
        if progress is not None:
            progress()
    return LabelledPoints.concat(parts)
