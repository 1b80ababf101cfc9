"""LiDAR spherical projection and flow from depth and poses, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from lift3d.geometry.flow import flow_from_depth, sample_inverse_depth, warp_nearest
from lift3d.geometry.lidar import LidarSensor, spherical_projection

SMALL = LidarSensor(beams=5, vertical_fov_deg=(-20.0, 20.0), columns=8, max_range_m=10.0)
"""Beams every 10 degrees from +20 (row 0) to -20 (row 4); columns every 45 degrees."""


def direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def test_range_image_cells_of_known_points():
    # column = floor((180 - az) / 360 * 8) mod 8, row = round((20 - el) / 40 * 4)
    points = np.stack(
        [
            2.0 * direction(0, 0),  # ahead: column 4, row 2
            2.5 * direction(100, 10),  # column floor(80 / 45) = 1, row 1
            3.0 * direction(-170, -20),  # column floor(350 / 45) = 7, row 4
            1.5 * direction(180, 20),  # behind: column 0, row 0
        ]
    )
    ri = spherical_projection(points, np.array([1, 2, 3, 4]), np.array([1, 1, 0, 1]), SMALL)
    expected_range = np.zeros((5, 8), np.float32)
    expected_range[2, 4], expected_range[1, 1], expected_range[4, 7], expected_range[0, 0] = 2.0, 2.5, 3.0, 1.5
    np.testing.assert_allclose(ri.range, expected_range, atol=1e-6)
    assert ri.instance[2, 4] == 1 and ri.instance[1, 1] == 2 and ri.instance[4, 7] == 3 and ri.instance[0, 0] == 4
    assert ri.semantic[4, 7] == 0 and ri.semantic[2, 4] == 1
    assert (ri.instance > 0).sum() == 4 and ri.point_index[1, 1] == 1 and ri.point_index[3, 3] == -1


def test_default_sensor_cells_by_hand():
    sensor = LidarSensor()  # 32 beams over [-25, 15], 900 columns
    row, col, rng = sensor.cells(np.array([[2.0, 0, 0], [0, 3.0, 0], [0, -1.0, 0], [-1.0, 0, 0]]))
    assert col.tolist() == [450, 225, 675, 0]
    assert row.tolist() == [12, 12, 12, 12]  # round(15 / 40 * 31) = round(11.625)
    np.testing.assert_allclose(rng, [2, 3, 1, 1])
    assert sensor.horizontal_resolution_deg == pytest.approx(0.4)


def test_nearest_return_wins_and_out_of_view_is_dropped():
    points = np.stack([4.0 * direction(0, 0), 1.0 * direction(-1, 1), 2.0 * direction(0, 45), 20 * direction(90, 0)])
    ri = spherical_projection(points, np.array([7, 8, 9, 10]), np.array([1, 1, 1, 1]), SMALL)
    assert ri.range[2, 4] == pytest.approx(1.0) and ri.instance[2, 4] == 8  # both in cell (2, 4): the nearer wins
    assert (ri.range > 0).sum() == 1  # 45 degrees up is outside [-20, 20]; 20 m is beyond max_range_m


def test_sensor_rays_fall_in_their_own_cells():
    sensor = LidarSensor(beams=16, vertical_fov_deg=(-25.0, 15.0), columns=180)
    rays = sensor.ray_directions()
    row, col, rng = sensor.cells(3.0 * rays.reshape(-1, 3))
    assert (row.reshape(16, 180) == np.arange(16)[:, None]).all()
    assert (col.reshape(16, 180) == np.arange(180)[None, :]).all()
    np.testing.assert_allclose(rng, 3.0)


def identity_pose(x: float = 0.0, z: float = 0.0) -> np.ndarray:
    pose = np.eye(4)
    pose[0, 3], pose[2, 3] = x, z
    return pose


K = (10.0, 10.0, 4.0, 4.0)  # fx, fy, cx, cy of an 8 x 8 image


def test_flow_of_a_sideways_step_by_hand():
    """Plane at depth 2, camera steps 0.2 m right: every point moves fx * 0.2 / 2 = 1 pixel left; column 0 leaves."""
    depth = np.full((8, 8), 2.0)
    flow, valid = flow_from_depth(depth, identity_pose(), identity_pose(x=0.2), K, next_depth=depth)
    np.testing.assert_allclose(flow[..., 0], -1.0, atol=1e-6)
    np.testing.assert_allclose(flow[..., 1], 0.0, atol=1e-6)
    assert not valid[:, 0].any() and valid[:, 1:].all()


def test_flow_occlusion_by_a_nearer_surface_in_the_next_frame():
    """The next frame sees an occluder (depth 1) in columns 4-5: the points landing there (source columns 5, 6)
    are occluded; their neighbours land exactly on pixel centres of the plane and stay valid."""
    depth = np.full((8, 8), 2.0)
    next_depth = depth.copy()
    next_depth[:, 4:6] = 1.0
    _, valid = flow_from_depth(depth, identity_pose(), identity_pose(x=0.2), K, next_depth=next_depth)
    assert valid[:, [1, 2, 3, 4, 7]].all() and not valid[:, [0, 5, 6]].any()


def test_flow_of_a_forward_step_by_hand():
    """Camera moves 0.5 m forward towards the plane at depth 2: image points scale about the centre by 2 / 1.5."""
    depth = np.full((8, 8), 2.0)
    flow, valid = flow_from_depth(depth, identity_pose(), identity_pose(z=-0.5), K, next_depth=np.full((8, 8), 1.5))
    # pixel u = 5: x = 5.5, x' = 4 + 1.5 * 4 / 3 = 6; pixel row 2: y = 2.5, y' = 4 - 1.5 * 4 / 3 = 2
    assert flow[2, 5, 0] == pytest.approx(0.5) and flow[2, 5, 1] == pytest.approx(-0.5)
    assert valid[2, 5] and not valid[2, 7]  # u = 7: x' = 4 + 3.5 * 4 / 3 = 8.67 leaves the image


def test_inverse_depth_interpolation_is_exact_on_a_tilted_plane():
    """Plane z = 2 / (1 - 0.3 (x - cx) / fx): inverse depth is affine in x, so bilinear interpolation of 1 / z is
    exact anywhere between pixel centres."""
    fx, cx = K[0], K[2]
    xs = np.arange(8) + 0.5
    depth = np.tile(2.0 / (1.0 - 0.3 * (xs - cx) / fx), (8, 1))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0.5, 7.5, 50), rng.uniform(0.5, 7.5, 50)
    np.testing.assert_allclose(sample_inverse_depth(depth, x, y), 2.0 / (1.0 - 0.3 * (x - cx) / fx), rtol=1e-12)


def test_warp_nearest_follows_the_flow():
    image = np.arange(64).reshape(8, 8)
    flow = np.zeros((8, 8, 2), np.float32)
    flow[..., 0] = -1.0
    warped = warp_nearest(image, flow)
    assert (warped[:, 1:] == image[:, :-1]).all()
