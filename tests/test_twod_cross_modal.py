"""The cross-modal method on a tiny generated camera + LiDAR sequence: the items' pairings agree with the ground
truth, training lowers the loss and round-trips through checkpoints, the ablations leave the unused branch alone,
DDP on two processes gives the single-process weights, and the tracked masks become a scene's 2D input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lift3d.data.sequence import load_sequence, load_sequence_frame
from lift3d.twod.cross_modal import (
    CrossModalModel,
    evaluate_cross_modal,
    load_cross_modal_model,
    predict_cross_modal,
    track_clip,
    train_cross_modal,
)
from lift3d.twod.cross_modal_config import CrossModalConfig, CrossModalError
from lift3d.twod.cross_modal_data import CrossModalDataset
from lift3d.twod.model import twod_method
from lift3d.twod.train import TwodTrainConfig

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(samples_per_image=96, samples_per_scan=48)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> Path:
    """4 objects, 2 clips of 3 frames, 32x32, 32-beam LiDAR."""
    from lift3d.generate import MessyRoomsConfig, generate_scene
    from lift3d.generate.config import VideoConfig

    out = tmp_path_factory.mktemp("xmodal") / "seq"
    cfg = MessyRoomsConfig(
        num_objects=4,
        resolution=32,
        seed=0,
        trajectory="video",
        lidar=True,
        video=VideoConfig(num_clips=2, frames_per_clip=3),
    )
    return generate_scene(cfg, out, progress=False)


def _train(seq: Path, out: Path, steps: int, **cross) -> Path:
    train = TwodTrainConfig(
        method="cross-modal", preset="tiny", steps=steps, batch_size=2, lr=2e-3, checkpoint_every=50
    )
    return train_cross_modal([seq], out, train, CrossModalConfig(**{**SMALL, **cross}), progress=False)


def test_items_pair_lidar_returns_and_warped_labels_with_the_ground_truth(sequence):
    data = CrossModalDataset([sequence])
    assert len(data) == 4  # 2 clips x 2 frames with a successor
    seq = load_sequence(sequence)
    item = data[0]
    si, i = data.items[0]
    pixel, ids = item["range_pixel"].reshape(-1), item["range_labels"].reshape(-1)
    paired = pixel >= 0
    assert int(paired.sum()) > 100
    # a LiDAR return and the pixel it projects to see the same object
    assert float((item["labels"].reshape(-1)[pixel[paired]] == ids[paired]).float().mean()) > 0.97
    # frame t's ids carried along the flow agree with frame t + 1's own ground truth where valid
    nxt = torch.from_numpy(load_sequence_frame(seq, seq.next_frame(i)).gt_instance.astype(np.int64))
    valid = item["next_labels"] >= 0
    assert float(valid.float().mean()) > 0.6
    assert float((item["next_labels"][valid] == nxt[valid]).float().mean()) > 0.97
    # the crop to the camera's columns keeps every return that projects into the image
    full = CrossModalDataset([sequence], crop_to_camera=False)[0]
    assert item["range_input"].shape[-1] < full["range_input"].shape[-1] == 900
    assert int(paired.sum()) == int((full["range_pixel"] >= 0).sum())


def test_ablation_items_leave_out_the_unused_inputs(sequence):
    only_camera = CrossModalDataset([sequence], temporal=False, lidar=False)
    assert len(only_camera) == 6 and set(only_camera[0]) == {"image", "labels", "semantic"}


def test_training_lowers_the_loss_and_round_trips(sequence, tmp_path):
    run = _train(sequence, tmp_path / "run", 30)
    history = json.loads((run / "train.json").read_text())["history"]
    first, last = np.mean([h["loss"] for h in history[:5]]), np.mean([h["loss"] for h in history[-5:]])
    assert last < first - 0.3
    assert history[-1]["samples_lidar"] > 0 and history[-1]["samples_next"] > 0
    assert twod_method(run) == "cross-modal"
    model, state = load_cross_modal_model(run)
    assert state["step"] == 30
    rgb = np.zeros((32, 32, 3), np.uint8)
    emb, probs = model.embed(rgb)
    assert emb.shape == (32, 32, 32) and torch.allclose(emb.norm(dim=0), torch.ones(32, 32), atol=1e-5)
    assert torch.allclose(probs.sum(0), torch.ones(32, 32), atol=1e-5)
    with pytest.raises(CrossModalError):
        _train(sequence, run, 31)  # the folder holds checkpoints and --resume was not given
    result = evaluate_cross_modal(run, [sequence])
    for key in ("AP", "frame_pq", "temporal_cosine_distance", "temporal_accuracy", "mots"):
        assert key in result
    assert result["num_frames"] == 6 and result["num_clips"] == 2
    assert Path(result["json"]).exists() and Path(result["sheet"]).exists()


def test_without_lidar_positives_the_range_branch_is_never_trained(sequence, tmp_path):
    run = _train(sequence, tmp_path / "camera", 2, lidar_positives=False, temporal_positives=False)
    trained, _ = load_cross_modal_model(run)
    torch.manual_seed(0)
    fresh = CrossModalModel("tiny", trained.classes, trained.cfg)
    for k, v in fresh.range_net.state_dict().items():
        assert torch.equal(v, trained.range_net.state_dict()[k]), k
    moved = [
        k for k, v in fresh.image_net.state_dict().items() if not torch.equal(v, trained.image_net.state_dict()[k])
    ]
    assert moved


def test_tracked_masks_become_the_scene_2d_input(sequence, tmp_path):
    run = _train(sequence, tmp_path / "run", 3)
    model, _ = load_cross_modal_model(run)
    seg = predict_cross_modal(sequence, run, out=tmp_path / "with_masks")
    seq = load_sequence(tmp_path / "with_masks")
    rgbs = [
        np.clip(np.round(load_sequence_frame(seq, i).rgb * 255), 0, 255).astype(np.uint8) for i in seq.clips[0].frames
    ]
    _, tracks, _ = track_clip(model, rgbs)
    for i, t in zip(seq.clips[0].frames, tracks):
        assert np.array_equal(load_sequence_frame(seq, i).instance.astype(np.int64), t)
    assert json.loads((seg / "model.json").read_text())["method"] == "cross-modal"


def test_ddp_two_processes_match_one_process(sequence, tmp_path):
    args = ["twod", "train", "--method", "cross-modal", "--data", str(sequence), "--preset", "tiny", "--steps", "2"]
    args += ["--batch-size", "2", "--lr", "1e-3", "--checkpoint-every", "2"]
    args += ["--cross-modal.samples-per-image", "64", "--cross-modal.samples-per-scan", "32"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lift3d.cli"]
    subprocess.run(ddp + args + ["--out", str(tmp_path / "ddp")], check=True, env=env, cwd=ROOT, timeout=240)
    single = [sys.executable, "-m", "lift3d.cli"]
    subprocess.run(single + args + ["--out", str(tmp_path / "one")], check=True, env=env, cwd=ROOT, timeout=240)
    a = torch.load(tmp_path / "ddp" / "checkpoints" / "step_0000002.pt", weights_only=True)
    b = torch.load(tmp_path / "one" / "checkpoints" / "step_0000002.pt", weights_only=True)
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world"] == 2
    for branch in ("image", "range"):
        for k in a["model"][branch]:
            assert torch.allclose(a["model"][branch][k], b["model"][branch][k], atol=1e-5, rtol=1e-4), (branch, k)
    assert sum(float(v["exp_avg"].abs().sum()) for v in a["optimizer"]["state"].values()) > 0


def test_range_input_channels_by_hand():
    from lift3d.geometry.lidar import LidarSensor
    from lift3d.twod.cross_modal_data import range_input

    sensor = LidarSensor(beams=2, vertical_fov_deg=(0.0, 0.0 + 10.0), columns=4, max_range_m=10.0)
    r = np.zeros((2, 4), np.float32)
    r[1, 1] = 5.0  # row 1 = the lower beam (elevation 0); column 1's centre azimuth = pi - 1.5 * pi / 2 = pi / 4
    x = range_input(r, sensor)
    assert x.shape == (5, 2, 4)
    s = 0.5 * np.sqrt(0.5)  # 5 m / 10 m times cos(45 deg)
    np.testing.assert_allclose(x[:, 1, 1], [0.5, s, s, 0.0, 1.0], atol=1e-6)
    assert np.count_nonzero(x[:, [0, 1, 1, 1], [0, 0, 2, 3]]) == 0 and np.count_nonzero(x[:, 0]) == 0
    # a crop keeps its columns' geometry
    np.testing.assert_allclose(range_input(r[:, 1:3], sensor, np.array([1, 2]))[:, 1, 0], x[:, 1, 1], atol=1e-6)
