"""Generated video + LiDAR sequences (``--trajectory video --lidar``) and their loader (docs/sequence-format.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lift3d.data.loading import load_scene
from lift3d.data.scene import SceneFormatError
from lift3d.data.sequence import load_clip, load_sequence, load_sequence_frame
from lift3d.generate.config import LidarConfig, MessyRoomsConfig, VideoConfig, config_from_dict, config_to_dict
from lift3d.geometry.flow import flow_from_depth, warp_bilinear, warp_nearest

VIDEO = VideoConfig(num_clips=2, frames_per_clip=3)
LIDAR = LidarConfig(beams=16, columns=180)


@pytest.fixture(scope="module")
def sequence_dir(tmp_path_factory) -> Path:
    """6 objects, 2 clips of 3 frames at 32 x 32, a 16-beam LiDAR with 180 columns; the second clip is the test
    clip."""
    from lift3d.generate import generate_scene

    cfg = MessyRoomsConfig(
        num_objects=6, resolution=32, seed=0, trajectory="video", lidar=True, video=VIDEO, lidar_sensor=LIDAR
    )
    cfg.test_fraction = 0.5
    return generate_scene(cfg, tmp_path_factory.mktemp("sequence") / "seq", progress=False)


@pytest.fixture(scope="module")
def sequence(sequence_dir):
    return load_sequence(sequence_dir)


def test_a_sequence_is_a_scene_split_by_clip(sequence_dir, sequence):
    scene = load_scene(sequence_dir)
    assert len(scene.frames) == 6
    assert [c.frames for c in sequence.clips] == [(0, 1, 2), (3, 4, 5)]
    assert [c.split for c in sequence.clips] == ["train", "test"]
    assert scene.train_indices == [0, 1, 2] and scene.test_indices == [3, 4, 5]
    assert sequence.next_frame(1) == 2 and sequence.next_frame(2) is None and sequence.clip_of(4) == (1, 1)
    assert sequence.fps == VIDEO.fps


def test_camera_moves_at_the_robot_speed_and_height(sequence):
    step = VIDEO.speed_m_per_s / VIDEO.fps
    for clip in sequence.clips:
        poses = np.stack([sequence.scene.frames[i].camera_to_world for i in clip.frames])
        np.testing.assert_allclose(poses[:, 2, 3], VIDEO.camera_height_m, atol=1e-9)
        np.testing.assert_allclose(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1), step, rtol=0.02)
        forward = -poses[:, :3, 2]
        np.testing.assert_allclose(forward[:, 2], np.sin(np.deg2rad(VIDEO.pitch_deg)), atol=1e-9)


def test_flow_warps_each_frame_onto_the_next(sequence):
    """On valid pixels the next frame's ground-truth id at the flow's end point is the pixel's own id, and the
    colour there matches better than with the flow moved by half a pixel either way; recomputing the flow from the loaded (millimetre) depth gives
    the stored flow."""
    for clip in sequence.clips:
        frames = load_clip(sequence, sequence.clips.index(clip))
        assert frames[-1].flow is None and frames[-1].flow_valid is None
        for a, b in zip(frames[:-1], frames[1:]):
            valid = a.flow_valid
            assert a.flow.shape == (32, 32, 2) and a.flow.dtype == np.float32 and valid.mean() > 0.5
            agree = warp_nearest(b.gt_instance, a.flow) == a.gt_instance
            assert agree[valid].mean() > 0.97

            def colour_error(flow):
                return np.abs(warp_bilinear(b.rgb, flow) - a.rgb)[valid].mean()

            error = colour_error(a.flow)
            assert error < np.abs(b.rgb - a.rgb)[valid].mean()  # better than no motion
            for shift in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)):  # and than the flow moved by half a pixel
                assert error < colour_error(a.flow + np.array(shift, np.float32))
            flow, recomputed_valid = flow_from_depth(
                a.depth, a.camera_to_world, b.camera_to_world, a.intrinsics, next_depth=b.depth
            )
            both = valid & recomputed_valid
            assert both.mean() > 0.95 * valid.mean()
            np.testing.assert_allclose(flow[both], a.flow[both], atol=0.05)


def test_lidar_scan_range_image_and_camera_agree(sequence):
    """Every cell holds one return (closed room), the range image holds the points' ranges, and a LiDAR point that
    the camera sees lands on a pixel of its own instance."""
    seen_objects = set()
    for i in range(sequence.num_frames):
        f = load_sequence_frame(sequence, i)
        scan = f.lidar
        assert scan.range_image.shape == (16, 180) and (scan.range_image > 0).all()
        assert len(scan.points) == 16 * 180
        np.testing.assert_allclose(
            np.sort(scan.range_image.ravel()), np.sort(np.linalg.norm(scan.points, axis=1)), rtol=1e-5
        )
        assert sorted(np.unique(scan.range_instance)) == sorted(np.unique(scan.instance))
        np.testing.assert_allclose(f.lidar_to_world[:3, 2], [0, 0, 1], atol=1e-9)  # mounted level
        np.testing.assert_allclose(f.lidar_to_world[:3, 3], f.camera_to_world[:3, 3] + [0, 0, LIDAR.mount_offset_m])
        world = scan.points @ f.lidar_to_world[:3, :3].T + f.lidar_to_world[:3, 3]
        cam = (world - f.camera_to_world[:3, 3]) @ f.camera_to_world[:3, :3]
        z = -cam[:, 2]
        K = f.intrinsics
        u = np.floor(K.fx * cam[:, 0] / np.maximum(z, 1e-9) + K.cx).astype(int)
        v = np.floor(K.cy - K.fy * cam[:, 1] / np.maximum(z, 1e-9)).astype(int)
        inside = (z > 0) & (u >= 0) & (u < K.width) & (v >= 0) & (v < K.height)
        visible = inside.copy()
        visible[inside] = np.abs(f.depth[v[inside], u[inside]] - z[inside]) < 0.02 * z[inside]
        assert visible.sum() > 50
        agree = f.gt_instance[v[visible], u[visible]] == scan.instance[visible]
        assert agree.mean() > 0.95
        seen_objects |= set(scan.instance[scan.instance > 0].tolist())
    assert seen_objects  # the LiDAR hits objects, not only the room


def test_video_settings_round_trip_and_lidar_needs_video():
    cfg = MessyRoomsConfig(trajectory="video", lidar=True, video=VIDEO, lidar_sensor=LIDAR)
    assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    with pytest.raises(ValueError, match="--trajectory video"):
        MessyRoomsConfig(lidar=True)
    with pytest.raises(ValueError, match="fps"):
        VideoConfig(fps=0)


def _edit_json(path: Path, edit) -> None:
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _seq_json(edit):
    return lambda root: _edit_json(root / "sequence.json", edit)


def _overwrite_lidar(root: Path, **arrays) -> None:
    path = root / "lidar" / "frame_00001.npz"
    data = dict(np.load(path))
    data.update(arrays)
    np.savez(path, **data)


BROKEN = {
    "missing sequence.json": (lambda root: (root / "sequence.json").unlink(), r"sequence.json: not found"),
    "not json": (lambda root: (root / "sequence.json").write_text("{"), r"not valid JSON"),
    "version": (_seq_json(lambda m: m.update(version=2)), r"unsupported 'version' 2"),
    "fps": (_seq_json(lambda m: m.update(fps=0)), r"'fps' must be > 0"),
    "index": (_seq_json(lambda m: m["clips"][1]["frames"].append(99)), r"clip 1 .*frame index 99"),
    "two clips": (_seq_json(lambda m: m["clips"][1]["frames"].append(0)), r"frame 0 .* is already in clip 0"),
    "scaled mount": (
        _seq_json(lambda m: m["lidar"].update(lidar_to_camera=(2 * np.eye(4)).tolist())),
        r"'lidar_to_camera' must be rigid",
    ),
    "fov": (_seq_json(lambda m: m["lidar"].update(vertical_fov_deg=[15, -25])), r"vertical_fov_deg"),
    "missing flow": (
        lambda root: (root / "flow" / "frame_00004.npz").unlink(),
        r"frame 4 \(images/frame_00004.png\): .*frame_00004.npz does not exist",
    ),
    "truncated lidar": (
        lambda root: (root / "lidar" / "frame_00002.npz").write_bytes(b"PK\x03\x04broken"),
        r"frame 2 .*lidar/frame_00002.npz: cannot be read",
    ),
    "range image shape": (
        lambda root: _overwrite_lidar(root, range_image=np.zeros((16, 90), np.float32)),
        r"frame 1 .*lidar/frame_00001.npz: 'range_image' must have shape \[16, 180\]",
    ),
    "points vs ids": (
        lambda root: _overwrite_lidar(root, instance=np.zeros(5, np.int64)),
        r"frame 1 .*instance' must have shape \[2880\]",
    ),
    "flow dtype": (
        lambda root: np.savez(
            root / "flow" / "frame_00000.npz", flow=np.zeros((32, 32, 2), np.float32), valid=np.zeros((32, 32))
        ),
        r"frame 0 .*flow/frame_00000.npz: 'valid' must hold bool",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_loader_names_file_frame_and_fix(sequence_dir, tmp_path, case):
    root = tmp_path / "seq"
    shutil.copytree(sequence_dir, root)
    breaks, message = BROKEN[case]
    breaks(root)
    with pytest.raises(SceneFormatError, match=message):
        load_sequence(root)
