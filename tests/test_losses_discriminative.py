"""The discriminative loss (paper 001 Eqs. 1-4, De Brabandere et al. 2017) by hand on tiny embeddings."""

from __future__ import annotations

import pytest
import torch

from lift3d.losses.discriminative import DiscriminativeLossConfig, discriminative_loss, instance_centres

CFG = DiscriminativeLossConfig()  # paper 001: ρ_a 0.5, ρ_r 1.5, λ 1, 1, 0.001


def test_pull_push_reg_by_hand():
    # instance 1: (0,0), (2,0) -> centre (1,0), both 1.0 away -> (1 - 0.5)^2 = 0.25 each, mean 0.25
    # instance 2: (1,1) alone -> pull 0; centres 1.0 apart -> push (2*1.5 - 1)^2 = 4 for both ordered pairs
    # reg: |(1,0)| = 1, |(1,1)| = sqrt 2 -> mean (1 + sqrt 2) / 2
    e = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    labels = torch.tensor([1, 1, 2, 0])  # the last pixel is ignored
    loss, parts = discriminative_loss(e, labels, CFG)
    assert parts["pull"] == pytest.approx(0.25 / 2)
    assert parts["push"] == pytest.approx(4.0)
    assert parts["reg"] == pytest.approx((1 + 2**0.5) / 2)
    assert float(loss) == pytest.approx(0.125 + 4.0 + 0.001 * (1 + 2**0.5) / 2)


def test_zero_inside_the_margins_and_no_gradient_there():
    # pixels within 0.5 of their centre, centres 4 apart (> 2 * 1.5): only the regulariser remains
    e = torch.tensor([[0.2, 0.0], [-0.2, 0.0], [4.0, 0.3], [4.0, -0.3]], requires_grad=True)
    loss, parts = discriminative_loss(e, torch.tensor([3, 3, 7, 7]), DiscriminativeLossConfig(w_reg=0.0))
    assert parts["pull"] == 0.0 and parts["push"] == 0.0
    loss.backward()
    assert torch.count_nonzero(e.grad) == 0


def test_pull_runs_over_the_whole_clip_not_per_frame():
    # one instance seen in two frames at (0,0) and (3,0): over the clip the centre is (1.5,0), both pixels 1.5 away
    # -> (1.5 - 0.5)^2 = 1; a per-frame loss would see two perfect one-pixel clusters and give 0
    frames = torch.tensor([[[0.0, 0.0]], [[3.0, 0.0]]])  # [T, N, p]
    labels = torch.tensor([[4], [4]])
    _, parts = discriminative_loss(frames.reshape(-1, 2), labels.reshape(-1), CFG)
    assert parts["pull"] == pytest.approx(1.0)
    per_frame = [discriminative_loss(frames[t], labels[t], CFG)[1]["pull"] for t in range(2)]
    assert per_frame == [0.0, 0.0]


def test_centres_and_edge_cases():
    ids, centres = instance_centres(torch.tensor([[1.0], [3.0], [10.0]]), torch.tensor([5, 5, 2]))
    assert ids.tolist() == [2, 5] and centres[:, 0].tolist() == [10.0, 2.0]
    loss, parts = discriminative_loss(torch.zeros(3, 2, requires_grad=True), torch.zeros(3, dtype=torch.long), CFG)
    assert float(loss) == 0.0 and parts["push"] == 0.0
    with pytest.raises(ValueError, match="one label per embedding"):
        discriminative_loss(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), CFG)
