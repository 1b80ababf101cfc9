"""viser cameras (OpenCV axes) against lift3d's (OpenGL axes), with values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lift3d.geometry.cameras import camera_rays, project
from lift3d.viewer.camera import c2w_to_viser, pinhole_from_fov, render_size, viser_to_c2w
from lift3d.viewer.render import CameraView


def test_identity_viser_camera_looks_down_world_plus_z():
    c2w = viser_to_c2w((1.0, 0.0, 0.0, 0.0), (1.0, 2.0, 3.0))
    # OpenCV +z forward = world +z, so the OpenGL camera's -z axis is world +z; OpenCV +y down = OpenGL -y
    np.testing.assert_allclose(c2w[:3, :3], np.diag([1.0, -1.0, -1.0]))
    np.testing.assert_allclose(c2w[:3, 3], [1.0, 2.0, 3.0])
    # a point 5 m straight ahead of it projects to the principal point
    u, v, z, inside = project(np.array([[1.0, 2.0, 8.0]]), c2w, (10.0, 10.0, 8.0, 6.0), 12, 16)
    assert (u[0], v[0], z[0], inside[0]) == (8, 6, pytest.approx(5.0), True)


def test_viser_pose_round_trip():
    a = math.radians(40)
    wxyz = np.array([math.cos(a / 2), 0.0, math.sin(a / 2), 0.0])
    c2w = viser_to_c2w(wxyz, (0.5, -1.0, 2.0))
    wxyz2, pos2 = c2w_to_viser(c2w)
    np.testing.assert_allclose(np.abs(np.dot(wxyz, wxyz2)), 1.0, atol=1e-12)
    np.testing.assert_allclose(pos2, [0.5, -1.0, 2.0])


def test_pinhole_from_vertical_fov():
    assert pinhole_from_fov(math.pi / 2, 200, 100) == pytest.approx((50.0, 50.0, 100.0, 50.0))
    assert render_size(1.6, 128) == (205, 128)


def test_camera_view_rays_are_lift3d_rays():
    c2w = viser_to_c2w((math.cos(0.3), math.sin(0.3), 0.0, 0.0), (0.0, 0.0, 1.0))
    cam = CameraView(c2w, 20.0, 20.0, 8.0, 6.0, 16, 12)
    o, d = cam.rays(stride=4)
    uv = torch.tensor([[u, v] for v in range(0, 12, 4) for u in range(0, 16, 4)])
    o2, d2 = camera_rays(torch.tensor(c2w, dtype=torch.float32), torch.tensor([20.0, 20.0, 8.0, 6.0]), uv)
    torch.testing.assert_close(o, o2)
    torch.testing.assert_close(d, d2)
