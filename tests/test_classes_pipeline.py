"""A ``--classes families`` scene through the lift (``fit`` tiny + ``eval``: PQ^scene over many classes) and the 2D
side (``twod train``: one seed channel per thing class; ``twod eval``: per-class semantic IoU)."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from lift3d.data.loading import load_scene


@pytest.fixture(scope="module")
def families_scene(tmp_path_factory) -> Path:
    """6 objects, 8 views of 32 x 32 (6 train, 2 test), families classes, a clean segmenter."""
    from lift3d.generate import MessyRoomsConfig, generate_scene

    cfg = MessyRoomsConfig(
        num_objects=6, num_views=8, resolution=32, seed=0, classes="families", segmenter_noise="clean"
    )
    return generate_scene(cfg, tmp_path_factory.mktemp("families") / "scene", progress=False)


def test_fit_and_eval_score_every_class_of_a_families_scene(families_scene, tmp_path):
    from lift3d.pipeline import evaluate_run, fit_scene
    from lift3d.presets import get_preset

    torch.set_num_threads(1)
    cfg = get_preset("tiny")
    fit_scene(families_scene, tmp_path / "run", cfg, preset="tiny", progress=False, log=lambda *_: None)
    metrics = evaluate_run(tmp_path / "run", "test", log=lambda *_: None)
    scene = load_scene(families_scene)
    gt_classes = set()
    for i in scene.test_indices:
        gt_classes |= set(np.unique(iio.imread(scene.frames[i].gt_semantic_path)).tolist())
    assert len(gt_classes) > 2  # floor and several families in the test views
    scored = {int(c) for c in metrics["per_class"]}
    left_out = {c["id"]: c["reason"] for c in metrics["classes_left_out"]}
    # every GT class is scored or left out by the small-class rule; every listed class is accounted for
    assert gt_classes <= scored | {c for c, r in left_out.items() if "min_class_fraction" in r}
    assert scored | set(left_out) == {c.id for c in scene.classes} and len(scored) > 2
    pqs = [v["pq"] for v in metrics["per_class"].values()]
    assert 0.0 <= metrics["pq_scene"] <= 1.0 and metrics["pq_scene"] == pytest.approx(np.mean(pqs), abs=1e-4)


def test_twod_train_and_eval_on_a_families_scene(families_scene, tmp_path):
    from lift3d.twod.dataset import AugmentConfig
    from lift3d.twod.evaluate import evaluate_twod
    from lift3d.twod.model import load_twod_model
    from lift3d.twod.spatial_embeddings import ClusteringConfig
    from lift3d.twod.train import TwodTrainConfig, train_twod

    torch.set_num_threads(1)
    losses: list[float] = []
    cfg = TwodTrainConfig(
        preset="cpu-small",
        steps=20,
        batch_size=4,
        lr=2e-3,
        pixels_per_unit=32.0,
        augment=AugmentConfig(flip=False, scale_range=(1.0, 1.0), brightness=0.0, contrast=0.0, saturation=0.0),
        clustering=ClusteringConfig(min_pixels=4),
        checkpoint_every=20,
    )
    run = tmp_path / "run2d"
    train_twod([families_scene], run, cfg, progress=False, on_step=lambda s, loss: losses.append(loss))
    model, _ = load_twod_model(run)
    scene = load_scene(families_scene)
    assert model.classes.thing_ids == scene.thing_ids and len(scene.thing_ids) == 11
    out = model.net(torch.zeros(1, 3, 32, 32))
    assert out.seed_logits.shape[1] == 11  # one seed channel per thing class
    assert out.semantic_logits.shape[1] == len(scene.classes)
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])
    result = evaluate_twod(run, [families_scene], name="families", sheet=0)
    saved = json.loads(Path(result["json"]).read_text())
    names = {c.name for c in scene.classes}
    assert set(saved["per_class_iou"]) == names
    present = [v for v in saved["per_class_iou"].values() if v is not None]
    assert saved["per_class_iou"]["floor"] is not None and len(present) > 2
    assert saved["semantic_miou"] == pytest.approx(np.mean(present))


def test_study_scenes_recorded_before_the_classes_field_still_match(tmp_path):
    """A study scene's record written before ``classes`` existed matches a binary study (its default), not a
    families one, so adding the option regenerates no scene."""
    import dataclasses

    from lift3d.generate import MessyRoomsConfig
    from tools.study import STUDY_SCENE_FILE, scene_mismatch

    wanted = json.loads(json.dumps(dataclasses.asdict(MessyRoomsConfig(num_objects=5)), default=str))
    old_record = {k: v for k, v in wanted.items() if k != "classes"}
    (tmp_path / STUDY_SCENE_FILE).write_text(json.dumps(old_record))
    assert scene_mismatch(tmp_path, wanted) == ""
    assert scene_mismatch(tmp_path, {**wanted, "classes": "families"}) == "classes: None != 'families'"
