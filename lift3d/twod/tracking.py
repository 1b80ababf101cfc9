"""Inference of the spatio-temporal method (paper 001, Sec. 3 and 4): cluster each frame's embeddings, carry ids on.

Per frame (:func:`cluster_embeddings`): the foreground pixels' embeddings are clustered by mean shift with a flat
kernel (Comaniciu and Meer 2002, as the paper does): from an unassigned pixel, the centre moves to the mean of the
embeddings within ``bandwidth`` until it stops; the unassigned pixels within ``bandwidth`` of the mode form an
instance; repeat until every pixel is assigned. With the loss at zero (pixels within ``ρ_a`` of their centre, centres
``2 ρ_r`` apart) a bandwidth of ``ρ_r`` separates the instances exactly.

Over time (:class:`EmbeddingTracker`): "tracking instances simply requires comparing the mean embedding of a newly
segmented instance with previously segmented instances. A distance lower than ρ_r indicates a match" (Sec. 4). A
track remembers its mean embeddings of the last ``lifespan`` frames (the paper's life span = the sequence length);
the new instances and the live tracks are matched one-to-one by the Hungarian algorithm on the distance between the
instance's mean and the track's mean memory, pairs further than ``match_distance`` apart (or of different classes)
are not matched, and unmatched instances start new tracks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["TrackingConfig", "FrameCluster", "cluster_embeddings", "EmbeddingTracker"]


@dataclass
class TrackingConfig:
    """Clustering and tracking settings of the spatio-temporal method."""

    bandwidth: float = 1.5
    """Mean-shift kernel radius and assignment radius in embedding space (paper 001: ρ_r = 1.5)."""
    match_distance: float = 1.5
    """A new instance continues a track when their mean embeddings are closer than this (paper: ρ_r)."""
    lifespan: int = 5
    """Frames a track's embedding memory lasts without being seen (paper: the sequence length, 5)."""
    min_pixels: int = 8
    """Instances with fewer pixels are dropped (their pixels become background)."""
    iterations: int = 30
    """Most mean-shift steps per instance."""


@dataclass
class FrameCluster:
    """One instance found in one frame."""

    mask: torch.Tensor
    """[H, W] bool."""
    mean: torch.Tensor
    """[p] mean embedding of its pixels."""


@torch.no_grad()
def cluster_embeddings(embedding: torch.Tensor, foreground: torch.Tensor, cfg: TrackingConfig) -> list[FrameCluster]:
    """Mean-shift clustering of one frame (module docstring).

    ``embedding [p, H, W]``, ``foreground [H, W]`` bool. Returns the instances (disjoint masks, at least
    ``min_pixels`` pixels each) in the order found; the seed of each search is the unassigned pixel with the most
    unassigned neighbours within ``bandwidth`` (deterministic).
    """
    p = embedding.shape[0]
    idx = foreground.reshape(-1).nonzero().flatten()
    if idx.numel() == 0:
        return []
    e = embedding.reshape(p, -1)[:, idx].T.float()  # [P, p]
    near = torch.cdist(e, e) < cfg.bandwidth  # [P, P]; P <= H W of small frames
    unassigned = torch.ones(len(e), dtype=torch.bool, device=e.device)
    out: list[FrameCluster] = []
    while bool(unassigned.any()):
        density = (near & unassigned[None, :]).sum(1).masked_fill(~unassigned, -1)
        seed = int(torch.argmax(density))
        centre = e[seed]
        for _ in range(cfg.iterations):
            inside = ((e - centre).norm(dim=1) < cfg.bandwidth) & unassigned
            if not bool(inside.any()):
                break
            new = e[inside].mean(0)
            moved = float((new - centre).norm())
            centre = new
            if moved < 1e-4:
                break
        members = ((e - centre).norm(dim=1) < cfg.bandwidth) & unassigned
        members[seed] = True
        unassigned &= ~members
        if int(members.sum()) < cfg.min_pixels:
            continue
        mask = torch.zeros(foreground.numel(), dtype=torch.bool, device=foreground.device)
        mask[idx[members]] = True
        out.append(FrameCluster(mask=mask.reshape(foreground.shape), mean=e[members].mean(0)))
    return out


@dataclass
class _Track:
    track_id: int
    label: int
    memory: deque = field(default_factory=deque)  # (frame, mean [p]) of the last `lifespan` frames


class EmbeddingTracker:
    """Carries instance ids over the frames of one sequence (module docstring). Call :meth:`step` per frame in order."""

    def __init__(self, cfg: TrackingConfig):
        self.cfg = cfg
        self.tracks: list[_Track] = []
        self.frame = -1
        self.next_id = 1

    def step(self, clusters: list[FrameCluster], labels: list[int]) -> list[int]:
        """Assign track ids to this frame's ``clusters`` (``labels``: their class, matched only within a class).

        Returns one track id (>= 1) per cluster; ids are never reused within a sequence.
        """
        self.frame += 1
        live = list(self.tracks)
        ids = [0] * len(clusters)
        if clusters and live:
            cost = np.full((len(clusters), len(live)), np.inf)
            for i, c in enumerate(clusters):
                for j, tr in enumerate(live):
                    if tr.label == labels[i]:
                        mean = torch.stack([m for _, m in tr.memory]).mean(0)
                        cost[i, j] = float((c.mean - mean).norm())
            gated = np.where(cost < self.cfg.match_distance, cost, 1e9)  # gate first: far pairs never compete
            rows, cols = linear_sum_assignment(gated)
            for i, j in zip(rows, cols):
                if cost[i, j] < self.cfg.match_distance:
                    ids[i] = live[j].track_id
                    live[j].memory.append((self.frame, clusters[i].mean))
        for i, c in enumerate(clusters):
            if ids[i] == 0:
                tr = _Track(self.next_id, labels[i], deque([(self.frame, c.mean)]))
                self.tracks.append(tr)
                ids[i] = self.next_id
                self.next_id += 1
        for tr in self.tracks:  # forget means older than the life span; a track with none left has ended
            while tr.memory and self.frame - tr.memory[0][0] >= self.cfg.lifespan:
                tr.memory.popleft()
        self.tracks = [tr for tr in self.tracks if tr.memory]
        return ids
