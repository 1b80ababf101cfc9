"""lift3d.models.LiftModel: with a TensoRF density set by hand to an opaque slab, the rendered depth is the slab's
optical-axis depth; semantic and instance heads use detached weights; an empty ray renders the background class;
world <-> cube mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lift3d.fields.heads import HeadConfig
from lift3d.fields.radiance import RadianceFieldConfig
from lift3d.models import LiftModel, ModelConfig, RaySamples

RES = 41
"""Density grid resolution: line nodes at z_k = -1 + 0.05 k."""
SLAB_NODE = 25
"""Nodes k <= 25 (z <= 0.25) carry +1000, the others -1000."""
SLAB_VALUE = 1000.0
SHIFT = -10.0


def small_config(**kw) -> ModelConfig:
    base = dict(
        radiance=RadianceFieldConfig(
            grid_resolution=RES,
            density_components=1,
            appearance_components=2,
            appearance_dim=4,
            color_hidden_dim=8,
            color_hidden_layers=1,
            density_shift=SHIFT,
        ),
        semantic=HeadConfig(hidden_dim=16, hidden_layers=2),
        instance=HeadConfig(hidden_dim=16, hidden_layers=2),
        embedding_dim=3,
        num_samples=64,
        num_samples_render=64,
        depth_guided_samples=0,
        occupancy_resolution=0,
        background="none",
        background_class=0,
    )
    base.update(kw)
    return ModelConfig(**base)


def cube_model(**kw) -> LiftModel:
    """World box [-1, 1]^3 (cube = world), 3 classes."""
    torch.manual_seed(0)
    return LiftModel(small_config(**kw), num_classes=3, aabb=np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))


def set_slab(model: LiftModel, value: float = SLAB_VALUE) -> float:
    """Density grid G(x) = M^0(x, y) v^0(z) with M^0 = 1 and v^0 = +value below z_25 = 0.25, -value above: the field
    is opaque for z below the crossing G = -shift. Returns the crossing height z_e (the slab's top face)."""
    grid = model.radiance.density_grid
    with torch.no_grad():
        for p in grid.parameters():
            p.zero_()
        grid.planes[0].fill_(1.0)
        line = torch.full((RES,), -value)
        line[: SLAB_NODE + 1] = value
        grid.lines[0][0, 0, :, 0] = line
    cell = 2.0 / (RES - 1)
    z_node = -1.0 + SLAB_NODE * cell
    if value == 0.0:
        return float("nan")  # an (almost) empty field: no face
    # Linear between nodes 25 (+value) and 26 (-value): G = -shift at z_node + cell (value + shift) / (2 value).
    return z_node + cell * (value + SHIFT) / (2 * value)


def down_rays(xy_slopes, height: float = 3.0):
    """Camera at (0, 0, height) looking down world -z; directions (a, b, -1) (camera-space z = -1)."""
    d = torch.tensor([[a, b, -1.0] for a, b in xy_slopes])
    o = torch.tensor([[0.0, 0.0, height]]).expand_as(d).clone()
    return o, d


SLOPES = [(0.0, 0.0), (0.1, 0.05), (-0.15, 0.2), (0.2, -0.1)]


# ------------------------------------------------------------------------------------------------ geometry
def test_to_cube_and_from_cube_are_inverse():
    model = LiftModel(small_config(), num_classes=2, aabb=np.array([[-1.0, 2.0, 0.0], [3.0, 3.0, 0.5]]))
    torch.testing.assert_close(model.centre, torch.tensor([1.0, 2.5, 0.25]))
    torch.testing.assert_close(model.half_size, torch.tensor([2.0, 0.5, 0.25]))
    assert model.scene_scale == 2.0
    corners = torch.tensor([[-1.0, 2.0, 0.0], [3.0, 3.0, 0.5], [1.0, 2.5, 0.25]])
    torch.testing.assert_close(model.to_cube(corners), torch.tensor([[-1.0, -1, -1], [1, 1, 1], [0, 0, 0]]))
    x = torch.randn(20, 3) * 3
    torch.testing.assert_close(model.from_cube(model.to_cube(x)), x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.to_cube(model.from_cube(x)), x, atol=1e-5, rtol=1e-5)
    assert model.to_cube(torch.randn(2, 5, 3)).shape == (2, 5, 3)


# ------------------------------------------------------------------------------------------------ depth
@pytest.mark.parametrize("jitter", [False, True], ids=["stratified", "jittered"])
def test_expected_depth_is_the_slab_entry_depth_within_a_sample_step(jitter):
    model = cube_model()
    z_e = set_slab(model)
    o, d = down_rays(SLOPES)
    with torch.no_grad():
        s = model.sample_rays(o, d, depth=None, jitter=jitter, with_color=False)
    assert isinstance(s, RaySamples) and s.weights.shape == s.t.shape == (4, 64) and s.points.shape == (4, 64, 3)
    # All rays enter the box at z = 1 (t = 2) and leave at z = -1 (t = 4): step (4 - 2) / 64.
    step = 2.0 / 64
    t_entry = 3.0 - z_e  # optical-axis depth of the slab's top face, the same for every pixel
    torch.testing.assert_close(s.opacity, torch.ones(4), atol=1e-3, rtol=0)
    # Stratified: samples one step apart. Jittered: one sample per bin, so neighbours are up to two bins apart.
    spacing = 2 * step if jitter else step
    assert (s.depth - t_entry).abs().max() <= spacing, (s.depth, t_entry)
    # Weight sits on the first sample past the face.
    first = s.weights.argmax(-1)
    assert ((s.t.gather(1, first[:, None])[:, 0] - t_entry) >= -1e-4).all()


def test_depth_of_a_slab_seen_through_a_scaled_box():
    # World box z in [0, 0.5], x, y in [-2, 2]: cube z = 4 (z_w - 0.25). The slab's face z_e (cube) is at world
    # z = 0.25 + z_e / 4; the camera at world height 3 sees it at optical-axis depth 3 - that.
    torch.manual_seed(0)
    model = LiftModel(small_config(), num_classes=3, aabb=np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.5]]))
    z_e = set_slab(model)
    o, d = down_rays(SLOPES)
    with torch.no_grad():
        s = model.sample_rays(o, d, depth=None, jitter=False, with_color=False)
    step = 0.5 / 64  # world z from 0.5 to 0 = t from 2.5 to 3
    assert (s.depth - (3.0 - (0.25 + z_e / 4))).abs().max() <= step
    torch.testing.assert_close(s.opacity, torch.ones(4), atol=1e-3, rtol=0)


def test_occupancy_grid_culls_empty_space_without_changing_the_depth():
    model = cube_model(occupancy_resolution=16)
    set_slab(model)
    o, d = down_rays(SLOPES)
    torch.manual_seed(0)
    with torch.no_grad():
        dense = model.sample_rays(o, d, depth=None, jitter=False, with_color=False)
        # One random point per cell per update: the cell holding the face (20% dense) needs a few updates to be seen.
        for _ in range(30):
            model.update_occupancy()
        culled = model.sample_rays(o, d, depth=None, jitter=False, with_color=False)
    occ = model.occupancy
    # The grid keeps the slab (cells below z = 0.25) and drops the empty space above the face's cell.
    centres = occ.cell_centres(jitter=False)
    assert occ.query(centres[centres[:, 2] < 0.2]).all()
    assert not occ.query(centres[centres[:, 2] > 0.4]).any()
    torch.testing.assert_close(culled.depth, dense.depth, atol=1e-4, rtol=0)


def test_depth_guided_samples_lie_in_the_band_and_keep_the_depth():
    model = cube_model(depth_guided_samples=8, depth_band=0.05)
    z_e = set_slab(model)
    o, d = down_rays(SLOPES)
    depth = torch.tensor([3.0 - z_e, 3.0 - z_e, 0.0, 3.0 - z_e])  # ray 2: unknown depth
    with torch.no_grad():
        s = model.sample_rays(o, d, depth=depth, jitter=True, with_color=False)
    assert s.t.shape == (4, 72)
    assert (s.t[:, 1:] >= s.t[:, :-1] - 1e-6).all()
    # Each ray with depth has 8 extra samples within 0.05 / |d| (+ half an interval) of it.
    band = 0.05 / d.norm(dim=-1)
    near_depth = ((s.t - depth[:, None]).abs() <= band[:, None] + 1.0 / 64).sum(-1)
    assert (near_depth[[0, 1, 3]] >= 8).all()
    assert (s.depth - (3.0 - z_e)).abs().max() <= 2.0 / 64


@pytest.mark.parametrize("jitter", [False, True], ids=["stratified", "jittered"])
def test_opacity_of_a_homogeneous_medium(jitter):
    # sigma = 0.02 everywhere; opacity = 1 - exp(-sigma * distance_scale * covered length / scene_scale) where the
    # intervals cover [t_0, far]: 2 - step / 2 on average for both stratified and jittered samples.
    model = cube_model()
    grid = model.radiance.density_grid
    with torch.no_grad():
        for p in grid.parameters():
            p.zero_()
        grid.planes[0].fill_(1.0)
        grid.lines[0].fill_(-SHIFT + math.log(math.expm1(0.02)))
    torch.manual_seed(0)
    o, d = down_rays([(0.0, 0.0)] * 500)
    with torch.no_grad():
        torch.testing.assert_close(model.radiance.density(torch.zeros(1, 3)), torch.tensor([0.02]))
        s = model.sample_rays(o, d, depth=None, jitter=jitter, with_color=False)
    expected = 1.0 - math.exp(-0.02 * 25.0 * (2.0 - 1.0 / 64))
    assert abs(float(s.opacity.mean()) - expected) < 0.005, (float(s.opacity.mean()), expected)


def test_rgb_of_an_empty_field_is_the_background_colour():
    model = cube_model()
    set_slab(model, value=0.0)  # G = 0: sigma = softplus(-10) ~ 4.5e-5 everywhere
    o, d = down_rays(SLOPES)
    with torch.no_grad():
        s = model.sample_rays(o, d, depth=None, jitter=False, with_color=True, background=torch.ones(3))
    assert s.opacity.max() < 0.01
    torch.testing.assert_close(s.rgb, torch.ones(4, 3), atol=0.01, rtol=0)


def test_density_grad_false_gives_weights_without_graph():
    model = cube_model()
    set_slab(model)
    o, d = down_rays(SLOPES)
    s = model.sample_rays(o, d, depth=None, jitter=True, with_color=False, density_grad=False)
    assert not s.weights.requires_grad
    s = model.sample_rays(o, d, depth=None, jitter=True, with_color=False, density_grad=True)
    assert s.weights.requires_grad


# ------------------------------------------------------------------------------------------------ heads
def _radiance_grad_norm(model: LiftModel) -> float:
    return sum(float(p.grad.abs().sum()) for p in model.radiance.parameters() if p.grad is not None)


def test_render_embedding_uses_detached_weights():
    model = cube_model()
    set_slab(model, value=12.0)  # a soft slab: weights have non-trivial gradients w.r.t. density
    o, d = down_rays(SLOPES)
    s = model.sample_rays(o, d, depth=None, jitter=False, with_color=False, density_grad=True)
    assert s.weights.requires_grad
    emb = model.render_embedding(s)
    assert emb.shape == (4, 3)
    emb.pow(2).sum().backward()
    assert _radiance_grad_norm(model) == 0.0
    assert sum(float(p.grad.abs().sum()) for p in model.instance.fast.parameters()) > 0
    assert all(p.grad is None for p in model.instance.slow.parameters())
    # Control: the same kind of loss through the (non-detached) weights does reach the density grid.
    s.depth.sum().backward()
    assert _radiance_grad_norm(model) > 0


def test_render_semantic_uses_detached_weights():
    model = cube_model()
    set_slab(model, value=12.0)
    o, d = down_rays(SLOPES)
    s = model.sample_rays(o, d, depth=None, jitter=False, with_color=False, density_grad=True)
    logp = model.render_semantic(s)
    torch.nn.functional.nll_loss(logp, torch.tensor([1, 2, 1, 2])).backward()
    assert _radiance_grad_norm(model) == 0.0
    assert sum(float(p.grad.abs().sum()) for p in model.semantic.parameters()) > 0


def test_render_head_equals_the_weighted_sum_of_the_head():
    model = cube_model(head_weight_threshold=0.0)
    set_slab(model, value=12.0)
    o, d = down_rays(SLOPES)
    with torch.no_grad():
        s = model.sample_rays(o, d, depth=None, jitter=False, with_color=False)
        head = lambda x: torch.stack([x[:, 2], torch.ones_like(x[:, 2])], -1)  # noqa: E731 - (z, 1)
        out = model.render_head(head, s)
        # sum_i w_i z_i and sum_i w_i (the opacity), computed directly.
        torch.testing.assert_close(out[:, 0], (s.weights * s.points[..., 2]).sum(-1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[:, 1], s.opacity, atol=1e-5, rtol=1e-5)
        rows = torch.tensor([2, 0])
        torch.testing.assert_close(model.render_head(head, s, rows), out[rows])


def test_render_head_top_k_keeps_the_largest_weights_and_the_opacity():
    model = cube_model(head_weight_threshold=0.01, head_max_samples=2)
    w = torch.tensor([[0.05, 0.5, 0.1, 0.3, 0.0], [0.0, 0.0, 0.6, 0.005, 0.0]])
    z = torch.arange(5.0)[None, :, None].expand(2, 5, 1)
    pts = torch.cat([torch.zeros(2, 5, 2), z], -1)
    s = RaySamples(points=pts, weights=w, t=torch.zeros(2, 5))
    head = lambda x: torch.stack([x[:, 2], torch.ones_like(x[:, 2])], -1)  # noqa: E731 - (z, 1)
    out = model.render_head(head, s)
    # ray 0: the 2 largest are 0.5 (z = 1) and 0.3 (z = 3), rescaled by 0.95 / 0.8
    torch.testing.assert_close(out[0], torch.tensor([(0.5 * 1 + 0.3 * 3) * 0.95 / 0.8, 0.95]))
    # ray 1: top 2 = 0.6 (z = 2) and 0.005 (z = 3); nothing is cut by k (scale 0.605 / 0.605 = 1) and, as in the
    # exact sum, the sample under the threshold is skipped
    torch.testing.assert_close(out[1], torch.tensor([1.2, 0.6]))
    exact = cube_model(head_weight_threshold=0.01, head_max_samples=0).render_head(head, s)
    torch.testing.assert_close(exact[1], torch.tensor([1.2, 0.6]))
    # k at least the number of samples above the threshold: exactly the plain weighted sum
    for k in (4, 5, 8):  # ray 0 has 4 samples above the threshold
        m = cube_model(head_weight_threshold=0.01, head_max_samples=k)
        torch.testing.assert_close(m.render_head(head, s)[0], exact[0])


def test_empty_and_missing_rays_render_the_background_class():
    model = cube_model()
    set_slab(model, value=0.0)  # (almost) empty field
    o = torch.tensor([[0.0, 0.0, 3.0], [0.0, 5.0, 3.0]])  # ray 1 passes beside the box
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    with torch.no_grad():
        s = model.sample_rays(o, d, depth=None, jitter=False, with_color=False)
        logp = model.render_semantic(s)
    assert float(s.weights[1].abs().max()) == 0.0
    assert logp.shape == (2, 3)
    assert (logp.argmax(-1) == 0).all()
    assert (logp[:, 0].exp() > 0.99).all()
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2), atol=1e-5, rtol=0)


def test_without_background_class_an_empty_ray_is_uniform():
    model = cube_model(background_class=None)
    o, d = torch.tensor([[0.0, 5.0, 3.0]]), torch.tensor([[0.0, 0.0, -1.0]])  # misses the box
    with torch.no_grad():
        logp = model.render_semantic(model.sample_rays(o, d, depth=None, jitter=False, with_color=False))
    torch.testing.assert_close(logp, torch.full((1, 3), math.log(1 / 3)), atol=1e-5, rtol=0)


def test_an_opaque_ray_renders_the_semantic_field_at_the_surface():
    model = cube_model()
    set_slab(model)
    o, d = down_rays(SLOPES)
    with torch.no_grad():
        s = model.sample_rays(o, d, depth=None, jitter=False, with_color=False)
        logp = model.render_semantic(s)
        first = s.weights.argmax(-1)
        surface = s.points[torch.arange(4), first]
        expected = model.semantic(surface)
    torch.testing.assert_close(logp.exp(), expected, atol=1e-3, rtol=0)


def test_sparse_semantic_rendering_equals_the_dense_reference():
    """LiftModel.render_semantic (heads evaluated only where the weight exceeds the threshold, scattered back)
    agrees with the dense reference formula of lift3d.render.volume evaluated at every sample."""
    from lift3d.render.volume import render_semantic_log_probs

    model = cube_model(background_class=None, head_weight_threshold=0.0)
    set_slab(model)
    o, d = down_rays(SLOPES)
    with torch.no_grad():
        s = model.sample_rays(o, d, None, jitter=False, with_color=False)
        sparse = model.render_semantic(s)
        dense = render_semantic_log_probs(
            s.weights, model.semantic(s.points.reshape(-1, 3)).reshape(*s.weights.shape, -1)
        )
    # the sparse path adds a 1e-6 uniform mass; every ray here hits the opaque slab (mass ~1)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
