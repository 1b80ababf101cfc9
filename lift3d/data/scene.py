"""The lift3d scene format: a nerfstudio ``transforms.json`` extended with 2D segmenter outputs.

See ``docs/scene-format.md`` for the specification. :func:`load_scene` reads and validates a scene
*before* any work starts: every problem is reported with the file, the frame and what is wrong.
:func:`load_frame` then reads one frame's images into arrays.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from lift3d.data.images import read_id_map, read_image_size, read_rgb, read_depth, read_confidence

__all__ = ["SceneClass", "Frame", "Scene", "FrameData", "SceneFormatError", "load_scene", "load_frame"]


class SceneFormatError(ValueError):
    """A scene on disk does not follow ``docs/scene-format.md``. The message names the file and frame."""


@dataclass(frozen=True)
class SceneClass:
    """One semantic class of the scene."""

    id: int
    """Class id as stored in the semantic PNGs."""
    name: str
    """Human-readable name."""
    thing: bool
    """True for countable objects that get instance ids; False for stuff (floor, wall, background)."""


@dataclass
class Frame:
    """One posed view and the paths of its files (absolute)."""

    index: int
    """Position of the frame in ``transforms.json``."""
    name: str
    """The frame's ``file_path`` as written in ``transforms.json`` (used by the split lists)."""
    image_path: Path
    instance_path: Path
    semantic_path: Path
    confidence_path: Optional[Path]
    depth_path: Optional[Path]
    gt_instance_path: Optional[Path]
    gt_semantic_path: Optional[Path]
    camera_to_world: np.ndarray
    """[4, 4] float64 camera-to-world matrix in OpenGL axes (x right, y up, looking down -z)."""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def intrinsics(self) -> np.ndarray:
        """[4] array ``(fx, fy, cx, cy)``."""
        return np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)


@dataclass
class Scene:
    """A validated scene: frames, classes, split and the modelled region."""

    root: Path
    """Folder holding ``transforms.json``."""
    frames: list[Frame]
    classes: list[SceneClass]
    train_indices: list[int]
    test_indices: list[int]
    depth_unit_scale_factor: float = 0.001
    aabb: Optional[np.ndarray] = None
    """[2, 3] world-space box the field models, if the scene states one."""
    has_depth: bool = False
    has_confidence: bool = False
    has_ground_truth: bool = False
    extras: dict = field(default_factory=dict)

    @property
    def thing_ids(self) -> list[int]:
        return [c.id for c in self.classes if c.thing]

    @property
    def stuff_ids(self) -> list[int]:
        return [c.id for c in self.classes if not c.thing]

    @property
    def num_classes(self) -> int:
        """Size of the semantic head: max class id + 1."""
        return max(c.id for c in self.classes) + 1


@dataclass
class FrameData:
    """Arrays of one frame. Shapes are [H, W] (or [H, W, 3] for RGB)."""

    rgb: np.ndarray
    """float32 in [0, 1], [H, W, 3]."""
    instance: np.ndarray
    """int64 2D segmenter ids, 0 = no segment."""
    semantic: np.ndarray
    """int64 2D segmenter class ids."""
    confidence: Optional[np.ndarray] = None
    """float32 in [0, 1]."""
    depth: Optional[np.ndarray] = None
    """float32 metres along the optical axis, 0 = unknown."""
    gt_instance: Optional[np.ndarray] = None
    gt_semantic: Optional[np.ndarray] = None


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
    return value


def _parse_classes(meta: dict, path: Path) -> list[SceneClass]:
    raw = meta.get("classes")
    if raw is None:
        # A scene without classes: background (stuff) + one thing class, as Messy Rooms.
        return [SceneClass(0, "background", False), SceneClass(1, "object", True)]
    classes = []
    for i, c in enumerate(raw):
        try:
            classes.append(SceneClass(int(c["id"]), str(c.get("name", f"class_{c['id']}")), bool(c["thing"])))
        except (KeyError, TypeError, ValueError):
            raise SceneFormatError(f"{path}: classes[{i}] must be {{'id': int, 'name': str, 'thing': bool}}, got {c!r}.") from None
    ids = [c.id for c in classes]
    if len(set(ids)) != len(ids):
        raise SceneFormatError(f"{path}: duplicate class ids in 'classes': {ids}.")
    if min(ids) < 0:
        raise SceneFormatError(f"{path}: class ids must be >= 0, got {ids}.")
    if not any(c.thing for c in classes):
        raise SceneFormatError(f"{path}: no class has \"thing\": true; lift3d needs at least one thing class.")
    return classes


def load_scene(path: str | Path, check_files: bool = True) -> Scene:
    """Read and validate a scene folder (or a ``transforms.json`` path).

    A folder without ``transforms.json`` that holds ``metadata.json`` and ``color/`` is read as a released Messy
    Rooms scene (:func:`lift3d.data.messy_rooms.load_release`).

    Checks, before any work: the JSON parses; each frame has the required keys; every referenced file exists;
    each image's size equals the frame's ``w x h``; poses are finite 4x4 matrices with a rotation part;
    instance/semantic maps are single-channel integer images; semantic ids are known classes (on the first
    frames read in full). Raises :class:`SceneFormatError` naming the file and the frame.
    """
    path = Path(path)
    if path.is_dir() and not (path / "transforms.json").exists():
        from lift3d.data.messy_rooms import is_release_folder, load_release

        if is_release_folder(path):  # the released Messy Rooms layout (metadata.json + color/ + detic_*/)
            return load_release(path, check_files=check_files)
    json_path = path / "transforms.json" if path.is_dir() else path
    if not json_path.exists():
        raise SceneFormatError(f"{json_path}: not found. Point lift3d at a scene folder holding transforms.json.")
    root = json_path.parent
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as e:
        raise SceneFormatError(f"{json_path}: invalid JSON ({e}).") from None
    frames_raw = meta.get("frames")
    if not isinstance(frames_raw, list) or not frames_raw:
        raise SceneFormatError(f"{json_path}: 'frames' must be a non-empty list.")
    classes = _parse_classes(meta, json_path)
    class_ids = {c.id for c in classes}
    scale = float(meta.get("depth_unit_scale_factor", 0.001))

    frames: list[Frame] = []
    for i, fr in enumerate(frames_raw):
        where = f"{json_path}, frame {i}"
        if "file_path" not in fr:
            raise SceneFormatError(f"{where}: missing 'file_path'.")
        where = f"{json_path}, frame {i} ({fr['file_path']})"
        for key in ("transform_matrix", "instance_file_path", "semantic_file_path"):
            if key not in fr:
                raise SceneFormatError(f"{where}: missing '{key}' (see docs/scene-format.md).")
        try:
            c2w = np.asarray(fr["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            raise SceneFormatError(f"{where}: transform_matrix is not a numeric 4x4 matrix.") from None
        if c2w.shape == (3, 4):
            c2w = np.concatenate([c2w, [[0, 0, 0, 1]]], axis=0)
        if c2w.shape != (4, 4):
            raise SceneFormatError(f"{where}: transform_matrix must be 4x4, got shape {c2w.shape}.")
        if not np.isfinite(c2w).all():
            raise SceneFormatError(f"{where}: transform_matrix has non-finite values (NaN/inf).")
        rot = c2w[:3, :3]
        # Orthonormal: R^T R = I (a det check alone lets shears with det 1 through).
        if np.abs(rot.T @ rot - np.eye(3)).max() > 1e-2:
            raise SceneFormatError(f"{where}: the rotation part of transform_matrix is not orthonormal "
                                   f"(max |R^T R - I| = {np.abs(rot.T @ rot - np.eye(3)).max():.4f}, "
                                   f"det={np.linalg.det(rot):.4f}); remove any scale or shear from the pose.")
        w = int(_intrinsic(meta, fr, "w", where))
        h = int(_intrinsic(meta, fr, "h", where))

        def p(key: str) -> Optional[Path]:
            v = fr.get(key)
            return None if v is None else (root / v)

        frame = Frame(
            index=i, name=str(fr["file_path"]), image_path=root / fr["file_path"],
            instance_path=p("instance_file_path"), semantic_path=p("semantic_file_path"),
            confidence_path=p("confidence_file_path"), depth_path=p("depth_file_path"),
            gt_instance_path=p("gt_instance_file_path"), gt_semantic_path=p("gt_semantic_file_path"),
            camera_to_world=c2w, fx=_intrinsic(meta, fr, "fl_x", where), fy=_intrinsic(meta, fr, "fl_y", where),
            cx=_intrinsic(meta, fr, "cx", where), cy=_intrinsic(meta, fr, "cy", where), width=w, height=h,
        )
        if check_files:
            _check_frame_files(frame, where)
        frames.append(frame)

    def optional_all(attr: str, key: str) -> bool:
        present = [getattr(f, attr) is not None for f in frames]
        if any(present) and not all(present):
            missing = [f for f, ok in zip(frames, present) if not ok]
            listed = ", ".join(f"frame {f.index} ({f.name})" for f in missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise SceneFormatError(f"{json_path}: '{key}' is given for some frames but not for {listed}; "
                                   "give it for all frames or none.")
        return all(present)

    has_depth = optional_all("depth_path", "depth_file_path")
    has_conf = optional_all("confidence_path", "confidence_file_path")
    has_gti = optional_all("gt_instance_path", "gt_instance_file_path")
    has_gts = optional_all("gt_semantic_path", "gt_semantic_file_path")
    if has_gti != has_gts:
        raise SceneFormatError(f"{json_path}: give both 'gt_instance_file_path' and 'gt_semantic_file_path' "
                               "(evaluation needs both) or neither.")
    has_gt = has_gti and has_gts

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
        train = idx("train_filenames") if "train_filenames" in meta else [i for i in range(len(frames)) if i not in set(test)]
    else:
        test = list(range(7, len(frames), 8))
        train = [i for i in range(len(frames)) if i not in set(test)]
    if not train:
        raise SceneFormatError(f"{json_path}: the train split is empty.")

    aabb = None
    if "aabb" in meta:
        aabb = np.asarray(meta["aabb"], dtype=np.float64)
        if aabb.shape != (2, 3) or not np.isfinite(aabb).all() or (aabb[1] <= aabb[0]).any():
            raise SceneFormatError(f"{json_path}: 'aabb' must be [[xmin,ymin,zmin],[xmax,ymax,zmax]] with min < max.")

    scene = Scene(root=root, frames=frames, classes=classes, train_indices=train, test_indices=test,
                  depth_unit_scale_factor=scale, aabb=aabb, has_depth=has_depth, has_confidence=has_conf,
                  has_ground_truth=has_gt)
    if check_files:
        # Semantic ids must be known classes: checked on a few frames up front (all frames are checked on load).
        for f in frames[: min(3, len(frames))]:
            _check_semantic_ids(read_id_map(f.semantic_path), class_ids, f"{json_path}, frame {f.index} ({f.semantic_path.name})")
    return scene


def _check_frame_files(frame: Frame, where: str) -> None:
    checks = [("file_path", frame.image_path, "rgb"), ("instance_file_path", frame.instance_path, "id"),
              ("semantic_file_path", frame.semantic_path, "id"), ("confidence_file_path", frame.confidence_path, "any"),
              ("depth_file_path", frame.depth_path, "any"), ("gt_instance_file_path", frame.gt_instance_path, "id"),
              ("gt_semantic_file_path", frame.gt_semantic_path, "id")]
    for key, path, kind in checks:
        if path is None:
            continue
        if not path.exists():
            raise SceneFormatError(f"{where}: {key} {path} does not exist.")
        try:
            size, channels, dtype = read_image_size(path)
        except Exception as e:  # unreadable / corrupt
            raise SceneFormatError(f"{where}: {key} {path} cannot be read ({e}).") from None
        if size != (frame.height, frame.width):
            raise SceneFormatError(
                f"{where}: {key} {path.name} is {size[1]}x{size[0]} but the frame is {frame.width}x{frame.height} (w x h).")
        if kind == "id":
            if channels != 1:
                raise SceneFormatError(f"{where}: {key} {path.name} must be a single-channel id map, it has {channels} channels.")
            if dtype is not None and not np.issubdtype(dtype, np.integer):
                raise SceneFormatError(f"{where}: {key} {path.name} must hold integer ids, it holds {dtype}.")


def _check_semantic_ids(sem: np.ndarray, class_ids: set[int], where: str) -> None:
    unknown = sorted(set(np.unique(sem).tolist()) - class_ids)
    if unknown:
        raise SceneFormatError(f"{where}: semantic ids {unknown[:10]} are not in 'classes' ({sorted(class_ids)}).")


def load_frame(scene: Scene, index: int, with_ground_truth: bool = False) -> FrameData:
    """Read the arrays of frame ``index``; see :class:`FrameData` for dtypes and units."""
    f = scene.frames[index]
    where = f"{scene.root / 'transforms.json'}, frame {index} ({f.name})"
    data = FrameData(rgb=read_rgb(f.image_path), instance=read_id_map(f.instance_path),
                     semantic=read_id_map(f.semantic_path))
    _check_semantic_ids(data.semantic, {c.id for c in scene.classes}, f"{where} {f.semantic_path.name}")
    if f.confidence_path is not None:
        data.confidence = read_confidence(f.confidence_path)
    if f.depth_path is not None:
        data.depth = read_depth(f.depth_path, scene.depth_unit_scale_factor)
        if not np.isfinite(data.depth).all():
            raise SceneFormatError(f"{where}: depth {f.depth_path.name} has non-finite values.")
    if with_ground_truth and f.gt_instance_path is not None:
        data.gt_instance = read_id_map(f.gt_instance_path)
        data.gt_semantic = read_id_map(f.gt_semantic_path)
    adapter = scene.extras.get("frame_adapter")  # dataset-specific conventions (e.g. lift3d.data.messy_rooms)
    if adapter is not None:
        data = adapter(scene, index, data)
    return data
