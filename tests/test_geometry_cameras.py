"""lift3d.geometry.cameras: quaternions in both component orders against hand values, rays of a 2x2 image by hand,
project(backproject(depth)) lands on the pixel it came from. Lens distortion (test_geometry_distortion.py) is held
against OpenCV."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lift3d.geometry.cameras import (
    Intrinsics,
    backproject,
    camera_rays,
    matrix_to_quat_wxyz,
    matrix_to_quat_xyzw,
    project,
    quat_wxyz_to_matrix,
    quat_xyzw_to_matrix,
    ray_length_per_z,
)

S = math.sqrt(0.5)
RZ90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
"""90 degrees about +z: x -> y, y -> -x."""
RX180 = np.diag([1.0, -1.0, -1.0])
"""180 degrees about +x."""


# ------------------------------------------------------------------------------------------------ quaternions
def test_quaternion_to_matrix_hand_values_in_both_orders():
    np.testing.assert_allclose(quat_wxyz_to_matrix([S, 0.0, 0.0, S]), RZ90, atol=1e-15)
    np.testing.assert_allclose(quat_xyzw_to_matrix([0.0, 0.0, S, S]), RZ90, atol=1e-15)
    np.testing.assert_array_equal(quat_wxyz_to_matrix([1.0, 0.0, 0.0, 0.0]), np.eye(3))
    np.testing.assert_array_equal(quat_xyzw_to_matrix([0.0, 0.0, 0.0, 1.0]), np.eye(3))
    np.testing.assert_array_equal(quat_wxyz_to_matrix([0.0, 1.0, 0.0, 0.0]), RX180)
    np.testing.assert_array_equal(quat_xyzw_to_matrix([1.0, 0.0, 0.0, 0.0]), RX180)
    # the wrong order is a different rotation: (S, 0, 0, S) read as xyzw is 90 degrees about +x
    np.testing.assert_allclose(quat_xyzw_to_matrix([S, 0.0, 0.0, S]), [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-15)


def test_quaternion_normalisation_is_optional():
    np.testing.assert_array_equal(quat_wxyz_to_matrix([0.0, 2.0, 0.0, 0.0]), RX180)  # normalised first
    # unnormalised: 1 - 2 (x^2) = 1 - 8 = -7 on the y and z diagonal
    np.testing.assert_array_equal(quat_wxyz_to_matrix([0.0, 2.0, 0.0, 0.0], normalize=False), np.diag([1.0, -7, -7]))
    np.testing.assert_array_equal(quat_xyzw_to_matrix([2.0, 0.0, 0.0, 0.0], normalize=False), np.diag([1.0, -7, -7]))


def test_matrix_to_quaternion_hand_values_and_sign_convention():
    np.testing.assert_allclose(matrix_to_quat_wxyz(RZ90), (S, 0.0, 0.0, S), atol=1e-15)
    np.testing.assert_allclose(matrix_to_quat_xyzw(RZ90), (0.0, 0.0, S, S), atol=1e-15)
    np.testing.assert_allclose(matrix_to_quat_wxyz(np.eye(3)), (1.0, 0.0, 0.0, 0.0), atol=1e-15)
    w, x, y, z = matrix_to_quat_wxyz(RX180)
    assert w == pytest.approx(0.0, abs=1e-15) and abs(x) == pytest.approx(1.0) and y == z == 0.0
    # -R(q) rotations: 270 degrees about z is q = (-S, 0, 0, S) or (S, 0, 0, -S); w >= 0 picks the second
    np.testing.assert_allclose(matrix_to_quat_wxyz(RZ90.T), (S, 0.0, 0.0, -S), atol=1e-15)


def test_matrix_quaternion_round_trips_on_random_rotations():
    rotations = Rotation.random(50, random_state=0).as_matrix()
    for R in rotations:
        q_wxyz = matrix_to_quat_wxyz(R)
        q_xyzw = matrix_to_quat_xyzw(R)
        assert q_wxyz[0] >= 0 and q_xyzw[3] >= 0
        np.testing.assert_allclose(q_wxyz, np.roll(q_xyzw, 1), atol=0)  # the same quaternion, reordered
        np.testing.assert_allclose(quat_wxyz_to_matrix(q_wxyz), R, atol=1e-12)
        np.testing.assert_allclose(quat_xyzw_to_matrix(q_xyzw), R, atol=1e-12)
        raw = matrix_to_quat_wxyz(R, w_nonnegative=False)
        assert np.allclose(raw, q_wxyz) or np.allclose(raw, -np.asarray(q_wxyz))


# ------------------------------------------------------------------------------------------------ intrinsics
def test_intrinsics_matrix_and_vector():
    k = Intrinsics(fx=2.0, fy=3.0, cx=1.0, cy=0.5, width=2, height=1)
    np.testing.assert_array_equal(k.matrix, [[2.0, 0.0, 1.0], [0.0, 3.0, 0.5], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(k.vector(), [2.0, 3.0, 1.0, 0.5])


# ------------------------------------------------------------------------------------------------ rays
def test_camera_rays_of_a_2x2_image_by_hand():
    # fx = fy = 2, cx = cy = 1: pixel centres at 0.5 and 1.5 are -0.5 and +0.5 from the principal point
    k = torch.tensor([2.0, 2.0, 1.0, 1.0])
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    uv = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])
    o, d = camera_rays(c2w, k, uv)
    np.testing.assert_array_equal(o.numpy(), [[1.0, 2.0, 3.0]] * 4)
    # d = [(u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1]: row 0 is up (+y), column 0 is left (-x)
    np.testing.assert_array_equal(
        d.numpy(), [[-0.25, 0.25, -1.0], [0.25, 0.25, -1.0], [-0.25, -0.25, -1.0], [0.25, -0.25, -1.0]]
    )


def test_ray_length_per_z_of_a_2x2_image_by_hand():
    f = ray_length_per_z(2.0, 2.0, 1.0, 1.0, 2, 2)
    np.testing.assert_allclose(f, np.full((2, 2), math.sqrt(1.0 + 0.25**2 + 0.25**2)), rtol=1e-15)


def test_backproject_agrees_with_camera_rays():
    rng = np.random.default_rng(0)
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.random(random_state=1).as_matrix()
    c2w[:3, 3] = [0.3, -1.0, 2.0]
    k = Intrinsics(fx=5.0, fy=6.0, cx=2.0, cy=1.5, width=4, height=3)
    depth = rng.uniform(0.5, 3.0, size=(3, 4))
    points, valid = backproject(depth, c2w, k)
    assert valid.all()
    v, u = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    uv = torch.from_numpy(np.stack([u.ravel(), v.ravel()], -1))
    o, d = camera_rays(torch.from_numpy(c2w), torch.from_numpy(k.vector()), uv)
    np.testing.assert_allclose(
        (o + d * torch.from_numpy(depth.ravel())[:, None]).numpy(), points.reshape(-1, 3), atol=1e-6
    )


def test_project_of_backproject_returns_the_pixels_and_depths():
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_euler("xyz", [0.3, -0.2, 1.1]).as_matrix()
    c2w[:3, 3] = [1.0, 2.0, -0.5]
    k = Intrinsics(fx=8.0, fy=9.0, cx=4.5, cy=3.5, width=9, height=7)
    depth = np.linspace(0.5, 4.0, 63).reshape(7, 9)
    depth[2, 3] = 0.0  # unknown depth: invalid, NaN point
    points, valid = backproject(depth, c2w, k)
    assert not valid[2, 3] and np.isnan(points[2, 3]).all() and valid.sum() == 62
    u, v, z, inside = project(points[valid], c2w, k, k.height, k.width)
    vv, uu = np.nonzero(valid)
    assert inside.all()
    np.testing.assert_array_equal(u, uu)
    np.testing.assert_array_equal(v, vv)
    np.testing.assert_allclose(z, depth[valid], rtol=1e-12)
    # a point behind the camera is not inside
    behind = c2w[:3, :3] @ np.array([0.0, 0.0, 1.0]) + c2w[:3, 3]
    assert not project(behind[None], c2w, k, k.height, k.width)[3][0]
