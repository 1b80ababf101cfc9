"""nerfacc's volume rendering on CUDA against the pure-PyTorch twins: packed (its CUDA scan kernels) and dense."""

from __future__ import annotations

import torch

from lift3d.render.volume import render_weights, render_weights_packed_torch, render_weights_torch

CUDA = "cuda"


def _ragged_samples(num_rays: int = 257, max_samples: int = 40, seed: int = 0):
    """Sorted, ragged samples on CUDA: (t_starts, t_ends, sigmas, ray_indices) each [n], as marching leaves them;
    some rays empty, a few opaque samples."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_samples + 1, (num_rays,), generator=gen)
    counts[:3] = 0
    ray_indices = torch.repeat_interleave(torch.arange(num_rays), counts)
    steps = 0.02 + 0.2 * torch.rand(ray_indices.shape[0], generator=gen)
    first = torch.cumsum(counts, 0) - counts
    cum = torch.cumsum(steps, 0)
    ends = cum - (cum - steps)[first[ray_indices]]  # per-ray cumulative steps: contiguous intervals from 0
    starts = ends - steps
    sigmas = torch.exp(2.0 * torch.randn(ray_indices.shape[0], generator=gen))
    sigmas[::97] = 1e4
    return [t.to(CUDA) for t in (starts, ends, sigmas, ray_indices)]


def test_nerfacc_packed_weights_equal_the_packed_twin_values_and_gradients(nerfacc_cuda, monkeypatch):
    kernel_calls = []
    real_kernel = nerfacc_cuda.cuda.exclusive_sum

    def spy(*args, **kwargs):  # counts calls of nerfacc's CUDA exclusive-scan kernel, then runs it
        kernel_calls.append(1)
        return real_kernel(*args, **kwargs)

    monkeypatch.setattr(nerfacc_cuda.cuda, "exclusive_sum", spy)
    starts, ends, sigmas, rays = _ragged_samples()
    num_rays = 257
    s_acc = sigmas.clone().requires_grad_(True)
    s_twin = sigmas.clone().requires_grad_(True)
    w_acc = nerfacc_cuda.render_weight_from_density(starts, ends, s_acc, ray_indices=rays, n_rays=num_rays)[0]
    assert len(kernel_calls) == 1  # the forward pass ran nerfacc's CUDA kernel
    w_twin = render_weights_packed_torch(starts, ends, s_twin, rays, num_rays)
    torch.testing.assert_close(w_acc, w_twin, atol=1e-6, rtol=1e-5)
    coef = torch.rand(w_acc.shape, device=CUDA)
    (w_acc * coef).sum().backward()
    (w_twin * coef).sum().backward()
    assert len(kernel_calls) == 2  # and the backward pass too
    torch.testing.assert_close(s_acc.grad, s_twin.grad, atol=1e-5, rtol=1e-4)
    # The same through packed_info (start, count) per ray.
    packed_info = nerfacc_cuda.pack_info(rays, num_rays)
    w_info = nerfacc_cuda.render_weight_from_density(starts, ends, sigmas, packed_info=packed_info)[0]
    torch.testing.assert_close(w_info, w_twin.detach(), atol=1e-6, rtol=1e-5)


def test_packed_twin_on_cuda_equals_the_packed_twin_on_cpu():
    starts, ends, sigmas, rays = _ragged_samples(seed=1)
    on_cuda = render_weights_packed_torch(starts, ends, sigmas, rays, 257)
    on_cpu = render_weights_packed_torch(starts.cpu(), ends.cpu(), sigmas.cpu(), rays.cpu(), 257)
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-6, rtol=1e-5)


def test_dense_weights_nerfacc_on_cuda_equal_the_twin_on_cuda_and_cpu(nerfacc_cuda):
    gen = torch.Generator().manual_seed(2)
    t = torch.rand(300, 65, generator=gen).cumsum(-1)
    sigmas = torch.exp(2.0 * torch.randn(300, 64, generator=gen))
    starts, ends = t[:, :-1], t[:, 1:]
    s_acc = sigmas.to(CUDA, copy=True).requires_grad_(True)
    s_cpu = sigmas.clone().requires_grad_(True)
    w_acc = render_weights(starts.to(CUDA), ends.to(CUDA), s_acc, "nerfacc")
    w_twin = render_weights(starts.to(CUDA), ends.to(CUDA), sigmas.to(CUDA), "torch")
    torch.testing.assert_close(w_acc, w_twin, atol=0, rtol=0)  # the same torch ops in the same order
    w_cpu = render_weights_torch(starts, ends, s_cpu)
    torch.testing.assert_close(w_acc.cpu(), w_cpu, atol=1e-6, rtol=1e-5)
    coef = torch.rand(w_cpu.shape, generator=gen)
    (w_acc * coef.to(CUDA)).sum().backward()
    (w_cpu * coef).sum().backward()
    torch.testing.assert_close(s_acc.grad.cpu(), s_cpu.grad, atol=1e-5, rtol=1e-4)
