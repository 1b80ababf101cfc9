"""The generator's open_floor environment: an unbounded floor plane under the sky (depth 0 = unknown, background
ids), the floor's depth as the analytic plane intersection; the kubric backend refuses it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import look_at

from lift3d.generate.config import MessyRoomsConfig
from lift3d.generate.fast_backend import pixel_rays, render_views
from lift3d.generate.layout import make_layout


@pytest.fixture(scope="module")
def horizon_view():
    cfg = MessyRoomsConfig(num_objects=2, num_views=2, resolution=16, environment="open_floor", seed=0)
    cfg.rgb_supersampling = 1
    layout = make_layout(cfg)
    c2w = look_at(np.array([0.0, -30.0, 1.0]), np.array([0.0, 0.0, 1.0]))  # horizontal: half sky, half floor
    layout = dataclasses.replace(layout, camera_to_world=np.stack([c2w, c2w]))
    return cfg, layout, render_views(layout, cfg)


def test_sky_pixels_have_unknown_depth_and_background_ids(horizon_view):
    cfg, layout, views = horizon_view
    sky = views.depth[0] == 0
    assert sky[:8].all() and not sky[8:].any()  # rows above the horizon see the sky, rows below the floor
    assert (views.instance[0][sky] == 0).all() and (views.semantic[0][sky] == 0).all()
    rgb = views.rgb[0][sky].astype(int)
    assert (rgb[:, 2] > rgb[:, 0]).all()  # blue above pale: the sky's blend
    # the zenith side is bluer than the horizon row
    assert (
        views.rgb[0][0, :, 2].mean() - views.rgb[0][0, :, 0].mean()
        > views.rgb[0][7, :, 2].mean() - views.rgb[0][7, :, 0].mean()
    )


def test_floor_depth_is_the_plane_intersection(horizon_view):
    cfg, layout, views = horizon_view
    K = layout.intrinsics
    origins, dirs = pixel_rays(layout.camera_to_world[0], K.fx, K.fy, K.cx, K.cy, K.width, K.height)
    t_plane = -origins[..., 2] / np.where(dirs[..., 2] < 0, dirs[..., 2], -1e-12)  # o_z + t d_z = 0
    floor = (views.depth[0] > 0) & (views.instance[0] == 0)
    assert floor.sum() > 50
    np.testing.assert_allclose(views.depth[0][floor], t_plane[floor], rtol=1e-4)


def test_kubric_backend_refuses_the_open_floor(horizon_view):
    from lift3d.generate.kubric_backend import render_views_kubric as kubric_render

    cfg, layout, _ = horizon_view
    with pytest.raises(ValueError, match="closed rooms only"):
        kubric_render(layout, cfg)
