"""The viewer on a fitted run of a generated scene with known geometry: click-select, re-clustering, and the app in
a real headless chromium."""

from __future__ import annotations

import io
import json
import shutil
import time

import numpy as np
import pytest
from conftest import gt_object_surfaces
from scipy.spatial import cKDTree

from lift3d.cluster.slots import load_labeler
from lift3d.data.loading import load_frame, load_scene
from lift3d.export import ExportConfig, export_run, load_export_inputs
from lift3d.geometry.cameras import project
from lift3d.viewer import CameraView, cache_clustering_embeddings, pick_pixel, recluster, save_clusters


@pytest.fixture(scope="module")
def opened_run(fitted_run, tmp_path_factory):
    """The fitted run (a copy: the re-clustering test saves clusters.json) opened, and its points exported."""
    scene_dir, run = fitted_run
    copy = tmp_path_factory.mktemp("viewer") / "run"
    shutil.copytree(run, copy)
    opened = load_export_inputs(copy)
    doc = export_run(opened, copy / "export", "points", None, cfg=ExportConfig(), log=lambda *_: None)
    return scene_dir, opened, doc


def covering_instances(scene_dir, opened, tol: float = 0.05) -> dict[int, int]:
    """Ground-truth object id -> the exported instance with the most points within ``tol`` of that object's surface
    (objects no instance covers are left out)."""
    pts = opened.points
    out = {}
    for gid, surface in gt_object_surfaces(scene_dir).items():
        near = cKDTree(surface).query(pts.xyz)[0] <= tol
        ids = pts.instance[near & (pts.instance > 0)]
        if len(ids) >= 20:
            out[gid] = int(np.bincount(ids).argmax())
    return out


def object_click(scene, gid: int, surface: np.ndarray) -> tuple[int, float, float]:
    """(frame, u, v): the training view showing most of object ``gid`` and the projection of the object's centre
    there (moved to the nearest pixel of the object's ground-truth mask when something else is in front)."""
    best = max(scene.train_indices, key=lambda i: int((load_frame(scene, i, True).gt_instance == gid).sum()))
    f = scene.frames[best]
    u, v, _, inside = project(surface.mean(0, keepdims=True), f.camera_to_world, f.intrinsics(), f.height, f.width)
    mask = load_frame(scene, best, True).gt_instance == gid
    if not (inside[0] and mask[v[0], u[0]]):
        rows, cols = np.nonzero(mask)
        k = np.argmin((cols - u[0]) ** 2 + (rows - v[0]) ** 2)
        u, v = cols[k : k + 1], rows[k : k + 1]
    return best, float(u[0]) + 0.5, float(v[0]) + 0.5


def test_click_on_each_object_selects_the_instance_the_export_says_covers_it(opened_run):
    scene_dir, opened, _ = opened_run
    scene = load_scene(scene_dir)
    covering = covering_instances(scene_dir, opened)
    assert len(covering) >= 3, covering
    surfaces = gt_object_surfaces(scene_dir)
    for gid, expected in covering.items():
        frame, u, v = object_click(scene, gid, surfaces[gid])
        f = scene.frames[frame]
        pick = pick_pixel(opened, CameraView(f.camera_to_world, f.fx, f.fy, f.cx, f.cy, f.width, f.height), u, v)
        assert pick.instance == expected, (gid, frame, u, v, pick)
        assert cKDTree(surfaces[gid]).query(pick.point)[0] < 0.05  # the clicked surface point is on the object


def test_reclustering_at_the_fit_size_gives_the_fit_labels_and_save_is_used(opened_run):
    _, opened, _ = opened_run
    fit_labeler = load_labeler(opened.run.clusters)
    record = json.loads(opened.run.clustering.read_text())
    size = record["min_cluster_size"]
    cache = cache_clustering_embeddings(opened)
    assert [opened.scene.frames[i].name for i in cache.views] == record["cluster_views"]  # the views the fit used
    mine = recluster(opened, cache, size)
    np.testing.assert_array_equal(
        mine.label(cache.semantic, cache.embedding), fit_labeler.label(cache.semantic, cache.embedding)
    )
    for c, cc in fit_labeler.classes.items():
        np.testing.assert_allclose(mine.classes[c].centroids, cc.centroids)

    # another size changes the clustering; "save" writes it where render / eval read it
    other = recluster(opened, cache, 5)
    assert other.num_instances != fit_labeler.num_instances
    save_clusters(opened, other, 5)
    saved = load_labeler(opened.run.clusters)
    np.testing.assert_array_equal(
        saved.label(cache.semantic, cache.embedding), other.label(cache.semantic, cache.embedding)
    )
    assert json.loads(opened.run.clustering.read_text())["min_cluster_size"] == 5
    save_clusters(opened, mine, size)  # put the fit's choice back for the other tests of this module
    opened.relabel(load_labeler(opened.run.clusters))


def test_viewer_in_headless_chromium_shows_the_scene_lists_instances_and_selects_on_click(opened_run, tmp_path):
    from PIL import Image

    from lift3d.viewer.app import RunViewer, ViewerConfig
    from lift3d.viewer.camera import c2w_to_viser, pinhole_from_fov
    from tools.headless_chromium import HeadlessChromium, find_chromium, free_port

    if find_chromium() is None:
        pytest.skip("chromium is not installed; `make system-deps` installs it")
    scene_dir, opened, _ = opened_run
    scene = load_scene(scene_dir)
    port = free_port()
    viewer = RunViewer(opened, ViewerConfig(port=port), log=lambda *_: None)
    width, height = 1280, 800
    try:
        with HeadlessChromium(width, height) as browser:
            browser.open(f"http://127.0.0.1:{port}")
            browser.wait_for_text("Instances", 90)
            for i in opened.instance_ids:
                assert f"{i}\t{opened.class_name(opened.instance_class(i))}" in browser.wait_for_text(f"{i}\t", 30)
            time.sleep(3)  # the live render's refined frame
            png = browser.screenshot(tmp_path / "viewer.png")
            img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            canvas = img[:, : int(width * 0.7)]  # left of the control panel
            page_bg = np.array([255, 255, 255])
            differs = np.abs(canvas.astype(int) - page_bg).sum(-1) > 30
            assert differs.mean() > 0.3, differs.mean()
            assert len(np.unique(canvas.reshape(-1, 3), axis=0)) > 500

            # put the browser's camera on a training camera and click on an object there
            covering = covering_instances(scene_dir, opened)
            surfaces = gt_object_surfaces(scene_dir)
            frame = scene.frames[scene.train_indices[0]]
            client = next(iter(viewer.server.get_clients().values()))
            wxyz, pos = c2w_to_viser(frame.camera_to_world)
            client.camera.wxyz, client.camera.position = wxyz, pos
            client.camera.fov = float(2 * np.arctan(0.5 * frame.height / frame.fy))
            time.sleep(1.5)
            intr = pinhole_from_fov(client.camera.fov, width, height)
            cam = CameraView(np.asarray(frame.camera_to_world), *intr, width, height)
            clicked = 0
            for gid in covering:
                u, v, _, inside = project(surfaces[gid].mean(0, keepdims=True), cam.c2w, intr, height, width)
                if not inside[0] or u[0] > width * 0.7:
                    continue
                expected = pick_pixel(opened, cam, u[0] + 0.5, v[0] + 0.5)
                if expected.instance == 0:
                    continue
                browser.click(float(u[0]) + 0.5, float(v[0]) + 0.5)
                browser.wait_for_text(f"instance {expected.instance} —", 30)
                assert viewer.selection.instance == expected.instance
                clicked += 1
            assert clicked >= 1
    finally:
        viewer.close()


def test_fit_view_follows_the_trainer_through_its_step_callback_then_serves_the_run(tiny_scene_dir, tmp_path):
    from lift3d.config_io import apply_overrides
    from lift3d.pipeline import fit_scene
    from lift3d.presets import get_preset
    from lift3d.viewer.app import ViewerConfig
    from lift3d.viewer.live import FitViewer
    from tools.headless_chromium import free_port

    live = FitViewer(load_scene(tiny_scene_dir), ViewerConfig(port=free_port()), every_seconds=0.0, log=lambda *_: None)
    cfg = apply_overrides(get_preset("tiny"), ["optim.iterations=12"])
    fit_scene(tiny_scene_dir, tmp_path / "run", cfg, progress=False, log=lambda *_: None, callbacks=(live,))
    assert live.steps_shown == list(range(1, 13))  # every step reached the viewer, in order
    assert live.status.content.startswith("step 12 / 12")
    viewer = live.finish(tmp_path / "run", log=lambda *_: None)
    try:
        assert viewer.server is live.server
        assert viewer.opened.instance_ids == list(
            range(1, load_labeler(tmp_path / "run" / "clusters.json").num_instances + 1)
        )
        assert len(viewer.instances_md.content.splitlines()) == 2 + len(viewer.opened.instance_ids)  # header + rows
    finally:
        viewer.close()
