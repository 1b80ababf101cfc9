"""lift3d.data.segments_import: masks are painted by score, id maps and detectron2 predictions land in the scene
format, transforms.json points at them, and bad inputs fail before the scene changes, naming file and frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import MINI_H, MINI_W, make_mini_scene
from PIL import Image

from lift3d.data.images import write_id_map
from lift3d.data.loading import load_frame, load_scene
from lift3d.data.segments_import import (
    SegmentsImport,
    SegmentsImportError,
    decode_rgb_ids,
    import_segments,
    masks_to_segments,
)


def test_masks_are_painted_in_increasing_score_order():
    m = np.zeros((3, 2, 3), bool)
    m[0, :, :2] = True  # score 0.6, class 7
    m[1, :, 1:] = True  # score 0.9, class 3: wins the overlap column 1
    m[2, 0, :] = True  # score 0.3: below the threshold, dropped
    inst, sem, conf = masks_to_segments(m, np.array([0.6, 0.9, 0.3]), np.array([7, 3, 7]), 0.5, 0.8, {3: 1}, 2)
    np.testing.assert_array_equal(inst, [[1, 2, 2], [1, 2, 2]])
    np.testing.assert_array_equal(sem, [[2, 1, 1], [2, 1, 1]])  # class 7 is not in the map -> default class 2
    np.testing.assert_allclose(conf, [[0.6, 0.9, 0.9], [0.6, 0.9, 0.9]])
    inst, _, conf = masks_to_segments(m[:0], np.zeros(0), None, 0.5, 0.8, {}, 1)
    assert (inst == 0).all() and np.allclose(conf, 0.8)


def test_rgb_ids_decode():
    rgb = np.array([[[1, 2, 3], [0, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(decode_rgb_ids(rgb), [[1 + 2 * 256 + 3 * 65536, 0]])


def _id_maps(src, stems, shape=(MINI_H, MINI_W)):
    (src / "instance").mkdir(parents=True)
    (src / "semantic").mkdir()
    maps = {}
    for k, stem in enumerate(stems):
        ids = np.zeros(shape, np.int64)
        ids[:, : shape[1] // 2] = 1000 + k  # > 255: must stay 16-bit
        ids[0, 0] = 0
        write_id_map(src / "instance" / f"{stem}.png", ids)
        np.save(src / "semantic" / f"{stem}.npy", (ids > 0).astype(np.int32))
        maps[stem] = ids
    return maps


def test_id_maps_are_imported_and_transforms_json_updated(tmp_path):
    scene_dir = tmp_path / "scene"
    make_mini_scene(scene_dir, num_frames=3)
    maps = _id_maps(tmp_path / "src", ["f0", "f1", "f2"])
    out = import_segments(scene_dir, tmp_path / "src", "id-maps", name="mine")
    assert out == scene_dir / "segments" / "mine"
    meta = json.loads((scene_dir / "transforms.json").read_text())
    assert meta["frames"][1]["instance_file_path"] == "segments/mine/instance/f1.png"
    assert meta["segments_imported"]["kind"] == "id-maps"
    scene = load_scene(scene_dir)
    for i in range(3):
        d = load_frame(scene, i)
        np.testing.assert_array_equal(d.instance, maps[f"f{i}"])
        np.testing.assert_array_equal(d.semantic, (maps[f"f{i}"] > 0).astype(int))
        assert np.allclose(d.confidence, 1.0)  # no confidence maps given
    assert (scene_dir / "inst" / "f0.png").exists()  # the previous segments stay on disk
    with pytest.raises(SegmentsImportError, match="already exists"):
        import_segments(scene_dir, tmp_path / "src", "id-maps", name="mine")


def test_flat_folder_by_order_with_rgb_ids_and_default_class(tmp_path):
    scene_dir = tmp_path / "scene"
    make_mini_scene(scene_dir, num_frames=2)
    src = tmp_path / "flat"
    src.mkdir()
    for k in range(2):
        rgb = np.zeros((MINI_H, MINI_W, 3), np.uint8)
        rgb[1:, 2:] = [5, 0, 1]  # id 5 + 65536 does not fit 16 bits -> renumbered to 1
        Image.fromarray(rgb).save(src / f"{k + 10}.png")
    import_segments(scene_dir, src, "id-maps", match="order")
    d = load_frame(load_scene(scene_dir), 1)
    expected = np.zeros((MINI_H, MINI_W), int)
    expected[1:, 2:] = 1
    np.testing.assert_array_equal(d.instance, expected)
    np.testing.assert_array_equal(d.semantic, expected)  # thing class 1 where there is a segment


def test_detectron2_predictions_with_class_map(tmp_path):
    scene_dir = tmp_path / "scene"
    make_mini_scene(scene_dir, num_frames=2)
    src = tmp_path / "det"
    src.mkdir()
    for k in range(2):
        masks = np.zeros((2, MINI_H, MINI_W), bool)
        masks[0, :2] = True
        masks[1, 1:] = True
        np.savez(src / f"f{k}.npz", pred_masks=masks, scores=np.array([0.95, 0.7]), pred_classes=np.array([41, 12]))
    cli = SegmentsImport(scene=scene_dir, source=src, kind="detectron2", class_map=None, score_threshold=0.5)
    cli.run_command()
    d = load_frame(load_scene(scene_dir), 0)
    np.testing.assert_array_equal(d.instance[:, 0], [1, 1, 2, 2])  # row 1 overlaps: the 0.95 mask wins
    np.testing.assert_allclose(d.confidence[:, 0], np.round(np.array([0.95, 0.95, 0.7, 0.7]) * 255) / 255)
    assert (d.semantic == 1).all()


def test_bad_inputs_fail_before_the_scene_changes(tmp_path):
    scene_dir = tmp_path / "scene"
    make_mini_scene(scene_dir, num_frames=2)
    before = (scene_dir / "transforms.json").read_text()
    _id_maps(tmp_path / "big", ["f0", "f1"], shape=(MINI_H * 2, MINI_W * 2))
    with pytest.raises(SegmentsImportError, match=r"frame 0 \(images/f0.png\).*is 12x8 but the frame is 6x4.*resize"):
        import_segments(scene_dir, tmp_path / "big")
    _id_maps(tmp_path / "some", ["f0"])
    with pytest.raises(SegmentsImportError, match=r"no .png/.npy file for frame\(s\) \['f1'\]"):
        import_segments(scene_dir, tmp_path / "some")
    assert (scene_dir / "transforms.json").read_text() == before
    assert not (scene_dir / "segments").exists() or not any((scene_dir / "segments").iterdir())
    import_segments(scene_dir, tmp_path / "big", resize=True)  # nearest resampling to the frame size
    inst = load_frame(load_scene(scene_dir), 1).instance
    assert (inst[:, :3] == 1001).all() and (inst[:, 3:] == 0).all()
