"""Spatial embeddings (Neven et al. 2019): the Gaussian score and the sigma term by hand, the loss on perfect and
on flat predictions, and the clustering recovering known instances from synthetic maps without being told how many."""

from __future__ import annotations

import math

import pytest
import torch

from lift3d.twod.spatial_embeddings import (
    ClusteringConfig,
    SpatialEmbeddingLossConfig,
    cluster_spatial_embeddings,
    coordinate_map,
    gaussian_instance_score,
    sigma_smoothness,
    spatial_embedding_loss,
)


def test_coordinate_map_by_hand():
    xy = coordinate_map(2, 3, pixels_per_unit=2.0)
    assert torch.equal(xy[0], torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]))
    assert torch.equal(xy[1], torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))


def test_gaussian_score_by_hand():
    e = torch.tensor([[0.5, 1.0, 1.0], [0.0, 0.0, 1.0]])  # three embeddings (x row, y row)
    c = torch.tensor([1.0, 0.0])
    one = gaussian_instance_score(e, c, torch.tensor([math.log(4.0) / 10]))  # precision exp(10 s) = 4
    assert torch.allclose(one, torch.tensor([math.exp(-1.0), 1.0, math.exp(-4.0)]))
    two = gaussian_instance_score(e, c, torch.tensor([math.log(2.0) / 10, math.log(3.0) / 10]))
    assert torch.allclose(two, torch.tensor([math.exp(-0.5), 1.0, math.exp(-3.0)]))


def test_sigma_smoothness_by_hand_with_gradient():
    s = torch.tensor([[0.1, 0.3, 0.5]], requires_grad=True)
    loss = sigma_smoothness(s)
    assert float(loss.detach()) == pytest.approx(0.08 / 3)
    loss.backward()  # mean held constant: d/dσ_i = 2 (σ_i - 0.3) / 3
    assert torch.allclose(s.grad, torch.tensor([[-0.4 / 3, 0.0, 0.4 / 3]]), atol=1e-6)


def _perfect_maps(instance: torch.Tensor, ppu: float, precision: float = 400.0):
    """Offsets pointing every instance pixel at its centroid, constant sigma, seeds = 1 on instances."""
    h, w = instance.shape
    xy = coordinate_map(h, w, ppu)
    target = xy.clone()
    for k in instance.unique():
        if k == 0:
            continue
        m = instance == k
        target[:, m] = xy[:, m].mean(1, keepdim=True)
    offsets = torch.atanh((target - xy).clamp(-0.999, 0.999))
    sigma = torch.full((1, h, w), math.log(precision) / 10)
    return offsets, sigma


def _two_touching_squares_and_one_apart():
    inst = torch.zeros(16, 16, dtype=torch.long)
    inst[2:7, 2:7] = 1
    inst[2:7, 7:12] = 2  # touches instance 1
    inst[10:15, 9:14] = 3
    return inst


def test_loss_is_small_on_perfect_maps_and_by_hand_on_flat_seeds():
    ppu = 16.0
    inst = _two_touching_squares_and_one_apart()
    offsets, sigma = _perfect_maps(inst, ppu)
    cfg = SpatialEmbeddingLossConfig(w_semantic=0.0)
    classes = [{1: 0, 2: 0, 3: 0}]
    seed_logits = torch.where(inst > 0, 20.0, -20.0).float()[None, None]
    loss, parts = spatial_embedding_loss(offsets[None], sigma[None], seed_logits, inst[None], classes, cfg, ppu)
    assert parts["instance"] == pytest.approx(0.0, abs=1e-6)  # every pixel on its side of the margin
    assert parts["sigma"] == pytest.approx(0.0, abs=1e-12)
    assert parts["seed"] == pytest.approx(0.0, abs=1e-6)
    # flat seeds of 0.5: fg pixels (φ = 1) cost fg_w * 0.25 each, bg pixels 0.25 each, over H*W
    flat = torch.zeros_like(seed_logits)
    _, parts = spatial_embedding_loss(offsets[None], sigma[None], flat, inst[None], classes, cfg, ppu)
    n_fg = int((inst > 0).sum())
    assert parts["seed"] == pytest.approx((10 * 0.25 * n_fg + 0.25 * (256 - n_fg)) / 256, rel=1e-5)


def test_untrained_offsets_give_a_positive_instance_loss_with_gradient():
    ppu = 16.0
    inst = _two_touching_squares_and_one_apart()
    offsets = torch.zeros(1, 2, 16, 16, requires_grad=True)
    sigma = torch.ones(1, 1, 16, 16, requires_grad=True)
    seeds = torch.zeros(1, 1, 16, 16, requires_grad=True)
    loss, parts = spatial_embedding_loss(
        offsets, sigma, seeds, inst[None], [{1: 0, 2: 0, 3: 0}], SpatialEmbeddingLossConfig(), ppu
    )
    loss.backward()
    assert parts["instance"] > 0.1
    assert offsets.grad.abs().sum() > 0 and sigma.grad.abs().sum() > 0 and seeds.grad.abs().sum() > 0


def test_clustering_recovers_touching_instances_without_their_number():
    ppu = 16.0
    inst = _two_touching_squares_and_one_apart()
    offsets, sigma = _perfect_maps(inst, ppu)
    seed = torch.where(inst > 0, 0.95, 0.0)[None]
    seed[0, 4, 4], seed[0, 4, 9], seed[0, 12, 11] = 0.99, 0.98, 0.97  # seeds at the centres
    found = cluster_spatial_embeddings(offsets, sigma, seed, ClusteringConfig(min_pixels=4), ppu)
    assert len(found) == 3
    got = sorted(tuple(sorted(map(tuple, f.mask.nonzero().tolist()))) for f in found)
    want = sorted(tuple(sorted(map(tuple, (inst == k).nonzero().tolist()))) for k in (1, 2, 3))
    assert got == want
    assert [f.channel for f in found] == [0, 0, 0]
    assert all(0.95 <= f.score <= 0.99 for f in found)


def test_clustering_per_class_channel_and_min_size():
    ppu = 16.0
    inst = _two_touching_squares_and_one_apart()
    offsets, sigma = _perfect_maps(inst, ppu)
    seed = torch.zeros(2, 16, 16)
    seed[0][(inst == 1) | (inst == 2)] = 0.95  # class channel 0: instances 1, 2
    seed[1][inst == 3] = 0.95  # class channel 1: instance 3
    found = cluster_spatial_embeddings(offsets, sigma, seed, ClusteringConfig(min_pixels=4), ppu)
    assert sorted((f.channel, int(f.mask.sum())) for f in found) == [(0, 25), (0, 25), (1, 25)]
    # a 25-pixel instance is not more than 25 pixels: nothing is kept
    assert cluster_spatial_embeddings(offsets, sigma, seed, ClusteringConfig(min_pixels=25), ppu) == []
    # seeds below the seed threshold start nothing
    assert cluster_spatial_embeddings(offsets, sigma, seed * 0.9, ClusteringConfig(min_pixels=4), ppu) == []
