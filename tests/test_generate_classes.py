"""``--classes binary|families`` (lift3d.generate.classes): class tables by hand, a generated families sequence whose
images, segments and LiDAR share one class space, the kubric backend's analytic room classes against the fast
backend's ray-cast ones, and the binary default unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from lift3d.generate.classes import (
    BINARY_CLASSES,
    FIRST_THING_ID,
    PROCEDURAL_FAMILY_CLASS,
    PROCEDURAL_THING_CLASSES,
    asset_family,
    room_surface_of_rays,
    scene_classes,
    semantic_from_instances,
)
from lift3d.generate.config import LidarConfig, MessyRoomsConfig, VideoConfig
from lift3d.generate.layout import SceneLayout
from lift3d.generate.mesh import AssetSpec
from lift3d.generate.procedural import COMPOUND_TEMPLATES, SHAPE_FAMILIES
from lift3d.generate.segmenter import (
    BINARY_CLASSES as SEGMENTER_BINARY,
)
from lift3d.generate.segmenter import (
    SEGMENTER_PRESETS,
    SegmenterClasses,
    SegmenterNoise,
    confuse_classes,
    simulate_segmenter,
    stuff_fill,
)
from lift3d.generate.textures import CEILING, FLOOR, WALL


def _asset(kind: str, template: str = "") -> AssetSpec:
    return AssetSpec(kind, 0.1, {"template": template} if template else {}, None)


def test_procedural_classes_cover_every_family_once_with_readable_names():
    families = {f for f in SHAPE_FAMILIES if f != "compound"} | {f"compound:{t}" for t in COMPOUND_TEMPLATES}
    assert set(PROCEDURAL_FAMILY_CLASS) == families
    names = [n for n, _ in PROCEDURAL_THING_CLASSES]
    assert len(set(names)) == len(names) and 8 <= len(names) <= 12
    listed = [f for _, fams in PROCEDURAL_THING_CLASSES for f in fams]
    assert len(listed) == len(set(listed))  # no family in two classes


def test_scene_classes_by_hand():
    objects = [_asset("box"), _asset("ellipsoid"), _asset("capsule"), _asset("compound", "mug"), _asset("cylinder")]
    fam = scene_classes("families", "old_room", "procedural", objects)
    # box -> 4 (box), ellipsoid and capsule -> 5 (ball), mug and cylinder -> 6 (cup)
    assert fam.object_class == (0, 4, 5, 5, 6, 6)
    assert fam.stuff_ids == [0, 1, 2] and fam.thing_ids == list(range(4, 4 + len(PROCEDURAL_THING_CLASSES)))
    assert fam.to_json()[:4] == [
        {"id": 0, "name": "floor", "thing": False},
        {"id": 1, "name": "wall", "thing": False},
        {"id": 2, "name": "ceiling", "thing": False},
        {"id": 4, "name": "box", "thing": True},
    ]
    instance = np.array([0, 0, 0, 1, 3, 5])
    surface = np.array([FLOOR, WALL, CEILING, WALL, WALL, WALL])
    assert fam.semantic(instance, surface).tolist() == [0, 1, 2, 4, 5, 6]
    open_fam = scene_classes("families", "open_floor", "procedural", objects)
    assert open_fam.stuff_ids == [0, 3]  # floor and sky, no walls
    assert open_fam.semantic(
        np.array([0, 0, 2]), np.array([FLOOR, FLOOR, FLOOR]), np.array([0, 1, 0], bool)
    ).tolist() == [
        0,
        3,
        5,
    ]
    binary = scene_classes("binary", "old_room", "procedural", objects)
    assert binary.to_json() == BINARY_CLASSES and binary.object_class == (0, 1, 1, 1, 1, 1)
    assert binary.semantic(instance, surface, instance < 0).tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="classes scheme"):
        scene_classes("colours", "old_room", "procedural", objects)


def test_gso_classes_come_from_the_metadata_category(tmp_path):
    metadata = {
        "Boot": 'name: "Boot"\ncategories {\n  first: "Shoe"\n}\n',
        "Robot": 'name: "Robot"\nannotations {\n  key: "category"\n  value: "Toys"\n}\n',
        "Sneaker": 'categories { first: "Shoe" }',
        "Mystery": None,  # no metadata.pbtxt: class "object"
    }
    for name, text in metadata.items():
        (tmp_path / name / "meshes").mkdir(parents=True)
        (tmp_path / name / "meshes" / "model.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\n")
        if text is not None:
            (tmp_path / name / "metadata.pbtxt").write_text(text)
    objects = [
        AssetSpec("gso", 0.1, {"path": str(tmp_path / n), "name": n}, None) for n in ("Sneaker", "Mystery", "Boot")
    ]
    table = scene_classes("families", "old_room", str(tmp_path), objects)
    # categories of the whole folder, sorted: Shoe 4, Toys 5, object 6 (uppercase sorts first)
    assert [c for c in table.to_json() if c["thing"]] == [
        {"id": 4, "name": "Shoe", "thing": True},
        {"id": 5, "name": "Toys", "thing": True},
        {"id": 6, "name": "object", "thing": True},
    ]
    assert table.object_class == (0, 4, 6, 4)


def test_room_surface_of_rays_by_hand():
    lo, hi = np.array([-1.0, -1.0, 0.0]), np.array([1.0, 1.0, 2.0])
    dirs = np.array([[0, 0, -1], [0, 0, 1], [1, 0, 0], [1, 0, -0.4], [1, 0, -2.0], [0, -1, 0.9]], float)
    # (1, 0, -0.4): leaves x at t = 1, z at t = 2.5 -> wall; (1, 0, -2): z at t = 0.5 first -> floor;
    # (0, -1, 0.9): y at t = 1, z at t = 1.11 -> wall
    surface = room_surface_of_rays(np.zeros((6, 3)) + [0, 0, 1], dirs, lo, hi)
    assert surface.tolist() == [FLOOR, CEILING, WALL, WALL, FLOOR, WALL]


# ------------------------------------------------------------------------------------------ a families sequence


@pytest.fixture(scope="module")
def families_dir(tmp_path_factory) -> Path:
    """8 objects, 2 clips of 3 frames at 32 x 32 from a robot's height (walls in view), a LiDAR, detic-real."""
    from lift3d.generate import generate_scene

    cfg = MessyRoomsConfig(
        num_objects=8,
        resolution=32,
        seed=1,
        classes="families",
        segmenter_noise="detic-real",
        trajectory="video",
        lidar=True,
        video=VideoConfig(num_clips=2, frames_per_clip=3),
        lidar_sensor=LidarConfig(beams=16, columns=180),
    )
    return generate_scene(cfg, tmp_path_factory.mktemp("families") / "scene", progress=False)


def _frames(root: Path):
    meta = json.loads((root / "transforms.json").read_text())
    for f in meta["frames"]:
        yield {k: iio.imread(root / f[k]).astype(np.int64) for k in f if k.endswith("file_path") and "depth" not in k}


def test_families_scene_gives_each_object_its_family_class(families_dir):
    meta = json.loads((families_dir / "transforms.json").read_text())
    layout = SceneLayout.from_dict(json.loads((families_dir / "layout.json").read_text()))
    listed = {c["id"]: c for c in meta["classes"]}
    assert [i for i in listed if not listed[i]["thing"]] == [0, 1, 2]  # floor, wall, ceiling
    expected = {o.instance_id: PROCEDURAL_FAMILY_CLASS[asset_family(o.asset)] for o in layout.objects}
    seen_room, seen_objects = set(), set()
    for f in _frames(families_dir):
        gi, gs = f["gt_instance_file_path"], f["gt_semantic_file_path"]
        seen_room |= set(np.unique(gs[gi == 0]).tolist())
        for i in np.unique(gi[gi > 0]).tolist():
            assert np.unique(gs[gi == i]).tolist() == [expected[i]]
            seen_objects.add(i)
    assert seen_room <= {0, 1, 2} and {0, 1} <= seen_room  # the robot's camera sees floor and walls
    by_family: dict = {}
    for o in layout.objects:  # objects of one family share one class id
        by_family.setdefault(asset_family(o.asset), set()).add(expected[o.instance_id])
    assert all(len(ids) == 1 for ids in by_family.values())
    assert len({expected[i] for i in seen_objects}) > 2 and all(expected[i] >= FIRST_THING_ID for i in seen_objects)


def test_families_segments_and_lidar_use_the_same_class_space(families_dir):
    from lift3d.data.sequence import load_sequence, load_sequence_frame

    meta = json.loads((families_dir / "transforms.json").read_text())
    things = {c["id"] for c in meta["classes"] if c["thing"]}
    stuff = {c["id"] for c in meta["classes"] if not c["thing"]}
    for f in _frames(families_dir):
        inst, sem = f["instance_file_path"], f["semantic_file_path"]
        assert set(np.unique(sem[inst > 0]).tolist()) <= things  # segments carry thing classes
        assert set(np.unique(sem[inst == 0]).tolist()) <= stuff  # everything else a stuff class
    layout = SceneLayout.from_dict(json.loads((families_dir / "layout.json").read_text()))
    expected = {o.instance_id: PROCEDURAL_FAMILY_CLASS[asset_family(o.asset)] for o in layout.objects}
    seq = load_sequence(families_dir)
    hit_objects = 0
    for i in range(seq.num_frames):
        scan = load_sequence_frame(seq, i).lidar
        on = scan.instance > 0
        assert set(np.unique(scan.semantic[~on]).tolist()) <= {0, 1, 2}
        assert [expected[int(i)] for i in scan.instance[on]] == scan.semantic[on].tolist()
        hit_objects += int(on.sum())
    assert hit_objects > 0


def test_kubric_room_classes_match_the_fast_backend(families_dir):
    """The kubric backend has instance maps only; its room classes come from the box face each pixel's ray leaves
    through (:func:`room_surface_of_rays`). The fast backend ray-casts the room's triangles: they must agree."""
    layout = SceneLayout.from_dict(json.loads((families_dir / "layout.json").read_text()))
    cfg = MessyRoomsConfig(classes="families")
    from lift3d.generate.classes import layout_classes

    frames = list(_frames(families_dir))
    instance = np.stack([f["gt_instance_file_path"] for f in frames])
    expected = np.stack([f["gt_semantic_file_path"] for f in frames])
    got = semantic_from_instances(layout, layout_classes(layout, cfg), instance)
    # pixel centres on a room edge may fall on either face in float32 ray casting
    assert (got == expected).mean() > 0.995


# ------------------------------------------------------------------------------------------ binary unchanged


def test_binary_scene_keeps_its_two_classes(tiny_scene_dir):
    meta = json.loads((tiny_scene_dir / "transforms.json").read_text())
    assert meta["classes"] == BINARY_CLASSES and meta["generator"]["config"]["classes"] == "binary"
    for f in _frames(tiny_scene_dir):
        np.testing.assert_array_equal(f["gt_semantic_file_path"], (f["gt_instance_file_path"] > 0).astype(np.int64))
        np.testing.assert_array_equal(f["semantic_file_path"], (f["instance_file_path"] > 0).astype(np.int64))


@pytest.mark.parametrize("name", ["detic-like", "detic-real", "heavy"])
def test_binary_table_gives_the_legacy_segments_draw_for_draw(tiny_scene_dir, name):
    """The generator now passes the scene's class table; the binary table must give exactly the masks (and
    consume exactly the draws) of the rule that had no table."""
    noise = SEGMENTER_PRESETS[name]
    for v, f in enumerate(_frames(tiny_scene_dir)):
        gi, gs = f["gt_instance_file_path"], f["gt_semantic_file_path"]
        rng_a, rng_b = np.random.default_rng([7, v]), np.random.default_rng([7, v])
        a = simulate_segmenter(gi, gs, rng_a, noise)
        b = simulate_segmenter(gi, gs, rng_b, noise, SEGMENTER_BINARY)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert rng_a.random() == rng_b.random()


# ------------------------------------------------------------------------------------------ segmenter classes


def test_stuff_fill_by_hand():
    gt = np.array([[0, 0, 5, 5, 1]])  # classes 0, 1 stuff; 5 a thing (a missed object)
    # pixel 2: nearest stuff pixel 1 (distance 1, class 0); pixel 3: nearest pixel 4 (distance 1, class 1)
    assert stuff_fill(gt, SegmenterClasses((5,), (0, 1))).tolist() == [[0, 0, 0, 1, 1]]
    assert stuff_fill(gt, SegmenterClasses((5,), (0,))).tolist() == [[0, 0, 0, 0, 0]]


def test_families_confusion_swaps_thing_classes_and_keeps_the_instance():
    classes = SegmenterClasses((4, 5, 6), (0, 1))
    inst = np.zeros((8, 40), np.uint16)
    sem = np.zeros((8, 40), np.uint8)
    for k in range(20):
        inst[:, 2 * k : 2 * k + 2] = 100 + k
        sem[:, 2 * k : 2 * k + 2] = 5
    before = inst.copy()
    confuse_classes(
        inst, sem, np.full((8, 40), 5), np.random.default_rng(0), SegmenterNoise(class_confusion_prob=1.0), classes
    )
    np.testing.assert_array_equal(inst, before)
    assert set(np.unique(sem).tolist()) == {4, 6}  # never its own class, never stuff; 20 draws hit both


def test_families_release_layout_keeps_the_classes(tmp_path):
    from lift3d.data.loading import load_frame, load_scene
    from lift3d.generate import generate_scene

    cfg = MessyRoomsConfig(  # low cameras on an open floor see the sky (class 3)
        num_objects=5, num_views=3, resolution=32, seed=2, classes="families", environment="open_floor"
    )
    cfg.camera_elevation_deg = (2.0, 4.0)
    generate_scene(cfg, tmp_path / "scene", progress=False, release_dir=tmp_path / "release")
    ours, release = load_scene(tmp_path / "scene"), load_scene(tmp_path / "release")
    assert release.classes == ours.classes and release.stuff_ids == [0, 3]  # open floor: floor and sky
    for i in range(3):
        frame = load_frame(release, i)
        sky = frame.semantic == 3
        np.testing.assert_array_equal(frame.semantic, load_frame(ours, i).semantic)
        assert sky.any() and (frame.confidence[np.isin(frame.semantic, [0, 3])] == 1.0).all()


def test_kubric_families_render_matches_the_fast_backend():
    from lift3d.generate import make_layout, render
    from lift3d.generate.fast_backend import render_views
    from lift3d.generate.kubric_backend import missing_dependencies

    if missing_dependencies():
        pytest.skip("optional extra lift3d[generate] (kubric, bpy 4.2) not installed")
    cfg = MessyRoomsConfig(num_objects=5, num_views=2, resolution=32, seed=0, backend="kubric", classes="families")
    cfg.camera_elevation_deg = (8.0, 12.0)  # low cameras: walls in view
    cfg.kubric.samples_per_pixel = 4
    layout = make_layout(cfg)
    kub, fast = render(layout, cfg), render_views(layout, cfg)
    assert {0, 1} <= set(np.unique(kub.semantic).tolist()) and (kub.semantic[kub.instance > 0] >= FIRST_THING_ID).all()
    same = kub.instance == fast.instance
    assert (kub.semantic[same] == fast.semantic[same]).mean() > 0.995
