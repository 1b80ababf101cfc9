"""Depth losses for dense and sparse depth (0 = unknown): hand values, and every depth pixel weighs the same in a
dense and in a sparse batch (the fix for sparse SfM depth making fits worse than no depth)."""

from __future__ import annotations

import pytest
import torch

from lift3d.losses.depth import depth_share, expected_depth_loss, line_of_sight_loss


def test_expected_depth_loss_by_hand():
    rendered = torch.tensor([1.0, 5.0, 3.0, 9.0])
    depth = torch.tensor([2.0, 5.0, 0.0, 7.0])
    used = torch.tensor([True, True, False, True])  # ray 2 has no depth
    # errors / s = (-0.5, 0, 1): mean of squares = 1.25 / 3; share 3/4
    assert depth_share(depth) == 0.75 and depth_share(depth, per_pixel=False) == 1.0
    assert float(expected_depth_loss(rendered, depth, used, 2.0, 0.75)) == pytest.approx(0.75 * 1.25 / 3, rel=1e-6)


def test_line_of_sight_loss_by_hand():
    # two rays with depth, three samples each; band 0.5; |d| = 1 and 2
    weights = torch.tensor([[0.1, 0.6, 0.2], [0.3, 0.3, 0.4]])
    t = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    depth = torch.tensor([2.0, 2.0])
    # ray 0: |t - D| |d| = (1, 0, 1) -> outside: samples 0, 2 -> 0.3;  ray 1: (2, 0, 2) -> 0.7; mean 0.5
    loss = line_of_sight_loss(weights, t, depth, torch.tensor([1.0, 2.0]), band=0.5, share=0.25)
    assert float(loss) == pytest.approx(0.25 * 0.5)


@pytest.mark.parametrize("per_pixel, ratio", [(True, 1.0), (False, 64.0)])
def test_a_depth_pixel_weighs_the_same_in_a_dense_and_a_sparse_batch(per_pixel, ratio):
    """The gradient reaching a ray's rendered depth from its own depth pixel: in a dense batch of 64 rays and in a
    sparse one where only that ray has depth. Per pixel they are equal; plain means (the old behaviour) give the
    sparse pixel 64 times the weight."""
    r = 64
    torch.manual_seed(0)
    target = torch.rand(r) + 1.0
    gradients = []
    for sparse in (False, True):
        depth = target.clone()
        if sparse:
            depth[1:] = 0.0
        rendered = (target + 0.3).requires_grad_(True)
        used = depth > 0
        loss = expected_depth_loss(rendered, depth, used, 1.5, depth_share(depth, per_pixel))
        loss.backward()
        gradients.append(float(rendered.grad[0]))
        assert sparse is False or bool((rendered.grad[1:] == 0).all())  # rays without depth get nothing
    assert gradients[1] / gradients[0] == pytest.approx(ratio, rel=1e-5)
