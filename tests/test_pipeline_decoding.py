"""lift3d.pipeline.decoding: clustering views of a high resolution rendered on a regular pixel grid (stride chosen
from the pixel budget, every per-pixel array indexed alike), and lift3d.pipeline.progress's plain progress lines."""

from __future__ import annotations

import numpy as np
import torch

from lift3d.data.rays import PixelSet
from lift3d.pipeline.decoding import subsample_views, view_stride
from lift3d.pipeline.progress import stage_progress


def test_view_stride_by_hand():
    assert view_stride(64, 64, 100_000) == 1
    assert view_stride(540, 960, 0) == 1
    assert view_stride(540, 960, 100_000) == 3  # 180 x 320 = 57600; stride 2 gives 270 x 480 = 129600
    assert view_stride(540, 960, 57_600) == 3
    assert view_stride(540, 960, 57_599) == 4  # 135 x 240
    assert view_stride(5, 7, 4) == 4  # 2 x 2: stride 3 gives 2 x 3 = 6


def _pixels(sizes) -> PixelSet:
    p = sum(h * w for h, w in sizes)
    uv, view = [], []
    for pos, (h, w) in enumerate(sizes):
        vv, uu = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        uv.append(torch.stack([uu.reshape(-1), vv.reshape(-1)], -1))
        view.append(torch.full((h * w,), pos))
    offsets = np.cumsum([0] + [h * w for h, w in sizes])
    return PixelSet(
        view_ids=[3, 9],
        c2w=torch.eye(4)[None].repeat(len(sizes), 1, 1),
        intrinsics=torch.tensor([[10.0, 10.0, 2.0, 2.0]]).repeat(len(sizes), 1),
        sizes=list(sizes),
        offsets=torch.tensor(offsets),
        pixel_view=torch.cat(view),
        pixel_uv=torch.cat(uv),
        rgb=torch.arange(p * 3, dtype=torch.float32).reshape(p, 3),
        instance=torch.arange(p),
        semantic=torch.arange(p) % 5,
        confidence=torch.ones(p),
        depth=torch.arange(p, dtype=torch.float32),
    )


def test_subsample_views_keeps_every_sth_pixel_of_each_view_and_its_arrays():
    pixels = _pixels([(7, 9), (2, 3)])  # 63 pixels (stride 3 for a budget of 12: 3 x 3 = 9) and 6 (kept)
    sub = subsample_views(pixels, 12)
    assert sub.sizes == [(3, 3), (2, 3)] and sub.offsets.tolist() == [0, 9, 15]
    assert sub.view_ids == [3, 9]
    u, v = sub.pixel_uv[:9, 0], sub.pixel_uv[:9, 1]
    assert u.tolist() == [0, 3, 6] * 3 and v.tolist() == [0] * 3 + [3] * 3 + [6] * 3
    rows = v * 9 + u  # the flat row of each kept pixel in the first view
    for name in ("instance", "semantic", "depth", "confidence", "pixel_view"):
        torch.testing.assert_close(getattr(sub, name)[:9], getattr(pixels, name)[rows])
    torch.testing.assert_close(sub.rgb[:9], pixels.rgb[rows])
    torch.testing.assert_close(sub.instance[9:], pixels.instance[63:])  # the small view: every pixel
    torch.testing.assert_close(sub.view_rows(1), torch.arange(9, 15))
    assert subsample_views(pixels, 0) is pixels and subsample_views(pixels, 63) is pixels


def test_stage_progress_without_a_terminal_writes_a_line_per_tenth():
    lines: list[str] = []
    with stage_progress("render 2 test views", 1000, "rays", True, lines.append) as advance:
        for _ in range(8):
            advance(125)
    assert len(lines) == 8  # 12.5% a call: every call crosses a further tenth
    assert lines[0].startswith("render 2 test views 125/1000 rays, ") and lines[-1].startswith(
        "render 2 test views 1000/1000 rays"
    )
    lines.clear()
    with stage_progress("x", 1000, "rays", False, lines.append) as advance:
        advance(1000)
    assert lines == []


def test_the_viewer_re_clusters_exactly_what_the_fit_clustered(tiny_scene_dir, tmp_path):
    """The fit renders its clustering views on the pixel grid of cluster.max_view_pixels with the fast path; the
    viewer's cache renders them through the same function, so re-clustering at the fit's size gives the fit's
    centroids and labels."""
    import json

    from lift3d.cluster.slots import load_labeler
    from lift3d.config_io import apply_overrides
    from lift3d.export.run import load_export_inputs
    from lift3d.pipeline import fit_scene
    from lift3d.presets import get_preset
    from lift3d.viewer import cache_clustering_embeddings, recluster

    run = tmp_path / "run"
    cfg = apply_overrides(get_preset("tiny"), ["cluster.max_view_pixels=300"])  # 32x32 views -> every 2nd pixel
    fit_scene(tiny_scene_dir, run, cfg, preset="tiny", progress=False, log=lambda *_: None)
    record = json.loads((run / "clustering.json").read_text())
    assert record["view_sizes"] == [[16, 16]] * len(record["cluster_views"])
    opened = load_export_inputs(run, device="cpu")
    cache = cache_clustering_embeddings(opened)
    assert len(cache.semantic) == 256 * len(record["cluster_views"])
    fit_labeler = load_labeler(run / "clusters.json")
    mine = recluster(opened, cache, record["min_cluster_size"])
    np.testing.assert_array_equal(
        mine.label(cache.semantic, cache.embedding), fit_labeler.label(cache.semantic, cache.embedding)
    )
    for c, cc in fit_labeler.classes.items():
        np.testing.assert_allclose(mine.classes[c].centroids, cc.centroids)


def test_a_run_clustered_with_surface_points_renders_exports_and_re_clusters_with_them(fitted_run, tmp_path):
    """``cluster.position_weight = None`` (re-decoding a fitted run with ``--resume``): the weight is chosen with the
    sweep and stored with the clusters, and every consumer (render, export of points and meshes, the viewer's
    re-clustering) labels pixels with their surface points."""
    import json
    import shutil

    from conftest import FITTED_RUN_OVERRIDES

    from lift3d.cluster.slots import load_labeler
    from lift3d.config_io import apply_overrides
    from lift3d.export.config import ExportConfig
    from lift3d.export.run import export_run, load_export_inputs
    from lift3d.pipeline import fit_scene, render_run
    from lift3d.presets import get_preset
    from lift3d.viewer import cache_clustering_embeddings, recluster

    scene, fitted = fitted_run
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    cfg = apply_overrides(get_preset("cpu-small"), [*FITTED_RUN_OVERRIDES, "cluster.position_weight=None"])
    fit_scene(scene, run, cfg, resume=True, preset="cpu-small", progress=False, log=lambda *_: None)
    record = json.loads((run / "clustering.json").read_text())
    weights = cfg.cluster.position_weights
    assert record["position_weight"] in weights
    assert set(record["sweep"]) == {f"w={w:g}" for w in weights}  # every weight was swept with every size
    labeler = load_labeler(run / "clusters.json")
    assert labeler.num_instances >= 1 and labeler.uses_position == (record["position_weight"] > 0)
    out = render_run(run, "test", progress=False, log=lambda *_: None)
    assert any(out.rglob("*.png"))
    opened = load_export_inputs(run, device="cpu")
    info = export_run(opened, tmp_path / "export", what="both", cfg=ExportConfig(mesh_resolution=24))
    assert (tmp_path / "export" / "instances.json").exists() and "instances" in info
    cache = cache_clustering_embeddings(opened)
    mine = recluster(opened, cache, record["min_cluster_size"])
    np.testing.assert_array_equal(
        mine.label(cache.semantic, cache.embedding, cache.position),
        labeler.label(cache.semantic, cache.embedding, cache.position),
    )


def test_segment_balanced_rows_by_hand():
    from lift3d.pipeline.decoding import segment_balanced_rows

    # two views; segment ids repeat across views (7 in both) and may be negative (void)
    view_of = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    segment = np.array([7, 7, 7, 7, 2, -1, 7, 7, 3, 3, 3, -1])
    eligible = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    rows = segment_balanced_rows(view_of, segment, eligible, per_segment=2, seed=3)
    # groups and their eligible rows: (0,7): 0,1,2 -> 2 drawn; (0,2): 4; (0,-1): 5; (1,7): 6,7; (1,3): 8,9,10 -> 2
    assert rows.dtype == np.int64 and np.all(np.diff(rows) > 0)
    assert eligible[rows].all()
    groups = {}
    for r in rows:
        groups.setdefault((int(view_of[r]), int(segment[r])), []).append(int(r))
    assert {k: len(v) for k, v in groups.items()} == {(0, 7): 2, (0, 2): 1, (0, -1): 1, (1, 7): 2, (1, 3): 2}
    assert set(groups[(0, 7)]) <= {0, 1, 2} and set(groups[(1, 3)]) <= {8, 9, 10}
    np.testing.assert_array_equal(rows, segment_balanced_rows(view_of, segment, eligible, 2, seed=3))
    # a budget larger than every group keeps every eligible row
    np.testing.assert_array_equal(segment_balanced_rows(view_of, segment, eligible, 10), np.flatnonzero(eligible))
    # every draw of a 3-row group is possible (uniform within the group, not the first rows)
    seen = {tuple(segment_balanced_rows(view_of, segment, eligible, 1, seed=s)[:1]) for s in range(40)}
    assert seen == {(0,), (1,), (2,)}
    assert segment_balanced_rows(view_of, segment, np.zeros(12, bool), 2).size == 0


def test_a_segment_sampled_fit_clusters_per_segment_and_the_viewer_re_clusters_the_same_points(fitted_run, tmp_path):
    """``cluster.sample = segment``: the fit clusters at most k thing pixels of each 2D segment of each clustering
    view (counted here independently, by a loop over views and segments); the viewer's cache holds exactly those
    points, so re-clustering at the fit's size gives the fit's centroids; the sweep scores the chosen subset of
    views."""
    import json
    import shutil

    from conftest import FITTED_RUN_OVERRIDES

    from lift3d.cluster.slots import load_labeler
    from lift3d.config_io import apply_overrides
    from lift3d.export.run import load_export_inputs
    from lift3d.pipeline import fit_scene
    from lift3d.pipeline.decoding import render_clustering_views
    from lift3d.presets import get_preset
    from lift3d.viewer import cache_clustering_embeddings, recluster

    scene, fitted = fitted_run
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    k = 5
    cfg = apply_overrides(
        get_preset("cpu-small"),
        [
            *FITTED_RUN_OVERRIDES,
            "cluster.sample=segment",
            f"cluster.points_per_segment={k}",
            "cluster.max_score_views=1",
            "cluster_views=3",
        ],
    )
    fit_scene(scene, run, cfg, resume=True, preset="cpu-small", progress=False, log=lambda *_: None)
    record = json.loads((run / "clustering.json").read_text())
    assert record["sample"] == "segment" and record["scored_views"] == 1 and len(record["cluster_views"]) == 3
    opened = load_export_inputs(run, device="cpu")
    _, pixels, renders = render_clustering_views(opened.model, opened.scene, opened.cfg)
    things = set(int(t) for t in opened.scene.thing_ids)
    expected, rendered_things = 0, 0
    for p, r in enumerate(renders):
        seg = pixels.instance[pixels.view_rows(p)].numpy()
        sem = r.semantic.reshape(-1)
        is_thing = np.array([int(c) in things for c in sem])
        rendered_things += int(is_thing.sum())
        for s in np.unique(seg):
            expected += min(k, int((is_thing & (seg == s)).sum()))
    assert 0 < expected < rendered_things  # the sample is smaller than the rendered thing pixels
    assert record["num_points"] == expected and record["num_rendered_thing_pixels"] == rendered_things
    cache = cache_clustering_embeddings(opened)
    assert len(cache.semantic) == expected and all(int(c) in things for c in cache.semantic)
    fit_labeler = load_labeler(run / "clusters.json")
    mine = recluster(opened, cache, record["min_cluster_size"])
    for c, cc in fit_labeler.classes.items():
        np.testing.assert_allclose(mine.classes[c].centroids, cc.centroids)
    # without the embedding (argmax decoders): the same points, an empty embedding
    from lift3d.pipeline.decoding import clustering_sample

    sem_e, emb_e, pos_e, n_e = clustering_sample(pixels, renders, things, opened.cfg.cluster)
    sem_0, emb_0, pos_0, n_0 = clustering_sample(pixels, renders, things, opened.cfg.cluster, with_embedding=False)
    np.testing.assert_array_equal(sem_0, sem_e)
    np.testing.assert_array_equal(pos_0, pos_e)
    assert n_0 == n_e and emb_e.shape == (len(sem_e), renders[0].embedding.shape[-1]) and emb_0.shape == (len(sem_e), 0)
