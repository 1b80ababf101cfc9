"""lift3d.generate.batch (`lift3d generate messy-rooms-batch`): a grid or a spec of scenes, serially or on local Ray,
byte-identical either way; resumable; one failing scene reported by name while the others are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lift3d.generate import MessyRoomsConfig
from lift3d.generate.batch import (
    BATCH_RECORD,
    BatchGenerationError,
    BatchSpecError,
    generate_batch,
    grid_scenes,
    raise_on_failures,
    spec_scenes,
)

BASE = MessyRoomsConfig(num_views=3, resolution=16)
"""Tiny scenes: 3 views of 16x16 (a second each)."""


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_grid_names_and_configs():
    scenes = grid_scenes(BASE, [2, 25], [0, 1])
    assert [s.name for s in scenes] == ["N002_seed0", "N002_seed1", "N025_seed0", "N025_seed1"]
    assert [(s.config.num_objects, s.config.seed) for s in scenes] == [(2, 0), (2, 1), (25, 0), (25, 1)]
    assert all(s.config.resolution == 16 and s.config.num_views == 3 for s in scenes)  # the base's settings
    assert all(type(s.config) is MessyRoomsConfig for s in scenes)
    with pytest.raises(BatchSpecError, match="N000_seed0: num_objects must be >= 1"):
        grid_scenes(BASE, [0], [0])


def test_spec_entries_names_and_errors(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps([{"num_objects": 4, "seed": 2}, {"name": "big-room", "num_objects": 9, "resolution": 24}])
    )
    scenes = spec_scenes(spec, BASE)
    assert [s.name for s in scenes] == ["N004_seed2", "big-room"]
    assert (scenes[1].config.num_objects, scenes[1].config.resolution, scenes[1].config.num_views) == (9, 24, 3)
    for text, message in [
        ("{", "cannot read the batch spec"),
        ('{"num_objects": 3}', "must be a non-empty JSON list"),
        ("[3]", "entry 0 is int"),
        ('[{"num_objects": 3}, {"num_object": 3}]', r"entry 1: Unknown MessyRoomsConfig fields \['num_object'\]"),
        ('[{"name": "../up"}]', "entry 0: name '../up' is not a folder name"),
    ]:
        spec.write_text(text)
        with pytest.raises(BatchSpecError, match=message) as err:
            spec_scenes(spec, BASE)
        assert str(err.value).startswith(str(spec))


def test_duplicate_names_are_refused_before_any_work(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"num_objects": 2}, {"num_objects": 2, "resolution": 24}]))
    with pytest.raises(BatchSpecError, match=r"named \['N002_seed0'\]"):
        generate_batch(spec_scenes(spec, BASE), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(300)
def test_ray_batch_is_byte_identical_to_the_serial_batch_and_resumes(tmp_path):
    ray = pytest.importorskip("ray")
    from lift3d.fanout import RayOptions

    scenes = grid_scenes(BASE, [2, 3], [0])
    serial = generate_batch(scenes, tmp_path / "serial")
    try:
        fanned = generate_batch(scenes, tmp_path / "ray", RayOptions(workers=2))
        assert ray.cluster_resources()["CPU"] == 2
    finally:
        ray.shutdown()
    assert [r["status"] for r in serial.values()] == [r["status"] for r in fanned.values()] == ["generated"] * 2
    from lift3d.generate import generate_scene

    single = generate_scene(scenes[0].config, tmp_path / "single", progress=False)  # `lift3d generate messy-rooms`
    assert _files(single) == _files(tmp_path / "ray" / "N002_seed0")
    for name in ("N002_seed0", "N003_seed0"):
        a, b = _files(tmp_path / "serial" / name), _files(tmp_path / "ray" / name)
        assert "transforms.json" in a and len(a) == 2 + 7 * 3  # transforms.json, layout.json, 7 maps per view
        assert a == b, name
    assert (
        json.loads((tmp_path / "ray" / "N003_seed0" / "transforms.json").read_text())["generator"]["config"][
            "num_objects"
        ]
        == 3
    )

    # resume: the finished scenes are skipped (left untouched), the new one is generated
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "serial").rglob("*") if p.is_file() and p.suffix == ".png"}
    again = generate_batch(grid_scenes(BASE, [2, 3], [0, 1]), tmp_path / "serial")
    assert {n: r["status"] for n, r in again.items()} == {
        "N002_seed0": "skipped",
        "N002_seed1": "generated",
        "N003_seed0": "skipped",
        "N003_seed1": "generated",
    }
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert json.loads((tmp_path / "serial" / BATCH_RECORD).read_text())["N003_seed1"]["status"] == "generated"


def test_a_failing_scene_is_reported_by_name_and_the_others_are_written(tmp_path, monkeypatch):
    import lift3d.generate.pipeline as pipeline

    real = pipeline.generate_scene

    def fails_for_three_objects(cfg, out_dir, *args, **kwargs):
        if cfg.num_objects == 3:
            raise RuntimeError("simulated renderer crash")
        return real(cfg, out_dir, *args, **kwargs)

    monkeypatch.setattr(pipeline, "generate_scene", fails_for_three_objects)
    logged = []
    records = generate_batch(grid_scenes(BASE, [3, 2], [0]), tmp_path / "out", log=logged.append)
    assert records["N003_seed0"]["status"] == "failed"
    assert records["N003_seed0"]["error"] == "RuntimeError: simulated renderer crash"
    assert "N003_seed0: FAILED: RuntimeError: simulated renderer crash" in logged
    assert records["N002_seed0"]["status"] == "generated"  # ran after the failure
    assert (tmp_path / "out" / "N002_seed0" / "transforms.json").exists()
    assert not (tmp_path / "out" / "N003_seed0").exists()  # no half-written scene
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []
    assert json.loads((tmp_path / "out" / BATCH_RECORD).read_text())["N003_seed0"]["status"] == "failed"
    with pytest.raises(BatchGenerationError, match=r"1 of 2 scenes failed \(N003_seed0;"):
        raise_on_failures(records, tmp_path / "out")


def test_a_folder_with_other_settings_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    generate_batch(grid_scenes(BASE, [2], [0]), out)
    sharper = MessyRoomsConfig(num_views=3, resolution=24)
    with pytest.raises(
        BatchSpecError, match=r"\['N002_seed0'\] hold scenes generated with other settings.*--overwrite"
    ):
        generate_batch(grid_scenes(sharper, [2, 3], [0]), out)
    assert not (out / "N003_seed0").exists()  # refused before any work
    records = generate_batch(grid_scenes(sharper, [2], [0]), out, overwrite=True)
    assert records["N002_seed0"]["status"] == "generated"
    assert json.loads((out / "N002_seed0" / "transforms.json").read_text())["w"] == 24


def _cli(args, capsys):
    from lift3d.cli import entrypoint

    with pytest.raises(SystemExit) as exit_:
        entrypoint(["generate", "messy-rooms-batch", "--views", "3", "--resolution", "16", *args])
    return exit_.value.code, capsys.readouterr().err


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "spec.json"
    spec.write_text('[{"num_objects": 2}]')
    code, err = _cli(["--spec", str(spec), "--objects", "3", "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "either --spec" in err
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    code, err = _cli(["--objects", "2", "--ray", "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "pip install 'lift3d[ray]'" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "b").exists()


def test_cli_generates_the_grid_with_the_options_as_base(tmp_path, capsys):
    from lift3d.cli import entrypoint

    out = tmp_path / "batch"
    entrypoint(["generate", "messy-rooms-batch", "--objects", "2", "--seeds", "4", "--views", "3", "--resolution", "16",
                "--out", str(out)])  # fmt: skip
    transforms = json.loads((out / "N002_seed4" / "transforms.json").read_text())
    assert (transforms["generator"]["config"]["seed"], transforms["w"], len(transforms["frames"])) == (4, 16, 3)
    assert "wrote 1 scenes" in capsys.readouterr().out


def test_cli_exits_2_naming_the_failed_scene_after_writing_the_others(tmp_path, capsys, monkeypatch):
    import lift3d.generate.pipeline as pipeline

    real = pipeline.generate_scene

    def fails_for_seed_one(cfg, out_dir, *args, **kwargs):
        if cfg.seed == 1:
            raise RuntimeError("simulated renderer crash")
        return real(cfg, out_dir, *args, **kwargs)

    monkeypatch.setattr(pipeline, "generate_scene", fails_for_seed_one)
    code, err = _cli(["--objects", "2", "--seeds", "1", "0", "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("lift3d: error: 1 of 2 scenes failed (N002_seed1;")
    assert (tmp_path / "out" / "N002_seed0" / "transforms.json").exists()
