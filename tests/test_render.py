"""lift3d.render: nerfacc's weights held against the pure-torch twin and a hand computation; ray/box clipping;
stratified and depth-band samples; intervals; the occupancy grid."""

from __future__ import annotations

import math

import pytest
import torch

from lift3d.render.samplers import OccupancyGrid, depth_band_t, intervals_from_t, ray_aabb, stratified_t
from lift3d.render.volume import accumulate, render_semantic_log_probs, render_weights, render_weights_torch


# ------------------------------------------------------------------------------------------------ volume rendering
def _random_intervals(gen, rays=7, samples=13):
    t = torch.rand(rays, samples + 1, generator=gen).cumsum(-1)
    sigmas = torch.exp(2.0 * torch.randn(rays, samples, generator=gen))
    sigmas[0] = 0.0  # an empty ray
    sigmas[1, 3] = 1e4  # an opaque sample
    return t[:, :-1], t[:, 1:], sigmas


def test_nerfacc_weights_equal_the_torch_twin():
    pytest.importorskip("nerfacc")
    gen = torch.Generator().manual_seed(0)
    starts, ends, sigmas = _random_intervals(gen)
    s1 = sigmas.clone().requires_grad_(True)
    s2 = sigmas.clone().requires_grad_(True)
    w_acc = render_weights(starts, ends, s1)
    w_torch = render_weights_torch(starts, ends, s2)
    torch.testing.assert_close(w_acc, w_torch, atol=1e-6, rtol=1e-5)
    # Gradients agree too (a loss that weights samples differently).
    coef = torch.rand(w_acc.shape, generator=gen)
    (w_acc * coef).sum().backward()
    (w_torch * coef).sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad, atol=1e-5, rtol=1e-4)


def test_weights_two_samples_by_hand():
    # delta = (1, 2), sigma = ln 2 each: alpha_1 = 1/2, T_1 = 1 -> w_1 = 1/2; alpha_2 = 1 - 2^-2 = 3/4, T_2 = 1/2
    # -> w_2 = 3/8.
    starts, ends = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 3.0]])
    sigmas = torch.full((1, 2), math.log(2.0))
    expected = torch.tensor([[0.5, 0.375]])
    torch.testing.assert_close(render_weights_torch(starts, ends, sigmas), expected)
    torch.testing.assert_close(render_weights(starts, ends, sigmas), expected)


def test_weights_are_a_sub_distribution():
    gen = torch.Generator().manual_seed(1)
    starts, ends, sigmas = _random_intervals(gen)
    for fn in (render_weights, render_weights_torch):
        w = fn(starts, ends, sigmas)
        assert (w >= 0).all() and (w.sum(-1) <= 1 + 1e-6).all()
        assert float(w[0].abs().max()) == 0.0  # empty ray
        assert float(w[1, 4:].abs().max()) < 1e-6  # nothing behind the opaque sample
        # Opacity sum_i w_i = 1 - exp(-sum_i sigma_i delta_i).
        torch.testing.assert_close(w.sum(-1), 1 - torch.exp(-(sigmas * (ends - starts)).sum(-1)), atol=1e-5, rtol=1e-5)


def test_accumulate_and_semantic_log_probs_by_hand():
    w = torch.tensor([[0.5, 0.25], [0.0, 0.0]])
    values = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    torch.testing.assert_close(accumulate(w, values), torch.tensor([[1.25, 2.0], [0.0, 0.0]]))
    probs = torch.tensor([[[0.8, 0.2], [0.2, 0.8]], [[0.5, 0.5], [0.5, 0.5]]])
    # Ray 0: sum_i w_i p_i = (0.45, 0.30) -> normalised (0.6, 0.4).
    lp = render_semantic_log_probs(w, probs)
    torch.testing.assert_close(lp[0], torch.log(torch.tensor([0.6, 0.4]) + 1e-8))
    assert torch.isfinite(lp).all()


# ------------------------------------------------------------------------------------------------ samplers
def test_ray_aabb_hand_cases():
    o = torch.tensor([[-3.0, 0.0, 0.0],   # along +x through the centre
                      [-3.0, 2.0, 0.0],   # parallel to the box, above it: miss
                      [-3.0, 0.0, 0.0],   # unnormalised direction: t halves
                      [0.0, 0.0, 5.0],    # along -z
                      [-2.0, -2.0, 0.0],  # diagonal in xy
                      [3.0, 0.0, 0.0],    # box behind the origin: miss
                      [0.2, 0.3, -0.4]])  # origin inside
    d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, -1.0], [1.0, 1.0, 0.0],
                      [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    near, far = ray_aabb(o, d)
    torch.testing.assert_close(near[[0, 2, 3, 4]], torch.tensor([2.0, 1.0, 4.0, 1.0]))
    torch.testing.assert_close(far[[0, 2, 3, 4]], torch.tensor([4.0, 2.0, 6.0, 3.0]))
    assert far[1] <= near[1] and far[5] <= near[5]
    assert near[6] == pytest.approx(1e-3) and far[6] == pytest.approx(0.7)


def test_stratified_t_values_bounds_and_order():
    near, far = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([3.0, 1.0, 2.0])
    t = stratified_t(near, far, 4, jitter=False)
    torch.testing.assert_close(t[0], torch.tensor([1.25, 1.75, 2.25, 2.75]))
    torch.testing.assert_close(t[2], torch.full((4,), 2.0))  # empty span
    gen = torch.Generator().manual_seed(0)
    near = torch.rand(50, generator=gen)
    far = near + 2.0 * torch.rand(50, generator=gen)
    tj = stratified_t(near, far, 16, jitter=True, generator=gen)
    assert tj.shape == (50, 16)
    assert (tj >= near[:, None]).all() and (tj <= far[:, None]).all()
    assert (tj[:, 1:] >= tj[:, :-1]).all()
    # One sample per equal bin.
    bins = ((tj - near[:, None]) / (far - near)[:, None] * 16).floor()
    torch.testing.assert_close(bins, torch.arange(16.0).expand(50, 16))


def test_stratified_t_reversed_span_stays_at_near():
    t = stratified_t(torch.tensor([2.0]), torch.tensor([1.0]), 3, jitter=False)
    torch.testing.assert_close(t, torch.full((1, 3), 2.0))


def test_depth_band_t_lies_in_the_band_and_is_sorted():
    gen = torch.Generator().manual_seed(0)
    depth = torch.tensor([1.0, 2.5, 0.3])
    t = depth_band_t(depth, 0.1, 8, generator=gen)
    assert t.shape == (3, 8)
    assert (t >= depth[:, None] - 0.1).all() and (t <= depth[:, None] + 0.1).all()
    assert (t[:, 1:] >= t[:, :-1]).all()


def test_intervals_from_t_by_hand():
    t = torch.tensor([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    starts, ends = intervals_from_t(t, torch.tensor([5.0, 4.2]), last_step=0.5)
    torch.testing.assert_close(starts, t)
    torch.testing.assert_close(ends, torch.tensor([[2.0, 4.0, 4.5], [2.0, 4.0, 4.2]]))


# ------------------------------------------------------------------------------------------------ occupancy grid
def octant_density(x: torch.Tensor) -> torch.Tensor:
    """100 in the open octant x, y, z > 0; 0 elsewhere."""
    return 100.0 * (x > 0).all(-1).float()


def test_occupancy_grid_marks_exactly_the_dense_octant():
    torch.manual_seed(0)
    grid = OccupancyGrid(resolution=4, threshold=0.01)
    probe = torch.tensor([[0.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5], [0.1, 0.9, 0.2],
                          [-0.9, -0.9, -0.9], [1.5, 0.5, 0.5]])
    assert grid.query(probe[:6]).all()  # everything is occupied before the first update
    grid.update(octant_density, step_size=0.1)  # threshold 0.01 / 0.1 = 0.1 < mean 12.5
    assert grid.num_updates == 1
    assert grid.query(probe).tolist() == [True, False, False, False, True, False, False]
    # Cell by cell: occupied iff all three cell indices are >= 2 (the positive half of a 4-cell axis).
    centres = grid.cell_centres(jitter=False)
    expected = (centres > 0).all(-1)
    assert torch.equal(grid.query(centres), expected)
    assert int(grid.occupied.sum()) == 8
    torch.testing.assert_close(grid.density[expected], torch.full((8,), 100.0))
    torch.testing.assert_close(grid.density[~expected], torch.zeros(56))


def test_occupancy_grid_running_max_decays():
    grid = OccupancyGrid(resolution=2, threshold=0.01, decay=0.5)
    grid.update(octant_density, step_size=0.1)
    other = lambda x: 100.0 * (x < 0).all(-1).float()  # noqa: E731 - the opposite octant
    grid.update(other, step_size=0.1)
    # Cell order (i, j, k) row-major: cell 7 = (1, 1, 1) is the positive octant, cell 0 the negative one.
    torch.testing.assert_close(grid.density[[0, 7]], torch.tensor([100.0, 50.0]))  # max(0.5 * 100, 0)
    assert grid.occupied.tolist() == [True] + [False] * 6 + [True]
    for _ in range(9):  # 100 * 0.5^10 < 0.1 = threshold / step (the mean, 12.5, is larger)
        grid.update(other, step_size=0.1)
    assert grid.occupied.tolist() == [True] + [False] * 7


def test_occupancy_grid_of_an_empty_field_is_empty():
    grid = OccupancyGrid(resolution=3)
    grid.update(lambda x: torch.zeros(x.shape[0]), step_size=0.1)
    assert not grid.occupied.any()


def test_occupancy_grid_state_round_trip():
    a = OccupancyGrid(resolution=4)
    a.update(octant_density, step_size=0.1)
    b = OccupancyGrid(resolution=4)
    b.load_state_dict(a.state_dict())
    x = torch.rand(100, 3) * 2 - 1
    assert torch.equal(a.query(x), b.query(x)) and b.num_updates == 1
