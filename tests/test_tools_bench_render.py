"""tools.bench_render on a tiny fitted run: the JSON of ``view`` (a re-rendered camera at another resolution, both
paths, clustering before / after) and of ``pq`` (exact and fast paths scored on the test views). Timing is never
asserted: only what the numbers must satisfy whatever the machine."""

from __future__ import annotations

import json

from lift3d.config_io import apply_overrides
from lift3d.data.loading import load_scene
from lift3d.pipeline import fit_scene
from lift3d.presets import get_preset
from tools import bench_render


def test_bench_render_view_and_pq_on_a_tiny_run(tiny_scene_dir, tmp_path):
    run = tmp_path / "run"
    cfg = apply_overrides(get_preset("tiny"), ["cluster.max_view_pixels=300"])
    fit_scene(tiny_scene_dir, run, cfg, preset="tiny", progress=False, log=lambda *_: None)

    out = tmp_path / "view.json"
    argv = ["view", "--run", str(run), "--height", "24", "--width", "40", "--exact-rows-every", "3", "--threads", "1"]
    assert bench_render.main(argv + ["--out", str(out)]) == 0
    view = json.loads(out.read_text())
    assert view["camera"]["height"] == 24 and view["camera"]["width"] == 40
    assert view["fast"]["rays"] == 960 and view["exact"]["rays"] == 8 * 40  # rows 0, 3, ..., 21
    assert view["exact"]["seconds_per_view_is"].startswith("extrapolated")
    work = view["fast"]["work"]
    assert work["rays"] == 960 and work["density_evaluations"] <= work["examined_samples"] <= work["samples"]
    agree = view["agreement_on_exact_rays"]
    assert agree["rgb_max_abs"] < 0.05 and agree["semantic_equal_fraction"] > 0.9
    clustering = view["clustering"]
    assert clustering["before"]["pixels"] == 960
    # 960 pixels over a budget of 300: every 2nd pixel (12 x 20 = 240)
    assert clustering["after"]["stride"] == 2 and clustering["after"]["grid"] == [12, 20]
    assert clustering["after"]["pixels"] == 240

    out = tmp_path / "pq.json"
    assert (
        bench_render.main(["pq", "--runs", str(run), "--head-samples", "1", "--threads", "1", "--out", str(out)]) == 0
    )
    pq = json.loads(out.read_text())
    entry = pq["runs"][str(run)]
    assert entry["test_views"] == len(load_scene(tiny_scene_dir).test_indices)
    assert set(entry["paths"]) == {"exact", "fast (head_samples=1)"}
    for item in entry["paths"].values():
        assert 0.0 <= item["own_clusters"]["pq_scene"] <= 1.0 and item["own_clusters"]["psnr"] > 0
    assert "exact_path_clusters" in entry["paths"]["fast (head_samples=1)"]
