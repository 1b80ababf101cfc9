"""Paper 001's network on a generated video sequence: causal end to end, the depth loss is smallest at the
generator's depth, flipped clips keep the geometry exact, training lowers the loss and predicts consistent tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lift3d.data.loading import load_frame
from lift3d.data.sequence import load_sequence
from lift3d.twod.clips import ClipAugmentConfig, ClipDataset, augment_clip, collate_clips
from lift3d.twod.depth import DepthLossConfig, relative_pose, self_supervised_depth_loss
from lift3d.twod.network import NETWORK_PRESETS
from lift3d.twod.spatio_temporal import SpatioTemporalConfig, SpatioTemporalNetwork, spatio_temporal_loss


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> Path:
    """4 objects, 2 clips of 6 frames, 64x64, with ground truth."""
    from lift3d.generate import MessyRoomsConfig, generate_scene
    from lift3d.generate.config import VideoConfig

    out = tmp_path_factory.mktemp("stnet") / "seq"
    cfg = MessyRoomsConfig(
        num_objects=4, resolution=64, seed=0, trajectory="video", video=VideoConfig(num_clips=2, frames_per_clip=6)
    )
    return generate_scene(cfg, out, progress=False)


def test_the_whole_network_is_causal():
    torch.manual_seed(0)
    net = SpatioTemporalNetwork(NETWORK_PRESETS["tiny"], 3, SpatioTemporalConfig(embedding_dim=4)).eval()
    clip = torch.rand(1, 5, 3, 32, 32)
    out = net(clip)
    changed = clip.clone()
    changed[:, 3:] = torch.rand_like(changed[:, 3:])
    again = net(changed)
    for name in ("embedding", "semantic_logits", "depth"):
        a, b = getattr(out, name), getattr(again, name)
        assert torch.equal(a[:, :3], b[:, :3]), name
        assert not torch.allclose(a[:, 3], b[:, 3]), name


def test_without_temporal_model_frames_are_independent():
    torch.manual_seed(0)
    net = SpatioTemporalNetwork(NETWORK_PRESETS["tiny"], 3, SpatioTemporalConfig(temporal=False, depth=False)).eval()
    clip = torch.rand(1, 3, 3, 32, 32)
    changed = clip.clone()
    changed[:, 0] = torch.rand_like(changed[:, 0])
    a, b = net(clip), net(changed)
    assert torch.allclose(a.embedding[:, 1:], b.embedding[:, 1:], atol=1e-6) and a.depth is None
    assert net.temporal is None


def _gt_pair(seq_path: Path, flip: bool):
    data = ClipDataset([seq_path], 2)
    sample = data[0]
    seq = load_sequence(seq_path, check_files=False)
    frames = data.items[0][1]
    depth = torch.tensor(np.stack([load_frame(seq.scene, i).depth for i in frames]))
    if flip:
        sample = augment_clip(sample, ClipAugmentConfig(flip=True, brightness=0, contrast=0), _flip_generator())
        depth = depth.flip(-1)
    return sample, depth


def _flip_generator() -> torch.Generator:
    for s in range(100):  # the first seed whose first draw flips
        g = torch.Generator().manual_seed(s)
        if float(torch.rand((), generator=torch.Generator().manual_seed(s))) < 0.5:
            return g
    raise AssertionError


@pytest.mark.parametrize("flip", [False, True])
def test_depth_loss_is_smallest_at_the_generators_depth(sequence, flip):
    sample, depth = _gt_pair(sequence, flip)
    images = sample.images.float()[:, None] / 255.0  # [T, 1, 3, H, W]
    rel = relative_pose(sample.camera_to_world[0], sample.camera_to_world[1])[None, None]
    cfg = DepthLossConfig(smoothness_weight=0.0, automask=False)
    k = sample.intrinsics[None]
    losses = {}
    for scale in (0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.6):
        d = (depth[0] * scale)[None, None].clamp(min=0.05)
        losses[scale] = self_supervised_depth_loss(1 / d, d, images[0], images[1:2], rel, k, cfg)[1]["reprojection"]
    assert min(losses, key=losses.get) == 1.0, losses
    assert losses[1.0] < 0.7 * min(losses[0.6], losses[1.6])


def test_spatio_temporal_loss_parts(sequence):
    data = ClipDataset([sequence], 3)
    batch = collate_clips([data[0], data[1]])
    assert batch["images"].shape == (2, 3, 3, 64, 64) and batch["intrinsics"].shape == (2, 4)
    ids = batch["instance"][0].unique()
    assert len(ids) > 1  # thing instances present in the clip
    torch.manual_seed(0)
    net = SpatioTemporalNetwork(NETWORK_PRESETS["tiny"], len(data.classes.classes), SpatioTemporalConfig())
    images = batch["images"].float() / 255.0
    out = net(images)
    cfg = SpatioTemporalConfig()
    loss, parts = spatio_temporal_loss(
        out, images, batch["instance"], batch["semantic"], cfg, batch["camera_to_world"], batch["intrinsics"]
    )
    expect = cfg.discriminative.w_pull * parts["pull"] + parts["push"] + 0.001 * parts["reg"]
    assert float(loss) > expect and parts["depth"] > 0 and 0 < parts["automask"] <= 1
    loss.backward()
    assert net.decoder_depth[-1].weight.grad.abs().sum() > 0
    no_depth = SpatioTemporalConfig(depth=False)
    net2 = SpatioTemporalNetwork(NETWORK_PRESETS["tiny"], len(data.classes.classes), no_depth)
    _, parts2 = spatio_temporal_loss(net2(images), images, batch["instance"], batch["semantic"], no_depth)
    assert parts2["depth"] == 0.0


@pytest.fixture(scope="module")
def trained(sequence, tmp_path_factory):
    from lift3d.twod.train import TwodTrainConfig, train_twod

    run = tmp_path_factory.mktemp("stnet") / "run"
    losses: list[float] = []
    cfg = TwodTrainConfig(
        method="spatio-temporal", preset="cpu-small", steps=40, batch_size=2, lr=2e-3, checkpoint_every=40
    )
    cfg.spatio_temporal.clip_length = 3
    torch.set_num_threads(1)
    train_twod([sequence], run, cfg, progress=False, on_step=lambda s, loss: losses.append(loss))
    return run, losses


def test_training_lowers_the_loss_and_resumes(trained, sequence, tmp_path):
    import json
    import shutil

    from lift3d.twod.train import TwodTrainConfig, TwodTrainError, train_twod

    run, losses = trained
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    history = json.loads((run / "train.json").read_text())["history"]
    assert len(history) == 40 and {"pull", "push", "reg", "depth", "semantic"} <= set(history[-1])
    cfg = TwodTrainConfig(method="spatio-temporal", preset="cpu-small", steps=41, batch_size=2, checkpoint_every=1)
    cfg.spatio_temporal.clip_length = 3
    with pytest.raises(TwodTrainError, match="--resume"):
        train_twod([sequence], run, cfg, progress=False)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    train_twod([sequence], copy, cfg, resume=True, progress=False)
    assert [h["step"] for h in json.loads((copy / "train.json").read_text())["history"][-2:]] == [40, 41]


def test_online_prediction_equals_the_whole_clip(trained, sequence):
    from lift3d.twod.video_model import load_spatio_temporal_model

    model, _ = load_spatio_temporal_model(trained[0])
    seq = load_sequence(sequence, check_files=False)
    rgb = [np.clip(np.round(load_frame(seq.scene, i).rgb * 255), 0, 255).astype(np.uint8) for i in seq.clips[0].frames]
    whole = model.predict_clip(rgb)
    prefix = model.predict_clip(rgb[:3])
    for a, b in zip(prefix.frames, whole.frames[:3]):  # frame t never waits for t + 1: online = offline
        assert np.array_equal(a.instance, b.instance) and np.array_equal(a.semantic, b.semantic)
    assert np.allclose(prefix.depth[2], whole.depth[2], atol=1e-5)
    assert len(whole.frames) == 6 and whole.depth[0].shape == (64, 64)


def test_ddp_two_processes_match_one_process(sequence, tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    args = ["twod", "train", "--method", "spatio-temporal", "--data", str(sequence), "--preset", "tiny"]
    args += ["--steps", "2", "--batch-size", "2", "--lr", "1e-3", "--checkpoint-every", "2"]
    args += ["--spatio-temporal.clip-length", "3", "--clip-augment.no-flip"]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lift3d.cli"]
    subprocess.run(ddp + args + ["--out", str(tmp_path / "ddp")], check=True, env=env, cwd=root, timeout=240)
    single = [sys.executable, "-m", "lift3d.cli"]
    subprocess.run(single + args + ["--out", str(tmp_path / "one")], check=True, env=env, cwd=root, timeout=240)
    a = torch.load(tmp_path / "ddp" / "checkpoints" / "step_0000002.pt", weights_only=True)
    b = torch.load(tmp_path / "one" / "checkpoints" / "step_0000002.pt", weights_only=True)
    assert a["meta"]["method"] == "spatio-temporal"
    # 1e-4 = a tenth of one Adam step (lr 1e-3): the depth decoder's few near-zero gradients differ in float rounding
    # between a batch of 2 and two batches of 1, and Adam's first steps move by lr * sign(g) (measured max 5e-5)
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-4, rtol=1e-4), k
    moved = sum(float(v["exp_avg"].abs().sum()) for v in a["optimizer"]["state"].values())
    assert moved > 0


def test_twod_eval_cli_scores_tracks_depth_and_writes_a_sheet(trained, sequence, capsys):
    import json

    from PIL import Image

    from lift3d.cli import entrypoint
    from lift3d.twod.clips import thing_track_ids

    run, _ = trained
    entrypoint(["twod", "eval", str(run), "--data", str(sequence), "--name", "cli"])
    result = json.loads((run / "eval" / "cli.json").read_text())
    seq = load_sequence(sequence, check_files=False)
    frames = [load_frame(seq.scene, i, with_ground_truth=True) for c in seq.clips for i in c.frames]
    things = [c.id for c in seq.scene.classes if c.thing]
    gt_masks = sum(len(np.unique(thing_track_ids(f.gt_instance, f.gt_semantic, things))) - 1 for f in frames)
    m = result["mots"]
    assert m["num_gt"] == gt_masks and m["TP"] + m["FN"] == gt_masks  # every GT mask of every clip counted once
    assert result["num_clips"] == 2 and result["num_frames"] == 12 and len(result["scene_pq_per_clip"]) == 2
    valid = sum(int((f.depth > 0).sum()) for f in frames)
    assert result["depth"]["num_pixels"] == valid and 0 < result["depth"]["abs_rel"] < 1
    assert f"sMOTSA {m['sMOTSA']:.3f}" in capsys.readouterr().out
    with Image.open(run / "eval" / "cli.png") as im:  # 6 frames x (image, gt, tracks, depth), x2
        assert im.size == (4 * 64 * 2, 6 * 64 * 2)


def test_predict_writes_tracks_or_per_frame_ids_into_a_scene(trained, sequence, tmp_path, tiny_scene_dir):
    import json

    from lift3d.data.loading import load_scene
    from lift3d.data.scene import SceneFormatError
    from lift3d.twod.predict import predict_scene_segments
    from lift3d.twod.video_model import load_spatio_temporal_model
    from lift3d.twod.video_predict import renumber_per_frame

    assert renumber_per_frame(np.array([[0, 7, 7], [3, 3, 9]])).tolist() == [[0, 1, 1], [2, 2, 3]]
    run, _ = trained
    with pytest.raises(SceneFormatError, match="sequence.json"):  # a still scene: refused before anything is copied
        predict_scene_segments(tiny_scene_dir, run, out=tmp_path / "still")
    assert not (tmp_path / "still").exists()
    model, _ = load_spatio_temporal_model(run)
    seq = load_sequence(sequence, check_files=False)
    tracks = predict_scene_segments(sequence, run, out=tmp_path / "tracks", ids="tracks")
    per_frame = predict_scene_segments(sequence, run, out=tmp_path / "frames", ids="per-frame")
    assert json.loads((tracks / "model.json").read_text())["ids"] == "tracks"
    assert json.loads((per_frame / "model.json").read_text())["ids"] == "per-frame"
    st, sf = load_scene(tmp_path / "tracks"), load_scene(tmp_path / "frames")
    offset = 0
    for clip in seq.clips:
        rgb = [np.clip(np.round(load_frame(seq.scene, i).rgb * 255), 0, 255).astype(np.uint8) for i in clip.frames]
        pred = model.predict_clip(rgb)
        for i, p in zip(clip.frames, pred.frames):
            expect = np.where(p.instance > 0, p.instance.astype(np.int64) + offset, 0)
            assert np.array_equal(load_frame(st, i).instance, expect)
            assert np.array_equal(load_frame(sf, i).instance, renumber_per_frame(p.instance.astype(np.int64)))
            assert np.array_equal(load_frame(st, i).semantic, p.semantic)
        offset += max(int(p.instance.max()) for p in pred.frames)


def test_pose_network_replaces_the_poses_and_learns_from_the_depth_loss():
    torch.manual_seed(0)
    cfg = SpatioTemporalConfig(pose_network=True, embedding_dim=4)
    net = SpatioTemporalNetwork(NETWORK_PRESETS["tiny"], 2, cfg)
    assert net.pose is not None
    images = torch.rand(1, 3, 3, 32, 32)
    out = net(images)
    instance = torch.zeros(1, 3, 32, 32, dtype=torch.long)
    semantic = torch.zeros(1, 3, 32, 32, dtype=torch.long)
    k = torch.tensor([[30.0, 30.0, 16.0, 16.0]])
    with pytest.raises(ValueError, match="poses"):
        spatio_temporal_loss(out, images, instance, semantic, SpatioTemporalConfig(), intrinsics=k)
    loss, parts = spatio_temporal_loss(out, images, instance, semantic, cfg, intrinsics=k, pose_network=net.pose)
    loss.backward()
    assert parts["depth"] > 0 and float(net.pose.head.weight.grad.abs().sum()) > 0
