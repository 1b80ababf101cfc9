"""lift3d.segmenters: the classical segmenter recovers flat-coloured rectangles (and splits equal colours at depth
edges), SAM's and Mask2Former's real loading code runs tiny randomly initialised models saved to a local folder,
and `lift3d segments predict` writes maps the scene then loads with, never touching the user's files without
--force; missing weights / packages are one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from conftest import MINI_H, MINI_W, make_mini_scene

from lift3d.cli import entrypoint
from lift3d.data.images import write_id_map, write_rgb
from lift3d.data.loading import load_frame, load_scene
from lift3d.data.scene import SceneClass
from lift3d.segmenters import (
    SegmenterError,
    SegmenterOptions,
    SegmenterUnavailableError,
    SegmenterWeightsError,
    build_segmenter,
    predict_scene_segments,
)
from lift3d.segmenters.classical import ClassicalConfig, ClassicalSegmenter, merge_regions
from lift3d.segmenters.predict import merge_classes
from lift3d.segmenters.sam import box_nms, point_grid, stability_scores

transformers = pytest.importorskip("transformers")

# ------------------------------------------------------------------------------------------------ scenes

GREY, RED, BLUE, GREEN = (0.5, 0.5, 0.5), (0.9, 0.1, 0.1), (0.1, 0.1, 0.9), (0.1, 0.8, 0.1)
RECTS = {RED: np.s_[5:15, 5:20], BLUE: np.s_[20:35, 30:50], GREEN: np.s_[8:18, 40:55]}
H, W = 40, 60


def rectangles_image(shift: int = 0) -> np.ndarray:
    """[40, 60, 3] grey with a red, a blue and a green rectangle (moved right by ``shift`` pixels)."""
    img = np.empty((H, W, 3), np.float32)
    img[:] = GREY
    for colour, (rows, cols) in RECTS.items():
        img[rows, slice(cols.start + shift, cols.stop + shift)] = colour
    return img


def make_rectangles_scene(root, num_frames: int = 3) -> None:
    """A transforms.json scene of ``num_frames`` 60x40 views of the rectangles (frame i shifted by i pixels), with
    placeholder segments (all background) that segments predict replaces."""
    frames = []
    for i in range(num_frames):
        write_rgb(root / f"images/v{i}.png", np.round(rectangles_image(i) * 255).astype(np.uint8))
        write_id_map(root / f"old/inst/v{i}.png", np.zeros((H, W), np.int64), bits=16)
        write_id_map(root / f"old/sem/v{i}.png", np.zeros((H, W), np.int64), bits=8)
        c2w = np.eye(4)
        c2w[:3, 3] = [0.1 * i, 0.0, 3.0]
        frames.append(
            {
                "file_path": f"images/v{i}.png",
                "transform_matrix": c2w.tolist(),
                "instance_file_path": f"old/inst/v{i}.png",
                "semantic_file_path": f"old/sem/v{i}.png",
            }
        )
    meta = {"fl_x": 50.0, "fl_y": 50.0, "cx": 30.0, "cy": 20.0, "w": W, "h": H, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))


# ------------------------------------------------------------------------------------------------ classical


def _assert_rectangles_recovered(instance, semantic, shift=0):
    ids = []
    for rows, cols in RECTS.values():
        patch = instance[rows, slice(cols.start + shift, cols.stop + shift)]
        assert len(np.unique(patch)) == 1 and patch[0, 0] > 0  # one instance covers the whole rectangle
        ids.append(int(patch[0, 0]))
    assert len(set(ids)) == 3  # three different instances
    outside = np.ones((H, W), bool)
    for rows, cols in RECTS.values():
        outside[rows, slice(cols.start + shift, cols.stop + shift)] = False
    assert (instance[outside] == 0).all() and (semantic[outside] == 0).all()  # grey: background stuff
    assert (semantic[~outside] == 1).all()  # the rectangles: class 1 'object'
    assert sorted(ids) == [1, 2, 3]


def test_classical_recovers_flat_rectangles_and_numbers_them_in_raster_order():
    seg = ClassicalSegmenter().segment(rectangles_image())
    _assert_rectangles_recovered(seg.instance, seg.semantic)
    # raster order of first pixels: red (row 5), green (row 8), blue (row 20)
    assert seg.instance[5, 5] == 1 and seg.instance[8, 40] == 2 and seg.instance[20, 30] == 3
    assert seg.instance.dtype == np.int64 and seg.semantic.dtype == np.int64 and seg.confidence.dtype == np.float32
    np.testing.assert_array_equal(seg.confidence, 1.0)


def test_classical_tolerates_noise():
    noisy = rectangles_image() + np.random.default_rng(0).normal(0, 0.03, (H, W, 3)).astype(np.float32)
    seg = ClassicalSegmenter().segment(np.clip(noisy, 0, 1))
    _assert_rectangles_recovered(seg.instance, seg.semantic)


@pytest.mark.parametrize("depth_mode", [True, False])
def test_classical_splits_equal_colours_at_a_depth_edge(depth_mode):
    img = np.empty((H, W, 3), np.float32)
    img[:] = GREY
    img[10:30, 10:50] = RED  # one red block ...
    depth = np.full((H, W), 3.0, np.float32)
    depth[10:30, 10:30], depth[10:30, 30:50] = 1.0, 1.5  # ... made of two boxes at different depths
    seg = ClassicalSegmenter(ClassicalConfig(depth_mode=depth_mode))
    without = seg.segment(img).instance
    assert len(np.unique(without[10:30, 10:50])) == 1
    with_depth = seg.segment(img, depth)
    left, right = np.unique(with_depth.instance[10:30, 10:30]), np.unique(with_depth.instance[10:30, 30:50])
    assert len(left) == 1 and len(right) == 1 and left[0] != right[0] and min(left[0], right[0]) > 0
    assert (with_depth.instance[:10] == 0).all() and (with_depth.semantic[:10] == 0).all()


def test_classical_depth_path_ignores_texture_and_finds_the_floor_plane():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (H, W, 3)).astype(np.float32)  # texture everywhere: the colour path would shatter it
    v = np.arange(H, dtype=np.float32)[:, None]
    depth = np.repeat(1.0 / (0.2 + 0.004 * v), W, axis=1)  # a slanted floor: inverse depth affine in v
    depth[20:30, 10:20] = 2.0  # a box 40% closer than the floor behind it
    depth[5:12, 35:50] = 3.0  # another
    depth[35:, :3] = 0.0  # unknown depth
    seg = ClassicalSegmenter().segment(img, depth)
    box1, box2 = np.unique(seg.instance[20:30, 10:20]), np.unique(seg.instance[5:12, 35:50])
    assert len(box1) == 1 and len(box2) == 1 and {box1[0], box2[0]} == {1, 2}
    floor = np.ones((H, W), bool)
    floor[20:30, 10:20] = floor[5:12, 35:50] = False
    assert (seg.instance[floor] == 0).all() and (seg.semantic[floor] == 0).all()
    assert (seg.confidence[35:, :3] == 0).all() and (seg.confidence[depth > 0] == 1).all()


def test_merge_regions_by_hand():
    labels = np.array([[0, 0, 1, 2]])
    image = np.array([[[0.0, 0, 0], [0.0, 0, 0], [0.05, 0, 0], [0.5, 0, 0]]], np.float32)
    # regions 0 and 1 differ by 0.05 < 0.1: merged; 1 and 2 by 0.45: kept apart
    np.testing.assert_array_equal(merge_regions(labels, image, None, 0.1, 0.05), [[0, 0, 0, 1]])
    depth = np.array([[1.0, 1.0, 2.0, 2.0]])  # a depth jump of 50% between regions 0 and 1 blocks the merge
    np.testing.assert_array_equal(merge_regions(labels, image, depth, 0.1, 0.05), [[0, 0, 1, 2]])


# ------------------------------------------------------------------------------------------------ SAM pieces


def test_point_grid_stability_and_nms_by_hand():
    np.testing.assert_allclose(point_grid(2, 4, 8), [[2, 1], [6, 1], [2, 3], [6, 3]])
    logits = torch.tensor([[[2.0, 0.5, -0.5, -2.0]], [[-3.0, -3.0, -3.0, -3.0]]])  # [2, 1, 4]
    # mask 0: |L > 1| = 1, |L > -1| = 3 -> 1/3; mask 1 empty at both thresholds -> 1
    np.testing.assert_allclose(stability_scores(logits, 1.0).numpy(), [1 / 3, 1.0])
    boxes = np.array([[0, 0, 9, 9], [1, 1, 9, 9], [20, 20, 29, 29]], float)  # IoU(0, 1) = 81/100
    np.testing.assert_array_equal(box_nms(boxes, np.array([0.5, 0.9, 0.7]), 0.7), [1, 2])
    np.testing.assert_array_equal(box_nms(boxes, np.array([0.5, 0.9, 0.7]), 0.9), [1, 2, 0])


# ------------------------------------------------------------------------------------------------ tiny models


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory):
    """A randomly initialised SAM with tiny encoder / prompt encoder / decoder, saved with save_pretrained."""
    torch.manual_seed(0)
    size = 64
    cfg = transformers.SamConfig(
        vision_config=dict(
            hidden_size=16,
            output_channels=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=size,
            patch_size=16,
            window_size=2,
            global_attn_indexes=[1],
            num_pos_feats=8,
            mlp_dim=32,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=size, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=16
        ),
    )
    folder = tmp_path_factory.mktemp("weights") / "sam"
    transformers.SamModel(cfg).save_pretrained(folder)
    processor = transformers.SamProcessor(
        image_processor=transformers.SamImageProcessor(
            size={"longest_edge": size}, mask_size={"longest_edge": size // 4}, pad_size={"height": size, "width": size}
        )
    )
    processor.save_pretrained(folder)
    return folder


LAX_SAM = {
    "sam": __import__("lift3d.segmenters.sam", fromlist=["SamConfigOptions"]).SamConfigOptions(
        points_per_side=3, points_per_batch=4, pred_iou_threshold=-1.0, stability_threshold=0.0
    )
}


def test_sam_from_a_local_folder_paints_higher_scores_over_lower(tiny_sam):
    sam = build_segmenter("sam", SegmenterOptions(weights=str(tiny_sam), settings=LAX_SAM))
    image = rectangles_image()
    masks, scores = sam.masks(image)
    assert masks.shape[1:] == (H, W) and len(masks) == len(scores) > 0
    seg = sam.segment(image)
    seg.check((H, W), {0, 1}, "test")
    covered = masks.any(0)
    # every covered pixel carries the highest score among the masks covering it; the others are background
    best = np.where(masks, scores[:, None, None], -np.inf).max(0)
    np.testing.assert_allclose(seg.confidence[covered], best[covered], atol=1e-6)
    assert (seg.instance[~covered] == 0).all() and (seg.semantic[~covered] == 0).all()
    assert (seg.semantic[covered] == 1).all() and (seg.instance[covered] > 0).all()
    ids = np.unique(seg.instance[covered])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))  # compact ids 1..K


@pytest.fixture(scope="module")
def tiny_mask2former(tmp_path_factory):
    """A randomly initialised Mask2Former (tiny Swin backbone, 8 queries, 4 labels: 2 COCO things, 2 stuff) whose
    no-object logit is pushed down so that queries become segments."""
    torch.manual_seed(0)
    backbone = transformers.SwinConfig(
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        image_size=64,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    labels = {0: "person", 1: "dining table", 2: "wall", 3: "floor-other-merged"}
    cfg = transformers.Mask2FormerConfig(
        backbone_config=backbone,
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=32,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        dim_feedforward=32,
        num_queries=8,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    model = transformers.Mask2FormerForUniversalSegmentation(cfg)
    with torch.no_grad():
        model.class_predictor.bias[-1] = -20.0  # the last logit is "no object"
    folder = tmp_path_factory.mktemp("weights") / "m2f"
    model.save_pretrained(folder)
    transformers.AutoImageProcessor.from_pretrained  # noqa: B018 (the class below is what from_pretrained finds)
    processor_cls = (
        getattr(transformers, "Mask2FormerImageProcessorPil", None) or transformers.Mask2FormerImageProcessor
    )
    processor_cls(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return folder


def test_mask2former_keeps_coco_thing_and_stuff_classes(tiny_mask2former):
    from lift3d.segmenters.mask2former import Mask2FormerOptions

    m2f = build_segmenter(
        "mask2former",
        SegmenterOptions(weights=str(tiny_mask2former), settings={"mask2former": Mask2FormerOptions(0.0, 0.1, 0.0)}),
    )
    assert m2f.classes == [
        SceneClass(0, "background", False),
        SceneClass(1, "person", True),
        SceneClass(2, "dining table", True),
        SceneClass(3, "wall", False),
        SceneClass(4, "floor-other-merged", False),
    ]
    seg = m2f.segment(rectangles_image())
    seg.check((H, W), {0, 1, 2, 3, 4}, "test")
    labelled = seg.semantic > 0
    assert labelled.any()
    thing = np.isin(seg.semantic, [1, 2])
    assert (seg.instance[thing] > 0).all() and (seg.instance[~thing] == 0).all()  # stuff and background: id 0
    for i in np.unique(seg.instance[seg.instance > 0]):  # one class per instance
        assert len(np.unique(seg.semantic[seg.instance == i])) == 1


# ------------------------------------------------------------------------------------------------ predict


def _frames_equal(scene, segmenter):
    for f in scene.frames:
        data = load_frame(scene, f.index)
        ref = segmenter.segment(data.rgb)
        np.testing.assert_array_equal(data.instance, ref.instance)
        np.testing.assert_array_equal(data.semantic, ref.semantic)
        np.testing.assert_allclose(data.confidence, np.round(ref.confidence * 255) / 255, atol=1e-6)


@pytest.mark.parametrize("which", ["sam", "mask2former"])
def test_predict_with_tiny_models_writes_a_scene_that_loads(which, tiny_sam, tiny_mask2former, tmp_path):
    scene_dir = tmp_path / "scene"
    make_mini_scene(scene_dir, num_frames=3)
    before = (scene_dir / "transforms.json").read_bytes()
    weights = tiny_sam if which == "sam" else tiny_mask2former
    from lift3d.segmenters.mask2former import Mask2FormerOptions

    settings = {**LAX_SAM, "mask2former": Mask2FormerOptions(0.0, 0.1, 0.0)}
    segmenter = build_segmenter(which, SegmenterOptions(weights=str(weights), settings=settings))
    seg_dir = predict_scene_segments(scene_dir, segmenter, out=tmp_path / "out", progress=False)
    assert seg_dir == tmp_path / "out" / "segments" / which
    assert (scene_dir / "transforms.json").read_bytes() == before  # the user's scene is untouched
    scene = load_scene(tmp_path / "out")  # every file checked
    assert {c.id for c in segmenter.classes} <= {c.id for c in scene.classes}
    for f in scene.frames:
        assert f.instance_path == seg_dir / "instance" / f"f{f.index}.png"
        data = load_frame(scene, f.index)
        assert data.instance.shape == (MINI_H, MINI_W) and data.instance.dtype == np.int64
        assert data.confidence.dtype == np.float32
    _frames_equal(scene, segmenter)
    record = json.loads((seg_dir / "segmenter.json").read_text())
    assert record["segmenter"] == which and record["frames"] == 3 and record["weights"] == str(weights)


def test_cli_classical_on_rectangles_end_to_end(tmp_path, capsys):
    scene_dir = tmp_path / "scene"
    make_rectangles_scene(scene_dir)
    entrypoint(["segments", "predict", str(scene_dir), "--segmenter", "classical", "--out", str(tmp_path / "out")])
    assert "classical" in capsys.readouterr().out
    scene = load_scene(tmp_path / "out")
    assert [(c.id, c.name, c.thing) for c in scene.classes] == [(0, "background", False), (1, "object", True)]
    for f in scene.frames:
        data = load_frame(scene, f.index)
        _assert_rectangles_recovered(data.instance, data.semantic, shift=f.index)
        np.testing.assert_array_equal(data.confidence, 1.0)
    meta = json.loads((tmp_path / "out" / "transforms.json").read_text())
    assert meta["frames"][0]["instance_file_path"] == "segments/classical/instance/v0.png"
    # in place only with --force; a second run into the same --out needs --force too
    with pytest.raises(SystemExit) as err:
        entrypoint(["segments", "predict", str(scene_dir), "--segmenter", "classical"])
    assert err.value.code == 2 and "--force" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        entrypoint(["segments", "predict", str(scene_dir), "--segmenter", "classical", "--out", str(tmp_path / "out")])
    assert "not empty" in capsys.readouterr().err
    entrypoint(["segments", "predict", str(scene_dir), "--segmenter", "classical", "--force", "--name", "mine"])
    assert load_scene(scene_dir).frames[0].instance_path == scene_dir / "segments/mine/instance/v0.png"


def test_twod_segmenter_wraps_a_saved_network(tmp_path):
    from lift3d.twod.dataset import ClassSpace
    from lift3d.twod.model import TwodModel, save_twod_checkpoint
    from lift3d.twod.network import NETWORK_PRESETS
    from lift3d.twod.spatial_embeddings import ClusteringConfig

    classes = ClassSpace((SceneClass(0, "background", False), SceneClass(1, "object", True)))
    torch.manual_seed(0)
    model = TwodModel(NETWORK_PRESETS["tiny"], classes, 32.0, ClusteringConfig())
    save_twod_checkpoint(tmp_path / "run2d" / "checkpoints" / "step_00000001.pt", model, None, 1)
    seg = build_segmenter("twod", SegmenterOptions(weights=str(tmp_path / "run2d")))
    assert seg.classes == list(classes.classes)
    image = rectangles_image()
    out = seg.segment(image)
    out.check((H, W), {0, 1}, "test")
    ref = model.predict(np.round(image * 255).astype(np.uint8))
    np.testing.assert_array_equal(out.instance, ref.instance)
    np.testing.assert_array_equal(out.semantic, ref.semantic)


# ------------------------------------------------------------------------------------------------ errors


def test_merge_classes_rules():
    scene = [SceneClass(0, "background", False), SceneClass(1, "object", True), SceneClass(7, "lamp", True)]
    seg = [SceneClass(0, "background", False), SceneClass(1, "person", True), SceneClass(3, "wall", False)]
    assert merge_classes(scene, seg, True, "x") == [scene[0], scene[1], seg[2], scene[2]]  # ground truth keeps names
    assert merge_classes(scene, seg, False, "x") == [seg[0], seg[1], seg[2], scene[2]]
    with pytest.raises(SegmenterError, match="class 1 is a thing"):
        merge_classes(scene, [SceneClass(1, "floor", False)], True, "x")


def test_missing_weights_and_missing_package_are_one_line_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(SegmenterWeightsError, match="no such file or folder"):
        build_segmenter("sam", SegmenterOptions(weights=str(tmp_path / "nothing")))
    with pytest.raises(SegmenterWeightsError, match="cannot load the mask2former weights"):
        build_segmenter("mask2former", SegmenterOptions(weights=str(tmp_path)))  # a folder without a model
    with pytest.raises(SegmenterWeightsError, match="needs --weights"):
        build_segmenter("twod")
    with pytest.raises(SegmenterError, match="no such segmenter"):
        build_segmenter("nope")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(SegmenterUnavailableError, match=r"lift3d\[segmenters\]"):
        build_segmenter("sam")
    with pytest.raises(SegmenterUnavailableError, match="detectron2"):
        build_segmenter("detectron2", SegmenterOptions(weights=str(tmp_path)))
    scene_dir = tmp_path / "scene"
    make_mini_scene(scene_dir)
    with pytest.raises(SystemExit) as err:
        entrypoint(["segments", "predict", str(scene_dir), "--segmenter", "mask2former", "--out", str(tmp_path / "o")])
    msg = capsys.readouterr().err.strip()
    assert err.value.code == 2 and len(msg.splitlines()) == 1 and "pip install" in msg
    assert not (tmp_path / "o").exists()
