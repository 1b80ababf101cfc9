"""Per-frame mean-shift clustering of embeddings and the tracker that carries ids over time (paper 001, Sec. 4)."""

from __future__ import annotations

import torch

from lift3d.twod.tracking import EmbeddingTracker, FrameCluster, TrackingConfig, cluster_embeddings

CFG = TrackingConfig(bandwidth=1.5, match_distance=1.5, lifespan=2, min_pixels=3)


def _frame(centres: dict[int, tuple[float, float]], noise: float = 0.2, seed: int = 0):
    """A 6x8 id map (ids in column blocks) and embeddings [2, 6, 8] scattered within ``noise`` of each centre."""
    ids = torch.zeros(6, 8, dtype=torch.long)
    for n, k in enumerate(sorted(centres)):
        ids[:, 2 * n : 2 * n + 2] = k
    g = torch.Generator().manual_seed(seed)
    emb = (torch.rand(2, 6, 8, generator=g) - 0.5) * 2 * noise
    for k, c in centres.items():
        emb[:, ids == k] += torch.tensor(c)[:, None]
    return ids, emb


def test_clusters_recover_instances_within_the_margins():
    ids, emb = _frame({1: (0.0, 0.0), 2: (3.0, 0.0), 3: (0.0, 3.0)})
    clusters = cluster_embeddings(emb, ids > 0, CFG)
    masks = sorted([c.mask for c in clusters], key=lambda m: int(m.nonzero()[0, 1]))
    assert len(masks) == 3
    for k, m in zip((1, 2, 3), masks):
        assert torch.equal(m, ids == k)
    assert all(float((c.mean - emb[:, c.mask].mean(1)).norm()) < 1e-6 for c in clusters)


def test_small_clusters_are_dropped_and_background_ignored():
    ids, emb = _frame({1: (0.0, 0.0), 2: (3.0, 0.0)})
    fg = ids > 0
    fg[0, 2:4] = False
    fg[1:, 2:4] = False
    fg[0, 2] = True  # instance 2 keeps one pixel: below min_pixels
    clusters = cluster_embeddings(emb, fg, CFG)
    assert len(clusters) == 1 and torch.equal(clusters[0].mask, ids == 1)
    assert cluster_embeddings(emb, torch.zeros_like(fg), CFG) == []


def _clusters(centres: dict[int, tuple[float, float]]) -> list[FrameCluster]:
    return [FrameCluster(mask=torch.zeros(1, 1, dtype=torch.bool), mean=torch.tensor(c)) for c in centres.values()]


def test_tracker_keeps_ids_through_drift_and_gives_new_objects_new_ids():
    tr = EmbeddingTracker(CFG)
    assert tr.step(_clusters({1: (0.0, 0.0), 2: (3.0, 0.0)}), [5, 5]) == [1, 2]
    # drift by 0.4 per frame, order swapped: ids follow the embedding, not the order
    assert tr.step(_clusters({2: (3.4, 0.0), 1: (0.4, 0.0)}), [5, 5]) == [2, 1]
    # a new object far from both, and a class change blocks a match
    assert tr.step(_clusters({1: (0.8, 0.0), 9: (-4.0, 0.0)}), [5, 5]) == [1, 3]
    assert tr.step(_clusters({1: (0.8, 0.0)}), [6]) == [4]


def test_a_track_ends_after_its_lifespan():
    tr = EmbeddingTracker(CFG)  # lifespan 2
    assert tr.step(_clusters({1: (0.0, 0.0)}), [1]) == [1]
    assert tr.step([], []) == []  # frame 1: unseen
    assert tr.step(_clusters({1: (0.1, 0.0)}), [1]) == [1]  # frame 2: within the life span, same id
    tr.step([], [])
    tr.step([], [])
    assert tr.step(_clusters({1: (0.1, 0.0)}), [1]) == [2]  # unseen for 2 frames: the track has ended
