"""Hand-computed checks of lift3d.losses.photometric and lift3d.losses.semantic."""

import math

import torch

from lift3d.losses import (
    photometric_loss,
    segment_consistency_loss,
    segment_consistency_targets,
    semantic_loss,
    semantic_ray_weights,
)


def test_photometric_is_mse_over_rays_and_channels():
    pred = torch.tensor([[0.0, 0.0, 1.0], [0.5, 0.5, 0.5]])
    gt = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    # squared errors: 0,0,1 and 0,0,0.25 -> sum 1.25 over 6 elements = 0.208333
    assert math.isclose(photometric_loss(pred, gt).item(), 1.25 / 6, rel_tol=1e-6)


def _two_rays():
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    return probs.log(), torch.tensor([0, 2])


def test_semantic_loss_hand_value():
    log_probs, target = _two_rays()
    # ray 0: -ln 0.5 = ln 2 = 0.693147; ray 1: -ln 0.1 = ln 10 = 2.302585; mean = 1.497866
    expected = (math.log(2) + math.log(10)) / 2
    assert math.isclose(semantic_loss(log_probs, target).item(), expected, rel_tol=1e-6)


def test_semantic_loss_confidence_weighting():
    log_probs, target = _two_rays()
    conf = torch.tensor([1.0, 0.5])
    # (1 * 0.693147 + 0.5 * 2.302585) / 2 rays = 0.922220 (divided by R, not by sum of weights)
    expected = (math.log(2) + 0.5 * math.log(10)) / 2
    assert math.isclose(semantic_loss(log_probs, target, conf).item(), expected, rel_tol=1e-6)
    # zero confidence removes a ray's contribution entirely
    zero = semantic_loss(log_probs, target, torch.tensor([0.0, 1.0])).item()
    assert math.isclose(zero, math.log(10) / 2, rel_tol=1e-6)


def test_semantic_ray_weights_by_hand():
    target = torch.tensor([0, 0, 1, 1, 1])
    conf = torch.tensor([0.8, 0.4, 0.2, 0.3, 0.1])
    assert torch.equal(semantic_ray_weights(target, conf, "segmenter"), conf)
    assert semantic_ray_weights(target, conf, "off") is None
    assert semantic_ray_weights(target, None, "class-balanced") is None
    # class 0: mean 0.6 -> 0.8/0.6, 0.4/0.6; class 1: mean 0.2 -> 1.0, 1.5, 0.5
    w = semantic_ray_weights(target, conf, "class-balanced")
    assert torch.allclose(w, torch.tensor([4 / 3, 2 / 3, 1.0, 1.5, 0.5]), atol=1e-6)
    # scaling one class's confidences does not change the balanced weights
    w2 = semantic_ray_weights(target, conf * torch.tensor([1.0, 1.0, 0.25, 0.25, 0.25]), "class-balanced")
    assert torch.allclose(w, w2, atol=1e-6)
    # a class whose every confidence is 0 keeps weight 0
    w0 = semantic_ray_weights(target, torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0]), "class-balanced")
    assert torch.equal(w0, torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]))
    try:
        semantic_ray_weights(target, conf, "none")
    except ValueError as e:
        assert "off" in str(e)
    else:
        raise AssertionError("an unknown mode must raise")


def _fitted_class(mode: str) -> int:
    """Fit one class distribution to a point seen as class 1 in 60 % of 10 views (confidence 0.3) and as class 0 in
    40 % (confidence 0.6); return the argmax class."""
    target = torch.tensor([1] * 6 + [0] * 4)
    conf = torch.tensor([0.3] * 6 + [0.6] * 4)
    logits = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=1.0)
    for _ in range(300):
        log_probs = torch.log_softmax(logits, 0).expand(10, 2)
        loss = semantic_loss(log_probs, target, semantic_ray_weights(target, conf, mode))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return int(logits.argmax())


def test_class_balanced_weights_keep_the_majority_class():
    # confidence-weighted optimum p_k ~ count_k * conf_k: 6 * 0.3 = 1.8 < 4 * 0.6 = 2.4 -> the minority class wins
    assert _fitted_class("segmenter") == 0
    # balanced (and unweighted): p_k ~ count_k -> the class seen in 60 % of the views
    assert _fitted_class("class-balanced") == 1
    assert _fitted_class("off") == 1


def _segment_rays():
    # segment 1: rays 0-2; segment 2: ray 3; ray 4 has no segment (id 0).
    probs = torch.tensor([[0.01, 0.99], [0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.5, 0.5]])
    ids = torch.tensor([1, 1, 1, 2, 0])
    return probs.log(), ids


def test_segment_consistency_target_is_argmax_of_mean_log_prob():
    log_probs, ids = _segment_rays()
    # segment 1, mean log-prob: class 0: (ln .01 + 2 ln .9)/3 = -1.605297
    #                           class 1: (ln .99 + 2 ln .1)/3 = -1.538407  -> class 1.
    # (Majority vote of per-ray argmax, and the mean of probabilities 0.603 vs 0.397, would both say
    # class 0: the target really is the argmax of the mean LOG-probability.)
    # segment 2: class 1. Ray 4: no segment -> -1.
    targets = segment_consistency_targets(log_probs, ids)
    assert targets.tolist() == [1, 1, 1, 1, -1]


def test_segment_consistency_loss_hand_value_and_no_grad_through_target():
    log_probs, ids = _segment_rays()
    log_probs = log_probs.clone().requires_grad_(True)
    loss = segment_consistency_loss(log_probs, ids)
    # mean over the 4 rays in segments of -log p[target=1]:
    # (-ln .99 - 2 ln .1 - ln .7) / 4 = (0.010050 + 4.605170 + 0.356675) / 4 = 1.242974
    assert math.isclose(loss.item(), 1.2429738664, rel_tol=1e-6)
    loss.backward()
    # the target carries no gradient: d loss / d log_probs is -1/4 at each (ray, target) entry only.
    expected = torch.zeros(5, 2)
    expected[:4, 1] = -0.25
    assert torch.allclose(log_probs.grad, expected)


def test_segment_consistency_without_segments_is_zero_and_differentiable():
    log_probs = torch.log(torch.tensor([[0.5, 0.5]])).requires_grad_(True)
    loss = segment_consistency_loss(log_probs, torch.tensor([0]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(log_probs.grad, torch.zeros(1, 2))


def test_fit_log_flags_unsure_object_masks():
    from types import SimpleNamespace

    from lift3d.engine.trainer import describe_class_confidence
    from lift3d.losses.config import LossConfig

    # 2 thing pixels (class 1) at 0.3, 6 stuff pixels (class 0) at 0.6: 25 % things, 0.30 vs 0.60 -> flagged
    pixels = SimpleNamespace(
        semantic=torch.tensor([1, 1, 0, 0, 0, 0, 0, 0]), confidence=torch.tensor([0.3, 0.3] + [0.6] * 6)
    )
    lines = describe_class_confidence(pixels, {1}, LossConfig())
    assert lines[0].startswith("2D classes: 25% thing pixels, mean confidence 0.30 on things, 0.60 on stuff")
    assert len(lines) == 2 and "class-balanced" in lines[1]
    # balanced weights, or object confidences at least 60 % of the stuff's: no warning
    assert len(describe_class_confidence(pixels, {1}, LossConfig(semantic_confidence="class-balanced"))) == 1
    pixels.confidence = torch.tensor([0.5, 0.5] + [0.6] * 6)
    assert len(describe_class_confidence(pixels, {1}, LossConfig())) == 1
    # detic-like's ratio (0.54 vs 0.74 = 0.73): the lift segments with it, no warning; detic-real's (0.51): warned
    pixels.confidence = torch.tensor([0.54, 0.54] + [0.74] * 6)
    assert len(describe_class_confidence(pixels, {1}, LossConfig())) == 1
    pixels.confidence = torch.tensor([0.27, 0.27] + [0.53] * 6)
    assert len(describe_class_confidence(pixels, {1}, LossConfig())) == 2
    # no thing class, or no semantic loss: nothing to say
    assert describe_class_confidence(pixels, set(), LossConfig()) == []
    assert describe_class_confidence(pixels, {1}, LossConfig(semantic_weight=0.0)) == []


def test_an_override_outside_a_literal_field_is_refused_before_any_work():
    import pytest

    from lift3d.config_io import ConfigOverrideError, apply_overrides
    from lift3d.presets import get_preset

    cfg = apply_overrides(get_preset("tiny"), ["losses.semantic_confidence=class-balanced"])
    assert cfg.losses.semantic_confidence == "class-balanced"
    with pytest.raises(ConfigOverrideError, match="not one of segmenter, class-balanced, off"):
        apply_overrides(get_preset("tiny"), ["losses.semantic_confidence=maybe"])
