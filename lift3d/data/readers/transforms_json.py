"""Reader of the lift3d scene format: a nerfstudio ``transforms.json`` extended with 2D segmenter outputs.

See ``docs/scene-format.md`` for the specification. :func:`load_transforms_json` reads and validates a scene
*before* any work starts: every problem is reported with the file, the frame and what is wrong.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from lift3d.data.readers.registry import SceneReader
from lift3d.data.scene import (
    Frame,
    Scene,
    SceneClass,
    SceneFormatError,
    check_camera_to_world,
    check_frame_files,
    check_frame_ids,
)

__all__ = ["READER", "can_read", "load_transforms_json"]

DEFAULT_DEPTH_UNIT = 0.001
"""Metres per unit of a 16-bit depth PNG when ``depth_unit_scale_factor`` is not given (millimetres)."""
TEST_EVERY = 8
"""Without split lists, every 8th frame (7, 15, 23, ...) is a test frame (nerfstudio's habit)."""
POSITIVE_INTRINSICS = ("fl_x", "fl_y", "w", "h")
"""Intrinsics that must be > 0."""


def can_read(path: Path) -> bool:
    """True for a folder holding ``transforms.json``, or for a file (read as the ``transforms.json``)."""
    path = Path(path)
    return path.is_file() or (path.is_dir() and (path / "transforms.json").exists())


def _intrinsic(meta: dict, frame: dict, key: str, where: str) -> float:
    value = frame.get(key, meta.get(key))
    if value is None:
        raise SceneFormatError(f"{where}: missing intrinsic '{key}' (give it at the top level or per frame).")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SceneFormatError(f"{where}: intrinsic '{key}' is not a number: {value!r}.") from None
    if not math.isfinite(value):
        raise SceneFormatError(f"{where}: intrinsic '{key}' is not finite: {value!r}.")
    if key in POSITIVE_INTRINSICS and value <= 0:
        raise SceneFormatError(
            f"{where}: intrinsic '{key}' must be positive, got {value!r} (focal lengths in pixels, image size in "
            "pixels); a focal length of 0 gives NaN rays and a negative one mirrors the image."
        )
    if key in ("w", "h") and value != int(value):
        raise SceneFormatError(f"{where}: intrinsic '{key}' must be a whole number of pixels, got {value!r}.")
    return value


def _parse_classes(meta: dict, path: Path) -> list[SceneClass]:
    raw = meta.get("classes")
    if raw is None:
        # A scene without classes: background (stuff) + one thing class, as Messy Rooms.
        return [SceneClass(0, "background", False), SceneClass(1, "object", True)]
    classes = []
    for i, c in enumerate(raw):
        ok = (
            isinstance(c, dict)
            and isinstance(c.get("id"), int)
            and not isinstance(c.get("id"), bool)
            and isinstance(c.get("thing"), bool)
        )
        if not ok:
            raise SceneFormatError(
                f"{path}: classes[{i}] must be {{'id': int, 'name': str, 'thing': true|false}} with a JSON integer "
                f'id and a JSON boolean thing (not a string: "false" would read as true), got {c!r}.'
            )
        classes.append(SceneClass(c["id"], str(c.get("name", f"class_{c['id']}")), c["thing"]))
    ids = [c.id for c in classes]
    if len(set(ids)) != len(ids):
        raise SceneFormatError(f"{path}: duplicate class ids in 'classes': {ids}.")
    if min(ids) < 0:
        raise SceneFormatError(f"{path}: class ids must be >= 0, got {ids}.")
    if not any(c.thing for c in classes):
        raise SceneFormatError(f'{path}: no class has "thing": true; lift3d needs at least one thing class.')
    return classes


def _read_meta(path: Path) -> Tuple[Path, dict]:
    """``(json_path, parsed transforms.json)`` of a scene folder or a ``transforms.json`` path."""
    json_path = path / "transforms.json" if path.is_dir() else path
    if not json_path.exists():
        raise SceneFormatError(f"{json_path}: not found. Point lift3d at a scene folder holding transforms.json.")
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as e:
        raise SceneFormatError(f"{json_path}: invalid JSON ({e}).") from None
    frames_raw = meta.get("frames")
    if not isinstance(frames_raw, list) or not frames_raw:
        raise SceneFormatError(f"{json_path}: 'frames' must be a non-empty list.")
    return json_path, meta


def _parse_frame(meta: dict, fr: dict, i: int, json_path: Path) -> Frame:
    """Frame ``i`` of ``transforms.json`` (keys, pose and intrinsics checked; files not yet)."""
    root = json_path.parent
    where = f"{json_path}, frame {i}"
    if "file_path" not in fr:
        raise SceneFormatError(f"{where}: missing 'file_path'.")
    where = f"{json_path}, frame {i} ({fr['file_path']})"
    for key in ("transform_matrix", "instance_file_path", "semantic_file_path"):
        if key not in fr:
            raise SceneFormatError(f"{where}: missing '{key}' (see docs/scene-format.md).")
    c2w = check_camera_to_world(fr["transform_matrix"], where)
    w = int(_intrinsic(meta, fr, "w", where))
    h = int(_intrinsic(meta, fr, "h", where))

    def p(key: str) -> Optional[Path]:
        v = fr.get(key)
        return None if v is None else (root / v)

    return Frame(
        index=i,
        name=str(fr["file_path"]),
        image_path=root / fr["file_path"],
        instance_path=p("instance_file_path"),
        semantic_path=p("semantic_file_path"),
        confidence_path=p("confidence_file_path"),
        depth_path=p("depth_file_path"),
        gt_instance_path=p("gt_instance_file_path"),
        gt_semantic_path=p("gt_semantic_file_path"),
        camera_to_world=c2w,
        fx=_intrinsic(meta, fr, "fl_x", where),
        fy=_intrinsic(meta, fr, "fl_y", where),
        cx=_intrinsic(meta, fr, "cx", where),
        cy=_intrinsic(meta, fr, "cy", where),
        width=w,
        height=h,
    )


def _given_for_all(frames: List[Frame], attr: str, key: str, json_path: Path) -> bool:
    """True when every frame has the optional file ``attr``, False when none has; an error when only some have."""
    present = [getattr(f, attr) is not None for f in frames]
    if any(present) and not all(present):
        missing = [f for f, ok in zip(frames, present) if not ok]
        listed = ", ".join(f"frame {f.index} ({f.name})" for f in missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise SceneFormatError(
            f"{json_path}: '{key}' is given for some frames but not for {listed}; give it for all frames or none."
        )
    return all(present)


def _split(meta: dict, frames: List[Frame], json_path: Path) -> Tuple[List[int], List[int]]:
    """``(train, test)`` frame indices: ``train_filenames`` / ``test_filenames`` if given, else every 8th is test."""
    names = {f.name: f.index for f in frames}
    if "train_filenames" in meta or "test_filenames" in meta:

        def idx(key: str) -> list[int]:
            out = []
            for n in meta.get(key, []):
                if n not in names:
                    raise SceneFormatError(f"{json_path}: '{key}' lists {n!r}, which is no frame's file_path.")
                out.append(names[n])
            return out

        test = idx("test_filenames")
        if "train_filenames" in meta:
            train = idx("train_filenames")
        else:
            train = [i for i in range(len(frames)) if i not in set(test)]
    else:
        test = list(range(TEST_EVERY - 1, len(frames), TEST_EVERY))
        train = [i for i in range(len(frames)) if i not in set(test)]
    if not train:
        raise SceneFormatError(f"{json_path}: the train split is empty.")
    both = sorted(set(train) & set(test))
    if both:
        listed = ", ".join(f"frame {i} ({frames[i].name})" for i in both[:4])
        raise SceneFormatError(
            f"{json_path}: {listed} {'is' if len(both) == 1 else 'are'} in both train_filenames and test_filenames; "
            "a test frame must be held out of training. Remove it from one list."
        )
    for key, idx in (("train_filenames", train), ("test_filenames", test)):
        if len(set(idx)) != len(idx):
            dup = sorted({frames[i].name for i in idx if idx.count(i) > 1})
            raise SceneFormatError(f"{json_path}: '{key}' lists {dup[:4]} more than once; list each frame once.")
    return train, test


def _check_unique_names(frames: List[Frame], json_path: Path) -> None:
    """Distinct ``file_path``s (frames are matched by them) and distinct file stems (renders are named by them)."""
    seen: dict[str, Frame] = {}
    for f in frames:
        if f.name in seen:
            raise SceneFormatError(
                f"{json_path}, frame {f.index} ({f.name}): the same file_path as frame {seen[f.name].index}; every "
                "frame needs its own image (the split lists and segment imports match frames by file_path)."
            )
        seen[f.name] = f
    stems: dict[str, Frame] = {}
    for f in frames:
        stem = Path(f.name).stem
        if stem in stems:
            raise SceneFormatError(
                f"{json_path}, frame {f.index} ({f.name}): the same file stem {stem!r} as frame {stems[stem].index} "
                f"({stems[stem].name}); renders and imported segments are named by the stem, so one would overwrite "
                "the other. Rename one of the images."
            )
        stems[stem] = f


def _parse_aabb(meta: dict, json_path: Path) -> Optional[np.ndarray]:
    if "aabb" not in meta:
        return None
    aabb = np.asarray(meta["aabb"], dtype=np.float64)
    if aabb.shape != (2, 3) or not np.isfinite(aabb).all() or (aabb[1] <= aabb[0]).any():
        raise SceneFormatError(f"{json_path}: 'aabb' must be [[xmin,ymin,zmin],[xmax,ymax,zmax]] with min < max.")
    return aabb


def load_transforms_json(path: str | Path, check_files: bool = True) -> Scene:
    """Read and validate a scene folder (or a ``transforms.json`` path).

    Checks, before any work, on every frame (train and test): the JSON parses; each frame has the required keys;
    intrinsics are finite and focal lengths and sizes positive; class ids are JSON integers and ``thing`` a JSON
    boolean; ``file_path``s and their stems are distinct; no frame is in both splits; every referenced file exists,
    decodes completely (a truncated file is found here, not mid-fit) and has the frame's ``w x h``; poses are finite
    4x4 matrices with a rotation part; instance/semantic maps are single-channel integer images, depth maps
    single-channel; semantic and ground-truth semantic ids are known classes and instance ids are >= 0. Raises
    :class:`SceneFormatError` naming the file and the frame.
    """
    json_path, meta = _read_meta(Path(path))
    classes = _parse_classes(meta, json_path)
    scale = float(meta.get("depth_unit_scale_factor", DEFAULT_DEPTH_UNIT))
    frames = [_parse_frame(meta, fr, i, json_path) for i, fr in enumerate(meta["frames"])]
    _check_unique_names(frames, json_path)
    if check_files:
        for f in frames:
            check_frame_files(f, f"{json_path}, frame {f.index} ({f.name})")
    has_depth = _given_for_all(frames, "depth_path", "depth_file_path", json_path)
    has_conf = _given_for_all(frames, "confidence_path", "confidence_file_path", json_path)
    has_gti = _given_for_all(frames, "gt_instance_path", "gt_instance_file_path", json_path)
    has_gts = _given_for_all(frames, "gt_semantic_path", "gt_semantic_file_path", json_path)
    if has_gti != has_gts:
        raise SceneFormatError(
            f"{json_path}: give both 'gt_instance_file_path' and 'gt_semantic_file_path' "
            "(evaluation needs both) or neither."
        )
    train, test = _split(meta, frames, json_path)
    scene = Scene(
        root=json_path.parent,
        frames=frames,
        classes=classes,
        train_indices=train,
        test_indices=test,
        depth_unit_scale_factor=scale,
        aabb=_parse_aabb(meta, json_path),
        has_depth=has_depth,
        has_confidence=has_conf,
        has_ground_truth=has_gti and has_gts,
    )
    if check_files:
        check_frame_ids(scene, json_path)
    return scene


READER = SceneReader(
    name="transforms_json",
    description="a folder holding transforms.json (or that file)",
    can_read=can_read,
    load=load_transforms_json,
)
