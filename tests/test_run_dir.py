"""lift3d.engine.run_dir names every file of a run once; the trainer's step callbacks see every step in order."""

from __future__ import annotations

from pathlib import Path

from lift3d.data.loading import load_scene
from lift3d.engine.run_dir import RunDir
from lift3d.engine.trainer import StepInfo, Trainer
from lift3d.presets import get_preset


def test_run_dir_names_the_files_of_a_run(tmp_path):
    run = RunDir(str(tmp_path))
    assert run.root == tmp_path
    assert run.config == tmp_path / "config.json" and run.fit_summary == tmp_path / "fit.json"
    assert run.latest_checkpoint == tmp_path / "checkpoints" / "latest.pt"
    assert run.clusters == tmp_path / "clusters.json" and run.clustering == tmp_path / "clustering.json"
    assert run.metrics == tmp_path / "metrics.json" and run.renders("test") == tmp_path / "renders" / "test"
    run.write_json(run.metrics, {"pq_scene": 0.5})
    assert run.metrics.read_text() == '{\n  "pq_scene": 0.5\n}\n' and not list(Path(tmp_path).glob("*.tmp"))


def test_step_callbacks_see_every_step_in_order_with_its_losses(tiny_scene_dir, tmp_path):
    cfg = get_preset("tiny")
    cfg.optim.iterations = cfg.losses.instance_start + 2
    seen: list[StepInfo] = []
    trainer = Trainer(load_scene(tiny_scene_dir), cfg, tmp_path / "run", progress=False, callbacks=[seen.append])
    late: list[int] = []
    trainer.add_callback(lambda info: late.append(info.step))
    trainer.fit()
    assert [i.step for i in seen] == list(range(1, cfg.optim.iterations + 1)) == late
    assert all(i.trainer is trainer and i.kind == "fit" and i.total == cfg.optim.iterations for i in seen)
    assert all("rgb" in i.logs for i in seen)
    # the semantic loss from semantic_start on, the slow-fast terms from instance_start on (step s is the s-th)
    assert ["sem" in i.logs for i in seen] == [i.step > cfg.losses.semantic_start for i in seen]
    assert ["con" in i.logs for i in seen] == [i.step > cfg.losses.instance_start for i in seen]
    assert seen[-1].stage == "rgb+sem+inst"
    logs = trainer.train_instance_step()
    assert seen[-1].kind == "instance" and seen[-1].logs is logs and seen[-1].step == cfg.optim.iterations + 1
