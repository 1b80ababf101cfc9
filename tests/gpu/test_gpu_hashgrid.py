"""The hash grid on CUDA: the torch reference on CUDA equals itself on CPU (values and table gradients);
tinycudann's grid is held to the invariants every multiresolution hash encoding has.

Why tinycudann is not compared value for value with :class:`HashGridTorch`: its tables cannot be mapped onto the
reference's exactly. tinycudann places level l's lattice at ``x * (N_min b^l - 1) + 0.5`` (a half-cell offset and
one cell fewer than the reference's ``x N_l``), rounds its level resolutions and switches from dense to hashed
tables by its own rule, pads each level's table to a multiple of 8 rows, lays the parameters out in its own order
and interpolates in half precision. The same trilinear weights on the same corners do not exist on both sides, so
the checks are: a constant table gives that constant everywhere (the 8 weights of a level sum to 1), the output is
linear in the parameters and its gradient agrees with it (Euler: L(theta) = <dL/dtheta, theta>), and one point's
gradient reaches at most 8 rows per level.
"""

from __future__ import annotations

import copy

import torch

from lift3d.fields.hashgrid import HashGridTorch, make_hash_grid

CUDA = "cuda"
SIZES = dict(num_levels=6, features_per_level=2, log2_table_size=12, base_resolution=4, max_resolution=128)
"""Levels 4..128: the coarse levels dense, the fine ones hashed (2^12 rows)."""


def _points(n: int = 4096, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=gen) * 2 - 1
    x[:8] = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [1.5, 0.0, 0.0], [0.0, -2.0, 0.3]] * 2)
    return x


def test_torch_hash_grid_on_cuda_equals_cpu_values_and_gradients():
    torch.manual_seed(0)
    cpu = HashGridTorch(**SIZES, init_scale=1.0)
    assert cpu.dense[0] and not cpu.dense[-1]
    gpu = copy.deepcopy(cpu).to(CUDA)
    x = _points()
    out_cpu, out_gpu = cpu(x), gpu(x.to(CUDA))
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-6, rtol=1e-5)
    coef = torch.randn(out_cpu.shape)
    (out_cpu * coef).sum().backward()
    (out_gpu * coef.to(CUDA)).sum().backward()
    torch.testing.assert_close(gpu.table.grad.cpu(), cpu.table.grad, atol=1e-5, rtol=1e-4)


def test_tcnn_constant_table_gives_that_constant_everywhere(tcnn_cuda):
    enc = make_hash_grid(tcnn_cuda, **SIZES)
    assert enc.out_dim == HashGridTorch(**SIZES).out_dim
    with torch.no_grad():
        for p in enc.parameters():
            p.fill_(0.5)
        out = enc(_points().to(CUDA))
    assert out.dtype == torch.float32 and out.shape == (4096, enc.out_dim)
    torch.testing.assert_close(out, torch.full_like(out, 0.5), atol=2e-3, rtol=0)  # half-precision weights


def test_tcnn_output_is_linear_in_the_parameters_and_its_gradient_agrees(tcnn_cuda):
    torch.manual_seed(0)
    enc = make_hash_grid(tcnn_cuda, **SIZES)
    (params,) = list(enc.parameters())
    with torch.no_grad():
        params.uniform_(-1.0, 1.0)
    x = _points(512).to(CUDA)
    coef = torch.randn(512, enc.out_dim, device=CUDA)
    loss = (enc(x) * coef).sum()
    (grad,) = torch.autograd.grad(loss, params)
    euler = (grad.float() * params.detach().float()).sum()
    torch.testing.assert_close(euler, loss.detach(), rtol=2e-2, atol=1e-2)
    with torch.no_grad():  # doubling the parameters doubles the output
        before = enc(x)
        params.mul_(2.0)
        torch.testing.assert_close(enc(x), 2.0 * before, rtol=1e-2, atol=1e-2)


def test_tcnn_gradient_of_one_point_reaches_at_most_8_rows_per_level(tcnn_cuda):
    enc = make_hash_grid(tcnn_cuda, **SIZES)
    (params,) = list(enc.parameters())
    out = enc(torch.tensor([[0.123, -0.456, 0.789]], device=CUDA))
    (grad,) = torch.autograd.grad(out.sum(), params)
    touched = int((grad != 0).sum())
    assert 0 < touched <= 8 * SIZES["num_levels"] * SIZES["features_per_level"]
