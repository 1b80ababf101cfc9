"""lift3d.fields: TensoRF VM against a brute-force evaluation of its formula, upsampling, the torch hash grid
(vertex lookups, trilinear weights, sparse gradients), the frequency encoding, the slow/fast instance fields (no
gradient into slow; exact EMA) and the semantic field."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

from lift3d.backends import BackendUnavailable, resolve_backends
from lift3d.fields.hashgrid import _PRIMES, HashGridTorch, make_hash_grid
from lift3d.fields.heads import HeadConfig, InstanceField, SemanticField, ema_update
from lift3d.fields.mlp import MLP, FrequencyEncoding
from lift3d.fields.radiance import RadianceField, RadianceFieldConfig
from lift3d.fields.tensorf import _MODES, TensoRFVM


def node_coord(i: torch.Tensor, res: int) -> torch.Tensor:
    """Coordinate in [-1, 1] of grid node i with align_corners=True."""
    return -1.0 + 2.0 * i.double() / (res - 1)


def brute_force_vm(vm: TensoRFVM, idx: torch.Tensor) -> torch.Tensor:
    """Per-mode, per-component products M^m_c[i_b, i_a] v^m_c[i_c] at integer grid nodes idx [N, 3] -> [N, 3, C]."""
    out = torch.zeros(idx.shape[0], 3, vm.num_components, dtype=torch.float64)
    for n, (i0, i1, i2) in enumerate(idx.tolist()):
        ijk = (i0, i1, i2)
        for m, (a, b, c) in enumerate(_MODES):
            for comp in range(vm.num_components):
                plane = vm.planes[m].detach()[0, comp, ijk[b], ijk[a]]  # plane[h, w]: h along axis b, w along axis a
                line = vm.lines[m].detach()[0, comp, ijk[c], 0]
                out[n, m, comp] = float(plane) * float(line)
    return out


# ------------------------------------------------------------------------------------------------ TensoRF
def test_tensorf_sum_equals_brute_force_vm_formula_at_grid_nodes():
    torch.manual_seed(0)
    res = 5
    vm = TensoRFVM(num_components=3, resolution=res, init_scale=1.0, reduce="sum")
    idx = torch.randint(0, res, (40, 3))
    idx[0] = torch.tensor([0, 0, 0])
    idx[1] = torch.tensor([4, 4, 4])
    idx[2] = torch.tensor([0, 2, 4])
    with torch.no_grad():
        got = vm(node_coord(idx, res).float())
    assert got.shape == (40,)
    expected = brute_force_vm(vm, idx).sum((1, 2))
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)


def test_tensorf_concat_is_mode_major_per_component_products():
    torch.manual_seed(1)
    res = 4
    vm = TensoRFVM(num_components=2, resolution=res, init_scale=1.0, reduce="concat")
    assert vm.out_dim == 6
    idx = torch.randint(0, res, (25, 3))
    with torch.no_grad():
        got = vm(node_coord(idx, res).float())
    assert got.shape == (25, 6)
    torch.testing.assert_close(got.double(), brute_force_vm(vm, idx).reshape(25, 6), atol=1e-5, rtol=1e-5)


def test_tensorf_is_linear_between_nodes_along_one_axis():
    # Moving along one axis only, each mode's product has one factor that varies, linearly: G is linear there.
    torch.manual_seed(2)
    res = 5
    vm = TensoRFVM(num_components=4, resolution=res, init_scale=1.0)
    lo = torch.tensor([[1, 3, 2], [0, 0, 0], [2, 1, 3]])
    for axis in range(3):
        hi = lo.clone()
        hi[:, axis] += 1
        x_lo, x_hi = node_coord(lo, res).float(), node_coord(hi, res).float()
        with torch.no_grad():
            g = vm(torch.cat([x_lo, x_hi, 0.25 * x_lo + 0.75 * x_hi]))
        g_lo, g_hi, g_q = g.split(3)
        torch.testing.assert_close(g_q, 0.25 * g_lo + 0.75 * g_hi, atol=1e-5, rtol=1e-5)


def test_tensorf_upsample_to_a_refinement_preserves_the_field():
    torch.manual_seed(3)
    vm = TensoRFVM(num_components=3, resolution=5, init_scale=1.0)
    x = torch.rand(200, 3) * 2 - 1
    nodes = node_coord(torch.randint(0, 5, (50, 3)), 5).float()
    with torch.no_grad():
        before, before_nodes = vm(x), vm(nodes)
    vm.upsample(9)  # every old node is a new node; piecewise (bi)linear functions are reproduced exactly
    assert vm.resolution == 9
    assert all(p.shape == (1, 3, 9, 9) for p in vm.planes) and all(line.shape == (1, 3, 9, 1) for line in vm.lines)
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in vm.parameters())
    with torch.no_grad():
        torch.testing.assert_close(vm(nodes), before_nodes, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(vm(x), before, atol=1e-5, rtol=1e-5)


def test_tensorf_upsample_keeps_values_at_old_nodes_approximately():
    # A smooth (affine per factor) field is kept for any new resolution; at old nodes of a random field the
    # change is bounded by the field's variation.
    vm = TensoRFVM(num_components=2, resolution=5, init_scale=1.0)
    coords = torch.linspace(-1, 1, 5)
    with torch.no_grad():
        for m in range(3):
            vm.planes[m].copy_(
                (0.5 + 0.3 * coords[None, None, :, None] - 0.2 * coords[None, None, None, :]).expand(1, 2, 5, 5)
            )
            vm.lines[m].copy_((1.0 + 0.4 * coords)[None, None, :, None].expand(1, 2, 5, 1))
    nodes = node_coord(torch.randint(0, 5, (60, 3)), 5).float()
    x = torch.rand(100, 3) * 2 - 1
    with torch.no_grad():
        before_nodes, before = vm(nodes), vm(x)
    vm.upsample(8)
    with torch.no_grad():
        torch.testing.assert_close(vm(nodes), before_nodes, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(vm(x), before, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------------ hash grid
def test_hash_grid_level_resolutions_reach_the_maximum():
    # N_l = floor(N_min b^l) with b chosen so that the last level is N_max (no 7.999 -> 7 rounding loss).
    assert HashGridTorch(num_levels=2, base_resolution=4, max_resolution=8).resolutions == [4, 8]
    res = HashGridTorch(num_levels=12, log2_table_size=10, base_resolution=16, max_resolution=512).resolutions
    assert res[0] == 16 and res[-1] == 512 and res == sorted(res)
    assert HashGridTorch(num_levels=3, base_resolution=4, max_resolution=16).resolutions == [4, 8, 16]


def _dense_grid():
    torch.manual_seed(0)
    g = HashGridTorch(
        num_levels=2, features_per_level=3, log2_table_size=12, base_resolution=4, max_resolution=8, init_scale=1.0
    )
    assert g.dense == [True, True]  # 5^3 = 125 and 9^3 = 729 <= 4096 rows
    assert g.level_offsets.tolist() == [0, 125, 125 + 729]
    return g


def test_hash_grid_feature_at_a_vertex_is_that_table_row():
    g = _dense_grid()
    x = torch.tensor([[-0.5, 0.0, 0.5]])  # x01 = (0.25, 0.5, 0.75): level 0 (res 4) vertex (1, 2, 3), level 1 (2, 4, 6)
    out = g(x)
    assert out.shape == (1, 6) and g.out_dim == 6
    row0 = (1 * 5 + 2) * 5 + 3  # 38
    row1 = 125 + (2 * 9 + 4) * 9 + 6  # 329
    torch.testing.assert_close(out[0, :3], g.table[row0].detach())
    torch.testing.assert_close(out[0, 3:], g.table[row1].detach())


def _trilinear(g, level: int, res: int, x01: torch.Tensor):
    """Hand trilinear interpolation of a dense level and the 8 rows it reads."""
    pos = x01 * res
    base = pos.floor().long()
    frac = pos - base
    feat = torch.zeros(g.features_per_level)
    rows = set()
    for dx, dy, dz in itertools.product((0, 1), repeat=3):
        c = base + torch.tensor([dx, dy, dz])
        row = int(g.level_offsets[level]) + int((c[0] * (res + 1) + c[1]) * (res + 1) + c[2])
        w = (frac[0] if dx else 1 - frac[0]) * (frac[1] if dy else 1 - frac[1]) * (frac[2] if dz else 1 - frac[2])
        feat += w * g.table[row].detach()
        rows.add(row)
    return feat, rows


def test_hash_grid_trilinear_value_and_gradient_reach_only_the_8_corner_rows_per_level():
    g = _dense_grid()
    x01 = torch.tensor([0.3, 0.6, 0.9])
    out = g((x01 * 2 - 1)[None])
    assert out.shape == (1, 6)
    f0, rows0 = _trilinear(g, 0, 4, x01)
    f1, rows1 = _trilinear(g, 1, 8, x01)
    torch.testing.assert_close(out[0], torch.cat([f0, f1]), atol=1e-5, rtol=1e-5)
    out.sum().backward()
    touched = set(torch.nonzero(g.table.grad.abs().sum(-1)).squeeze(-1).tolist())
    assert len(rows0) == len(rows1) == 8
    assert touched == rows0 | rows1


def test_hash_grid_hashed_level_uses_the_spatial_hash():
    torch.manual_seed(0)
    g = HashGridTorch(
        num_levels=1, features_per_level=2, log2_table_size=6, base_resolution=8, max_resolution=8, init_scale=1.0
    )
    assert g.dense == [False] and g.table.shape == (64, 2)
    c = (3, 5, 6)
    x = torch.tensor([[2 * c[0] / 8 - 1, 2 * c[1] / 8 - 1, 2 * c[2] / 8 - 1]])
    row = ((c[0] * _PRIMES[0]) ^ (c[1] * _PRIMES[1]) ^ (c[2] * _PRIMES[2])) % 64
    torch.testing.assert_close(g(x)[0], g.table[row].detach())
    g(torch.tensor([[0.123, -0.456, 0.789]])).sum().backward()
    assert 1 <= int((g.table.grad.abs().sum(-1) > 0).sum()) <= 8


def test_hash_grid_clamps_points_outside_the_cube_and_handles_the_upper_face():
    g = _dense_grid()
    inside = g(torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]))
    outside = g(torch.tensor([[3.0, 1.5, 1.0], [-2.0, -1.0, -7.0]]))
    torch.testing.assert_close(outside, inside)
    torch.testing.assert_close(inside[0, :3], g.table[124].detach())  # vertex (4, 4, 4) of level 0 is the last row


def test_make_hash_grid_auto_on_cpu_is_the_torch_grid_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend = resolve_backends("cpu", hash_grid="auto").hash_grid
        enc = make_hash_grid(
            backend, num_levels=2, features_per_level=2, log2_table_size=8, base_resolution=4, max_resolution=8
        )
    assert isinstance(enc, HashGridTorch) and enc.out_dim == 4
    assert isinstance(make_hash_grid("torch", num_levels=2, log2_table_size=8), HashGridTorch)


def test_hash_grid_tcnn_on_cpu_is_a_clear_error_not_a_silent_fallback():
    # Before backends were resolved once, an explicit tcnn request on CPU fell back to torch with a warning; an
    # explicit request that cannot run is now an error that says what is missing and how to fix it.
    with pytest.raises(BackendUnavailable, match=r"tinycudann.*CUDA.*hash_implementation"):
        resolve_backends("cpu", hash_grid="tcnn")
    cfg = RadianceFieldConfig(
        backbone="hashgrid", hash_levels=2, hash_log2_table_size=8, hash_max_resolution=32, hash_implementation="tcnn"
    )
    with pytest.raises(BackendUnavailable, match="tinycudann"):
        RadianceField(cfg, "cpu")
    with pytest.raises(ValueError, match="resolve_backends"):
        make_hash_grid("auto", num_levels=2, log2_table_size=8)


# ------------------------------------------------------------------------------------------------ MLP, encoding
def test_frequency_encoding_hand_values():
    enc = FrequencyEncoding(2, 2)
    assert enc.out_dim == 2 * (1 + 2 * 2)
    out = enc(torch.tensor([[0.25, -0.5]]))
    s = math.sqrt(0.5)
    # [x, sin(pi x0), sin(2 pi x0), sin(pi x1), sin(2 pi x1), cos(...)]
    expected = torch.tensor([[0.25, -0.5, s, 1.0, -1.0, 0.0, s, 0.0, 0.0, -1.0]])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    no_input = FrequencyEncoding(2, 2, include_input=False)
    assert no_input.out_dim == 8
    torch.testing.assert_close(no_input(torch.tensor([[0.25, -0.5]])), expected[:, 2:], atol=1e-6, rtol=0)


def test_frequency_encoding_with_zero_frequencies_is_the_identity():
    enc = FrequencyEncoding(3, 0)
    x = torch.randn(4, 3)
    assert enc.out_dim == 3
    torch.testing.assert_close(enc(x), x)


def test_mlp_layers_and_shapes():
    mlp = MLP(5, 7, 2, 3)
    linears = [m for m in mlp.net if isinstance(m, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(5, 7), (7, 7), (7, 3)]
    assert mlp(torch.randn(4, 5)).shape == (4, 3)
    assert MLP(5, 7, 0, 3)(torch.randn(2, 5)).shape == (2, 3)


# ------------------------------------------------------------------------------------------------ heads
SMALL = HeadConfig(hidden_dim=16, hidden_layers=2)


def test_slow_field_has_no_trainable_parameters_and_starts_equal_to_fast():
    torch.manual_seed(0)
    field = InstanceField(SMALL, embedding_dim=3, momentum=0.9)
    assert all(not p.requires_grad for p in field.slow.parameters())
    assert all(p.requires_grad for p in field.fast.parameters())
    trainable = {id(p) for p in field.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in field.fast.parameters()}
    x = torch.rand(8, 3) * 2 - 1
    torch.testing.assert_close(field(x, slow=True), field(x).detach())
    assert field(x).shape == (8, 3)


def test_a_loss_on_the_slow_output_gives_no_gradient_to_the_slow_field():
    torch.manual_seed(0)
    field = InstanceField(SMALL, embedding_dim=3)
    with torch.no_grad():
        for p in field.fast.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(16, 3) * 2 - 1
    slow = field(x, slow=True)
    assert not slow.requires_grad and slow.grad_fn is None
    loss = ((field(x) - slow) ** 2).sum() + slow.sum()
    loss.backward()
    assert all(p.grad is None for p in field.slow.parameters())
    assert all(p.grad is not None for p in field.fast.parameters())
    assert sum(float(p.grad.abs().sum()) for p in field.fast.parameters()) > 0


def test_update_slow_is_exactly_the_ema_of_the_parameters():
    torch.manual_seed(0)
    m = 0.9
    field = InstanceField(SMALL, embedding_dim=3, momentum=m)
    with torch.no_grad():
        for p in field.fast.parameters():
            p.add_(torch.randn_like(p))
        for p in field.slow.parameters():
            p.add_(torch.randn_like(p))
    slow_before = [p.clone() for p in field.slow.parameters()]
    fast = [p.detach().clone() for p in field.fast.parameters()]
    field.update_slow()
    for after, before, f in zip(field.slow.parameters(), slow_before, fast):
        torch.testing.assert_close(after, m * before + (1 - m) * f)
        assert not after.requires_grad
    # Fast is untouched by the update.
    for p, f in zip(field.fast.parameters(), fast):
        torch.testing.assert_close(p.detach(), f)


def test_slow_converges_to_a_fixed_fast_field():
    torch.manual_seed(1)
    field = InstanceField(SMALL, embedding_dim=3, momentum=0.9)
    with torch.no_grad():
        for p in field.fast.parameters():
            p.add_(torch.randn_like(p))
    x = torch.rand(32, 3) * 2 - 1
    gap0 = float((field(x, slow=True) - field(x).detach()).abs().max())
    assert gap0 > 0.1
    for _ in range(200):  # 0.9^200 ~ 7e-10
        field.update_slow()
    for ps, pf in zip(field.slow.parameters(), field.fast.parameters()):
        torch.testing.assert_close(ps, pf.detach(), atol=1e-5, rtol=0)  # float32 rounding of 200 updates
    torch.testing.assert_close(field(x, slow=True), field(x).detach(), atol=1e-4, rtol=1e-4)


def test_ema_update_with_momentum_zero_copies_and_one_keeps():
    a, b = MLP(3, 4, 1, 2), MLP(3, 4, 1, 2)
    before = [p.detach().clone() for p in a.parameters()]
    ema_update(a, b, 1.0)
    for p, q in zip(a.parameters(), before):
        torch.testing.assert_close(p.detach(), q)
    ema_update(a, b, 0.0)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.detach(), q.detach())


def test_semantic_field_outputs_probabilities():
    torch.manual_seed(0)
    sem = SemanticField(HeadConfig(hidden_dim=16, hidden_layers=2, position_frequencies=2), num_classes=5)
    p = sem(torch.rand(20, 3) * 2 - 1)
    assert p.shape == (20, 5)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(20))


# ------------------------------------------------------------------------------------------------ radiance
@pytest.mark.parametrize("backbone", ["tensorf", "hashgrid"])
def test_radiance_field_shapes_ranges_and_parameter_groups(backbone):
    torch.manual_seed(0)
    cfg = RadianceFieldConfig(
        backbone=backbone,
        grid_resolution=8,
        density_components=2,
        appearance_components=2,
        appearance_dim=4,
        hash_levels=2,
        hash_log2_table_size=8,
        hash_max_resolution=32,
        hash_implementation="torch",
        color_hidden_dim=8,
        color_hidden_layers=1,
    )
    field = RadianceField(cfg)
    x = torch.rand(10, 3) * 2 - 1
    vd = torch.nn.functional.normalize(torch.randn(10, 3), dim=-1)
    sigma, rgb = field(x, vd)
    assert sigma.shape == (10,) and rgb.shape == (10, 3)
    assert (sigma >= 0).all() and (rgb >= 0).all() and (rgb <= 1).all()
    torch.testing.assert_close(field.density(x), sigma)
    grid, net = field.grid_parameters(), field.network_parameters()
    assert {id(p) for p in grid}.isdisjoint({id(p) for p in net})
    assert len(grid) + len(net) == len(list(field.parameters()))


def test_radiance_field_density_is_softplus_of_grid_plus_shift():
    cfg = RadianceFieldConfig(
        grid_resolution=4,
        density_components=1,
        appearance_components=1,
        appearance_dim=2,
        color_hidden_dim=4,
        color_hidden_layers=1,
        density_shift=-10.0,
    )
    field = RadianceField(cfg)
    with torch.no_grad():
        for p in field.density_grid.parameters():
            p.zero_()
        field.density_grid.planes[0].fill_(2.0)
        field.density_grid.lines[0].fill_(3.0)  # G = 6 everywhere
    x = torch.rand(5, 3) * 2 - 1
    torch.testing.assert_close(field.density(x), torch.full((5,), math.log1p(math.exp(-4.0))))


HASH_HEAD = HeadConfig(
    hidden_dim=32,
    hidden_layers=2,
    position_frequencies=0,
    encoding="hashgrid",
    hash_levels=4,
    hash_features=2,
    hash_log2_table_size=12,
    hash_base_resolution=4,
    hash_max_resolution=32,
)


def test_hashgrid_head_input_is_grid_features_then_encoded_position():
    sem = SemanticField(HASH_HEAD, num_classes=3)
    assert sem.grid is not None and sem.mlp.net[0].in_features == 4 * 2 + 3  # L F grid features + raw xyz
    x = torch.rand(7, 3) * 2 - 1
    expected = torch.softmax(sem.mlp(torch.cat([sem.grid(x), x], dim=-1)), dim=-1)
    assert torch.allclose(sem(x), expected)
    assert [p.shape for p in sem.grid_parameters()] == [sem.grid.table.shape]
    assert len(sem.network_parameters()) == len(list(sem.mlp.parameters()))
    assert SemanticField(SMALL, 3).grid_parameters() == []  # frequency heads have no tables
    with pytest.raises(ValueError, match="encoding"):
        SemanticField(HeadConfig(encoding="voxels"), 3)


def test_hashgrid_instance_field_slow_copy_has_frozen_tables_and_follows_by_ema():
    inst = InstanceField(HASH_HEAD, embedding_dim=3, momentum=0.5)
    assert all(not p.requires_grad for p in inst.slow.parameters())
    assert torch.equal(inst.slow.grid.table, inst.fast.grid.table)
    with torch.no_grad():
        inst.fast.grid.table.add_(1.0)
    before = inst.slow.grid.table.clone()
    inst.update_slow()
    assert torch.allclose(inst.slow.grid.table, 0.5 * before + 0.5 * inst.fast.grid.table)


def test_hashgrid_head_fits_many_small_cells_that_a_frequency_head_of_the_same_width_blurs():
    # 8 x 8 x 8 checkerboard of labels in the cube: 512 cells of side 1/4, like many small objects on a floor
    torch.manual_seed(0)
    x = torch.rand(4096, 3) * 2 - 1
    y = (((x + 1) * 4).floor().long()).sum(-1) % 2

    def accuracy(cfg: HeadConfig, lr_grid: float) -> float:
        torch.manual_seed(0)
        head = SemanticField(cfg, num_classes=2)
        opt = torch.optim.Adam(
            [{"params": head.network_parameters(), "lr": 1e-2}, {"params": head.grid_parameters(), "lr": lr_grid}]
        )
        for _ in range(300):
            loss = torch.nn.functional.nll_loss(torch.log(head(x) + 1e-8), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float((head(x).argmax(-1) == y).float().mean())

    freq = accuracy(HeadConfig(hidden_dim=32, hidden_layers=2, position_frequencies=2), 0.0)
    grid = accuracy(HASH_HEAD, 5e-2)
    assert grid > 0.95 and grid > freq + 0.1, (grid, freq)


def test_hash_grid_backward_is_bit_identical_run_to_run_and_matches_indexing():
    """Many points share table rows; with 2 threads the gradient must not depend on thread timing, and it must
    equal (to float rounding) the gradient of the plain ``table[idx]`` formula."""
    from lift3d.fields.hashgrid import HashGridTorch

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        grid = HashGridTorch(num_levels=4, log2_table_size=10, base_resolution=4, max_resolution=32)
        x = torch.rand(20000, 3) * 2 - 1
        grads = []
        for _ in range(6):
            grid.zero_grad()
            (grid(x) ** 2).sum().backward()
            grads.append(grid.table.grad.clone())
        assert all(torch.equal(grads[0], g) for g in grads[1:])
    finally:
        torch.set_num_threads(previous)
    # the same loss written with advanced indexing (the reference formula, same forward values)
    table = grid.table.detach().clone().requires_grad_(True)
    x01 = ((x + 1.0) * 0.5).clamp(0.0, 1.0)
    feats = []
    for level, res in enumerate(grid.resolutions):
        pos = x01 * res
        base = pos.floor().long().clamp(max=res - 1)
        frac = pos - base
        c = base[:, None, :] + grid.corners[None]
        if grid.dense[level]:
            idx = (c[..., 0] * (res + 1) + c[..., 1]) * (res + 1) + c[..., 2]
        else:
            idx = ((c[..., 0] * 1) ^ (c[..., 1] * 2654435761) ^ (c[..., 2] * 805459861)) % grid.table_size
        idx = idx + grid.level_offsets[level]
        w = torch.where(grid.corners[None].bool(), frac[:, None, :], 1.0 - frac[:, None, :]).prod(-1)
        feats.append((table[idx] * w[..., None]).sum(1))
    (torch.cat(feats, -1) ** 2).sum().backward()
    torch.testing.assert_close(table.grad, grads[0], rtol=1e-5, atol=1e-6)
