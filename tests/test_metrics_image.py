"""PSNR hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lift3d.metrics import mean_psnr, psnr


def test_constant_error_tenth_is_20_db():
    # MSE = 0.1^2 = 0.01 -> 10 log10(1 / 0.01) = 20 dB
    gt = np.full((4, 5, 3), 0.5)
    assert psnr(gt + 0.1, gt) == pytest.approx(20.0)
    assert psnr(torch.full((4, 5, 3), 0.6), torch.full((4, 5, 3), 0.5)) == pytest.approx(20.0, abs=1e-5)
    # 8-bit scale: error 25.5 of 255 is the same ratio -> 20 dB
    assert psnr(np.full((2, 2, 3), 25.5), np.zeros((2, 2, 3)), max_val=255.0) == pytest.approx(20.0)


def test_identical_is_inf_and_shape_mismatch_raises():
    x = np.random.default_rng(0).random((3, 3, 3))
    assert psnr(x, x) == math.inf
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((2, 2, 3)), np.zeros((2, 3, 3)))


def test_mean_psnr_is_mean_of_frames():
    # frames with errors 0.1 (20 dB) and 0.01 (40 dB): mean of per-frame PSNR = 30 dB,
    # not the PSNR of the pooled MSE (0.01 + 0.0001) / 2 -> 22.97 dB
    gts = [np.zeros((2, 2, 3)), np.zeros((3, 1, 3))]
    preds = [np.full((2, 2, 3), 0.1), np.full((3, 1, 3), 0.01)]
    assert mean_psnr(preds, gts) == pytest.approx(30.0)
    with pytest.raises(ValueError, match="frame 1"):
        mean_psnr(preds, [gts[0], np.zeros((2, 2, 3))])
