r"""DINO-style slow/fast baseline for the instance embedding field (Contrastive Lift, appendix E).

Analogy with DINO (Caron et al. 2021): the fast field is the student, the slow (EMA)
field the teacher, and "two views of the same image" become two pixels of the same 2D segment, one rendered
by each field. Both embeddings go through a projection head onto ``P`` prototype scores; the teacher's
scores are centred (a running mean subtracted, against collapse onto one prototype) and sharpened by a
low temperature, and the student is trained by cross-entropy to the teacher's distribution.

Usage per instance step (one image): split its pixels into F and S (:func:`.split_fast_slow`), render F
with the fast field and S with the slow field, then::

    loss, batch_center = dino_loss(f, ids_f, s, ids_s, head_fast, head_slow)
    loss.backward(); optimiser.step()
    ema_update(head_slow, head_fast, m)          # teacher head follows the student head, like the field
    head_slow.update_center(batch_center)        # centre follows the teacher's mean output

After training only the fast field's embeddings are clustered; the heads are discarded.
"""

from __future__ import annotations

import torch
from torch import nn

from .contrastive import _check_emb_ids

__all__ = ["DinoHead", "dino_loss"]


class DinoHead(nn.Module):
    """Projection head ``[N, in_dim] -> [N, num_prototypes]``: Linear -> GELU -> Linear, plus the centre.

    A deliberately small version of DINO's head (which is a 3-layer MLP, an L2-normalised bottleneck and a
    weight-normalised prototype layer): the inputs here are low-dimensional rendered embeddings (D = 3 in
    Contrastive Lift), not ViT features.

    The ``center`` buffer ``[num_prototypes]`` is the running mean of the *teacher* head's outputs; only the
    teacher's copy is used (:func:`dino_loss` reads ``head_slow.center``). It is a buffer, so
    :func:`lift3d.fields.heads.ema_update` (parameters only) leaves it alone.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 256, num_prototypes: int = 64) -> None:
        super().__init__()
        if min(in_dim, hidden_dim, num_prototypes) < 1:
            raise ValueError(
                f"DinoHead: dimensions must be >= 1, got in_dim={in_dim}, hidden_dim={hidden_dim}, "
                f"num_prototypes={num_prototypes}."
            )
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, num_prototypes))
        self.register_buffer("center", torch.zeros(num_prototypes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, in_dim] -> prototype scores [N, num_prototypes]`` (no centring, no temperature)."""
        return self.mlp(x)

    @torch.no_grad()
    def update_center(self, batch_center: torch.Tensor, momentum: float = 0.9) -> None:
        r"""``center <- m * center + (1 - m) * batch_center`` (DINO's centring EMA, ``m = momentum``)."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"DinoHead.update_center: momentum must be in [0, 1], got {momentum}.")
        self.center.mul_(momentum).add_(batch_center.detach().to(self.center.dtype), alpha=1.0 - momentum)


def dino_loss(
    fast_emb: torch.Tensor,
    fast_ids: torch.Tensor,
    slow_emb: torch.Tensor,
    slow_ids: torch.Tensor,
    head_fast: DinoHead,
    head_slow: DinoHead,
    center: torch.Tensor | None = None,
    t_student: float = 0.1,
    t_teacher: float = 0.04,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""DINO-style cross-entropy between same-segment fast and slow pixels (Contrastive Lift appendix E).

    With student head :math:`h` (``head_fast``), teacher head :math:`\bar h` (``head_slow``), centre
    :math:`c` and temperatures :math:`\tau_s, \tau_t`:

    .. math::
        q_i = \mathrm{softmax}\bigl(h(f_i)/\tau_s\bigr), \qquad
        t_j = \mathrm{softmax}\bigl((\bar h(s_j) - c)/\tau_t\bigr) \ \ (\text{no gradient}),

    .. math::
        L = \frac{1}{|F^+|}\sum_{i \in F^+} \frac{1}{|S_{y_i}|}\sum_{j \in S_{y_i}}
            \Bigl(-\sum_{p} t_{jp} \log q_{ip}\Bigr)
          = \frac{1}{|F^+|}\sum_{i \in F^+} -\sum_p \bar t_{y_i p} \log q_{ip},

    i.e. every same-segment pair (fast ``i``, slow ``j``) is one DINO "two views" pair, averaged per fast
    anchor and then over the anchors :math:`F^+` whose segment appears in S; :math:`\bar t_l` is the mean
    teacher distribution of segment ``l`` (by linearity of the cross-entropy in its target).

    No gradient reaches ``slow_emb``, ``head_slow`` or the centre (teacher branch under ``no_grad``); the
    teacher head is updated by EMA of the student head and the centre by :meth:`DinoHead.update_center`.

    Args:
        fast_emb: ``[num_fast, dim]`` fast-field embeddings of set F.
        fast_ids: ``[num_fast]`` their 2D segment ids; ``<= 0`` ignored.
        slow_emb: ``[num_slow, dim]`` slow-field embeddings of set S (detached here).
        slow_ids: ``[num_slow]``; ``<= 0`` ignored.
        head_fast: student projection head (trained).
        head_slow: teacher projection head (EMA copy of ``head_fast``).
        center: ``[num_prototypes]`` centre; None uses ``head_slow.center``.
        t_student: student temperature :math:`\tau_s` (DINO: 0.1).
        t_teacher: teacher temperature :math:`\tau_t` (DINO: 0.04, sharper than the student).

    Returns:
        ``(loss, batch_center)``: the scalar loss (0, attached to ``fast_emb``, when no anchor has a
        positive) and the teacher's mean raw output over the segmented slow pixels, ``[num_prototypes]``
        (detached), to feed :meth:`DinoHead.update_center`; the current centre when S has no segmented pixel.
    """
    _check_emb_ids("dino_loss", fast_emb, fast_ids)
    _check_emb_ids("dino_loss", slow_emb, slow_ids)
    if t_student <= 0 or t_teacher <= 0:
        raise ValueError(f"dino_loss: temperatures must be > 0, got t_student={t_student}, t_teacher={t_teacher}.")
    if center is None:
        center = head_slow.center
    center = center.detach()

    slow_keep = slow_ids > 0
    if not bool(slow_keep.any()):
        return fast_emb.sum() * 0.0, center.clone()
    with torch.no_grad():
        teacher_scores = head_slow(slow_emb.detach()[slow_keep])  # [S', P]
        batch_center = teacher_scores.mean(dim=0)
        teacher = torch.softmax((teacher_scores - center) / t_teacher, dim=1)
        segments, slow_seg = torch.unique(slow_ids[slow_keep], return_inverse=True)
        num_seg = segments.numel()
        seg_teacher = torch.zeros(num_seg, teacher.shape[1], dtype=teacher.dtype, device=teacher.device)
        seg_teacher.index_add_(0, slow_seg, teacher)
        seg_teacher /= torch.bincount(slow_seg, minlength=num_seg).to(teacher.dtype)[:, None]  # t_bar [L, P]

    match = fast_ids[:, None] == segments[None, :]  # [F, L]
    anchors = (fast_ids > 0) & match.any(dim=1)
    if not bool(anchors.any()):
        return fast_emb.sum() * 0.0, batch_center
    anchor_seg = match[anchors].float().argmax(dim=1)
    log_q = torch.log_softmax(head_fast(fast_emb[anchors]) / t_student, dim=1)  # [F+, P]
    loss = -(seg_teacher[anchor_seg] * log_q).sum(dim=1).mean()
    return loss, batch_center
