"""tools/study_semantic.py: variant parsing, the 2D-input statistics by hand, and one tiny probe end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tools.study_semantic import input_class_statistics, main, parse_variant


def test_parse_variant():
    assert parse_variant("base:") == ("base", [])
    assert parse_variant("cb:losses.semantic_confidence=class-balanced,optim.iterations=9") == (
        "cb",
        ["losses.semantic_confidence=class-balanced", "optim.iterations=9"],
    )
    with pytest.raises(SystemExit):
        parse_variant("no-colon")


def test_probe_on_a_tiny_scene(tmp_path):
    out = tmp_path / "semantic.json"
    argv = ["--config", "cpu-tiny", "--objects", "3", "--set", "segmenter_noise=detic-real", "--iterations", "20"]
    argv += ["--variant", "given:", "--variant", "off:losses.semantic_confidence=off"]
    result = main(argv + ["--work", str(tmp_path / "work"), "--out", str(out)])
    assert json.loads(out.read_text())["variants"].keys() == {"given", "off"}
    assert result["variants"]["off"]["overrides"] == ["losses.semantic_confidence=off", "optim.iterations=20"]

    # the 2D-input statistics against the frames' arrays
    from lift3d.data.loading import load_frame, load_scene

    scene = load_scene(tmp_path / "work" / "N3")
    views = list(scene.train_indices)
    stats = input_class_statistics(scene, views)
    frames = [load_frame(scene, i, with_ground_truth=True) for i in views]
    things = sorted(scene.thing_ids)
    sem = np.stack([f.semantic for f in frames])
    conf = np.stack([f.confidence for f in frames]).astype(np.float64)
    gt = np.stack([f.gt_semantic for f in frames])
    is_thing = np.isin(sem, things)
    assert stats["input_thing_fraction"] == pytest.approx(is_thing.mean(), abs=1e-4)
    assert stats["gt_thing_fraction"] == pytest.approx(np.isin(gt, things).mean(), abs=1e-4)
    assert stats["mean_confidence_thing"] == pytest.approx(conf[is_thing].mean(), abs=1e-4)
    assert stats["mean_confidence_stuff"] == pytest.approx(conf[~is_thing].mean(), abs=1e-4)
    assert stats == result["input_train"]
    # a variant already in the JSON is not fitted again
    again = main(argv + ["--work", str(tmp_path / "work"), "--out", str(out)])
    assert again["variants"] == result["variants"]
