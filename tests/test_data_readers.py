"""lift3d.data.readers: one registry of scene readers behind load_scene. A new layout is one reader + one
registration; a folder no reader knows gets an error listing the readers; scene.py imports no reader; the Messy
Rooms reader's conventions are a typed FrameAdapter, not a callable hidden in extras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_mini_scene

from lift3d.data.loading import load_frame, load_scene
from lift3d.data.readers import (
    SceneReader,
    find_reader,
    get_reader,
    register_reader,
    registered_readers,
    unregister_reader,
)
from lift3d.data.readers.messy_rooms import ReleaseFrameAdapter
from lift3d.data.scene import Frame, FrameAdapter, Scene, SceneClass, SceneFormatError
from lift3d.data.writers.messy_rooms import write_release


def _load_toy(path: Path, check_files: bool = True) -> Scene:
    """A one-frame scene whose focal length is the number in ``toy.txt``."""
    fx = float((path / "toy.txt").read_text())
    frame = Frame(
        index=0,
        name="a.png",
        image_path=path / "a.png",
        instance_path=path / "i.png",
        semantic_path=path / "s.png",
        confidence_path=None,
        depth_path=None,
        gt_instance_path=None,
        gt_semantic_path=None,
        camera_to_world=np.eye(4),
        fx=fx,
        fy=fx,
        cx=1.0,
        cy=1.0,
        width=2,
        height=2,
    )
    return Scene(
        root=path,
        frames=[frame],
        classes=[SceneClass(0, "bg", False), SceneClass(1, "thing", True)],
        train_indices=[0],
        test_indices=[],
        extras={"format": "toy", "check_files": check_files},
    )


@pytest.fixture()
def toy_reader():
    reader = register_reader(
        SceneReader(
            name="toy",
            description="a folder holding toy.txt",
            can_read=lambda p: (p / "toy.txt").is_file(),
            load=_load_toy,
        )
    )
    yield reader
    unregister_reader("toy")


def test_builtin_readers_are_registered_in_order():
    assert [r.name for r in registered_readers()][:2] == ["transforms_json", "messy_rooms_release"]


def test_a_registered_reader_loads_through_load_scene(tmp_path, toy_reader):
    (tmp_path / "toy.txt").write_text("7.5")
    assert find_reader(tmp_path) is toy_reader
    scene = load_scene(tmp_path, check_files=False)
    assert scene.root == tmp_path and scene.frames[0].fx == 7.5
    assert scene.extras == {"format": "toy", "check_files": False}
    assert registered_readers()[-1] is toy_reader


def test_shared_options_apply_to_any_reader(tmp_path, toy_reader):
    """downscale is applied by load_scene for every reader; skip_bad_frames needs a reader that takes it."""
    (tmp_path / "toy.txt").write_text("8.0")
    scene = load_scene(tmp_path, check_files=False, downscale=2)
    f = scene.frames[0]
    assert (f.width, f.height, f.fx, f.cx, f.file_size) == (1, 1, 4.0, 0.5, (2, 2))
    with pytest.raises(SceneFormatError, match="'toy' reader cannot skip bad frames"):
        load_scene(tmp_path, skip_bad_frames=True)
    assert [r.name for r in registered_readers()][:4] == [
        "transforms_json",
        "messy_rooms_release",
        "colmap",
        "panoptic_lifting",
    ]


def test_reader_names_are_unique(toy_reader):
    with pytest.raises(ValueError, match="'toy' is already registered"):
        register_reader(SceneReader("toy", "again", lambda p: False, _load_toy))
    assert register_reader(SceneReader("toy", "again", lambda p: False, _load_toy), replace=True).description == "again"
    with pytest.raises(KeyError, match="no scene reader named 'nope'.*transforms_json"):
        get_reader("nope")


def test_unknown_folder_error_lists_the_registered_readers(tmp_path):
    (tmp_path / "notes.md").write_text("not a scene")
    with pytest.raises(SceneFormatError) as err:
        load_scene(tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'transforms.json'}: not found.")
    assert "transforms_json: a folder holding a nerfstudio transforms.json" in msg
    assert "messy_rooms_release: a released Messy Rooms folder" in msg


def test_forcing_a_reader_by_name(tmp_path):
    make_mini_scene(tmp_path / "mini")
    assert len(load_scene(tmp_path / "mini", reader="transforms_json").frames) == 3
    with pytest.raises(SceneFormatError, match=r"mini: the scene reader 'messy_rooms_release' expects a released"):
        load_scene(tmp_path / "mini", reader="messy_rooms_release")


def test_scene_module_imports_no_reader():
    code = "import sys, lift3d.data.scene; print(sorted(m for m in sys.modules if m.startswith('lift3d.data.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["lift3d.data.images", "lift3d.data.scene"]


def test_release_conventions_are_a_typed_frame_adapter(tmp_path):
    V, H, W = 2, 3, 4
    ids = np.zeros((V, H, W), np.int64)
    ids[:, 0, :2] = 5
    sem = (ids > 0).astype(np.int64)
    conf = np.full((V, H, W), 0.25, np.float32)
    out = write_release(
        tmp_path / "rel",
        rgb=np.zeros((V, H, W, 3), np.uint8),
        depth=np.full((V, H, W), 2.0),
        gt_instance=ids,
        gt_semantic=sem,
        instance=ids,
        semantic=sem,
        confidence=conf,
        camera_to_world=np.stack([np.eye(4)] * V),
        fx=4.0,
        fy=4.0,
        cx=2.0,
        cy=1.5,
        depth_kind="z",
    )
    scene = load_scene(out)
    assert isinstance(scene.frame_adapter, ReleaseFrameAdapter) and isinstance(scene.frame_adapter, FrameAdapter)
    assert not any(callable(v) for v in scene.extras.values())
    json.dumps(scene.extras)  # plain metadata only
    d = load_frame(scene, 0)
    # the reference's rule: confidence 1 where the segmenter's class is background, the stored value elsewhere
    np.testing.assert_array_equal(d.confidence, np.where(sem[0] == 0, 1.0, 0.25).astype(np.float32))
    np.testing.assert_allclose(d.depth, 2.0)  # stored as z: unchanged
