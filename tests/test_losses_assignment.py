"""Hand-computed and brute-force checks of lift3d.losses.assignment (Panoptic Lifting linear assignment)."""

import itertools
import math

import torch
import torch.nn.functional as F

from lift3d.losses import linear_assignment_loss, select_segments

# Toy image, K = 3 slots, logits = log of the probabilities below (so softmax gives them back):
#   pixel a (segment 5): [0.50, 0.25, 0.25]      pixel c (segment 9): [0.6, 0.2, 0.2]
#   pixel b (segment 5): [0.25, 0.50, 0.25]      pixel d (segment 9): [0.7, 0.1, 0.2]
#   pixel e (id 0, ignored): [0.1, 0.1, 0.8]
# Mean probabilities: segment 5 -> [0.375, 0.375, 0.25], segment 9 -> [0.65, 0.15, 0.2].
# Total mean probability of each injective (slot of 5, slot of 9):
#   (0,1) .525  (0,2) .575  (1,0) 1.025  (1,2) .575  (2,0) .90  (2,1) .40   -> best: 5 -> 1, 9 -> 0.
# CE: a: -ln .25 = 1.386294, b: -ln .5 = 0.693147, c: -ln .6 = 0.510826, d: -ln .7 = 0.356675
#   loss = (1.386294 + 0.693147 + 0.510826 + 0.356675) / 4 = 0.736736
# With confidence [1, 0.5, 0, 2, 1]: (1.386294 + 0.346574 + 0 + 0.713350) / 4 = 0.611554
PROBS = [[0.50, 0.25, 0.25], [0.25, 0.50, 0.25], [0.6, 0.2, 0.2], [0.7, 0.1, 0.2], [0.1, 0.1, 0.8]]
IDS = [5, 5, 9, 9, 0]


def _toy():
    logits = torch.tensor(PROBS, dtype=torch.float64).log().requires_grad_(True)
    return logits, torch.tensor(IDS)


def test_hand_value_and_assignment():
    logits, ids = _toy()
    loss, assignment = linear_assignment_loss(logits, ids)
    assert assignment == {5: 1, 9: 0}
    assert math.isclose(loss.item(), 0.7367355273, rel_tol=1e-9)


def test_confidence_weighting():
    logits, ids = _toy()
    conf = torch.tensor([1.0, 0.5, 0.0, 2.0, 1.0], dtype=torch.float64)
    loss, _ = linear_assignment_loss(logits, ids, confidence=conf)
    assert math.isclose(loss.item(), 0.6115544598, rel_tol=1e-9)


def test_matches_brute_force_over_all_injective_assignments():
    gen = torch.Generator().manual_seed(0)
    for trial in range(5):
        num_slots, ids = 4, torch.tensor([3, 3, 3, 7, 7, 11, 11, 11, 11, 0])
        logits = torch.randn(ids.numel(), num_slots, generator=gen, dtype=torch.float64) * 2
        loss, assignment = linear_assignment_loss(logits, ids)
        probs = logits.softmax(dim=1)
        segments = [3, 7, 11]
        mean_p = torch.stack([probs[ids == s].mean(dim=0) for s in segments])  # [3, 4]
        # Enumerate all 4 * 3 * 2 = 24 injective maps segment -> slot; cost = -sum of mean probabilities.
        best = min(
            itertools.permutations(range(num_slots), 3),
            key=lambda slots: -sum(mean_p[i, k].item() for i, k in enumerate(slots)),
        )
        assert assignment == dict(zip(segments, best)), trial
        # Loss = CE of every segmented pixel to its segment's slot.
        seg_pixels = ids > 0
        target = torch.tensor([dict(zip(segments, best))[int(s)] for s in ids[seg_pixels]])
        expected = F.cross_entropy(logits[seg_pixels], target)
        assert math.isclose(loss.item(), expected.item(), rel_tol=1e-9)


def test_gradient_is_ce_with_fixed_targets_and_ignores_unsegmented_pixels():
    # The matching is discrete and made on detached probabilities: the gradient must equal that of a plain
    # cross-entropy to the chosen slots, and unsegmented pixels get none.
    logits, ids = _toy()
    loss, assignment = linear_assignment_loss(logits, ids)
    loss.backward()
    ref_logits = logits.detach().clone().requires_grad_(True)
    target = torch.tensor([assignment[i] for i in IDS[:4]])
    F.cross_entropy(ref_logits[:4], target).backward()
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-12)
    assert torch.all(logits.grad[4] == 0)


def test_invariant_to_relabelling_segments():
    logits, ids = _toy()
    swapped = torch.tensor([9, 9, 5, 5, 0])
    a, assign_a = linear_assignment_loss(logits, ids)
    b, assign_b = linear_assignment_loss(logits, swapped)
    assert math.isclose(a.item(), b.item(), rel_tol=1e-12)
    assert assign_b == {9: assign_a[5], 5: assign_a[9]}


def test_more_segments_than_slots_keeps_the_largest():
    # Sizes: id 1 -> 3 px, id 2 -> 1 px, id 4 -> 2 px, id 6 -> 2 px; K = 2 keeps 1 (3 px), then 4 (2 px,
    # tie with 6 broken by the smaller id). Pixels of 2 and 6 are ignored.
    ids = torch.tensor([1, 1, 1, 2, 4, 4, 6, 6])
    kept, counts = select_segments(ids, 2)
    assert kept.tolist() == [1, 4] and counts.tolist() == [3, 2]
    logits = torch.randn(8, 2, dtype=torch.float64, requires_grad=True)
    loss, assignment = linear_assignment_loss(logits, ids)
    assert set(assignment) == {1, 4} and sorted(assignment.values()) == [0, 1]
    loss.backward()
    assert torch.all(logits.grad[[3, 6, 7]] == 0) and torch.any(logits.grad[[0, 1, 2, 4, 5]] != 0)
    # Within the limit nothing is dropped.
    assert select_segments(ids, 4)[0].tolist() == [1, 2, 4, 6]


def test_no_segment_gives_zero_attached_loss():
    logits = torch.randn(3, 4, requires_grad=True)
    loss, assignment = linear_assignment_loss(logits, torch.zeros(3, dtype=torch.long))
    assert loss.item() == 0.0 and assignment == {}
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_descent_lowers_the_loss():
    gen = torch.Generator().manual_seed(1)
    ids = torch.tensor([1, 1, 2, 2, 3, 3])
    logits = torch.randn(6, 5, generator=gen, requires_grad=True)
    first, _ = linear_assignment_loss(logits, ids)
    opt = torch.optim.SGD([logits], lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        loss, _ = linear_assignment_loss(logits, ids)
        loss.backward()
        opt.step()
    last, assignment = linear_assignment_loss(logits, ids)
    assert last.item() < 0.5 * first.item()
    assert len(set(assignment.values())) == 3  # one slot per segment
