"""Spatial embeddings with a learned clustering bandwidth: loss and inference.

Neven, De Brabandere, Proesmans and Van Gool, "Instance Segmentation by Jointly Optimizing Spatial Embeddings and
Clustering Bandwidth" (CVPR 2019), Sec. 3, re-derived from the equations (no code of the authors' repository).

Every pixel ``i`` at coordinate ``x_i`` (the coordinate map, :func:`coordinate_map`) predicts an offset ``o_i`` and
a bandwidth ``σ_i``; its spatial embedding is ``e_i = x_i + tanh(o_i)`` (Eq. 2). An instance ``S_k`` has the centre
``C_k = 1/|S_k| Σ_{i∈S_k} x_i`` (the centroid of its pixels) and the bandwidth ``s_k = 1/|S_k| Σ_{i∈S_k} σ_i``
(Eq. 6); the Gaussian instance score of a pixel is (Eq. 5, with the bandwidth stored as ``σ`` and mapped through
``exp(10·σ)`` as in the paper's implementation notes)

    φ_k(e_i) = exp(-Σ_d exp(10·s_kd) · (e_id - C_kd)²),

so pixels with ``φ > 0.5`` form the instance. Each thing class ``c`` has a seed map ``d_c`` regressed to ``φ`` on its
instances and to 0 elsewhere; at inference the highest seed is an instance centre and its own ``σ`` the bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from lift3d.losses.lovasz import lovasz_hinge

__all__ = [
    "SpatialEmbeddingLossConfig",
    "ClusteringConfig",
    "coordinate_map",
    "spatial_embedding",
    "sigma_for_bandwidth",
    "gaussian_instance_score",
    "sigma_smoothness",
    "instance_loss_terms",
    "spatial_embedding_loss",
    "Instance",
    "cluster_spatial_embeddings",
]


@dataclass
class SpatialEmbeddingLossConfig:
    """Weights of the three terms of the spatial-embedding loss (Neven et al. 2019, Sec. 3.4)."""

    w_instance: float = 1.0
    """Weight of the Lovász hinge on the Gaussian instance score (per object)."""
    w_sigma: float = 10.0
    """Weight of the sigma smoothness term (per object)."""
    w_seed: float = 1.0
    """Weight of the seed regression."""
    foreground_weight: float = 10.0
    """Weight of the seed regression on instance pixels relative to background pixels."""
    w_semantic: float = 1.0
    """Weight of the cross-entropy of the class head (lift3d's addition: stuff classes for the lift)."""


@dataclass
class ClusteringConfig:
    """Inference of Neven et al. (2019), Sec. 3.5: seed-driven sampling with the seed pixel's own bandwidth."""

    foreground_threshold: float = 0.5
    """Pixels with a seed score above this are candidates (the seed map doubles as a foreground mask)."""
    seed_threshold: float = 0.9
    """Stop when the best remaining seed score is below this."""
    score_threshold: float = 0.5
    """A pixel joins the proposal when its Gaussian score around the seed's embedding exceeds this."""
    min_pixels: int = 128
    """A proposal is kept only with more than this many pixels (the paper's 128 px at 2048x1024; scale it with the
    image area, e.g. 8 at 96x96)."""
    min_unclustered: float = 0.5
    """A proposal is kept only if more than this fraction of it is not yet clustered."""


def coordinate_map(height: int, width: int, pixels_per_unit: float, device=None) -> torch.Tensor:
    """Pixel coordinate map ``x [2, H, W]`` (x then y): pixel ``(u, v)`` sits at ``(u / ppu, v / ppu)``.

    The paper's convention is ``pixels_per_unit = 1024`` (a 2048x1024 image spans ``[0, 2] x [0, 1]``), so that the
    ``tanh`` offsets reach 1024 pixels.
    """
    ys = torch.arange(height, dtype=torch.float32, device=device) / pixels_per_unit
    xs = torch.arange(width, dtype=torch.float32, device=device) / pixels_per_unit
    return torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)])


def sigma_for_bandwidth(bandwidth_pixels: float, pixels_per_unit: float) -> float:
    """The ``σ`` whose Gaussian score ``exp(-exp(10 σ) d²)`` has standard deviation ``bandwidth_pixels`` pixels:
    ``exp(10 σ) = 1 / (2 (b / ppu)²)``. Neven et al.'s initial ``σ = 1`` at 1024 pixels per unit is ~4.9 px."""
    return math.log(pixels_per_unit**2 / (2.0 * bandwidth_pixels**2)) / 10.0


def spatial_embedding(offsets: torch.Tensor, pixels_per_unit: float) -> torch.Tensor:
    """Neven et al. 2019, Eq. 2: ``e = x + tanh(o)``. ``offsets [B, 2, H, W]`` -> ``[B, 2, H, W]``."""
    _, _, h, w = offsets.shape
    return coordinate_map(h, w, pixels_per_unit, offsets.device)[None] + torch.tanh(offsets)


def gaussian_instance_score(embedding: torch.Tensor, centre: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Neven et al. 2019, Eq. 5: ``φ(e) = exp(-Σ_d exp(10·σ_d) (e_d - C_d)²)``.

    ``embedding [2, ...]`` (any trailing shape, e.g. ``[2, H, W]`` or ``[2, P]``), ``centre [2]``, ``sigma [n_sigma]``
    with ``n_sigma`` 1 (one bandwidth for both axes) or 2. Returns ``[...]`` in ``(0, 1]``.
    """
    extra = (1,) * (embedding.dim() - 1)
    scale = torch.exp(10.0 * sigma).expand(2).reshape(2, *extra)
    return torch.exp(-(scale * (embedding - centre.reshape(2, *extra)) ** 2).sum(0))


def sigma_smoothness(sigma_pixels: torch.Tensor) -> torch.Tensor:
    """Neven et al. 2019, Eq. 7: ``1/|S_k| Σ_{i∈S_k} ‖σ_i - s_k‖²`` with ``s_k`` the mean, held constant.

    ``sigma_pixels [n_sigma, P]`` (the instance's pixels) -> scalar (gradient only into the pixels' ``σ_i``).
    """
    mean = sigma_pixels.mean(1, keepdim=True).detach()
    return ((sigma_pixels - mean) ** 2).sum(0).mean()


def instance_loss_terms(
    embedding: torch.Tensor, sigma: torch.Tensor, mask: torch.Tensor, pixels_per_unit: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-instance terms of one image: ``(lovász hinge, sigma smoothness, φ [H, W])``.

    ``embedding [2, H, W]``, ``sigma [n_sigma, H, W]``, ``mask [H, W]`` bool (non-empty). The centre is the centroid
    of the instance's pixel coordinates, the bandwidth the mean of its pixels' ``σ`` (Eq. 6); the hinge is taken
    over the whole image on the logits ``2φ - 1`` (so ``φ > 0.5`` means inside).
    """
    h, w = mask.shape
    coords = coordinate_map(h, w, pixels_per_unit, embedding.device)
    centre = coords[:, mask].mean(1)
    sigma_pixels = sigma[:, mask]
    s_k = sigma_pixels.mean(1)
    phi = gaussian_instance_score(embedding, centre, s_k)
    return lovasz_hinge(2.0 * phi - 1.0, mask), sigma_smoothness(sigma_pixels), phi


def spatial_embedding_loss(
    offsets: torch.Tensor,
    sigma: torch.Tensor,
    seed_logits: torch.Tensor,
    instance_maps: torch.Tensor,
    instance_classes: list[dict[int, int]],
    cfg: SpatialEmbeddingLossConfig,
    pixels_per_unit: float,
    semantic_logits: Optional[torch.Tensor] = None,
    semantic_targets: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Neven et al. 2019, Sec. 3.4, averaged over the images of a batch.

    Per image, with ``K`` instances, ``d_c = sigmoid(seed_logits_c)`` and ``φ_k`` as in :func:`instance_loss_terms`:

        L = w_inst/K Σ_k lovász(2φ_k - 1, S_k) + w_sigma/K Σ_k smooth_k
            + w_seed/(HW) [fg_w Σ_k Σ_{i∈S_k} (d_{c(k),i} - φ_k,i.detach())² + Σ_c Σ_{i∉S(c)} d_{c,i}²]

    where ``S(c)`` is the union of the instances of class channel ``c``. Shapes: ``offsets [B, 2, H, W]``,
    ``sigma [B, n_sigma, H, W]``, ``seed_logits [B, n_seed, H, W]``, ``instance_maps [B, H, W]`` int (0 = none;
    pixels of id ``k`` form ``S_k``), ``instance_classes[b]``: ``{instance id: seed channel}`` (ids absent from it
    are ignored by every term). Optionally ``semantic_logits [B, n_classes, H, W]`` and ``semantic_targets [B, H, W]``
    (channel indices, -1 = ignore) add ``w_semantic`` times the cross-entropy. Returns the loss and its parts.
    """
    b, _, h, w = offsets.shape
    embedding = spatial_embedding(offsets, pixels_per_unit)
    seed = torch.sigmoid(seed_logits)
    total = offsets.new_zeros(())
    parts = {"instance": 0.0, "sigma": 0.0, "seed": 0.0, "semantic": 0.0}
    for i in range(b):
        inst_terms, var_terms = [], []
        seed_fg = torch.zeros_like(seed[i], dtype=torch.bool)
        seed_sq = offsets.new_zeros(())
        for k, channel in instance_classes[i].items():
            mask = instance_maps[i] == k
            if not bool(mask.any()):
                continue
            l_inst, l_var, phi = instance_loss_terms(embedding[i], sigma[i], mask, pixels_per_unit)
            inst_terms.append(l_inst)
            var_terms.append(l_var)
            seed_fg[channel] |= mask
            seed_sq = seed_sq + cfg.foreground_weight * ((seed[i, channel][mask] - phi[mask].detach()) ** 2).sum()
        seed_sq = seed_sq + (seed[i][~seed_fg] ** 2).sum()
        l_seed = seed_sq / (h * w)
        l_inst = torch.stack(inst_terms).mean() if inst_terms else offsets.new_zeros(())
        l_var = torch.stack(var_terms).mean() if var_terms else offsets.new_zeros(())
        total = total + cfg.w_instance * l_inst + cfg.w_sigma * l_var + cfg.w_seed * l_seed
        parts["instance"] += float(l_inst.detach()) / b
        parts["sigma"] += float(l_var.detach()) / b
        parts["seed"] += float(l_seed.detach()) / b
    total = total / b
    if semantic_logits is not None and semantic_targets is not None and cfg.w_semantic > 0:
        valid = semantic_targets >= 0
        if bool(valid.any()):
            ce = torch.nn.functional.cross_entropy(semantic_logits, semantic_targets.clamp(min=0), reduction="none")
            l_sem = (ce * valid).sum() / (b * h * w)
            total = total + cfg.w_semantic * l_sem
            parts["semantic"] = float(l_sem.detach())
    return total, parts


@dataclass
class Instance:
    """One clustered instance of an image."""

    mask: torch.Tensor
    """[H, W] bool."""
    score: float
    """Mean seed score over the instance's pixels (in [0, 1]); ranks instances for AP."""
    channel: int
    """Seed channel (thing-class index) that produced it."""


@torch.no_grad()
def cluster_spatial_embeddings(
    offsets: torch.Tensor, sigma: torch.Tensor, seed: torch.Tensor, cfg: ClusteringConfig, pixels_per_unit: float
) -> list[Instance]:
    """Neven et al. 2019, Sec. 3.5: instances of one image without knowing how many there are.

    ``offsets [2, H, W]``, ``sigma [n_sigma, H, W]``, ``seed [n_seed, H, W]`` (probabilities, after the sigmoid).
    Per seed channel: candidates are pixels with ``seed > foreground_threshold``; repeatedly the unclustered
    candidate with the highest seed (stop below ``seed_threshold``) gives the centre ``e_seed`` and bandwidth
    ``σ_seed``; the proposal is the candidates with ``φ(e_i; e_seed, σ_seed) > score_threshold``. It is kept if it
    has more than ``min_pixels`` pixels and more than ``min_unclustered`` of them are unclustered; its mask is then
    its unclaimed pixels (instances never overlap). Its pixels (and the seed pixel) leave the pool either way.
    """
    embedding = spatial_embedding(offsets[None], pixels_per_unit)[0]
    claimed = torch.zeros(seed.shape[1:], dtype=torch.bool, device=seed.device)
    out: list[Instance] = []
    for c in range(seed.shape[0]):
        candidates = seed[c] > cfg.foreground_threshold
        unclustered = candidates.clone()
        emb = embedding[:, candidates]  # [2, P]
        while bool(unclustered.any()):
            masked = torch.where(unclustered, seed[c], torch.full_like(seed[c], -1.0))
            flat = int(torch.argmax(masked))
            v, u = divmod(flat, seed.shape[2])
            if float(seed[c, v, u]) < cfg.seed_threshold:
                break
            phi = gaussian_instance_score(emb, embedding[:, v, u], sigma[:, v, u])
            proposal = torch.zeros_like(candidates)
            proposal[candidates] = phi > cfg.score_threshold
            size = int(proposal.sum())
            if size > cfg.min_pixels and int((proposal & unclustered).sum()) > cfg.min_unclustered * size:
                mask = proposal & ~claimed
                if bool(mask.any()):
                    out.append(Instance(mask=mask, score=float(seed[c][mask].mean()), channel=c))
                    claimed |= mask
            unclustered &= ~proposal
            unclustered[v, u] = False
    return out
