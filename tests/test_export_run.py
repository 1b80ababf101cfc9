"""``lift3d export`` on a fitted run of a generated scene whose objects' geometry is known."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import gt_object_surfaces
from scipy.spatial import cKDTree

from lift3d.cluster.slots import load_labeler
from lift3d.engine.run_dir import RunDir
from lift3d.export import ExportConfig, export_run, load_export_inputs, read_ply_vertices


@pytest.fixture(scope="module")
def exported(fitted_run, tmp_path_factory):
    scene_dir, run = fitted_run
    out = tmp_path_factory.mktemp("export")
    opened = load_export_inputs(run)
    doc = export_run(opened, out, "both", None, "ply", ExportConfig(mesh_resolution=64), log=lambda *_: None)
    return scene_dir, run, out, doc, opened


def match_tolerance(scene_dir, points: np.ndarray, views: np.ndarray) -> float:
    """How far an exported point may lie from its object: two pixel footprints at the points' median range
    (a rendered depth mixes foreground and background over about one pixel at an object's edge, and a point
    may come from either side), ``2 * median(|x - camera| / fx)``."""
    from lift3d.data.loading import load_scene

    scene = load_scene(scene_dir)
    centres = np.stack([scene.frames[v].camera_to_world[:3, 3] for v in views])
    fx = np.array([scene.frames[v].fx for v in views])
    return float(2 * np.median(np.linalg.norm(points - centres, axis=1) / fx))


def test_every_cluster_is_exported_with_labels_that_read_back(exported):
    scene_dir, run, out, doc, opened = exported
    labeler = load_labeler(RunDir(run).clusters)
    doc_file = json.loads((out / "instances.json").read_text())
    assert doc_file["num_instances"] == labeler.num_instances == len(doc_file["instances"])
    assert [r["id"] for r in doc_file["instances"]] == list(range(1, labeler.num_instances + 1))

    scene_ply = read_ply_vertices(out / "scene_points.ply")
    np.testing.assert_array_equal(scene_ply["instance"], np.load(out / "labels/points_instance.npy"))
    np.testing.assert_array_equal(scene_ply["class"], np.load(out / "labels/points_class.npy"))
    import open3d as o3d
    import plyfile

    pc = o3d.t.io.read_point_cloud(str(out / "scene_points.ply"))
    np.testing.assert_array_equal(pc.point.instance.numpy().reshape(-1), scene_ply["instance"])
    for rec in doc_file["instances"]:
        mine = scene_ply["instance"] == rec["id"]
        assert rec["point_count"] == int(mine.sum())
        if not rec["point_count"]:
            continue
        xyz = np.stack([scene_ply[k][mine] for k in "xyz"], 1).astype(np.float64)
        np.testing.assert_allclose(rec["centroid"], xyz.mean(0), atol=1e-5)
        np.testing.assert_allclose(rec["aabb"]["min"], xyz.min(0), atol=1e-6)
        assert rec["class_id"] in opened.scene.thing_ids and rec["class_name"]
        part = plyfile.PlyData.read(str(out / rec["files"]["points"]))["vertex"]
        assert set(np.unique(part["instance"])) == {rec["id"]} and len(part["x"]) == rec["point_count"]
        assert sum(rec["views"].values()) == rec["point_count"]
        assert set(rec["views"]) <= {opened.scene.frames[i].name for i in opened.scene.train_indices}
    # meshes: every face labelled, and each instance mesh made of that instance's faces
    face_inst = np.load(out / "labels/mesh_face_instance.npy")
    assert len(face_inst) == len(np.load(out / "labels/mesh_faces.npy")) > 0
    for rec in doc_file["instances"]:
        if "mesh" in rec["files"]:
            import trimesh

            m = trimesh.load(out / rec["files"]["mesh"], process=False)
            assert len(m.faces) == int((face_inst == rec["id"]).sum()) == rec["files"]["mesh_faces"]


def test_exported_instances_lie_on_the_ground_truth_objects(exported):
    """>= 90% of each instance's points within the tolerance of the object it matches (the ground-truth object
    nearest to most of its points); the export is in the scene's world frame, where the objects are."""
    scene_dir, run, out, doc, _ = exported
    surfaces = gt_object_surfaces(scene_dir)
    trees = {k: cKDTree(v) for k, v in surfaces.items()}
    pts = read_ply_vertices(out / "scene_points.ply")
    xyz = np.stack([pts[k] for k in "xyz"], 1).astype(np.float64)
    views = np.load(out / "labels/points_view.npy")
    tol = match_tolerance(scene_dir, xyz, views)
    assert tol < 0.1  # a few centimetres for these 48-pixel views: the check is not vacuous
    fractions = {}
    for rec in doc["instances"]:
        mine = pts["instance"] == rec["id"]
        if mine.sum() < 20:
            continue
        d = np.stack([trees[k].query(xyz[mine])[0] for k in sorted(trees)], 1)
        match = np.bincount(d.argmin(1)).argmax()
        fractions[rec["id"]] = float((d[:, match] <= tol).mean())
    assert fractions and min(fractions.values()) >= 0.9, (tol, fractions)


def test_export_refuses_a_run_without_clusters(fitted_run, tmp_path):
    _, run = fitted_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "clusters.json").unlink()
    with pytest.raises(FileNotFoundError, match="no clusters yet.*lift3d fit"):
        load_export_inputs(copy)
