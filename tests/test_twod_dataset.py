"""Frame datasets of lift3d.twod: ground truth required, class channels, split by scene, deterministic augmentations."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from lift3d.twod.dataset import (
    AugmentConfig,
    FrameDataset,
    MissingGroundTruthError,
    augment_frame,
    instance_classes_of,
    split_by_scene,
)


def test_instance_classes_by_majority_vote():
    inst = np.array([[1, 1, 2], [1, 3, 2], [0, 3, 3]])
    sem = np.array([[5, 5, 0], [7, 0, 0], [0, 7, 7]])  # 1: mostly 5, 2: stuff 0, 3: mostly 7
    assert instance_classes_of(inst, sem, thing_ids=[5, 7]) == {1: 0, 3: 1}


def test_split_by_scene_keeps_whole_scenes_apart():
    train, val = split_by_scene(["a", "b", "c", "d", "e"], 0.2)
    assert train == ["a", "b", "c", "d"] and val == ["e"]
    assert split_by_scene(["a", "b"], 0.01) == (["a"], ["b"])  # at least one validation scene
    assert split_by_scene(["a"], 0.5) == (["a"], [])


def test_frames_stream_with_ground_truth(tiny_scene_dir, tiny_scene):
    data = FrameDataset([tiny_scene_dir])
    assert len(data) == len(tiny_scene.frames)
    s = data[3]
    assert s.image.dtype == torch.uint8 and s.image.shape == (3, 32, 32)
    gt = np.asarray(__import__("lift3d.data.loading", fromlist=["x"]).load_frame(tiny_scene, 3, True).gt_instance)
    assert torch.equal(s.instance, torch.from_numpy(gt.astype(np.int64)))
    assert set(s.instance_classes) == set(np.unique(gt[gt > 0]).tolist())  # every object is a thing here


def test_scene_without_ground_truth_names_file_and_frame(tiny_scene_dir, tmp_path):
    copy = tmp_path / "nogt"
    shutil.copytree(tiny_scene_dir, copy)
    meta = json.loads((copy / "transforms.json").read_text())
    for fr in meta["frames"]:
        fr.pop("gt_instance_file_path", None)
        fr.pop("gt_semantic_file_path", None)
    (copy / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(MissingGroundTruthError, match=r"nogt/transforms.json, frame 0 .*ground-truth"):
        FrameDataset([copy])


def test_flip_only_mirrors_and_draws_are_reproducible():
    gen = torch.Generator().manual_seed(0)
    img = torch.arange(3 * 4 * 8, dtype=torch.uint8).reshape(3, 4, 8)
    inst = torch.arange(32).reshape(4, 8)
    sem = inst % 3
    cfg = AugmentConfig(flip=True, scale_range=(1.0, 1.0), brightness=0, contrast=0, saturation=0)
    outs = [augment_frame(img, inst, sem, cfg, gen) for _ in range(8)]
    for o_img, o_inst, o_sem in outs:  # either unchanged or mirrored, ids moved with the pixels
        assert torch.equal(o_inst, inst) or torch.equal(o_inst, inst.flip(-1))
        flipped = not torch.equal(o_inst, inst)
        assert torch.equal(o_img, img.flip(-1) if flipped else img)
        assert torch.equal(o_sem, sem.flip(-1) if flipped else sem)
    assert any(not torch.equal(o[1], inst) for o in outs) and any(torch.equal(o[1], inst) for o in outs)


def test_same_seed_epoch_item_same_sample(tiny_scene_dir):
    data = FrameDataset([tiny_scene_dir], augment=AugmentConfig(), seed=3)
    a = data[2]
    b = data[2]
    assert torch.equal(a.image, b.image) and torch.equal(a.instance, b.instance)
    data.set_epoch(1)
    c = data[2]
    assert not (torch.equal(a.image, c.image) and torch.equal(a.instance, c.instance))
