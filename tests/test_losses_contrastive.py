"""Hand-computed checks of lift3d.losses.contrastive (Contrastive Lift (Bhalgat et al. 2023), Eqs. 3-5)."""

import math

import pytest
import torch

from lift3d.losses import (
    concentration_loss,
    slow_fast_contrastive_loss,
    split_fast_slow,
    vanilla_contrastive_loss,
)

# Slow-fast toy set, D = 1:
#   fast f0 = 0 (segment 1), f1 = 2 (segment 2); slow s0 = 0 (segment 1), s1 = 1 (segment 2).
# exp_distance, h = 1: k_ij = exp(-|f_i - s_j|)
#   i=0: d = [0, 1] -> k = [1, e^-1 = 0.367879]; P0 = e^1 / (e^1 + e^0.367879) = 0.652970
#   i=1: d = [2, 1] -> k = [e^-2, e^-1];          P1 = e^0.367879 / (e^0.135335 + e^0.367879) = 0.557875
#   L = (-ln 0.652970 - ln 0.557875) / 2 = (0.426224 + 0.583620) / 2 = 0.504922
# gaussian, h = 1: k_ij = exp(-|f_i - s_j|^2)
#   i=0: d^2 = [0, 1] -> same as above, -ln P0 = 0.426224
#   i=1: d^2 = [4, 1] -> k = [e^-4, e^-1]; P1 = e^0.367879 / (e^0.018316 + e^0.367879) = 0.586512
#   L = (0.426224 + 0.533562) / 2 = 0.479893
EXP_DISTANCE_LOSS = 0.5049217034
GAUSSIAN_LOSS = 0.4798931890


def _toy_slow_fast():
    fast = torch.tensor([[0.0], [2.0]], requires_grad=True)
    slow = torch.tensor([[0.0], [1.0]], requires_grad=True)
    return fast, torch.tensor([1, 2]), slow, torch.tensor([1, 2])


@pytest.mark.parametrize("kernel,expected", [("exp_distance", EXP_DISTANCE_LOSS), ("gaussian", GAUSSIAN_LOSS)])
def test_slow_fast_hand_values(kernel, expected):
    fast, fid, slow, sid = _toy_slow_fast()
    loss = slow_fast_contrastive_loss(fast, fid, slow, sid, kernel=kernel)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_slow_fast_kernels_agree_at_unit_distance_and_differ_beyond():
    # With every |f - s| in {0, 1}, exp(-d) == exp(-d^2): both kernels give the same loss.
    fast = torch.tensor([[0.0], [1.0]])
    slow = torch.tensor([[0.0], [1.0]])
    ids = torch.tensor([1, 2])
    a = slow_fast_contrastive_loss(fast, ids, slow, ids, kernel="exp_distance")
    b = slow_fast_contrastive_loss(fast, ids, slow, ids, kernel="gaussian")
    assert math.isclose(a.item(), b.item(), rel_tol=1e-7)
    # At distance 2 the Gaussian kernel is smaller (e^-4 < e^-2): a far negative competes less,
    # so the Gaussian loss is lower on the toy set (0.479893 < 0.504922).
    assert GAUSSIAN_LOSS < EXP_DISTANCE_LOSS
    # Bandwidth: gaussian with h = sqrt(2) scales d^2 by 1/2: k = [1, e^-0.5] for i=0 and
    # [e^-2, e^-0.5] for i=1; exp_distance with h = 2 scales d by 1/2: k = [1, e^-0.5], [e^-1, e^-0.5].
    fast, fid, slow, sid = _toy_slow_fast()
    k05 = math.exp(-0.5)
    g = (
        -math.log(math.e / (math.e + math.exp(k05)))
        - math.log(math.exp(k05) / (math.exp(math.exp(-2)) + math.exp(k05)))
    ) / 2
    d = (
        -math.log(math.e / (math.e + math.exp(k05)))
        - math.log(math.exp(k05) / (math.exp(math.exp(-1)) + math.exp(k05)))
    ) / 2
    got_g = slow_fast_contrastive_loss(fast, fid, slow, sid, kernel="gaussian", bandwidth=math.sqrt(2))
    got_d = slow_fast_contrastive_loss(fast, fid, slow, sid, kernel="exp_distance", bandwidth=2.0)
    assert math.isclose(got_g.item(), g, rel_tol=1e-6)
    assert math.isclose(got_d.item(), d, rel_tol=1e-6)


def test_slow_fast_ignores_unsegmented_and_unmatched_pixels():
    fast, fid, slow, sid = _toy_slow_fast()
    # add a fast pixel with id 0, a fast pixel whose segment has no slow pixel (id 9, no positive,
    # P = 0: excluded from the mean), and a slow pixel with id 0 (neither positive nor negative).
    fast2 = torch.cat([fast, torch.tensor([[0.5], [0.7]])])
    fid2 = torch.cat([fid, torch.tensor([0, 9])])
    slow2 = torch.cat([slow, torch.tensor([[0.1]])])
    sid2 = torch.cat([sid, torch.tensor([0])])
    loss = slow_fast_contrastive_loss(fast2, fid2, slow2, sid2, kernel="exp_distance")
    assert math.isclose(loss.item(), EXP_DISTANCE_LOSS, rel_tol=1e-6)


@pytest.mark.parametrize("kernel", ["exp_distance", "gaussian"])
def test_slow_fast_no_gradient_to_slow(kernel):
    fast, fid, slow, sid = _toy_slow_fast()
    slow_fast_contrastive_loss(fast, fid, slow, sid, kernel=kernel).backward()
    assert slow.requires_grad and slow.grad is None
    assert fast.grad is not None and torch.isfinite(fast.grad).all()


def test_slow_fast_gradient_finite_when_fast_equals_slow():
    # exp_distance uses the plain distance; its gradient must stay finite at d = 0.
    fast = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    slow = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    slow_fast_contrastive_loss(fast, torch.tensor([1, 2]), slow, torch.tensor([1, 2]), kernel="exp_distance").backward()
    assert torch.isfinite(fast.grad).all()


@pytest.mark.parametrize("kernel", ["exp_distance", "gaussian"])
def test_slow_fast_decreases_when_positives_move_together(kernel):
    slow = torch.tensor([[0.0, 0.0], [0.0, 0.2], [3.0, 0.0], [3.0, 0.2]])
    sid = torch.tensor([1, 1, 2, 2])
    fid = torch.tensor([1, 2])
    far = torch.tensor([[2.0, 0.0], [1.0, 0.0]])  # each fast pixel nearer the other segment
    near = torch.tensor([[0.0, 0.1], [3.0, 0.1]])  # each fast pixel at its own segment
    assert slow_fast_contrastive_loss(near, fid, slow, sid, kernel) < slow_fast_contrastive_loss(
        far, fid, slow, sid, kernel
    )
    # and gradient descent on the fast embeddings lowers it step after step
    fast = far.clone().requires_grad_(True)
    opt = torch.optim.SGD([fast], lr=0.5)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = slow_fast_contrastive_loss(fast, fid, slow, sid, kernel)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:]))


def test_slow_fast_no_positive_returns_attached_zero():
    fast = torch.tensor([[0.0]], requires_grad=True)
    loss = slow_fast_contrastive_loss(fast, torch.tensor([1]), torch.tensor([[1.0]]), torch.tensor([2]))
    loss.backward()
    assert loss.item() == 0.0 and fast.grad is not None


# Concentration toy set, D = 1:
#   fast f = [0, 2, 5], ids [1, 1, 2]; slow s = [1, 3, 4, 9], ids [1, 1, 2, 7]
#   centroids: c1 = (1 + 3)/2 = 2, c2 = 4; segment 7 is only in S -> ignored.
def _toy_concentration():
    fast = torch.tensor([[0.0], [2.0], [5.0]], requires_grad=True)
    slow = torch.tensor([[1.0], [3.0], [4.0], [9.0]], requires_grad=True)
    return fast, torch.tensor([1, 1, 2]), slow, torch.tensor([1, 1, 2, 7])


def test_concentration_squared_hand_value():
    f, fid, s, sid = _toy_concentration()
    # seg 1: ((0-2)^2 + (2-2)^2)/2 = 2; seg 2: (5-4)^2 = 1; mean over segments = 1.5
    assert math.isclose(concentration_loss(f, fid, s, sid).item(), 1.5, rel_tol=1e-6)


def test_concentration_confidence_weighting():
    f, fid, s, sid = _toy_concentration()
    conf = torch.tensor([0.5, 1.0, 0.2])
    # seg 1: (0.5*4 + 1.0*0)/2 = 1; seg 2: 0.2*1 = 0.2; mean = 0.6
    got = concentration_loss(f, fid, s, sid, confidence=conf)
    assert math.isclose(got.item(), 0.6, rel_tol=1e-6)


def test_concentration_gaussian_form_hand_value():
    f, fid, s, sid = _toy_concentration()
    # seg 1: -(e^-4 + e^0)/2 = -0.509158; seg 2: -e^-1 = -0.367879; mean = -0.438519
    got = concentration_loss(f, fid, s, sid, form="gaussian")
    assert math.isclose(got.item(), -0.4385186303, rel_tol=1e-6)
    conf = torch.tensor([0.5, 1.0, 0.2])
    # seg 1: -(0.5 e^-4 + 1)/2 = -0.504579; seg 2: -0.2 e^-1 = -0.073576; mean = -0.289078
    expected = (-(0.5 * math.exp(-4) + 1) / 2 - 0.2 * math.exp(-1)) / 2
    got = concentration_loss(f, fid, s, sid, confidence=conf, form="gaussian")
    assert math.isclose(got.item(), expected, rel_tol=1e-6)


@pytest.mark.parametrize("form", ["squared", "gaussian"])
def test_concentration_no_gradient_to_slow_and_segments_weigh_equally(form):
    f, fid, s, sid = _toy_concentration()
    concentration_loss(f, fid, s, sid, form=form).backward()
    assert s.requires_grad and s.grad is None
    if form == "squared":
        # d/df_i = 2 (f_i - c_l) / |F_l| / |L|: f0: 2*(0-2)/2/2 = -1, f1: 0, f2: 2*(5-4)/1/2 = 1
        assert torch.allclose(f.grad, torch.tensor([[-1.0], [0.0], [1.0]]))


def test_concentration_decreases_when_moving_to_centroid():
    f, fid, s, sid = _toy_concentration()
    closer = torch.tensor([[1.0], [2.0], [4.5]])
    for form in ("squared", "gaussian"):
        assert concentration_loss(closer, fid, s, sid, form=form) < concentration_loss(f, fid, s, sid, form=form)


def test_split_fast_slow_partitions_and_is_reproducible():
    fast, slow = split_fast_slow(7, torch.Generator().manual_seed(0))
    assert len(fast) == 3 and len(slow) == 4
    assert sorted(torch.cat([fast, slow]).tolist()) == list(range(7))
    fast2, slow2 = split_fast_slow(7, torch.Generator().manual_seed(0))
    assert torch.equal(fast, fast2) and torch.equal(slow, slow2)


# Vanilla toy set, D = 1: a = 0, b = 1 (segment 1), c = 3 (segment 2).
#   k_ab = exp(-1/100) = 0.990050 (positive, T = 100); k_ac = exp(-9) = 0.000123; k_bc = exp(-4) = 0.018316
#   self excluded: P_a = e^0.990050 / (e^0.990050 + e^0.000123) = 2.691369 / 3.691492 = 0.729073
#                  P_b = e^0.990050 / (e^0.990050 + e^0.018316) = 2.691369 / 3.709853 = 0.725465
#                  c has no positive -> excluded.  L = (0.315981 + 0.320942) / 2 = 0.318462
#   self included (+ e^k_ii = e^1 = 2.718282 in each denominator): P_a = 0.419885, P_b = 0.418686,
#                  L = 0.869204
def _toy_vanilla():
    return torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True), torch.tensor([1, 1, 2])


def test_vanilla_hand_values_self_excluded_and_included():
    emb, ids = _toy_vanilla()
    assert math.isclose(vanilla_contrastive_loss(emb, ids).item(), 0.3184616485, rel_tol=1e-6)
    got = vanilla_contrastive_loss(emb, ids, exclude_self_from_denominator=False)
    assert math.isclose(got.item(), 0.8692043705, rel_tol=1e-6)


def test_vanilla_ignores_id_zero_and_decreases_when_positives_move_together():
    emb, ids = _toy_vanilla()
    base = vanilla_contrastive_loss(emb, ids)
    with_void = vanilla_contrastive_loss(torch.cat([emb, torch.tensor([[0.5]])]), torch.cat([ids, torch.tensor([0])]))
    assert math.isclose(with_void.item(), base.item(), rel_tol=1e-6)
    closer = torch.tensor([[0.0], [0.2], [3.0]])  # a and b nearer, c unchanged
    assert vanilla_contrastive_loss(closer, ids) < base


def test_vanilla_2d_gradient_pushes_negatives_apart():
    emb = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]], requires_grad=True)
    ids = torch.tensor([1, 1, 2])
    vanilla_contrastive_loss(emb, ids).backward()
    # anchor 0 (segment 1) has negative 2 at +x: descending the loss moves 0 towards -x
    assert emb.grad[0, 0] > 0
