"""Positives of the cross-modal method: LiDAR points paired with the pixels they project to (a hand-built rig),
labels carried along the flow, boundary flags and even sampling over instances."""

from __future__ import annotations

import numpy as np
import torch

from lift3d.twod.correspondence import (
    boundary_mask,
    pixel_labels_of_points,
    project_lidar_points,
    sample_evenly,
    warp_labels_with_flow,
)

# LiDAR axes x forward, y left, z up; camera axes x right, y up, looking down -z; the LiDAR sits 0.1 above the camera
LIDAR_TO_CAMERA = np.array(
    [
        [0.0, -1.0, 0.0, 0.0],  # x_cam = -y_lidar
        [0.0, 0.0, 1.0, 0.1],  # y_cam = z_lidar + 0.1
        [-1.0, 0.0, 0.0, 0.0],  # z_cam = -x_lidar
        [0.0, 0.0, 0.0, 1.0],
    ]
)
K = (10.0, 10.0, 8.0, 8.0)  # fx, fy, cx, cy of a 16 x 16 image


def test_projection_of_lidar_points_by_hand():
    points = np.array(
        [
            [2.0, 0.0, -0.1],  # on the optical axis at depth 2 -> (u, v) = (8, 8)
            [2.0, -0.4, 0.3],  # camera (0.4, 0.4, -2): u = 10 * 0.4 / 2 + 8 = 10, v = 8 - 10 * 0.4 / 2 = 6
            [-1.0, 0.0, 0.0],  # behind the camera
            [1.0, 5.0, 0.0],  # far left: u = -50 + 8 < 0
        ]
    )
    u, v, z, inside = project_lidar_points(points, LIDAR_TO_CAMERA, K, 16, 16)
    assert inside.tolist() == [True, True, False, False]
    assert (u[:2].tolist(), v[:2].tolist()) == ([8, 10], [8, 6])
    np.testing.assert_allclose(z[:2], [2.0, 2.0])


def test_points_take_the_label_of_their_pixel_unless_hidden():
    labels = np.full((16, 16), 4, np.int64)
    labels[6, 10] = 9
    points = np.array([[2.0, 0.0, -0.1], [2.0, -0.4, 0.3], [-1.0, 0.0, 0.0]])
    u, v, z, inside = project_lidar_points(points, LIDAR_TO_CAMERA, K, 16, 16)
    pixel, label = pixel_labels_of_points(labels, u, v, z, inside)
    assert pixel.tolist() == [8 * 16 + 8, 6 * 16 + 10, -1]
    assert label.tolist() == [4, 9, -1]
    depth = np.full((16, 16), 5.0)
    depth[8, 8] = 1.0  # something 1 m away hides the first point (depth 2) from the camera
    pixel, label = pixel_labels_of_points(labels, u, v, z, inside, camera_depth=depth)
    assert label.tolist() == [-1, 9, -1]


def test_labels_carried_along_the_flow():
    labels = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3], [3, 3, 3, -1]])
    flow = torch.zeros(4, 4, 2)
    flow[..., 0] = 1.0  # everything moves one pixel right
    valid = torch.ones(4, 4, dtype=torch.bool)
    valid[2, 1] = False  # occluded at t + 1
    out = warp_labels_with_flow(labels, flow, valid)
    expected = torch.tensor([[-1, 1, 1, 2], [-1, 1, 1, 2], [-1, 3, -1, 3], [-1, 3, 3, 3]])
    assert torch.equal(out, expected)


def test_colliding_labels_are_invalid_and_agreeing_ones_kept():
    labels = torch.tensor([[1, 2, 5, 5]])
    flow = torch.zeros(1, 4, 2)
    flow[0, 1, 0] = -1.0  # pixel 1 (id 2) lands on pixel 0 (id 1): conflict
    flow[0, 3, 0] = -1.0  # pixel 3 (id 5) lands on pixel 2 (id 5): agree
    flow[0, 2, 0] = 0.4  # sub-pixel motion rounds to the same pixel
    out = warp_labels_with_flow(labels, flow)
    assert out.tolist() == [[-1, -1, 5, -1]]


def test_boundary_mask_and_even_sampling():
    labels = torch.zeros(6, 6, dtype=torch.int64)
    labels[:, 3:] = 1
    b = boundary_mask(labels, 1)
    assert torch.equal(b.any(0), torch.tensor([False, False, True, True, False, False]))
    assert bool(b[:, 2:4].all())

    big = torch.full((20, 20), -1, dtype=torch.int64)
    big[:10, :10] = 0  # 100 px
    big[15:17, 15:20] = 1  # 10 px
    near = boundary_mask(big, 1) & (big >= 0)
    idx = sample_evenly(big, 40, torch.Generator().manual_seed(0), near, boundary_fraction=0.5)
    assert len(set(idx.tolist())) == len(idx)  # no position twice
    picked = big.reshape(-1)[idx]
    assert int((picked == 0).sum()) == 20 and int((picked == 1).sum()) == 10  # even share; the small one gives all
    assert int(near.reshape(-1)[idx][picked == 0].sum()) == 10  # half of instance 0 near its boundary
    assert bool((picked >= 0).all())
