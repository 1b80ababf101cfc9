"""Labelled meshes of a fitted run: marching cubes on the density field, each face labelled by the instance field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from lift3d.models import LiftModel


@dataclass
class LabelledMesh:
    """A triangle mesh in the scene's world frame with a class and an instance id per face."""

    vertices: np.ndarray
    """float32 [V, 3] world coordinates."""
    faces: np.ndarray
    """int64 [F, 3] vertex indices."""
    instance: np.ndarray
    """int32 [F] instance id of each face (0 = stuff)."""
    semantic: np.ndarray
    """int32 [F] class of each face."""

    def select(self, face_mask: np.ndarray) -> "LabelledMesh":
        """The faces of ``face_mask`` [F] with only the vertices they use (re-indexed)."""
        faces = self.faces[face_mask]
        used, inverse = np.unique(faces.reshape(-1), return_inverse=True)
        return LabelledMesh(
            self.vertices[used], inverse.reshape(-1, 3), self.instance[face_mask], self.semantic[face_mask]
        )

    def to_trimesh(self, face_colours: Optional[np.ndarray] = None):
        """A ``trimesh.Trimesh`` (faces coloured by ``face_colours`` [F, 3] uint8 when given)."""
        import trimesh

        mesh = trimesh.Trimesh(self.vertices, self.faces, process=False)
        if face_colours is not None:
            mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=face_colours)
        return mesh


def density_level(model: LiftModel, surface_opacity: float, surface_thickness: float) -> float:
    """Iso-level of the density for marching cubes.

    The model's opacity over a path of world length ``l`` is ``alpha = 1 - exp(-sigma * s * l / h)`` (``s`` =
    ``distance_scale``, ``h`` = largest half size, see :mod:`lift3d.models.lift_model`). The level is the density
    at which a slab ``l = surface_thickness * h`` thick reaches ``surface_opacity``:
    ``sigma = -ln(1 - surface_opacity) / (s * surface_thickness)``."""
    return -math.log(1.0 - surface_opacity) / (model.cfg.distance_scale * surface_thickness)


@torch.no_grad()
def label_world_points(model: LiftModel, labeler, xyz: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Query the semantic and instance fields at world points xyz [N, 3] (no rendering: the fields' values at the
    point) -> (class [N] int32 = argmax p(x), instance [N] int32 = ``labeler.label(class, f(x))``)."""
    dev = model.aabb.device
    sem, emb = [], []
    for i in range(0, len(xyz), chunk):
        x = model.to_cube(torch.as_tensor(xyz[i : i + chunk], dtype=torch.float32, device=dev))
        sem.append(model.semantic(x).argmax(-1).cpu())
        emb.append(model.instance(x).cpu())
    if not sem:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    s = torch.cat(sem).numpy().astype(np.int64)
    inst = np.asarray(labeler.label(s, torch.cat(emb).numpy(), xyz)).reshape(-1)
    return s.astype(np.int32), inst.astype(np.int32)


def _box_extent_in_cube(model: LiftModel) -> float:
    """Half side of the foreground box in the fields' cube: 1, or 1 / (1 + shell) under the scene contraction (the
    mesh covers the box, not the contracted far field)."""
    return 1.0 / (1.0 + model.cfg.contraction_shell) if model.contracted else 1.0


@torch.no_grad()
def density_grid(model: LiftModel, resolution: int, chunk: int = 8192, progress=None) -> np.ndarray:
    """Density sampled on a ``resolution^3`` lattice spanning the model's box corner to corner -> float32
    [R, R, R] indexed (x, y, z). Cells the occupancy grid marks empty hold 0."""
    dev = model.aabb.device
    lim = _box_extent_in_cube(model)
    lin = torch.linspace(-lim, lim, resolution, device=dev)
    out = np.zeros((resolution,) * 3, np.float32)
    gy, gz = torch.meshgrid(lin, lin, indexing="ij")
    for ix in range(resolution):
        pts = torch.stack([torch.full_like(gy, lin[ix]), gy, gz], -1).reshape(-1, 3)
        sig = torch.cat([model.radiance.density(pts[i : i + chunk]) for i in range(0, len(pts), chunk)])
        if model.occupancy is not None:
            sig = torch.where(model.occupancy.query(pts[None])[0], sig, torch.zeros_like(sig))
        out[ix] = sig.reshape(resolution, resolution).cpu().numpy()
        if progress is not None:
            progress()
    return out


def extract_labelled_mesh(
    model: LiftModel,
    labeler,
    resolution: int = 96,
    surface_opacity: float = 0.5,
    surface_thickness: float = 0.02,
    chunk: int = 8192,
    progress: Optional[Callable[[], None]] = None,
) -> LabelledMesh:
    """Marching cubes (scikit-image) on :func:`density_grid` at :func:`density_level`; vertices mapped from the
    model's normalised cube back to world coordinates (``x = c + h * x_n`` per axis); each face labelled by the
    fields at its centroid (:func:`label_world_points`). An empty mesh when the density never reaches the level."""
    from skimage.measure import marching_cubes

    grid = density_grid(model, resolution, chunk, progress)
    level = density_level(model, surface_opacity, surface_thickness)
    if not (grid.max() > level > grid.min()):
        z = np.zeros(0, np.int32)
        return LabelledMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64), z, z.copy())
    lim = _box_extent_in_cube(model)
    verts, faces, _, _ = marching_cubes(grid, level=level, spacing=(2.0 * lim / (resolution - 1),) * 3)
    cube = torch.as_tensor(verts - lim, dtype=torch.float32, device=model.aabb.device)
    world = model.from_cube(cube).cpu().numpy().astype(np.float32)
    faces = faces.astype(np.int64)
    # marching_cubes orients faces by the gradient of the field; density grows inwards, so flip to face outwards.
    faces = faces[:, ::-1].copy()
    sem, inst = label_world_points(model, labeler, world[faces].mean(axis=1), chunk)
    return LabelledMesh(world, faces, inst, sem)
