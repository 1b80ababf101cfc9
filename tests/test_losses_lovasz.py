"""The Lovász hinge against the Jaccard loss on hard cases, against the Lovász extension computed independently
(as the integral of the set function over thresholds), and its gradient against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lift3d.losses.lovasz import jaccard_loss_increments, lovasz_hinge


def jaccard_loss_of_set(mispredicted: set, gt: set) -> float:
    """Δ_J(M) = |M| / |G ∪ M| (1 - IoU of the prediction that gets exactly M wrong)."""
    union = gt | mispredicted
    return len(mispredicted) / len(union) if union else 0.0


def lovasz_extension_by_integral(errors: np.ndarray, labels: np.ndarray) -> float:
    """∫_0^∞ Δ_J({i : m_i >= t}) dt for m = max(errors, 0): an independent formula of the Lovász extension."""
    m = np.maximum(errors, 0.0)
    gt = {i for i in range(len(labels)) if labels[i]}
    levels = np.unique(np.concatenate([[0.0], m]))
    total = 0.0
    for lo, hi in zip(levels[:-1], levels[1:]):
        above = {i for i in range(len(m)) if m[i] >= hi}
        total += (hi - lo) * jaccard_loss_of_set(above, gt)
    return total


def test_hard_cases_equal_one_minus_jaccard():
    # right pixels sit at margin >= 1 (error <= 0), wrong ones on the boundary (error exactly 1)
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    logits = torch.tensor([1.0, 0.0, -1.0, 0.0, 2.0, -3.0])  # pixel 1 missed, pixel 3 wrongly included
    # predicted mask {0, 3, 4} vs gt {0, 1, 4}: IoU = 2 / 4, so the Jaccard loss is 1/2
    assert float(lovasz_hinge(logits, labels)) == pytest.approx(0.5)
    assert float(lovasz_hinge(torch.tensor([1.0, 1.0, -1.0]), torch.tensor([1, 1, 0]))) == 0.0  # perfect
    # everything wrong: predicted {2} vs gt {0, 1}: IoU 0
    assert float(lovasz_hinge(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([1, 1, 0]))) == pytest.approx(1.0)
    # positive homogeneity: errors of 2 on M = {0, 2} (G = {0, 1}, Δ_J = 2/3) give twice the Jaccard loss
    assert float(lovasz_hinge(torch.tensor([-1.0, 1.0, 1.0]), torch.tensor([1, 1, 0]))) == pytest.approx(4 / 3)


def test_increments_by_hand():
    # gt along the order: 1, 0, 1 (g = 2): Δ after 1 px = 1 - 1/2, after 2 = 1 - 1/3, after 3 = 1 - 0/3
    inc = jaccard_loss_increments(torch.tensor([1, 0, 1]))
    assert torch.allclose(inc, torch.tensor([0.5, 2 / 3 - 0.5, 1 - 2 / 3]))


@pytest.mark.parametrize("seed", range(6))
def test_matches_lovasz_extension_integral(seed):
    rng = np.random.default_rng(seed)
    n = 9
    labels = rng.random(n) < 0.5
    labels[0] = True
    logits = rng.normal(0, 1.5, n)
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    expected = lovasz_extension_by_integral(errors, labels)
    got = float(lovasz_hinge(torch.tensor(logits), torch.tensor(labels)))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_gradient_matches_finite_differences_and_the_increments():
    torch.manual_seed(0)
    labels = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])
    logits = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: lovasz_hinge(s, labels), (logits,))
    # analytic: d/ds_i = -(2y_i - 1) * increment at i's rank, for pixels with positive error
    loss = lovasz_hinge(logits, labels)
    loss.backward()
    signs = 2.0 * labels.double() - 1.0
    errors = (1.0 - logits.detach() * signs).numpy()
    order = np.argsort(-errors)
    inc = jaccard_loss_increments(labels[torch.from_numpy(order)]).double()
    expected = torch.zeros(8, dtype=torch.float64)
    for rank, i in enumerate(order):
        if errors[i] > 0:
            expected[i] = -signs[i] * inc[rank]
    assert torch.allclose(logits.grad, expected)
