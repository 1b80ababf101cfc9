"""lift3d.data.scene and lift3d.data.images: a valid scene loads with the stated split, intrinsics and flags;
every malformed scene raises SceneFormatError naming the file and the frame; id/depth/confidence PNGs round-trip."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import (
    MINI_H,
    MINI_W,
    make_mini_scene,
    mini_confidence_u8,
    mini_depth_mm,
    mini_instance,
    mini_rgb,
    mini_semantic,
    write_meta,
)
from PIL import Image

from lift3d.data.images import (
    read_confidence,
    read_depth,
    read_id_map,
    read_rgb,
    write_depth_png,
    write_id_map,
    write_rgb,
)
from lift3d.data.loading import load_frame, load_scene
from lift3d.data.scene import SceneFormatError


# ------------------------------------------------------------------------------------------------ valid scenes
def test_mini_scene_loads_with_split_intrinsics_and_flags(tmp_path):
    meta = make_mini_scene(tmp_path, num_frames=3)
    meta["frames"][1]["fl_x"] = 7.0  # a per-frame value wins over the global one
    meta["frames"][1]["cy"] = 2.0
    meta["aabb"] = [[-1.0, -2.0, -0.5], [1.0, 2.0, 0.5]]
    write_meta(tmp_path, meta)
    scene = load_scene(tmp_path)

    assert scene.root == tmp_path
    assert [f.index for f in scene.frames] == [0, 1, 2]
    assert [f.name for f in scene.frames] == ["images/f0.png", "images/f1.png", "images/f2.png"]
    assert scene.train_indices == [0, 1] and scene.test_indices == [2]
    np.testing.assert_array_equal(scene.frames[0].intrinsics(), [4.0, 5.0, 2.5, 1.5])
    np.testing.assert_array_equal(scene.frames[1].intrinsics(), [7.0, 5.0, 2.5, 2.0])
    np.testing.assert_array_equal(scene.frames[2].intrinsics(), [4.0, 5.0, 2.5, 1.5])
    assert all((f.width, f.height) == (MINI_W, MINI_H) for f in scene.frames)
    np.testing.assert_array_equal(scene.aabb, [[-1.0, -2.0, -0.5], [1.0, 2.0, 0.5]])
    assert scene.aabb.shape == (2, 3)
    assert scene.has_depth and scene.has_confidence and not scene.has_ground_truth
    assert scene.thing_ids == [1] and scene.stuff_ids == [0] and scene.num_classes == 2
    expected_c2w = np.eye(4)
    expected_c2w[:3, 3] = [1.0, 0.0, 3.0]
    np.testing.assert_array_equal(scene.frames[1].camera_to_world, expected_c2w)
    assert scene.frames[2].depth_path == tmp_path / "depth/f2.png"
    assert scene.frames[0].gt_instance_path is None


def test_load_scene_accepts_the_json_path_and_3x4_poses(tmp_path):
    meta = make_mini_scene(tmp_path, num_frames=2)
    meta["frames"][0]["transform_matrix"] = meta["frames"][0]["transform_matrix"][:3]
    write_meta(tmp_path, meta)
    scene = load_scene(tmp_path / "transforms.json")
    np.testing.assert_array_equal(scene.frames[0].camera_to_world[3], [0, 0, 0, 1])


def test_load_frame_values_units_and_dtypes(tmp_path):
    make_mini_scene(tmp_path, num_frames=2)
    scene = load_scene(tmp_path)
    fd = load_frame(scene, 1)
    assert fd.rgb.dtype == np.float32 and fd.rgb.shape == (MINI_H, MINI_W, 3)
    np.testing.assert_allclose(fd.rgb, mini_rgb(1) / 255.0, atol=1e-6)
    assert fd.instance.dtype == np.int64
    np.testing.assert_array_equal(fd.instance, mini_instance(1))  # ids > 255 survive
    np.testing.assert_array_equal(fd.semantic, mini_semantic(1))
    np.testing.assert_allclose(fd.depth, mini_depth_mm(1) / 1000.0, rtol=1e-6)  # mm -> m
    np.testing.assert_allclose(fd.confidence, mini_confidence_u8(1) / 255.0, rtol=1e-6)
    assert fd.gt_instance is None


def test_depth_unit_scale_factor_is_applied(tmp_path):
    meta = make_mini_scene(tmp_path, num_frames=2)
    meta["depth_unit_scale_factor"] = 0.0005
    write_meta(tmp_path, meta)
    fd = load_frame(load_scene(tmp_path), 0)
    np.testing.assert_allclose(fd.depth, mini_depth_mm(0) * 0.0005, rtol=1e-6)


def test_default_split_is_every_eighth_frame(tmp_path):
    meta = make_mini_scene(tmp_path, num_frames=17, depth=False, confidence=False, split=False)
    scene = load_scene(tmp_path)
    assert scene.test_indices == [7, 15]
    assert scene.train_indices == [i for i in range(17) if i not in (7, 15)]
    assert not scene.has_depth and not scene.has_confidence
    # Only test_filenames given: the train split is every other frame.
    meta["test_filenames"] = ["images/f3.png", "images/f0.png"]
    write_meta(tmp_path, meta)
    scene = load_scene(tmp_path)
    assert scene.test_indices == [3, 0]
    assert scene.train_indices == [i for i in range(17) if i not in (0, 3)]


def test_scene_without_classes_gets_background_and_object(tmp_path):
    meta = make_mini_scene(tmp_path, num_frames=2)
    del meta["classes"]
    write_meta(tmp_path, meta)
    scene = load_scene(tmp_path)
    assert [(c.id, c.thing) for c in scene.classes] == [(0, False), (1, True)]


def test_generated_tiny_scene_loads(tiny_scene, tiny_scene_dir):
    meta = json.loads((tiny_scene_dir / "transforms.json").read_text())
    assert len(tiny_scene.frames) == 8
    assert tiny_scene.train_indices == [0, 1, 2, 3, 4, 5] and tiny_scene.test_indices == [6, 7]
    assert tiny_scene.has_depth and tiny_scene.has_confidence and tiny_scene.has_ground_truth
    np.testing.assert_allclose(tiny_scene.aabb, meta["aabb"])
    for f, fr in zip(tiny_scene.frames, meta["frames"]):
        np.testing.assert_allclose(f.camera_to_world, fr["transform_matrix"])
        assert (f.fx, f.fy, f.cx, f.cy, f.width, f.height) == (
            meta["fl_x"],
            meta["fl_y"],
            meta["cx"],
            meta["cy"],
            32,
            32,
        )
    fd = load_frame(tiny_scene, 3, with_ground_truth=True)
    assert fd.gt_instance.shape == fd.gt_semantic.shape == fd.depth.shape == (32, 32)
    assert set(np.unique(fd.semantic)) <= {0, 1} and fd.depth.max() > 0
    assert 0.0 <= fd.confidence.min() and fd.confidence.max() <= 1.0
    # Things in the ground truth carry the thing class.
    assert (fd.gt_semantic[fd.gt_instance > 0] == 1).all()


# ------------------------------------------------------------------------------------------------ errors
def _error(tmp_path, frame: int | None = None) -> str:
    """Load the scene at ``tmp_path``, expect SceneFormatError, check it names transforms.json (and the frame)."""
    with pytest.raises(SceneFormatError) as info:
        load_scene(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "transforms.json") in msg, msg
    if frame is not None:
        assert re.search(rf"\bframe {frame}\b", msg), msg
    return msg


def test_error_missing_image_file(tmp_path):
    make_mini_scene(tmp_path)
    (tmp_path / "images/f1.png").unlink()
    msg = _error(tmp_path, frame=1)
    assert "f1.png" in msg and "does not exist" in msg


def test_error_missing_instance_file(tmp_path):
    make_mini_scene(tmp_path)
    (tmp_path / "inst/f2.png").unlink()
    msg = _error(tmp_path, frame=2)
    assert "instance_file_path" in msg and "inst/f2.png" in msg


def test_error_image_size_mismatch(tmp_path):
    make_mini_scene(tmp_path)
    write_rgb(tmp_path / "images/f2.png", np.zeros((MINI_H, MINI_W + 1, 3), np.uint8))
    msg = _error(tmp_path, frame=2)
    assert "f2.png" in msg and f"{MINI_W + 1}x{MINI_H}" in msg and f"{MINI_W}x{MINI_H}" in msg


def test_error_transposed_depth_map(tmp_path):
    make_mini_scene(tmp_path)
    write_id_map(tmp_path / "depth/f0.png", mini_depth_mm(0).T)
    msg = _error(tmp_path, frame=0)
    assert "depth_file_path" in msg and "f0.png" in msg


def test_error_non_finite_pose(tmp_path):
    meta = make_mini_scene(tmp_path)
    meta["frames"][1]["transform_matrix"][0][3] = float("nan")
    write_meta(tmp_path, meta)  # json writes NaN, which Python's json reads back
    msg = _error(tmp_path, frame=1)
    assert "non-finite" in msg


@pytest.mark.parametrize(
    "rotation",
    [
        [[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0]],  # scaled rotation (det 8)
        [[1.0, 0.5, 0], [0, 1.0, 0], [0, 0, 1.0]],  # shear: det 1 but not orthonormal
        [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0.0]],  # singular
    ],
    ids=["scaled", "shear", "singular"],
)
def test_error_non_orthonormal_rotation(tmp_path, rotation):
    meta = make_mini_scene(tmp_path)
    c2w = np.eye(4)
    c2w[:3, :3] = rotation
    meta["frames"][2]["transform_matrix"] = c2w.tolist()
    write_meta(tmp_path, meta)
    msg = _error(tmp_path, frame=2)
    assert "orthonormal" in msg


def test_a_proper_rotation_passes(tmp_path):
    a = 0.3
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[:3, :3] = rot
    make_mini_scene(tmp_path, poses=[c2w] * 3)
    np.testing.assert_allclose(load_scene(tmp_path).frames[1].camera_to_world[:3, :3], rot)


def test_error_rgb_instance_map(tmp_path):
    make_mini_scene(tmp_path)
    Image.fromarray(np.zeros((MINI_H, MINI_W, 3), np.uint8), mode="RGB").save(tmp_path / "inst/f1.png")
    msg = _error(tmp_path, frame=1)
    assert "instance_file_path" in msg and "single-channel" in msg and "3 channels" in msg


def test_error_float_instance_npy(tmp_path):
    meta = make_mini_scene(tmp_path)
    np.save(tmp_path / "inst/f0.npy", mini_instance(0).astype(np.float32))
    meta["frames"][0]["instance_file_path"] = "inst/f0.npy"
    write_meta(tmp_path, meta)
    msg = _error(tmp_path, frame=0)
    assert "f0.npy" in msg and "integer" in msg and "float32" in msg


def test_integer_instance_npy_is_accepted(tmp_path):
    meta = make_mini_scene(tmp_path)
    np.save(tmp_path / "inst/f0.npy", mini_instance(0).astype(np.int32))
    meta["frames"][0]["instance_file_path"] = "inst/f0.npy"
    write_meta(tmp_path, meta)
    np.testing.assert_array_equal(load_frame(load_scene(tmp_path), 0).instance, mini_instance(0))


def test_error_semantic_id_not_in_classes(tmp_path):
    make_mini_scene(tmp_path)
    sem = mini_semantic(1)
    sem[0, 0] = 7
    write_id_map(tmp_path / "sem/f1.png", sem, bits=8)
    msg = _error(tmp_path, frame=1)
    assert "[7]" in msg and "f1.png" in msg


def test_semantic_id_not_in_classes_in_a_late_frame_is_caught_up_front_and_by_load_frame(tmp_path):
    make_mini_scene(tmp_path, num_frames=5, split=False)
    sem = mini_semantic(4)
    sem[1, 1] = 9
    write_id_map(tmp_path / "sem/f4.png", sem, bits=8)
    with pytest.raises(SceneFormatError, match=r"frame 4\b.*\[9\]"):
        load_scene(tmp_path)  # every frame's ids are read up front
    scene = load_scene(tmp_path, check_files=False)
    with pytest.raises(SceneFormatError, match=r"frame 4\b.*\[9\]"):
        load_frame(scene, 4)


def test_error_depth_for_some_frames_only(tmp_path):
    meta = make_mini_scene(tmp_path)
    del meta["frames"][2]["depth_file_path"]
    write_meta(tmp_path, meta)
    msg = _error(tmp_path, frame=2)
    assert "depth_file_path" in msg


def test_error_unknown_test_filename(tmp_path):
    meta = make_mini_scene(tmp_path)
    meta["test_filenames"] = ["images/nope.png"]
    write_meta(tmp_path, meta)
    msg = _error(tmp_path)
    assert "test_filenames" in msg and "images/nope.png" in msg


def test_error_invalid_json(tmp_path):
    make_mini_scene(tmp_path)
    (tmp_path / "transforms.json").write_text('{"frames": [')
    msg = _error(tmp_path)
    assert "invalid JSON" in msg


def test_error_missing_transform_matrix(tmp_path):
    meta = make_mini_scene(tmp_path)
    del meta["frames"][1]["transform_matrix"]
    write_meta(tmp_path, meta)
    msg = _error(tmp_path, frame=1)
    assert "transform_matrix" in msg and "images/f1.png" in msg


def test_error_missing_intrinsic(tmp_path):
    meta = make_mini_scene(tmp_path)
    del meta["fl_y"]
    meta["frames"][0]["fl_y"] = 5.0  # frame 0 has it, frame 1 does not
    write_meta(tmp_path, meta)
    msg = _error(tmp_path, frame=1)
    assert "fl_y" in msg


def test_error_missing_transforms_json(tmp_path):
    with pytest.raises(SceneFormatError, match="transforms.json"):
        load_scene(tmp_path)


def test_error_bad_aabb(tmp_path):
    meta = make_mini_scene(tmp_path)
    meta["aabb"] = [[0, 0, 0], [1, -1, 1]]
    write_meta(tmp_path, meta)
    assert "aabb" in _error(tmp_path)


def test_check_files_false_skips_the_file_checks(tmp_path):
    make_mini_scene(tmp_path)
    (tmp_path / "images/f1.png").unlink()
    scene = load_scene(tmp_path, check_files=False)
    assert len(scene.frames) == 3


# ------------------------------------------------------------------------------------------------ images
def test_16bit_id_map_round_trip_keeps_values_above_255(tmp_path):
    ids = np.array([[0, 1, 255, 256], [300, 1000, 40000, 65535]], dtype=np.int64)
    write_id_map(tmp_path / "ids.png", ids)
    with Image.open(tmp_path / "ids.png") as im:
        assert im.mode.startswith("I")  # a 16-bit (not 8-bit) PNG
    back = read_id_map(tmp_path / "ids.png")
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, ids)


def test_8bit_id_map_round_trip_and_range_check(tmp_path):
    ids = np.array([[0, 1], [7, 255]])
    write_id_map(tmp_path / "ids8.png", ids, bits=8)
    np.testing.assert_array_equal(read_id_map(tmp_path / "ids8.png"), ids)
    with pytest.raises(ValueError, match="8-bit"):
        write_id_map(tmp_path / "bad.png", np.array([[256]]), bits=8)
    with pytest.raises(ValueError):
        write_id_map(tmp_path / "neg.png", np.array([[-1]]))


def test_read_id_map_rejects_rgb_and_float(tmp_path):
    Image.fromarray(np.zeros((2, 2, 3), np.uint8), mode="RGB").save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="single-channel"):
        read_id_map(tmp_path / "rgb.png")
    np.save(tmp_path / "f.npy", np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="integer"):
        read_id_map(tmp_path / "f.npy")


def test_depth_png_millimetres_to_metres(tmp_path):
    mm = np.array([[0, 1], [1500, 65535]])
    write_id_map(tmp_path / "d.png", mm)
    depth = read_depth(tmp_path / "d.png")
    assert depth.dtype == np.float32
    np.testing.assert_allclose(depth, [[0.0, 0.001], [1.5, 65.535]], rtol=1e-6)
    np.testing.assert_allclose(
        read_depth(tmp_path / "d.png", unit_scale=0.01), [[0.0, 0.01], [15.0, 655.35]], rtol=1e-6
    )


def test_write_depth_png_round_trip_and_unknowns(tmp_path):
    depth = np.array([[0.0, 1.2344], [np.nan, 2.5]])
    write_depth_png(tmp_path / "d.png", depth)
    np.testing.assert_array_equal(read_id_map(tmp_path / "d.png"), [[0, 1234], [0, 2500]])
    np.testing.assert_allclose(read_depth(tmp_path / "d.png"), [[0.0, 1.234], [0.0, 2.5]], rtol=1e-6)


def test_depth_npy_is_metres(tmp_path):
    np.save(tmp_path / "d.npy", np.array([[1.25, 0.0]], np.float64))
    np.testing.assert_array_equal(read_depth(tmp_path / "d.npy", unit_scale=0.001), [[1.25, 0.0]])


def test_confidence_8bit_16bit_and_npy(tmp_path):
    write_id_map(tmp_path / "c8.png", np.array([[0, 51], [255, 102]]), bits=8)
    np.testing.assert_allclose(read_confidence(tmp_path / "c8.png"), [[0.0, 0.2], [1.0, 0.4]], rtol=1e-6)
    write_id_map(tmp_path / "c16.png", np.array([[0, 65535], [255, 13107]]), bits=16)
    np.testing.assert_allclose(read_confidence(tmp_path / "c16.png"), [[0.0, 1.0], [255 / 65535, 0.2]], rtol=1e-6)
    np.save(tmp_path / "c.npy", np.array([[-0.5, 0.25, 1.5]]))
    np.testing.assert_allclose(read_confidence(tmp_path / "c.npy"), [[0.0, 0.25, 1.0]])


def test_read_rgb_drops_alpha(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 10
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    rgb = read_rgb(tmp_path / "a.png")
    assert rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(rgb[..., 0], 1.0)
    np.testing.assert_array_equal(rgb[..., 1:], 0.0)


def test_error_gt_instance_without_gt_semantic(tmp_path):
    meta = make_mini_scene(tmp_path, num_frames=2)
    for i, fr in enumerate(meta["frames"]):
        fr["gt_instance_file_path"] = f"inst/f{i}.png"  # no gt_semantic_file_path anywhere
    write_meta(tmp_path, meta)
    msg = _error(tmp_path)
    assert "gt_semantic_file_path" in msg


def test_error_confidence_for_some_frames_only_names_the_frames(tmp_path):
    meta = make_mini_scene(tmp_path, num_frames=3)
    del meta["frames"][0]["confidence_file_path"]
    write_meta(tmp_path, meta)
    msg = _error(tmp_path, frame=0)
    assert "confidence_file_path" in msg and "frame 1" not in msg
