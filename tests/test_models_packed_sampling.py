"""lift3d.models.packed_sampling (the packed layout of the CUDA path), its torch twin on the CPU: padding by hand,
the same rendering as the dense path (both approximate Eq. 1's integral), empty cells skipped, the dispatch."""

from __future__ import annotations

import numpy as np
import torch

from lift3d.fields.heads import HeadConfig
from lift3d.fields.radiance import RadianceFieldConfig
from lift3d.models import LiftModel, ModelConfig
from lift3d.models.packed_sampling import pad_packed


def model(packed: str, occupancy: int = 8, shift: float = 0.0) -> LiftModel:
    torch.manual_seed(0)
    cfg = ModelConfig(
        radiance=RadianceFieldConfig(
            grid_resolution=16,
            density_components=2,
            appearance_components=2,
            appearance_dim=4,
            color_hidden_dim=8,
            color_hidden_layers=1,
            density_shift=shift,
        ),
        semantic=HeadConfig(hidden_dim=16, hidden_layers=2),
        instance=HeadConfig(hidden_dim=16, hidden_layers=2),
        num_samples=512,
        num_samples_render=512,
        depth_guided_samples=0,
        occupancy_resolution=occupancy,
        background="none",
        packed_sampling=packed,
        volume_rendering_backend="torch",
    )
    return LiftModel(cfg, num_classes=3, aabb=np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))


def rays(n: int = 64):
    gen = torch.Generator().manual_seed(1)
    origins = torch.tensor([0.0, 0.0, 3.0]) + 0.3 * torch.randn(n, 3, generator=gen)
    target = 0.5 * (torch.rand(n, 3, generator=gen) * 2 - 1)
    return origins, target - origins


def test_pad_packed_by_hand():
    ray_indices = torch.tensor([0, 0, 2, 2, 2])
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (dense,) = pad_packed(ray_indices, 4, w)
    expected = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [3.0, 4.0, 5.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(dense, expected)


def test_packed_renders_what_the_dense_path_renders():
    dense, packed = model("off", shift=-4.0), model("on", shift=-4.0)
    packed.load_state_dict(dense.state_dict())
    o, d = rays()
    bg = torch.tensor([0.2, 0.4, 0.6])
    a = dense.sample_rays(o, d, None, jitter=False, with_color=True, background=bg)
    b = packed.sample_rays(o, d, None, jitter=False, with_color=True, background=bg)
    assert dense.last_backend == "dense" and packed.last_backend == "torch"
    assert b.weights.shape[0] == 64 and b.weights.shape[1] < a.weights.shape[1]  # packed: only steps in the box
    assert 0.2 < float(a.opacity.mean().detach()) < 0.99  # a field that is neither empty nor opaque
    torch.testing.assert_close(b.opacity, a.opacity, atol=1e-2, rtol=0)
    torch.testing.assert_close(b.rgb, a.rgb, atol=1e-2, rtol=0)
    torch.testing.assert_close(b.depth, a.depth, atol=2e-2, rtol=0)
    # gradients reach the density and colour fields the same way
    ga = torch.autograd.grad(a.rgb.sum(), dense.radiance.parameters(), allow_unused=True)
    gb = torch.autograd.grad(b.rgb.sum(), packed.radiance.parameters(), allow_unused=True)
    for x, y in zip(ga, gb):
        if x is not None:
            assert torch.nn.functional.cosine_similarity(x.flatten(), y.flatten(), dim=0) > 0.99


def test_empty_cells_get_no_samples_and_heads_work_on_the_padded_layout():
    m = model("on", occupancy=8)
    occ = m.occupancy.occupied.view(8, 8, 8)
    occ[:, :, 4:] = False  # z >= 0 empty
    o, d = rays()
    s = m.sample_rays(o, d, None, jitter=False, with_color=False)
    live = s.weights > 0
    assert (s.points[live][:, 2] < 0).all()
    emb = m.render_embedding(s)
    assert emb.shape == (64, 3) and torch.isfinite(emb).all()


def test_cuda_mode_stays_dense_on_the_cpu_and_depth_rays_stay_dense():
    m = model("cuda")
    o, d = rays(8)
    m.sample_rays(o, d, None, jitter=False, with_color=False)
    assert m.last_backend == "dense"
    on = model("on")
    on.cfg.depth_guided_samples = 8
    assert on.uses_packed_sampling(None) and not on.uses_packed_sampling(torch.ones(8))
    assert not model("on", occupancy=0).uses_packed_sampling(None)  # packed marching needs the occupancy grid


def test_mixed_precision_colour_is_close_to_float32_and_density_is_unchanged():
    full, mixed = model("on", shift=-4.0), model("on", shift=-4.0)
    mixed.load_state_dict(full.state_dict())
    mixed.cfg.mixed_precision = True
    o, d = rays()
    a = full.sample_rays(o, d, None, jitter=False, with_color=True, background=torch.zeros(3))
    b = mixed.sample_rays(o, d, None, jitter=False, with_color=True, background=torch.zeros(3))
    torch.testing.assert_close(b.weights, a.weights)  # density and weights stay float32: identical
    assert b.rgb.dtype == torch.float32
    err = (b.rgb - a.rgb).abs().max()
    assert 0 < err < 2e-2  # bfloat16 ran (not bit-identical) and stays within 8 mantissa bits' error
    g = torch.autograd.grad(b.rgb.sum(), [p for p in mixed.radiance.color_mlp.parameters()])
    assert all(torch.isfinite(x).all() and x.dtype == torch.float32 for x in g)
