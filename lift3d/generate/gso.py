"""Google Scanned Objects (GSO) from a local folder as Messy Rooms assets (``MessyRoomsConfig.assets = PATH``).

A GSO folder holds one sub-folder per object::

    PATH/<object>/meshes/model.obj          # positions, UVs (``vt``), faces; ``mtllib material.mtl``
    PATH/<object>/meshes/material.mtl       # ``map_Kd ../materials/textures/texture.png``
    PATH/<object>/materials/textures/texture.png

An object is stored in a layout as an :class:`~lift3d.generate.mesh.AssetSpec` of kind ``"gso"`` whose
``params`` hold the object folder (``path``, absolute) and its name, and whose ``size`` is the largest extent of
the finished mesh (sampled uniformly in ``object_size_range`` like procedural assets), so ``layout.json`` rebuilds
the same scene as long as the folder is there. :func:`build_gso_mesh` rescales the OBJ so that its largest extent
equals ``size`` and moves the origin to the centroid of its convex hull (the physics shape), exactly as the
procedural :func:`~lift3d.generate.procedural.build_procedural_mesh` does (both with
:func:`~lift3d.generate.mesh.hull_centroid`). The mesh carries per-corner UVs ``[T, 3, 2]`` and the texture image
(8-bit sRGB); :func:`sample_texture_image` looks colours up for the renderers. This module imports only the leaves
:mod:`lift3d.generate.mesh` and :mod:`lift3d.generate.textures` (:mod:`lift3d.generate.assets` dispatches to it).

The OBJ reader is a small numpy one (``v``, ``vt``, ``f`` with ``v``, ``v/vt``, ``v/vt/vn`` or ``v//vn`` corners,
polygons fan-triangulated, negative indices, ``mtllib`` + ``map_Kd``); normals are recomputed from the faces.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from lift3d.generate.mesh import AssetSpec, Mesh, hull_centroid, vertex_normals
from lift3d.generate.textures import srgb_to_linear

MODEL_FILE = Path("meshes") / "model.obj"
"""Mesh of an object, relative to its folder."""
DEFAULT_TEXTURE = Path("materials") / "textures" / "texture.png"
"""Texture used when the OBJ names no material file (GSO's standard location)."""
MAX_TEXTURE_SIDE = 1024
"""Textures larger than this (pixels per side) are box-downsampled by an integer factor when loaded (memory: a
scene may hold hundreds of objects; rendered objects are far smaller than 1024 pixels)."""
UNTEXTURED_ALBEDO = 0.5
"""sRGB grey of objects whose OBJ has no UVs or no texture."""
KIND = "gso"
"""``AssetSpec.kind`` of a GSO object."""


class GSOError(ValueError):
    """A GSO folder or object cannot be used (missing folder, no objects, missing or malformed files)."""


# --------------------------------------------------------------------------------------------------------------
# Discovery and sampling
# --------------------------------------------------------------------------------------------------------------


def discover_objects(root: str | Path) -> List[Path]:
    """Object folders (sorted by name, absolute) under a GSO folder: sub-folders holding ``meshes/model.obj``.

    Raises :class:`GSOError` naming ``root`` if it is not a folder or holds no such sub-folder.
    """
    return list(_discover_cached(str(Path(root).expanduser().resolve())))


@lru_cache(maxsize=16)
def _discover_cached(root: str) -> Tuple[Path, ...]:
    path = Path(root)
    if not path.is_dir():
        raise GSOError(
            f"assets={root!r}: not a folder. Pass 'procedural' or a local Google Scanned Objects folder "
            f"(one sub-folder per object, each with {MODEL_FILE})."
        )
    found = tuple(sorted(p for p in path.iterdir() if p.is_dir() and (p / MODEL_FILE).is_file()))
    if not found:
        raise GSOError(
            f"assets={root!r}: no Google Scanned Objects found: expected sub-folders <object>/"
            f"{MODEL_FILE} (+ materials/textures/texture.png). Unzip the GSO archives into this folder "
            f"(one folder per object) or pass assets='procedural'."
        )
    return found


def sample_gso_asset(rng: np.random.Generator, size_range: Tuple[float, float], root: str | Path) -> AssetSpec:
    """Draw one GSO object uniformly from ``root`` and a size (largest extent, m) uniform in ``size_range``.

    Draws from ``rng`` in a fixed order (object index, then size), so the same seed gives the same objects.
    """
    objects = discover_objects(root)
    folder = objects[int(rng.integers(len(objects)))]
    size = float(rng.uniform(*size_range))
    return AssetSpec(KIND, size, {"path": str(folder), "name": folder.name}, None)


# --------------------------------------------------------------------------------------------------------------
# OBJ / MTL / texture reading
# --------------------------------------------------------------------------------------------------------------


def read_obj(path: str | Path) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[Path]]:
    """Read a Wavefront OBJ.

    Returns vertices ``[V, 3]`` float64 (only those used by faces), triangles ``[T, 3]`` int64, per-corner UVs
    ``[T, 3, 2]`` (None if any face corner has no ``vt``) and the texture file named by ``map_Kd`` of the first
    material library (None if there is none). Raises :class:`GSOError` naming the file on malformed content.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise GSOError(f"{path}: cannot read the object's mesh ({err}).") from err
    verts, uvs, tri_v, tri_t, mtllibs = [], [], [], [], []
    try:
        for line in text.splitlines():
            if line.startswith("v "):
                verts.append(line.split()[1:4])
            elif line.startswith("vt "):
                uvs.append(line.split()[1:3])
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                # 1-based; negative = relative to the vertices / 'vt' read so far; 0 = no 'vt' (invalid in OBJ)
                vi = [int(c[0]) + (len(verts) + 1 if int(c[0]) < 0 else 0) for c in corners]
                ti = [int(c[1]) + (len(uvs) + 1 if int(c[1]) < 0 else 0) if len(c) > 1 and c[1] else 0 for c in corners]
                for k in range(1, len(corners) - 1):  # fan triangulation of polygons
                    tri_v.append((vi[0], vi[k], vi[k + 1]))
                    tri_t.append((ti[0], ti[k], ti[k + 1]))
            elif line.startswith("mtllib "):
                mtllibs.append(line[len("mtllib ") :].strip())
        v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
        vt = np.asarray(uvs, dtype=np.float64).reshape(-1, 2)
    except ValueError as err:
        raise GSOError(f"{path}: malformed OBJ ({err}).") from err
    if not tri_v:
        raise GSOError(f"{path}: the OBJ has no faces.")
    tv = np.asarray(tri_v, dtype=np.int64)
    tt = np.asarray(tri_t, dtype=np.int64)
    tv = tv - 1
    if tv.min() < 0 or tv.max() >= len(v):
        raise GSOError(f"{path}: a face refers to a vertex that does not exist ({len(v)} vertices).")
    corner_uv = None
    if len(vt) and (tt > 0).all():
        tt = tt - 1
        if tt.min() < 0 or tt.max() >= len(vt):
            raise GSOError(f"{path}: a face refers to a texture coordinate that does not exist ({len(vt)} 'vt').")
        corner_uv = vt[tt]
    used, remap = np.unique(tv, return_inverse=True)
    texture = None
    for lib in mtllibs:
        texture = _texture_of_mtl(path.parent / lib)
        if texture is not None:
            break
    return v[used], remap.reshape(-1, 3), corner_uv, texture


def _texture_of_mtl(mtl: Path) -> Optional[Path]:
    """Texture file of the first ``map_Kd`` in a material library (relative to the library), or None."""
    if not mtl.is_file():
        raise GSOError(f"{mtl}: material library named by the OBJ is missing.")
    for line in mtl.read_text(errors="replace").splitlines():
        parts = line.strip().split()
        if parts and parts[0] == "map_Kd" and len(parts) > 1:
            tex = (mtl.parent / parts[-1]).resolve()  # options such as '-s 1 1 1' come before the file name
            if not tex.is_file():
                raise GSOError(f"{mtl}: texture {parts[-1]!r} ({tex}) is missing.")
            return tex
    return None


@lru_cache(maxsize=64)
def read_texture(path: str) -> np.ndarray:
    """8-bit sRGB texture ``[H, W, 3]`` (alpha dropped), box-downsampled to at most ``MAX_TEXTURE_SIDE``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as err:
        raise GSOError(f"{path}: cannot read the texture image ({err}).") from err
    f = int(np.ceil(max(img.shape[:2]) / MAX_TEXTURE_SIDE))
    if f > 1:
        H, W = (img.shape[0] // f) * f, (img.shape[1] // f) * f
        img = img[:H, :W].reshape(H // f, f, W // f, f, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    img.setflags(write=False)
    return img


# --------------------------------------------------------------------------------------------------------------
# Mesh building and texture look-up
# --------------------------------------------------------------------------------------------------------------


def build_gso_mesh(params: Dict, size: float) -> Mesh:
    """Mesh of a GSO object: largest extent = ``size``, origin = centroid of its convex hull, with UVs + texture."""
    return _build_cached(str(params["path"]), float(size))


@lru_cache(maxsize=256)
def _build_cached(folder: str, size: float) -> Mesh:
    obj = Path(folder) / MODEL_FILE
    if not obj.is_file():
        raise GSOError(
            f"{obj}: missing; the layout refers to a Google Scanned Objects folder that is not here "
            f"(check the assets path)."
        )
    v, t, corner_uv, tex = read_obj(obj)
    if tex is None and (Path(folder) / DEFAULT_TEXTURE).is_file():
        tex = Path(folder) / DEFAULT_TEXTURE
    extent = float((v.max(0) - v.min(0)).max())
    if not extent > 0:
        raise GSOError(f"{obj}: the mesh is degenerate (zero extent).")
    v = v * (size / extent)
    try:
        centre, volume, hull_idx = hull_centroid(v)
    except Exception as err:  # scipy QhullError: flat or too few points
        raise GSOError(f"{obj}: the mesh has no 3D convex hull ({err}).") from err
    v = v - centre
    hull_v = np.unique(np.round(v[hull_idx], 7), axis=0)
    normals = vertex_normals(v, t)
    image = read_texture(str(tex)) if (tex is not None and corner_uv is not None) else None
    if image is None:
        corner_uv = None
    for arr in (v, t, hull_v, normals) + ((corner_uv,) if corner_uv is not None else ()):
        arr.setflags(write=False)
    return Mesh(v, t, normals, hull_v, volume, corner_uvs=corner_uv, texture_image=image)


def interpolate_uv(corner_uvs: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Texture coordinates of hits: ``uv = (1 - b1 - b2) uv_0 + b1 uv_1 + b2 uv_2``.

    ``corner_uvs``: ``[M, 3, 2]`` UVs of the hit triangles' corners; ``bary``: ``[M, 2]`` = ``(b1, b2)``, open3d's
    ``primitive_uvs`` (the hit point is ``(1 - b1 - b2) p_0 + b1 p_1 + b2 p_2``). Returns ``[M, 2]``.
    """
    b1, b2 = bary[:, 0:1], bary[:, 1:2]
    return (1.0 - b1 - b2) * corner_uvs[:, 0] + b1 * corner_uvs[:, 1] + b2 * corner_uvs[:, 2]


def sample_texture_image(image: Optional[np.ndarray], uv: np.ndarray) -> np.ndarray:
    """Linear RGB albedo ``[M, 3]`` at texture coordinates ``uv`` ``[M, 2]`` (bilinear, repeat wrapping).

    OBJ convention: ``u`` runs left to right, ``v`` bottom to top, so texel ``(row, col)`` has its centre at
    ``u = (col + 0.5) / W``, ``v = 1 - (row + 0.5) / H``. Texels are sRGB; the result is ``srgb ** 2.2`` (as the
    procedural textures). ``image`` None gives the uniform ``UNTEXTURED_ALBEDO``.
    """
    if image is None:
        return np.full((len(uv), 3), srgb_to_linear(UNTEXTURED_ALBEDO))
    H, W = image.shape[:2]
    x = uv[:, 0] * W - 0.5
    y = (1.0 - uv[:, 1]) * H - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    lut = srgb_to_linear(np.arange(256) / 255.0)
    tex = lambda r, c: lut[image[r % H, c % W]]  # noqa: E731
    return (1 - fy) * ((1 - fx) * tex(y0, x0) + fx * tex(y0, x0 + 1)) + fy * (
        (1 - fx) * tex(y0 + 1, x0) + fx * tex(y0 + 1, x0 + 1)
    )
