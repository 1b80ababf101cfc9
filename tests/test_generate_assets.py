"""Procedural assets and textures of the Messy Rooms generator."""

import numpy as np
import pytest

from lift3d.generate.assets import build_mesh, sample_asset
from lift3d.generate.mesh import AssetSpec, hull_centroid, vertex_normals
from lift3d.generate.procedural import SHAPE_FAMILIES, sample_shape_params
from lift3d.generate.textures import TEXTURE_KINDS, TextureSpec, environment_albedo, evaluate_texture, value_noise


@pytest.mark.parametrize("family", SHAPE_FAMILIES)
def test_every_family_builds_a_centred_mesh_of_the_requested_size(family):
    rng = np.random.default_rng(3)
    for _ in range(3):
        spec = AssetSpec(family, 0.15, sample_shape_params(family, rng), sample_asset(rng, (0.1, 0.2)).texture)
        mesh = build_mesh(spec)
        extent = mesh.vertices.max(0) - mesh.vertices.min(0)
        assert extent.max() == pytest.approx(0.15)
        assert mesh.triangles.max() < len(mesh.vertices)
        np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-6)
        assert 0 < mesh.hull_volume < 0.15**3
        # the origin (hull centroid) lies strictly inside the hull's bounding box
        lo, hi = mesh.hull_vertices.min(0), mesh.hull_vertices.max(0)
        assert ((lo < 0) & (hi > 0)).all()


def test_build_mesh_is_deterministic_and_box_is_exact():
    tex = TextureSpec("solid", ((0.5, 0.5, 0.5), (0.1, 0.1, 0.1)), 3.0, (0.0, 0.0, 1.0), 0)
    box = build_mesh(AssetSpec("box", 0.2, {"dims": [1.0, 0.5, 0.25]}, tex))
    np.testing.assert_allclose(box.vertices.max(0), [0.1, 0.05, 0.025])
    np.testing.assert_allclose(box.vertices.min(0), [-0.1, -0.05, -0.025])
    assert box.hull_volume == pytest.approx(0.2 * 0.1 * 0.05)
    assert len(box.hull_vertices) == 8
    # flat shading: every box vertex normal is an axis direction
    assert np.allclose(np.abs(box.normals).max(1), 1.0)
    again = build_mesh(AssetSpec("box", 0.2, {"dims": [1.0, 0.5, 0.25]}, tex))
    np.testing.assert_array_equal(again.vertices, box.vertices)


def test_sampled_library_is_diverse():
    rng = np.random.default_rng(0)
    specs = [sample_asset(rng, (0.07, 0.25)) for _ in range(200)]
    assert {s.kind for s in specs} == set(SHAPE_FAMILIES)
    assert {s.texture.kind for s in specs} == set(TEXTURE_KINDS)
    sizes = np.array([s.size for s in specs])
    assert sizes.min() >= 0.07 and sizes.max() <= 0.25


def test_vertex_normals_of_a_single_triangle():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(vertex_normals(v, np.array([[0, 1, 2]])), [[0, 0, 1]] * 3)


def test_value_noise_is_deterministic_bounded_and_interpolates_lattice_values():
    rng = np.random.default_rng(0)
    p = rng.uniform(-5, 5, size=(2000, 3))
    n = value_noise(p, 7)
    assert n.min() >= 0 and n.max() <= 1
    np.testing.assert_array_equal(n, value_noise(p, 7))
    assert not np.allclose(n, value_noise(p, 8))
    # smoothstep weights: at a lattice point the noise equals that point's hash, halfway it is the mean of the two
    a, b = value_noise(np.array([[2.0, 3.0, 4.0]]), 1), value_noise(np.array([[3.0, 3.0, 4.0]]), 1)
    mid = value_noise(np.array([[2.5, 3.0, 4.0]]), 1)
    assert mid == pytest.approx((a + b) / 2)


def test_hull_centroid_of_a_cube_and_a_tetrahedron():
    # unit cube [0, 1]^3 plus an inner point (not a hull vertex): centroid (0.5, 0.5, 0.5), volume 1
    cube = np.array([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)] + [[0.2, 0.3, 0.4]])
    centre, volume, idx = hull_centroid(cube)
    np.testing.assert_allclose(centre, [0.5, 0.5, 0.5], atol=1e-12)
    assert volume == pytest.approx(1.0)
    assert sorted(idx.tolist()) == list(range(8))
    # the tetrahedron (0, e_x, 2 e_y, 3 e_z): volume 1 * 2 * 3 / 6 = 1, centroid = mean of its corners (1/4, 1/2, 3/4)
    tet = np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]])
    centre, volume, _ = hull_centroid(tet)
    np.testing.assert_allclose(centre, [0.25, 0.5, 0.75], atol=1e-12)
    assert volume == pytest.approx(1.0)


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_textures_use_their_colours(kind):
    colors = ((0.9, 0.1, 0.1), (0.1, 0.1, 0.9), (0.1, 0.9, 0.1))
    spec = TextureSpec(kind, colors, 4.0, (0.0, 0.6, 0.8), 5)
    q = np.random.default_rng(1).uniform(-0.5, 0.5, size=(4000, 3))
    albedo = evaluate_texture(spec, q)
    assert albedo.shape == (4000, 3) and (albedo >= 0).all() and (albedo <= 1.2).all()
    np.testing.assert_array_equal(albedo, evaluate_texture(spec, q))
    if kind != "solid":  # patterned textures show more than one colour
        dominant = albedo.argmax(1)
        assert len(np.unique(dominant)) >= 2


@pytest.mark.parametrize("env", ["old_room", "large_corridor"])
def test_environments_texture_floor_walls_and_ceiling(env):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-3, 3, size=(3000, 3))
    surface = rng.integers(0, 3, size=3000)
    albedo = environment_albedo(env, pts, surface)
    assert albedo.shape == (3000, 3) and np.isfinite(albedo).all() and (albedo >= 0).all()
    assert albedo[surface == 0].std(0).max() > 0.01  # the floor is textured
