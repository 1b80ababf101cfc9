"""lift3d.data.rays: pixel rays follow the OpenGL convention of docs/scene-format.md; ``o + z d`` is the point at
optical-axis depth z; the pixel set holds every pixel in row-major order; depth back-projects consistently across
views; scene_bounds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import (
    MINI_H,
    MINI_INTRINSICS,
    MINI_W,
    look_at,
    make_mini_scene,
    mini_confidence_u8,
    mini_depth_mm,
    mini_instance,
    mini_semantic,
)
from scipy.spatial import cKDTree

from lift3d.data.loading import load_scene
from lift3d.data.rays import load_pixel_set, scene_bounds
from lift3d.data.scene import SceneFormatError
from lift3d.geometry.cameras import camera_rays


def rot_z(a: float) -> np.ndarray:
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


# ------------------------------------------------------------------------------------------------ camera_rays
def test_camera_rays_identity_pose_hand_values():
    c2w = torch.eye(4)
    k = torch.tensor([2.0, 2.0, 1.0, 1.0])  # fx, fy, cx, cy
    uv = torch.tensor([[0, 0], [1, 1], [1, 0], [0, 1]])
    o, d = camera_rays(c2w, k, uv)
    torch.testing.assert_close(o, torch.zeros(4, 3))
    torch.testing.assert_close(
        d, torch.tensor([[-0.25, 0.25, -1.0], [0.25, -0.25, -1.0], [0.25, 0.25, -1.0], [-0.25, -0.25, -1.0]])
    )


def test_camera_rays_rotated_and_translated_pose_hand_values():
    # Camera rotated 90 degrees about world z: camera x -> world y, camera y -> world -x; z unchanged.
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor(rot_z(np.pi / 2), dtype=torch.float32)
    c2w[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    o, d = camera_rays(c2w, torch.tensor([2.0, 4.0, 1.0, 1.0]), torch.tensor([[0, 0]]))
    # d_cam = ((0.5 - 1) / 2, -(0.5 - 1) / 4, -1) = (-0.25, 0.125, -1) -> world (-0.125, -0.25, -1)
    torch.testing.assert_close(o, torch.tensor([[1.0, 2.0, 3.0]]))
    torch.testing.assert_close(d, torch.tensor([[-0.125, -0.25, -1.0]]), atol=1e-6, rtol=0)


def test_camera_rays_batched_poses_and_intrinsics():
    c2w = torch.eye(4).repeat(2, 1, 1)
    c2w[1, :3, 3] = torch.tensor([0.0, 0.0, 5.0])
    k = torch.tensor([[2.0, 2.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    o, d = camera_rays(c2w, k, torch.tensor([[0, 0], [0, 0]]))
    torch.testing.assert_close(o, torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))
    torch.testing.assert_close(d, torch.tensor([[-0.25, 0.25, -1.0], [0.5, -0.5, -1.0]]))


def test_point_at_depth_z_is_at_optical_axis_depth_z():
    # Camera at (1, 2, 3) looking down -z; fx = fy = 10, cx = cy = 5; pixel (7, 2), depth 2:
    # d = ((7.5 - 5) / 10, -(2.5 - 5) / 10, -1) = (0.25, 0.25, -1) -> point (1.5, 2.5, 1.0).
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    o, d = camera_rays(c2w, torch.tensor([10.0, 10.0, 5.0, 5.0]), torch.tensor([[7, 2]]))
    torch.testing.assert_close(o + 2.0 * d, torch.tensor([[1.5, 2.5, 1.0]]))


def test_back_projection_then_projection_round_trip_for_a_general_pose():
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.det(q))  # a proper rotation
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3], c2w[:3, 3] = q, torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    fx, fy, cx, cy = 30.0, 25.0, 16.0, 12.0
    uv = torch.stack([torch.randint(0, 32, (50,), generator=gen), torch.randint(0, 24, (50,), generator=gen)], -1)
    z = 0.5 + 3.0 * torch.rand(50, generator=gen, dtype=torch.float64)
    o, d = camera_rays(c2w, torch.tensor([fx, fy, cx, cy], dtype=torch.float64), uv)
    p = o + z[:, None] * d
    cam = (p - c2w[:3, 3]) @ c2w[:3, :3]  # world -> camera: R^T (p - t)
    torch.testing.assert_close(-cam[:, 2], z)  # optical-axis depth
    torch.testing.assert_close(cam[:, 0] / -cam[:, 2] * fx + cx, uv[:, 0].double() + 0.5)
    torch.testing.assert_close(-cam[:, 1] / -cam[:, 2] * fy + cy, uv[:, 1].double() + 0.5)


# ------------------------------------------------------------------------------------------------ pixel sets
def test_load_pixel_set_shapes_order_and_values(tmp_path):
    make_mini_scene(tmp_path, num_frames=3)
    scene = load_scene(tmp_path)
    ps = load_pixel_set(scene, [2, 0])
    n = MINI_H * MINI_W
    assert ps.num_views == 2 and ps.view_ids == [2, 0] and ps.sizes == [(MINI_H, MINI_W)] * 2
    assert ps.offsets.tolist() == [0, n, 2 * n]
    assert ps.c2w.shape == (2, 4, 4) and ps.intrinsics.shape == (2, 4)
    assert ps.rgb.shape == (2 * n, 3) and ps.pixel_uv.shape == (2 * n, 2)
    for t in (ps.instance, ps.semantic, ps.confidence, ps.depth, ps.pixel_view):
        assert t.shape == (2 * n,)
    assert ps.instance.dtype == ps.semantic.dtype == ps.pixel_view.dtype == torch.long
    assert ps.gt_instance is None and ps.gt_semantic is None
    # Row-major: row r of a view is pixel (u, v) = (r % W, r // W).
    r = torch.arange(n)
    torch.testing.assert_close(ps.pixel_uv[:n], torch.stack([r % MINI_W, r // MINI_W], -1))
    assert ps.pixel_view.tolist() == [0] * n + [1] * n
    torch.testing.assert_close(ps.view_rows(1), torch.arange(n, 2 * n))
    for pos, idx in enumerate([2, 0]):
        rows = ps.view_rows(pos)
        np.testing.assert_array_equal(ps.instance[rows].numpy(), mini_instance(idx).reshape(-1))
        np.testing.assert_array_equal(ps.semantic[rows].numpy(), mini_semantic(idx).reshape(-1))
        np.testing.assert_allclose(ps.depth[rows].numpy(), mini_depth_mm(idx).reshape(-1) / 1000.0, rtol=1e-6)
        np.testing.assert_allclose(ps.confidence[rows].numpy(), mini_confidence_u8(idx).reshape(-1) / 255.0, rtol=1e-6)
    torch.testing.assert_close(ps.c2w[0, :3, 3], torch.tensor([2.0, 0.0, 3.0]))


def test_pixel_set_without_depth_or_confidence(tmp_path):
    make_mini_scene(tmp_path, num_frames=2, depth=False, confidence=False)
    ps = load_pixel_set(load_scene(tmp_path), [0, 1])
    assert ps.depth is None
    torch.testing.assert_close(ps.confidence, torch.ones(2 * MINI_H * MINI_W))


def test_centre_pixel_ray_points_along_minus_z_of_its_pose(tmp_path):
    poses = [
        look_at([2.0, -1.0, 1.5], [0.0, 0.0, 0.0]),
        look_at([-1.0, 2.0, 0.5], [0.3, 0.1, 0.0]),
        look_at([0.0, -3.0, 2.0], [0.0, 0.0, 0.2]),
    ]
    make_mini_scene(tmp_path, num_frames=3, poses=poses)
    ps = load_pixel_set(load_scene(tmp_path), [0, 1, 2])
    # cx = 2.5, cy = 1.5 is the centre of pixel (2, 1): that ray is the optical axis.
    assert (MINI_INTRINSICS["cx"], MINI_INTRINSICS["cy"]) == (2.5, 1.5)
    for pos, pose in enumerate(poses):
        row = ps.view_rows(pos)[1 * MINI_W + 2]
        o, d = ps.rays(row[None])
        torch.testing.assert_close(o[0], torch.tensor(pose[:3, 3], dtype=torch.float32))
        torch.testing.assert_close(d[0], -torch.tensor(pose[:3, 2], dtype=torch.float32), atol=1e-6, rtol=0)


def test_generated_scene_centre_rays_point_along_minus_z(tiny_scene):
    ps = load_pixel_set(tiny_scene, [0, 5])
    for pos, idx in enumerate([0, 5]):
        f = tiny_scene.frames[idx]
        assert (f.cx, f.cy) == (16.0, 16.0)
        # Pixels (15, 15) and (16, 16) straddle the principal point symmetrically: their mean is the axis.
        rows = ps.view_rows(pos)[torch.tensor([15 * 32 + 15, 16 * 32 + 16])]
        _, d = ps.rays(rows)
        torch.testing.assert_close(
            d.mean(0), -torch.tensor(f.camera_to_world[:3, 2], dtype=torch.float32), atol=1e-6, rtol=0
        )


def _world_points(ps, pos):
    rows = ps.view_rows(pos)
    o, d = ps.rays(rows)
    return (o + d * ps.depth[rows, None]).numpy(), ps.gt_instance[rows].numpy(), ps.depth[rows].numpy()


def test_depth_of_the_same_instance_back_projects_to_the_same_place_from_two_views(tiny_scene):
    ps = load_pixel_set(tiny_scene, list(range(8)), with_ground_truth=True)
    assert ps.gt_instance is not None and ps.depth is not None
    pts = [_world_points(ps, v) for v in range(8)]
    checked = 0
    for a in range(8):
        for b in range(a + 1, 8):
            (pa, ia, _), (pb, ib, _) = pts[a], pts[b]
            for k in np.unique(ia[ia > 0]):
                A, B = pa[ia == k], pb[ib == k]
                if len(A) < 10 or len(B) < 10:
                    continue
                same = np.median(cKDTree(B).query(A)[0])
                assert same < 0.05, (a, b, k, same)  # ~1 pixel footprint at 32 px
                others = pb[(ib > 0) & (ib != k)]
                if len(others) >= 10:
                    assert same < np.median(cKDTree(others).query(A)[0]), (a, b, k)
                checked += 1
    assert checked >= 20


def test_scene_bounds_returns_the_scene_aabb(tiny_scene):
    ps = load_pixel_set(tiny_scene, [0, 1])
    np.testing.assert_array_equal(scene_bounds(tiny_scene, ps), tiny_scene.aabb)
    np.testing.assert_array_equal(scene_bounds(tiny_scene), tiny_scene.aabb)


def test_scene_bounds_from_depth_boxes_the_points_most_cameras_see(tiny_scene):
    scene = dataclasses.replace(tiny_scene, aabb=None)
    ps = load_pixel_set(scene, list(range(8)))
    lines = []
    box = scene_bounds(scene, ps, log=lines.append)
    assert box.shape == (2, 3) and (box[1] > box[0]).all()
    assert len(lines) == 1 and lines[0].startswith("foreground box from depth (")
    # Back-projection and frustum test written independently of lift3d (docs/scene-format.md).
    pts = []
    for f in scene.frames:
        from lift3d.data.loading import load_frame

        depth = load_frame(scene, f.index).depth
        v, u = np.mgrid[0 : f.height, 0 : f.width]
        d = np.stack([(u + 0.5 - f.cx) / f.fx, -(v + 0.5 - f.cy) / f.fy, -np.ones(u.shape)], -1)
        p = (d * depth[..., None]) @ f.camera_to_world[:3, :3].T + f.camera_to_world[:3, 3]
        pts.append(p[depth > 0])
    pts = np.concatenate(pts)
    seen = np.zeros(len(pts), int)
    for f in scene.frames:
        q = (pts - f.camera_to_world[:3, 3]) @ f.camera_to_world[:3, :3]
        z = -q[:, 2]
        u, v = f.fx * q[:, 0] / z + f.cx, f.cy - f.fy * q[:, 1] / z
        seen += (z > 0) & (u >= 0) & (u < f.width) & (v >= 0) & (v < f.height)
    common = pts[seen >= np.ceil(0.3 * len(scene.frames))]
    inside = ((common >= box[0]) & (common <= box[1])).all(-1).mean()
    assert inside >= 0.95
    full_lo, full_hi = pts.min(0), pts.max(0)  # never larger than every point plus the margin
    pad = 0.1 * (full_hi - full_lo).max() + 1e-3
    assert (box[0] >= full_lo - pad - 1e-6).all() and (box[1] <= full_hi + pad + 1e-6).all()


def test_scene_bounds_override_wins_and_bad_override_is_a_user_error(tiny_scene):
    from lift3d.geometry.bounds import BoundsError

    lines = []
    box = scene_bounds(tiny_scene, override=(0, 1, 2, 3, 4, 5), log=lines.append)
    np.testing.assert_array_equal(box, [[0, 1, 2], [3, 4, 5]])
    assert lines == ["foreground box from --model.aabb: [0. 1. 2.] .. [3. 4. 5.]"]
    with pytest.raises(BoundsError, match="min < max"):
        scene_bounds(tiny_scene, override=(0, 0, 0, 1, -1, 1))


def test_scene_bounds_from_cameras_contains_the_common_look_at_point(tmp_path):
    target = np.array([0.5, -0.2, 0.3])
    dirs = [np.array(v, float) / np.linalg.norm(v) for v in ([1, 0, 0.5], [0, 1, 0.5], [-1, 0, 0.5], [0, -1, 0.8])]
    poses = [look_at(target + 2.0 * v, target) for v in dirs]
    make_mini_scene(tmp_path, num_frames=4, depth=False, poses=poses)
    scene = load_scene(tmp_path)
    assert scene.aabb is None
    lines = []
    box = scene_bounds(scene, log=lines.append)  # no pixels, no depth: cameras only
    assert lines[0].startswith("foreground box from camera frusta")
    assert (box[0] < target).all() and (box[1] > target).all()
    # Inside the cube of the cameras' distance (2) around the target plus the 10% margin, and not degenerate.
    assert (box[0] >= target - 2.401).all() and (box[1] <= target + 2.401).all()
    assert ((box[1] - box[0]) > 0.1).all()


def test_scene_bounds_from_sfm_points_in_extras_array_or_npy(tmp_path):
    target = np.array([0.5, -0.2, 0.3])
    dirs = [np.array(v, float) / np.linalg.norm(v) for v in ([1, 0, 0.5], [0, 1, 0.5], [-1, 0, 0.5], [0, -1, 0.8])]
    make_mini_scene(tmp_path, num_frames=4, depth=False, poses=[look_at(target + 2.0 * v, target) for v in dirs])
    scene = load_scene(tmp_path)
    rng = np.random.default_rng(0)
    cloud = target + rng.uniform(-0.2, 0.2, (200, 3))
    far = np.array([[40.0, 0.0, 0.0], [0.0, -60.0, 0.0]])  # points no camera sees: never in the box
    for value in (np.concatenate([cloud, far]), "sparse.npy"):
        np.save(tmp_path / "sparse.npy", np.concatenate([cloud, far]))
        scene.extras["sfm_points"] = value
        lines = []
        box = scene_bounds(scene, log=lines.append)
        assert lines[0].startswith("foreground box from SfM points (")
        assert (box[0] <= cloud.min(0) + 0.05).all() and (box[1] >= cloud.max(0) - 0.05).all()
        assert (box[1] - box[0]).max() < 1.0
    scene.extras["sfm_points"] = np.zeros((5, 2))
    with pytest.raises(SceneFormatError, match="sfm_points"):
        scene_bounds(scene)
