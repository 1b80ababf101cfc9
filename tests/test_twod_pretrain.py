"""Self-supervised pretraining (paper 003 copy-paste and plain SwAV): feature sampling at pixel centres and region
pooling by hand, a resumed run equals an uninterrupted one, the regions are cached with their depth source, the
pretrained encoder initialises fine-tuning (and a mismatched one is refused in one line), depth from a
spatio-temporal run, label fractions and the unsupervised feature evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lift3d.twod.pretrain import (
    PretrainConfig,
    PretrainError,
    load_pretrained_encoder,
    pixel_pair_features,
    pretrain,
    region_pooled_features,
)
from lift3d.twod.pretrain_data import PretrainDataError, PretrainFrames
from lift3d.twod.regions import DepthRegionConfig

# finer regions than the paper's 0.20 threshold: on 64 px rooms the paper's value merges a frame into one region
REGIONS = DepthRegionConfig(merge_threshold=0.02, modularity_resolution=3.0)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """4 objects, 4 views of 64x64, family classes, depth and ground truth."""
    from lift3d.generate import MessyRoomsConfig, generate_scene

    out = tmp_path_factory.mktemp("pretrain") / "scene"
    cfg = MessyRoomsConfig(num_objects=4, num_views=4, resolution=64, seed=3, classes="families")
    return generate_scene(cfg, out, progress=False)


def _cfg(**kw) -> PretrainConfig:
    base = dict(preset="tiny", steps=4, batch_size=2, prototypes=16, projection_hidden=8, projection_dim=8)
    base.update(queue_length=4)  # full after the first steps: the queue is used, checkpointed and resumed
    base.update(checkpoint_every=2, pixels_per_image=32, regions=REGIONS)
    base.update(kw)
    return PretrainConfig(**base)


def test_pixel_pair_features_sample_pixel_centres():
    # a 16x8 image has a 2x1 feature map (1/8); its feature value is the feature column index. Pixel x's centre is
    # at feature coordinate (x + 0.5) / 8 - 0.5: bilinear between columns 0 and 1 there, clamped at the borders.
    features = torch.tensor([[[0.0, 1.0]]])  # [D=1, h=1, w=2]
    x = torch.arange(16)
    got = pixel_pair_features(features, x, width=16, height=8)[:, 0]
    expected = ((x + 0.5) / 8 - 0.5).clamp(0, 1)
    torch.testing.assert_close(got, expected)
    # row-major flat index: pixel (x=3, y=5) of a 16-wide image is 5 * 16 + 3
    assert float(pixel_pair_features(features, torch.tensor([5 * 16 + 3]), 16, 8)[0, 0]) == pytest.approx(0.0)


def test_region_pooled_features_by_hand():
    feats = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [0.0, 4.0]])
    region = torch.tensor([7, 2, 7, 9])
    means, ids = region_pooled_features(feats, region, min_pixels=1)
    assert ids.tolist() == [2, 7, 9]
    torch.testing.assert_close(means, torch.tensor([[3.0, 2.0], [3.0, 2.5], [0.0, 4.0]]))
    means, ids = region_pooled_features(feats, region, min_pixels=2)
    assert ids.tolist() == [7]


def test_copy_paste_pretraining_resumes_exactly_and_caches_regions(scene, tmp_path):
    torch.set_num_threads(1)
    losses: list[float] = []
    straight = pretrain([scene], tmp_path / "a", _cfg(), progress=False, on_step=lambda s, v: losses.append(v))

    def interrupt(step: int, value: float) -> None:
        if step == 3:  # after the step-2 checkpoint, before the step-4 one
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain([scene], tmp_path / "b", _cfg(), progress=False, on_step=interrupt)
    pretrain([scene], tmp_path / "b", _cfg(), resume=True, progress=False)
    a = torch.load(straight / "checkpoints" / "step_0000004.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoints" / "step_0000004.pt", weights_only=True)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=1e-6)
    assert all(np.isfinite(losses)) and len(losses) == 4
    history = json.loads((straight / "train.json").read_text())["history"]
    assert all(h["pairs"] > 0 for h in history)  # every batch had pasted pixel pairs
    assert any(h["regions"] > 0 for h in history)
    assert a["queue"]["filled"] == 4 and a["queue"]["a"].shape == (4, 8)
    # the prototypes are unit vectors after every step
    torch.testing.assert_close(a["model"]["prototypes.weight"].norm(dim=1), torch.ones(16))
    meta = json.loads((straight / "regions" / "meta.json").read_text())
    assert meta["depth"] == "scene" and meta["regions"]["merge_threshold"] == 0.02
    assert len(list((straight / "regions").glob("*.npz"))) == 4
    assert json.loads((straight / "config.json").read_text())["config"]["lambda_pixel"] == 0.5
    with pytest.raises(PretrainDataError, match="other data, depth or region settings"):
        pretrain([scene], straight, _cfg(steps=6, regions=DepthRegionConfig()), resume=True, progress=False)


def test_swav_pretraining_and_init_of_fine_tuning(scene, tmp_path):
    from lift3d.twod.dataset import FrameDataset
    from lift3d.twod.model import TwodModel
    from lift3d.twod.network import NETWORK_PRESETS
    from lift3d.twod.spatial_embeddings import ClusteringConfig

    torch.set_num_threads(1)
    run = pretrain([scene], tmp_path / "swav", _cfg(method="swav", steps=2), progress=False)
    classes = FrameDataset([scene]).classes
    model = TwodModel(NETWORK_PRESETS["tiny"], classes, 32.0, ClusteringConfig())
    meta = load_pretrained_encoder(run, model.net.encoder)
    assert meta["pretrain_method"] == "swav"
    state = torch.load(run / "checkpoints" / "step_0000002.pt", weights_only=True)["model"]
    for k, v in model.net.encoder.state_dict().items():
        torch.testing.assert_close(v, state[f"encoder.{k}"], rtol=0, atol=0)
    wrong = TwodModel(NETWORK_PRESETS["cpu-small"], classes, 32.0, ClusteringConfig())
    with pytest.raises(PretrainError, match="--preset tiny"):
        load_pretrained_encoder(run, wrong.net.encoder)
    # lift3d twod train --init RUN --label-fraction 0.5: starts from the encoder, records both and the frames used
    from lift3d.twod.train import TwodTrainConfig, train_twod

    cfg = TwodTrainConfig(preset="tiny", steps=1, batch_size=1, checkpoint_every=1, init=run, label_fraction=0.5)
    ft = train_twod([scene], tmp_path / "ft", cfg, progress=False)
    record = json.loads((ft / "config.json").read_text())
    assert record["config"]["init"] == str(run) and record["config"]["label_fraction"] == 0.5
    assert len(record["labelled_frames"]) == 2
    with pytest.raises(PretrainError, match="--preset tiny"):
        train_twod([scene], tmp_path / "ft2", TwodTrainConfig(preset="cpu-small", init=run), progress=False)


def test_label_fraction_draws_a_seeded_subset():
    from lift3d.twod.train import TwodTrainError, labelled_subset

    items = list(range(30))
    picked = labelled_subset(items, 0.1, seed=0)
    assert len(picked) == 3 and picked == sorted(picked)
    assert picked == labelled_subset(items, 0.1, seed=0)
    assert labelled_subset(items, 1.0, seed=0) == items
    assert len(labelled_subset(items, 0.01, seed=0)) == 1
    with pytest.raises(TwodTrainError):
        labelled_subset(items, 0.0, seed=0)


def test_depth_source_refuses_a_network_without_depth(scene, tmp_path):
    from lift3d.twod.train import TwodTrainConfig, train_twod

    cfg = TwodTrainConfig(preset="tiny", steps=1, batch_size=1, checkpoint_every=1)
    run = train_twod([scene], tmp_path / "se", cfg, progress=False)
    with pytest.raises(PretrainDataError, match="spatio-temporal"):
        PretrainFrames([scene], depth=str(run))


def test_depth_from_a_spatio_temporal_run(tmp_path):
    from lift3d.generate import MessyRoomsConfig, generate_scene
    from lift3d.generate.config import VideoConfig
    from lift3d.twod.train import TwodTrainConfig, train_twod

    video = VideoConfig(num_clips=2, frames_per_clip=3)
    gen = MessyRoomsConfig(num_objects=3, resolution=64, seed=1, trajectory="video", video=video, classes="families")
    sequence = generate_scene(gen, tmp_path / "seq", progress=False)
    cfg = TwodTrainConfig(method="spatio-temporal", preset="tiny", steps=1, batch_size=1, checkpoint_every=1)
    cfg.spatio_temporal.clip_length = 3
    torch.set_num_threads(1)
    st = train_twod([sequence], tmp_path / "st", cfg, progress=False)
    data = PretrainFrames([sequence], depth=str(st))
    data.prepare(tmp_path / "regions", REGIONS, _regions_fn(), progress=False)
    assert len(list((tmp_path / "regions").glob("*.npz"))) == 6  # both clips, every frame
    depth, regions = data.depth_and_regions(0)
    assert depth.shape == (64, 64) and regions.shape == (64, 64)
    lo, hi = cfg.spatio_temporal.depth_loss.min_depth, cfg.spatio_temporal.depth_loss.max_depth
    assert lo <= depth.min() and depth.max() <= hi  # the head's range, not the scene's depth maps
    assert json.loads((tmp_path / "regions" / "meta.json").read_text())["depth"] == str(st.resolve())


def _regions_fn():
    from lift3d.twod.regions import coherent_depth_regions

    return coherent_depth_regions


def test_eval_features_cli_scores_a_random_encoder(scene, tmp_path, capsys):
    from lift3d.cli import entrypoint

    out = tmp_path / "random.json"
    entrypoint(["twod", "eval-features", "random", "--preset", "tiny", "--data", str(scene), "--out", str(out)])
    r = json.loads(out.read_text())
    assert 0.0 < r["accuracy"] <= 1.0 and 0.0 < r["miou"] <= 1.0
    assert r["num_frames"] == 4 and r["network"]["source"] == "random"
    assert "unsupervised Acc" in capsys.readouterr().out


def test_ddp_two_processes_match_one_process(scene, tmp_path):
    """SwAV under torchrun on 2 CPU processes (Sinkhorn sums all-reduced) gives the single-process weights; the
    copy-paste method runs under DDP too (its pixel draws differ per rank, so only that it trains is checked)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    args = ["twod", "pretrain", "--data", str(scene), "--preset", "tiny", "--steps", "2", "--batch-size", "4"]
    args += ["--prototypes", "16", "--projection-hidden", "8", "--projection-dim", "8", "--checkpoint-every", "2"]
    args += ["--regions.merge-threshold", "0.02", "--regions.modularity-resolution", "3.0"]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lift3d.cli"]
    one = [sys.executable, "-m", "lift3d.cli"]
    run = dict(check=True, env=env, cwd=root, timeout=240, capture_output=True)
    # the exact comparison runs without the head's batch norm (its statistics are per process) and without
    # multi-crop (its longer sums change fp32 rounding, which Adam's sign-like first steps amplify); a multi-crop
    # run with the batch-normalised head is checked to train under DDP below
    swav = ["--method", "swav", "--small-crops", "0", "--no-head-batch-norm"]
    subprocess.run(ddp + args + swav + ["--out", str(tmp_path / "ddp")], **run)
    subprocess.run(one + args + swav + ["--out", str(tmp_path / "one")], **run)
    a = torch.load(tmp_path / "ddp" / "checkpoints" / "step_0000002.pt", weights_only=True)
    b = torch.load(tmp_path / "one" / "checkpoints" / "step_0000002.pt", weights_only=True)
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], atol=1e-5, rtol=1e-4, msg=k)
    subprocess.run(ddp + args + ["--method", "swav", "--small-crops", "2", "--out", str(tmp_path / "mc")], **run)
    history = json.loads((tmp_path / "mc" / "train.json").read_text())["history"]
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    subprocess.run(ddp + args + ["--method", "copy-paste", "--out", str(tmp_path / "cp")], **run)
    history = json.loads((tmp_path / "cp" / "train.json").read_text())["history"]
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)


def _initial_prototypes(cfg: PretrainConfig) -> torch.Tensor:
    """The prototypes ``pretrain`` starts from (same seed, same construction order)."""
    from lift3d.twod.pretrain import PretrainNetwork

    torch.manual_seed(cfg.seed)
    net = PretrainNetwork(cfg.network(), cfg.projection_hidden, cfg.projection_dim, cfg.prototypes, cfg.head_batch_norm)
    return net.prototypes.weight.detach().clone()


def test_prototypes_frozen_then_trained_and_queue_only_after_warm_up(scene, tmp_path):
    # 4 frames, batch 2: an epoch is 2 steps. Frozen for 1 epoch (steps 1-2); the 4-feature queue is full after
    # 2 pushes of 2, but joins the Sinkhorn step only from epoch 1.5 = step index 3 (the 4th step).
    torch.set_num_threads(1)
    cfg = _cfg(method="swav", steps=4, small_crops=0, freeze_prototypes_epochs=1.0, queue_start_epochs=1.5)
    run = pretrain([scene], tmp_path / "run", cfg, progress=False)
    start = _initial_prototypes(cfg)
    frozen = torch.load(run / "checkpoints" / "step_0000002.pt", weights_only=True)["model"]["prototypes.weight"]
    later = torch.load(run / "checkpoints" / "step_0000004.pt", weights_only=True)["model"]["prototypes.weight"]
    torch.testing.assert_close(frozen, start, rtol=0, atol=1e-7)  # no update during the freeze
    assert float((later - start).abs().max()) > 1e-4  # updated after it
    record = json.loads((run / "train.json").read_text())
    assert record["freeze_prototype_steps"] == 2 and record["queue_start_step"] == 3
    assert [h["queue"] for h in record["history"]] == [False, False, False, True]
    assert record["ln_prototypes"] == pytest.approx(np.log(16))
    for h in record["history"]:  # diagnostics of the codes: distinct argmax prototypes, mean largest entry
        assert 1 <= h["image_used"] <= 2 * cfg.batch_size and 1 / 16 - 1e-6 <= h["image_code_max"] <= 1.0
    # freezing off: the prototypes move at once
    cfg0 = _cfg(method="swav", steps=2, small_crops=0, freeze_prototypes_epochs=0.0)
    moved = pretrain([scene], tmp_path / "free", cfg0, progress=False)
    w = torch.load(moved / "checkpoints" / "step_0000002.pt", weights_only=True)["model"]["prototypes.weight"]
    assert float((w - _initial_prototypes(cfg0)).abs().max()) > 1e-4


def test_multi_crop_items_and_batch_normalised_head(scene, tmp_path):
    from lift3d.twod.pretrain import (
        PretrainNetwork,
        _Features,
        load_pretrained_network,
        small_crop_augment,
        swav_batch,
    )

    torch.set_num_threads(1)
    cfg = _cfg(method="swav", small_crops=3)
    # 64 px frames: side int(64 * 96 / 224) = 27 -> 24 px; zoom s with (24 / (64 s))^2 in [0.05, 0.14]
    aug = small_crop_augment(cfg, 64, 64)
    assert aug.crop == 24
    lo, hi = aug.scale_range
    assert lo == pytest.approx(24 / (64 * 0.14**0.5)) and hi == pytest.approx(24 / (64 * 0.05**0.5))
    assert (24 / (64 * lo)) ** 2 == pytest.approx(0.14) and (24 / (64 * hi)) ** 2 == pytest.approx(0.05)
    data = PretrainFrames([scene])
    batch = swav_batch(data, [(0, 0), (0, 1)], cfg)
    assert batch["view_a"].shape == (2, 3, 64, 64) and len(batch["small"]) == 3
    assert all(s.shape == (2, 3, 24, 24) for s in batch["small"])
    net = PretrainNetwork(cfg.network(), 8, 8, 16, head_batch_norm=True)
    images = [torch.cat([batch["view_a"], batch["view_b"]]).float() / 255, torch.cat(batch["small"]).float() / 255]
    pooled = _Features(net)(images, pooled=True)
    assert pooled.shape == ((2 + 3) * 2, 8)  # (2 global + V small crops) x batch items, one feature each
    # the head is batch-normalised over every crop: its hidden layer has zero mean over the 10 crops
    hidden = net.head[1](net.head[0](torch.cat([net.encode(x).mean((2, 3), keepdim=True) for x in images])))
    torch.testing.assert_close(hidden.mean(0).flatten(), torch.zeros(8), atol=1e-5, rtol=0)
    # a multi-crop run trains, and its network (with the batch-normalised head) loads back
    run = pretrain([scene], tmp_path / "mc", _cfg(method="swav", steps=2, small_crops=2), progress=False)
    history = json.loads((run / "train.json").read_text())["history"]
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    loaded, meta = load_pretrained_network(run)
    assert meta["head"]["batch_norm"] is True and isinstance(loaded.head[1], torch.nn.BatchNorm2d)
