"""The generator's lens distortion (fast backend): the images ARE distorted (depth back-projected through the lens
model lands on the room's walls, through a pinhole it does not), transforms.json records the camera model, and bad
specifications are refused."""

from __future__ import annotations

import numpy as np
import pytest

from lift3d.generate.config import MessyRoomsConfig
from lift3d.generate.fast_backend import render_views
from lift3d.generate.layout import make_layout
from lift3d.generate.writer import transforms_dict
from lift3d.geometry.cameras import Distortion, Intrinsics, backproject

LENS = "opencv:-0.25,0.08,0.002,-0.001"


def room_gap(points: np.ndarray, layout) -> np.ndarray:
    """Distance of each point [N, 3] to the nearest of the room box's six planes."""
    return np.minimum(np.abs(points - layout.room_min), np.abs(points - layout.room_max)).min(1)


def test_distorted_render_back_projects_onto_the_room_only_through_the_lens_model():
    # a short focal length (wide view) so that the lens model moves the image corners by pixels
    cfg = MessyRoomsConfig(
        num_objects=3, num_views=2, resolution=40, seed=1, base_focal_length=1.5, rgb_supersampling=1, distortion=LENS
    )
    layout = make_layout(cfg)
    views = render_views(layout, cfg)
    K = layout.intrinsics
    lens = Intrinsics(K.fx, K.fy, K.cx, K.cy, K.width, K.height, cfg.lens_distortion())
    pinhole = Intrinsics(K.fx, K.fy, K.cx, K.cy, K.width, K.height)
    for v in range(cfg.num_views):
        room = views.instance[v] == 0
        border = np.zeros_like(room)
        border[:4], border[-4:], border[:, :4], border[:, -4:] = True, True, True, True
        through_lens, _ = backproject(views.depth[v], layout.camera_to_world[v], lens)
        through_pinhole, _ = backproject(views.depth[v], layout.camera_to_world[v], pinhole)
        # off a plane only within 1 mm where a pixel straddles a room edge: the 99th percentile
        assert np.percentile(room_gap(through_lens[room], layout), 99) < 1e-3
        assert np.median(room_gap(through_pinhole[room & border], layout)) > 2e-2


def test_transforms_json_records_the_camera_model_and_coefficients():
    cfg = MessyRoomsConfig(num_objects=2, num_views=2, resolution=16, distortion=LENS)
    meta = transforms_dict(make_layout(cfg), cfg)
    assert meta["camera_model"] == "OPENCV"
    assert [meta[k] for k in ("k1", "k2", "p1", "p2")] == [-0.25, 0.08, 0.002, -0.001]
    fisheye = MessyRoomsConfig(num_objects=2, num_views=2, resolution=16, distortion="opencv_fisheye:0.1,0,0,0")
    meta = transforms_dict(make_layout(fisheye), fisheye)
    assert meta["camera_model"] == "OPENCV_FISHEYE" and meta["k1"] == 0.1 and meta["k4"] == 0.0
    radial = MessyRoomsConfig(num_objects=2, num_views=2, resolution=16, distortion="radial:-0.1,0.02")
    assert radial.lens_distortion() == Distortion("radial", (-0.1, 0.02))
    meta = transforms_dict(make_layout(radial), radial)
    assert [meta[k] for k in ("camera_model", "k1", "k2", "p1", "p2")] == ["OPENCV", -0.1, 0.02, 0.0, 0.0]
    plain = MessyRoomsConfig(num_objects=2, num_views=2, resolution=16)
    assert "camera_model" not in transforms_dict(make_layout(plain), plain)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("equirectangular:", "must be one of opencv, opencv_fisheye"),
        ("full_opencv:0,0,0,0,0,0,0,0", "must be one of"),
        ("opencv:-0.25,0.08", r"takes 4 coefficients \(k1, k2, p1, p2\), got 2"),
        ("opencv:a,b,c,d", "numbers separated by commas"),
    ],
)
def test_bad_distortion_specifications_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        MessyRoomsConfig(distortion=spec)
    with pytest.raises(ValueError, match="fast backend only"):
        MessyRoomsConfig(distortion=LENS, backend="kubric")


def test_a_generated_distorted_scene_loads_with_its_lens_model(tmp_path):
    from lift3d.data.loading import load_scene
    from lift3d.generate import generate_scene

    cfg = MessyRoomsConfig(num_objects=2, num_views=3, resolution=16, distortion=LENS, rgb_supersampling=1)
    scene = load_scene(generate_scene(cfg, tmp_path / "scene", progress=False))
    assert {f.distortion for f in scene.frames} == {Distortion("opencv", (-0.25, 0.08, 0.002, -0.001))}
