"""tools/bench_memory.py on a tiny scene: each stage runs in its own process and reports its own peak RSS."""

from __future__ import annotations

import json

import pytest


@pytest.mark.timeout(300)
def test_tiny_run_reports_peak_rss_per_stage(tmp_path):
    from tools.bench_memory import main

    out = tmp_path / "mem.json"
    args = ["--work", str(tmp_path / "w"), "--out", str(out), "--objects", "4", "--views", "4", "--resolution", "32"]
    r = main(args + ["--preset", "tiny", "--iterations", "4", "--cluster-views", "1", "--threads", "1"])
    assert json.loads(out.read_text()) == r
    assert (tmp_path / "w" / "run" / "fit.json").exists() and (tmp_path / "w" / "scene" / "transforms.json").exists()
    # a Python process with torch imported holds > 100 MiB; a tiny scene needs far less than 24 GiB
    for stage in ("generate", "fit", "cluster"):
        assert 0.1 < r[f"{stage}_peak_rss_gib"] < 4, r
        assert r[f"{stage}_seconds"] > 0
    assert r["within_24_gib"] is True
    # the cluster stage clusters every rendered pixel of the clustering view (32x32), at every swept size
    assert r["cluster_points"] == {"rendered": 32 * 32, "clustered": 32 * 32}
    assert set(r["cluster_sweep_clusters"]) and all(k >= 1 for k in r["cluster_sweep_clusters"].values())
