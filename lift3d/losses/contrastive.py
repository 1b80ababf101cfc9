r"""Contrastive losses for the instance embedding field (Contrastive Lift, section 3).

Notation: ``f_i`` fast-field embedding of pixel ``i`` (rendered, ``[dim]``), ``s_j`` slow-field (EMA)
embedding, ``y`` the 2D segment id of a pixel *within one image* (ids are not consistent across images,
so every loss here must be called with pixels of a single image, or with ids made unique per image).
Ids ``<= 0`` mean "no thing segment": such pixels are dropped entirely (they are neither anchors,
positives nor negatives), because an unsegmented pixel may belong to any object.

Logit structure shared by the slow-fast and vanilla losses. The reference code forms a kernel value
``k_ij`` in ``(0, 1]`` and then uses ``logits_ij = exp(k_ij)`` with the probability of the positives
``P_i = sum_{positives} logits_ij / sum_{denominator} logits_ij``. That is a softmax over ``k_ij`` itself
(the "double exponent": exp of a kernel that is already an exponential). We keep exactly that structure
for every kernel and evaluate ``log P_i`` as a difference of two ``logsumexp`` over ``k`` for stability.
"""

from __future__ import annotations

from typing import Literal

import torch

KernelName = Literal["gaussian", "exp_distance"]


def _pairwise_sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_j||^2`` as ``[len(a), len(b)]`` (explicit differences: exact 0 for equal points)."""
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=-1)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` that is exactly 0 at ``x == 0`` with a finite (zero) gradient there."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(x.clamp_min(torch.finfo(x.dtype).tiny)), torch.zeros_like(x))


def _kernel(sq_dists: torch.Tensor, kernel: KernelName, bandwidth: float) -> torch.Tensor:
    if bandwidth <= 0:
        raise ValueError(f"contrastive kernel: bandwidth must be > 0, got {bandwidth}.")
    if kernel == "gaussian":
        return torch.exp(-sq_dists / bandwidth**2)
    if kernel == "exp_distance":
        return torch.exp(-_safe_sqrt(sq_dists) / bandwidth)
    raise ValueError(f"contrastive kernel: unknown kernel {kernel!r}; use 'gaussian' or 'exp_distance'.")


def _check_emb_ids(name: str, emb: torch.Tensor, ids: torch.Tensor) -> None:
    if emb.ndim != 2 or ids.shape != emb.shape[:1]:
        raise ValueError(
            f"{name}: expected embeddings [num_pixels, dim] and ids [num_pixels], got "
            f"{tuple(emb.shape)} and {tuple(ids.shape)}."
        )


def slow_fast_contrastive_loss(
    fast_emb: torch.Tensor,
    fast_ids: torch.Tensor,
    slow_emb: torch.Tensor,
    slow_ids: torch.Tensor,
    kernel: KernelName = "gaussian",
    bandwidth: float = 1.0,
) -> torch.Tensor:
    r"""Slow-fast contrastive loss (Contrastive Lift (Bhalgat et al. 2023), Eq. 4).

    Fast anchors ``i in F`` are contrasted against slow (EMA field) embeddings ``j in S`` of the same
    image; positives share the 2D segment id:

    .. math::
        P_i = \frac{\sum_{j \in S,\, y_j = y_i} \exp(k_{ij})}{\sum_{j \in S} \exp(k_{ij})},
        \qquad
        L_{con} = -\frac{1}{|F^+|} \sum_{i \in F^+} \log P_i

    with :math:`F^+` the anchors that have at least one positive in ``S`` (equivalently ``P_i > 0``).
    Kernels:

    * ``"gaussian"`` (default, the paper's Gaussian RBF):
      :math:`k_{ij} = \exp(-\lVert f_i - s_j\rVert^2 / h^2)` with ``h = bandwidth``.
      We divide by :math:`h^2` (not :math:`2\sigma^2`), so ``h = 1`` gives :math:`\exp(-d^2)`, the same
      unit width as the reference kernel and as the negatives of Eq. 3; :math:`\sigma = h/\sqrt 2`.
    * ``"exp_distance"`` (the reference implementation): :math:`k_{ij} = \exp(-\lVert f_i - s_j\rVert_2 / h)`
      with the plain (not squared) distance; ``h = 1`` reproduces the reference exactly.

    In both cases the logits are :math:`\exp(k_{ij})` as in the reference code, i.e. :math:`P_i` is a
    softmax over :math:`k_{ij}` (see the module docstring); it is computed with ``logsumexp``.

    ``slow_emb`` is detached inside this function: the slow field is updated only by EMA, so no gradient
    reaches it even if the caller forgot ``torch.no_grad()``.

    Args:
        fast_emb: fast-field embeddings of set F, ``[num_fast, dim]``.
        fast_ids: 2D segment ids of F, ``[num_fast]``; ids ``<= 0`` are ignored.
        slow_emb: slow-field embeddings of set S, ``[num_slow, dim]`` (detached here).
        slow_ids: 2D segment ids of S, ``[num_slow]``; ids ``<= 0`` are ignored.
        kernel: ``"gaussian"`` or ``"exp_distance"``.
        bandwidth: kernel width ``h`` (> 0).

    Returns:
        Scalar loss; 0 (attached to ``fast_emb``) when no anchor has a positive.
    """
    _check_emb_ids("slow_fast_contrastive_loss", fast_emb, fast_ids)
    _check_emb_ids("slow_fast_contrastive_loss", slow_emb, slow_ids)
    slow = slow_emb.detach()
    slow_keep = slow_ids > 0
    slow, slow_y = slow[slow_keep], slow_ids[slow_keep]
    same = fast_ids[:, None] == slow_y[None, :]  # [F, S']
    anchors = (fast_ids > 0) & same.any(dim=1)
    if not bool(anchors.any()):
        return fast_emb.sum() * 0.0
    k = _kernel(_pairwise_sq_dists(fast_emb[anchors], slow), kernel, bandwidth)  # [F+, S']
    log_num = torch.logsumexp(k.masked_fill(~same[anchors], float("-inf")), dim=1)
    log_den = torch.logsumexp(k, dim=1)
    return -(log_num - log_den).mean()


def concentration_loss(
    fast_emb: torch.Tensor,
    fast_ids: torch.Tensor,
    slow_emb: torch.Tensor,
    slow_ids: torch.Tensor,
    confidence: torch.Tensor | None = None,
    form: Literal["squared", "gaussian"] = "squared",
) -> torch.Tensor:
    r"""Concentration loss (Contrastive Lift (Bhalgat et al. 2023), Eq. 5): pull fast embeddings to their segment's slow centroid.

    For every segment ``l`` present in both sets (``l > 0``), the centroid is the mean of the
    (detached) slow embeddings, :math:`c_l = \frac{1}{|S_l|}\sum_{j \in S_l} s_j`, and with
    :math:`w_i` the confidence (1 when None) and ``L`` the set of shared segments:

    * ``"squared"`` (default, the paper):
      :math:`L_{conc} = \frac{1}{|L|}\sum_{l \in L} \frac{1}{|F_l|}\sum_{i \in F_l} w_i \lVert f_i - c_l\rVert^2`
    * ``"gaussian"`` (the reference implementation):
      :math:`L_{conc} = -\frac{1}{|L|}\sum_{l \in L} \frac{1}{|F_l|}\sum_{i \in F_l} w_i \exp(-\lVert f_i - c_l\rVert^2)`

    Segments are weighted equally regardless of their pixel count. ``slow_emb`` is detached inside.

    Args:
        fast_emb: ``[num_fast, dim]``.
        fast_ids: ``[num_fast]``; ids ``<= 0`` are ignored.
        slow_emb: ``[num_slow, dim]`` (detached here).
        slow_ids: ``[num_slow]``; ids ``<= 0`` are ignored.
        confidence: per fast pixel weight ``[num_fast]`` or None.
        form: ``"squared"`` or ``"gaussian"``.

    Returns:
        Scalar loss; 0 (attached to ``fast_emb``) when no segment is present in both sets.
    """
    _check_emb_ids("concentration_loss", fast_emb, fast_ids)
    _check_emb_ids("concentration_loss", slow_emb, slow_ids)
    if form not in ("squared", "gaussian"):
        raise ValueError(f"concentration_loss: unknown form {form!r}; use 'squared' or 'gaussian'.")
    if confidence is not None and confidence.shape != fast_ids.shape:
        raise ValueError(
            f"concentration_loss: confidence has shape {tuple(confidence.shape)}, expected "
            f"[num_fast] = {tuple(fast_ids.shape)}."
        )
    slow = slow_emb.detach()
    slow_keep = slow_ids > 0
    slow, slow_y = slow[slow_keep], slow_ids[slow_keep]
    segments, slow_seg = torch.unique(slow_y, return_inverse=True)  # [L_s], [S']
    # Fast pixels whose segment also appears in S.
    match = fast_ids[:, None] == segments[None, :]  # [F, L_s]
    fast_keep = (fast_ids > 0) & match.any(dim=1)
    if not bool(fast_keep.any()):
        return fast_emb.sum() * 0.0
    fast_seg = match[fast_keep].float().argmax(dim=1)  # [F'] index into segments
    num_seg = segments.numel()
    centroids = torch.zeros(num_seg, slow.shape[1], dtype=slow.dtype, device=slow.device)
    centroids.index_add_(0, slow_seg, slow)
    centroids = centroids / torch.bincount(slow_seg, minlength=num_seg).to(slow.dtype)[:, None]

    f = fast_emb[fast_keep]
    sq = ((f - centroids[fast_seg]) ** 2).sum(dim=1)  # [F']
    per_pixel = sq if form == "squared" else -torch.exp(-sq)
    if confidence is not None:
        per_pixel = per_pixel * confidence[fast_keep].to(per_pixel.dtype)
    # Mean over pixels within each segment, then over the segments present in F.
    seg_sum = torch.zeros(num_seg, dtype=per_pixel.dtype, device=per_pixel.device)
    seg_sum = seg_sum.index_add(0, fast_seg, per_pixel)
    seg_count = torch.bincount(fast_seg, minlength=num_seg)
    present = seg_count > 0
    return (seg_sum[present] / seg_count[present].to(seg_sum.dtype)).mean()


def split_fast_slow(num_pixels: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly split one image's sampled pixels into the fast set F and the slow set S (Contrastive Lift (Bhalgat et al. 2023), Eq. 4).

    A random permutation of ``range(num_pixels)``; the first ``num_pixels // 2`` indices form F, the rest
    S (so S gets the extra pixel when ``num_pixels`` is odd). The sets are disjoint and cover every pixel.

    Args:
        num_pixels: number of sampled pixels of the image.
        generator: optional ``torch.Generator`` for reproducible splits.

    Returns:
        ``(fast_idx [num_pixels // 2], slow_idx [num_pixels - num_pixels // 2])``, long tensors.
    """
    if num_pixels < 0:
        raise ValueError(f"split_fast_slow: num_pixels must be >= 0, got {num_pixels}.")
    perm = torch.randperm(num_pixels, generator=generator)
    half = num_pixels // 2
    return perm[:half], perm[half:]


def vanilla_contrastive_loss(
    emb: torch.Tensor,
    ids: torch.Tensor,
    pos_temperature: float = 100.0,
    neg_temperature: float = 1.0,
    exclude_self_from_denominator: bool = True,
) -> torch.Tensor:
    r"""Single-field contrastive loss (Contrastive Lift (Bhalgat et al. 2023), Eq. 3), as the reference code computes it.

    All pixels of one image come from the same (fast) field. With
    :math:`d^2_{ij} = \lVert f_i - f_j\rVert^2`, :math:`T_{ij} = T_+` (``pos_temperature``, 100) when
    :math:`y_i = y_j` and :math:`T_-` (``neg_temperature``, 1) otherwise,
    :math:`k_{ij} = \exp(-d^2_{ij}/T_{ij})` and logits :math:`\exp(k_{ij})`:

    .. math::
        P_i = \frac{\sum_{j \ne i,\, y_j = y_i} \exp(k_{ij})}{\sum_{j \in D_i} \exp(k_{ij})},
        \qquad L = -\frac{1}{|A|}\sum_{i \in A} \log P_i

    where ``A`` are the pixels with at least one other pixel of the same segment. The denominator set
    :math:`D_i` is every pixel but ``i`` by default (``exclude_self_from_denominator=True``): the self
    term :math:`\exp(k_{ii}) = e` is a constant that carries no information and only caps :math:`P_i`
    below 1. Pass ``False`` for the reference's "sum over all ``j``" (self included).

    Args:
        emb: ``[num_pixels, dim]`` embeddings of one image.
        ids: ``[num_pixels]`` 2D segment ids; ids ``<= 0`` are ignored.
        pos_temperature: :math:`T_+` for same-segment pairs (a wide kernel: weak pull).
        neg_temperature: :math:`T_-` for different-segment pairs.
        exclude_self_from_denominator: see above.

    Returns:
        Scalar loss; 0 (attached to ``emb``) when no pixel has a positive.
    """
    _check_emb_ids("vanilla_contrastive_loss", emb, ids)
    keep = ids > 0
    f, y = emb[keep], ids[keep]
    n = y.numel()
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    same = y[:, None] == y[None, :]
    pos = same & ~eye
    anchors = pos.any(dim=1)
    if not bool(anchors.any()):
        return emb.sum() * 0.0
    temperature = neg_temperature + (pos_temperature - neg_temperature) * same.to(f.dtype)  # T_ij
    k = torch.exp(-_pairwise_sq_dists(f, f) / temperature)  # [n, n]
    k, pos, eye = k[anchors], pos[anchors], eye[anchors]
    log_num = torch.logsumexp(k.masked_fill(~pos, float("-inf")), dim=1)
    den_logits = k.masked_fill(eye, float("-inf")) if exclude_self_from_denominator else k
    log_den = torch.logsumexp(den_logits, dim=1)
    return -(log_num - log_den).mean()
