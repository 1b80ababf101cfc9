"""Training a 2D network on a tiny generated scene: the loss drops and the AP beats an untrained network's; DDP on
two CPU processes gives the single-process weights; the trained network's masks become a scene's 2D input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lift3d.data.loading import load_frame, load_scene
from lift3d.twod.dataset import AugmentConfig, FrameDataset
from lift3d.twod.evaluate import score_predictions
from lift3d.twod.model import TwodModel, load_twod_model
from lift3d.twod.predict import PredictError, predict_scene_segments
from lift3d.twod.spatial_embeddings import ClusteringConfig
from lift3d.twod.train import TwodTrainConfig, TwodTrainError, train_twod

ROOT = Path(__file__).resolve().parents[1]
NO_AUGMENT = AugmentConfig(flip=False, scale_range=(1.0, 1.0), brightness=0.0, contrast=0.0, saturation=0.0)


@pytest.fixture(scope="module")
def scene64(tmp_path_factory) -> Path:
    """4 objects, 3 views of 64x64 with ground truth."""
    from lift3d.generate import MessyRoomsConfig, generate_scene

    out = tmp_path_factory.mktemp("twod") / "scene64"
    return generate_scene(MessyRoomsConfig(num_objects=4, num_views=3, resolution=64, seed=0), out, progress=False)


def _config(**kw) -> TwodTrainConfig:
    base = dict(
        preset="cpu-small",
        steps=150,
        batch_size=3,
        lr=2e-3,
        pixels_per_unit=32.0,
        augment=NO_AUGMENT,
        clustering=ClusteringConfig(min_pixels=4),
        checkpoint_every=150,
    )
    base.update(kw)
    return TwodTrainConfig(**base)


def _scores(model: TwodModel, scene: Path) -> dict:
    data = FrameDataset([scene])
    preds, gts = [], []
    for i in range(len(data)):
        rgb, gi, gs = data.raw(i)
        preds.append(model.predict(rgb))
        gts.append((gi, gs))
    return score_predictions(preds, gts, model.classes.thing_ids, [0])


@pytest.fixture(scope="module")
def trained(scene64, tmp_path_factory) -> tuple[Path, list[float]]:
    losses: list[float] = []
    run = tmp_path_factory.mktemp("twod") / "run"
    torch.set_num_threads(1)
    train_twod([scene64], run, _config(), progress=False, on_step=lambda s, loss: losses.append(loss))
    return run, losses


def test_training_lowers_the_loss_and_beats_an_untrained_network(scene64, trained):
    run, losses = trained
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    model, state = load_twod_model(run)
    assert state["step"] == 150
    torch.manual_seed(0)
    untrained = TwodModel(model.network_cfg, model.classes, model.pixels_per_unit, model.clustering)
    before, after = _scores(untrained, scene64), _scores(model, scene64)
    # margin: the trained network's AP must exceed the untrained one's by 0.3 (measured: 0 -> ~0.89)
    assert after["AP"] >= before["AP"] + 0.3
    assert after["frame_pq"] > before["frame_pq"]


def test_existing_run_needs_resume_and_resume_continues(scene64, trained, tmp_path):
    run, _ = trained
    with pytest.raises(TwodTrainError, match="--resume"):
        train_twod([scene64], run, _config(), progress=False)
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run, copy)
    train_twod([scene64], copy, _config(steps=152, checkpoint_every=1), resume=True, progress=False)
    history = json.loads((copy / "train.json").read_text())["history"]
    assert [h["step"] for h in history[-3:]] == [150, 151, 152]
    assert load_twod_model(copy)[1]["step"] == 152


def test_segments_predict_writes_a_scene_load_scene_accepts(scene64, trained, tmp_path):
    run, _ = trained
    with pytest.raises(PredictError, match="--out DATA2"):
        predict_scene_segments(scene64, run)  # would change the user's scene
    out = tmp_path / "predicted"
    seg = predict_scene_segments(scene64, run, out=out)
    assert seg == out / "segments" / "twod"
    with pytest.raises(PredictError, match="already exists"):
        predict_scene_segments(scene64, run, out=out)
    scene = load_scene(out)
    model, _ = load_twod_model(run)
    for f in scene.frames:
        assert f.instance_path.parent == seg / "instance"
        data = load_frame(scene, f.index)
        rgb = np.clip(np.round(data.rgb * 255.0), 0, 255).astype(np.uint8)
        p = model.predict(rgb)
        assert np.array_equal(data.instance, p.instance.astype(np.int64))
        assert np.array_equal(data.semantic, p.semantic)
        assert np.allclose(data.confidence, p.confidence, atol=0.5 / 255 + 1e-6)  # stored as 8-bit
    assert json.loads((seg / "model.json").read_text())["step"] == 150
    # the user's scene is untouched
    original = json.loads((scene64 / "transforms.json").read_text())
    assert "segments_imported" not in original


def test_ddp_two_processes_match_one_process(scene64, tmp_path):
    args = [
        "twod",
        "train",
        "--data",
        str(scene64),
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--checkpoint-every",
        "3",
        "--pixels-per-unit",
        "32",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lift3d.cli"]
    subprocess.run(ddp + args + ["--out", str(tmp_path / "ddp")], check=True, env=env, cwd=ROOT, timeout=240)
    single = [sys.executable, "-m", "lift3d.cli"]
    subprocess.run(single + args + ["--out", str(tmp_path / "one")], check=True, env=env, cwd=ROOT, timeout=240)
    a = torch.load(tmp_path / "ddp" / "checkpoints" / "step_0000003.pt", weights_only=False)
    b = torch.load(tmp_path / "one" / "checkpoints" / "step_0000003.pt", weights_only=False)
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world"] == 2
    moved = 0.0
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-5, rtol=1e-4), k
    for k, v in a["optimizer"]["state"].items():
        moved += float(v["exp_avg"].abs().sum())
    assert moved > 0  # the three steps did update the weights


def test_twod_eval_cli_writes_scores_and_contact_sheet(scene64, trained, capsys):
    from PIL import Image

    from lift3d.cli import entrypoint

    run, _ = trained
    entrypoint(["twod", "eval", str(run), "--data", str(scene64), "--name", "cli"])
    result = json.loads((run / "eval" / "cli.json").read_text())
    model, _ = load_twod_model(run)
    expected = _scores(model, scene64)
    assert result["AP"] == pytest.approx(expected["AP"]) and result["frame_pq"] == pytest.approx(expected["frame_pq"])
    assert result["num_frames"] == 3 and f"AP {result['AP']:.3f}" in capsys.readouterr().out
    with Image.open(run / "eval" / "cli.png") as im:  # 3 rows (frames) x 3 tiles (image, gt, prediction), x2
        assert im.size == (3 * 64 * 2, 3 * 64 * 2)


def test_training_without_ground_truth_fails_with_the_file(tiny_scene_dir, tmp_path):
    import shutil

    from lift3d.twod.dataset import MissingGroundTruthError

    copy = tmp_path / "nogt"
    shutil.copytree(tiny_scene_dir, copy)
    meta = json.loads((copy / "transforms.json").read_text())
    for fr in meta["frames"]:
        fr.pop("gt_instance_file_path", None)
        fr.pop("gt_semantic_file_path", None)
    (copy / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(MissingGroundTruthError, match="nogt/transforms.json, frame 0 .*lift3d generate"):
        train_twod([copy], tmp_path / "run", _config(steps=1), progress=False)
