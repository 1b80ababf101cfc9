"""The whole LiftModel on CUDA against the same model on CPU: sampling, occupancy culling, volume rendering (torch
and nerfacc backends), colour, semantic and instance renders, and the gradients of a loss through all of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lift3d.backends import Backends, resolve_backends
from lift3d.fields.heads import HeadConfig
from lift3d.fields.radiance import RadianceFieldConfig
from lift3d.models import LiftModel, ModelConfig

CUDA = "cuda"
AABB = np.array([[-2.0, -1.0, 0.0], [2.0, 1.0, 1.5]])


def _config(backbone: str) -> ModelConfig:
    return ModelConfig(
        radiance=RadianceFieldConfig(
            backbone=backbone,
            grid_resolution=16,
            density_components=4,
            appearance_components=4,
            appearance_dim=8,
            hash_levels=4,
            hash_log2_table_size=12,
            hash_max_resolution=64,
            color_hidden_dim=16,
            color_hidden_layers=1,
            density_shift=-1.0,
        ),
        semantic=HeadConfig(hidden_dim=16, hidden_layers=2),
        instance=HeadConfig(hidden_dim=16, hidden_layers=2),
        num_samples=48,
        num_samples_render=48,
        depth_guided_samples=0,
        occupancy_resolution=8,
    )


def _rays(num_rays: int = 256):
    gen = torch.Generator().manual_seed(3)
    origins = torch.tensor([0.0, -4.0, 0.75]) + 0.3 * torch.randn(num_rays, 3, generator=gen)
    dirs = torch.tensor([0.0, 1.0, 0.0]) + 0.35 * torch.randn(num_rays, 3, generator=gen)
    return origins, dirs


def _render(model: LiftModel, device: str):
    origins, dirs = (t.to(device) for t in _rays())
    samples = model.sample_rays(origins, dirs, None, jitter=False, with_color=True)
    semantic = model.render_semantic(samples)
    embedding = model.render_embedding(samples)
    loss = samples.rgb.square().sum() + samples.depth.sum() + semantic.exp().square().sum() + embedding.sum()
    model.zero_grad()
    loss.backward()
    grads = {n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None}
    return {
        "weights": samples.weights.detach().cpu(),
        "rgb": samples.rgb.detach().cpu(),
        "semantic": semantic.detach().cpu(),
        "embedding": embedding.detach().cpu(),
    }, grads


@pytest.mark.parametrize("backbone", ["tensorf", "hashgrid"])
@pytest.mark.parametrize("volume_rendering", ["torch", "nerfacc"])
def test_model_on_cuda_renders_and_backpropagates_as_on_cpu(backbone, volume_rendering, request):
    if volume_rendering == "nerfacc":
        request.getfixturevalue("nerfacc_cuda")
    torch.manual_seed(0)
    cpu = LiftModel(_config(backbone), 4, AABB, "cpu", backends=resolve_backends("cpu", "torch", "torch"))
    cpu.update_occupancy()  # a fresh field is nearly uniform: keep the denser half of the cells occupied
    cpu.occupancy.occupied = cpu.occupancy.density > cpu.occupancy.density.median()
    assert 0 < int(cpu.occupancy.occupied.sum()) < cpu.occupancy.occupied.numel()
    backends = Backends(volume_rendering=volume_rendering, hash_grid="torch", device=CUDA)
    gpu = LiftModel(_config(backbone), 4, AABB, CUDA, backends=backends).to(CUDA)
    gpu.load_state_dict(cpu.state_dict())
    gpu.occupancy.load_state_dict(
        {k: (v.to(CUDA) if torch.is_tensor(v) else v) for k, v in cpu.occupancy.state_dict().items()}
    )
    out_cpu, grads_cpu = _render(cpu, "cpu")
    out_gpu, grads_gpu = _render(gpu, CUDA)
    assert float(out_cpu["weights"].sum(-1).max()) > 0.5  # some rays see dense matter
    for key in out_cpu:
        torch.testing.assert_close(out_gpu[key], out_cpu[key], atol=1e-4, rtol=1e-4, msg=key)
    assert grads_gpu.keys() == grads_cpu.keys() and len(grads_cpu) > 10
    for name in grads_cpu:
        scale = float(grads_cpu[name].abs().max()) + 1e-6
        torch.testing.assert_close(grads_gpu[name] / scale, grads_cpu[name] / scale, atol=1e-3, rtol=1e-3, msg=name)


def test_model_with_tinycudann_renders_a_sub_distribution_and_trains_its_grid(tcnn_cuda):
    torch.manual_seed(0)
    backends = resolve_backends(CUDA, "torch", "tcnn")
    model = LiftModel(_config("hashgrid"), 4, AABB, CUDA, backends=backends).to(CUDA)
    origins, dirs = (t.to(CUDA) for t in _rays())
    samples = model.sample_rays(origins, dirs, None, jitter=True, with_color=True)
    w = samples.weights
    assert torch.isfinite(w).all() and (w >= 0).all() and (w.sum(-1) <= 1 + 1e-5).all()
    samples.rgb.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.radiance.grid_parameters())
