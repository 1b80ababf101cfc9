"""Image reconstruction quality: peak signal-to-noise ratio (PSNR)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def psnr(pred, gt, max_val: float = 1.0) -> float:
    """PSNR of one image in dB.

    .. math::
        \\mathrm{PSNR} = 10 \\log_{10} \\frac{\\mathrm{max\\_val}^2}{\\mathrm{MSE}},\\qquad
        \\mathrm{MSE} = \\frac{1}{3HW} \\sum_{u, v, ch} (\\hat I - I)^2 .

    Args:
        pred, gt: float images ``[H, W, 3]`` (any equal shapes) with values in ``[0, max_val]``;
            numpy arrays or CPU torch tensors.
        max_val: the peak value (1.0 for [0, 1] images, 255 for 8-bit).

    Returns:
        PSNR in dB (``inf`` for identical images).

    >>> import numpy as np
    >>> round(psnr(np.full((2, 2, 3), 0.6), np.full((2, 2, 3), 0.5)), 6)  # MSE 0.01 -> 20 dB
    20.0
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"psnr: pred shape {pred.shape} != gt shape {gt.shape}; render at the GT resolution")
    mse = float(np.mean((pred - gt) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max_val**2 / mse))


def mean_psnr(preds: Sequence, gts: Sequence, max_val: float = 1.0) -> float:
    """Mean over frames of the per-frame PSNR (not the PSNR of the pooled MSE).

    .. math:: \\overline{\\mathrm{PSNR}} = \\frac{1}{F} \\sum_f \\mathrm{PSNR}(\\hat I_f, I_f)

    Args:
        preds, gts: sequences of ``[H, W, 3]`` images (frames may differ in size).
        max_val: the peak value.

    Returns:
        Mean PSNR in dB (``inf`` if any frame is identical to its GT; NaN for no frames).
    """
    if len(preds) != len(gts):
        raise ValueError(f"mean_psnr: {len(preds)} predicted frames but {len(gts)} GT frames; pass matching lists")
    if len(preds) == 0:
        return float("nan")
    values = []
    for f, (p, g) in enumerate(zip(preds, gts)):
        try:
            values.append(psnr(p, g, max_val))
        except ValueError as err:
            raise ValueError(f"frame {f}: {err}") from None
    return float(np.mean(values))
