"""lift3d.models.inference_render: the fast render path (empty-space skipping, early ray termination, colour and
heads only where weights matter) against the exact path (LiftModel.sample_rays), on hand-built fields: an opaque
slab (rays terminate at its face), a soft slab and a homogeneous medium (no termination), with and without an
occupancy grid; and lift3d.engine.inference.render_pixel_set with both paths on a small camera."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lift3d.data.rays import PixelSet
from lift3d.engine.inference import render_pixel_set
from lift3d.fields.heads import HeadConfig
from lift3d.fields.radiance import RadianceFieldConfig
from lift3d.models import InferenceRenderConfig, LiftModel, MarchStats, ModelConfig, march_rays, render_heads
from lift3d.models.inference_render import keep_heaviest_samples

RES = 41
SHIFT = -10.0
EXACT_HEADS = InferenceRenderConfig(head_samples=0)
"""Early termination and empty-space skipping on, heads by the model's own rule."""
EXACT_HEADS_AND_COLOUR = InferenceRenderConfig(head_samples=0, color_weight_threshold=0.0)
"""... and colour at every sample with a non-zero weight."""


def model_with_slab(value: float = 1000.0, occupancy: int = 0, num_samples: int = 64, **model_kw) -> LiftModel:
    """World box [-1, 1]^3; density grid G(z) = +value for z <= 0.25, -value above (linear in between): opaque below
    the face for large ``value``, a soft face for small ones. Colour and heads are random MLPs (seeded)."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        radiance=RadianceFieldConfig(
            grid_resolution=RES,
            density_components=1,
            appearance_components=2,
            appearance_dim=4,
            color_hidden_dim=8,
            color_hidden_layers=1,
            density_shift=SHIFT,
        ),
        semantic=HeadConfig(hidden_dim=16, hidden_layers=2, position_frequencies=2),
        instance=HeadConfig(hidden_dim=16, hidden_layers=2, position_frequencies=2),
        num_samples=num_samples,
        num_samples_render=num_samples,
        depth_guided_samples=0,
        occupancy_resolution=occupancy,
        background="none",
        background_class=0,
        **model_kw,
    )
    model = LiftModel(cfg, num_classes=3, aabb=np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    grid = model.radiance.density_grid
    with torch.no_grad():
        for p in grid.parameters():
            p.zero_()
        grid.planes[0].fill_(1.0)
        line = torch.full((RES,), -value)
        line[:26] = value  # nodes z_k = -1 + 0.05 k, k <= 25: z <= 0.25
        grid.lines[0][0, 0, :, 0] = line
    return model.eval()


def slanted_rays(n: int = 64, height: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n rays from (0, 0, height) looking down -z with slopes in [-0.25, 0.25]^2 (all reach the face inside the box) (camera-space z = -1)."""
    g = torch.linspace(-0.25, 0.25, int(math.sqrt(n)))
    a, b = torch.meshgrid(g, g, indexing="ij")
    d = torch.stack([a.reshape(-1), b.reshape(-1), -torch.ones(a.numel())], -1)
    return torch.tensor([[0.0, 0.0, height]]).expand_as(d).clone(), d


class DensityCounter:
    """Counts the points at which the density grid is evaluated (a forward hook on the TensoRF density grid): the
    exact path evaluates it once per occupied sample (density and colour together), the fast path once per
    density evaluation plus once per colour evaluation."""

    def __init__(self, model: LiftModel):
        self.points = 0
        self.handle = model.radiance.density_grid.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.points += int(inputs[0].shape[0])


def render_both(model: LiftModel, o, d, cfg: InferenceRenderConfig):
    """(exact, fast) tuples of (samples, log-probs, embedding), the density-grid points the exact path evaluated
    and the fast path's MarchStats (checked against the grid points it evaluated)."""
    bg = torch.tensor([0.2, 0.5, 0.9])
    counter = DensityCounter(model)
    with torch.no_grad():
        exact = model.sample_rays(o, d, None, jitter=False, with_color=True, background=bg)
        exact_heads = (model.render_semantic(exact), model.render_embedding(exact))
        exact_points = counter.points
        counter.points = 0
        stats = MarchStats()
        fast = march_rays(model, o, d, background=bg, cfg=cfg, stats=stats)
        fast_heads = render_heads(model, fast, cfg)
    counter.handle.remove()
    assert counter.points == stats.density_evaluations + stats.color_evaluations
    return (exact, *exact_heads), (fast, *fast_heads), exact_points, stats


def assert_close_renders(exact, fast, atol: float) -> None:
    (se, le, ee), (sf, lf, ef) = exact, fast
    torch.testing.assert_close(sf.rgb, se.rgb, atol=atol, rtol=0)
    torch.testing.assert_close(sf.depth, se.depth, atol=atol * 4, rtol=0)  # depth <= eps * t_far, t_far <= 4
    torch.testing.assert_close(sf.opacity, se.opacity, atol=atol, rtol=0)
    torch.testing.assert_close(lf.exp(), le.exp(), atol=atol, rtol=0)
    torch.testing.assert_close(ef, ee, atol=atol, rtol=0)


def test_opaque_slab_fast_path_matches_and_terminates_at_the_face():
    model = model_with_slab(1000.0)
    o, d = slanted_rays()
    exact, fast, exact_points, stats = render_both(model, o, d, EXACT_HEADS)
    assert_close_renders(exact, fast, atol=2e-4)
    assert (exact[0].opacity > 0.999).all()
    # The exact path evaluates density at all 64 samples of every ray (no occupancy grid); the fast one stops
    # after the step (16 samples) that holds the face at z ~ 0.25 (t ~ 2.75 to 2.8 of [2, ~4]): 32 samples a ray.
    assert exact_points == 64 * 64
    assert stats.density_evaluations == 64 * 32
    assert stats.color_evaluations <= 64 * 2  # the weight sits on one or two samples per ray
    # Nothing after the face was given weight, and the heads saw the same samples: the same argmax class.
    assert (fast[1].argmax(-1) == exact[1].argmax(-1)).all()


@pytest.mark.parametrize("value", [7.75, 0.0], ids=["soft-slab", "near-empty"])
def test_without_termination_the_fast_path_is_the_exact_path(value):
    """A soft face (transmittance never falls under eps) or an (almost) empty field: no ray stops early, density
    is evaluated at every sample, and every output agrees with the exact path to float rounding."""
    model = model_with_slab(value)
    o, d = slanted_rays()
    exact, fast, exact_points, stats = render_both(model, o, d, EXACT_HEADS_AND_COLOUR)
    assert stats.density_evaluations == exact_points == 64 * 64
    assert float(exact[0].opacity.max()) < 0.99
    assert_close_renders(exact, fast, atol=1e-5)


def test_no_termination_and_no_colour_threshold_is_exact_even_on_the_opaque_slab():
    model = model_with_slab(1000.0)
    o, d = slanted_rays()
    cfg = InferenceRenderConfig(transmittance_eps=0.0, color_weight_threshold=0.0, head_samples=0)
    exact, fast, exact_points, stats = render_both(model, o, d, cfg)
    assert stats.density_evaluations == stats.examined_samples == exact_points == 64 * 64
    assert_close_renders(exact, fast, atol=1e-5)


def test_empty_cells_of_the_occupancy_grid_are_never_evaluated():
    model = model_with_slab(1000.0, occupancy=8)
    occ = model.occupancy
    centres = occ.cell_centres(jitter=False)
    # Only the cells that hold the face (z in [0, 0.5)) are occupied: empty space above, and (wrongly, on purpose)
    # the inside of the slab below too, so that every evaluated sample is one the grid allows.
    occ.occupied = (centres[:, 2] > 0.0) & (centres[:, 2] < 0.5)
    o, d = slanted_rays()
    stats = MarchStats()
    counter = DensityCounter(model)
    with torch.no_grad():
        exact = model.sample_rays(o, d, None, jitter=False, with_color=True, background=torch.zeros(3))
        exact_points, counter.points = counter.points, 0
        fast = march_rays(model, o, d, background=torch.zeros(3), cfg=EXACT_HEADS, stats=stats)
    assert stats.density_evaluations + stats.color_evaluations == counter.points
    assert stats.occupied_samples == stats.density_evaluations
    # Samples whose midpoint lies in z in (0, 0.5): t in (2.5, 3) on each ray: 16 of the 64 samples (step 1/32).
    assert exact_points == 64 * 16
    assert 0 < stats.density_evaluations <= exact_points
    assert stats.examined_samples < stats.samples == 64 * 64
    torch.testing.assert_close(fast.rgb, exact.rgb, atol=2e-4, rtol=0)
    torch.testing.assert_close(fast.depth, exact.depth, atol=1e-3, rtol=0)


def test_colour_threshold_error_is_bounded_by_the_skipped_weight():
    """Colour evaluated only where w > 1e-3 (the soft face spreads the weight over many samples): each pixel differs
    from the exact one by at most the weight it skipped (colours lie in [0, 1]), and fewer colours are evaluated."""
    model = model_with_slab(7.75)
    o, d = slanted_rays()
    cfg = InferenceRenderConfig(head_samples=0, color_weight_threshold=1e-3)
    exact, fast, _, stats = render_both(model, o, d, cfg)
    w = exact[0].weights
    skipped = (w * (w <= 1e-3)).sum(-1)
    assert float(skipped.max()) > 0 and stats.color_evaluations < int((w > 0).sum())
    assert ((fast[0].rgb - exact[0].rgb).abs().max(-1).values <= skipped + 1e-5).all()
    torch.testing.assert_close(fast[0].depth, exact[0].depth, atol=1e-5, rtol=0)


@pytest.mark.skipif(not hasattr(LiftModel, "contracted"), reason="this lift3d has no scene contraction")
@pytest.mark.parametrize("value", [1000.0, 7.75], ids=["opaque", "soft"])
def test_fast_path_matches_the_exact_path_under_the_scene_contraction(value):
    """With a scene contraction the samples run past the box and the field sees contracted points: the fast path
    (lift3d.models.inference_render.sample_layout) must place and map them as LiftModel.sample_rays does."""
    model = model_with_slab(value, scene_contraction="mipnerf360")
    assert model.contracted
    o, d = slanted_rays()
    exact, fast, exact_points, stats = render_both(model, o, d, EXACT_HEADS_AND_COLOUR)
    assert exact[0].weights.shape == fast[0].weights.shape
    torch.testing.assert_close(fast[0].t, exact[0].t)
    torch.testing.assert_close(fast[0].points, exact[0].points)
    assert_close_renders(exact, fast, atol=2e-4)
    assert stats.density_evaluations <= exact_points


def test_keep_heaviest_samples_keeps_the_k_largest_and_the_opacity():
    w = torch.tensor([[0.05, 0.5, 0.1, 0.3, 0.0], [0.0, 0.0, 0.6, 0.005, 0.0]])
    kept = keep_heaviest_samples(w, 2)
    torch.testing.assert_close(
        kept, torch.tensor([[0.0, 0.5 * 0.95 / 0.8, 0.0, 0.3 * 0.95 / 0.8, 0.0], [0.0, 0.0, 0.6, 0.005, 0.0]])
    )
    torch.testing.assert_close(kept.sum(-1), w.sum(-1))
    assert keep_heaviest_samples(w, 0) is w and keep_heaviest_samples(w, 5) is w


def test_heads_at_the_heaviest_samples_on_an_opaque_surface():
    """On an opaque face nearly all weight is on one or two samples: the heads evaluated there agree with the
    exact weighted sum (to the weight left out), and the rendered class is the same."""
    model = model_with_slab(1000.0)
    o, d = slanted_rays()
    for k in (1, 2):
        exact, fast, _, _ = render_both(model, o, d, InferenceRenderConfig(head_samples=k))
        left_out = 1.0 - torch.topk(exact[0].weights, k, -1).values.sum(-1) / exact[0].opacity
        assert float(left_out.max()) < 0.2
        assert (fast[1].argmax(-1) == exact[1].argmax(-1)).all()
        torch.testing.assert_close(fast[2], exact[2], atol=0.05, rtol=0)


def _pixel_set(height: int, width: int) -> PixelSet:
    """One camera at (0, 0, 3) looking down -z (OpenGL axes: camera z = world z), focal 1.5 * width."""
    p = height * width
    vv, uu = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return PixelSet(
        view_ids=[7],
        c2w=torch.tensor([[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]]),
        intrinsics=torch.tensor([[1.5 * width, 1.5 * width, width / 2, height / 2]]),
        sizes=[(height, width)],
        offsets=torch.tensor([0, p]),
        pixel_view=torch.zeros(p, dtype=torch.long),
        pixel_uv=torch.stack([uu.reshape(-1), vv.reshape(-1)], -1),
        rgb=torch.zeros(p, 3),
        instance=torch.zeros(p, dtype=torch.long),
        semantic=torch.zeros(p, dtype=torch.long),
        confidence=torch.ones(p),
    )


def test_render_pixel_set_fast_and_exact_agree_and_report_progress():
    model = model_with_slab(1000.0, occupancy=8)
    pixels = _pixel_set(6, 10)
    done: list[int] = []
    stats = MarchStats()
    fast = render_pixel_set(model, pixels, chunk=16, progress=done.append, fast=EXACT_HEADS, stats=stats)[0]
    exact = render_pixel_set(model, pixels, chunk=16, exact=True)[0]
    assert done == [16, 16, 16, 12]
    assert stats.rays == 60 and stats.density_evaluations > 0
    assert fast.frame_index == exact.frame_index == 7
    assert fast.rgb.shape == (6, 10, 3) and fast.embedding.shape == (6, 10, 3)
    np.testing.assert_allclose(fast.rgb, exact.rgb, atol=2e-4)
    np.testing.assert_allclose(fast.depth, exact.depth, atol=1e-3)
    np.testing.assert_allclose(fast.embedding, exact.embedding, atol=2e-4)
    np.testing.assert_array_equal(fast.semantic, exact.semantic)
    assert not model.training  # the mode the model came in with is kept
