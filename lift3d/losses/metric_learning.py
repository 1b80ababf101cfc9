r"""Alternative metric-learning objectives for the instance embedding field (Contrastive Lift, appendix E).

Both act on ONE field (no slow-fast split) and on the rendered embeddings of the pixels of ONE image:
``emb`` ``[num_pixels, dim]`` and their 2D segment ids ``ids`` ``[num_pixels]`` (ids are not consistent
across images). As in :mod:`.contrastive`, ids ``<= 0`` mean "no thing segment" and those pixels are
dropped entirely.

* :func:`associative_embedding_loss`: Newell et al. 2017 (Contrastive Lift appendix E, Eq. 6), a pull term to
  each segment's mean embedding and a Gaussian push term between segment means.
* :func:`margin_contrastive_loss`: a margin-based pairwise contrastive loss in the family of Chopra,
  Hadsell and LeCun 2005 (Contrastive Lift appendix E, Eq. 7), with a margin on both sides.

(The equations of Contrastive Lift's appendix did not survive in our text copy; the forms below are re-derived
from the cited papers and state every choice.)
"""

from __future__ import annotations

import torch

from .contrastive import _check_emb_ids, _pairwise_sq_dists, _safe_sqrt

__all__ = ["associative_embedding_loss", "margin_contrastive_loss"]


def _segment_means(emb: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(means [L, dim], segment index per pixel [N], counts [L])`` of the segments present in ``ids``."""
    _, seg = torch.unique(ids, return_inverse=True)
    num_seg = int(seg.max()) + 1
    sums = torch.zeros(num_seg, emb.shape[1], dtype=emb.dtype, device=emb.device).index_add(0, seg, emb)
    counts = torch.bincount(seg, minlength=num_seg).to(emb.dtype)
    return sums / counts[:, None], seg, counts


def associative_embedding_loss(
    emb: torch.Tensor,
    ids: torch.Tensor,
    sigma: float = 1.0,
    push_weight: float = 1.0,
) -> torch.Tensor:
    r"""Associative Embedding grouping loss (Newell et al. 2017; Contrastive Lift appendix E, Eq. 6).

    With segments :math:`l = 1..L` of the image, pixels :math:`\mathcal{S}_l`, embeddings :math:`e_i` and
    segment means :math:`\mu_l = \frac{1}{|\mathcal{S}_l|}\sum_{i \in \mathcal{S}_l} e_i`:

    .. math::
        L_{pull} = \frac{1}{L}\sum_{l=1}^{L} \frac{1}{|\mathcal{S}_l|}\sum_{i \in \mathcal{S}_l}
                   \lVert e_i - \mu_l\rVert^2,
        \qquad
        L_{push} = \frac{1}{L(L-1)}\sum_{l \ne m} \exp\!\Bigl(-\frac{\lVert \mu_l - \mu_m\rVert^2}{2\sigma^2}\Bigr),

    .. math::
        L_{AE} = L_{pull} + \lambda\, L_{push} \qquad (\lambda = \texttt{push\_weight}).

    Newell et al. use scalar tags and sum the push term over all ordered pairs including :math:`l = m`
    (each such term is the constant 1); we use vector embeddings, exclude :math:`l = m` and average over
    the :math:`L(L-1)` ordered pairs, so :math:`L_{push} \in (0, 1]`. Gradients flow through the means
    (they are not detached). With one segment :math:`L_{push} = 0`.

    Args:
        emb: ``[num_pixels, dim]`` rendered embeddings of one image.
        ids: ``[num_pixels]`` 2D segment ids; ids ``<= 0`` are ignored.
        sigma: width :math:`\sigma` of the push kernel (> 0).
        push_weight: :math:`\lambda`.

    Returns:
        Scalar loss; 0 (attached to ``emb``) when no pixel carries a segment.
    """
    _check_emb_ids("associative_embedding_loss", emb, ids)
    if sigma <= 0:
        raise ValueError(f"associative_embedding_loss: sigma must be > 0, got {sigma}.")
    keep = ids > 0
    if not bool(keep.any()):
        return emb.sum() * 0.0
    e, y = emb[keep], ids[keep]
    means, seg, counts = _segment_means(e, y)
    num_seg = means.shape[0]
    sq = ((e - means[seg]) ** 2).sum(dim=1)  # [N']
    per_seg = torch.zeros(num_seg, dtype=sq.dtype, device=sq.device).index_add(0, seg, sq) / counts
    pull = per_seg.mean()
    if num_seg < 2:
        return pull
    off_diag = ~torch.eye(num_seg, dtype=torch.bool, device=emb.device)
    push = torch.exp(-_pairwise_sq_dists(means, means) / (2.0 * sigma**2))[off_diag].mean()
    return pull + push_weight * push


def margin_contrastive_loss(
    emb: torch.Tensor,
    ids: torch.Tensor,
    pos_margin: float = 0.5,
    neg_margin: float = 1.5,
) -> torch.Tensor:
    r"""Margin-based pairwise contrastive loss (Chopra et al. 2005 family; Contrastive Lift appendix E, Eq. 7).

    Over ordered pairs :math:`i \ne j` of segmented pixels with :math:`d_{ij} = \lVert e_i - e_j\rVert_2`
    (plain Euclidean distance), positives :math:`P = \{(i,j): y_i = y_j\}` and negatives
    :math:`N = \{(i,j): y_i \ne y_j\}`:

    .. math::
        L = \frac{1}{|P|}\sum_{(i,j) \in P} [d_{ij} - m_+]_+^2
          + \frac{1}{|N|}\sum_{(i,j) \in N} [m_- - d_{ij}]_+^2

    Same-segment pairs closer than :math:`m_+` and different-segment pairs farther than :math:`m_-` cost
    nothing. Positives and negatives are averaged separately (each term is skipped when its set is empty),
    so the far more numerous negative pairs do not drown the positives. Defaults
    :math:`m_+ = 0.5, m_- = 1.5` are the margins of the discriminative loss (De Brabandere et al. 2017),
    used here as our choice: Contrastive Lift does not state its values in our copy. Chopra et al. is the special
    case :math:`m_+ = 0`. A different-segment pair at exactly :math:`d = 0` gets no gradient (its direction
    is undefined); any non-zero distance is pushed apart.

    Args:
        emb: ``[num_pixels, dim]`` rendered embeddings of one image.
        ids: ``[num_pixels]`` 2D segment ids; ids ``<= 0`` are ignored.
        pos_margin: :math:`m_+ \ge 0`.
        neg_margin: :math:`m_- > 0`.

    Returns:
        Scalar loss; 0 (attached to ``emb``) when there is no pair.
    """
    _check_emb_ids("margin_contrastive_loss", emb, ids)
    if pos_margin < 0 or neg_margin <= 0:
        raise ValueError(
            f"margin_contrastive_loss: need pos_margin >= 0 and neg_margin > 0, got {pos_margin}, {neg_margin}."
        )
    keep = ids > 0
    e, y = emb[keep], ids[keep]
    n = y.numel()
    loss = emb.sum() * 0.0
    if n < 2:
        return loss
    d = _safe_sqrt(_pairwise_sq_dists(e, e))  # [n, n]
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(n, dtype=torch.bool, device=emb.device)
    neg = ~same
    if bool(pos.any()):
        loss = loss + torch.relu(d[pos] - pos_margin).pow(2).mean()
    if bool(neg.any()):
        loss = loss + torch.relu(neg_margin - d[neg]).pow(2).mean()
    return loss
