"""Hand-computed checks of lift3d.losses.metric_learning (Contrastive Lift appendix E: AE and margin losses)."""

import math

import pytest
import torch

from lift3d.losses import associative_embedding_loss, margin_contrastive_loss

# Associative embedding, D = 1: segment 1 = {0, 2}, segment 2 = {5}; a pixel with id 0 at 100 is ignored.
#   mu_1 = 1, mu_2 = 5. pull = mean(((0-1)^2 + (2-1)^2) / 2, 0) = mean(1, 0) = 0.5
#   push (sigma = 1) = mean over (1,2), (2,1) of exp(-16 / 2) = e^-8 = 0.000335463
#   total = 0.500335463; with sigma = 2: push = exp(-16 / 8) = e^-2 = 0.135335 -> 0.635335283
AE_EMB = [[0.0], [2.0], [5.0], [100.0]]
AE_IDS = [1, 1, 2, 0]


def test_associative_embedding_hand_values():
    emb, ids = torch.tensor(AE_EMB, dtype=torch.float64), torch.tensor(AE_IDS)
    assert math.isclose(associative_embedding_loss(emb, ids).item(), 0.5003354626, rel_tol=1e-9)
    assert math.isclose(associative_embedding_loss(emb, ids, sigma=2.0).item(), 0.6353352832, rel_tol=1e-9)
    # push_weight 0 leaves the pull term only.
    assert math.isclose(associative_embedding_loss(emb, ids, push_weight=0.0).item(), 0.5, rel_tol=1e-12)


def test_associative_embedding_vectors():
    # D = 2: segment 1 = {(0,0), (2,0)}, segment 2 = {(1,3)}; mu_1 = (1,0), mu_2 = (1,3), ||mu_1 - mu_2||^2 = 9.
    #   pull = mean(1, 0) = 0.5; push = exp(-9/2) = 0.011109; total = 0.511109
    emb = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]], dtype=torch.float64)
    loss = associative_embedding_loss(emb, torch.tensor([1, 1, 2]))
    assert math.isclose(loss.item(), 0.5 + math.exp(-4.5), rel_tol=1e-9)


def test_associative_embedding_gradient():
    # d pull / d e_i for segment 1 = (1/L)(1/|S_1|) * 2 (e_i - mu_1) (the mean's own terms cancel because
    # sum_i (e_i - mu_1) = 0): e_0 -> 0.5 * 0.5 * 2 * (-1) = -0.5, e_1 -> +0.5.
    # push (sigma = 1): d/d mu_1 of mean_{2 pairs} exp(-(mu_1-mu_2)^2/2), both pairs equal:
    #   exp(-8) * (-(mu_1 - mu_2)) = e^-8 * 4, shared equally by e_0 and e_1 (d mu_1/d e_i = 1/2): 2 e^-8 each;
    #   and -4 e^-8 for e_2 (mu_2 = e_2).
    emb = torch.tensor([[0.0], [2.0], [5.0]], dtype=torch.float64, requires_grad=True)
    associative_embedding_loss(emb, torch.tensor([1, 1, 2])).backward()
    e8 = math.exp(-8)
    expected = torch.tensor([[-0.5 + 2 * e8], [0.5 + 2 * e8], [-4 * e8]], dtype=torch.float64)
    assert torch.allclose(emb.grad, expected, atol=1e-12)


# Margin loss, D = 1, m+ = 0.5, m- = 1.5: segment 1 = {0, 1.2}, segment 2 = {2.0}; id 0 at 0.1 ignored.
#   positives (0,1), (1,0): d = 1.2 -> (1.2 - 0.5)^2 = 0.49 each; mean 0.49
#   negatives: (0,2), (2,0): d = 2.0 -> [1.5 - 2]_+ = 0;  (1,2), (2,1): d = 0.8 -> (1.5 - 0.8)^2 = 0.49
#   mean over the 4 negatives = 0.98 / 4 = 0.245;  total = 0.735
MARGIN_EMB = [[0.0], [1.2], [2.0], [0.1]]
MARGIN_IDS = [1, 1, 2, 0]


def test_margin_hand_value():
    emb, ids = torch.tensor(MARGIN_EMB, dtype=torch.float64), torch.tensor(MARGIN_IDS)
    assert math.isclose(margin_contrastive_loss(emb, ids).item(), 0.735, rel_tol=1e-9)
    # Chopra et al. (m+ = 0): positives 1.44 each; negatives as before -> 1.44 + 0.245 = 1.685
    assert math.isclose(margin_contrastive_loss(emb, ids, pos_margin=0.0).item(), 1.685, rel_tol=1e-9)


def test_margin_gradient():
    # d/d e_1 of the positive term: 2 pairs * 2 (d - m+) * d(d)/d e_1 / |P| = 2 * 2 * 0.7 * 1 / 2 = 1.4
    # negative term at e_1: pairs (1,2),(2,1): 2 * (-2 (m- - d)) * d(d)/d e_1 / |N| with d(d)/d e_1 = -1
    #   = 2 * 2 * 0.7 / 4 = 0.7  ->  grad e_1 = 1.4 + 0.7 = 2.1;  e_0: -1.4 (positive only, negatives inactive);
    #   e_2: -0.7.
    emb = torch.tensor(MARGIN_EMB[:3], dtype=torch.float64, requires_grad=True)
    margin_contrastive_loss(emb, torch.tensor([1, 1, 2])).backward()
    assert torch.allclose(emb.grad, torch.tensor([[-1.4], [2.1], [-0.7]], dtype=torch.float64), atol=1e-12)


def test_margin_zero_inside_margins():
    emb = torch.tensor([[0.0, 0.0], [0.3, 0.0], [2.0, 0.0], [2.0, 0.4]], requires_grad=True)
    loss = margin_contrastive_loss(emb, torch.tensor([1, 1, 2, 2]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(emb.grad == 0)


@pytest.mark.parametrize("loss_fn", [associative_embedding_loss, margin_contrastive_loss])
def test_tighter_segments_lower_the_loss(loss_fn):
    # Segment 1 shrinks around the same mean (0.0 / 2.0 -> 0.5 / 1.5); segment 2 stays put.
    ids = torch.tensor([1, 1, 2, 2])
    loose = torch.tensor([[0.0], [2.0], [4.0], [4.2]])
    tight = torch.tensor([[0.5], [1.5], [4.0], [4.2]])
    assert loss_fn(tight, ids).item() < loss_fn(loose, ids).item()


@pytest.mark.parametrize("loss_fn", [associative_embedding_loss, margin_contrastive_loss])
def test_descent_groups_segments(loss_fn):
    gen = torch.Generator().manual_seed(0)
    ids = torch.tensor([1, 1, 1, 2, 2, 2, 3, 3])
    emb = torch.randn(8, 3, generator=gen, requires_grad=True)
    first = loss_fn(emb, ids).item()
    opt = torch.optim.SGD([emb], lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        loss_fn(emb, ids).backward()
        opt.step()
    assert loss_fn(emb, ids).item() < 0.5 * first


@pytest.mark.parametrize("loss_fn", [associative_embedding_loss, margin_contrastive_loss])
def test_unsegmented_pixels_ignored_and_empty_input(loss_fn):
    emb = torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True)
    with_ignored = torch.cat([emb, torch.tensor([[0.5]])])
    a = loss_fn(emb, torch.tensor([1, 1, 2]))
    b = loss_fn(with_ignored, torch.tensor([1, 1, 2, 0]))
    assert math.isclose(a.item(), b.item(), rel_tol=1e-7)
    empty = loss_fn(emb, torch.zeros(3, dtype=torch.long))
    assert empty.item() == 0.0
    empty.backward()
    assert torch.all(emb.grad == 0)


def test_shape_errors():
    with pytest.raises(ValueError, match="associative_embedding_loss"):
        associative_embedding_loss(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="margin_contrastive_loss"):
        margin_contrastive_loss(torch.zeros(3), torch.zeros(3, dtype=torch.long))
