"""tools/study_ray.py: a two-scene cpu-tiny study through local Ray gives the serial runner's numbers, and resumes."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray")

KEYS = ("pq_scene", "pq_frame", "miou", "instance_steps", "embedding_dim")


def _args(out, work, *extra):
    return [
        "--config",
        "cpu-tiny",
        "--methods",
        "slow-fast",
        "linear-assignment",
        "--out",
        str(out),
        "--work",
        str(work),
        *extra,
    ]


@pytest.mark.timeout(900)
def test_ray_study_matches_the_serial_runner_and_resumes(tmp_path, monkeypatch):
    import ray

    import tools.study as study
    import tools.study_ray as study_ray

    serial = study.main(_args(tmp_path / "serial", tmp_path / "work-serial"))
    try:
        fanned = study.main(_args(tmp_path / "ray", tmp_path / "work-ray", "--ray", "--ray-workers", "2"))
        assert fanned["study"]["objects"] == [3, 6]
        for name, per_n in serial["results"].items():  # every method and 2D baseline, both scenes
            for n, entry in per_n.items():
                for k in KEYS:
                    if k in entry:
                        assert fanned["results"][name][n][k] == entry[k], (name, n, k)
        assert serial["scenes"]["6"]["num_slots"] == fanned["scenes"]["6"]["num_slots"]

        # resumable: a second run dispatches no task (every entry is in results.json)
        calls = []
        monkeypatch.setattr(study_ray, "init_ray", lambda *a: calls.append(a))
        again = study.main(_args(tmp_path / "ray", tmp_path / "work-ray", "--ray", "--ray-workers", "2"))
        assert calls == []
        assert json.dumps(again["results"], sort_keys=True) == json.dumps(fanned["results"], sort_keys=True)
    finally:
        ray.shutdown()
