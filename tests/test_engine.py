"""Trainer, presets, run folders, resume and the CLI, on the tiny generated scene (conftest.tiny_scene_dir)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from lift3d.cluster.slots import ArgmaxSlots, load_labeler
from lift3d.config_io import apply_overrides
from lift3d.data.loading import load_scene
from lift3d.engine.checkpoint import load_model
from lift3d.engine.trainer import Trainer
from lift3d.objectives import InstanceBatch
from lift3d.pipeline import evaluate_run, fit_scene, render_run
from lift3d.presets import PRESETS, get_preset

# Every instance objective, each a cpu-small variant, run for a few iterations of the tiny schedule.
VARIANT_PRESETS = sorted(p for p in PRESETS if p.startswith("cpu-small"))


def tiny_cfg(preset: str = "cpu-small", **extra):
    """The preset's instance objective on the `tiny` fields and schedule (seconds on CPU)."""
    cfg = get_preset("tiny")
    variant = get_preset(preset)
    cfg.losses.instance_loss = variant.losses.instance_loss
    cfg.losses.concentration_weight = variant.losses.concentration_weight
    cfg.losses.num_slots = 16  # K of linear assignment (the other objectives ignore it)
    for k, v in extra.items():
        cfg = apply_overrides(cfg, [f"{k}={v}"])
    return cfg


def test_every_preset_builds_and_documents_its_instance_objective():
    for name in PRESETS:
        cfg = get_preset(name)
        assert cfg.optim.iterations > cfg.losses.instance_start > 0
        assert cfg.losses.segment_consistency_start >= cfg.losses.semantic_start
    assert get_preset("vanilla").losses.instance_loss == "vanilla"
    assert get_preset("contrastive-lift").model.embedding_dim == 3
    assert get_preset("panoptic-lifting").losses.num_slots == 500  # K as on Messy Rooms
    assert get_preset("cpu-small-panoptic-lifting").losses.num_slots == 100
    assert get_preset("cpu-small-no-concentration").losses.concentration_weight == 0.0


def test_overrides_parse_types_and_reject_unknown_fields():
    cfg = apply_overrides(
        get_preset("cpu-small"),
        [
            "optim.iterations=7",
            "losses.kernel=exp_distance",
            "model.radiance.upsample_steps=3,5",
            "losses.free_space_weight=0",
        ],
    )
    assert cfg.optim.iterations == 7 and cfg.losses.kernel == "exp_distance"
    assert cfg.model.radiance.upsample_steps == (3, 5) and cfg.losses.free_space_weight == 0.0
    with pytest.raises(ValueError, match="no field"):
        apply_overrides(cfg, ["optim.not_a_field=1"])
    with pytest.raises(ValueError, match="section.field=value"):
        apply_overrides(cfg, ["optim.iterations"])
    from lift3d.config_io import ConfigOverrideError

    with pytest.raises(ConfigOverrideError, match="'abc' is not a valid float"):
        apply_overrides(cfg, ["optim.lr_grid=abc"])
    with pytest.raises(ConfigOverrideError, match="comma-separated numbers"):
        apply_overrides(cfg, ["model.radiance.upsample_steps=3,x"])


@pytest.mark.parametrize("preset", VARIANT_PRESETS)
def test_short_fit_of_each_preset_trains_only_what_it_should(tiny_scene_dir, tmp_path, preset):
    """A few iterations of each objective: losses finite, the instance field moves, the slow field gets no gradient
    and follows the fast one by EMA, and density/colour never receive the instance loss."""
    cfg = tiny_cfg(preset)
    cfg.optim.iterations = 14
    trainer = Trainer(load_scene(tiny_scene_dir), cfg, tmp_path / "run", progress=False)
    model = trainer.model
    fast0 = [p.detach().clone() for p in model.instance.fast.parameters()]
    for _ in range(cfg.losses.instance_start + 3):  # three instance steps
        trainer.train_step()
    # Past instance_start: one step of the instance objective alone, checked by hand.
    slow_before = [p.detach().clone() for p in model.instance.slow.parameters()]
    logs = trainer.train_step()
    assert all(np.isfinite(v) for v in logs.values())
    assert any(k in logs for k in ("con", "inst"))
    assert all(p.grad is None for p in model.instance.slow.parameters())
    m = model.instance.momentum
    for ps, pb, pf in zip(model.instance.slow.parameters(), slow_before, model.instance.fast.parameters()):
        torch.testing.assert_close(ps, m * pb + (1 - m) * pf.detach())
    assert any(not torch.equal(a, b) for a, b in zip(fast0, model.instance.fast.parameters()))


def test_instance_loss_never_reaches_density_or_colour(tiny_scene_dir, tmp_path):
    cfg = tiny_cfg()
    cfg.model.head_weight_threshold = 0.0  # evaluate the heads at every sample of the untrained field
    trainer = Trainer(load_scene(tiny_scene_dir), cfg, tmp_path / "run", progress=False)
    pixels, model = trainer.train_pixels, trainer.model
    rows = trainer.view_segment_rows[trainer.instance_views[0]][:64]
    origins, dirs = pixels.rays(rows)
    samples = model.sample_rays(origins, dirs, None, jitter=True, with_color=False)  # density WITH graph
    logs = {}
    batch = InstanceBatch(samples, torch.arange(rows.numel()), pixels.instance[rows], pixels.confidence[rows])
    loss = trainer.instance_loss(batch, logs)
    model.zero_grad(set_to_none=True)
    loss.backward()
    assert all(p.grad is None for p in model.radiance.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.instance.fast.parameters())


def test_fit_render_eval_and_resume_write_a_complete_run(tiny_scene_dir, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_cfg()
    summary = fit_scene(tiny_scene_dir, run, cfg, preset="tiny", progress=False, log=lambda *_: None)
    assert summary["iterations"] == cfg.optim.iterations
    for name in ("config.json", "fit.json", "clusters.json", "clustering.json", "checkpoints/latest.pt"):
        assert (run / name).exists(), name
    assert not list(run.rglob("*.tmp"))  # atomic writes leave no temporaries
    with pytest.raises(FileExistsError, match="--resume"):
        fit_scene(tiny_scene_dir, run, cfg, preset="tiny", progress=False, log=lambda *_: None)

    out = render_run(run, "test", progress=False, log=lambda *_: None)
    scene = load_scene(tiny_scene_dir)
    frames = json.loads((out / "frames.json").read_text())["frames"]
    assert [f["frame_index"] for f in frames] == scene.test_indices
    for sub in ("rgb", "semantic", "instance", "embedding", "depth"):
        assert len(list((out / sub).glob("*.png"))) == len(scene.test_indices)
    metrics = evaluate_run(run, "test", log=lambda *_: None)
    for key in ("pq_scene", "sq_scene", "rq_scene", "miou", "psnr"):
        assert key in metrics and np.isfinite(metrics[key])
    assert json.loads((run / "metrics.json").read_text())["pq_scene"] == metrics["pq_scene"]

    # Resume continues from the checkpoint's step, to a longer schedule.
    model, saved_cfg, ckpt = load_model(run)
    assert ckpt["step"] == cfg.optim.iterations
    trainer = Trainer(
        scene, apply_overrides(cfg, [f"optim.iterations={cfg.optim.iterations + 4}"]), run, progress=False
    )
    assert trainer.resume() and trainer.step == cfg.optim.iterations
    for a, b in zip(trainer.model.instance.fast.parameters(), model.instance.fast.parameters()):
        torch.testing.assert_close(a, b)
    trainer.fit(resume=False)
    assert trainer.step == cfg.optim.iterations + 4


def test_linear_assignment_run_decodes_by_argmax(tiny_scene_dir, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_cfg("cpu-small-panoptic-lifting")
    fit_scene(tiny_scene_dir, run, cfg, preset="tiny", progress=False, log=lambda *_: None)
    labeler = load_labeler(run / "clusters.json")
    assert isinstance(labeler, ArgmaxSlots) and labeler.num_slots == 16
    # argmax + 1 on thing pixels, 0 on stuff
    sem = np.array([0, 1, 1])
    emb = np.array([[5.0] + [0.0] * 15, [0.0, 2.0] + [0.0] * 14, [0.0] * 15 + [1.0]])
    assert labeler.label(sem, emb).tolist() == [0, 2, 16]


def test_cli_fit_render_eval(tiny_scene_dir, tmp_path, capsys):
    from lift3d.cli import entrypoint

    run = tmp_path / "cli_run"
    entrypoint(["fit", str(tiny_scene_dir), "--out", str(run), "--preset", "tiny", "--iterations", "12"])
    entrypoint(["eval", str(run)])
    printed = capsys.readouterr().out
    assert "PQ^scene" in printed and "fit done: 12 iterations" in printed
    assert json.loads((run / "metrics.json").read_text())["num_frames"] == len(load_scene(tiny_scene_dir).test_indices)


def test_cli_reports_a_broken_scene_before_any_work(tmp_path, capsys):
    from lift3d.cli import entrypoint

    (tmp_path / "transforms.json").write_text(json.dumps({"frames": [{"file_path": "images/a.png"}]}))
    with pytest.raises(SystemExit) as exit_:
        entrypoint(["fit", str(tmp_path), "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    # one line naming the file, the frame and the problem; no traceback
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(r"^lift3d: error: .*transforms.json, frame 0 \(images/a.png\).*transform_matrix", line)
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize("preset", ["contrastive-lift", "vanilla", "panoptic-lifting"])
def test_paper_size_presets_take_steps_with_every_loss_on(tiny_scene_dir, tmp_path, preset):
    """The GPU presets, as configured (TensoRF 128^3 16/48 components, 3x256 instance MLP, ...), take two steps
    with every loss switched on (onsets moved to 0) and a small ray batch so it stays quick on a CPU."""
    cfg = apply_overrides(
        get_preset(preset),
        [
            "losses.semantic_start=0",
            "losses.instance_start=0",
            "losses.segment_consistency_start=0",
            "optim.rays_per_batch=128",
            "optim.instance_pixels=128",
            "model.num_samples=32",
        ],
    )
    trainer = Trainer(load_scene(tiny_scene_dir), cfg, tmp_path / "run", progress=False)
    logs = [trainer.train_step() for _ in range(2)][-1]
    assert {"rgb", "sem", "seg"} <= set(logs) and ("con" in logs or "inst" in logs)
    assert all(np.isfinite(v) for v in logs.values())


def test_same_seed_gives_bit_identical_weights_with_two_threads(tiny_scene_dir, tmp_path):
    """Two fits with the same seed on 2 torch threads end with bit-identical weights, hash-grid heads included
    (scatter-style backward passes add duplicates in a thread-dependent order unless FitConfig.deterministic)."""
    cfg = apply_overrides(
        get_preset("tiny"),
        [
            "model.semantic.encoding=hashgrid",
            "model.instance.encoding=hashgrid",
            "threads=2",
            "optim.iterations=30",
            "losses.semantic_start=5",
            "losses.instance_start=10",
        ],
    )
    scene = load_scene(tiny_scene_dir)
    states = []
    for k in range(2):
        trainer = Trainer(scene, cfg, tmp_path / f"run{k}", progress=False, log=lambda m: None)
        for _ in range(cfg.optim.iterations):
            trainer.train_step()
        states.append(trainer.model.state_dict())
    assert any("grid.table" in key for key in states[0])
    differing = [key for key in states[0] if not torch.equal(states[0][key], states[1][key])]
    assert differing == []


def test_eval_without_ground_truth_reports_psnr_and_2d_consistency(tiny_scene_dir, tmp_path, capsys):
    """A user's capture has no ground truth: eval reports PSNR and the per-frame PQ of the rendered instances
    against the views' own 2D segments, equal to the metric computed here from the written renders."""
    import shutil

    from lift3d.cli import entrypoint
    from lift3d.data.loading import load_frame
    from lift3d.engine.outputs import read_renders
    from lift3d.metrics import frame_pq, psnr

    data = tmp_path / "nogt"
    shutil.copytree(tiny_scene_dir, data)
    meta = json.loads((data / "transforms.json").read_text())
    for fr in meta["frames"]:
        fr.pop("gt_instance_file_path", None)
        fr.pop("gt_semantic_file_path", None)
    (data / "transforms.json").write_text(json.dumps(meta))
    scene = load_scene(data)
    assert not scene.has_ground_truth
    run = tmp_path / "run"
    entrypoint(["fit", str(data), "--out", str(run), "--preset", "tiny", "--iterations", "12"])
    capsys.readouterr()
    entrypoint(["eval", str(run)])
    printed = capsys.readouterr().out
    table = printed[printed.index("metric") :]
    assert "PSNR" in table and "vs 2D segments" in table and "PQ^scene" not in table
    m = json.loads((run / "metrics.json").read_text())
    views = read_renders(run / "renders" / "test")
    frames = [load_frame(scene, v["frame_index"]) for v in views]
    expected_pq = frame_pq(
        [v["semantic"] for v in views],
        [v["instance"] for v in views],
        [f.semantic for f in frames],
        [f.instance for f in frames],
        things=scene.thing_ids,
        stuff=scene.stuff_ids,
    ).pq
    assert m["ground_truth"] is False and "pq_scene" not in m
    assert m["pq_frame_vs_segments"] == round(float(expected_pq), 4)
    assert m["psnr"] == round(float(np.mean([psnr(v["rgb"], f.rgb) for v, f in zip(views, frames)])), 3)


def test_debug_flag_shows_the_traceback_of_a_user_error(tmp_path):
    from lift3d.cli import entrypoint
    from lift3d.data.scene import SceneFormatError

    (tmp_path / "transforms.json").write_text(json.dumps({"frames": [{"file_path": "images/a.png"}]}))
    with pytest.raises(SceneFormatError, match="transform_matrix"):
        entrypoint(["fit", str(tmp_path), "--out", str(tmp_path / "run"), "--debug"])


def test_an_internal_error_keeps_its_traceback_and_says_it_is_a_bug(capsys):
    from lift3d.cli import _run_reporting_errors

    def broken():
        raise ZeroDivisionError("boom")

    with pytest.raises(SystemExit) as exit_:
        _run_reporting_errors(broken)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: boom" in err and "internal error" in err


def test_fit_records_its_scene_options_and_render_uses_them(tiny_scene_dir, tmp_path):
    """--downscale 2 fits 16x16 images of the 32x32 scene; the run records it, so render (and eval, view, export)
    load the scene the same way and write 16x16 maps."""
    from lift3d.cli import entrypoint
    from lift3d.engine.outputs import read_renders
    from lift3d.pipeline import run_scene_options

    run = tmp_path / "run"
    entrypoint(
        ["fit", str(tiny_scene_dir), "--out", str(run), "--preset", "tiny", "--iterations", "4", "--downscale", "2"]
    )
    options = run_scene_options(run)
    assert options.downscale == 2 and options.format is None and options.skip_bad_frames is False
    entrypoint(["render", str(run)])
    views = read_renders(run / "renders" / "test")
    assert views and all(v["instance"].shape == (16, 16) and v["rgb"].shape == (16, 16, 3) for v in views)
