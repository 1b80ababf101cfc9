"""Checks of lift3d.losses.dino (Contrastive Lift appendix E, DINO-style slow/fast baseline)."""

import math

import pytest
import torch
from torch import nn

from lift3d.fields.heads import ema_update
from lift3d.losses import DinoHead, dino_loss

LN3, LN4 = math.log(3.0), math.log(4.0)


def _toy():
    # Identity heads so the arithmetic is visible; P = D = 2, t_s = 0.1, t_t = 0.04, centre 0.
    # Teacher: s0 = [0.04 ln 3, 0] (seg 1) -> softmax([ln 3, 0]) = [0.75, 0.25]
    #          s1 = [0, 0]          (seg 2) -> [0.5, 0.5]
    #          s2 = [0, 0]          (seg 1) -> [0.5, 0.5];   s3 (id 0) ignored.
    #   mean teacher of seg 1 = [0.625, 0.375], of seg 2 = [0.5, 0.5]
    # Student: f0 = [0.1 ln 4, 0] (seg 1) -> [0.8, 0.2];  f1 = [0, 0] (seg 2) -> [0.5, 0.5];
    #          f2 (seg 3, absent from S) and f3 (id 0) are not anchors.
    # CE: f0: -(0.625 ln 0.8 + 0.375 ln 0.2) = 0.139465 + 0.603539 = 0.743004;  f1: ln 2 = 0.693147
    #   loss = (0.743004 + 0.693147) / 2 = 0.718076
    fast = torch.tensor([[0.1 * LN4, 0.0], [0.0, 0.0], [5.0, 1.0], [3.0, 3.0]], dtype=torch.float64)
    slow = torch.tensor([[0.04 * LN3, 0.0], [0.0, 0.0], [0.0, 0.0], [9.0, 9.0]], dtype=torch.float64)
    return fast, torch.tensor([1, 2, 3, 0]), slow, torch.tensor([1, 2, 1, 0])


def test_hand_value_with_identity_heads():
    fast, fid, slow, sid = _toy()
    center = torch.zeros(2, dtype=torch.float64)
    loss, batch_center = dino_loss(fast, fid, slow, sid, nn.Identity(), nn.Identity(), center=center)
    assert math.isclose(loss.item(), 0.7180755586, rel_tol=1e-9)
    # Batch centre: mean raw teacher output over the segmented slow pixels s0, s1, s2.
    assert torch.allclose(batch_center, torch.tensor([0.04 * LN3 / 3, 0.0], dtype=torch.float64))


def test_centering_is_subtracted_from_teacher_scores():
    # Centre c = [0.04 ln 3, 0]: s0 -> [0.5, 0.5]; s1, s2 -> softmax([-ln 3, 0]) = [0.25, 0.75]
    #   seg 1 mean = [0.375, 0.625]; seg 2 = [0.25, 0.75]
    #   f0: -(0.375 ln 0.8 + 0.625 ln 0.2) = 0.083679 + 1.005899 = 1.089578
    #   f1: -(0.25 ln 0.5 + 0.75 ln 0.5) = ln 2 = 0.693147;  loss = 0.891362
    fast, fid, slow, sid = _toy()
    center = torch.tensor([0.04 * LN3, 0.0], dtype=torch.float64)
    loss, _ = dino_loss(fast, fid, slow, sid, nn.Identity(), nn.Identity(), center=center)
    expected = (-(0.375 * math.log(0.8) + 0.625 * math.log(0.2)) + math.log(2.0)) / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-9)


def test_gradients_only_into_fast_side():
    torch.manual_seed(0)
    head_fast = DinoHead(3, hidden_dim=16, num_prototypes=8)
    head_slow = DinoHead(3, hidden_dim=16, num_prototypes=8)
    fast = torch.randn(6, 3, requires_grad=True)
    slow = torch.randn(6, 3, requires_grad=True)
    ids = torch.tensor([1, 1, 2, 2, 3, 3])
    loss, batch_center = dino_loss(fast, ids, slow, ids, head_fast, head_slow)
    loss.backward()
    assert fast.grad is not None and fast.grad.abs().sum() > 0
    assert all(p.grad is not None for p in head_fast.parameters())
    assert slow.grad is None
    assert all(p.grad is None for p in head_slow.parameters())
    assert not batch_center.requires_grad


def test_center_ema_and_ema_update_leaves_center_alone():
    head = DinoHead(3, hidden_dim=4, num_prototypes=2)
    head.update_center(torch.tensor([1.0, 2.0]), momentum=0.9)  # 0.9 * 0 + 0.1 * [1, 2]
    assert torch.allclose(head.center, torch.tensor([0.1, 0.2]))
    head.update_center(torch.tensor([1.0, 2.0]), momentum=0.5)  # 0.5 * [0.1, 0.2] + 0.5 * [1, 2]
    assert torch.allclose(head.center, torch.tensor([0.55, 1.1]))
    other = DinoHead(3, hidden_dim=4, num_prototypes=2)
    ema_update(head, other, 0.9)
    assert torch.allclose(head.center, torch.tensor([0.55, 1.1]))
    # dino_loss reads head_slow.center when no centre is passed.
    fast, fid, slow, sid = torch.randn(2, 3), torch.tensor([1, 1]), torch.randn(2, 3), torch.tensor([1, 1])
    a, _ = dino_loss(fast, fid, slow, sid, other, head)
    b, _ = dino_loss(fast, fid, slow, sid, other, head, center=head.center.clone())
    assert math.isclose(a.item(), b.item(), rel_tol=1e-7)


def test_training_the_student_lowers_the_loss():
    torch.manual_seed(0)
    head_fast = DinoHead(3, hidden_dim=32, num_prototypes=8)
    head_slow = DinoHead(3, hidden_dim=32, num_prototypes=8)
    ids = torch.tensor([1, 1, 1, 2, 2, 2])
    fast = torch.randn(6, 3, requires_grad=True)
    slow = torch.randn(6, 3)
    first, _ = dino_loss(fast, ids, slow, ids, head_fast, head_slow)
    opt = torch.optim.Adam([fast, *head_fast.parameters()], lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        loss, _ = dino_loss(fast, ids, slow, ids, head_fast, head_slow)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first.item()


def test_no_positive_pairs():
    head = DinoHead(2, hidden_dim=4, num_prototypes=3)
    fast = torch.randn(2, 2, requires_grad=True)
    loss, batch_center = dino_loss(fast, torch.tensor([1, 1]), torch.randn(2, 2), torch.tensor([2, 2]), head, head)
    assert loss.item() == 0.0 and batch_center.shape == (3,)
    loss, batch_center = dino_loss(fast, torch.tensor([1, 1]), torch.randn(2, 2), torch.tensor([0, 0]), head, head)
    assert loss.item() == 0.0 and torch.equal(batch_center, head.center)


def test_errors():
    head = DinoHead(2)
    with pytest.raises(ValueError, match="temperatures"):
        dino_loss(
            torch.zeros(1, 2),
            torch.ones(1, dtype=torch.long),
            torch.zeros(1, 2),
            torch.ones(1, dtype=torch.long),
            head,
            head,
            t_teacher=0.0,
        )
    with pytest.raises(ValueError, match="DinoHead"):
        DinoHead(0)
