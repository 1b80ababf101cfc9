"""Layout of Messy Rooms scenes: determinism, physics result, scaling with N (Contrastive Lift, section 4), cameras."""

import json

import numpy as np
import pytest

from lift3d.generate.config import MessyRoomsConfig
from lift3d.generate.layout import SceneLayout, look_at, make_layout, room_box, sample_cameras


def tiny(**kw) -> MessyRoomsConfig:
    base = dict(num_objects=5, num_views=4, resolution=48, seed=0)
    base.update(kw)
    return MessyRoomsConfig(**base)


@pytest.fixture(scope="module")
def layout5() -> SceneLayout:
    return make_layout(tiny())


def test_same_seed_same_layout_and_different_seed_differs(layout5):
    again = make_layout(tiny())
    assert json.dumps(again.to_dict()["objects"]) == json.dumps(layout5.to_dict()["objects"])
    np.testing.assert_array_equal(again.camera_to_world, layout5.camera_to_world)
    other = make_layout(tiny(seed=1))
    assert other.to_dict()["objects"] != layout5.to_dict()["objects"]
    assert not np.allclose(other.camera_to_world, layout5.camera_to_world)


def test_layout_json_round_trip(layout5):
    d = layout5.to_dict()
    back = SceneLayout.from_dict(json.loads(json.dumps(d)))
    assert back.to_dict() == d
    # the rebuilt meshes are identical (a kubric backend can rebuild the same objects from layout.json)
    np.testing.assert_array_equal(back.objects[0].world_vertices(), layout5.objects[0].world_vertices())


def test_objects_rest_on_floor_inside_floor_region(layout5):
    cfg = tiny()
    assert layout5.physics.settled
    assert [o.instance_id for o in layout5.objects] == list(range(1, len(layout5.objects) + 1))
    assert len(layout5.objects) == cfg.num_objects - layout5.physics.num_removed
    z_min = np.array([o.world_vertices()[:, 2].min() for o in layout5.objects])
    # bullet keeps ~1 mm collision margin; nothing sinks into the floor, nothing floats in the air
    assert (z_min > -0.003).all()
    assert (z_min < 0.01).mean() >= 0.6  # most lie on the floor, the rest are stacked
    L = cfg.floor_half_side + cfg.physics.off_floor_margin
    centres = np.array([o.translation for o in layout5.objects])
    assert (np.abs(centres[:, :2]) <= L).all()
    for o in layout5.objects:  # rotations stay proper rotations
        np.testing.assert_allclose(o.rotation @ o.rotation.T, np.eye(3), atol=1e-6)
        assert np.linalg.det(o.rotation) == pytest.approx(1.0, abs=1e-6)


def test_cameras_look_at_floor_from_the_dome_inside_the_room(layout5):
    cfg = tiny(num_views=200)
    cams = sample_cameras(np.random.default_rng(0), cfg)
    pos, axis = cams[:, :3, 3], -cams[:, :3, 2]  # OpenGL: the camera looks down its -z axis
    for c in cams[:5]:
        np.testing.assert_allclose(c[:3, :3] @ c[:3, :3].T, np.eye(3), atol=1e-9)
        assert c[2, 0] == pytest.approx(0.0, abs=1e-9)  # no roll: image x axis is horizontal
    # the optical axis meets the plane z = lookat_height inside the look-at square, at distance d(N) * (1 +- jitter)
    t = (pos[:, 2] - cfg.lookat_height) / -axis[:, 2]
    target = pos + t[:, None] * axis
    assert (np.abs(target[:, :2]) <= cfg.lookat_half_side + 1e-9).all()
    j = cfg.camera_distance_jitter
    assert (t >= cfg.camera_distance * (1 - j) - 1e-9).all() and (t <= cfg.camera_distance * (1 + j) + 1e-9).all()
    elevation = np.rad2deg(np.arcsin(-axis[:, 2]))
    lo, hi = cfg.camera_elevation_deg
    assert elevation.min() >= lo - 1e-6 and elevation.max() <= hi + 1e-6
    assert elevation.max() - elevation.min() > 0.8 * (hi - lo)  # the whole shell is used
    assert (pos > layout5.room_min).all() and (pos < layout5.room_max).all()


def test_look_at_hand_computed():
    c2w = look_at(np.array([0.0, -2.0, 0.0]), np.array([0.0, 0.0, 0.0]))
    # looking along +y with z up: right = +x, up = +z, camera z axis (backwards) = -y
    np.testing.assert_allclose(c2w[:3, :3], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 3], [0, -2, 0])


def test_scaling_with_number_of_objects():
    """Contrastive Lift section 4: floor area proportional to N, camera distance and focal length proportional to sqrt(N).

    (The objects-per-view half of the claim is measured on rendered scenes in test_generate_render.py.)"""
    small, large = MessyRoomsConfig(num_objects=25), MessyRoomsConfig(num_objects=100)
    assert (2 * large.floor_half_side) ** 2 == pytest.approx(100 * large.floor_area_per_object)
    assert large.floor_half_side / small.floor_half_side == pytest.approx(2.0)
    assert large.camera_distance / small.camera_distance == pytest.approx(2.0)
    assert large.focal_length_px / small.focal_length_px == pytest.approx(2.0)
    assert small.camera_distance == pytest.approx(small.base_camera_distance)  # 25 is the reference count
    cams_s = sample_cameras(np.random.default_rng(0), MessyRoomsConfig(num_objects=25, num_views=64))
    cams_l = sample_cameras(np.random.default_rng(0), MessyRoomsConfig(num_objects=100, num_views=64))
    dist_s = np.linalg.norm(cams_s[:, :3, 3], axis=1).mean()
    dist_l = np.linalg.norm(cams_l[:, :3, 3], axis=1).mean()
    assert 1.7 < dist_l / dist_s < 2.3
    # N = 500 (the largest paper scene): area x20, distance and focal length x sqrt(20) against N = 25
    huge = MessyRoomsConfig(num_objects=500)
    assert (2 * huge.floor_half_side) ** 2 == pytest.approx(500 * huge.floor_area_per_object)
    assert huge.camera_distance / small.camera_distance == pytest.approx(20**0.5)
    assert huge.focal_length_px / small.focal_length_px == pytest.approx(20**0.5)
    # the room grows with the scene and still holds every sampled camera. By hand: L = sqrt(60) / 2 = 3.8730,
    # look-at half side 3.5730, d_max = 2.4 sqrt(20) * 1.12 = 12.0211; half side = 3.5730 + 12.0211 cos 30 + 0.5,
    # height = 0.05 + 12.0211 sin 65 + 0.5
    lo, hi = room_box(huge)
    np.testing.assert_allclose(lo, [-14.4836, -14.4836, 0.0], atol=1e-4)
    np.testing.assert_allclose(hi, [14.4836, 14.4836, 11.4448], atol=1e-4)
    cams_h = sample_cameras(np.random.default_rng(0), MessyRoomsConfig(num_objects=500, num_views=64))
    assert (cams_h[:, :3, 3] > lo).all() and (cams_h[:, :3, 3] < hi).all()


def test_config_dict_round_trip_and_dataset_configs_load():
    from pathlib import Path

    from lift3d.generate.config import PhysicsConfig, config_from_dict, config_to_dict, load_config

    cfg = MessyRoomsConfig(num_objects=7, camera_elevation_deg=(20.0, 50.0), physics=PhysicsConfig(max_seconds=2.0))
    back = config_from_dict(json.loads(json.dumps(config_to_dict(cfg))))
    assert back == cfg
    with pytest.raises(ValueError, match="Unknown MessyRoomsConfig fields"):
        config_from_dict({"num_object": 3})
    configs = sorted((Path(__file__).parents[1] / "datasets" / "messy_rooms" / "configs").glob("*.json"))
    loaded = {p.stem: load_config(p) for p in configs}
    assert {c.num_objects for name, c in loaded.items() if name != "demo"} == {25, 50, 100, 500}
    assert len({c.seed for c in loaded.values()}) == len(loaded)


def test_config_to_dict_ignores_fields_added_by_subclasses():
    from dataclasses import dataclass
    from pathlib import Path

    from lift3d.generate.config import config_to_dict

    @dataclass
    class WithOutput(MessyRoomsConfig):
        out: Path = Path("scenes/x")

    d = config_to_dict(WithOutput(num_objects=3))
    assert "out" not in d and d["num_objects"] == 3
    json.dumps(d)  # serialisable
