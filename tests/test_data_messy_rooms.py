"""lift3d.data.{readers,writers}.messy_rooms: the released Messy Rooms layout round-trips (poses, intrinsics and ids identical),
follows the reference loader's camera, split, depth and confidence conventions, and `load_scene` reads it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import look_at
from PIL import Image

from lift3d.data.loading import load_frame, load_scene
from lift3d.data.messy_rooms_format import read_release_cameras
from lift3d.data.readers.messy_rooms import is_release_folder, load_release, release_frame_names
from lift3d.data.scene import SceneFormatError
from lift3d.data.writers.messy_rooms import export_scene_to_release, write_release
from lift3d.geometry.cameras import ray_length_per_z

V, H, W = 6, 10, 12
FX, FY, CX, CY = 9.0, 9.0, 6.0, 5.0


def _stacks(seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(V, H, W, 3)).astype(np.uint8)
    gt_instance = rng.integers(0, 40, size=(V, H, W))
    gt_instance[gt_instance > 30] = 30000  # ids above 255 (and above int16 / 2) must survive
    gt_semantic = (gt_instance > 0).astype(np.int64)
    instance = rng.integers(0, 65536, size=(V, H, W))
    semantic = rng.integers(0, 2, size=(V, H, W))
    confidence = rng.uniform(0.0, 1.0, size=(V, H, W)).astype(np.float32)
    depth = rng.uniform(0.5, 4.0, size=(V, H, W))
    cams = np.stack(
        [
            look_at([2.0 * math.cos(a), 2.0 * math.sin(a), 1.5], [0.0, 0.0, 0.1])
            for a in np.linspace(0.0, 2.0 * math.pi, V, endpoint=False)
        ]
    )
    return dict(
        rgb=rgb,
        depth=depth,
        gt_instance=gt_instance,
        gt_semantic=gt_semantic,
        instance=instance,
        semantic=semantic,
        confidence=confidence,
        camera_to_world=cams,
    )


@pytest.fixture()
def release(tmp_path):
    data = _stacks()
    out = write_release(tmp_path / "rel", **data, fx=FX, fy=FY, cx=CX, cy=CY)
    return out, data


def test_round_trip_keeps_poses_intrinsics_and_ids(release):
    out, data = release
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "metadata.json",
            "color",
            "depth",
            "semantic",
            "instance",
            "detic_semantic",
            "detic_instance",
            "detic_probabilities",
        ]
    )
    assert is_release_folder(out)
    scene = load_scene(out)  # detected as a release: no transforms.json
    assert scene.extras["format"] == "messy_rooms_release"
    assert [f.name for f in scene.frames] == [f"color/{i:05d}.png" for i in range(V)]
    for f in scene.frames:
        np.testing.assert_allclose(f.camera_to_world, data["camera_to_world"][f.index], rtol=0, atol=1e-12)
        np.testing.assert_allclose(f.intrinsics(), [FX, FY, CX, CY], rtol=1e-13)
        assert (f.width, f.height) == (W, H)
        d = load_frame(scene, f.index, with_ground_truth=True)
        np.testing.assert_array_equal(d.gt_instance, data["gt_instance"][f.index])
        np.testing.assert_array_equal(d.gt_semantic, data["gt_semantic"][f.index])
        np.testing.assert_array_equal(d.instance, data["instance"][f.index])
        np.testing.assert_array_equal(d.semantic, data["semantic"][f.index])
        np.testing.assert_array_equal(np.round(d.rgb * 255).astype(np.uint8), data["rgb"][f.index])
        # depth went z -> distance (mm, rounded) -> z: within 0.5 mm of the distance, i.e. <= 0.5 mm in z
        assert np.abs(d.depth - data["depth"][f.index]).max() <= 0.0005 + 1e-6
        # the reference loader's rule: confidence 1 where the segmenter says background (class 0)
        sem = data["semantic"][f.index]
        np.testing.assert_allclose(d.confidence[sem == 1], data["confidence"][f.index][sem == 1], atol=1e-7)
        assert (d.confidence[sem == 0] == 1.0).all()


def test_split_is_the_last_20_percent_of_frames_sorted_by_number(release, tmp_path):
    out, _ = release
    scene = load_release(out)
    assert scene.train_indices == [0, 1, 2, 3] and scene.test_indices == [4, 5]  # int(6 * 0.8) = 4 train frames
    # frames sort by number, not by name ("10" < "9" as text)
    (tmp_path / "c" / "color").mkdir(parents=True)
    for stem in ("10", "9", "100", "2"):
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "c" / "color" / f"{stem}.png")
    assert release_frame_names(tmp_path / "c") == ["2", "9", "10", "100"]


def test_metadata_holds_kubric_camera_conventions(release):
    out, data = release
    meta = json.loads((out / "metadata.json").read_text())
    cam = meta["camera"]
    # normalised K with kubric's signs: [[fx/W, 0, -cx/W], [0, -fy/H, -cy/H], [0, 0, -1]]
    np.testing.assert_allclose(cam["K"], [[0.75, 0, -0.5], [0, -0.9, -0.5], [0, 0, -1]])
    assert cam["focal_length"] == pytest.approx(9.0 * 36.0 / 12.0)
    assert cam["field_of_view"] == pytest.approx(2 * math.atan(6.0 / 9.0))
    assert meta["metadata"]["resolution"] == [W, H] and meta["metadata"]["num_frames"] == V
    # positions are the camera centres, quaternions (w, x, y, z) with w >= 0
    np.testing.assert_allclose(cam["positions"], data["camera_to_world"][:, :3, 3])
    q = np.asarray(cam["quaternions"])
    assert q.shape == (V, 4) and (q[:, 0] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)


def test_hand_written_kubric_camera_reads_as_opengl_and_opencv():
    # camera at (0, 0, 5) rotated 90 degrees about z: q = (cos 45, 0, 0, sin 45)
    s = math.sqrt(0.5)
    meta = {
        "camera": {
            "K": [[1.25, 0.0, -0.5], [0.0, -1.25, -0.5], [0.0, 0.0, -1.0]],
            "positions": [[0.0, 0.0, 5.0]],
            "quaternions": [[s, 0.0, 0.0, s]],
        }
    }
    (fx, fy, cx, cy), c2w = read_release_cameras(meta, width=64, height=32)
    assert (fx, fy, cx, cy) == (80.0, 40.0, 32.0, 16.0)
    np.testing.assert_allclose(c2w[0], [[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]], atol=1e-12)
    # lift3d's centre ray [0, 0, -1] (OpenGL) looks straight down; OpenCV's +z axis of [R|t] diag(1,-1,-1,1) too
    np.testing.assert_allclose(c2w[0, :3, :3] @ [0, 0, -1], [0, 0, -1], atol=1e-12)
    opencv = c2w[0] @ np.diag([1.0, -1.0, -1.0, 1.0])
    np.testing.assert_allclose(opencv[:3, 2], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(opencv[:3, 1], -c2w[0, :3, 1], atol=1e-12)  # image down = -(camera up)


def test_distance_depth_becomes_optical_axis_depth():
    f = ray_length_per_z(fx=2.0, fy=4.0, cx=1.0, cy=1.0, width=2, height=2)
    # pixel (0, 0): centre (0.5, 0.5) -> ((0.5 - 1)/2, (0.5 - 1)/4, 1) = (-0.25, -0.125, 1)
    assert f[0, 0] == pytest.approx(math.sqrt(1 + 0.0625 + 0.015625))
    assert f.shape == (2, 2) and np.allclose(f, f[0, 0])  # symmetric about the centre


def test_z_depth_release_and_environment_override(tmp_path, monkeypatch):
    data = _stacks(1)
    out = write_release(tmp_path / "z", **data, fx=FX, fy=FY, cx=CX, cy=CY, depth_kind="z")
    d = load_frame(load_release(out), 2)
    assert np.abs(d.depth - data["depth"][2]).max() <= 0.0005 + 1e-6
    monkeypatch.setenv("LIFT3D_RELEASE_DEPTH", "none")
    scene = load_release(out)
    assert not scene.has_depth and load_frame(scene, 0).depth is None


def test_invalid_masks_zero_the_confidence(release):
    out, data = release
    (out / "invalid").mkdir()
    mask = np.zeros((H, W), np.uint8)
    mask[:, :3] = 255
    Image.fromarray(mask).save(out / "invalid" / "00001.jpg", quality=100)
    d = load_frame(load_release(out), 1)
    assert (d.confidence[:, :3] == 0).all()
    assert (d.confidence[:, 4:][data["semantic"][1][:, 4:] == 0] == 1).all()


def test_release_errors_name_the_file(release):
    out, _ = release
    meta = json.loads((out / "metadata.json").read_text())
    meta["camera"]["positions"] = meta["camera"]["positions"][:-1]
    meta["camera"]["quaternions"] = meta["camera"]["quaternions"][:-1]
    (out / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(SceneFormatError, match=r"metadata\.json: 5 camera poses but 6 images"):
        load_scene(out)
    (out / "metadata.json").write_text(json.dumps({"camera": {"K": [[1]]}}))
    with pytest.raises(SceneFormatError, match=r"metadata\.json: expected camera\.K"):
        load_scene(out)


def test_generated_scene_and_its_release_agree(tiny_scene_dir, tmp_path):
    out = export_scene_to_release(tiny_scene_dir, tmp_path / "exported")
    a, b = load_scene(tiny_scene_dir), load_scene(out)
    assert len(a.frames) == len(b.frames) == 8
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_allclose(fa.camera_to_world, fb.camera_to_world, atol=1e-12)
        np.testing.assert_allclose(fa.intrinsics(), fb.intrinsics(), rtol=1e-13)
        da, db = load_frame(a, fa.index, True), load_frame(b, fb.index, True)
        np.testing.assert_array_equal(da.gt_instance, db.gt_instance)
        np.testing.assert_array_equal(da.instance, db.instance)
        np.testing.assert_array_equal(da.semantic, db.semantic)
        assert np.abs(da.depth - db.depth).max() <= 0.001 + 1e-6  # two millimetre roundings
    with pytest.raises(FileExistsError, match="already exists"):
        export_scene_to_release(tiny_scene_dir, out)


def test_generate_scene_writes_the_release_layout_too(tmp_path):
    from lift3d.generate import MessyRoomsConfig, generate_scene

    cfg = MessyRoomsConfig(num_objects=3, num_views=5, resolution=24, seed=3)
    generate_scene(cfg, tmp_path / "scene", progress=False, release_dir=tmp_path / "release")
    meta = json.loads((tmp_path / "release" / "metadata.json").read_text())
    assert [i["segmentation_id"] for i in meta["instances"]] == list(range(1, len(meta["instances"]) + 1))
    a, b = load_scene(tmp_path / "scene"), load_scene(tmp_path / "release")
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_allclose(fa.camera_to_world, fb.camera_to_world, atol=1e-12)
        np.testing.assert_array_equal(
            load_frame(a, fa.index, True).gt_instance, load_frame(b, fb.index, True).gt_instance
        )
    assert b.test_indices == [4]  # int(5 * 0.8) = 4 train frames
