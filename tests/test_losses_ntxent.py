"""Multi-positive NT-Xent (Zhu et al. 2022, Eqs. 1-4; SupCon) on tiny embeddings, values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lift3d.losses.ntxent import embedding_norm_regulariser, multi_positive_ntxent

# three samples on the unit circle: 0 and 1 share id 7, sample 2 is id 3 (its only positive would be itself)
E = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
IDS = torch.tensor([7, 7, 3])
# cosine similarities: s01 = 0, s02 = -1, s12 = 0


def test_supcon_form_by_hand():
    # anchor 0: -s01 + log(e^{s01} + e^{s02}) = log(1 + e^-1); anchor 1: log(e^0 + e^0) = log 2; anchor 2 has no
    # positive and adds nothing
    expected = (math.log(1 + math.exp(-1)) + math.log(2.0)) / 2
    got = multi_positive_ntxent(E, IDS, temperature=1.0, exclude_positives_from_denominator=False)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_same_id_pairs_excluded_from_denominator_by_hand():
    # Eq. 1: the denominator holds only the other ids, l_ij = log(sum_neg e^{s_ik}) - s_ij.
    # anchor 0: log(e^{s02}) - s01 = -1 - 0 = -1; anchor 1: log(e^{s12}) - s10 = 0 - 0 = 0; mean -0.5
    got = multi_positive_ntxent(E, IDS, temperature=1.0, exclude_positives_from_denominator=True)
    assert float(got) == pytest.approx(-0.5, rel=1e-6)


def test_temperature_and_pair_sum_by_hand():
    tau = 0.5
    # pair-sum (Eq. 3): (l01 + l10) / |U| with |U| = 3; SupCon denominators at tau 0.5
    l01 = math.log(math.exp(0.0) + math.exp(-1 / tau)) - 0.0
    l10 = math.log(math.exp(0.0) + math.exp(0.0)) - 0.0
    got = multi_positive_ntxent(E, IDS, tau, exclude_positives_from_denominator=False, reduction="pair-sum")
    assert float(got) == pytest.approx((l01 + l10) / 3, rel=1e-6)


def test_embeddings_are_normalised_and_invalid_ids_dropped():
    scaled = E * torch.tensor([[3.0], [0.5], [2.0]])
    a = multi_positive_ntxent(scaled, IDS, 1.0, False)
    b = multi_positive_ntxent(E, IDS, 1.0, False)
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    extra = torch.cat([E, torch.tensor([[0.3, 0.3]])])
    c = multi_positive_ntxent(extra, torch.cat([IDS, torch.tensor([-1])]), 1.0, False)
    assert float(c) == pytest.approx(float(b), rel=1e-6)


def test_matches_a_loop_reference_on_random_data():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(12, 4, generator=g)
    ids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])
    z = torch.nn.functional.normalize(e, dim=1)
    for exclude in (False, True):
        per_anchor = []
        for i in range(12):
            den = [k for k in range(12) if (ids[k] != ids[i] if exclude else k != i)]
            pos = [j for j in range(12) if j != i and ids[j] == ids[i]]
            if not pos or not den:
                continue
            log_den = math.log(sum(math.exp(float(z[i] @ z[k]) / 0.2) for k in den))
            per_anchor.append(sum(log_den - float(z[i] @ z[j]) / 0.2 for j in pos) / len(pos))
        got = multi_positive_ntxent(e, ids, 0.2, exclude)
        assert float(got) == pytest.approx(sum(per_anchor) / len(per_anchor), rel=1e-5)


def test_gradient_pulls_positives_together():
    e = E.clone().requires_grad_(True)
    multi_positive_ntxent(e, IDS, 0.5, True).backward()
    # the loss falls when sample 1 moves toward sample 0: the negative gradient of sample 1 points along +x
    assert float(-e.grad[1, 0]) > 0
    assert torch.isfinite(e.grad).all()


def test_no_pair_gives_zero_with_gradient_path():
    e = torch.randn(3, 2, requires_grad=True)
    loss = multi_positive_ntxent(e, torch.tensor([0, 1, 2]), 0.1, True)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(e.grad, torch.zeros_like(e))
    single = multi_positive_ntxent(torch.randn(4, 2, requires_grad=True), torch.tensor([5, 5, 5, 5]), 0.1, True)
    assert float(single.detach()) == 0.0  # one instance: no negatives, so Eq. 1 is undefined and left out


def test_norm_regulariser_is_the_mean_norm():
    emb = torch.zeros(1, 2, 1, 2)
    emb[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # norm 5; the other pixel has norm 0
    assert float(embedding_norm_regulariser(emb)) == pytest.approx(2.5)
