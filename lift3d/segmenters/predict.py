"""``lift3d segments predict DATA --segmenter NAME``: run a 2D segmenter on every view of a scene and make its
masks the scene's 2D input.

Every frame's image (and depth, for segmenters that use it) is segmented (:meth:`Segmenter.segment`); the
instance, semantic and confidence maps are written as per-view id maps into a temporary folder and brought into
the scene by :func:`lift3d.data.segments_import.import_segments` (``segments/<name>/{instance,semantic,
confidence}/<stem>.png`` + ``transforms.json`` re-pointed), so ``lift3d fit`` lifts them like any segmenter's.

The user's files are never overwritten without ``force``: with ``out`` the scene is copied there and only the copy
changes (the copy, segmenting and import happen in a temporary folder renamed into place at the end; an existing
non-empty ``out`` needs ``force``); without ``out``, ``DATA`` itself is changed only with ``force``, and only after
every view has been segmented. ``segments/<name>/segmenter.json`` records which segmenter made the masks.

Classes: the scene's ``classes`` become the union of its classes and the segmenter's (:func:`merge_classes`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from lift3d.data.images import read_depth, read_rgb, write_id_map
from lift3d.data.loading import load_scene
from lift3d.data.scene import Scene, SceneClass, SceneFormatError
from lift3d.data.segments_import import bootstrap_transforms_json, import_segments
from lift3d.io import atomic_folder, atomic_write_bytes, atomic_write_json
from lift3d.segmenters.base import Segmenter, SegmenterError

__all__ = ["predict_scene_segments", "check_targets", "merge_classes", "write_segmenter_maps"]


def check_targets(data: Path, out: Optional[Path], force: bool) -> Path:
    """The ``transforms.json`` of ``data`` after checking that the command may write where it would (see the module
    docstring); raises :class:`SegmenterError` naming the fix. Cheap: run it before loading any weights."""
    data = Path(data)
    json_path = data / "transforms.json"
    if not json_path.is_file() and not _can_bootstrap(data):
        raise SegmenterError(
            f"{json_path}: not found; `segments predict` writes into a scene folder holding transforms.json "
            "(a nerfstudio / lift3d scene) or a COLMAP project (sparse/0 + images, given a transforms.json first)."
        )
    if out is None and not force:
        raise SegmenterError(
            f"{json_path} would be changed in place (its frames would point at the new segments). Pass --out DATA2 to "
            f"write a copy of the scene with the masks, or --force to change {data}."
        )
    if out is not None:
        out = Path(out)
        if out.resolve() == data.resolve():
            raise SegmenterError(f"--out {out} is the scene itself; leave out --out and pass --force instead.")
        if out.resolve().is_relative_to(data.resolve()):
            raise SegmenterError(f"--out {out} lies inside the scene {data}; choose a folder outside it.")
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
            raise SegmenterError(f"{out} already exists and is not empty; choose another --out or pass --force.")
    return json_path


def merge_classes(
    scene_classes: list[SceneClass], segmenter_classes: list[SceneClass], keep_scene_meaning: bool, where: str
) -> list[SceneClass]:
    """The class list of the scene once the segmenter's masks are its 2D input, sorted by id.

    Every segmenter class is in it. A scene class with an id the segmenter does not use is kept. When both have an
    id: with ``keep_scene_meaning`` (the scene has ground truth, whose semantic maps use the scene's ids) the scene's
    entry is kept if the thing flags agree and a disagreement is a :class:`SegmenterError`; otherwise the
    segmenter's entry replaces the scene's (its old classes described only the segments being replaced)."""
    merged = {c.id: c for c in scene_classes}
    for c in segmenter_classes:
        old = merged.get(c.id)
        if old is not None and keep_scene_meaning:
            if old.thing != c.thing:
                raise SegmenterError(
                    f"{where}: class {c.id} is {'a thing' if old.thing else 'stuff'} ({old.name!r}) in the scene's "
                    f"ground truth but {'a thing' if c.thing else 'stuff'} ({c.name!r}) for the segmenter; write to a "
                    "scene without ground truth or with matching classes."
                )
            continue
        merged[c.id] = c
    return [merged[k] for k in sorted(merged)]


def write_segmenter_maps(segmenter: Segmenter, scene: Scene, folder: Path, progress: bool = True) -> int:
    """Segment every frame of ``scene`` and write ``folder/{instance,semantic,confidence}/<stem>.{png,npy}``
    (16-bit instance and class PNGs, float32 confidence ``.npy``); returns the number of instances over all frames.
    Every map is checked (:meth:`Segmentation.check`) before it is written."""
    for sub in ("instance", "semantic", "confidence"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    class_ids = {c.id for c in segmenter.classes}
    total = 0
    json_path = scene.root / "transforms.json"
    frames = tqdm(scene.frames, desc=f"segments predict ({segmenter.name})", unit="view", disable=not progress)
    for f in frames:
        where = f"{json_path}, frame {f.index} ({f.name})"
        image = read_rgb(f.image_path)
        if image.shape[:2] != (f.height, f.width):
            raise SceneFormatError(
                f"{where}: {f.image_path.name} is {image.shape[1]}x{image.shape[0]} but the frame says "
                f"{f.width}x{f.height} (w x h); fix 'w'/'h' in transforms.json."
            )
        depth = None
        if segmenter.uses_depth and f.depth_path is not None:
            depth = read_depth(f.depth_path, scene.depth_unit_scale_factor)
            depth = depth if depth.shape == image.shape[:2] else None
        seg = segmenter.segment(image, depth)
        seg.check((f.height, f.width), class_ids, where)
        if seg.instance.max(initial=0) > 65535:
            raise SegmenterError(f"{where}: {int(seg.instance.max())} instance ids do not fit 16-bit maps.")
        stem = Path(f.name).stem
        write_id_map(folder / "instance" / f"{stem}.png", seg.instance, bits=16)
        write_id_map(folder / "semantic" / f"{stem}.png", seg.semantic, bits=16)
        np.save(folder / "confidence" / f"{stem}.npy", seg.confidence)
        total += len(np.unique(seg.instance[seg.instance > 0]))
    return total


def _write_classes(json_path: Path, classes: list[SceneClass]) -> None:
    """Rewrite ``transforms.json``'s ``classes`` (atomically) when they differ from ``classes``."""
    meta = json.loads(json_path.read_text())
    listed = [{"id": c.id, "name": c.name, "thing": c.thing} for c in classes]
    if meta.get("classes") != listed:
        meta["classes"] = listed
        atomic_write_bytes(json_path, json.dumps(meta, indent=2).encode())


def _can_bootstrap(data: Path) -> bool:
    """True when ``data`` has no ``transforms.json`` but another reader (a COLMAP project) loads it without
    per-frame conventions, so :func:`bootstrap_transforms_json` can write one."""
    from lift3d.data.readers import find_reader

    if not data.is_dir():
        return False
    reader = find_reader(data)
    return reader is not None and reader.name != "transforms_json" and reader.name != "messy_rooms_release"


def _predict_into(scene_dir: Path, segmenter: Segmenter, name: str, progress: bool) -> Path:
    """Segment the scene at ``scene_dir`` and import the maps into it; returns ``segments/<name>``. A COLMAP
    project first gets its ``transforms.json`` (:func:`bootstrap_transforms_json`)."""
    json_path = scene_dir / "transforms.json"
    bootstrap_transforms_json(scene_dir)
    scene = load_scene(scene_dir, check_files=False)
    missing = [f for f in scene.frames if not f.image_path.is_file()]
    if missing:
        f = missing[0]
        raise SceneFormatError(
            f"{json_path}, frame {f.index} ({f.name}): image {f.image_path} not found ({len(missing)} frame(s) "
            "without an image); fix the file_path or remove the frame."
        )
    classes = merge_classes(scene.classes, segmenter.classes, scene.has_ground_truth, str(json_path))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segments-predict-") as tmp:
        count = write_segmenter_maps(segmenter, scene, Path(tmp), progress=progress)
        _write_classes(json_path, classes)
        seg_dir = import_segments(scene_dir, Path(tmp), "id-maps", name=name, overwrite=True)
    record = {
        **segmenter.describe(),
        "classes": [{"id": c.id, "name": c.name, "thing": c.thing} for c in segmenter.classes],
        "frames": len(scene.frames),
        "instances": count,
        "seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write_json(seg_dir / "segmenter.json", record)
    return seg_dir


def predict_scene_segments(
    data: Path,
    segmenter: Segmenter,
    out: Optional[Path] = None,
    name: Optional[str] = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``segmenter``'s masks of every view of the scene ``data`` (or of a copy at ``out``) as
    ``segments/<name>/`` (default name: the segmenter's) and point its ``transforms.json`` at them; returns the
    ``segments/<name>`` folder written (in ``out`` when given). See the module docstring for what is overwritten."""
    data = Path(data)
    name = name or segmenter.name
    if not name or "/" in name or name.startswith("."):
        raise SegmenterError(f"--name {name!r} must be a plain folder name.")
    check_targets(data, out, force)
    load_scene(data, check_files=False)  # a malformed scene fails here, before anything is copied
    if out is None:
        return _predict_into(data, segmenter, name, progress)
    out = Path(out)
    with atomic_folder(out, overwrite=True) as tmp:
        shutil.copytree(data, tmp, dirs_exist_ok=True, symlinks=False)
        seg_dir = _predict_into(tmp, segmenter, name, progress)
    return out / seg_dir.relative_to(tmp)
