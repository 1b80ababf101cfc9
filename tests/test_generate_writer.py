"""generate_scene end to end: the written folder follows docs/scene-format.md and its 16-bit PNGs round-trip."""

import json
import stat

import imageio.v3 as iio
import numpy as np
import pytest

from lift3d.generate import KubricBackendNotInstalled, MessyRoomsConfig, generate_scene, run_segmenter
from lift3d.generate.fast_backend import render_views
from lift3d.generate.layout import SceneLayout
from lift3d.generate.writer import depth_to_png, split_frames

FRAME_KEYS = {
    "file_path",
    "transform_matrix",
    "instance_file_path",
    "semantic_file_path",
    "confidence_file_path",
    "depth_file_path",
    "gt_instance_file_path",
    "gt_semantic_file_path",
}


def tiny(**kw) -> MessyRoomsConfig:
    base = dict(num_objects=5, num_views=5, resolution=48, seed=0)
    base.update(kw)
    return MessyRoomsConfig(**base)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    cfg = tiny()
    out = generate_scene(cfg, tmp_path_factory.mktemp("scenes") / "demo", progress=False)
    return cfg, out


def test_transforms_json_has_the_documented_keys(written):
    cfg, out = written
    meta = json.loads((out / "transforms.json").read_text())
    for key in (
        "fl_x",
        "fl_y",
        "cx",
        "cy",
        "w",
        "h",
        "depth_unit_scale_factor",
        "classes",
        "aabb",
        "frames",
        "train_filenames",
        "test_filenames",
    ):
        assert key in meta
    assert meta["w"] == meta["h"] == 48 and meta["cx"] == meta["cy"] == 24.0
    assert meta["fl_x"] == pytest.approx(cfg.focal_length_px)
    assert meta["depth_unit_scale_factor"] == 0.001
    assert meta["classes"] == [
        {"id": 0, "name": "background", "thing": False},
        {"id": 1, "name": "object", "thing": True},
    ]
    assert len(meta["frames"]) == 5
    for frame in meta["frames"]:
        assert set(frame) == FRAME_KEYS
        for key in FRAME_KEYS - {"transform_matrix"}:
            assert (out / frame[key]).is_file()
        assert np.asarray(frame["transform_matrix"]).shape == (4, 4)
    # the last round(0.2 * 5) = 1 frame is the test split
    assert meta["train_filenames"] == [f["file_path"] for f in meta["frames"][:4]]
    assert meta["test_filenames"] == [meta["frames"][4]["file_path"]]
    # the room holds every camera; the field's aabb holds every object (and the floor under them)
    lo, hi = np.asarray(meta["room_aabb"])
    cams = np.array([f["transform_matrix"] for f in meta["frames"]])[:, :3, 3]
    assert (cams > lo).all() and (cams < hi).all()
    layout = SceneLayout.from_dict(json.loads((out / "layout.json").read_text()))
    box_lo, box_hi = np.asarray(meta["aabb"])
    assert box_lo[2] < 0.0 < box_hi[2]
    for obj in layout.objects:
        assert (obj.translation > box_lo).all() and (obj.translation < box_hi).all()
    assert not list(out.parent.glob(".demo.tmp-*"))  # nothing half-written left behind
    assert [p.name for p in out.parent.iterdir()] == ["demo"]  # no hidden temporary or moved-aside folder either


def test_pngs_round_trip_and_match_the_rendered_arrays(written):
    cfg, out = written
    layout = SceneLayout.from_dict(json.loads((out / "layout.json").read_text()))
    views = render_views(layout, cfg)
    segments = run_segmenter(views, cfg)
    meta = json.loads((out / "transforms.json").read_text())
    for v, frame in enumerate(meta["frames"]):
        depth = iio.imread(out / frame["depth_file_path"])
        gt = iio.imread(out / frame["gt_instance_file_path"])
        inst = iio.imread(out / frame["instance_file_path"])
        conf = iio.imread(out / frame["confidence_file_path"])
        assert depth.dtype == np.uint16 and gt.dtype == np.uint16 and inst.dtype == np.uint16
        assert iio.imread(out / frame["semantic_file_path"]).dtype == np.uint8
        assert iio.imread(out / frame["gt_semantic_file_path"]).dtype == np.uint8
        assert iio.imread(out / frame["file_path"]).shape == (48, 48, 3)
        np.testing.assert_allclose(depth * 0.001, views.depth[v], atol=0.0005 + 1e-6)
        np.testing.assert_array_equal(gt, views.instance[v])
        np.testing.assert_array_equal(inst, segments.instance[v])
        np.testing.assert_allclose(conf / 255.0, segments.confidence[v], atol=0.5 / 255 + 1e-6)


def test_depth_png_encoding_by_hand(tmp_path):
    depth = np.array([[0.0005, 1.2344], [65.535, 70.0]])
    np.testing.assert_array_equal(depth_to_png(depth), [[0, 1234], [65535, 0]])  # too far -> 0 = unknown
    big = np.array([[65535, 1], [40000, 123]], np.uint16)
    iio.imwrite(tmp_path / "d.png", big)
    back = iio.imread(tmp_path / "d.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, big)
    assert split_frames(40, 0.2) == 32 and split_frames(4, 0.0) == 4


def test_existing_output_is_protected_and_kubric_is_reported(written, tmp_path, monkeypatch):
    import lift3d.generate.kubric_backend as kb_backend

    cfg, out = written
    with pytest.raises(FileExistsError, match="already exists"):
        generate_scene(cfg, out, progress=False)
    monkeypatch.setattr(kb_backend, "missing_dependencies", lambda: ["kubric"])  # as without the extra
    with pytest.raises(KubricBackendNotInstalled, match="backend='fast'"):
        generate_scene(tiny(backend="kubric"), tmp_path / "k", progress=False)
    assert not (tmp_path / "k").exists()


def test_the_scene_folder_gets_the_permissions_of_a_plain_mkdir(written, tmp_path):
    """Atomic writing must not leave the scene readable by its owner only (``tempfile.mkdtemp`` makes 0o700)."""
    _, out = written
    plain = tmp_path / "plain"
    plain.mkdir()
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE((out / "images").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_an_existing_empty_folder_is_filled(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    generate_scene(tiny(num_views=2), out, progress=False)
    assert (out / "transforms.json").is_file()


def test_overwrite_replaces_the_scene(tmp_path):
    out = tmp_path / "s"
    generate_scene(tiny(num_views=2, seed=3), out, progress=False)
    generate_scene(tiny(num_views=3, seed=3), out, progress=False, overwrite=True)
    assert len(json.loads((out / "transforms.json").read_text())["frames"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
