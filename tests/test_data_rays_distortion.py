"""PixelSet rays go through each view's lens model (training, rendering and clustering all take their rays there)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lift3d.data.loading import load_scene
from lift3d.data.rays import describe_inputs, load_pixel_set
from lift3d.geometry.cameras import Distortion, camera_rays, project_points

LENS = Distortion("opencv", (-0.25, 0.08, 0.002, -0.001))


def test_pixel_set_rays_go_through_each_views_lens_model(tiny_scene_dir):
    scene = load_scene(tiny_scene_dir)
    frames = list(scene.frames)
    frames[0] = dataclasses.replace(frames[0], distortion=LENS)  # view 0 distorted, view 1 pinhole
    scene = dataclasses.replace(scene, frames=frames)
    ps = load_pixel_set(scene, [0, 1])
    assert ps.distortion is not None and ps.distortion.shape == (2, 9)
    assert describe_inputs(ps)[0] == "cameras: opencv k1=-0.25 k2=0.08 p1=0.002 p2=-0.001 (1 view), pinhole (1 view)"
    rows = torch.cat([ps.view_rows(0), ps.view_rows(1)])
    o, d = ps.rays(rows)
    n = ps.view_rows(0).numel()
    c2w0 = torch.tensor(frames[0].camera_to_world, dtype=torch.float32)
    k0 = torch.tensor(frames[0].intrinsics(), dtype=torch.float32)
    _, d_lens = camera_rays(c2w0, k0, ps.pixel_uv[:n], LENS)
    _, d_pin = camera_rays(c2w0, k0, ps.pixel_uv[:n])
    torch.testing.assert_close(d[:n], d_lens, rtol=0, atol=0)
    assert (d[:n] - d_pin).abs().max() > 1e-3  # the lens model moved the rays
    _, d1 = camera_rays(torch.tensor(frames[1].camera_to_world, dtype=torch.float32), ps.intrinsics[1], ps.pixel_uv[n:])
    torch.testing.assert_close(d[n:], d1, rtol=0, atol=0)
    # a point on each distorted ray projects back onto its pixel centre through the frame's camera
    uv, _, valid = project_points(
        (o[:n] + 1.5 * d[:n]).double().numpy(), frames[0].camera_to_world, frames[0].camera_intrinsics
    )
    assert valid.all()
    assert np.abs(uv - (ps.pixel_uv[:n].numpy() + 0.5)).max() < 1e-3
