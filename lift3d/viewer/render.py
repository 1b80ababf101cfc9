"""What the viewer shows, computed without any GUI: renders of the field from a camera in five modes, picking the
instance under a pixel, and colours of the point cloud."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

from lift3d.export.palette import instance_colours
from lift3d.export.points import view_pixels
from lift3d.export.rays import RayRender, render_rays
from lift3d.export.run import ExportedRun
from lift3d.geometry.cameras import camera_rays

RenderMode = Literal["rgb", "depth", "semantic", "instance", "embedding"]
RENDER_MODES: tuple[str, ...] = ("rgb", "depth", "semantic", "instance", "embedding")
ColourBy = Literal["rgb", "semantic", "instance", "embedding"]
COLOUR_BY: tuple[str, ...] = ("rgb", "semantic", "instance", "embedding")


@dataclass
class EmbeddingPCA:
    """Projection of instance embeddings [N, D] onto their first three principal components, scaled to [0, 1]."""

    mean: np.ndarray
    """[D]."""
    axes: np.ndarray
    """[D, 3] principal axes (fewer than 3 dims are zero-padded)."""
    lo: np.ndarray
    """[3] 1st percentile of the projections."""
    hi: np.ndarray
    """[3] 99th percentile of the projections."""

    @classmethod
    def fit(cls, emb: np.ndarray) -> "EmbeddingPCA":
        x = np.asarray(emb, np.float64).reshape(-1, emb.shape[-1])
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        if len(x) >= 2:
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            axes = vt[:3].T
        else:
            axes = np.eye(x.shape[1])[:, :3]
        axes = np.pad(axes, ((0, 0), (0, 3 - axes.shape[1])))
        proj = (x - mean) @ axes if len(x) else np.zeros((1, 3))
        lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
        return cls(mean, axes, lo, np.where(hi > lo, hi, lo + 1))

    def colours(self, emb: np.ndarray) -> np.ndarray:
        """emb [..., D] -> uint8 [..., 3]."""
        p = (np.asarray(emb, np.float64) - self.mean) @ self.axes
        return (np.clip((p - self.lo) / (self.hi - self.lo), 0, 1) * 255).round().astype(np.uint8)


def class_colours(classes: np.ndarray) -> np.ndarray:
    """Semantic class ids [N] -> uint8 [N, 3] (the instance palette shifted so classes and instances differ)."""
    c = np.asarray(classes, np.int64)
    return np.where((c == 0)[..., None], np.uint8(90), instance_colours(c * 7 + 3).reshape(*c.shape, 3))


def depth_colours(depth: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """Depth [...] -> uint8 grey [..., 3], near = bright, over the pixels with opacity > 0.5."""
    valid = opacity > 0.5
    if not valid.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    lo, hi = np.percentile(depth[valid], 2), np.percentile(depth[valid], 98)
    g = 1.0 - np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    g = np.where(valid, 0.15 + 0.85 * g, 0.0)
    return np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, -1)


@dataclass
class LiveModel:
    """What :func:`render_camera` needs from a fit in progress: its model (no labeler yet)."""

    model: object
    """The trainer's :class:`lift3d.models.LiftModel`."""
    labeler: None = None


@dataclass
class CameraView:
    """A pinhole camera: OpenGL camera-to-world and intrinsics of a ``width`` x ``height`` image."""

    c2w: np.ndarray
    """[4, 4] camera-to-world (OpenGL axes)."""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def rays(self, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """World rays of every ``stride``-th pixel: origins, dirs [M, 3] (dirs with camera-space z = -1)."""
        uv = view_pixels(self.width, self.height, stride)
        intr = torch.tensor([self.fx, self.fy, self.cx, self.cy], dtype=torch.float32)
        return camera_rays(torch.tensor(self.c2w, dtype=torch.float32), intr, uv)


@dataclass
class Frame2D:
    """A rendered view of the field and its image in one mode."""

    image: np.ndarray
    """uint8 [H, W, 3]."""
    render: RayRender
    """Per-pixel quantities (flattened, row-major)."""
    instance: np.ndarray
    """int64 [H, W] instance ids (0 = none / transparent)."""


def render_camera(
    opened: "ExportedRun | LiveModel",
    cam: CameraView,
    mode: RenderMode,
    pca: Optional[EmbeddingPCA] = None,
    num_samples: Optional[int] = None,
    chunk: int = 8192,
    hidden: frozenset = frozenset(),
    colour_override: Optional[dict] = None,
) -> Frame2D:
    """Render ``cam`` through the run's field and colour it by ``mode`` (rgb, depth, semantic class, instance id,
    PCA of the instance embedding). ``hidden`` instance ids are drawn black; ``colour_override`` maps an id to an
    RGB tuple."""
    o, d = cam.rays()
    r = render_rays(opened.model, o, d, chunk, num_samples)
    h, w = cam.height, cam.width
    labeler = getattr(opened, "labeler", None)  # None while a fit runs: no instances yet
    inst = np.zeros(len(r.opacity), np.int64)
    if labeler is not None:
        position = o.numpy() + r.depth[:, None] * d.numpy()
        inst = np.where(r.opacity > 0.5, np.asarray(labeler.label(r.semantic, r.embedding, position)).reshape(-1), 0)
    if mode == "rgb":
        img = (r.rgb * 255).round().astype(np.uint8)
    elif mode == "depth":
        img = depth_colours(r.depth, r.opacity)
    elif mode == "semantic":
        img = class_colours(r.semantic)
    elif mode == "instance":
        img = instance_colours(inst)
        for i, c in (colour_override or {}).items():
            img[inst == i] = c
    elif mode == "embedding":
        img = (pca or EmbeddingPCA.fit(r.embedding)).colours(r.embedding)
    else:
        raise ValueError(f"render mode {mode!r}: use one of {RENDER_MODES}")
    if mode != "rgb":
        img = np.where((r.opacity > 0.5)[:, None], img, 0).astype(np.uint8)
    if hidden:
        img[np.isin(inst, list(hidden))] = 0
    return Frame2D(img.reshape(h, w, 3), r, inst.reshape(h, w))


@dataclass
class Pick:
    """What a click selected."""

    instance: int
    """Instance id under the click (0 = nothing / stuff)."""
    class_id: int
    """Rendered class there."""
    depth: float
    """Distance along the clicked ray (in units of its direction's length) to the rendered surface."""
    point: np.ndarray
    """[3] world point of the surface hit."""
    opacity: float
    """Rendered opacity of the ray (below 0.5 nothing is hit: instance 0)."""


def pick_ray(opened: ExportedRun, origin, direction) -> Pick:
    """Select the instance seen along one world ray ``o + t d``: render it, take its class and embedding, label
    them with the run's labeler; a ray with opacity under 0.5 hits nothing."""
    o = torch.tensor(np.asarray(origin, np.float32).reshape(1, 3))
    d = torch.tensor(np.asarray(direction, np.float32).reshape(1, 3))
    r = render_rays(opened.model, o, d)
    position = o.numpy() + r.depth[:, None] * d.numpy()
    inst = int(np.asarray(opened.labeler.label(r.semantic, r.embedding, position)).reshape(-1)[0])
    hit = r.opacity[0] >= 0.5
    return Pick(
        instance=inst if hit else 0,
        class_id=int(r.semantic[0]),
        depth=float(r.depth[0]),
        point=(o[0].numpy() + r.depth[0] * d[0].numpy()).astype(np.float64),
        opacity=float(r.opacity[0]),
    )


def pick_pixel(opened: ExportedRun, cam: CameraView, u: float, v: float) -> Pick:
    """:func:`pick_ray` through image position (u, v) of ``cam`` (pixel units, (0, 0) = top-left corner)."""
    x = (u - cam.cx) / cam.fx
    y = -(v - cam.cy) / cam.fy
    direction = np.asarray(cam.c2w, np.float64)[:3, :3] @ np.array([x, y, -1.0])
    return pick_ray(opened, cam.c2w[:3, 3], direction)
