"""tools/study.py's 2D-input option: a trained 2D network's masks replace the simulated segmenter's."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from lift3d.data.loading import load_frame, load_scene
from lift3d.twod.dataset import ClassSpace
from lift3d.twod.model import TwodModel, save_twod_checkpoint
from lift3d.twod.network import NETWORK_PRESETS
from lift3d.twod.spatial_embeddings import ClusteringConfig


def test_network_input_scene_predicts_once_per_network(tiny_scene_dir, tiny_scene, tmp_path):
    import tools.study as study

    run = tmp_path / "twod"
    model = TwodModel(NETWORK_PRESETS["tiny"], ClassSpace.of_scene(tiny_scene), 16.0, ClusteringConfig(min_pixels=2))
    save_twod_checkpoint(run / "checkpoints" / "step_0000001.pt", model, None, 1)
    cfg = dataclasses.replace(study.STUDY_CONFIGS["cpu-tiny"], two_d_input="network", two_d_model=str(run))
    stats, work = {}, tmp_path / "work"
    out = study.network_input_scene(cfg, 4, tiny_scene_dir, work, stats, generated=False, log=lambda m: None)
    assert out == work / "scenes-twod" / "N004"
    scene = load_scene(out)
    seg = out / "segments" / "twod"
    assert all(f.instance_path.parent == seg / "instance" for f in scene.frames)
    # the maps are the network's: every frame's instance map is what the model predicts for its image
    for i in (0, len(scene.frames) - 1):
        rgb = np.clip(np.round(load_frame(scene, i).rgb * 255.0), 0, 255).astype(np.uint8)
        assert np.array_equal(load_frame(scene, i).instance, model.predict(rgb).instance.astype(np.int64))
    assert stats["two_d_input"]["checkpoint"] == "step_0000001.pt"
    assert stats["max_segments_per_train_view"] == max(
        len(np.unique(load_frame(scene, i).instance[load_frame(scene, i).instance > 0])) for i in scene.train_indices
    )
    # same network: reused, not predicted again; a newer checkpoint: predicted again
    mtime = (seg / "model.json").stat().st_mtime_ns
    study.network_input_scene(cfg, 4, tiny_scene_dir, work, {}, generated=False, log=lambda m: None)
    assert (seg / "model.json").stat().st_mtime_ns == mtime
    save_twod_checkpoint(run / "checkpoints" / "step_0000002.pt", model, None, 2)
    study.network_input_scene(cfg, 4, tiny_scene_dir, work, {}, generated=False, log=lambda m: None)
    assert json.loads((seg / "model.json").read_text())["checkpoint"] == "step_0000002.pt"
