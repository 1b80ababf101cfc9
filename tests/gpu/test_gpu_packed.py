"""The model's packed CUDA path (lift3d.models.packed_sampling): nerfacc's occupancy marching and packed weights
inside ``LiftModel.sample_rays`` against the same model on the torch twin, values and gradients; and the
``cuda`` dispatch mode takes the packed path on a CUDA device (the backend that ran is asserted)."""

from __future__ import annotations

import numpy as np
import torch

from lift3d.backends import resolve_backends
from lift3d.fields.heads import HeadConfig
from lift3d.fields.radiance import RadianceFieldConfig
from lift3d.models import LiftModel, ModelConfig

CUDA = "cuda"


def _model(volume: str, packed: str = "on") -> LiftModel:
    torch.manual_seed(0)
    cfg = ModelConfig(
        radiance=RadianceFieldConfig(
            grid_resolution=16,
            density_components=2,
            appearance_components=2,
            appearance_dim=4,
            color_hidden_dim=8,
            color_hidden_layers=1,
            density_shift=-4.0,
            hash_implementation="torch",
        ),
        semantic=HeadConfig(hidden_dim=16, hidden_layers=2),
        instance=HeadConfig(hidden_dim=16, hidden_layers=2),
        num_samples=256,
        num_samples_render=256,
        depth_guided_samples=0,
        occupancy_resolution=16,
        background="none",
        packed_sampling=packed,
        volume_rendering_backend=volume,
    )
    backends = resolve_backends(CUDA, volume, "torch")
    m = LiftModel(cfg, 3, np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), device=CUDA, backends=backends).to(CUDA)
    occ = m.occupancy.occupied.view(16, 16, 16)
    occ[:, :, 10:] = False  # some empty space to skip
    return m


def _rays(n: int = 300):
    gen = torch.Generator().manual_seed(1)
    origins = torch.tensor([0.0, 0.0, 3.0]) + 0.3 * torch.randn(n, 3, generator=gen)
    target = 0.6 * (torch.rand(n, 3, generator=gen) * 2 - 1)
    return origins.to(CUDA), (target - origins).to(CUDA)


def test_packed_nerfacc_path_equals_the_packed_torch_path(nerfacc_cuda):
    acc, twin = _model("nerfacc"), _model("torch")
    twin.load_state_dict(acc.state_dict())
    twin.occupancy.occupied = acc.occupancy.occupied.clone()
    o, d = _rays()
    bg = torch.tensor([0.2, 0.4, 0.6], device=CUDA)
    a = acc.sample_rays(o, d, None, jitter=False, with_color=True, background=bg)
    b = twin.sample_rays(o, d, None, jitter=False, with_color=True, background=bg)
    assert acc.last_backend == "nerfacc" and twin.last_backend == "torch"  # the accelerated code ran
    assert 0.05 < float(b.opacity.mean().detach()) < 0.99
    torch.testing.assert_close(a.opacity, b.opacity, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.rgb, b.rgb, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.depth, b.depth, atol=1e-4, rtol=1e-4)
    ga = torch.autograd.grad(a.rgb.sum() + a.depth.sum(), list(acc.radiance.parameters()), allow_unused=True)
    gb = torch.autograd.grad(b.rgb.sum() + b.depth.sum(), list(twin.radiance.parameters()), allow_unused=True)
    for x, y in zip(ga, gb):
        assert (x is None) == (y is None)
        if x is not None:
            torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-3)


def test_cuda_mode_takes_the_packed_path_on_cuda(nerfacc_cuda):
    m = _model("nerfacc", packed="cuda")
    o, d = _rays(16)
    s = m.sample_rays(o, d, None, jitter=True, with_color=False)
    assert m.last_backend == "nerfacc"
    assert torch.isfinite(m.render_embedding(s)).all()
