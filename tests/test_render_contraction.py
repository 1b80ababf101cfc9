"""Scene contraction (mip-NeRF 360 Eq. 10, box-shaped) and the samples of unbounded rays: hand values, identity in
the box, continuity, infinity on the shell's boundary, inverse; rays leaving the box are sampled to "infinity"."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lift3d.models.lift_model import LiftModel, ModelConfig, resolve_scene_contraction
from lift3d.render.samplers import contract_box, disparity_t, unbounded_t, uncontract_box


def test_contraction_is_the_identity_inside_the_box_scaled_into_the_cube():
    x = torch.tensor([[0.5, -0.25, 1.0], [0.0, 0.0, 0.0], [-1.0, 1.0, -1.0], [0.3, 0.9, -0.7]])
    torch.testing.assert_close(contract_box(x, 1.0), x / 2.0)  # Eq. 10 with k = 1: box -> [-1/2, 1/2]^3
    torch.testing.assert_close(contract_box(x, 0.5), x / 1.5)


def test_contraction_hand_values_outside_the_box():
    # ||x||_inf = 2: (2 - 1/2) * x / 2 = (1.5, 0, 0) -> / 2
    # ||x||_inf = 4: (2 - 1/4) * (1, -0.5, 0.25) = (1.75, -0.875, 0.4375) -> / 2
    x = torch.tensor([[2.0, 0.0, 0.0], [4.0, -2.0, 1.0]])
    want = torch.tensor([[0.75, 0.0, 0.0], [0.875, -0.4375, 0.21875]])
    torch.testing.assert_close(contract_box(x, 1.0), want)
    # shell k = 0.5, ||x|| = 2: (1 + 0.5 * 0.5) * (1, 0, 0) / 1.5
    torch.testing.assert_close(contract_box(x[:1], 0.5), torch.tensor([[1.25 / 1.5, 0.0, 0.0]]))


def test_contraction_sends_infinity_to_the_boundary_of_the_shell():
    x = torch.tensor([[1e9, 3e8, 0.0], [-5e8, 1e9, -1e9]], dtype=torch.float64)
    y = contract_box(x, 1.0)
    torch.testing.assert_close(y.abs().amax(-1), torch.ones(2, dtype=torch.float64), atol=1e-8, rtol=0)
    assert (y.abs().amax(-1) < 1.0).all()
    torch.testing.assert_close(y[0], torch.tensor([1.0, 0.3, 0.0], dtype=torch.float64), atol=1e-8, rtol=0)
    # Monotone along a ray leaving the box: farther points land farther out, never past the boundary.
    t = torch.logspace(0, 8, 50, dtype=torch.float64)[:, None]
    r = contract_box(t * torch.tensor([[0.8, -1.0, 0.2]], dtype=torch.float64), 1.0).abs().amax(-1)
    assert (r.diff() > 0).all() and (r < 1.0).all()


def test_contraction_is_continuous_across_the_box_surface():
    d = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=-1)
    on_surface = d / d.abs().amax(-1, keepdim=True)  # ||.||_inf = 1
    for k in (1.0, 0.5):
        inside = contract_box(on_surface * (1 - 1e-7), k)
        outside = contract_box(on_surface * (1 + 1e-7), k)
        assert (inside - outside).abs().max() < 1e-6


def test_uncontraction_inverts_the_contraction():
    x = torch.randn(500, 3, dtype=torch.float64) * torch.logspace(-1, 3, 500, dtype=torch.float64)[:, None]
    for k in (1.0, 0.5):
        torch.testing.assert_close(uncontract_box(contract_box(x, k), k), x, rtol=1e-6, atol=1e-9)


def test_disparity_samples_hand_values():
    # u = 0.25, 0.75: t = 1 / (u / 100 + (1 - u) / 1)
    t = disparity_t(torch.tensor([1.0]), torch.tensor([100.0]), 2, jitter=False)
    torch.testing.assert_close(t, torch.tensor([[1 / 0.7525, 1 / 0.2575]]))


@pytest.mark.parametrize(
    "origin, direction, entry, exit_",
    [((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), 1e-3, 1.0), ((-3.0, 0.2, 0.0), (1.0, 0.0, 0.0), 2.0, 4.0)],
)
def test_unbounded_samples_cover_the_box_and_the_ray_beyond(origin, direction, entry, exit_):
    o, d = torch.tensor([origin]), torch.tensor([direction])
    far = torch.tensor([100.0])
    t, t_in, t_out = unbounded_t(o, d, num_box=16, num_outside=8, far=far, jitter=False)
    assert t.shape == (1, 24) and (t.diff(dim=-1) >= 0).all()
    torch.testing.assert_close(t_in, torch.tensor([entry]))
    torch.testing.assert_close(t_out, torch.tensor([exit_]))
    assert int(((t > entry) & (t < exit_)).sum()) == 16  # linear in the box
    assert int((t <= entry).sum()) == 2  # a quarter of the outside samples between the camera and the box
    beyond = t[t > exit_]  # ... the rest uniform in disparity from the box's exit to "infinity"
    u = (torch.arange(6) + 0.5) / 6
    torch.testing.assert_close(beyond, 1.0 / (u / 100.0 + (1 - u) / exit_))


def test_unbounded_samples_of_a_ray_missing_the_box_still_reach_far():
    o, d = torch.tensor([[-3.0, 5.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    t, t_in, t_out = unbounded_t(o, d, num_box=4, num_outside=8, far=torch.tensor([50.0]), jitter=True)
    torch.testing.assert_close(t_in, torch.tensor([3.0]))  # closest approach to the box centre
    assert float(t.min()) >= 1e-3 and float(t.max()) <= 50.0
    assert int((t > 3.0).sum()) == 6 and float(t.max()) > 5 * 3.0


def _model(contraction: str) -> LiftModel:
    cfg = ModelConfig(scene_contraction=contraction, occupancy_resolution=0, background="none", num_samples=16)
    cfg.num_samples_outside = 8
    torch.manual_seed(0)
    return LiftModel(cfg, num_classes=2, aabb=np.array([[-1.0, -2.0, 0.0], [3.0, 2.0, 1.0]]))


def test_model_maps_world_to_cube_and_back_with_contraction():
    m = _model("mipnerf360")
    x = torch.tensor([[1.0, 0.0, 0.5], [3.0, 2.0, 1.0], [50.0, -7.0, 3.0], [-1e4, 2.0, 0.5]])
    y = m.to_cube(x)
    assert (y.abs() < 1.0).all()
    torch.testing.assert_close(y[:2], (x[:2] - torch.tensor([1.0, 0.0, 0.5])) / torch.tensor([2.0, 2.0, 0.5]) / 2)
    torch.testing.assert_close(m.from_cube(y), x, rtol=1e-3, atol=1e-3)
    assert m.in_box(x).tolist() == [True, True, False, False]


def test_model_samples_rays_that_leave_the_box_only_with_contraction():
    o = torch.tensor([[1.0, 0.0, 0.5], [-10.0, 0.0, 0.5]])
    d = torch.tensor([[1.0, 0.3, 0.1], [1.0, 0.0, 0.0]])
    kw = dict(jitter=False, with_color=True, background=torch.zeros(3), num_samples=16)
    bounded = _model("none").sample_rays(o, d, None, **kw)
    assert float(bounded.t.max()) < 20.0  # clipped to the box: the second ray leaves it at x = 3 (t = 13)
    m = _model("mipnerf360")
    s = m.sample_rays(o, d, None, **kw)
    assert s.points.shape == (2, 24, 3) and (s.points.abs() <= 1.0).all()
    world = m.from_cube(s.points)
    beyond = ~m.in_box(world)
    assert beyond.sum(-1).min() >= 6  # samples past the box on both rays
    far_x = world[..., 0].amax(-1)
    assert (far_x > 3.0 + 10.0).all()  # ... reaching far beyond the box (disparity samples out to 100 half-sizes)
    assert (s.weights >= 0).all() and (s.weights.sum(-1) <= 1.0 + 1e-5).all()
    assert s.rgb.shape == (2, 3) and torch.isfinite(s.rgb).all()


def test_auto_contraction_is_off_for_a_given_box_and_on_for_the_automatic_one():
    assert resolve_scene_contraction("auto", box_given=True) == "none"
    assert resolve_scene_contraction("auto", box_given=False) == "mipnerf360"
    assert resolve_scene_contraction("none", box_given=False) == "none"
    assert resolve_scene_contraction("mipnerf360", box_given=True) == "mipnerf360"


def test_trainer_logs_the_automatic_box_and_contracts_a_scene_without_aabb(tiny_scene, tmp_path):
    from lift3d.engine.trainer import Trainer
    from lift3d.presets import get_preset

    lines = []
    scene = dataclasses.replace(tiny_scene, aabb=None)
    trainer = Trainer(scene, get_preset("tiny"), tmp_path / "run", progress=False, log=lines.append)
    assert any(line.startswith("foreground box from depth (") for line in lines)
    assert trainer.cfg.model.scene_contraction == "mipnerf360" and trainer.model.contracted
    cfg = get_preset("tiny")
    cfg.model.aabb = (-1.0, -1.0, -0.1, 1.0, 1.0, 0.5)
    lines.clear()
    trainer = Trainer(scene, cfg, tmp_path / "run2", progress=False, log=lines.append)
    assert "foreground box from --model.aabb: [-1.  -1.  -0.1] .. [1.  1.  0.5]" in lines
    assert trainer.cfg.model.scene_contraction == "none" and not trainer.model.contracted
    np.testing.assert_allclose(trainer.model.aabb.numpy(), [[-1, -1, -0.1], [1, 1, 0.5]], atol=1e-7)
