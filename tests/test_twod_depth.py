"""Self-supervised depth: the warp, Monodepth2's losses, and that the reprojection loss is smallest at the true depth
on an exactly rendered pair (two textured planes seen from three cameras, OpenGL axes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lift3d.losses.reprojection import edge_aware_smoothness, min_reprojection_loss, photometric_error, ssim
from lift3d.twod.depth import (
    DepthLossConfig,
    DepthNetwork,
    PoseNetwork,
    axis_angle_to_matrix,
    inverse_warp,
    relative_pose,
    self_supervised_depth_loss,
    sigmoid_to_depth,
)

H = W = 48
FX = FY = 40.0
CX, CY = W / 2, H / 2


def _texture(x: np.ndarray, y: np.ndarray, plane: int) -> np.ndarray:
    """Smooth colour pattern on a plane (world x, y)."""
    k = 2.0 if plane == 0 else 3.5
    return np.stack(
        [
            0.5 + 0.3 * np.sin(k * x) * np.cos(1.3 * k * y),
            0.5 + 0.3 * np.cos(0.7 * k * x + 1.0),
            0.5 + 0.3 * np.sin(1.1 * k * y + 0.5 * plane),
        ],
        0,
    )


def _render(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast a wall at z = -6 and a card (|x| < 0.7, |y| < 0.5) at z = -3: ``(rgb [3, H, W], depth [H, W])``."""
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    d = np.stack([(u - CX) / FX, -(v - CY) / FY, -np.ones_like(u)], -1) @ c2w[:3, :3].T
    o = c2w[:3, 3]
    rgb, depth = np.zeros((3, H, W)), np.zeros((H, W))
    t_card = (-3.0 - o[2]) / d[..., 2]
    xc, yc = o[0] + t_card * d[..., 0], o[1] + t_card * d[..., 1]
    card = (np.abs(xc) < 0.7) & (np.abs(yc) < 0.5) & (t_card > 0)
    t_wall = (-6.0 - o[2]) / d[..., 2]
    xw, yw = o[0] + t_wall * d[..., 0], o[1] + t_wall * d[..., 1]
    rgb = np.where(card[None], _texture(xc, yc, 1), _texture(xw, yw, 0))
    p = np.stack([d[..., 0] * np.where(card, t_card, t_wall), d[..., 1], d[..., 2] * np.where(card, t_card, t_wall)])
    cam_z = -(np.moveaxis(p, 0, -1) @ c2w[:3, :3])[..., 2]  # optical-axis depth
    depth = cam_z
    return rgb.astype(np.float32), depth.astype(np.float32)


def _pose(tx: float, yaw_deg: float = 0.0) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    m[0, 3] = tx
    return m


@pytest.fixture(scope="module")
def triplet():
    poses = [_pose(0.0), _pose(-0.25, 2.0), _pose(0.25, -2.0)]
    renders = [_render(p) for p in poses]
    images = torch.tensor(np.stack([r[0] for r in renders]))[:, None]  # [3, B=1, 3, H, W]
    depth = torch.tensor(renders[0][1])[None, None]
    c2w = torch.tensor(np.stack(poses), dtype=torch.float32)
    rel = torch.stack([relative_pose(c2w[0], c2w[s]) for s in (1, 2)])[:, None]  # [S, 1, 4, 4]
    k = torch.tensor([[FX, FY, CX, CY]])
    return images, depth, rel, k


def test_rendered_depth_is_the_two_planes(triplet):
    _, depth, _, _ = triplet
    assert set(np.round(depth.unique().numpy(), 4).tolist()) == {3.0, 6.0}


def test_identity_warp_returns_the_source_and_true_depth_warps_onto_the_target(triplet):
    images, depth, rel, k = triplet
    same, valid = inverse_warp(images[1], depth, k, torch.eye(4)[None])
    assert torch.allclose(same, images[1], atol=1e-5) and bool(valid.all())
    warped, valid = inverse_warp(images[1], depth, k, rel[0])
    err = (warped - images[0]).abs().mean(1)[0]
    # where the source sees the same surface point (wall and card interiors away from the card's edges)
    edge = torch.nn.functional.max_pool2d((depth[0] != 6.0).float(), 9, 1, 4)[0] - (
        -torch.nn.functional.max_pool2d(-(depth[0] != 6.0).float(), 9, 1, 4)[0]
    )
    inner = valid[0] & (edge[0] == 0)
    assert float(err[inner].mean()) < 0.01 and float((images[1] - images[0]).abs().mean()) > 0.05


def test_reprojection_loss_is_smallest_at_the_true_depth(triplet):
    images, depth, rel, k = triplet
    cfg = DepthLossConfig(smoothness_weight=0.0)
    torch.manual_seed(0)
    losses = {}
    for scale in (0.7, 0.85, 0.95, 1.0, 1.05, 1.15, 1.4):
        d = depth * scale
        losses[scale] = self_supervised_depth_loss(1 / d, d, images[0], images[1:], rel, k, cfg)[1]["reprojection"]
    flat = torch.full_like(depth, 4.5)
    flat_loss = self_supervised_depth_loss(1 / flat, flat, images[0], images[1:], rel, k, cfg)[1]["reprojection"]
    assert min(losses, key=losses.get) == 1.0, losses
    assert losses[1.0] < 0.5 * min(losses[0.7], losses[1.4]) and losses[1.0] < 0.5 * flat_loss


def test_per_pixel_minimum_beats_the_average_at_occlusions(triplet):
    images, depth, rel, k = triplet
    errs = torch.stack(
        [photometric_error(images[0], inverse_warp(images[s + 1], depth, k, rel[s])[0]) for s in range(2)]
    )
    minimum, _ = min_reprojection_loss(errs)
    assert float(minimum) < float(errs.mean())  # the card hides different wall strips from the two sources


def test_automask_drops_pixels_the_unwarped_source_explains():
    errors = torch.full((1, 1, 8, 8), 0.2)
    identity = torch.full((1, 1, 8, 8), 0.5)
    identity[..., :4] = 0.1  # static pixels: unwarped source is better
    loss, mask = min_reprojection_loss(errors, identity)
    assert mask[0, :, :4].sum() == 0 and bool(mask[0, :, 4:].all())
    assert float(loss) == pytest.approx(0.2 * 0.5)


def test_photometric_error_and_ssim_by_hand():
    a = torch.full((1, 3, 5, 5), 0.5)
    assert torch.allclose(ssim(a, a), torch.ones_like(a))
    # constant images: SSIM = (2 μa μb + C1) / (μa² + μb² + C1); L1 = 0.2
    b = torch.full((1, 3, 5, 5), 0.3)
    c1 = 0.01**2
    s = (2 * 0.5 * 0.3 + c1) / (0.25 + 0.09 + c1)
    expected = 0.85 * (1 - s) / 2 + 0.15 * 0.2
    assert torch.allclose(photometric_error(a, b), torch.full((1, 5, 5), expected), atol=1e-4)  # E[x²] - μ² in float32


def test_smoothness_by_hand():
    # disparity (1, 3) per row: mean 2 -> d* = (0.5, 1.5), |∂x d*| = 1, |∂y d*| = 0; image step 0.5 -> weight e^-0.5
    disp = torch.tensor([[[[1.0, 3.0], [1.0, 3.0]]]])
    img = torch.zeros(1, 3, 2, 2)
    img[..., 1] = 0.5
    assert float(edge_aware_smoothness(disp, img)) == pytest.approx(np.exp(-0.5))
    assert float(edge_aware_smoothness(torch.ones(1, 1, 4, 4), torch.rand(1, 3, 4, 4))) == 0.0


def test_pose_helpers():
    r = np.array([[0.3, -0.2, 0.1]])
    m = axis_angle_to_matrix(torch.tensor(r), torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64))
    assert np.allclose(m[0, :3, :3].numpy(), Rotation.from_rotvec(r[0]).as_matrix(), atol=1e-9)
    assert m[0, :3, 3].tolist() == [1.0, 2.0, 3.0]
    torch.manual_seed(0)
    t = PoseNetwork()(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert t.shape == (2, 4, 4) and torch.allclose(t[:, :3, :3] @ t[:, :3, :3].transpose(1, 2), torch.eye(3), atol=1e-5)
    assert float((t.detach() - torch.eye(4)).abs().max()) < 0.05  # starts near the identity motion


def test_depth_network_output_range():
    disp, depth = sigmoid_to_depth(torch.tensor([0.0, 1.0]), 0.1, 20.0)
    assert depth.tolist() == pytest.approx([20.0, 0.1])
    net = DepthNetwork(min_depth=0.5, max_depth=10.0)
    _, d = net(torch.rand(1, 3, 32, 32))
    assert d.shape == (1, 1, 32, 32) and float(d.min()) >= 0.5 and float(d.max()) <= 10.0
