"""The Panoptic Lifting reader on small folders written here in that layout (color/, pose/, intrinsic/, m2f_*/,
rs_*/, depth/, invalid/, splits.json): OpenCV poses become OpenGL ones that project points to the same pixels,
reduced ScanNet classes with void, segments / confidence / ground truth / masks read, errors name the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lift3d.data.images import write_depth_png, write_id_map
from lift3d.data.loading import load_frame, load_scene
from lift3d.data.readers import find_reader
from lift3d.data.scene import MissingSegmentsError, SceneFormatError, require_segments

W, H = 8, 6
K = np.array([[7.0, 0.0, 4.0], [0.0, 6.5, 3.0], [0.0, 0.0, 1.0]])
STEMS = ["0", "2", "10", "11"]
"""Numeric stems, sorted by number (10 after 2)."""


def _c2w_opencv(k: int) -> np.ndarray:
    """A camera at (0.3 k, 0, -3) looking along world +z (OpenCV axes: x right, y down, z forward), yawed a bit."""
    a = 0.1 * k
    c2w = np.eye(4)
    c2w[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    c2w[:3, 3] = [0.3 * k, 0.0, -3.0]
    return c2w


def _instance(k: int) -> np.ndarray:
    v, u = np.mgrid[0:H, 0:W]
    return np.where(u >= 4, 5 + k, 0).astype(np.int64)


def _semantic(k: int) -> np.ndarray:
    return np.where(_instance(k) > 0, 5, 1).astype(np.int64)  # chair (a thing) on a wall


def _write_scene(root: Path, segments: bool = True, splits: bool = True) -> Path:
    (root / "intrinsic").mkdir(parents=True)
    k4 = np.eye(4)
    k4[:3, :3] = K
    np.savetxt(root / "intrinsic" / "intrinsic_color.txt", k4)
    for k, stem in enumerate(STEMS):
        for folder in (
            "color",
            "pose",
            "m2f_instance",
            "m2f_semantics",
            "m2f_probabilities",
            "rs_instance",
            "rs_semantics",
            "depth",
            "invalid",
        ):
            (root / folder).mkdir(exist_ok=True)
        Image.fromarray(np.full((H, W, 3), 40 * k, np.uint8)).save(root / "color" / f"{stem}.jpg", quality=100)
        np.savetxt(root / "pose" / f"{stem}.txt", _c2w_opencv(k))
        if segments:
            write_id_map(root / "m2f_instance" / f"{stem}.png", _instance(k), bits=16)
            write_id_map(root / "m2f_semantics" / f"{stem}.png", _semantic(k), bits=8)
            probability = np.zeros((H // 2, W // 2, 22), np.float32)
            np.savez_compressed(
                root / "m2f_probabilities" / f"{stem}.npz",
                probability=probability,
                confidence=np.full((H // 2, W // 2), 0.25 * (k + 1), np.float32),
            )
        write_id_map(root / "rs_instance" / f"{stem}.png", _instance(0), bits=16)
        write_id_map(root / "rs_semantics" / f"{stem}.png", _semantic(0), bits=8)
        write_depth_png(root / "depth" / f"{stem}.png", np.full((H, W), 2.5))
        invalid = np.zeros((H, W), np.uint8)
        invalid[0, :] = 255  # the top row lies outside the room
        Image.fromarray(invalid).save(root / "invalid" / f"{stem}.png")
    if not segments:
        for folder in ("m2f_instance", "m2f_semantics", "m2f_probabilities"):
            (root / folder).rmdir()
    if splits:
        (root / "splits.json").write_text(json.dumps({"train": [0, "2", 11], "test": ["10"]}))
    return root


def test_layout_is_detected_and_frames_are_sorted_by_number(tmp_path):
    root = _write_scene(tmp_path / "scene0050_00")
    assert find_reader(root).name == "panoptic_lifting"
    scene = load_scene(root)
    assert [f.name for f in scene.frames] == ["color/0.jpg", "color/2.jpg", "color/10.jpg", "color/11.jpg"]
    assert scene.train_indices == [0, 1, 3] and scene.test_indices == [2]
    assert scene.has_segments and scene.has_confidence and scene.has_depth and scene.has_ground_truth
    assert scene.extras["format"] == "panoptic_lifting" and scene.extras["void_class_ids"] == [0]
    assert scene.extras["depth_density"] == 1.0


def test_poses_project_points_as_the_opencv_camera_does(tmp_path):
    scene = load_scene(_write_scene(tmp_path / "s"))
    point = np.array([0.4, -0.2, 1.0])
    for k, f in enumerate(scene.frames):
        assert (f.fx, f.fy, f.cx, f.cy, f.width, f.height) == (7.0, 6.5, 4.0, 3.0, W, H)
        p_cv = np.linalg.inv(_c2w_opencv(k)) @ np.append(point, 1.0)
        expected = (K @ (p_cv[:3] / p_cv[2]))[:2]
        q = f.camera_to_world[:3, :3].T @ (point - f.camera_to_world[:3, 3])  # lift3d's OpenGL camera space
        assert np.allclose([f.fx * q[0] / -q[2] + f.cx, f.cy - f.fy * q[1] / -q[2]], expected, atol=1e-9)


def test_reduced_scannet_classes_with_void(tmp_path):
    scene = load_scene(_write_scene(tmp_path / "s"))
    assert len(scene.classes) == 22 and scene.classes[0].name == "void" and not scene.classes[0].thing
    things = {c.name for c in scene.classes if c.thing}
    assert things == {"bed", "chair", "sofa", "refrigerator", "television", "person", "toilet", "sink", "bag"}
    assert scene.classes[5].name == "chair"


def test_frame_arrays_segments_confidence_ground_truth_and_invalid_mask(tmp_path):
    scene = load_scene(_write_scene(tmp_path / "s"))
    data = load_frame(scene, 2, with_ground_truth=True)  # stem 10, k = 2
    assert np.array_equal(data.instance, _instance(2)) and np.array_equal(data.semantic, _semantic(2))
    assert data.confidence.shape == (H, W) and np.allclose(data.confidence, 0.75)  # 3x4 npz resized
    assert np.allclose(data.depth, 2.5)
    assert np.array_equal(data.gt_instance, _instance(0)) and np.array_equal(data.gt_semantic, _semantic(0))
    expected_valid = np.ones((H, W), bool)
    expected_valid[0] = False
    assert np.array_equal(data.valid_mask, expected_valid)
    assert np.allclose(data.rgb, 80 / 255.0, atol=2 / 255.0)  # JPEG


def test_without_segment_folders_the_scene_loads_without_segments(tmp_path):
    scene = load_scene(_write_scene(tmp_path / "s", segments=False, splits=False))
    assert not scene.has_segments and not scene.has_confidence
    assert scene.test_indices == [] and scene.train_indices == [0, 1, 2, 3]  # every 8th: none of 4
    with pytest.raises(MissingSegmentsError):
        require_segments(scene)


def test_a_missing_pose_names_the_frame_and_can_be_skipped(tmp_path):
    root = _write_scene(tmp_path / "s")
    (root / "pose" / "2.txt").unlink()
    with pytest.raises(SceneFormatError) as err:
        load_scene(root)
    assert "frame 1 (color/2.jpg)" in str(err.value) and "pose/2.txt" in str(err.value)
    with pytest.warns(UserWarning, match="skipped 1"):
        scene = load_scene(root, skip_bad_frames=True)
    assert [f.name for f in scene.frames] == ["color/0.jpg", "color/10.jpg", "color/11.jpg"]
    assert scene.train_indices == [0, 2] and scene.test_indices == [1]
    data = load_frame(scene, 1)  # stem 10: the frame adapter follows the kept frames
    assert data.valid_mask[0].sum() == 0 and data.valid_mask[1:].all()


def test_a_damaged_segment_map_is_named(tmp_path):
    root = _write_scene(tmp_path / "s")
    (root / "m2f_instance" / "11.png").write_bytes(b"not a png")
    with pytest.raises(SceneFormatError) as err:
        load_scene(root)
    assert "11.png" in str(err.value) and "frame 3" in str(err.value) and "--skip-bad-frames" in str(err.value)


def test_bad_intrinsics_and_splits_are_errors(tmp_path):
    root = _write_scene(tmp_path / "s")
    (root / "splits.json").write_text(json.dumps({"train": [0, 2], "test": ["7"]}))
    with pytest.raises(SceneFormatError, match="'test' lists '7'"):
        load_scene(root)
    (root / "splits.json").write_text(json.dumps({"train": [0, 2, 10], "test": [10]}))
    with pytest.raises(SceneFormatError, match="in both train and test"):
        load_scene(root)
    (root / "intrinsic" / "intrinsic_color.txt").write_text("1 2\n3 4\n")
    with pytest.raises(SceneFormatError, match="intrinsic_color.txt: expected a 4x4"):
        load_scene(root)


def test_classes_json_replaces_the_class_list(tmp_path):
    root = _write_scene(tmp_path / "s")
    classes = [{"id": i, "name": f"c{i}", "thing": i == 5} for i in range(6)]
    (root / "classes.json").write_text(json.dumps(classes))
    scene = load_scene(root)
    assert [c.name for c in scene.classes] == [f"c{i}" for i in range(6)] and scene.thing_ids == [5]
