r"""Panoptic Lifting's linear-assignment instance loss (Siddiqui et al. 2023; the "PanopLi" baseline).

The instance field outputs ``K`` logits per pixel: ``K`` is a fixed *upper bound on the number of objects*
in the scene (Contrastive Lift: 25 on ScanNet, 500 on Messy Rooms), one "slot" per object. 2D segment ids are
not consistent across images, so for every image the segments are matched one-to-one to slots by a linear
assignment on the field's current predictions, and the matched slots become the pixels' classification
targets. The matching is a discrete, non-differentiable step computed from *detached* probabilities; only
the cross-entropy to the matched slots carries gradient.

Call it with the pixels of ONE image (segment ids of different images are unrelated).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["linear_assignment_loss", "select_segments"]


def select_segments(segment_ids: torch.Tensor, max_segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct segment ids (``> 0``) of one image, keeping the ``max_segments`` largest.

    Truncation rule (deterministic): segments are ranked by pixel count, largest first, ties broken by the
    smaller id; the first ``max_segments`` are kept. The pixels of dropped segments are then ignored by the
    loss, exactly as unsegmented pixels (id 0) are.

    Args:
        segment_ids: ``[num_pixels]`` integer ids; ``<= 0`` means "no segment".
        max_segments: ``K``, the number of slots.

    Returns:
        ``(kept_ids [L], counts [L])`` with ``L = min(#segments, max_segments)``, sorted by increasing id.
    """
    ids, counts = torch.unique(segment_ids[segment_ids > 0], return_counts=True)  # sorted by id
    if ids.numel() > max_segments:
        # Stable sort by decreasing count keeps increasing-id order among equal counts.
        order = torch.sort(-counts, stable=True).indices[:max_segments]
        order = torch.sort(order).values  # back to increasing id
        ids, counts = ids[order], counts[order]
    return ids, counts


def linear_assignment_loss(
    logits: torch.Tensor,
    segment_ids: torch.Tensor,
    confidence: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[int, int]]:
    r"""Linear-assignment cross-entropy of Panoptic Lifting, for the pixels of one image.

    With :math:`p_{r} = \mathrm{softmax}(z_r) \in \Delta^{K}` the slot distribution of pixel ``r``
    (``logits`` :math:`z_r`), and :math:`\mathcal{S}_l` the pixels of 2D segment ``l``:

    .. math::
        C_{lk} = -\frac{1}{|\mathcal{S}_l|} \sum_{r \in \mathcal{S}_l} \operatorname{sg}(p_{rk}),
        \qquad
        \pi = \arg\min_{\pi \text{ injective}} \sum_l C_{l\,\pi(l)}
        \quad (\text{Hungarian, } \texttt{scipy.optimize.linear\_sum\_assignment}),

    .. math::
        L = \frac{1}{|R_+|} \sum_{r \in R_+} w_r \, \bigl(-\log p_{r,\pi(l_r)}\bigr)

    where ``sg`` stops the gradient, :math:`R_+` are the pixels of matched segments, :math:`l_r` the segment
    of pixel ``r`` and :math:`w_r` its confidence (1 when None). As in :func:`~lift3d.losses.semantic_loss`
    the weighted sum is divided by the pixel count, not by :math:`\sum w_r`.

    ``K`` (``logits.shape[1]``) is a required upper bound on the number of objects. When an image has more
    than ``K`` segments, only the ``K`` largest are matched (see :func:`select_segments`) and the pixels of
    the others are ignored; no error is raised.

    ``logits`` may be any unnormalised scores, including already-normalised log-probabilities (then
    ``log_softmax`` leaves them unchanged).

    Args:
        logits: ``[num_pixels, K]`` rendered slot logits of one image.
        segment_ids: ``[num_pixels]`` 2D segment ids of that image; ids ``<= 0`` are ignored.
        confidence: per-pixel weight ``[num_pixels]`` or None.

    Returns:
        ``(loss, assignment)``: the scalar loss (0, attached to ``logits``, when the image has no segment)
        and ``{segment id: slot index}`` for the matched segments.
    """
    if logits.ndim != 2 or segment_ids.shape != logits.shape[:1]:
        raise ValueError(
            f"linear_assignment_loss: expected logits [num_pixels, K] and segment_ids [num_pixels], got "
            f"{tuple(logits.shape)} and {tuple(segment_ids.shape)}."
        )
    if confidence is not None and confidence.shape != segment_ids.shape:
        raise ValueError(
            f"linear_assignment_loss: confidence has shape {tuple(confidence.shape)}, expected "
            f"[num_pixels] = {tuple(segment_ids.shape)}."
        )
    num_slots = logits.shape[1]
    kept, _ = select_segments(segment_ids, num_slots)
    if kept.numel() == 0:
        return logits.sum() * 0.0, {}

    # Index of each pixel's segment in `kept` (sorted), without an [R, L] comparison matrix.
    pos = torch.searchsorted(kept, segment_ids).clamp_max(kept.numel() - 1)
    pixel_in = kept[pos] == segment_ids  # ids <= 0 and dropped segments are not in `kept`
    pixel_seg = pos[pixel_in]  # [R+] index into kept
    log_probs = torch.log_softmax(logits[pixel_in], dim=1)  # [R+, K]

    with torch.no_grad():
        probs = log_probs.detach().exp()
        num_seg = kept.numel()
        sums = torch.zeros(num_seg, num_slots, dtype=probs.dtype, device=probs.device)
        sums.index_add_(0, pixel_seg, probs)
        counts = torch.bincount(pixel_seg, minlength=num_seg).to(probs.dtype)
        cost = -(sums / counts[:, None])  # [L, K]
    rows, cols = linear_sum_assignment(cost.cpu().double().numpy())  # L <= K: every row is matched
    slot_of_segment = torch.empty(num_seg, dtype=torch.long, device=logits.device)
    slot_of_segment[torch.as_tensor(rows, device=logits.device)] = torch.as_tensor(
        cols.astype(np.int64), device=logits.device
    )

    target = slot_of_segment[pixel_seg]  # [R+]
    nll = -log_probs.gather(1, target[:, None]).squeeze(1)
    if confidence is not None:
        nll = nll * confidence[pixel_in].to(nll.dtype)
    assignment = {int(kept[r]): int(c) for r, c in zip(rows, cols)}
    return nll.mean(), assignment
