"""tools/bench_gpu.py: refuses without CUDA; its --smoke CPU run goes through every stage and writes the JSON line."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_refuses_without_cuda(tmp_path, capsys):
    from tools.bench_gpu import main

    with pytest.raises(SystemExit) as exc:
        main(["--work", str(tmp_path)])
    assert exc.value.code == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "scene").exists()  # refused before any work


@pytest.mark.timeout(300)
def test_smoke_runs_every_stage(tmp_path):
    from tools.bench_gpu import main

    out = tmp_path / "bench.json"
    r = main(["--work", str(tmp_path / "w"), "--out", str(out), "--smoke", "--iterations", "6"])
    assert json.loads(out.read_text()) == r
    assert set(r["stages"]) == {"generate", "fit", "eval"}
    assert r["stages"]["fit"]["iterations"] == 6 and r["stages"]["fit"]["it_per_s"] > 0
    assert 0.0 <= r["pq_scene"] <= 1.0
    assert r["seconds_total"] == pytest.approx(sum(s["seconds"] for s in r["stages"].values()), abs=0.2)
    assert r["backends"].startswith("backends: volume rendering torch")  # CPU: the torch twin ran
