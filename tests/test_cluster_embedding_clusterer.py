"""Behaviour of lift3d.cluster: blobs recovered without knowing their number, per-class ids,
nearest-centroid assignment, persistence and the min_cluster_size sweep."""

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from lift3d.cluster import (
    ClassClusters,
    ClusterConfig,
    SceneClusters,
    fit_class_clusters,
    fit_scene_clusters,
    sweep_min_cluster_size,
)

SIZES = (40, 60, 90, 130, 180, 250, 400)  # 7 blobs of different sizes


def make_blobs(seed, sizes=SIZES, spacing=10.0, std=0.3, shift=0.0):
    """Well-separated isotropic 3-D blobs on distinct cells of a 4x4x4 grid (spacing >> std)."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(64, size=len(sizes), replace=False)
    centres = np.stack([cells // 16, (cells // 4) % 4, cells % 4], axis=1) * spacing + shift
    x = np.concatenate([c + std * rng.standard_normal((n, 3)) for c, n in zip(centres, sizes)])
    y = np.repeat(np.arange(len(sizes)), sizes)
    return x, y, centres


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hdbscan_recovers_blobs_without_their_number(seed):
    x, y, _ = make_blobs(seed)
    cc = fit_class_clusters(x, ClusterConfig(), min_cluster_size=20)
    assert cc.num_clusters == len(SIZES)
    assert adjusted_rand_score(y, cc.assign(x)) == 1.0


@pytest.mark.parametrize("algorithm", ["dbscan", "meanshift"])
def test_other_backends_recover_easy_blobs(algorithm):
    x, y, _ = make_blobs(3)
    # default length scales, in rescaled [0, 1] units: eps 0.05 / bandwidth 0.15; blobs here are
    # ~0.01 wide and >= 0.33 apart after rescaling.
    cc = fit_class_clusters(x, ClusterConfig(algorithm=algorithm), min_cluster_size=20)
    assert cc.num_clusters == len(SIZES)
    assert adjusted_rand_score(y, cc.assign(x)) == 1.0


def test_min_cluster_size_discards_small_clusters_for_every_backend():
    x, _, _ = make_blobs(4)
    for algorithm in ("hdbscan", "dbscan", "meanshift"):
        # only the 250 and 400 blobs can be clusters of >= 200 points
        cc = fit_class_clusters(x, ClusterConfig(algorithm=algorithm), min_cluster_size=200)
        assert cc.num_clusters == 2, algorithm


def test_rescaling_uses_inlier_min_max_and_outliers_make_no_cluster():
    x, y, _ = make_blobs(5)
    outliers = np.array([[400.0, 0.0, 0.0], [0.0, -350.0, 0.0], [0.0, 0.0, 500.0], [300.0, 300.0, 0.0]])
    cc = fit_class_clusters(np.concatenate([x, outliers]), ClusterConfig(), min_cluster_size=20)
    # the > 3 sigma points are out of the min/max: the affine is exactly the blobs' own range
    assert np.allclose(cc.offset, x.min(axis=0)) and np.allclose(cc.scale, x.max(axis=0) - x.min(axis=0))
    assert cc.num_clusters == len(SIZES)
    labels = cc.assign(np.concatenate([x, outliers]))
    assert adjusted_rand_score(y, labels[: len(x)]) == 1.0
    # outliers are still labelled: by the nearest centroid in the rescaled space
    z = (outliers - cc.offset) / cc.scale
    expected = np.argmin(((z[:, None, :] - cc.centroids[None]) ** 2).sum(-1), axis=1)
    assert labels[len(x) :].tolist() == expected.tolist()


def test_assign_by_hand():
    # offset (1, 0), scale (2, 4): point (3, 2) -> rescaled (1, 0.5); point (1, 4) -> (0, 1)
    cc = ClassClusters(
        offset=np.array([1.0, 0.0]),
        scale=np.array([2.0, 4.0]),
        centroids=np.array([[0.0, 0.0], [1.0, 0.6], [0.0, 0.9]]),
    )
    # (1, 0.5): squared distances 1.25, 0.01, 1.16 -> 1;  (0, 1): 1, 1.16, 0.01 -> 2
    assert cc.assign(np.array([[3.0, 2.0], [1.0, 4.0]])).tolist() == [1, 2]
    # Rescaling matters: offset 0, scale (1, 10), centroids A = (0, 0), B = (0.3, 0.3) (raw: (0, 0), (0.3, 3)).
    # Raw point p = (0.35, 1.0) -> rescaled (0.35, 0.1): d_A^2 = 0.1325, d_B^2 = 0.0425 -> B (1),
    # although in raw units A is nearer (1.1225 vs 4.0025).
    aniso = ClassClusters(offset=np.zeros(2), scale=np.array([1.0, 10.0]), centroids=np.array([[0.0, 0.0], [0.3, 0.3]]))
    assert aniso.assign(np.array([[0.35, 1.0]])).tolist() == [1]
    out = cc.assign(torch.tensor([[3.0, 2.0]]))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.long and out.tolist() == [1]


def test_novel_points_get_the_label_of_their_blob():
    x, y, centres = make_blobs(6)
    cc = fit_class_clusters(x, ClusterConfig(), min_cluster_size=20)
    train_labels = cc.assign(x)
    blob_to_label = {b: int(train_labels[y == b][0]) for b in range(len(SIZES))}
    rng = np.random.default_rng(99)
    novel = centres + 0.5 * rng.standard_normal(centres.shape)  # fresh draws, wider than training
    assert cc.assign(novel).tolist() == [blob_to_label[b] for b in range(len(SIZES))]


def test_single_blob_and_tiny_classes_give_one_centroid():
    rng = np.random.default_rng(0)
    one = rng.standard_normal((300, 3))
    assert fit_class_clusters(one, ClusterConfig(allow_single_cluster=True), min_cluster_size=20).num_clusters == 1
    # without it a small min_cluster_size may split one Gaussian blob (here in 2); from 50 points on it does not
    # (no two children that large: nothing found, and the fallback is one centroid). The sweep chooses the size.
    assert fit_class_clusters(one, ClusterConfig(), min_cluster_size=20).num_clusters == 2
    assert fit_class_clusters(one, ClusterConfig(), min_cluster_size=50).num_clusters == 1
    few = rng.standard_normal((5, 3))
    cc = fit_class_clusters(few, ClusterConfig(), min_cluster_size=20)  # fewer points than the size
    assert cc.num_clusters == 1
    assert np.allclose(cc.centroids[0], ((few - cc.offset) / cc.scale).mean(axis=0))


def test_subsampling_respects_max_points_and_seed():
    x, y, _ = make_blobs(7)
    cfg = ClusterConfig(max_points=500, seed=3)
    a = fit_class_clusters(x, cfg, min_cluster_size=10)
    b = fit_class_clusters(x, cfg, min_cluster_size=10)
    assert np.array_equal(a.centroids, b.centroids)  # seeded
    assert adjusted_rand_score(y, a.assign(x)) == 1.0  # 500 of 1150 points still find every blob


def _two_class_scene():
    """Class 0 stuff, classes 1 and 2 things with 3 and 4 blobs that overlap in embedding space."""
    x1, y1, _ = make_blobs(10, sizes=(80, 120, 160))
    x2, y2, _ = make_blobs(11, sizes=(60, 90, 110, 150))
    x0 = np.random.default_rng(12).standard_normal((200, 3))
    emb = np.concatenate([x0, x1, x2])
    sem = np.concatenate([np.zeros(len(x0)), np.ones(len(x1)), np.full(len(x2), 2)]).astype(np.int64)
    gt = np.concatenate([np.zeros(len(x0)), 100 + y1, 200 + y2])
    return emb, sem, gt


def test_scene_ids_disjoint_across_classes_and_stuff_is_zero():
    emb, sem, gt = _two_class_scene()
    sc = fit_scene_clusters(emb, sem, thing_classes=[1, 2], cfg=ClusterConfig(), min_cluster_size=20)
    ids = sc.label(sem, emb)
    assert (ids[sem == 0] == 0).all()
    ids1, ids2 = set(ids[sem == 1].tolist()), set(ids[sem == 2].tolist())
    assert ids1 == {1, 2, 3} and ids2 == {4, 5, 6, 7}  # contiguous offsets, class 1 first
    assert sc.num_instances == 7 and sc.instance_classes() == {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 7: 2}
    assert adjusted_rand_score(gt, ids) == 1.0
    # an image-shaped call ([H, W] and [H, W, D], torch) gives the same ids
    pick = np.random.default_rng(0).permutation(len(sem))[:960]  # all three classes, shuffled
    img = sc.label(torch.as_tensor(sem[pick]).reshape(24, 40), torch.as_tensor(emb[pick]).reshape(24, 40, 3))
    assert isinstance(img, torch.Tensor) and img.shape == (24, 40)
    assert img.reshape(-1).tolist() == ids[pick].tolist()


def test_thing_class_without_fit_data_gets_zero():
    emb, sem, _ = _two_class_scene()
    sc = fit_scene_clusters(emb, sem, thing_classes=[1, 2, 5], cfg=ClusterConfig(), min_cluster_size=20)
    assert 5 not in sc.classes and sc.num_instances == 7
    assert sc.label(np.array([5]), np.zeros((1, 3))).tolist() == [0]


def test_save_load_round_trip_is_exact_and_atomic(tmp_path):
    emb, sem, _ = _two_class_scene()
    sc = fit_scene_clusters(emb, sem, thing_classes=[1, 2], cfg=ClusterConfig(), min_cluster_size=20)
    path = tmp_path / "clusters" / "centroids.json"
    sc.save(path)
    assert os.listdir(path.parent) == ["centroids.json"]  # no temp file left behind
    loaded = SceneClusters.load(path)
    assert loaded.thing_classes == (1, 2)
    for c in (1, 2):
        assert np.array_equal(loaded.classes[c].centroids, sc.classes[c].centroids)
        assert np.array_equal(loaded.classes[c].offset, sc.classes[c].offset)
    novel = emb + 0.01
    assert np.array_equal(loaded.label(sem, novel), sc.label(sem, novel))


def test_load_rejects_foreign_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="x.json"):
        SceneClusters.load(bad)


def test_sweep_picks_the_best_scoring_size():
    x, _, _ = make_blobs(8)
    sem = np.ones(len(x), dtype=np.int64)
    true_k = len(SIZES)

    # In production score_fn is the per-frame PQ of the labelled training views against the 2D
    # segmenter's masks; here a score we can reason about: -|K - 7|.
    def score_fn(sc):
        return -abs(sc.num_instances - true_k)

    best, scores = sweep_min_cluster_size(x, sem, [1], ClusterConfig(), [1000, 20, 300], score_fn)
    # 20: all 7 blobs; 300: only the 400-point blob qualifies (K = 1); 1000: one cluster at most.
    assert scores[20] == 0 and scores[300] < 0 and scores[1000] < 0
    assert best == 20 and list(scores) == [20, 300, 1000]


def test_sweep_ties_go_to_the_smallest_size():
    x, _, _ = make_blobs(9)
    sem = np.ones(len(x), dtype=np.int64)
    seen = []

    def constant(sc):
        seen.append(sc.num_instances)
        return 1.0

    best, scores = sweep_min_cluster_size(x, sem, [1], ClusterConfig(sweep_sizes=(30, 10, 20)), score_fn=constant)
    assert best == 10 and set(scores) == {10, 20, 30} and len(seen) == 3


def test_sweep_keeps_the_smallest_size_on_the_plateau_within_the_tolerance():
    x, _, _ = make_blobs(9)
    sem = np.ones(len(x), dtype=np.int64)
    table = {10: 0.60, 20: 0.745, 40: 0.752, 80: 0.754, 160: 0.758}  # a score creeping up with the size
    cfg = ClusterConfig(sweep_sizes=tuple(table))
    sizes = iter(sorted(table))

    def creeping(sc):  # the sweep fits the candidates in ascending order
        return table[next(sizes)]

    best, scores = sweep_min_cluster_size(x, sem, [1], cfg, score_fn=creeping)
    assert scores == table and best == 40  # 0.752 >= 0.758 - 0.01; 0.745 is not
    sizes = iter(sorted(table))
    argmax, _ = sweep_min_cluster_size(x, sem, [1], dataclasses.replace(cfg, sweep_tolerance=0.0), score_fn=creeping)
    assert argmax == 160
    with pytest.raises(ValueError, match="sweep_tolerance"):
        sweep_min_cluster_size(x, sem, [1], dataclasses.replace(cfg, sweep_tolerance=-1.0), score_fn=creeping)


def test_crowded_blobs_are_not_returned_as_one_cluster():
    # 64 blobs of 40 points on a lattice with spacing 1 and std 0.3: a crowded embedding like that of a scene with
    # hundreds of objects. HDBSCAN with allow_single_cluster=True prefers the root there (one cluster for all).
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(float)
    x = np.concatenate([c + 0.3 * rng.standard_normal((40, 3)) for c in grid])
    assert not ClusterConfig().allow_single_cluster
    assert fit_class_clusters(x, ClusterConfig(allow_single_cluster=True), min_cluster_size=10).num_clusters == 1
    k = fit_class_clusters(x, ClusterConfig(), min_cluster_size=10).num_clusters
    assert 48 <= k <= 80, k


def test_missing_min_cluster_size_is_a_clear_error():
    with pytest.raises(ValueError, match="sweep_min_cluster_size"):
        fit_class_clusters(np.zeros((10, 3)), ClusterConfig())


def test_tree_cache_gives_the_uncached_clusters_and_computes_the_tree_once():
    """HDBSCAN's tree depends on the points and min_samples only: with a tree_cache, every min_cluster_size of a
    sweep gets exactly the labels of a fresh HDBSCAN, and the tree is computed once (one cached call on disk)."""
    import hdbscan

    from lift3d.cluster import tree_cache

    x, _, _ = make_blobs(3, std=1.5, spacing=6.0)  # blobs that touch
    z = (x - x.min(0)) / (x.max(0) - x.min(0))
    with tree_cache() as memory:
        folder = memory.location
        for size in (5, 40, 150, 300):
            fresh = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=1).fit(z)
            cached = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=1, memory=memory).fit(z)
            np.testing.assert_array_equal(cached.labels_, fresh.labels_)
            np.testing.assert_array_equal(cached.probabilities_, fresh.probabilities_)
        outputs = [f for _, _, files in os.walk(folder) for f in files if f == "output.pkl"]
        assert len(outputs) == 1
    assert not os.path.exists(folder)


def test_sweep_with_the_tree_cache_scores_what_fresh_fits_score_and_reports_progress():
    x, _, _ = make_blobs(4, std=1.5, spacing=6.0)
    sem = np.ones(len(x), dtype=np.int64)
    cfg = ClusterConfig()
    sizes = [10, 60, 200]
    done = []
    best, scores = sweep_min_cluster_size(
        x, sem, [1], cfg, sizes, lambda sc: sc.num_instances + 0.0, progress=done.append
    )
    assert done == [1, 1, 1]
    assert scores == {s: float(fit_scene_clusters(x, sem, [1], cfg, s).num_instances) for s in sizes}


# ----------------------------------------------------------------------------- surface points joined (position_weight)
def _shared_embedding_scene(seed=0):
    """Four objects: two embeddings (A, B), each used by two objects at opposite ends of a 10 m room (objects never
    seen together may share an embedding); positions are small 0.2 m blobs."""
    rng = np.random.default_rng(seed)
    emb_centres = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    places = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [10.0, 10.0, 0.0]])
    emb, pos, y = [], [], []
    for k in range(4):
        n = 150
        emb.append(emb_centres[k % 2] + 0.02 * rng.standard_normal((n, 3)))
        pos.append(places[k] + 0.1 * rng.standard_normal((n, 3)))
        y.append(np.full(n, k))
    return np.concatenate(emb), np.concatenate(pos), np.concatenate(y)


def test_positions_separate_objects_that_share_an_embedding():
    emb, pos, y = _shared_embedding_scene()
    alone = fit_class_clusters(emb, ClusterConfig(), min_cluster_size=30)
    assert alone.num_clusters == 2  # the embedding alone merges the objects that share it
    joined = fit_class_clusters(emb, ClusterConfig(), min_cluster_size=30, positions=pos, position_weight=1.0)
    assert joined.num_clusters == 4 and joined.uses_position
    assert adjusted_rand_score(y, joined.assign(emb, pos)) == 1.0
    # the stored map: centroids are [e rescaled to [0, 1], w (x - x_min) / L] with L the largest side of the box
    assert joined.centroids.shape == (4, 6)
    assert joined.position_scale == pytest.approx(np.ptp(pos[np.abs(emb - emb.mean(0)).max(1) < 10], 0).max())
    with pytest.raises(ValueError, match="surface point"):
        joined.assign(emb)


def test_scene_clusters_with_positions_round_trip_and_demand_positions(tmp_path):
    emb, pos, y = _shared_embedding_scene(1)
    sem = np.ones(len(emb), np.int64)
    clusters = fit_scene_clusters(emb, sem, [1], ClusterConfig(), 30, positions=pos, position_weight=0.5)
    assert clusters.uses_position
    path = tmp_path / "clusters.json"
    clusters.save(path)
    again = SceneClusters.load(path)
    np.testing.assert_array_equal(again.label(sem, emb, pos), clusters.label(sem, emb, pos))
    assert len(np.unique(again.label(sem, emb, pos))) == 4
    with pytest.raises(ValueError, match="position"):
        again.label(sem, emb)
    # clusters without positions ignore them (old files load as before)
    plain = fit_scene_clusters(emb, sem, [1], ClusterConfig(), 30)
    assert not plain.uses_position
    np.testing.assert_array_equal(plain.label(sem, emb), plain.label(sem, emb, pos))


def test_weight_sweep_keeps_the_largest_weight_the_training_score_does_not_punish():
    from lift3d.cluster.decoders import decode_by_clustering

    emb, pos, y = _shared_embedding_scene(2)
    emb = emb.mean(0) + (emb - emb.mean(0)) * 0.25  # tighter embedding clusters (noise 0.005)
    pos[np.flatnonzero(y == 0)[:75], 0] += 1.0  # object 0 is two patches 1 m apart (a table's two legs)
    sem = np.ones(len(emb), np.int64)
    calls = []

    def score(clusters):  # a per-view score: blind to merges across views, punishes a split object
        labels = clusters.label(sem, emb, pos if clusters.uses_position else None)
        calls.append(max(cc.position_weight for cc in clusters.classes.values()))
        split = sum(len(np.unique(labels[y == k])) - 1 for k in range(4))
        return 1.0 - 0.1 * split

    cfg = dataclasses.replace(ClusterConfig(), position_weight=None, position_weights=(0.0, 0.05, 50.0))
    decoding = decode_by_clustering(emb, sem, [1], cfg, [30], score, positions=pos)
    # weight 50 puts the legs 5 units apart (split, the score drops); 0 merges objects (the score cannot see it);
    # 0.05 separates the four objects and keeps the legs together: the largest weight the score does not punish
    assert decoding.info["position_weight"] == 0.05
    assert sorted(set(calls)) == [0.0, 0.05, 50.0]
    assert decoding.labeler.num_instances == 4
    assert adjusted_rand_score(y, decoding.labeler.label(sem, emb, pos)) == 1.0
    with pytest.raises(ValueError, match="surface points"):
        decode_by_clustering(emb, sem, [1], cfg, [30], score)
