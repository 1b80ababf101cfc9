"""Procedural shape library: diverse object meshes, each with a procedural solid texture.

An asset is an :class:`~lift3d.generate.mesh.AssetSpec` (pure, JSON-serialisable data: shape family, shape
parameters, size, texture). :func:`build_procedural_mesh` turns a spec's family, parameters and size into triangles
deterministically, so a layout can be stored as specs and re-built by another backend (the kubric backend exports
the same meshes). :mod:`lift3d.generate.assets` dispatches between this library and Google Scanned Objects
(:mod:`lift3d.generate.gso`) and caches the built meshes.

Shape families (unit-scale parameters; the finished mesh is rescaled so its largest extent equals ``size``):

* ``box``        -- cuboid (flat shading);
* ``ellipsoid``  -- sphere scaled per axis;
* ``cylinder``, ``cone`` (frustum), ``capsule``, ``torus`` -- solids of revolution;
* ``vase``, ``bottle``, ``bowl`` -- revolved profiles (the bowl is hollow: outer wall, rim, inner wall);
* ``hull``       -- convex hull of a few random points (faceted, flat shading);
* ``pebble``     -- convex hull of many jittered points on an ellipsoid (smooth shading);
* ``extrusion``  -- star, gear, cross or blob outline extruded to a prism;
* ``compound``   -- mug, dumbbell, mushroom, table or snowman made of several parts.

Meshes are closed surfaces but not necessarily manifold (vertices are duplicated along sharp creases so that
smooth shading stays sharp there). Physics uses the convex hull (:attr:`~lift3d.generate.mesh.Mesh.hull_vertices`).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
from scipy.spatial import ConvexHull

from lift3d.generate.mesh import AssetSpec, Mesh, hull_centroid, vertex_normals
from lift3d.generate.textures import sample_texture

SHAPE_FAMILIES: Tuple[str, ...] = (
    "box",
    "ellipsoid",
    "cylinder",
    "cone",
    "capsule",
    "torus",
    "vase",
    "bottle",
    "bowl",
    "hull",
    "pebble",
    "extrusion",
    "compound",
)
COMPOUND_TEMPLATES: Tuple[str, ...] = ("mug", "dumbbell", "mushroom", "table", "snowman")
LATHE_SEGMENTS = 28
"""Angular segments of solids of revolution."""


# --------------------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------------------


def sample_procedural_asset(rng: np.random.Generator, size_range: Tuple[float, float]) -> AssetSpec:
    """Draw a random procedural asset: family (uniform), size in ``size_range``, unit-scale parameters, texture.

    Draws from ``rng`` in this fixed order (family, size, parameters, texture), so the same seed gives the same
    assets.
    """
    kind = SHAPE_FAMILIES[int(rng.integers(len(SHAPE_FAMILIES)))]
    size = float(rng.uniform(*size_range))
    params = sample_shape_params(kind, rng)
    return AssetSpec(kind, size, params, sample_texture(rng))


def sample_shape_params(kind: str, rng: np.random.Generator) -> Dict:
    """Random unit-scale parameters of shape family ``kind``."""
    if kind not in _SAMPLERS:
        raise ValueError(f"Unknown shape family {kind!r}; expected one of {SHAPE_FAMILIES}.")
    return _SAMPLERS[kind](rng)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


_SAMPLERS = {
    "box": lambda r: {"dims": [_u(r, 0.35, 1.0), _u(r, 0.35, 1.0), _u(r, 0.3, 1.0)]},
    "ellipsoid": lambda r: {"radii": [_u(r, 0.6, 1.0), _u(r, 0.6, 1.0), _u(r, 0.5, 1.0)]},
    "cylinder": lambda r: {"radius": _u(r, 0.2, 0.5), "height": _u(r, 0.4, 1.0)},
    "cone": lambda r: {"radius": _u(r, 0.3, 0.5), "top_radius": _u(r, 0.0, 0.25), "height": _u(r, 0.5, 1.0)},
    "capsule": lambda r: {"radius": _u(r, 0.15, 0.3), "length": _u(r, 0.2, 0.6)},
    "torus": lambda r: {"major": _u(r, 0.3, 0.4), "minor": _u(r, 0.08, 0.16)},
    "vase": lambda r: {
        "radius": _u(r, 0.2, 0.35),
        "height": 1.0,
        "bulge": _u(r, 0.1, 0.4),
        "waves": _u(r, 0.7, 1.8),
        "phase": _u(r, 0.0, 6.28),
    },
    "bottle": lambda r: {
        "radius": _u(r, 0.15, 0.3),
        "height": 1.0,
        "neck": _u(r, 0.25, 0.45),
        "shoulder": _u(r, 0.5, 0.7),
    },
    "bowl": lambda r: {"radius": 0.5, "height": _u(r, 0.2, 0.45), "thickness": _u(r, 0.04, 0.08)},
    "hull": lambda r: {"points": r.uniform(-0.5, 0.5, size=(int(r.integers(7, 16)), 3)).round(5).tolist()},
    "pebble": lambda r: {
        "radii": [_u(r, 0.6, 1.0), _u(r, 0.5, 0.9), _u(r, 0.3, 0.6)],
        "roughness": _u(r, 0.03, 0.12),
        "seed": int(r.integers(0, 2**31 - 1)),
    },
    "extrusion": lambda r: {
        "outline": ["star", "gear", "cross", "blob"][int(r.integers(4))],
        "teeth": int(r.integers(4, 9)),
        "inner": _u(r, 0.45, 0.75),
        "height": _u(r, 0.2, 0.6),
        "seed": int(r.integers(0, 2**31 - 1)),
    },
    "compound": lambda r: {
        "template": COMPOUND_TEMPLATES[int(r.integers(len(COMPOUND_TEMPLATES)))],
        "a": _u(r, 0.0, 1.0),
        "b": _u(r, 0.0, 1.0),
    },
}


# --------------------------------------------------------------------------------------------------------------
# Mesh construction
# --------------------------------------------------------------------------------------------------------------


def _lathe(strips: List[Tuple[np.ndarray, bool]], segments: int = LATHE_SEGMENTS) -> Tuple[np.ndarray, np.ndarray]:
    """Revolve profile strips about the z axis.

    ``strips``: list of (``[K, 2]`` points ``(r, z)``, closed). Each strip gets its own vertex rings, so shading is
    smooth along a strip and creased between strips. Returns vertices ``[V, 3]`` and triangles ``[T, 3]``.
    """
    theta = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    cos, sin = np.cos(theta), np.sin(theta)
    verts, tris, offset = [], [], 0
    for profile, closed in strips:
        profile = np.asarray(profile, dtype=np.float64)
        k = len(profile)
        ring = np.stack([profile[:, :1] * cos, profile[:, :1] * sin, np.repeat(profile[:, 1:], segments, 1)], -1)
        verts.append(ring.reshape(-1, 3))
        rows = np.arange(k if closed else k - 1)
        j = np.arange(segments)
        a = (rows[:, None] * segments + j).ravel()
        b = (rows[:, None] * segments + (j + 1) % segments).ravel()
        c = (((rows[:, None] + 1) % k) * segments + (j + 1) % segments).ravel()
        d = (((rows[:, None] + 1) % k) * segments + j).ravel()
        tris.append(np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]) + offset)
        offset += k * segments
    return np.concatenate(verts), np.concatenate(tris)


def _arc(center: Tuple[float, float], radius: float, a0: float, a1: float, n: int = 10) -> np.ndarray:
    t = np.linspace(a0, a1, n)
    return np.stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)], 1)


def _flat(points: np.ndarray, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Give every face its own vertices (flat shading)."""
    v = points[faces].reshape(-1, 3)
    return v, np.arange(len(v)).reshape(-1, 3)


def _hull_faces(points: np.ndarray) -> np.ndarray:
    """Outward-oriented triangles of the convex hull of ``points`` ``[K, 3]``."""
    hull = ConvexHull(points)
    faces = hull.simplices.copy()
    centre = points[hull.vertices].mean(0)
    n = np.cross(points[faces[:, 1]] - points[faces[:, 0]], points[faces[:, 2]] - points[faces[:, 0]])
    flip = np.einsum("ij,ij->i", n, points[faces[:, 0]] - centre) < 0
    faces[flip] = faces[flip][:, ::-1]
    return faces


def _box(dims) -> Tuple[np.ndarray, np.ndarray]:
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]) * np.asarray(dims)
    return _flat(corners, _hull_faces(corners))


def _cylinder(radius, height, top_radius=None):
    top = radius if top_radius is None else top_radius
    strips = [(np.array([[0, 0], [radius, 0]]), False), (np.array([[radius, 0], [top, height]]), False)]
    if top > 1e-3:
        strips.append((np.array([[top, height], [0, height]]), False))
    return _lathe(strips)


def _sphere_profile(radius: float, n: int = 14) -> np.ndarray:
    return _arc((0.0, 0.0), radius, -np.pi / 2, np.pi / 2, n)


def _build_raw(kind: str, p: Dict) -> Tuple[np.ndarray, np.ndarray]:
    """Unit-scale mesh of a family: vertices ``[V, 3]`` and triangles ``[T, 3]``."""
    if kind == "box":
        return _box(p["dims"])
    if kind == "ellipsoid":
        v, t = _lathe([(_sphere_profile(1.0), False)])
        return v * np.asarray(p["radii"]), t
    if kind == "cylinder":
        return _cylinder(p["radius"], p["height"])
    if kind == "cone":
        return _cylinder(p["radius"], p["height"], p["top_radius"])
    if kind == "capsule":
        r, L = p["radius"], p["length"]
        prof = np.concatenate([_arc((0, 0), r, -np.pi / 2, 0, 8), _arc((0, L), r, 0, np.pi / 2, 8)])
        return _lathe([(prof, False)])
    if kind == "torus":
        circle = _arc((p["major"], 0.0), p["minor"], 0.0, 2 * np.pi, 17)[:-1]
        return _lathe([(circle, True)])
    if kind == "vase":
        z = np.linspace(0, p["height"], 16)
        r = p["radius"] * (1 + p["bulge"] * np.sin(2 * np.pi * p["waves"] * z / p["height"] + p["phase"]))
        r = np.maximum(r, 0.05)
        side = np.stack([r, z], 1)
        return _lathe(
            [(np.array([[0, 0], side[0]]), False), (side, False), (np.array([side[-1], [0, p["height"]]]), False)]
        )
    if kind == "bottle":
        R, H, neck, sh = p["radius"], p["height"], p["radius"] * p["neck"], p["shoulder"]
        t = np.linspace(0, 1, 8)
        shoulder = np.stack([R + (neck - R) * (3 * t**2 - 2 * t**3), sh * H + t * 0.2 * H], 1)
        side = np.concatenate([[[R, 0.0]], shoulder, [[neck, H]]])
        return _lathe([(np.array([[0, 0], [R, 0]]), False), (side, False), (np.array([[neck, H], [0, H]]), False)])
    if kind == "bowl":
        R, H, th = p["radius"], p["height"], p["thickness"]
        a = np.linspace(-np.pi / 2, 0, 10)
        outer = np.stack([R * np.cos(a), H + H * np.sin(a)], 1)
        inner = np.stack([(R - th) * np.cos(a[::-1]), H + (H - th) * np.sin(a[::-1])], 1)
        foot = np.array([[0.0, 0.0], [0.35 * R, 0.0]])  # flat foot ring, then the outer wall starts at its edge
        outer = np.concatenate([foot[1:], outer[outer[:, 0] > 0.45 * R]])
        return _lathe([(foot, False), (outer, False), (np.array([outer[-1], inner[0]]), False), (inner, False)])
    if kind == "hull":
        pts = np.asarray(p["points"], dtype=np.float64)
        return _flat(pts, _hull_faces(pts))
    if kind == "pebble":
        rng = np.random.default_rng(p["seed"])
        d = rng.normal(size=(160, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        pts = d * np.asarray(p["radii"]) * (1 + p["roughness"] * rng.uniform(-1, 1, size=(160, 1)))
        faces = _hull_faces(pts)
        used = np.unique(faces)
        remap = np.full(len(pts), -1)
        remap[used] = np.arange(len(used))
        return pts[used], remap[faces]
    if kind == "extrusion":
        return _extrusion(p)
    if kind == "compound":
        return _compound(p)
    raise ValueError(f"Unknown shape family {kind!r}; expected one of {SHAPE_FAMILIES}.")


def _outline(p: Dict) -> Tuple[np.ndarray, bool]:
    """Star-shaped 2D outline ``[K, 2]`` (around the origin) and whether its sides are smooth."""
    n, inner = p["teeth"], p["inner"]
    if p["outline"] == "star":
        ang = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
        rad = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner)
        smooth = False
    elif p["outline"] == "gear":
        ang = np.linspace(0, 2 * np.pi, 4 * n, endpoint=False) + np.pi / (4 * n)
        rad = np.where((np.arange(4 * n) // 2) % 2 == 0, 1.0, 0.8)
        smooth = False
    elif p["outline"] == "cross":
        w = 0.5 * inner
        quarter = np.array([[1.0, -w], [1.0, w], [w, w]])

        def rot(k: int) -> np.ndarray:
            c, s = np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)
            return np.array([[c, -s], [s, c]])

        return np.concatenate([quarter @ rot(k).T for k in range(4)]), False
    else:  # blob
        rng = np.random.default_rng(p["seed"])
        ang = np.linspace(0, 2 * np.pi, 36, endpoint=False)
        coef = rng.normal(scale=0.12, size=(2, 4))
        k = np.arange(1, 5)[:, None]
        rad = 1.0 + (coef[0] @ np.sin(k * ang) + coef[1] @ np.cos(k * ang))
        rad = np.clip(rad, 0.5, 1.5)
        smooth = True
    return np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1), smooth


def _extrusion(p: Dict) -> Tuple[np.ndarray, np.ndarray]:
    outline, smooth = _outline(p)
    k, h = len(outline), p["height"] * 2.0
    bottom = np.concatenate([outline, np.zeros((k, 1))], 1)
    top = bottom + [0, 0, h]
    idx = np.arange(k)
    nxt = (idx + 1) % k
    # caps: fans from the centre (the outlines are star-shaped around the origin)
    cap_b = np.concatenate([[[0, 0, 0]], bottom])
    cap_t = np.concatenate([[[0, 0, h]], top])
    tri_b = np.stack([np.zeros(k, int), nxt + 1, idx + 1], 1)
    tri_t = np.stack([np.zeros(k, int), idx + 1, nxt + 1], 1) + len(cap_b)
    verts, tris = [cap_b, cap_t], [tri_b, tri_t]
    base = len(cap_b) + len(cap_t)
    if smooth:
        verts.append(np.concatenate([bottom, top]))
        tris.append(np.concatenate([np.stack([idx, nxt, nxt + k], 1), np.stack([idx, nxt + k, idx + k], 1)]) + base)
    else:
        quads = np.stack([bottom[idx], bottom[nxt], top[nxt], top[idx]], 1)  # [k, 4, 3]
        verts.append(quads.reshape(-1, 3))
        q = np.arange(k)[:, None] * 4
        tris.append(np.concatenate([q + [0, 1, 2], q + [0, 2, 3]]) + base)
    return np.concatenate(verts), np.concatenate(tris)


def _merge(parts: List[Tuple[np.ndarray, np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    verts, tris, offset = [], [], 0
    for v, t in parts:
        verts.append(v)
        tris.append(t + offset)
        offset += len(v)
    return np.concatenate(verts), np.concatenate(tris)


def _moved(mesh: Tuple[np.ndarray, np.ndarray], offset=(0, 0, 0), axis_x: bool = False):
    v, t = mesh
    if axis_x:  # lay a z-axis solid along x (swapping two axes mirrors, so flip the winding)
        v = v[:, [2, 1, 0]]
        t = t[:, ::-1]
    return v + np.asarray(offset, dtype=np.float64), t


def _compound(p: Dict) -> Tuple[np.ndarray, np.ndarray]:
    a, b, name = p["a"], p["b"], p["template"]
    if name == "mug":
        r, h = 0.3 + 0.1 * a, 0.6 + 0.3 * b
        handle = _lathe([(_arc((0.15, 0.0), 0.035, 0, 2 * np.pi, 9)[:-1], True)])
        hv, ht = handle
        hv = hv[:, [0, 2, 1]] + [r + 0.05, 0, h / 2]  # ring in the xz plane, beside the body
        return _merge([_cylinder(r, h), (hv, ht[:, ::-1])])
    if name == "dumbbell":
        rb, L = 0.18 + 0.1 * a, 0.8 + 0.3 * b
        bar = _moved(_cylinder(0.06, L), (-L / 2, 0, 0), axis_x=True)
        balls = [_moved(_lathe([(_sphere_profile(rb), False)]), (s * L / 2, 0, 0)) for s in (-1, 1)]
        return _merge([bar, *balls])
    if name == "mushroom":
        rs, hs, rc = 0.1 + 0.08 * a, 0.4 + 0.3 * b, 0.45
        cap = _lathe([(np.array([[0, 0], [rc, 0]]), False), (_arc((0, 0), rc, 0, np.pi / 2, 10), False)])
        return _merge([_cylinder(rs, hs), _moved(cap, (0, 0, hs))])
    if name == "table":
        w, d, h, leg = 1.0, 0.6 + 0.3 * a, 0.5 + 0.3 * b, 0.06
        parts = [_moved(_box([w, d, 0.06]), (0, 0, h))]
        for sx in (-1, 1):
            for sy in (-1, 1):
                parts.append(_moved(_box([leg, leg, h]), (sx * (w / 2 - leg), sy * (d / 2 - leg), h / 2)))
        return _merge(parts)
    if name == "snowman":
        r0, r1, r2 = 0.3, 0.22 + 0.04 * a, 0.15 + 0.03 * b

        def ball(r: float, z: float):
            return _moved(_lathe([(_sphere_profile(r), False)]), (0, 0, z))

        return _merge([ball(r0, 0), ball(r1, r0 + 0.8 * r1), ball(r2, r0 + 1.6 * r1 + 0.8 * r2)])
    raise ValueError(f"Unknown compound template {name!r}; expected one of {COMPOUND_TEMPLATES}.")


def build_procedural_mesh(kind: str, params: Dict, size: float) -> Mesh:
    """Build the mesh of family ``kind``: largest extent = ``size``, origin = centroid of its convex hull.

    Deterministic (no random state beyond the seeds held in ``params``). The arrays of the result are read-only,
    so the mesh can be cached and shared (:func:`lift3d.generate.assets.build_mesh` does).
    """
    v, t = _build_raw(kind, params)
    v = np.asarray(v, dtype=np.float64)
    t = np.asarray(t, dtype=np.int64)
    extent = (v.max(0) - v.min(0)).max()
    v = v * (size / extent)
    centre, volume, hull_idx = hull_centroid(v)
    v = v - centre
    # unique hull vertices (duplicated vertices along creases are removed)
    hull_v = np.unique(np.round(v[hull_idx], 7), axis=0)
    for arr in (v, t, hull_v):
        arr.setflags(write=False)
    normals = vertex_normals(v, t)
    normals.setflags(write=False)
    return Mesh(v, t, normals, hull_v, volume)
