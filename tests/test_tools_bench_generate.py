"""tools/bench_generate.py: the kubric extrapolation by hand, and a tiny fast-backend run end to end."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench():
    import tools.bench_generate as module

    return module


def test_marginal_seconds_per_view_come_from_the_calls_after_the_first(bench):
    # progress stamps of 8 views in calls of 4: call 1 ends at 30 s (set-up + 4 views), call 2 at 50 s
    ticks = [[0, 0.0], [4, 30.0], [8, 50.0]]
    assert bench.marginal_render_per_view(ticks, 8) == pytest.approx(5.0)  # (50 - 30) / (8 - 4)
    assert bench.marginal_render_per_view([[0, 0.0], [8, 50.0]], 8) is None  # one call: no marginal time
    assert bench.marginal_render_per_view([[0, 0.0], [4, 30.0], [6, 40.0]], 8) is None  # run did not finish


def test_extrapolation_to_more_views_by_hand(bench):
    run = {
        "views": 8,
        "resolution": 10,
        "render_marginal_s_per_view": 5.0,
        "wall_s": {"backend_import": 6.0, "layout_physics": 2.0, "rendering": 50.0, "segmenter": 0.8, "writing": 1.6},
    }
    ex = bench.extrapolate(run, 100)
    assert ex["rendering_s"] == pytest.approx(50.0 + 5.0 * 92)  # measured + marginal x (100 - 8) = 510
    assert ex["segmenter_s"] == pytest.approx(10.0) and ex["writing_s"] == pytest.approx(20.0)  # x 100 / 8
    assert ex["stages_total_s"] == pytest.approx(6.0 + 2.0 + 510.0 + 10.0 + 20.0)
    assert ex["held_arrays_mb"] == pytest.approx(100 * 100 * 17 / 2**20)
    # without a marginal time, the whole render time is spread over the views
    run["render_marginal_s_per_view"] = None
    assert bench.extrapolate(run, 16)["rendering_s"] == pytest.approx(100.0)


def test_a_tiny_fast_run_writes_json_and_markdown(bench, tmp_path):
    data = bench.main(
        ["--backends", "fast", "--objects", "3", "--views", "2", "--resolution", "32", "--out", str(tmp_path)]
    )
    (run,) = data["runs"]
    assert run["backend"] == "fast" and run["num_objects"] == 3 and run["views"] == 2
    assert run["config_source"] == "datasets/messy_rooms/configs/old_room_100.json"  # no standard N = 3 config
    assert set(run["wall_s"]) == {"backend_import", "layout_physics", "rendering", "segmenter", "writing"}
    assert all(v >= 0 for v in run["wall_s"].values())
    # the child's peak RSS holds at least what it had after its imports
    assert run["process_maxrss_mb"] >= run["peak_rss_after_import_mb"] > 50
    assert [d for d, _ in run["render_ticks"]] == [1, 2]
    assert run["scene_bytes_on_disk"] > 0 and len(run["loadavg_before"]) == 3
    saved = json.loads((tmp_path / "generate-benchmark.json").read_text())
    assert saved["runs"][0]["objects_placed"] == run["objects_placed"]
    md = (tmp_path / "generate-benchmark.md").read_text()
    assert "## fast backend (measured)" in md and "| 3 |" in md and "kubric" not in md.split("## fast")[1]
