"""SwAV's Sinkhorn-Knopp codes and swapped-prediction loss: equipartition, a 2x2 plan solved by hand, the loss of a
tiny case computed by hand, gradients only through the predictions."""

from __future__ import annotations

import math

import pytest
import torch

from lift3d.losses.swav import (
    multi_crop_swapped_prediction_loss,
    sinkhorn_knopp,
    swapped_prediction_loss,
    swav_codes,
)


def test_sinkhorn_equipartition_on_random_scores():
    torch.manual_seed(0)
    b, k = 12, 5
    z = torch.nn.functional.normalize(torch.randn(b, 8), dim=1)
    c = torch.nn.functional.normalize(torch.randn(k, 8), dim=1)
    q = sinkhorn_knopp(z @ c.t(), epsilon=0.05, iterations=3)
    assert q.shape == (k, b)
    assert (q >= 0).all()
    torch.testing.assert_close(q.sum(0), torch.full((b,), 1 / b), atol=1e-6, rtol=0)  # columns: exact
    assert float(q.sum()) == pytest.approx(1.0, abs=1e-6)
    q = sinkhorn_knopp(z @ c.t(), epsilon=0.5, iterations=500)  # rows converge with more iterations
    torch.testing.assert_close(q.sum(1), torch.full((k,), 1 / k), atol=1e-6, rtol=0)
    torch.testing.assert_close(q.sum(0), torch.full((b,), 1 / b), atol=1e-6, rtol=0)


def test_sinkhorn_two_by_two_by_hand():
    # exp(C^T Z / eps) with eps = 1 and scores [[1, 0], [0, 1]] is [[e, 1], [1, e]]: symmetric, so the doubly
    # stochastic scaling is that matrix over its row sum e + 1, halved (rows and columns then sum 1/2).
    q = sinkhorn_knopp(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), epsilon=1.0, iterations=3)
    e = math.e
    expected = torch.tensor([[e, 1.0], [1.0, e]]) / (e + 1) / 2
    torch.testing.assert_close(q, expected, atol=1e-6, rtol=0)
    codes = swav_codes(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), epsilon=1.0, iterations=3)
    torch.testing.assert_close(codes, torch.tensor([[e, 1.0], [1.0, e]]) / (e + 1), atol=1e-6, rtol=0)


def test_codes_spread_a_collapsed_batch_over_the_prototypes():
    # every sample prefers prototype 0; the equipartition constraint still gives prototype 1 half the mass
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.3], [0.7, 0.5], [0.6, 0.55]])
    codes = swav_codes(scores, epsilon=0.05, iterations=50)
    torch.testing.assert_close(codes.sum(0), torch.tensor([2.0, 2.0]), atol=1e-3, rtol=0)
    assert codes[0, 0] > codes[3, 0]  # the most confident sample keeps prototype 0


def test_swapped_prediction_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    b = torch.tensor([[0.5, 0.0], [0.0, 0.5]], requires_grad=True)
    eps, tau = 1.0, 0.5
    loss = swapped_prediction_loss(a, b, temperature=tau, epsilon=eps, iterations=3)
    # codes (symmetric 2x2, as above): q_a = [[e, 1], [1, e]] / (e + 1); q_b with exp(0.5) in place of e
    e, h = math.e, math.exp(0.5)
    qa = [[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]]
    qb = [[h / (h + 1), 1 / (h + 1)], [1 / (h + 1), h / (h + 1)]]
    # predictions: softmax(scores / tau); row 0 of a: softmax([2, 0]); row 0 of b: softmax([1, 0]) (rows mirror)
    log_pa = [math.log(math.exp(2) / (math.exp(2) + 1)), math.log(1 / (math.exp(2) + 1))]
    log_pb = [math.log(math.exp(1) / (math.exp(1) + 1)), math.log(1 / (math.exp(1) + 1))]
    row0 = -(qb[0][0] * log_pa[0] + qb[0][1] * log_pa[1]) - (qa[0][0] * log_pb[0] + qa[0][1] * log_pb[1])
    assert float(loss.detach()) == pytest.approx(row0 / 2, abs=1e-6)  # row 1 is row 0 mirrored: the mean equals row 0
    loss.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_loss_gradient_flows_only_through_the_predictions():
    torch.manual_seed(1)
    a = torch.randn(6, 4, requires_grad=True)
    b = torch.randn(6, 4)
    loss = swapped_prediction_loss(a, b)
    loss.backward()
    # d/d a of -sum_k q_b log softmax(a / tau) = (softmax(a / tau) - q_b) / tau / (2 B): the codes are constants
    q_b = swav_codes(b)
    expected = (torch.softmax(a.detach() / 0.1, 1) - q_b) / 0.1 / (2 * 6)
    torch.testing.assert_close(a.grad, expected, atol=1e-5, rtol=1e-4)


def test_queue_joins_the_sinkhorn_step_only():
    torch.manual_seed(2)
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    qa, qb = torch.randn(7, 5), torch.randn(7, 5)
    loss = swapped_prediction_loss(a, b, queue_scores_a=qa, queue_scores_b=qb)
    codes_a = swav_codes(torch.cat([qa, a]))[7:]  # the batch's rows of the codes of [queue; batch]
    codes_b = swav_codes(torch.cat([qb, b]))[7:]
    log_pa, log_pb = torch.log_softmax(a / 0.1, 1), torch.log_softmax(b / 0.1, 1)
    expected = -0.5 * ((codes_b * log_pa).sum(1) + (codes_a * log_pb).sum(1)).mean()
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, swapped_prediction_loss(a, b))  # the queue changes the codes


def test_multi_crop_loss_by_hand_and_two_crop_case():
    torch.manual_seed(3)
    a, b, s1, s2 = (torch.randn(4, 6) for _ in range(4))
    loss, codes = multi_crop_swapped_prediction_loss([a, b, s1, s2], temperature=0.1, epsilon=0.05, iterations=3)
    qa, qb = swav_codes(a), swav_codes(b)
    lp = [torch.log_softmax(x / 0.1, 1) for x in (a, b, s1, s2)]
    # code of crop 0 predicted from crops 1, 2, 3; code of crop 1 from crops 0, 2, 3; each over N - 1 = 3 crops
    from_a = -(qa * (lp[1] + lp[2] + lp[3])).sum(1) / 3
    from_b = -(qb * (lp[0] + lp[2] + lp[3])).sum(1) / 3
    torch.testing.assert_close(loss, (from_a.mean() + from_b.mean()) / 2)
    torch.testing.assert_close(codes[0], qa)
    torch.testing.assert_close(codes[1], qb)
    two, _ = multi_crop_swapped_prediction_loss([a, b])
    torch.testing.assert_close(two, swapped_prediction_loss(a, b))
    with pytest.raises(ValueError, match="assign_crops"):
        multi_crop_swapped_prediction_loss([a, b], assign_crops=3)


def _log_domain_sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """Independent reference: the same alternating scaling carried out on log Q (log-sum-exp), which cannot
    underflow."""
    log_q = scores.double().t() / epsilon  # [K, B]
    k, b = log_q.shape
    for _ in range(iterations):
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(k)
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(b)
    return log_q.exp()


def test_sinkhorn_is_exact_at_eps_005_with_a_tiny_batch_and_many_prototypes():
    # SwAV's setting that collapsed here: 8 items, 1000 prototypes, ε 0.05, 3 iterations, unit-vector scores in
    # [-1, 1]. exp(score / ε) spans at most e^40 after the max shift, far inside fp64, so the plain scaling equals
    # the log-domain one and no entry underflows: the collapse did not come from Sinkhorn's numerics.
    torch.manual_seed(4)
    z = torch.nn.functional.normalize(torch.randn(8, 128), dim=1)
    c = torch.nn.functional.normalize(torch.randn(1000, 128), dim=1)
    scores = z @ c.t()
    q = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    torch.testing.assert_close(q.double(), _log_domain_sinkhorn(scores, 0.05, 3), atol=1e-9, rtol=1e-5)
    assert float(q.min()) > 0
    torch.testing.assert_close(q.sum(0), torch.full((8,), 1 / 8), atol=1e-6, rtol=0)
    # with B << K a code can put at most B / K on one prototype: every item spreads over >= K / B prototypes
    codes = swav_codes(scores, epsilon=0.05, iterations=50)
    assert float(codes.max()) <= 8 / 1000 + 1e-4
    # the extreme scores (antipodal features, ε 0.01: a 200-nat range) still give a finite, positive plan
    extreme = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0]])
    q = sinkhorn_knopp(extreme, epsilon=0.01, iterations=3)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.double(), _log_domain_sinkhorn(extreme, 0.01, 3), atol=1e-12, rtol=1e-6)
