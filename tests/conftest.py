"""Shared fixtures: a tiny generated Messy Rooms scene and a hand-written mini scene whose every value is known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytest

from lift3d.data.images import write_id_map, write_rgb


@pytest.fixture(scope="session")
def tiny_scene_dir(tmp_path_factory) -> Path:
    """A generated scene: 4 objects, 8 views of 32x32 (6 train + 2 test), with depth and ground truth."""
    from lift3d.generate import MessyRoomsConfig, generate_scene

    out = tmp_path_factory.mktemp("generated") / "tiny"
    return generate_scene(MessyRoomsConfig(num_objects=4, num_views=8, resolution=32, seed=0), out, progress=False)


@pytest.fixture(scope="session")
def tiny_scene(tiny_scene_dir):
    from lift3d.data.loading import load_scene

    return load_scene(tiny_scene_dir)


# ---------------------------------------------------------------------------------------------- mini scene
MINI_W, MINI_H = 6, 4
"""Mini-scene images are 6 wide and 4 high (non-square, so a swapped w/h shows)."""
MINI_INTRINSICS = dict(fl_x=4.0, fl_y=5.0, cx=2.5, cy=1.5)
"""cx, cy sit on the centre of pixel (2, 1), so that pixel's ray is the optical axis."""


def look_at(position, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """[4, 4] camera-to-world (OpenGL axes: the camera looks down its -z) at ``position`` looking at ``target``."""
    position, target, up = (np.asarray(a, dtype=np.float64) for a in (position, target, up))
    z = position - target
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, position
    return c2w


def mini_instance(i: int) -> np.ndarray:
    """Instance ids of frame ``i`` [H, W]: ids > 255 so 16-bit storage matters; pixel (u, v) -> 300 + 10 i + u + v*W
    on the right half, 0 elsewhere."""
    v, u = np.mgrid[0:MINI_H, 0:MINI_W]
    return np.where(u >= MINI_W // 2, 300 + 10 * i + u + v * MINI_W, 0).astype(np.int64)


def mini_semantic(i: int) -> np.ndarray:
    return (mini_instance(i) > 0).astype(np.int64)


def mini_depth_mm(i: int) -> np.ndarray:
    """Depth in millimetres [H, W]: 1000 + 100 i + 10 v + u."""
    v, u = np.mgrid[0:MINI_H, 0:MINI_W]
    return (1000 + 100 * i + 10 * v + u).astype(np.int64)


def mini_confidence_u8(i: int) -> np.ndarray:
    v, u = np.mgrid[0:MINI_H, 0:MINI_W]
    return ((u + v * MINI_W) * 10 + i).astype(np.int64)


def mini_rgb(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, size=(MINI_H, MINI_W, 3)).astype(np.uint8)


def write_meta(root: Path, meta: dict) -> Path:
    path = Path(root) / "transforms.json"
    path.write_text(json.dumps(meta))
    return path


def make_mini_scene(
    root: Path,
    num_frames: int = 3,
    depth: bool = True,
    confidence: bool = True,
    poses: Optional[Sequence[np.ndarray]] = None,
    split: bool = True,
) -> dict:
    """Write a valid mini scene into ``root`` and return its ``transforms.json`` dict.

    Frame i: camera at (i, 0, 3) looking down world -z (identity rotation) unless ``poses`` is given; files
    ``images/f{i}.png``, ``inst/f{i}.png`` (16-bit), ``sem/f{i}.png`` (8-bit), ``conf/f{i}.png`` (8-bit),
    ``depth/f{i}.png`` (16-bit mm). Split: the last frame is the test frame.
    """
    root = Path(root)
    frames = []
    for i in range(num_frames):
        write_rgb(root / f"images/f{i}.png", mini_rgb(i))
        write_id_map(root / f"inst/f{i}.png", mini_instance(i), bits=16)
        write_id_map(root / f"sem/f{i}.png", mini_semantic(i), bits=8)
        c2w = np.eye(4)
        c2w[:3, 3] = [i, 0.0, 3.0]
        if poses is not None:
            c2w = np.asarray(poses[i], dtype=np.float64)
        fr = {
            "file_path": f"images/f{i}.png",
            "transform_matrix": c2w.tolist(),
            "instance_file_path": f"inst/f{i}.png",
            "semantic_file_path": f"sem/f{i}.png",
        }
        if confidence:
            write_id_map(root / f"conf/f{i}.png", mini_confidence_u8(i), bits=8)
            fr["confidence_file_path"] = f"conf/f{i}.png"
        if depth:
            write_id_map(root / f"depth/f{i}.png", mini_depth_mm(i), bits=16)
            fr["depth_file_path"] = f"depth/f{i}.png"
        frames.append(fr)
    meta = {
        **MINI_INTRINSICS,
        "w": MINI_W,
        "h": MINI_H,
        "classes": [{"id": 0, "name": "background", "thing": False}, {"id": 1, "name": "object", "thing": True}],
        "frames": frames,
    }
    if split:
        meta["train_filenames"] = [f["file_path"] for f in frames[:-1]]
        meta["test_filenames"] = [frames[-1]["file_path"]]
    write_meta(root, meta)
    return meta


# ---------------------------------------------------------------------------------------------- a fitted run
FITTED_RUN_OVERRIDES = [
    "optim.iterations=300",
    "losses.semantic_start=30",
    "losses.instance_start=80",
    "losses.segment_consistency_start=100000",
    "cluster_views=4",
]
"""A shortened cpu-small schedule: enough for separate objects on the scene of :func:`fitted_run`."""


@pytest.fixture(scope="session")
def fitted_run(tmp_path_factory) -> tuple[Path, Path]:
    """(scene_dir, run_dir): a generated scene (4 objects, 10 views of 48x48, clean but view-inconsistent 2D labels)
    fitted and clustered with :data:`FITTED_RUN_OVERRIDES` (about a minute on 2 cores, once per session; shared
    by the export and viewer tests, which must not modify it: copy it first)."""
    from lift3d.config_io import apply_overrides
    from lift3d.generate import MessyRoomsConfig, generate_scene
    from lift3d.pipeline import fit_scene
    from lift3d.presets import get_preset

    root = tmp_path_factory.mktemp("fitted")
    scene = generate_scene(
        MessyRoomsConfig(num_objects=4, num_views=10, resolution=48, segmenter_noise="clean", seed=0),
        root / "scene",
        progress=False,
    )
    cfg = apply_overrides(get_preset("cpu-small"), FITTED_RUN_OVERRIDES)
    fit_scene(scene, root / "run", cfg, preset="cpu-small", progress=False, log=lambda *_: None)
    return Path(scene), root / "run"


def gt_object_surfaces(scene_dir: Path, samples: int = 4000) -> dict[int, np.ndarray]:
    """Ground-truth instance id -> [samples, 3] points spread evenly over that object's surface (world frame), from
    the generator's layout.json."""
    import trimesh

    from lift3d.generate.layout import SceneLayout

    layout = SceneLayout.from_dict(json.loads((Path(scene_dir) / "layout.json").read_text()))
    out = {}
    for o in layout.objects:
        mesh = trimesh.Trimesh(o.world_vertices(), o.mesh().triangles, process=False)
        out[o.instance_id] = np.asarray(trimesh.sample.sample_surface_even(mesh, samples, seed=0)[0])
    return out
