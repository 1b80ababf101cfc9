"""The in-memory training set: pixels of all views as flat tensors, their rays, and the scene's bounds.

Rays come from :func:`lift3d.geometry.cameras.camera_rays` (OpenGL camera axes): for pixel (u, v) with centre
(u + 0.5, v + 0.5), ``d_cam = [(u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1]`` and ``d_world = R d_cam``; a view
whose camera has a lens model (``Frame.distortion``) undistorts the pixel centre first, so ``d_cam = [x, -y, -1]``
with ``(x, y)`` its undistorted normalised coordinates. A point at depth ``z`` (distance along the optical axis)
lies at ``o + z * d_world`` because ``d_cam`` has unit -z component; we keep this unnormalised direction and call
``t`` the optical-axis depth.

Pixels a frame's mask excludes (``FrameData.valid_mask`` False, from nerfstudio's ``mask_path``) stay in the set
(whole views are rendered) but are flagged in :attr:`PixelSet.valid`; :meth:`PixelSet.usable_rows` is what losses
and clustering samples draw from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from lift3d.data.loading import load_frame
from lift3d.data.loading import sfm_points as reader_sfm_points
from lift3d.data.scene import Scene, SceneFormatError
from lift3d.geometry.bounds import BoundsError, BoxConfig, ForegroundBox, foreground_box
from lift3d.geometry.cameras import KIND_PINHOLE, camera_rays, pack_distortion

__all__ = ["PixelSet", "load_pixel_set", "scene_bounds", "describe_inputs"]


@dataclass
class PixelSet:
    """Every pixel of a set of views, flattened: ``P = sum_v H_v W_v`` rows."""

    view_ids: list[int]
    """Frame indices (into ``scene.frames``) of the views held, in order."""
    c2w: torch.Tensor
    """[V, 4, 4] float32 camera-to-world."""
    intrinsics: torch.Tensor
    """[V, 4] (fx, fy, cx, cy)."""
    sizes: list[tuple[int, int]]
    """(H, W) per view."""
    offsets: torch.Tensor
    """[V + 1] start row of each view in the flat arrays."""
    pixel_view: torch.Tensor
    """[P] long, position (0..V-1) of each pixel's view."""
    pixel_uv: torch.Tensor
    """[P, 2] long (u, v)."""
    rgb: torch.Tensor
    """[P, 3] float32."""
    instance: torch.Tensor
    """[P] long 2D segment ids (0 = none), arbitrary per view."""
    semantic: torch.Tensor
    """[P] long 2D class ids."""
    confidence: torch.Tensor
    """[P] float32 (ones when the scene has none)."""
    depth: Optional[torch.Tensor] = None
    """[P] float32 metres along the optical axis, 0 = unknown."""
    gt_instance: Optional[torch.Tensor] = None
    gt_semantic: Optional[torch.Tensor] = None
    distortion: Optional[torch.Tensor] = None
    """[V, 9] float64 packed lens models (:meth:`lift3d.geometry.cameras.Distortion.packed`); None when every view
    is an ideal pinhole."""
    valid: Optional[torch.Tensor] = None
    """[P] bool, False = pixel excluded by its frame's mask from every loss and from clustering samples; None when
    no frame has a mask."""
    distortion_names: Optional[list[str]] = None
    """Per view, :meth:`Distortion.describe` or ``"pinhole"`` (for the fit log)."""

    @property
    def num_views(self) -> int:
        return len(self.view_ids)

    def rays(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World-space (origins, directions) of flat pixel rows [N] -> [N, 3], [N, 3], through each view's lens
        model when it has one."""
        v = self.pixel_view[rows]
        distortion = self.distortion[v] if self.distortion is not None else None
        return camera_rays(self.c2w[v], self.intrinsics[v], self.pixel_uv[rows], distortion)

    def usable_rows(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The flat rows (all of them, or those of ``rows`` [N]) whose pixel is not masked out, in order."""
        if rows is None:
            rows = torch.arange(self.rgb.shape[0])
        if self.valid is None:
            return rows
        return rows[self.valid[rows]]

    def view_rows(self, position: int) -> torch.Tensor:
        """Flat rows [H*W] of the view at ``position`` (row-major)."""
        return torch.arange(int(self.offsets[position]), int(self.offsets[position + 1]))


def load_pixel_set(scene: Scene, view_ids: list[int], with_ground_truth: bool = False) -> PixelSet:
    """Read the given frames into one :class:`PixelSet` (2D inputs always; depth when the scene has it)."""
    rgbs, insts, sems, confs, depths, gti, gts, pv, uvs, sizes = [], [], [], [], [], [], [], [], [], []
    masks: list[np.ndarray] = []
    offsets = [0]
    for pos, idx in enumerate(view_ids):
        fd = load_frame(scene, idx, with_ground_truth=with_ground_truth)
        h, w = fd.instance.shape
        sizes.append((h, w))
        rgbs.append(fd.rgb.reshape(-1, 3))
        insts.append(fd.instance.reshape(-1))
        sems.append(fd.semantic.reshape(-1))
        confs.append((fd.confidence if fd.confidence is not None else np.ones((h, w), np.float32)).reshape(-1))
        if fd.depth is not None:
            depths.append(fd.depth.reshape(-1))
        masks.append(np.ones(h * w, bool) if fd.valid_mask is None else np.asarray(fd.valid_mask, bool).reshape(-1))
        if with_ground_truth and fd.gt_instance is not None:
            gti.append(fd.gt_instance.reshape(-1))
            gts.append(fd.gt_semantic.reshape(-1))
        vv, uu = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        uvs.append(np.stack([uu.reshape(-1), vv.reshape(-1)], axis=-1))
        pv.append(np.full(h * w, pos, dtype=np.int64))
        offsets.append(offsets[-1] + h * w)
    frames = [scene.frames[i] for i in view_ids]
    cat = lambda xs, dt: torch.from_numpy(np.concatenate(xs)).to(dt)  # noqa: E731
    packed = np.stack([pack_distortion(f.distortion) for f in frames]) if frames else np.zeros((0, 9))
    has_lens = bool((packed[:, 0] != KIND_PINHOLE).any())
    valid = cat(masks, torch.bool) if masks else None
    return PixelSet(
        view_ids=list(view_ids),
        c2w=torch.tensor(np.stack([f.camera_to_world for f in frames]), dtype=torch.float32),
        intrinsics=torch.tensor(np.stack([f.intrinsics() for f in frames]), dtype=torch.float32),
        sizes=sizes,
        offsets=torch.tensor(offsets),
        pixel_view=cat(pv, torch.long),
        pixel_uv=cat(uvs, torch.long),
        rgb=cat(rgbs, torch.float32),
        instance=cat(insts, torch.long),
        semantic=cat(sems, torch.long),
        confidence=cat(confs, torch.float32),
        depth=cat(depths, torch.float32) if len(depths) == len(view_ids) else None,
        gt_instance=cat(gti, torch.long) if gti else None,
        gt_semantic=cat(gts, torch.long) if gts else None,
        distortion=torch.from_numpy(packed) if has_lens else None,
        valid=valid if valid is not None and not bool(valid.all()) else None,
        distortion_names=[f.distortion.describe() if f.distortion is not None else "pinhole" for f in frames],
    )


def scene_bounds(
    scene: Scene,
    pixels: Optional[PixelSet] = None,
    override: Optional[Sequence[float]] = None,
    sfm_points: Optional[np.ndarray] = None,
    box_config: Optional[BoxConfig] = None,
    log: Optional[Callable[[str], None]] = None,
    max_depth_points: int = 200_000,
) -> np.ndarray:
    """World-space [2, 3] foreground box the field models at full resolution.

    In order: ``override`` (6 numbers ``xmin ymin zmin xmax ymax zmax``, e.g. ``--model.aabb``); the scene's own
    ``aabb``; else :func:`lift3d.geometry.bounds.foreground_box` of the surface points the scene offers: depth
    back-projections of ``pixels`` (up to ``max_depth_points``, drawn with a fixed seed), else SfM points
    (``sfm_points`` [N, 3] or ``scene.extras['sfm_points']``: an [N, 3] array or the path of a ``.npy`` / ``.ply``),
    else the camera frusta alone. ``log`` receives one line naming the source and the box.
    """
    log = log or (lambda _line: None)
    if override is not None:
        box = np.asarray(override, dtype=np.float64).reshape(2, 3)
        if not np.isfinite(box).all() or (box[1] <= box[0]).any():
            raise BoundsError(f"--model.aabb {list(override)}: give xmin ymin zmin xmax ymax zmax with min < max.")
        log(ForegroundBox(box, "--model.aabb").describe())
        return box
    if scene.aabb is not None:
        log(ForegroundBox(scene.aabb.astype(np.float64), f"the scene's aabb ({scene.root})").describe())
        return scene.aabb.astype(np.float64)
    frames = scene.frames if pixels is None else [scene.frames[i] for i in pixels.view_ids]
    c2w = np.stack([f.camera_to_world for f in frames])
    intr = np.stack([f.intrinsics() for f in frames])
    sizes = np.array([[f.height, f.width] for f in frames])
    points, source = None, "points"
    if pixels is not None and pixels.depth is not None:
        valid = torch.nonzero(pixels.depth > 0).squeeze(-1)
        if valid.numel() > 0:
            gen = torch.Generator().manual_seed(0)
            sel = valid[torch.randperm(valid.numel(), generator=gen)[:max_depth_points]]
            o, d = pixels.rays(sel)
            points, source = (o + d * pixels.depth[sel, None]).double().numpy(), "depth"
    if points is None:
        points = sfm_points if sfm_points is not None else _scene_sfm_points(scene)
        source = "SfM points"
    found = foreground_box(c2w, intr, sizes, points, source, box_config)
    log(found.describe())
    return found.box


def _scene_sfm_points(scene: Scene) -> Optional[np.ndarray]:
    """``scene.extras['sfm_points']`` as [N, 3] float64 (an array, or a ``.npy`` / ``.ply`` path relative to the
    scene root), or None."""
    value = scene.extras.get("sfm_points")
    if value is None:
        return reader_sfm_points(scene)  # a reader's SfM model (scene.extras['sfm_points_path'], a COLMAP project)
    if isinstance(value, (str, Path)):
        path = Path(value) if Path(value).is_absolute() else scene.root / value
        if path.suffix == ".npy":
            value = np.load(path)
        else:
            import trimesh

            value = np.asarray(trimesh.load(path).vertices)
    pts = np.asarray(value, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SceneFormatError(f"{scene.root}: extras['sfm_points'] must be [N, 3] points; got shape {pts.shape}.")
    return pts


def describe_inputs(pixels: PixelSet) -> list[str]:
    """The fit log's lines on what the training pixels carry: camera model(s) and distortion, depth density, masks.

    e.g. ``["cameras: opencv k1=-0.25 k2=0.08 p1=0.002 p2=-0.001 (36 views); depth: 0.36% of pixels valid (sparse);
    masks: none"]``.
    """
    counts: dict[str, int] = {}
    for name in pixels.distortion_names or ["pinhole"] * pixels.num_views:
        counts[name] = counts.get(name, 0) + 1
    cameras = ", ".join(f"{name} ({n} view{'s' if n != 1 else ''})" for name, n in counts.items())
    total = max(pixels.rgb.shape[0], 1)
    if pixels.depth is None:
        depth = "none"
    else:
        density = float((pixels.depth > 0).sum()) / total
        kind = "dense" if density >= 0.5 else "sparse: supervises only its valid pixels"
        depth = f"{100 * density:.3g}% of pixels valid ({kind})"
    if pixels.valid is None:
        masks = "none"
    else:
        masks = f"{100 * (1 - float(pixels.valid.sum()) / total):.3g}% of pixels excluded (mask_path)"
    return [f"cameras: {cameras}", f"depth: {depth}; masks: {masks}"]
