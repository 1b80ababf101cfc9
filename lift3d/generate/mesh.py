"""Mesh and asset types of the Messy Rooms generator, and the geometry every asset library shares.

:class:`AssetSpec` describes one object as pure, JSON-serialisable data (family, parameters, size, texture);
:class:`Mesh` is the triangle mesh built from it. :func:`vertex_normals` and :func:`hull_centroid` are the two
computations both the procedural library (:mod:`lift3d.generate.procedural`) and the Google Scanned Objects loader
(:mod:`lift3d.generate.gso`) use to finish a mesh.

This module is a leaf of ``lift3d.generate``: besides numpy and scipy it imports only
:class:`~lift3d.generate.textures.TextureSpec` from :mod:`lift3d.generate.textures`, itself a leaf, so that
:meth:`AssetSpec.from_dict` can rebuild the texture of a spec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from scipy.spatial import ConvexHull

from lift3d.generate.textures import TextureSpec

__all__ = ["AssetSpec", "Mesh", "vertex_normals", "hull_centroid"]


@dataclass
class AssetSpec:
    """One object: shape family, shape parameters (unit scale), size and texture. JSON-serialisable."""

    kind: str
    """Shape family, one of ``lift3d.generate.procedural.SHAPE_FAMILIES``, or ``"gso"`` (a Google Scanned Objects
    model)."""
    size: float
    """Largest extent of the finished mesh (m)."""
    params: Dict
    """Family-specific parameters (numbers, lists, strings), unit scale. ``gso``: ``{"path": object folder,
    "name": folder name}``."""
    texture: Optional[TextureSpec]
    """Procedural solid texture in object-local coordinates; None for ``gso`` (the model's image texture)."""

    def to_dict(self) -> Dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: Dict) -> "AssetSpec":
        texture = None
        if d.get("texture") is not None:
            tex = dict(d["texture"])
            tex["colors"] = tuple(tuple(c) for c in tex["colors"])
            tex["axis"] = tuple(tex["axis"])
            texture = TextureSpec(**tex)
        return AssetSpec(d["kind"], float(d["size"]), dict(d["params"]), texture)


@dataclass
class Mesh:
    """A triangle mesh in object-local coordinates (origin = centroid of its convex hull, metres)."""

    vertices: np.ndarray
    """``[V, 3]`` float64."""
    triangles: np.ndarray
    """``[T, 3]`` int64 vertex indices."""
    normals: np.ndarray
    """``[V, 3]`` unit vertex normals (area-weighted average of adjacent faces)."""
    hull_vertices: np.ndarray
    """``[K, 3]`` vertices of the convex hull (the physics collision shape)."""
    hull_volume: float
    """Volume of the convex hull (m^3)."""
    corner_uvs: Optional[np.ndarray] = None
    """``[T, 3, 2]`` texture coordinates of each triangle's corners (GSO models only; OBJ convention, v up)."""
    texture_image: Optional[np.ndarray] = None
    """``[H, W, 3]`` uint8 sRGB texture looked up with ``corner_uvs`` (GSO models only)."""


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted average of adjacent face normals per vertex, ``[V, 3]`` unit vectors."""
    v0, v1, v2 = (vertices[triangles[:, i]] for i in range(3))
    face = np.cross(v1 - v0, v2 - v0)  # length = 2 * area
    n = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(n, triangles[:, i], face)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def hull_centroid(points: np.ndarray) -> Tuple[np.ndarray, float, np.ndarray]:
    """Volume centroid, volume and vertex indices of the convex hull of ``points``.

    The hull is cut into tetrahedra that share one apex ``o`` (the mean of the hull's vertices); the tetrahedron
    on face ``(a, b, c)`` (corners relative to ``o``) has volume ``|a . (b x c)| / 6`` and centroid
    ``o + (a + b + c) / 4``, and the hull's centroid is their volume-weighted mean. The mesh builders move the
    origin here, the centre of mass of the physics collision shape.

    ``points``: ``[N, 3]`` (at least four points not in one plane; scipy's ``QhullError`` otherwise). Returns the
    centroid ``[3]``, the volume and the indices ``[K]`` into ``points`` of the hull's vertices.
    """
    hull = ConvexHull(points)
    origin = points[hull.vertices].mean(0)
    a, b, c = (points[hull.simplices[:, i]] - origin for i in range(3))
    vol = np.abs(np.einsum("ij,ij->i", a, np.cross(b, c))) / 6.0
    cent = origin + (vol[:, None] * (a + b + c) / 4.0).sum(0) / vol.sum()
    return cent, float(vol.sum()), hull.vertices
