"""Automatic foreground box: the focus of the optical axes and the frustum counts by hand; on a camera ring looking
at a known centre over an open floor, the box holds the object and leaves out the far floor."""

from __future__ import annotations

import numpy as np
from conftest import look_at

from lift3d.geometry.bounds import BoxConfig, foreground_box, frustum_view_counts, optical_axes_focus


def test_focus_of_two_crossing_axes_is_their_intersection():
    centres = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]])
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # x axis; the line x = 1 along y: they meet at (1, 0, 0)
    np.testing.assert_allclose(optical_axes_focus(centres, axes), [1.0, 0.0, 0.0], atol=1e-12)


def test_frustum_counts_hand_values():
    c2w = np.eye(4)[None]  # camera at the origin looking down -z
    k = np.array([[10.0, 10.0, 5.0, 5.0]])
    pts = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [1.0, 0.0, -1.0], [0.4, -0.4, -1.0]])
    # u = 10 x / z + 5, v = 5 - 10 y / z with z = -p_z: (5, 5) in; behind; u = 15 out; (9, 9) in
    np.testing.assert_array_equal(frustum_view_counts(pts, c2w, k, np.array([[10, 10]])), [1, 0, 0, 1])


def _ring_capture(centre: np.ndarray, num_cameras: int = 24, size: int = 24, focal: float = 24.0):
    """Cameras on a ring (radius 4, 1.2 above the floor) looking at ``centre``; each pixel's surface point on a
    sphere (radius 0.5 at ``centre``) or on the floor z = 0 out to the horizon (no sky hit within 200 m is kept)."""
    c2ws, pts = [], []
    for i in range(num_cameras):
        a = 2 * np.pi * i / num_cameras
        pos = centre + np.array([4 * np.cos(a), 4 * np.sin(a), 0.0])
        pos[2] = 1.2
        c2w = look_at(pos, centre)
        c2ws.append(c2w)
        v, u = np.mgrid[0:size, 0:size]
        d = np.stack([(u + 0.5 - size / 2) / focal, -(v + 0.5 - size / 2) / focal, -np.ones(u.shape)], -1)
        d = d.reshape(-1, 3) @ c2w[:3, :3].T
        # sphere hit: |o + t d - c|^2 = r^2
        oc = pos - centre
        b, c = d @ oc, oc @ oc - 0.25
        a2 = (d * d).sum(1)
        disc = b * b - a2 * c
        t_sphere = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / a2, np.inf)
        t_floor = np.where(d[:, 2] < 0, -pos[2] / np.minimum(d[:, 2], -1e-12), np.inf)
        t = np.minimum(t_sphere, t_floor)
        hit = np.isfinite(t) & (t * np.linalg.norm(d, axis=1) < 200)
        pts.append(pos + t[hit, None] * d[hit])
    k = np.tile([focal, focal, size / 2, size / 2], (num_cameras, 1))
    return np.stack(c2ws), k, np.full((num_cameras, 2), size), np.concatenate(pts)


def test_box_of_a_camera_ring_holds_the_centre_and_not_the_far_floor():
    centre = np.array([1.0, -2.0, 0.5])
    c2w, k, sizes, pts = _ring_capture(centre)
    assert np.abs(pts[:, :2] - centre[:2]).max() > 30  # the cameras do see the far floor
    old_lo, old_hi = np.percentile(pts, 2, axis=0), np.percentile(pts, 98, axis=0)  # the former depth box
    assert (old_hi - old_lo)[:2].min() > 8
    found = foreground_box(c2w, k, sizes, pts, "depth")
    lo, hi = found.box
    assert (lo <= centre - 0.45).all() and (hi >= centre + [0.45, 0.45, -0.5]).all()  # the sphere (and floor below)
    assert ((hi - lo)[:2] < 6).all()  # the floor kept is the part around the object most cameras see
    far_floor = np.abs(pts[:, :2] - centre[:2]).max(1) > 6
    inside = ((pts >= lo) & (pts <= hi)).all(1)
    assert not inside[far_floor].any()
    assert found.source.startswith("depth (") and "of 24 frusta" in found.source
    assert found.describe().startswith("foreground box from depth (")


def test_sfm_points_and_camera_only_boxes():
    centre = np.array([0.0, 0.0, 0.5])
    c2w, k, sizes, pts = _ring_capture(centre)
    sparse = pts[:: max(1, len(pts) // 500)]  # a sparse cloud, as SfM gives
    found = foreground_box(c2w, k, sizes, sparse, "SfM points")
    assert found.source.startswith("SfM points (")
    assert (found.box[0] <= centre - 0.4).all() and ((found.box[1] - found.box[0])[:2] < 6).all()
    cams = foreground_box(c2w, k, sizes, None, cfg=BoxConfig(lattice_points=24))
    assert cams.source.startswith("camera frusta")
    assert (cams.box[0] < centre).all() and (cams.box[1] > centre).all()
