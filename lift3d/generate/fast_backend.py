"""Fast CPU renderer of a :class:`SceneLayout`: open3d ray casting, procedural textures, Lambertian shading.

Per view it produces RGB, depth (distance along the optical axis, metres), ground-truth instance ids (0 = room,
k = object k, the same in every view because they come from one 3D scene) and ground-truth semantics (the
scene's :class:`~lift3d.generate.classes.SceneClasses`: 0 = background, 1 = object with ``classes binary``; the
object's family and the room surface (floor, wall, ceiling) or sky with ``classes families``). The room is a closed box (floor, four walls, ceiling) around every camera, so every
ray hits a surface and depth is defined at every pixel. The open environments (``open_floor``) have a floor square
``OPEN_FLOOR_HALF_SIZE`` wide on each side of the origin and no walls: a ray that misses everything sees the sky
(:func:`lift3d.generate.textures.sky_radiance`), with depth 0 (unknown), instance 0 and class 0.

Shading (linear RGB, then ``c ** (1 / 2.2)``)::

    c = albedo * (ambient + light * max(0, n . l) * visible)

with ``n`` the interpolated vertex normal turned towards the camera, ``l`` the unit direction to the directional
light and ``visible`` = 0 if a shadow ray towards the light hits an object (the room casts no shadows).

``albedo``: procedural objects evaluate their solid texture at the hit (object-local coordinates / size); Google
Scanned Objects (``assets = PATH``) interpolate the hit triangle's corner UVs with the hit's barycentric
coordinates and sample their image texture bilinearly (:mod:`lift3d.generate.gso`).
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional

import numpy as np
import open3d as o3d
import torch

from lift3d.generate.classes import SceneClasses, layout_classes
from lift3d.generate.config import MessyRoomsConfig
from lift3d.generate.gso import interpolate_uv, sample_texture_image
from lift3d.generate.layout import SceneLayout, room_quads
from lift3d.generate.textures import (
    ENVIRONMENTS,
    FLOOR,
    OPEN_ENVIRONMENTS,
    environment_albedo,
    evaluate_texture,
    linear_to_srgb8,
    sky_radiance,
)
from lift3d.generate.views import RenderedViews
from lift3d.geometry.cameras import Distortion, undistort_normalized

BACKGROUND_ID = 0
OBJECT_CLASS = 1
SHADOW_OFFSET = 1e-3
"""Shadow rays start this far (m) along the surface normal to avoid self-hits."""
OPEN_FLOOR_HALF_SIZE = 1000.0
"""Half side (m) of the floor square of the open environments."""


class _Scene:
    """Ray-casting scenes plus the per-geometry tables needed to shade a hit."""

    def __init__(self, layout: SceneLayout, environment: str = "old_room") -> None:
        self.primary = o3d.t.geometry.RaycastingScene()
        self.shadow = o3d.t.geometry.RaycastingScene()
        tris, normals, first_tri = [], [], []
        self.rotations, self.translations, self.sizes, self.textures, self.instance_of = [], [], [], [], []
        self.corner_uvs, self.images = [], []  # image-textured (GSO) objects; None for procedural ones
        n_verts = n_tris = 0
        for obj in layout.objects:
            mesh = obj.mesh()
            wv = (mesh.vertices @ obj.rotation.T + obj.translation).astype(np.float32)
            tri = mesh.triangles.astype(np.uint32)
            gid = self.primary.add_triangles(o3d.core.Tensor(wv), o3d.core.Tensor(tri))
            self.shadow.add_triangles(o3d.core.Tensor(wv), o3d.core.Tensor(tri))
            assert gid == len(first_tri)
            tris.append(mesh.triangles + n_verts)
            normals.append(mesh.normals @ obj.rotation.T)
            first_tri.append(n_tris)
            n_verts += len(wv)
            n_tris += len(tri)
            self.rotations.append(obj.rotation)
            self.translations.append(obj.translation)
            self.sizes.append(obj.asset.size)
            self.textures.append(obj.asset.texture)
            self.corner_uvs.append(mesh.corner_uvs)
            self.images.append(mesh.texture_image)
            self.instance_of.append(obj.instance_id)
        self.open = environment in OPEN_ENVIRONMENTS
        if self.open:
            room_v, room_t, room_surface = _floor_mesh(OPEN_FLOOR_HALF_SIZE)
        else:
            room_v, room_t, room_surface = _room_mesh(layout.room_min, layout.room_max)
        self.room_gid = self.primary.add_triangles(
            o3d.core.Tensor(room_v.astype(np.float32)), o3d.core.Tensor(room_t.astype(np.uint32))
        )
        self.room_surface = room_surface
        self.num_objects = len(layout.objects)
        self.instance_of = np.asarray(self.instance_of + [BACKGROUND_ID], dtype=np.uint16)
        self.triangles = np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)
        self.normals = np.concatenate(normals) if normals else np.zeros((0, 3))
        self.first_tri = np.asarray(first_tri + [n_tris], dtype=np.int64)
        self.rotations = np.asarray(self.rotations).reshape(-1, 3, 3)
        self.translations = np.asarray(self.translations).reshape(-1, 3)

    def semantic_of_hits(
        self, classes: SceneClasses, t: np.ndarray, gid: np.ndarray, prim: np.ndarray, instance: np.ndarray
    ) -> np.ndarray:
        """Ground-truth classes ``[M]`` of cast rays (``t, gid, prim`` from :meth:`cast`, ``instance [M]`` their
        instance ids): the object's class, the class of the room surface hit, or the sky's."""
        is_room = gid == self.room_gid
        surface = np.zeros(len(gid), np.int64)
        surface[is_room] = self.room_surface[prim[is_room]]
        return classes.semantic(instance, surface, ~np.isfinite(t))

    def cast(self, origins: np.ndarray, dirs: np.ndarray):
        rays = np.concatenate([origins, dirs], axis=1).astype(np.float32)
        ans = self.primary.cast_rays(o3d.core.Tensor(rays))
        t = ans["t_hit"].numpy().astype(np.float64)
        gid = ans["geometry_ids"].numpy().astype(np.int64)
        prim = ans["primitive_ids"].numpy().astype(np.int64)
        uv = ans["primitive_uvs"].numpy().astype(np.float64)
        face_n = ans["primitive_normals"].numpy().astype(np.float64)
        if not self.open and not np.isfinite(t).all():
            raise RuntimeError("A camera ray left the room box; the room must contain every camera.")
        return t, gid, prim, uv, face_n


def _room_mesh(lo: np.ndarray, hi: np.ndarray):
    """Closed box: 12 triangles (floor, 4 walls, ceiling) and the surface kind of each triangle."""
    quads = [(*corners, kind) for corners, kind in room_quads(lo, hi)]
    verts, tris, surface = [], [], []
    for k, (a, b, c, d, kind) in enumerate(quads):
        verts += [a, b, c, d]
        tris += [[4 * k, 4 * k + 1, 4 * k + 2], [4 * k, 4 * k + 2, 4 * k + 3]]
        surface += [kind, kind]
    return np.asarray(verts, float), np.asarray(tris), np.asarray(surface)


def _floor_mesh(half_size: float):
    """The open environments' floor: one square (2 triangles) at z = 0, ``half_size`` on each side of the origin."""
    a = half_size
    verts = np.array([[-a, -a, 0.0], [a, -a, 0.0], [a, a, 0.0], [-a, a, 0.0]])
    return verts, np.array([[0, 1, 2], [0, 2, 3]]), np.array([FLOOR, FLOOR])


def pixel_rays(
    c2w: np.ndarray,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    samples_per_side: int = 1,
    distortion: Optional[Distortion] = None,
):
    """World-space rays of a view, OpenGL convention (CONVENTIONS-dev.md).

    Sub-pixel sample ``(su, sv)`` of pixel ``(u, v)`` sits at ``(u + (su + 0.5) / s, v + (sv + 0.5) / s)``; with
    ``s = 1`` that is the pixel centre ``(u + 0.5, v + 0.5)``. The camera-space direction is
    ``[(x - cx) / fx, -(y - cy) / fy, -1]`` (not normalised, so the ray parameter at a hit *is* the depth along
    the optical axis). With a lens ``distortion`` the normalised sample position ``((x - cx) / fx, (y - cy) / fy)``
    is undistorted first (:func:`lift3d.geometry.cameras.undistort_normalized`), so the rendered image is the
    distorted one. Returns origins and directions ``[H * s, W * s, 3]`` (sub-pixel rows/columns interleaved).
    """
    s = samples_per_side
    xs = (np.arange(width * s) + 0.5) / s
    ys = (np.arange(height * s) + 0.5) / s
    x, y = np.meshgrid(xs, ys)
    xn, yn = (x - cx) / fx, (y - cy) / fy
    if distortion is not None:
        xy = undistort_normalized(torch.from_numpy(np.stack([xn.ravel(), yn.ravel()], -1)), distortion).numpy()
        xn, yn = xy[:, 0].reshape(x.shape), xy[:, 1].reshape(x.shape)
    d_cam = np.stack([xn, -yn, -np.ones_like(x)], axis=-1)
    dirs = d_cam @ c2w[:3, :3].T
    origins = np.broadcast_to(c2w[:3, 3], dirs.shape)
    return origins, dirs


def _shade(scene: _Scene, env: str, origins: np.ndarray, dirs: np.ndarray, shadows: bool) -> np.ndarray:
    """Linear RGB ``[M, 3]`` of rays ``[M, 3]``; also see the module docstring."""
    hit = scene.cast(origins, dirs)
    sky = ~np.isfinite(hit[0])
    if not sky.any():
        return _shade_hits(scene, env, origins, dirs, shadows, hit)
    out = np.empty((len(origins), 3))
    out[sky] = sky_radiance(env, dirs[sky])
    on = ~sky
    out[on] = _shade_hits(scene, env, origins[on], dirs[on], shadows, tuple(a[on] for a in hit))
    return out


def _shade_hits(scene: _Scene, env: str, origins: np.ndarray, dirs: np.ndarray, shadows: bool, hit) -> np.ndarray:
    """Linear RGB ``[M, 3]`` of rays ``[M, 3]`` that hit a surface; ``hit`` = :meth:`_Scene.cast`'s results."""
    style = ENVIRONMENTS[env]
    t, gid, prim, uv, face_n = hit
    points = origins + t[:, None] * dirs
    is_obj = gid < scene.num_objects
    normals = face_n.copy()
    if is_obj.any():  # interpolated vertex normals on objects (barycentric coordinates from primitive_uvs)
        tri = scene.triangles[scene.first_tri[gid[is_obj]] + prim[is_obj]]
        u, v = uv[is_obj, 0:1], uv[is_obj, 1:2]
        n = (1 - u - v) * scene.normals[tri[:, 0]] + u * scene.normals[tri[:, 1]] + v * scene.normals[tri[:, 2]]
        normals[is_obj] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    facing = np.einsum("ij,ij->i", normals, dirs) > 0
    normals[facing] *= -1.0
    albedo = np.zeros_like(points)
    for g in np.unique(gid[is_obj]):
        sel = gid == g
        if scene.textures[g] is None:  # image-textured mesh (GSO): UV of the hit -> texture look-up
            uvs = scene.corner_uvs[g]
            hit_uv = interpolate_uv(uvs[prim[sel]], uv[sel]) if uvs is not None else np.zeros((int(sel.sum()), 2))
            albedo[sel] = sample_texture_image(scene.images[g], hit_uv)
            continue
        local = (points[sel] - scene.translations[g]) @ scene.rotations[g]
        albedo[sel] = evaluate_texture(scene.textures[g], local / scene.sizes[g])
    room = ~is_obj
    albedo[room] = environment_albedo(env, points[room], scene.room_surface[prim[room]])
    az, el = np.deg2rad(style.light_azimuth_deg), np.deg2rad(style.light_elevation_deg)
    light_dir = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    lambert = np.clip(normals @ light_dir, 0.0, None)
    if shadows and scene.num_objects > 0:
        lit = lambert > 0
        rays = np.concatenate(
            [points[lit] + SHADOW_OFFSET * normals[lit], np.broadcast_to(light_dir, (int(lit.sum()), 3))], axis=1
        ).astype(np.float32)
        blocked = scene.shadow.test_occlusions(o3d.core.Tensor(rays)).numpy()
        lambert[np.flatnonzero(lit)[blocked]] = 0.0
    shading = np.asarray(style.ambient_color) + np.outer(lambert, style.light_color)
    return albedo * shading


def render_views(
    layout: SceneLayout, cfg: MessyRoomsConfig, progress: Optional[Callable[[int, int], None]] = None
) -> RenderedViews:
    """Render every camera of ``layout`` (RGB, depth, GT instance and semantic maps). See the module docstring.

    ``progress(done_views, num_views)`` is called after each view.
    """
    if cfg.environment not in ENVIRONMENTS:
        raise ValueError(f"Unknown environment {cfg.environment!r}; expected one of {sorted(ENVIRONMENTS)}.")
    if cfg.hdri_path is not None:
        warnings.warn(
            "hdri_path is only used by the kubric backend; the fast backend renders its procedural "
            f"'{cfg.environment}' room instead.",
            stacklevel=2,
        )
    scene = _Scene(layout, cfg.environment)
    classes = layout_classes(layout, cfg)
    K = layout.intrinsics
    W, H, s = K.width, K.height, max(1, cfg.rgb_supersampling)
    V = layout.num_views
    lens = cfg.lens_distortion()
    out = RenderedViews(
        np.zeros((V, H, W, 3), np.uint8),
        np.zeros((V, H, W), np.float32),
        np.zeros((V, H, W), np.uint16),
        np.zeros((V, H, W), np.uint8),
    )
    for v in range(V):
        c2w = layout.camera_to_world[v]
        origins, dirs = pixel_rays(c2w, K.fx, K.fy, K.cx, K.cy, W, H, 1, lens)
        t, gid, prim, *_ = scene.cast(origins.reshape(-1, 3), dirs.reshape(-1, 3))
        out.depth[v] = np.where(np.isfinite(t), t, 0.0).reshape(H, W)  # sky: 0 = unknown
        inst = scene.instance_of[np.minimum(gid, scene.num_objects)]
        out.instance[v] = inst.reshape(H, W)
        out.semantic[v] = scene.semantic_of_hits(classes, t, gid, prim, inst).reshape(H, W)
        o_s, d_s = pixel_rays(c2w, K.fx, K.fy, K.cx, K.cy, W, H, s, lens)
        color = _shade(scene, cfg.environment, o_s.reshape(-1, 3), d_s.reshape(-1, 3), cfg.shadows)
        color = color.reshape(H, s, W, s, 3).mean(axis=(1, 3))
        out.rgb[v] = linear_to_srgb8(color)
        if progress is not None:
            progress(v + 1, V)
    return out
