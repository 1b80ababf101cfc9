"""lift3d.render: the pure-torch weights against hand values on 2- and 3-sample rays; nerfacc's weights held to the
twin (a spy proves nerfacc ran; an error inside nerfacc propagates); the packed twin equals the dense one; ray/box
clipping; stratified and depth-band samples; intervals; the occupancy grid and its fixed-step marching."""

from __future__ import annotations

import math

import pytest
import torch

from lift3d.backends import resolve_backends
from lift3d.render.samplers import OccupancyGrid, depth_band_t, intervals_from_t, march_occupied, ray_aabb, stratified_t
from lift3d.render.volume import (
    accumulate,
    render_semantic_log_probs,
    render_weights,
    render_weights_packed_torch,
    render_weights_torch,
)


# ------------------------------------------------------------------------------------------------ volume rendering
def _random_intervals(gen, rays=7, samples=13):
    t = torch.rand(rays, samples + 1, generator=gen).cumsum(-1)
    sigmas = torch.exp(2.0 * torch.randn(rays, samples, generator=gen))
    sigmas[0] = 0.0  # an empty ray
    sigmas[1, 3] = 1e4  # an opaque sample
    return t[:, :-1], t[:, 1:], sigmas


@pytest.fixture
def nerfacc_spy(monkeypatch):
    """Counts calls of ``nerfacc.render_weight_from_density`` and calls through to the real function."""
    nerfacc = pytest.importorskip("nerfacc")
    real = nerfacc.render_weight_from_density
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(nerfacc, "render_weight_from_density", spy)
    return calls


def test_nerfacc_weights_equal_the_torch_twin(nerfacc_spy):
    backend = resolve_backends("cpu", volume_rendering="nerfacc").volume_rendering
    assert backend == "nerfacc"
    gen = torch.Generator().manual_seed(0)
    starts, ends, sigmas = _random_intervals(gen)
    s1 = sigmas.clone().requires_grad_(True)
    s2 = sigmas.clone().requires_grad_(True)
    w_acc = render_weights(starts, ends, s1, backend)
    assert nerfacc_spy == [starts.shape]  # nerfacc's own function computed w_acc
    w_torch = render_weights_torch(starts, ends, s2)
    torch.testing.assert_close(w_acc, w_torch, atol=1e-6, rtol=1e-5)
    # Gradients agree too (a loss that weights samples differently).
    coef = torch.rand(w_acc.shape, generator=gen)
    (w_acc * coef).sum().backward()
    (w_torch * coef).sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad, atol=1e-5, rtol=1e-4)
    render_weights(starts, ends, sigmas, "torch")
    assert len(nerfacc_spy) == 1  # the torch backend never calls nerfacc


def test_an_error_inside_nerfacc_propagates(monkeypatch):
    volrend = pytest.importorskip("nerfacc.volrend")

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    # Deep in nerfacc's call path (render_weight_from_density -> render_transmittance_from_density -> here).
    monkeypatch.setattr(volrend, "exclusive_sum", broken)
    starts, ends, sigmas = _random_intervals(torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        render_weights(starts, ends, sigmas, "nerfacc")
    assert render_weights(starts, ends, sigmas, "torch").shape == sigmas.shape  # the twin does not touch nerfacc


def test_unknown_volume_rendering_backend_is_an_error():
    starts, ends, sigmas = _random_intervals(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="resolve_backends"):
        render_weights(starts, ends, sigmas, "auto")


def test_weights_three_samples_by_hand():
    # delta = (1, 1, 2), sigma = (ln 2, ln 4, ln 2): alpha = (1/2, 3/4, 3/4), T = (1, 1/2, 1/8),
    # w = T alpha = (1/2, 3/8, 3/32); opacity 1 - 1/32.
    starts, ends = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 2.0, 4.0]])
    sigmas = torch.tensor([[math.log(2.0), math.log(4.0), math.log(2.0)]], requires_grad=True)
    w = render_weights_torch(starts, ends, sigmas)
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.375, 0.09375]]))
    # d w_3 / d sigma_j = -delta_j w_3 for j < 3 (sigma_j dims T_3) and delta_3 T_3 (1 - alpha_3) for j = 3.
    (g,) = torch.autograd.grad(w[0, 2], sigmas)
    torch.testing.assert_close(g, torch.tensor([[-0.09375, -0.09375, 2.0 * 0.125 * 0.25]]))


def test_weights_two_samples_by_hand():
    # delta = (1, 2), sigma = ln 2 each: alpha_1 = 1/2, T_1 = 1 -> w_1 = 1/2; alpha_2 = 1 - 2^-2 = 3/4, T_2 = 1/2
    # -> w_2 = 3/8.
    starts, ends = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 3.0]])
    sigmas = torch.full((1, 2), math.log(2.0))
    expected = torch.tensor([[0.5, 0.375]])
    torch.testing.assert_close(render_weights_torch(starts, ends, sigmas), expected)
    torch.testing.assert_close(render_weights(starts, ends, sigmas), expected)
    torch.testing.assert_close(render_weights(starts, ends, sigmas, "nerfacc"), expected)


def test_weights_are_a_sub_distribution():
    gen = torch.Generator().manual_seed(1)
    starts, ends, sigmas = _random_intervals(gen)
    for fn in (render_weights, render_weights_torch, lambda *a: render_weights(*a, "nerfacc")):
        w = fn(starts, ends, sigmas)
        assert (w >= 0).all() and (w.sum(-1) <= 1 + 1e-6).all()
        assert float(w[0].abs().max()) == 0.0  # empty ray
        assert float(w[1, 4:].abs().max()) < 1e-6  # nothing behind the opaque sample
        # Opacity sum_i w_i = 1 - exp(-sum_i sigma_i delta_i).
        torch.testing.assert_close(w.sum(-1), 1 - torch.exp(-(sigmas * (ends - starts)).sum(-1)), atol=1e-5, rtol=1e-5)


def test_packed_twin_equals_the_dense_twin_in_values_and_gradients():
    gen = torch.Generator().manual_seed(2)
    starts, ends, sigmas = _random_intervals(gen, rays=5, samples=6)
    keep = torch.rand(sigmas.shape, generator=gen) < 0.6  # ragged rays, as occupancy marching leaves them
    keep[2] = False  # a ray without samples
    sigmas = torch.where(keep, sigmas, torch.zeros_like(sigmas))  # dropped samples = zero density in the dense twin
    s_dense = sigmas.clone().requires_grad_(True)
    s_packed = sigmas[keep].clone().requires_grad_(True)
    rays = keep.nonzero(as_tuple=True)[0]
    w_dense = render_weights_torch(starts, ends, s_dense)
    w_packed = render_weights_packed_torch(starts[keep], ends[keep], s_packed, rays, num_rays=5)
    torch.testing.assert_close(w_packed, w_dense[keep])
    coef = torch.rand(w_dense.shape, generator=gen)
    (w_dense * coef).sum().backward()
    (w_packed * coef[keep]).sum().backward()
    torch.testing.assert_close(s_packed.grad, s_dense.grad[keep])


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
    o = torch.tensor(
        [
            [-3.0, 0.0, 0.0],  # along +x through the centre
            [-3.0, 2.0, 0.0],  # parallel to the box, above it: miss
            [-3.0, 0.0, 0.0],  # unnormalised direction: t halves
            [0.0, 0.0, 5.0],  # along -z
            [-2.0, -2.0, 0.0],  # diagonal in xy
            [3.0, 0.0, 0.0],  # box behind the origin: miss
            [0.2, 0.3, -0.4],
        ]
    )  # origin inside
    d = torch.tensor(
        [
            [1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [2.0, 0.0, 0.0],
            [0.0, 0.0, -1.0],
            [1.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
        ]
    )
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
    probe = torch.tensor(
        [
            [0.5, 0.5, 0.5],
            [-0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.5, 0.5, -0.5],
            [0.1, 0.9, 0.2],
            [-0.9, -0.9, -0.9],
            [1.5, 0.5, 0.5],
        ]
    )
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


def test_march_occupied_keeps_the_steps_whose_midpoint_is_in_an_occupied_cell():
    # 2^3 grid with only the cell x, y, z > 0 occupied. Ray 0 runs along +x at y = z = 0.5 from x = -2: step k covers
    # t in [0.25 k, 0.25 (k + 1)) with midpoint x = -2 + 0.25 k + 0.125, in the cell for k = 8..11. Ray 1 (y < 0)
    # only crosses empty cells; ray 2 misses the cube.
    grid = OccupancyGrid(resolution=2)
    grid.occupied[:] = False
    grid.occupied[7] = True
    origins = torch.tensor([[-2.0, 0.5, 0.5], [-2.0, -0.5, 0.5], [-2.0, 3.0, 0.5]])
    dirs = torch.tensor([[1.0, 0.0, 0.0]] * 3)
    rays, starts, ends = march_occupied(grid, origins, dirs, step_size=0.25)
    assert rays.tolist() == [0, 0, 0, 0]
    torch.testing.assert_close(starts, torch.tensor([2.0, 2.25, 2.5, 2.75]))
    torch.testing.assert_close(ends, starts + 0.25)
    # Before the first update every cell is occupied: ray 1 keeps every step inside the cube (k = 4..11).
    rays, starts, _ = march_occupied(OccupancyGrid(resolution=2), origins[1:], dirs[1:], step_size=0.25)
    assert rays.tolist() == [0] * 8
    torch.testing.assert_close(starts, 0.25 * torch.arange(4.0, 12.0))
