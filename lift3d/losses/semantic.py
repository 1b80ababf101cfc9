"""Semantic losses on rendered class distributions: confidence-weighted cross-entropy
(Semantic-NeRF style, used by Contrastive Lift section 3 "Semantic segmentation") and the segment
consistency loss of Panoptic Lifting (Siddiqui et al. 2023)."""

from __future__ import annotations

import torch


def semantic_loss(
    log_probs: torch.Tensor,
    target: torch.Tensor,
    confidence: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Confidence-weighted cross-entropy of rendered class distributions to the 2D segmenter.

    .. math::
        L_{sem} = \frac{1}{R} \sum_{r=1}^{R} w_r \, \bigl(-\log \hat p_{r, y_r}\bigr)

    where :math:`\log \hat p_r` is the rendered log class distribution of ray ``r``, :math:`y_r`
    the 2D segmenter's class and :math:`w_r` its confidence (1 when ``confidence`` is None).
    The average is over all rays (divided by ``R``, not by :math:`\sum_r w_r`), so low-confidence
    rays simply contribute less.

    Args:
        log_probs: rendered log class probabilities, ``[num_rays, num_classes]``.
        target: class id per ray, ``[num_rays]`` (long, in ``0..num_classes-1``).
        confidence: per-ray weight in ``[0, 1]``, ``[num_rays]``, or None.

    Returns:
        Scalar loss.
    """
    if log_probs.ndim != 2 or target.shape != log_probs.shape[:1]:
        raise ValueError(
            f"semantic_loss: expected log_probs [num_rays, num_classes] and target [num_rays], got "
            f"{tuple(log_probs.shape)} and {tuple(target.shape)}."
        )
    nll = -log_probs.gather(1, target.long().unsqueeze(1)).squeeze(1)  # [R]
    if confidence is not None:
        if confidence.shape != nll.shape:
            raise ValueError(
                f"semantic_loss: confidence has shape {tuple(confidence.shape)}, expected "
                f"[num_rays] = {tuple(nll.shape)}."
            )
        nll = nll * confidence.to(nll.dtype)
    return nll.mean()


@torch.no_grad()
def semantic_ray_weights(target: torch.Tensor, confidence: torch.Tensor | None, mode: str) -> torch.Tensor | None:
    r"""Per-ray weights :math:`w_r` of :func:`semantic_loss` from the 2D segmenter's confidences.

    - ``segmenter``: :math:`w_r = c_r`, the confidence as given (Contrastive Lift / Semantic-NeRF).
    - ``off``: :math:`w_r = 1` (returns None).
    - ``class-balanced``: the confidence normalised within each class of the batch,

      .. math::
          w_r = \frac{c_r}{\bar c_{y_r}}, \qquad
          \bar c_k = \frac{1}{|\{r' : y_{r'} = k\}|} \sum_{r' : y_{r'} = k} c_{r'}

      so every class keeps a mean weight of 1: confidences still rank the rays of one class, but a segmenter
      whose scores are lower on one class than on another (object masks against the background) cannot tilt the
      fitted class prior. With plain confidences the optimum of the weighted cross-entropy at a point seen as
      class :math:`k` in a fraction :math:`p_k` of its views is :math:`\hat p_k \propto p_k \bar c_k`.

    Args:
        target: class id per ray, ``[num_rays]``.
        confidence: ``[num_rays]`` in ``[0, 1]``, or None (every mode then gives None: unweighted).
        mode: ``segmenter``, ``off`` or ``class-balanced``.

    Returns:
        ``[num_rays]`` weights (no gradient) or None for an unweighted loss.
    """
    if mode not in ("segmenter", "off", "class-balanced"):
        raise ValueError(f"semantic_ray_weights: unknown mode {mode!r}; use segmenter, off or class-balanced.")
    if confidence is None or mode == "off":
        return None
    if mode == "segmenter":
        return confidence
    classes, inverse = torch.unique(target.long(), return_inverse=True)
    conf = confidence.to(torch.float32)
    sums = torch.zeros(classes.numel(), dtype=conf.dtype, device=conf.device).index_add_(0, inverse, conf)
    counts = torch.bincount(inverse, minlength=classes.numel()).to(conf.dtype)
    mean = sums / counts
    # a class whose every ray has confidence 0 stays at weight 0
    return torch.where(mean[inverse] > 0, conf / mean[inverse].clamp_min(1e-12), torch.zeros_like(conf))


@torch.no_grad()
def segment_consistency_targets(log_probs: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    r"""Hard class target per ray for the segment consistency loss (no gradient).

    For every 2D segment :math:`s` (``segment_ids > 0``) the rendered log-probabilities of its rays are
    averaged and the argmax is the segment's class:

    .. math::
        \tilde y_s = \arg\max_c \frac{1}{|s|} \sum_{r \in s} \log \hat p_{rc}

    Args:
        log_probs: ``[num_rays, num_classes]``.
        segment_ids: ``[num_rays]`` integer segment id; ids ``<= 0`` mean "no segment".

    Returns:
        ``[num_rays]`` long: :math:`\tilde y_{s(r)}` for rays in a segment, ``-1`` for the others.
    """
    targets = torch.full(segment_ids.shape, -1, dtype=torch.long, device=log_probs.device)
    in_segment = segment_ids > 0
    if not bool(in_segment.any()):
        return targets
    _, inverse = torch.unique(segment_ids[in_segment], return_inverse=True)  # [R_in]
    num_segments = int(inverse.max()) + 1
    lp = log_probs[in_segment].detach()
    sums = torch.zeros(num_segments, lp.shape[1], dtype=lp.dtype, device=lp.device)
    sums.index_add_(0, inverse, lp)
    counts = torch.bincount(inverse, minlength=num_segments).to(lp.dtype)
    segment_class = (sums / counts[:, None]).argmax(dim=1)  # [num_segments]
    targets[in_segment] = segment_class[inverse]
    return targets


def segment_consistency_loss(log_probs: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    r"""Segment consistency loss of Panoptic Lifting (used by Contrastive Lift, section 3).

    Every ray of a 2D segment is pulled towards the class that the field currently predicts for the
    segment as a whole (see :func:`segment_consistency_targets`; the target carries no gradient):

    .. math::
        L_{seg} = \frac{1}{|\{r : s(r) > 0\}|} \sum_{r : s(r) > 0} -\log \hat p_{r, \tilde y_{s(r)}}

    The average is over rays (large segments weigh more), rays with ``segment_ids <= 0`` are ignored.
    This makes the rendered semantics piecewise constant over the 2D segmenter's masks without trusting
    its per-pixel class.

    Args:
        log_probs: rendered log class probabilities, ``[num_rays, num_classes]``.
        segment_ids: ``[num_rays]`` 2D segment id of each ray within its image (ids must not be shared
            across images in one batch: offset them per image before calling).

    Returns:
        Scalar loss; 0 (still attached to ``log_probs``) when no ray lies in a segment.
    """
    if log_probs.ndim != 2 or segment_ids.shape != log_probs.shape[:1]:
        raise ValueError(
            f"segment_consistency_loss: expected log_probs [num_rays, num_classes] and segment_ids "
            f"[num_rays], got {tuple(log_probs.shape)} and {tuple(segment_ids.shape)}."
        )
    targets = segment_consistency_targets(log_probs, segment_ids)
    valid = targets >= 0
    if not bool(valid.any()):
        return log_probs.sum() * 0.0
    return -log_probs[valid].gather(1, targets[valid].unsqueeze(1)).mean()
