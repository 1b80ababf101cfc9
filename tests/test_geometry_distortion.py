"""Lens distortion of lift3d.geometry.cameras held against OpenCV (an independent implementation).

lift3d's pixel centres are at ``u + 0.5`` and its camera looks down -z with y up; OpenCV's pixel centres are at
integers (camera matrix ``cx - 0.5``: ``Intrinsics.opencv_matrix``) and its camera looks down +z with y down. The
tests convert between the two explicitly, so a convention slip shows as a half-pixel or a mirrored error.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lift3d.geometry.cameras import (
    Distortion,
    Intrinsics,
    UnsupportedCameraError,
    backproject,
    camera_rays,
    distort_normalized,
    pack_distortion,
    project,
    project_points,
    undistort_normalized,
)

CONVERGED = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 500, 1e-14)
"""OpenCV's iteration run to convergence (its default of 5 fixed-point steps is off by ~0.01 px here)."""
PERSPECTIVE = {
    "simple_radial": (-0.12,),
    "radial": (-0.25, 0.08),
    "opencv": (-0.25, 0.08, 0.002, -0.001),
    "full_opencv": (-0.3, 0.1, 0.003, -0.002, -0.01, 0.05, 0.01, -0.002),
}
FISHEYE = (0.08, -0.04, 0.01, -0.002)
W, H = 128, 96


def camera(model: str, params) -> Intrinsics:
    return Intrinsics(92.0, 97.0, 65.3, 47.1, W, H, distortion=Distortion(model, params))


def random_pixels(n: int, seed: int = 0) -> np.ndarray:
    """[n, 2] continuous lift3d pixel coordinates over the whole image, corners included."""
    uv = np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, 2)) * [W, H]
    return np.concatenate([uv, [[0.0, 0.0], [W, 0.0], [0.0, H], [W, H]]])


def normalised(k: Intrinsics, uv: np.ndarray) -> np.ndarray:
    return np.stack([(uv[:, 0] - k.cx) / k.fx, (uv[:, 1] - k.cy) / k.fy], axis=-1)


def opencv_pose(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rvec, tvec) of OpenCV's world-to-camera for a lift3d (OpenGL) camera-to-world."""
    r_cv = np.diag([1.0, -1.0, -1.0]) @ c2w[:3, :3].T
    return cv2.Rodrigues(r_cv)[0], -r_cv @ c2w[:3, 3]


def random_pose(seed: int) -> np.ndarray:
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    c2w[:3, 3] = [0.4, -1.2, 2.5]
    return c2w


# ------------------------------------------------------------------------------------------------ models
def test_unsupported_models_and_wrong_coefficient_counts_are_refused_clearly():
    with pytest.raises(UnsupportedCameraError, match=r"'equirectangular'.*unknown.*opencv \(k1 k2 p1 p2\).*undistort"):
        Distortion("equirectangular", ())
    with pytest.raises(UnsupportedCameraError, match=r"'opencv': takes 4 coefficients \(k1, k2, p1, p2\), got 2"):
        Distortion("opencv", (0.1, 0.2))
    with pytest.raises(UnsupportedCameraError, match="finite"):
        Distortion("radial", (0.1, float("nan")))
    d = Distortion("OPENCV", (-0.25, 0.08, 0.002, -0.001))  # COLMAP's upper-case name is accepted
    assert d.model == "opencv" and d.describe() == "opencv k1=-0.25 k2=0.08 p1=0.002 p2=-0.001"
    np.testing.assert_array_equal(pack_distortion(d), [1, -0.25, 0.08, 0.002, -0.001, 0, 0, 0, 0])
    np.testing.assert_array_equal(pack_distortion(Distortion("opencv_fisheye", FISHEYE)), [2, *FISHEYE, 0, 0, 0, 0])
    np.testing.assert_array_equal(pack_distortion(None), np.zeros(9))


def test_forward_models_by_hand():
    # one point (x, y) = (0.5, -0.2): r2 = 0.29
    xy = torch.tensor([[0.5, -0.2]], dtype=torch.float64)
    out = distort_normalized(xy, Distortion("simple_radial", (0.1,)))
    np.testing.assert_allclose(out.numpy(), [[0.5 * 1.029, -0.2 * 1.029]], rtol=1e-15)
    out = distort_normalized(xy, Distortion("opencv", (0.0, 0.0, 0.01, 0.02)))
    # x + 2 p1 x y + p2 (r2 + 2 x^2) = 0.5 - 0.002 + 0.02 * 0.79;  y + p1 (r2 + 2 y^2) + 2 p2 x y = -0.2 + 0.0037 - 0.004
    np.testing.assert_allclose(out.numpy(), [[0.5138, -0.2003]], rtol=1e-14)
    out = distort_normalized(xy, Distortion("full_opencv", (0, 0, 0, 0, 0, 0.5, 0, 0)))  # rho = 1 / (1 + 0.5 r2)
    np.testing.assert_allclose(out.numpy(), xy.numpy() / 1.145, rtol=1e-14)
    out = distort_normalized(torch.tensor([[1.0, 0.0]], dtype=torch.float64), Distortion("opencv_fisheye", (0,) * 4))
    np.testing.assert_allclose(out.numpy(), [[np.pi / 4, 0.0]], rtol=1e-15)  # theta = atan(1), r_d = theta


# ------------------------------------------------------------------------------------------------ OpenCV
@pytest.mark.parametrize("model", sorted(PERSPECTIVE))
def test_undistortion_matches_opencv_undistort_points(model):
    k = camera(model, PERSPECTIVE[model])
    uv = random_pixels(400)
    ours = undistort_normalized(torch.from_numpy(normalised(k, uv)), k.distortion).numpy()
    ref = cv2.undistortPoints(
        (uv - 0.5).reshape(-1, 1, 2), k.opencv_matrix(), k.distortion.opencv_coefficients(), criteria=CONVERGED
    ).reshape(-1, 2)
    assert np.abs(ours - ref).max() * k.fx < 1e-6  # pixels


def test_fisheye_undistortion_matches_opencv_fisheye_undistort_points():
    k = camera("opencv_fisheye", FISHEYE)
    uv = random_pixels(400)
    ours = undistort_normalized(torch.from_numpy(normalised(k, uv)), k.distortion).numpy()
    ref = cv2.fisheye.undistortPoints(
        (uv - 0.5).reshape(-1, 1, 2), k.opencv_matrix(), k.distortion.opencv_coefficients(), criteria=CONVERGED
    ).reshape(-1, 2)
    assert np.abs(ours - ref).max() * k.fx < 1e-6


@pytest.mark.parametrize("model", sorted(PERSPECTIVE) + ["opencv_fisheye"])
def test_projection_matches_opencv_project_points(model):
    k = camera(model, FISHEYE if model == "opencv_fisheye" else PERSPECTIVE[model])
    c2w = random_pose(3)
    # world points seen by the camera: camera-space directions over the image, at random depths
    rng = np.random.default_rng(1)
    d_cam = np.stack([rng.uniform(-0.6, 0.6, 300), rng.uniform(-0.45, 0.45, 300), -np.ones(300)], -1)
    pts = (d_cam * rng.uniform(0.5, 5.0, (300, 1))) @ c2w[:3, :3].T + c2w[:3, 3]
    uv, z, valid = project_points(pts, c2w, k)
    rvec, tvec = opencv_pose(c2w)
    if model == "opencv_fisheye":
        ref = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), rvec, tvec, k.opencv_matrix(), k.distortion.params)[0]
    else:
        ref = cv2.projectPoints(pts, rvec, tvec, k.opencv_matrix(), k.distortion.opencv_coefficients())[0]
    assert valid.all()
    assert np.abs(uv - 0.5 - ref.reshape(-1, 2)).max() < 1e-9
    np.testing.assert_allclose(z, -(((pts - c2w[:3, 3]) @ c2w[:3, :3])[:, 2]), rtol=1e-12)


@pytest.mark.parametrize("model", ["opencv", "full_opencv", "opencv_fisheye"])
def test_camera_rays_through_a_distorted_camera_match_opencv_and_project_back(model):
    k = camera(model, FISHEYE if model == "opencv_fisheye" else PERSPECTIVE[model])
    c2w = random_pose(5)
    v, u = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    uv = np.stack([u.ravel(), v.ravel()], -1)
    o, d = camera_rays(
        torch.from_numpy(c2w).float(), torch.from_numpy(k.vector()).float(), torch.from_numpy(uv), k.distortion
    )
    d_cam = (d.double().numpy()) @ c2w[:3, :3]  # back to camera space: [x, -y, -1]
    np.testing.assert_allclose(d_cam[:, 2], -1.0, atol=1e-6)
    undistort = cv2.fisheye.undistortPoints if model == "opencv_fisheye" else cv2.undistortPoints
    ref = undistort(
        uv.reshape(-1, 1, 2).astype(np.float64),
        k.opencv_matrix(),
        k.distortion.opencv_coefficients(),
        criteria=CONVERGED,
    ).reshape(-1, 2)
    # float32 rays: 1e-6 relative -> < 1e-3 px
    assert np.abs(d_cam[:, 0] - ref[:, 0]).max() * k.fx < 1e-3
    assert np.abs(-d_cam[:, 1] - ref[:, 1]).max() * k.fy < 1e-3
    # the point at depth 2 along each ray projects back onto the pixel centre
    uv_back, z, valid = project_points((o + 2.0 * d).double().numpy(), c2w, k)
    assert valid.all()
    assert np.abs(uv_back - (uv + 0.5)).max() < 1e-3
    np.testing.assert_allclose(z, 2.0, rtol=1e-5)


def test_backproject_then_project_returns_the_pixels_through_distortion():
    k = camera("opencv", PERSPECTIVE["opencv"])
    c2w = random_pose(7)
    depth = np.random.default_rng(2).uniform(0.5, 4.0, (H, W))
    points, valid = backproject(depth, c2w, k)
    assert valid.all()
    u, v, z, inside = project(points.reshape(-1, 3), c2w, k, H, W)
    vv, uu = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    assert inside.all()
    np.testing.assert_array_equal(u, uu.ravel())
    np.testing.assert_array_equal(v, vv.ravel())
    np.testing.assert_allclose(z, depth.ravel(), rtol=1e-12)
    # ignoring the lens model puts the corner pixels elsewhere: distortion is really applied
    pinhole = Intrinsics(k.fx, k.fy, k.cx, k.cy, W, H)
    u2, v2, _, _ = project(points.reshape(-1, 3), c2w, pinhole, H, W)
    assert np.abs(u2 - uu.ravel()).max() >= 5


def test_points_where_the_lens_model_folds_back_are_not_valid():
    # k1 = -0.25: x (1 - 0.25 x^2) peaks at x = 1.155, so a point at x = 3 would fold back onto x_d = -3.75
    k = Intrinsics(50.0, 50.0, 32.0, 32.0, 64, 64, Distortion("radial", (-0.25, 0.0)))
    pts = np.array([[3.0, 0.0, -1.0], [0.3, 0.0, -1.0]])  # camera at the origin looking down -z
    _, _, valid = project_points(pts, np.eye(4), k)
    assert valid.tolist() == [False, True]


def test_mixed_packed_distortions_per_ray_and_pinhole_rows():
    ks = [camera("opencv", PERSPECTIVE["opencv"]), camera("opencv_fisheye", FISHEYE)]
    uv = torch.tensor([[10, 20], [10, 20], [10, 20]])
    packed = torch.from_numpy(np.stack([ks[0].distortion.packed(), ks[1].distortion.packed(), np.zeros(9)]))
    intr = torch.from_numpy(ks[0].vector()).float()
    _, d = camera_rays(torch.eye(4), intr, uv, packed)
    for i, dist in enumerate([ks[0].distortion, ks[1].distortion, None]):
        _, d_one = camera_rays(torch.eye(4), intr, uv[i : i + 1], dist)
        torch.testing.assert_close(d[i : i + 1], d_one, rtol=0, atol=0)
    _, d_pin = camera_rays(torch.eye(4), intr, uv[:1])
    torch.testing.assert_close(d[2:], d_pin, rtol=0, atol=0)
    assert (d[0] - d[2]).abs().max() > 1e-2 and (d[1] - d[2]).abs().max() > 1e-2
