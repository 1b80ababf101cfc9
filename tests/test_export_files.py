"""Export building blocks on hand-made data: the PLY writer read back by open3d and plyfile, oriented boxes of known
cuboids, the marching-cubes iso-level, the instance palette and the --instances parser."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lift3d.export import instance_colours, oriented_box, parse_instance_ids, read_ply_vertices, write_points_ply
from lift3d.export.mesh import LabelledMesh


def _points(n=50, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32) * 3 + 100  # far from the origin: world coordinates kept
    rgb = rng.integers(0, 256, size=(n, 3)).astype(np.uint8)
    inst = rng.integers(0, 400, size=n).astype(np.int32)  # ids past 255 must survive
    cls = rng.integers(0, 7, size=n).astype(np.int32)
    return xyz, rgb, inst, cls


def test_points_ply_read_back_by_plyfile_open3d_and_ourselves(tmp_path):
    xyz, rgb, inst, cls = _points()
    path = write_points_ply(tmp_path / "p.ply", xyz, rgb, inst, cls)

    plyfile = pytest.importorskip("plyfile")
    v = plyfile.PlyData.read(str(path))["vertex"]
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), xyz)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), rgb)
    np.testing.assert_array_equal(v["instance"], inst)
    np.testing.assert_array_equal(v["class"], cls)

    import open3d as o3d

    pc = o3d.t.io.read_point_cloud(str(path))
    np.testing.assert_allclose(pc.point.positions.numpy(), xyz)
    np.testing.assert_array_equal(pc.point.instance.numpy().reshape(-1), inst)
    np.testing.assert_array_equal(pc.point["class"].numpy().reshape(-1), cls)
    np.testing.assert_array_equal(pc.point.colors.numpy(), rgb)

    own = read_ply_vertices(path)
    np.testing.assert_array_equal(own["instance"], inst)


def test_oriented_box_of_a_rotated_cuboid_recovers_its_sides_and_centre():
    # corners and edge midpoints of a 4 x 2 x 1 cuboid, rotated 30 degrees about z and moved
    s = np.array([4.0, 2.0, 1.0])
    grid = np.stack(np.meshgrid(*[np.linspace(-0.5, 0.5, 5)] * 3, indexing="ij"), -1).reshape(-1, 3) * s
    a = math.radians(30)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    centre = np.array([10.0, -3.0, 2.0])
    box = oriented_box(grid @ rot.T + centre)
    np.testing.assert_allclose(box["extent"], s, atol=1e-9)
    np.testing.assert_allclose(box["center"], centre, atol=1e-9)
    r = np.asarray(box["rotation"])
    np.testing.assert_allclose(np.abs(r.T @ rot), np.eye(3), atol=1e-9)  # same axes up to sign
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_density_level_is_the_density_that_makes_the_slab_reach_the_opacity():
    from types import SimpleNamespace

    from lift3d.export.mesh import density_level

    model = SimpleNamespace(cfg=SimpleNamespace(distance_scale=25.0))
    level = density_level(model, surface_opacity=0.5, surface_thickness=0.02)
    assert level == pytest.approx(math.log(2) / 0.5)
    # the model's opacity over that slab (lift3d.models.lift_model): 1 - exp(-sigma * s * l / h), l = 0.02 h
    assert 1 - math.exp(-level * 25.0 * 0.02) == pytest.approx(0.5)


def test_instance_colours_grey_background_and_distinct_ids():
    c = instance_colours(np.arange(0, 40))
    assert tuple(c[0]) == (140, 140, 140)
    assert len({tuple(x) for x in c[1:]}) == 39
    np.testing.assert_array_equal(instance_colours(np.array([7, 7])), np.repeat(instance_colours(np.array([7])), 2, 0))


def test_labelled_mesh_select_keeps_only_used_vertices():
    verts = np.arange(15, dtype=np.float32).reshape(5, 3)
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    m = LabelledMesh(verts, faces, np.array([1, 2], np.int32), np.array([3, 3], np.int32))
    part = m.select(m.instance == 2)
    np.testing.assert_array_equal(part.vertices, verts[[2, 3, 4]])
    np.testing.assert_array_equal(part.faces, [[0, 1, 2]])


def test_parse_instance_ids():
    assert parse_instance_ids("all", [1, 2, 3]) == [1, 2, 3]
    assert parse_instance_ids("3, 1", [1, 2, 3]) == [1, 3]
    with pytest.raises(ValueError, match="not instances of this run"):
        parse_instance_ids("9", [1, 2, 3])
    with pytest.raises(ValueError, match="comma-separated"):
        parse_instance_ids("one", [1, 2, 3])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "{missing}", "--out", "{tmp}/e"], "not a lift3d run folder"),
        (["view", "{missing}"], "not a lift3d run folder"),
        (["twod", "eval", "{missing}", "--data", "{missing}"], "no such 2D network run folder"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(tmp_path, capsys, argv, message):
    from lift3d.cli import entrypoint

    argv = [a.format(missing=tmp_path / "nope", tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        entrypoint(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_parse_instance_ids_errors_are_user_errors():
    from lift3d.export.run import InstanceSelectionError

    with pytest.raises(InstanceSelectionError, match="comma-separated"):
        parse_instance_ids("3,x", [1, 2, 3])
    with pytest.raises(InstanceSelectionError, match=r"ids \[9\]"):
        parse_instance_ids("9", [1, 2, 3])
