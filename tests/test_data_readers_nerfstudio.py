"""nerfstudio transforms.json as nerfstudio's writers produce it: camera models -> Distortion (COLMAP's names and
order), unknown models refused, instant-ngp / Blender intrinsics and extension-less paths, per-frame intrinsics,
applied_transform, mask_path -> valid_mask, sparse and low-resolution depth, split lists on normalised paths,
downscale with images_N, scenes without segments, and --skip-bad-frames. Every scene is a tiny folder written here."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import MINI_H, MINI_W, make_mini_scene, mini_rgb, write_meta
from PIL import Image

from lift3d.data.images import resize_depth, resize_nearest, write_depth_png, write_id_map, write_rgb
from lift3d.data.loading import SkippedFramesWarning, load_frame, load_scene
from lift3d.data.scene import MissingSegmentsError, SceneFormatError, require_segments
from lift3d.geometry.cameras import Distortion


def _nerfstudio_scene(root: Path, num_frames: int = 3, segments: bool = False, **top) -> dict:
    """A scene as ns-process-data writes it: images/frame_0000i.png, top-level pinhole intrinsics, no lift3d keys
    (``segments``: add the mini segment maps too)."""
    meta = make_mini_scene(root, num_frames=num_frames, depth=False, confidence=False, split=False)
    for fr in meta["frames"]:
        if not segments:
            del fr["instance_file_path"], fr["semantic_file_path"]
    if not segments:
        del meta["classes"]
    meta.update(top)
    write_meta(root, meta)
    return meta


# ---------------------------------------------------------------------------------------------- camera models
@pytest.mark.parametrize(
    "keys, expected",
    [
        (
            {"camera_model": "OPENCV", "k1": 0.057, "k2": -0.08, "p1": 0.001, "p2": -0.002},
            Distortion("opencv", (0.057, -0.08, 0.001, -0.002)),
        ),
        (
            {"camera_model": "OPENCV", "k1": 0.1, "k2": 0.0, "k3": 0.02, "p1": 0.0, "p2": 0.003},
            Distortion("full_opencv", (0.1, 0.0, 0.0, 0.003, 0.02, 0.0, 0.0, 0.0)),
        ),
        (
            {"camera_model": "OPENCV_FISHEYE", "k1": 0.1, "k2": -0.01, "k3": 0.002, "k4": -0.0003},
            Distortion("opencv_fisheye", (0.1, -0.01, 0.002, -0.0003)),
        ),
        ({"camera_model": "SIMPLE_RADIAL", "k1": -0.04}, Distortion("simple_radial", (-0.04,))),
        ({"camera_model": "RADIAL", "k1": -0.04, "k2": 0.01}, Distortion("radial", (-0.04, 0.01))),
        (
            {
                "camera_model": "FULL_OPENCV",
                "k1": 0.1,
                "k2": 0.2,
                "p1": 0.01,
                "p2": 0.02,
                "k3": 0.3,
                "k4": 0.4,
                "k5": 0.5,
                "k6": 0.6,
            },
            Distortion("full_opencv", (0.1, 0.2, 0.01, 0.02, 0.3, 0.4, 0.5, 0.6)),
        ),
        ({"camera_model": "OPENCV", "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}, None),  # Polycam: all zero
        ({"camera_model": "PINHOLE"}, None),
        ({"k1": 0.05, "k2": 0.0, "p1": 0.0, "p2": 0.0}, Distortion("opencv", (0.05, 0.0, 0.0, 0.0))),
    ],
)
def test_camera_models_become_colmap_named_distortions(tmp_path, keys, expected):
    _nerfstudio_scene(tmp_path, **keys)
    scene = load_scene(tmp_path)
    assert all(f.distortion == expected for f in scene.frames)
    assert scene.extras["camera_models"] == [expected.model if expected else "pinhole"]


@pytest.mark.parametrize("model", ["EQUIRECTANGULAR", "FISHEYE624", "OMNIDIRECTIONALSTEREO_L"])
def test_unmodelled_camera_models_are_refused_naming_the_fix(tmp_path, model):
    _nerfstudio_scene(tmp_path, camera_model=model)
    with pytest.raises(SceneFormatError) as err:
        load_scene(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "transforms.json") in msg and "frame 0" in msg and model in msg and "undistort" in msg.lower()


def test_nerfstudio_r8_term_is_refused(tmp_path):
    _nerfstudio_scene(tmp_path, camera_model="OPENCV", k1=0.1, k4=0.01)
    with pytest.raises(SceneFormatError, match="k4"):
        load_scene(tmp_path)


def test_per_frame_camera_model_and_intrinsics_win(tmp_path):
    meta = _nerfstudio_scene(tmp_path, camera_model="OPENCV", k1=0.01)
    meta["frames"][1].update(camera_model="OPENCV_FISHEYE", k1=0.2, k2=0.0, k3=0.0, k4=0.0, fl_x=9.0, cx=3.0)
    write_meta(tmp_path, meta)
    f0, f1, _ = load_scene(tmp_path).frames
    assert f0.distortion == Distortion("opencv", (0.01, 0.0, 0.0, 0.0)) and f0.fx == 4.0 and f0.cx == 2.5
    assert f1.distortion == Distortion("opencv_fisheye", (0.2, 0.0, 0.0, 0.0)) and f1.fx == 9.0 and f1.cx == 3.0
    assert f1.camera_intrinsics.distortion == f1.distortion


# ---------------------------------------------------------------------------------------------- instant-ngp / Blender
def test_instant_ngp_camera_angle_x_and_paths_without_extension(tmp_path):
    meta = _nerfstudio_scene(tmp_path)
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        del meta[key]
    meta["camera_angle_x"] = 2 * math.atan(0.5)  # tan(angle / 2) = 0.5 -> fl_x = 0.5 * 6 / 0.5 = 6
    for fr in meta["frames"]:
        fr["file_path"] = "./" + fr["file_path"][: -len(".png")]  # ./images/f0, as Blender writes it
    meta["frames"][2]["file_path"] = "./images/f2"
    Path(tmp_path / "images/f2.png").rename(tmp_path / "images/f2.jpg")
    Image.fromarray(mini_rgb(2)).save(tmp_path / "images/f2.jpg")
    write_meta(tmp_path, meta)
    scene = load_scene(tmp_path)
    f = scene.frames[0]
    assert (f.width, f.height) == (MINI_W, MINI_H)  # read from the image
    assert f.fx == pytest.approx(6.0) and f.fy == pytest.approx(6.0)
    assert (f.cx, f.cy) == (MINI_W / 2, MINI_H / 2)
    assert f.image_path == tmp_path / "images/f0.png"
    assert scene.frames[2].image_path == tmp_path / "images/f2.jpg"
    assert np.allclose(load_frame(scene, 0).rgb, mini_rgb(0) / 255.0)


def test_camera_angle_y_gives_fl_y(tmp_path):
    meta = _nerfstudio_scene(tmp_path)
    for key in ("fl_x", "fl_y"):
        del meta[key]
    meta.update(camera_angle_x=2 * math.atan(0.5), camera_angle_y=2 * math.atan(0.25))  # fl_y = 0.5 * 4 / 0.25 = 8
    write_meta(tmp_path, meta)
    f = load_scene(tmp_path).frames[0]
    assert (f.fx, f.fy) == (pytest.approx(6.0), pytest.approx(8.0)) and (f.cx, f.cy) == (2.5, 1.5)


# ---------------------------------------------------------------------------------------------- extras, masks, depth
def test_applied_transform_is_recorded_and_poses_are_kept(tmp_path):
    applied = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0]]
    meta = _nerfstudio_scene(tmp_path, applied_transform=applied, applied_scale=0.5)
    scene = load_scene(tmp_path)
    assert scene.extras["applied_transform"] == applied and scene.extras["applied_scale"] == 0.5
    assert np.allclose(scene.frames[1].camera_to_world, meta["frames"][1]["transform_matrix"])


def test_mask_path_becomes_valid_mask_and_a_missing_mask_is_an_error(tmp_path):
    meta = _nerfstudio_scene(tmp_path)
    mask = np.zeros((MINI_H, MINI_W), np.uint8)
    mask[:, 2:] = 255
    for i, fr in enumerate(meta["frames"]):
        Image.fromarray(mask).save(tmp_path / f"mask{i}.png")
        fr["mask_path"] = f"mask{i}.png"
    write_meta(tmp_path, meta)
    scene = load_scene(tmp_path)
    valid = load_frame(scene, 1).valid_mask
    assert valid.dtype == bool and valid.shape == (MINI_H, MINI_W)
    assert np.array_equal(valid, mask > 0)
    (tmp_path / "mask1.png").unlink()
    with pytest.raises(SceneFormatError) as err:
        load_scene(tmp_path)
    assert "frame 1" in str(err.value) and "mask_path" in str(err.value) and "mask1.png" in str(err.value)


def test_sparse_depth_density_is_recorded(tmp_path):
    meta = _nerfstudio_scene(tmp_path)
    for i, fr in enumerate(meta["frames"]):
        depth = np.zeros((MINI_H, MINI_W))
        depth[0, : i + 1] = 2.0  # frame i: i + 1 valid pixels of 24
        write_depth_png(tmp_path / f"depth{i}.png", depth)
        fr["depth_file_path"] = f"depth{i}.png"
    write_meta(tmp_path, meta)
    scene = load_scene(tmp_path)
    assert scene.has_depth
    assert scene.extras["depth_density"] == pytest.approx(np.mean([1, 2, 3]) / (MINI_H * MINI_W))
    without = tmp_path / "nodepth"
    _nerfstudio_scene(without)
    assert load_scene(without).extras["depth_density"] == 0.0


def test_low_resolution_depth_is_resized_nearest_keeping_zeros(tmp_path):
    meta = _nerfstudio_scene(tmp_path)
    small = np.array([[1.0, 0.0, 3.0], [0.0, 5.0, 6.0]])  # 3 x 2: half the image's 6 x 4
    for i, fr in enumerate(meta["frames"]):
        write_depth_png(tmp_path / f"d{i}.png", small)
        fr["depth_file_path"] = f"d{i}.png"
    write_meta(tmp_path, meta)
    depth = load_frame(load_scene(tmp_path), 0).depth
    v, u = np.mgrid[0:MINI_H, 0:MINI_W]
    assert depth.shape == (MINI_H, MINI_W)
    assert np.allclose(depth, small[v // 2, u // 2])  # every pixel takes its 2x2 block's source, zeros stay zero


def test_depth_of_another_aspect_ratio_is_refused(tmp_path):
    meta = _nerfstudio_scene(tmp_path)
    for i, fr in enumerate(meta["frames"]):
        write_depth_png(tmp_path / f"d{i}.png", np.ones((4, 4)))
        fr["depth_file_path"] = f"d{i}.png"
    write_meta(tmp_path, meta)
    with pytest.raises(SceneFormatError, match="depth_file_path d0.png is 4x4 but the frame is 6x4"):
        load_scene(tmp_path)


def test_resize_depth_keeps_sparse_points_when_shrinking():
    depth = np.zeros((8, 8), np.float32)
    depth[1, 1], depth[6, 4], depth[6, 5] = 2.0, 3.0, 1.5  # nearest sampling reads (2k + 1): misses (6, 4)
    out = resize_depth(depth, (4, 4))
    assert (out > 0).sum() == 3 - 1  # (6, 4) and (6, 5) share target (3, 2): the nearer depth wins
    assert out[0, 0] == 2.0 and out[3, 2] == 1.5
    dense = np.arange(1, 65, dtype=np.float32).reshape(8, 8)
    assert np.array_equal(resize_depth(dense, (4, 4)), resize_nearest(dense, (4, 4)))
    assert np.array_equal(resize_nearest(dense, (4, 4)), dense[1::2, 1::2])


# ---------------------------------------------------------------------------------------------- split lists
def test_split_lists_match_normalised_paths_with_or_without_extension(tmp_path):
    _nerfstudio_scene(
        tmp_path,
        num_frames=4,
        train_filenames=["./images/f0.png", "images/f1", "images/../images/f2.png"],
        test_filenames=["./images/f3"],
    )
    scene = load_scene(tmp_path)
    assert scene.train_indices == [0, 1, 2] and scene.test_indices == [3]


def test_val_filenames_serve_as_test_list(tmp_path):
    _nerfstudio_scene(tmp_path, train_filenames=["images/f0.png", "images/f2.png"], val_filenames=["images/f1.png"])
    scene = load_scene(tmp_path)
    assert scene.train_indices == [0, 2] and scene.test_indices == [1]


def test_unknown_split_name_is_an_error(tmp_path):
    _nerfstudio_scene(tmp_path, train_filenames=["images/f0.png"], test_filenames=["images/nope.png"])
    with pytest.raises(SceneFormatError, match="'test_filenames' lists 'images/nope.png'"):
        load_scene(tmp_path)


# ---------------------------------------------------------------------------------------------- downscale
def test_downscale_scales_intrinsics_and_area_averages_the_image(tmp_path):
    _nerfstudio_scene(tmp_path, segments=True)
    scene = load_scene(tmp_path, downscale=2)
    f = scene.frames[0]
    assert (f.width, f.height, f.file_size) == (3, 2, (MINI_H, MINI_W))
    assert (f.fx, f.fy, f.cx, f.cy) == (2.0, 2.5, 1.25, 0.75)
    assert scene.extras["downscale"] == 2
    data = load_frame(scene, 0)
    rgb = mini_rgb(0).astype(np.float64) / 255.0
    block_mean = rgb.reshape(2, 2, 3, 2, 3).mean(axis=(1, 3))
    assert np.allclose(data.rgb, block_mean, atol=1e-5)
    from conftest import mini_instance

    assert np.array_equal(data.instance, mini_instance(0)[1::2, 1::2])  # nearest: the centre-most source pixel
    full = load_scene(tmp_path).frames[0]
    assert (full.width, full.fx) == (MINI_W, 4.0)


def test_downscale_uses_nerfstudio_images_n_folders(tmp_path):
    _nerfstudio_scene(tmp_path)
    marker = np.full((2, 3, 3), 77, np.uint8)
    for i in range(3):
        write_rgb(tmp_path / f"images_2/f{i}.png", marker)
    scene = load_scene(tmp_path, downscale=2)
    assert scene.frames[1].image_path == tmp_path / "images_2/f1.png"
    assert np.allclose(load_frame(scene, 1).rgb, 77 / 255.0)
    assert load_scene(tmp_path, downscale=4).frames[0].width == 1  # no images_4: 6 // 4


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_downscale_must_be_a_whole_number(tmp_path, bad):
    _nerfstudio_scene(tmp_path)
    with pytest.raises(SceneFormatError, match="downscale"):
        load_scene(tmp_path, downscale=bad)


# ---------------------------------------------------------------------------------------------- no segments
def test_scene_without_segments_loads_and_fit_refuses_it_in_one_line(tmp_path):
    _nerfstudio_scene(tmp_path)
    scene = load_scene(tmp_path)
    assert not scene.has_segments and all(f.instance_path is None for f in scene.frames)
    assert [c.name for c in scene.classes] == ["background", "object"]  # the default classes
    data = load_frame(scene, 0)
    assert not data.instance.any() and not data.semantic.any() and data.instance.shape == (MINI_H, MINI_W)
    with pytest.raises(MissingSegmentsError) as err:
        require_segments(scene)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "transforms.json") in msg and "no 2D segments" in msg
    assert f"lift3d segments predict {tmp_path} --segmenter classical" in msg and "segments import" in msg


def test_fit_stops_before_any_work_on_a_scene_without_segments(tmp_path):
    from lift3d.pipeline import fit_scene
    from lift3d.presets import get_preset

    _nerfstudio_scene(tmp_path / "scene")
    with pytest.raises(MissingSegmentsError):
        fit_scene(tmp_path / "scene", tmp_path / "run", get_preset("tiny"), progress=False, log=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_segments_import_bootstraps_a_scene_without_segments(tmp_path):
    from conftest import mini_instance

    from lift3d.data.segments_import import import_segments

    _nerfstudio_scene(tmp_path / "scene")
    for i in range(3):
        write_id_map(tmp_path / f"segs/instance/f{i}.png", mini_instance(i), bits=16)
    import_segments(tmp_path / "scene", tmp_path / "segs", "id-maps")
    scene = load_scene(tmp_path / "scene")
    assert scene.has_segments
    data = load_frame(scene, 2)
    assert np.array_equal(data.instance, mini_instance(2)) and np.array_equal(data.semantic, mini_instance(2) > 0)
    require_segments(scene)


def test_only_one_segment_key_is_an_error(tmp_path):
    meta = _nerfstudio_scene(tmp_path, segments=True)
    del meta["frames"][1]["semantic_file_path"]
    write_meta(tmp_path, meta)
    with pytest.raises(SceneFormatError, match="frame 1 .*semantic_file_path"):
        load_scene(tmp_path)


def test_segments_on_some_frames_only_is_an_error(tmp_path):
    meta = _nerfstudio_scene(tmp_path, segments=True)
    del meta["frames"][2]["semantic_file_path"], meta["frames"][2]["instance_file_path"]
    write_meta(tmp_path, meta)
    with pytest.raises(SceneFormatError, match="'instance_file_path' is given for some frames but not for frame 2"):
        load_scene(tmp_path)


# ---------------------------------------------------------------------------------------------- skip bad frames
def test_a_bad_frame_is_named_with_the_flag_and_skipped_with_it(tmp_path):
    meta = _nerfstudio_scene(
        tmp_path,
        num_frames=4,
        segments=True,
        train_filenames=["images/f0.png", "images/f1.png", "images/f2.png"],
        test_filenames=["images/f3.png"],
    )
    (tmp_path / "images/f1.png").write_bytes((tmp_path / "images/f1.png").read_bytes()[:40])  # truncated
    (tmp_path / "inst/f2.png").unlink()  # missing
    with pytest.raises(SceneFormatError) as err:
        load_scene(tmp_path)
    assert "frame 1 (images/f1.png)" in str(err.value) and "--skip-bad-frames" in str(err.value)
    with pytest.warns(SkippedFramesWarning, match="skipped 2 unreadable frame"):
        scene = load_scene(tmp_path, skip_bad_frames=True)
    assert [f.name for f in scene.frames] == ["images/f0.png", "images/f3.png"]
    assert [f.index for f in scene.frames] == [0, 1]
    assert scene.train_indices == [0] and scene.test_indices == [1]
    skipped = scene.extras["skipped_frames"]
    assert [(s["index"], s["name"]) for s in skipped] == [(1, "images/f1.png"), (2, "images/f2.png")]
    assert "does not exist" in skipped[1]["reason"]
    assert np.allclose(load_frame(scene, 1).rgb, mini_rgb(3) / 255.0)
    from lift3d.data.sanity import scene_warnings

    assert sum("skipped frame" in w for w in scene_warnings(scene)) == 2
    assert meta["frames"][1]["file_path"] == "images/f1.png"


def test_a_frame_without_a_pose_is_skippable(tmp_path):
    meta = _nerfstudio_scene(tmp_path)
    del meta["frames"][0]["transform_matrix"]
    write_meta(tmp_path, meta)
    with pytest.raises(SceneFormatError, match="frame 0 .*transform_matrix"):
        load_scene(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFramesWarning)
        scene = load_scene(tmp_path, skip_bad_frames=True)
    assert [f.name for f in scene.frames] == ["images/f1.png", "images/f2.png"]


def test_forcing_a_format_by_name(tmp_path):
    _nerfstudio_scene(tmp_path)
    assert load_scene(tmp_path, reader="transforms_json").extras["format"] == "transforms_json"
    with pytest.raises(SceneFormatError, match="'colmap' expects a COLMAP project"):
        load_scene(tmp_path, reader="colmap")
    with pytest.raises(SceneFormatError, match="no scene reader named 'nope'"):
        load_scene(tmp_path, reader="nope")


def test_cli_fit_on_a_scene_without_segments_prints_one_line(tmp_path):
    import subprocess
    import sys

    _nerfstudio_scene(tmp_path / "scene")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lift3d.cli",
            "fit",
            str(tmp_path / "scene"),
            "--out",
            str(tmp_path / "run"),
            "--preset",
            "tiny",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    assert len(lines) == 1 and "no 2D segments" in lines[0] and "segments predict" in lines[0]
    assert json.loads((tmp_path / "scene/transforms.json").read_text())["frames"]


def test_describe_scene_states_camera_depth_masks_and_segments(tmp_path):
    from lift3d.data.sanity import describe_scene

    meta = _nerfstudio_scene(tmp_path, camera_model="OPENCV", k1=0.057, k2=-0.08, p1=0.001, p2=-0.002)
    for i, fr in enumerate(meta["frames"]):
        depth = np.zeros((MINI_H, MINI_W))
        depth[0, 0] = 1.0
        write_depth_png(tmp_path / f"d{i}.png", depth)
        fr["depth_file_path"] = f"d{i}.png"
    meta["frames"][0]["mask_path"] = "m.png"
    Image.fromarray(np.full((MINI_H, MINI_W), 255, np.uint8)).save(tmp_path / "m.png")
    write_meta(tmp_path, meta)
    line = describe_scene(load_scene(tmp_path, downscale=2))
    assert "camera: opencv (0.057, -0.08, 0.001, -0.002)" in line
    assert "depth: sparse (4.17% of pixels)" in line and "masks: 1 frames" in line and "segments: none" in line
    assert "downscale 2" in line and "\n" not in line


def test_scene_options_round_trip_and_load(tmp_path):
    from lift3d.data.loading import SceneOptions

    _nerfstudio_scene(tmp_path)
    opts = SceneOptions(format="transforms_json", downscale=2)
    assert SceneOptions(**json.loads(json.dumps(opts.to_dict()))) == opts
    assert opts.load(tmp_path).frames[0].width == MINI_W // 2
