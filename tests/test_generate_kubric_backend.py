"""lift3d.generate.kubric_backend: the geometry helpers (hand-checked, no Blender needed) and, where the optional
``generate`` extra is installed, a tiny kubric render (5 objects, 4 views, 64x64) that sees the same instances at
the same depths as the fast backend, plus kubric's PyBullet physics."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from lift3d.generate.kubric_backend import (
    bake_quad_texture,
    camera_focal_mm,
    hull_urdf,
    missing_dependencies,
    room_quads,
    subdivide,
    subdivision_level,
)
from lift3d.generate.mesh import Mesh, vertex_normals
from lift3d.generate.textures import FLOOR, environment_albedo
from lift3d.geometry.cameras import matrix_to_quat_wxyz


def _triangle_mesh():
    v = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    t = np.array([[0, 1, 2]])
    return Mesh(v, t, vertex_normals(v, t), v, 0.0)


def test_subdivide_makes_n_squared_congruent_triangles():
    m = _triangle_mesh()
    v, t, n = subdivide(m.vertices, m.triangles, m.normals, 2)
    assert v.shape == (6, 3) and t.shape == (4, 3)
    # grid points a + i/2 (b - a) + j/2 (c - a)
    expected = {(0, 0), (1, 0), (2, 0), (0, 0.5), (1, 0.5), (0, 1)}
    assert {(float(x), float(y)) for x, y, _ in v} == expected
    e1, e2 = v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]]
    cross = np.cross(e1, e2)
    np.testing.assert_allclose(cross[:, 2], 0.5)  # each a quarter of the area (1), same orientation (+z)
    np.testing.assert_allclose(n, [[0, 0, 1]] * 6)


def test_subdivision_level_follows_the_texture_resolution_and_cap():
    m = _triangle_mesh()  # longest edge sqrt(5)
    assert subdivision_level(m, size=2.0, texture_resolution=4.0, max_triangles=10**6) == math.ceil(math.sqrt(5) * 2)
    assert subdivision_level(m, size=2.0, texture_resolution=4.0, max_triangles=9) == 3  # n^2 <= 9
    assert subdivision_level(m, size=100.0, texture_resolution=1.0, max_triangles=10) == 1


def test_camera_and_quaternion_conversions():
    assert camera_focal_mm(fx=128.0, width=64) == pytest.approx(72.0)  # 2 widths of focal length on a 36 mm sensor
    s = math.sqrt(0.5)
    Rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    w, x, y, z = matrix_to_quat_wxyz(Rz90, w_nonnegative=False)
    assert abs(w) == pytest.approx(s) and abs(z) == pytest.approx(s) and x == pytest.approx(0) and y == pytest.approx(0)
    assert w * z > 0


def test_room_quads_face_inwards_and_textures_sample_the_environment():
    lo, hi = np.array([-1.0, -2.0, 0.0]), np.array([1.0, 2.0, 3.0])
    centre = (lo + hi) / 2
    for corners, _ in room_quads(lo, hi):
        a, b, _, d = corners
        normal = np.cross(b - a, corners[2] - a)
        assert normal @ (centre - a) > 0  # the front side faces the room's centre
    floor, surface = room_quads(lo, hi)[0]
    assert surface == FLOOR
    img = bake_quad_texture("old_room", floor, FLOOR, texels_per_metre=4.0)
    assert img.shape == (16, 8, 3)  # 4 m (v: a -> d) x 2 m (u: a -> b)
    first = floor[0] + (0.5 / 8) * (floor[1] - floor[0]) + (0.5 / 16) * (floor[3] - floor[0])
    np.testing.assert_allclose(img[0, 0], environment_albedo("old_room", first[None], np.array([FLOOR]))[0])


def test_hull_urdf_is_valid_xml_with_the_mass():
    root = ET.fromstring(hull_urdf("obj", "/tmp/hull.obj", 0.25))
    assert root.find("link/inertial/mass").get("value") == "0.25"
    assert root.find("link/collision/geometry/mesh").get("filename") == "/tmp/hull.obj"


# ---------------------------------------------------------------------------------------------- with kubric
needs_kubric = pytest.mark.skipif(
    bool(missing_dependencies()), reason="optional extra lift3d[generate] (kubric, bpy 4.2) not installed"
)


@pytest.fixture(scope="module")
def tiny_kubric():
    from lift3d.generate import MessyRoomsConfig, make_layout, render
    from lift3d.generate.fast_backend import render_views

    cfg = MessyRoomsConfig(num_objects=5, num_views=4, resolution=64, seed=0, backend="kubric")
    cfg.kubric.samples_per_pixel = 8
    layout = make_layout(cfg)
    return cfg, layout, render(layout, cfg), render_views(layout, cfg)


@needs_kubric
def test_tiny_kubric_render_sees_the_fast_backends_instances_and_depths(tiny_kubric):
    cfg, layout, kub, fast = tiny_kubric
    V, R = cfg.num_views, cfg.resolution
    assert kub.rgb.shape == (V, R, R, 3) and kub.rgb.dtype == np.uint8
    assert kub.depth.shape == (V, R, R) and kub.instance.dtype == np.uint16 and kub.semantic.dtype == np.uint8
    ids = {o.instance_id for o in layout.objects}
    assert set(np.unique(kub.instance).tolist()) <= ids | {0}
    assert len(set(np.unique(kub.instance).tolist()) - {0}) >= 3  # objects are seen
    np.testing.assert_array_equal(kub.semantic, (kub.instance > 0).astype(np.uint8))
    agree = kub.instance == fast.instance
    assert agree.mean() > 0.97, agree.mean()
    # depth = distance along the optical axis in both backends
    obj = agree & (fast.instance > 0)
    rel = np.abs(kub.depth[obj] - fast.depth[obj]) / fast.depth[obj]
    assert np.median(rel) < 1e-3 and np.percentile(rel, 95) < 1e-2
    assert (kub.depth > 0).all() and np.isfinite(kub.depth).all()
    # same textures and light: per-object mean colours of the two backends correlate
    kub_means = [kub.rgb[kub.instance == k].mean(0) for k in ids if (kub.instance == k).sum() > 20]
    fast_means = [fast.rgb[kub.instance == k].mean(0) for k in ids if (kub.instance == k).sum() > 20]
    corr = np.corrcoef(np.ravel(kub_means), np.ravel(fast_means))[0, 1]
    assert corr > 0.8, corr


@needs_kubric
def test_kubric_scene_is_written_through_the_shared_pipeline(tiny_kubric, tmp_path):
    import json

    from lift3d.generate import run_segmenter
    from lift3d.generate.writer import write_scene

    cfg, layout, kub, _ = tiny_kubric
    write_scene(tmp_path / "scene", layout, kub, run_segmenter(kub, cfg), cfg)
    meta = json.loads((tmp_path / "scene" / "transforms.json").read_text())
    assert meta["generator"]["backend"] == "kubric" and len(meta["frames"]) == 4


@needs_kubric
def test_kubric_pybullet_physics_settles_objects_on_the_floor():
    from lift3d.generate import MessyRoomsConfig, make_layout
    from lift3d.generate.kubric_backend import settle_with_kubric

    cfg = MessyRoomsConfig(num_objects=3, num_views=1, resolution=16, seed=1)
    cfg.physics.max_seconds = 3.0
    layout = make_layout(cfg, settle_fn=settle_with_kubric)
    assert layout.physics.steps == 720 and len(layout.objects) == 3
    for o in layout.objects:
        lowest = o.world_vertices()[:, 2].min()
        assert -0.005 < lowest < 0.01, (o.instance_id, lowest)  # resting on the floor plane z = 0
    # kubric's simulator object, collected later, must not close a pybullet connection opened after it
    import gc

    import pybullet as pb

    cid = pb.connect(pb.DIRECT)
    gc.collect()
    assert pb.isConnected(physicsClientId=cid)
    pb.disconnect(physicsClientId=cid)
