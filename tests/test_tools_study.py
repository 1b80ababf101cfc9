"""tools/study.py: the experiment runner end to end on its cpu-tiny configuration, and its per-scene rules."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def study():
    import tools.study as module

    return module


def test_num_slots_bounds_objects_and_segments_with_margin(study):
    from tools.study_lift import num_slots_for

    assert num_slots_for(25, 14, 0.1) == 28  # ceil(1.1 * 25) = ceil(27.5)
    assert num_slots_for(10, 16, 0.1) == 18  # more segments in one image than objects: ceil(17.6)
    assert num_slots_for(500, 15, 0.0) == 500


def test_views_and_steps_are_clamped(study):
    cfg = study.STUDY_CONFIGS["cpu-small"]
    assert [study.num_views_for(cfg, n) for n in (25, 50, 100, 500)] == [100, 200, 400, 1200]
    assert study.instance_steps_for(cfg, 80) == study.instance_steps_for(cfg, 320) == 2000  # fixed on cpu-small
    rule = dataclasses.replace(cfg, instance_steps_per_train_view=4.0, min_instance_steps=600, max_instance_steps=2000)
    assert study.instance_steps_for(rule, 80) == 600  # 4 * 80 = 320 -> at least 600
    assert study.instance_steps_for(rule, 320) == 1280
    assert study.instance_steps_for(rule, 10_000) == 2000


def test_fit_config_scales_grid_and_encodings_with_scene_extent(study):
    cfg = study.STUDY_CONFIGS["cpu-small"]
    small = study.fit_config_for(cfg, 25, 80)
    big = study.fit_config_for(cfg, 100, 320)  # extent x2: grid x2, one more octave
    assert (small.model.radiance.grid_resolution, small.model.radiance.final_grid_resolution) == (64, 96)
    assert (big.model.radiance.grid_resolution, big.model.radiance.final_grid_resolution) == (128, 192)
    assert big.model.occupancy_resolution == 2 * small.model.occupancy_resolution
    assert big.model.instance.position_frequencies == small.model.instance.position_frequencies + 1
    assert big.model.semantic.position_frequencies == small.model.semantic.position_frequencies + 1
    assert small.model.semantic.encoding == "hashgrid"  # its finest level and table follow the extent too
    assert big.model.semantic.hash_max_resolution == 2 * small.model.semantic.hash_max_resolution
    assert big.model.semantic.hash_log2_table_size == small.model.semantic.hash_log2_table_size + 2
    huge = study.fit_config_for(cfg, 500, 320)  # x4.47 would be 429: capped at 256
    assert huge.model.radiance.final_grid_resolution == cfg.max_grid_resolution
    assert huge.model.instance.position_frequencies == small.model.instance.position_frequencies + 2
    assert small.cluster_views == 20 and big.cluster_views == 80  # 25% of the training views, clamped to [6, 80]
    assert small.cluster.max_points == 20_000 and big.cluster.max_points == 60_000


def test_shared_iterations_and_steps_grow_with_the_training_views(study):
    cfg = study.STUDY_CONFIGS["cpu-small-cover"]
    # shared fit: 1.6 passes over 64 x 64 training pixels in batches of 1024 rays, clamped to [1500, 6000]
    its = [study.fit_config_for(cfg, n, t).optim.iterations for n, t in ((25, 80), (100, 320), (500, 960))]
    assert its == [1500, 2048, 6000]  # 512 -> 1500; 1.6 * 320 * 4096 / 1024 = 2048; 6144 -> 6000
    assert [study.instance_steps_for(cfg, t) for t in (80, 320, 960)] == [2000, 2688, 8000]  # 8.4 / view
    fit = study.fit_config_for(cfg, 500, 960)
    assert fit.cluster_views == 960 and fit.cluster.sample == "segment" and fit.cluster.points_per_segment == 8
    assert fit.losses.semantic_confidence == "class-balanced" and fit.cluster.position_weight is None
    # without shared_passes the preset's iterations stand (cpu-small: 1500 for every N)
    assert study.fit_config_for(study.STUDY_CONFIGS["cpu-small"], 500, 960).optim.iterations == 1500


def test_method_config_changes_only_the_instance_objective(study):
    from tools.study_lift import method_config

    base = study.fit_config_for(study.STUDY_CONFIGS["cpu-small"], 25, 80)
    la = method_config(base, "linear-assignment", num_slots=28)
    assert la.losses.instance_loss == "linear-assignment" and la.losses.num_slots == 28
    nc = method_config(base, "no-concentration", num_slots=28)
    assert nc.losses.instance_loss == "slow-fast" and nc.losses.concentration_weight == 0
    assert nc.model.embedding_dim == base.model.embedding_dim
    assert method_config(base, "slow-fast", 28, embedding_dim=12).model.embedding_dim == 12
    assert la.model.radiance == base.model.radiance and la.optim == base.optim
    with pytest.raises(ValueError, match="unknown method"):
        method_config(base, "nope", 28)


def test_robust_rate_ignores_warmup_and_bursts(study):
    from tools.study_lift import robust_rate

    r = robust_rate([1.0, 0.1, 0.1, 0.1, 0.5], warmup=1)  # 4 steps in 0.8 s; median step 0.1 s
    assert r["mean"] == pytest.approx(5.0) and r["median"] == pytest.approx(10.0)


def test_claims_are_read_from_the_numbers(study):
    from tools.study_report import check_claims

    def entry(pq):
        return {"pq_scene": pq}

    data = {
        "study": {"methods": ["slow-fast", "vanilla", "linear-assignment"]},
        "scenes": {"25": {}, "500": {}},
        "results": {
            "slow-fast": {"25": entry(0.8), "500": entry(0.5)},
            "vanilla": {"25": entry(0.7), "500": entry(0.6)},
            "linear-assignment": {"25": entry(0.6), "500": entry(0.4)},
            "2d-raw": {"25": entry(0.3), "500": entry(0.45)},
        },
        "throughput": {
            "slow-fast": {"25": {"it_per_s": 10.0}, "500": {"it_per_s": 9.5}},
            "linear-assignment": {"25": {"it_per_s": 8.0, "num_slots": 28}, "500": {"it_per_s": 8.0, "num_slots": 550}},
        },
    }
    claims = {c["claim"]: c["holds"] for c in check_claims(data)}
    assert claims["slow-fast >= vanilla >= linear assignment in PQ^scene at N = 500"] is False  # 0.5 < 0.6
    assert claims["every lifted method above every 2D baseline at N = 25"] is True
    assert claims["every lifted method above every 2D baseline at N = 500"] is False  # 0.4 < 0.45
    assert claims["slow-fast instance-phase it/s at N = 500 >= 0.9 x at N = 25"] is True  # 0.95
    assert claims["linear-assignment instance-phase it/s falls from N = 25 to N = 500"] is False  # equal


@pytest.mark.timeout(600)
def test_runner_end_to_end_on_cpu_tiny(study, tmp_path):
    import torch

    out = tmp_path / "out"
    threads = torch.get_num_threads()
    study.main(["--config", "cpu-tiny", "--out", str(out), "--work", str(tmp_path / "work"), "--embedding-sweep"])
    assert torch.get_num_threads() == threads  # the study's 1 thread does not leak into the caller
    data = json.loads((out / "results.json").read_text())
    cfg = study.STUDY_CONFIGS["cpu-tiny"]
    methods = list(cfg.methods) + ["2d-raw", "2d-track-iou", "2d-track-warp", "2d-track-fusion"]
    for m in methods:
        for n in cfg.objects:
            r = data["results"][m][str(n)]
            for key in ("pq_scene", "pq_frame", "miou"):
                assert math.isfinite(r[key]) and 0.0 <= r[key] <= 1.0, (m, n, key, r[key])
    for m in cfg.throughput_methods:
        for n in cfg.objects:
            assert data["throughput"][m][str(n)]["it_per_s"] > 0
    for m in cfg.methods:
        for n in cfg.objects:
            assert data["results"][m][str(n)]["instance_it_per_s_median"] > 0
            assert data["results"][m][str(n)]["instance_steps"] == cfg.min_instance_steps
    # linear assignment has K = ceil(1.1 * max(N, most segments per image)) slots
    for n in cfg.objects:
        s = data["scenes"][str(n)]
        assert s["num_slots"] == math.ceil(1.1 * max(n, s["max_segments_per_train_view"]))
        assert data["results"]["linear-assignment"][str(n)]["embedding_dim"] == s["num_slots"]
    sweep_n = str(sorted(cfg.objects)[1])
    assert sorted(data["embedding_sweep"][sweep_n], key=int) == [str(d) for d in cfg.sweep_dims]
    # a tracker only renames a frame's segments (never splits or merges one), so per-frame PQ cannot change
    for n in cfg.objects:
        pf = {
            b: data["results"][b][str(n)]["pq_frame"]
            for b in ("2d-raw", "2d-track-iou", "2d-track-warp", "2d-track-fusion")
        }
        assert len(set(pf.values())) == 1, pf

    md = (out / "results.md").read_text()
    table = md.split("## PQ^scene")[1].split("##")[0]
    for label in list(cfg.methods) + [
        "2D segmenter (no tracking)",
        "2D + tracking (1) IoU",
        "2D + tracking (2) depth warping",
        "2D + tracking (3) point-cloud fusion",
    ]:
        assert f"| {label} |" in table, label
    assert "## Instance-phase throughput" in md and "## Per-frame PQ" in md and "## Claims" in md
    from PIL import Image

    for name in ("pq_vs_objects.png", "throughput_vs_objects.png", "embedding_sweep.png"):
        with Image.open(out / name) as im:
            im.verify()
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
            assert np.asarray(im.convert("L")).std() > 0  # not a blank canvas


def test_stale_scenes_and_shared_fits_are_not_reused(study, tmp_path):
    from lift3d.data.loading import load_scene
    from tools.study_lift import fit_shared_fields

    cfg = dataclasses.replace(study.STUDY_CONFIGS["cpu-tiny"], objects=(3,))
    scene_dir = tmp_path / "N003"
    first = study.prepare_scene(cfg, 3, scene_dir, log=lambda m: None)
    assert first["generated"] and first["num_views"] == 8
    assert json.loads((scene_dir / study.STUDY_SCENE_FILE).read_text())["num_views"] == 8
    assert not study.prepare_scene(cfg, 3, scene_dir, log=lambda m: None)["generated"]  # same settings: reused

    more_views = dataclasses.replace(cfg, min_views=10, max_views=10)
    with pytest.raises(ValueError, match=r"num_views: 8 != 10"):  # a folder the user pointed at is never rewritten
        study.prepare_scene(more_views, 3, scene_dir, log=lambda m: None, regenerate_stale=False)
    again = study.prepare_scene(more_views, 3, scene_dir, log=lambda m: None)
    assert again["generated"] and again["num_views"] == 10

    # the cached shared fit is used only for the same configuration and scene
    scene = load_scene(scene_dir)
    fit = study.fit_config_for(more_views, 3, len(scene.train_indices))
    shared = dataclasses.replace(fit, losses=dataclasses.replace(fit.losses, instance_weight=0.0))
    run = tmp_path / "shared"
    three = dataclasses.replace(shared, optim=dataclasses.replace(shared.optim, iterations=3))
    assert fit_shared_fields(scene, three, run, log=lambda m: None)["iterations"] == 3
    assert fit_shared_fields(scene, three, run, log=lambda m: None)["iterations"] == 3  # cached
    five = dataclasses.replace(shared, optim=dataclasses.replace(shared.optim, iterations=5))
    assert fit_shared_fields(scene, five, run, log=lambda m: None)["iterations"] == 5  # refitted


def test_ablation_reuses_the_study_fit_and_reproduces_its_numbers(study, tmp_path):
    import tools.study_ablate as study_ablate

    work, out = tmp_path / "work", tmp_path / "out"
    study.main(
        ["--config", "cpu-tiny", "--objects", "3", "--methods", "slow-fast", "--out", str(out), "--work", str(work)]
    )
    ref = json.loads((out / "results.json").read_text())["results"]["slow-fast"]["3"]
    assert study_ablate.parse_variant("a b=x.y=1, z=2") == ("a b", ["x.y=1", "z=2"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        study_ablate.parse_variant("a=oops")
    data = study_ablate.main(
        [
            "--config",
            "cpu-tiny",
            "--work",
            str(work),
            "--objects",
            "3",
            "--out",
            str(tmp_path / "abl"),
            "--variant",
            "study",
            "--variant",
            "argmax=cluster.sweep_tolerance=0",
            "--variant",
            "narrow=model.semantic.hidden_dim=16",
            "--variant",
            "narrow, argmax=model.semantic.hidden_dim=16,cluster.sweep_tolerance=0",
        ]
    )
    v = data["variants"]
    # same seed, same shared fields, same steps: the study's slow-fast result exactly
    assert (v["study"]["pq_scene"], v["study"]["pq_frame"], v["study"]["miou"]) == (
        ref["pq_scene"],
        ref["pq_frame"],
        ref["miou"],
    )
    assert not v["study"]["shared_refitted"] and not v["argmax"]["shared_refitted"]  # decoding only
    assert v["narrow"]["shared_refitted"]
    narrow = json.loads((work / "ablate" / "N003" / "narrow" / "shared" / "config.json").read_text())
    assert narrow["config"]["model"]["semantic"]["hidden_dim"] == 16
    # the same shared settings as "narrow" (only the decoding differs): its fields are reused, not fitted again
    assert v["narrow, argmax"]["shared_refitted"]
    assert (
        v["narrow, argmax"]["shared_run"]
        == v["narrow"]["shared_run"]
        == str(work / "ablate" / "N003" / "narrow" / "shared")
    )
    assert not (work / "ablate" / "N003" / "narrow--argmax" / "shared").exists()
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert "| study | (the study) | the study | 12 |" in md and "`model.semantic.hidden_dim=16`" in md
