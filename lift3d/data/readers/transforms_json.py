"""Reader of nerfstudio ``transforms.json`` scenes, with lift3d's 2D segmenter extension.

See ``docs/scene-format.md``. Reads what nerfstudio's writers produce: ``ns-process-data`` on COLMAP output
(``camera_model`` OPENCV / OPENCV_FISHEYE / ..., distortion ``k1 k2 p1 p2 [k3]``, ``applied_transform``), Polycam,
Record3D and Metashape exports (per-frame intrinsics, ``depth_file_path`` at a lower resolution than the image),
instant-ngp / Blender files (``camera_angle_x`` instead of ``fl_x``, ``file_path`` without an extension), ``mask_path``
and sparse depth. The segment keys (``instance_file_path``, ``semantic_file_path``) are optional: a scene without them
loads with :attr:`~lift3d.data.scene.Scene.has_segments` False. :func:`load_transforms_json` validates a scene
*before* any work starts; every problem is reported with the file, the frame and the fix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from lift3d.data.images import read_depth, read_image_size
from lift3d.data.readers.common import (
    distortion_from_coefficients,
    find_image_file,
    match_split_names,
)
from lift3d.data.readers.registry import SceneReader
from lift3d.data.scene import (
    Frame,
    Scene,
    SceneClass,
    SceneFormatError,
    check_camera_to_world,
    check_frame_files,
    check_frame_ids,
    check_frames,
    renumber_frames,
)
from lift3d.geometry.cameras import Distortion

__all__ = ["READER", "can_read", "load_transforms_json", "frame_camera", "depth_density"]

DEFAULT_DEPTH_UNIT = 0.001
"""Metres per unit of a 16-bit depth PNG when ``depth_unit_scale_factor`` is not given (millimetres)."""
TEST_EVERY = 8
"""Without split lists, every 8th frame (7, 15, 23, ...) is a test frame (nerfstudio's habit)."""
POSITIVE_INTRINSICS = ("fl_x", "fl_y", "w", "h")
"""Intrinsics that must be > 0."""
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2")
"""Distortion coefficients a nerfstudio file may carry (top level or per frame)."""
SEGMENT_KEYS = ("instance_file_path", "semantic_file_path")
"""The 2D segmenter keys: a frame has both or neither."""


def can_read(path: Path) -> bool:
    """True for a folder holding ``transforms.json``, or for a ``.json`` file (read as the ``transforms.json``)."""
    path = Path(path)
    return (path.is_file() and path.suffix == ".json") or (path.is_dir() and (path / "transforms.json").exists())


def _number(meta: dict, frame: dict, key: str, where: str, default: Optional[float] = None) -> Optional[float]:
    """Frame ``key`` (a per-frame value wins over the top level) as a finite float, ``default`` when absent."""
    value = frame.get(key, meta.get(key))
    if value is None:
        return default
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SceneFormatError(f"{where}: '{key}' is not a number: {value!r}.") from None
    if not math.isfinite(value):
        raise SceneFormatError(f"{where}: '{key}' is not finite: {value!r}.")
    return value


def _intrinsic(meta: dict, frame: dict, key: str, where: str) -> float:
    value = _number(meta, frame, key, where)
    if value is None:
        raise SceneFormatError(f"{where}: missing intrinsic '{key}' (give it at the top level or per frame).")
    if key in POSITIVE_INTRINSICS and value <= 0:
        raise SceneFormatError(
            f"{where}: intrinsic '{key}' must be positive, got {value!r} (focal lengths in pixels, image size in "
            "pixels); a focal length of 0 gives NaN rays and a negative one mirrors the image."
        )
    if key in ("w", "h") and value != int(value):
        raise SceneFormatError(f"{where}: intrinsic '{key}' must be a whole number of pixels, got {value!r}.")
    return value


def _nerfstudio_distortion(meta: dict, fr: dict, where: str) -> Optional[Distortion]:
    """The frame's lens model from nerfstudio's ``camera_model`` and ``k1..k6, p1, p2`` (module
    :mod:`lift3d.data.readers.common` for the names). nerfstudio's OPENCV is ``1 + k1 r^2 + k2 r^4 + k3 r^6 + k4 r^8``
    with tangential ``p1, p2``: with ``k3 = k4 = 0`` it is COLMAP's OPENCV, with ``k4 = 0`` COLMAP's FULL_OPENCV with
    ``k4..k6 = 0``; an ``r^8`` term has no COLMAP equivalent and is refused. A file carrying ``k5``/``k6`` was written
    from COLMAP's FULL_OPENCV and is read as that model."""
    model = str(fr.get("camera_model", meta.get("camera_model", "PINHOLE"))).upper()
    k = {key: _number(meta, fr, key, where, 0.0) for key in DISTORTION_KEYS}
    has_full = any(key in fr or key in meta for key in ("k5", "k6"))
    if model in ("PINHOLE", "SIMPLE_PINHOLE", "PERSPECTIVE", "OPENCV"):
        if model == "OPENCV" and has_full:
            model = "FULL_OPENCV"
        elif k["k4"] != 0.0:
            raise SceneFormatError(
                f"{where}: camera_model {model} with k4 = {k['k4']} (nerfstudio's r^8 radial term) cannot be "
                "modelled by lift3d; undistort the images (`colmap image_undistorter` or ns-process-data with a "
                "perspective camera) or refit the camera as COLMAP's OPENCV / FULL_OPENCV."
            )
        elif k["k3"] != 0.0:
            return distortion_from_coefficients(
                "FULL_OPENCV", (k["k1"], k["k2"], k["p1"], k["p2"], k["k3"], 0.0, 0.0, 0.0), where
            )
        else:
            return distortion_from_coefficients("OPENCV", (k["k1"], k["k2"], k["p1"], k["p2"]), where)
    names = {
        "SIMPLE_RADIAL": ("k1",),
        "RADIAL": ("k1", "k2"),
        "OPENCV_FISHEYE": ("k1", "k2", "k3", "k4"),
        "FULL_OPENCV": ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
    }
    # unknown models (EQUIRECTANGULAR, FISHEYE624, ...) are refused by distortion_from_coefficients
    return distortion_from_coefficients(model, tuple(k[n] for n in names.get(model, ())), where)


def frame_camera(
    meta: dict, fr: dict, image_path: Optional[Path], where: str
) -> Tuple[float, float, float, float, int, int, Optional[Distortion]]:
    """``(fx, fy, cx, cy, w, h, distortion)`` of one frame of a nerfstudio file (per-frame values win).

    ``w``/``h`` missing: read from the image's header. With ``fl_x`` (nerfstudio) ``fl_y``, ``cx``, ``cy`` are
    required. Without it (instant-ngp / Blender): ``camera_angle_x`` (horizontal field of view, radians) gives
    ``fl_x = w / (2 tan(camera_angle_x / 2))``, ``camera_angle_y`` likewise ``fl_y`` (else ``fl_y = fl_x``), and
    ``cx``/``cy`` default to the image centre.
    """
    if _number(meta, fr, "w", where) is None or _number(meta, fr, "h", where) is None:
        if image_path is None or not image_path.is_file():
            raise SceneFormatError(
                f"{where}: no 'w'/'h' and the image cannot be found to read its size; give w and h, or restore the "
                "image."
            )
        (h_img, w_img), _, _ = read_image_size(image_path)
        w = int(_number(meta, fr, "w", where, w_img))
        h = int(_number(meta, fr, "h", where, h_img))
    else:
        w, h = int(_intrinsic(meta, fr, "w", where)), int(_intrinsic(meta, fr, "h", where))
    if w <= 0 or h <= 0:
        raise SceneFormatError(f"{where}: image size {w}x{h} must be positive.")

    def focal(key: str, angle_key: str, size: int) -> Optional[float]:
        if _number(meta, fr, key, where) is not None:
            return _intrinsic(meta, fr, key, where)
        angle = _number(meta, fr, angle_key, where)
        if angle is None:
            return None
        if not 0.0 < angle < math.pi:
            raise SceneFormatError(f"{where}: '{angle_key}' = {angle} must be a field of view in (0, pi) radians.")
        return 0.5 * size / math.tan(0.5 * angle)

    if _number(meta, fr, "fl_x", where) is not None:  # nerfstudio: every intrinsic is given
        fx, fy = _intrinsic(meta, fr, "fl_x", where), _intrinsic(meta, fr, "fl_y", where)
        cx, cy = _intrinsic(meta, fr, "cx", where), _intrinsic(meta, fr, "cy", where)
    else:  # instant-ngp / Blender: a field of view, the principal point at the centre unless given
        fx = focal("fl_x", "camera_angle_x", w)
        if fx is None:
            raise SceneFormatError(
                f"{where}: missing intrinsic 'fl_x' (or instant-ngp's 'camera_angle_x'); give it at the top level or "
                "per frame."
            )
        fy = focal("fl_y", "camera_angle_y", h)
        fy = fx if fy is None else fy
        cx = _number(meta, fr, "cx", where, w / 2.0)
        cy = _number(meta, fr, "cy", where, h / 2.0)
    return fx, fy, cx, cy, w, h, _nerfstudio_distortion(meta, fr, where)


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
    except UnicodeDecodeError as e:
        raise SceneFormatError(f"{json_path}: not a text file ({e}); write transforms.json as UTF-8 JSON.") from None
    if not isinstance(meta, dict):
        raise SceneFormatError(f"{json_path}: the top level must be a JSON object with 'frames'.")
    frames_raw = meta.get("frames")
    if not isinstance(frames_raw, list) or not frames_raw:
        raise SceneFormatError(f"{json_path}: 'frames' must be a non-empty list.")
    return json_path, meta


def _parse_frame(meta: dict, fr: dict, i: int, json_path: Path) -> Frame:
    """Frame ``i`` of ``transforms.json`` (keys, pose and intrinsics checked; files not yet, except the image when
    its size or extension must be read from it)."""
    root = json_path.parent
    where = f"{json_path}, frame {i}"
    if not isinstance(fr, dict):
        raise SceneFormatError(f"{where}: a frame must be a JSON object, got {type(fr).__name__}.")
    if "file_path" not in fr:
        raise SceneFormatError(f"{where}: missing 'file_path'.")
    where = f"{json_path}, frame {i} ({fr['file_path']})"
    if "transform_matrix" not in fr:
        raise SceneFormatError(f"{where}: missing 'transform_matrix' (see docs/scene-format.md).")
    given = [key in fr for key in SEGMENT_KEYS]
    if any(given) and not all(given):
        absent = SEGMENT_KEYS[given.index(False)]
        raise SceneFormatError(
            f"{where}: has {SEGMENT_KEYS[given.index(True)]} but no '{absent}'; give both segment maps or neither."
        )
    c2w = check_camera_to_world(fr["transform_matrix"], where)
    image_path = find_image_file(root, str(fr["file_path"]))
    fx, fy, cx, cy, w, h, distortion = frame_camera(meta, fr, image_path, where)

    def p(key: str) -> Optional[Path]:
        v = fr.get(key)
        return None if v is None else (root / v)

    return Frame(
        index=i,
        name=str(fr["file_path"]),
        image_path=image_path if image_path is not None else root / fr["file_path"],
        instance_path=p("instance_file_path"),
        semantic_path=p("semantic_file_path"),
        confidence_path=p("confidence_file_path"),
        depth_path=p("depth_file_path"),
        gt_instance_path=p("gt_instance_file_path"),
        gt_semantic_path=p("gt_semantic_file_path"),
        camera_to_world=c2w,
        fx=fx,
        fy=fy,
        cx=cx,
        cy=cy,
        width=w,
        height=h,
        distortion=distortion,
        mask_path=p("mask_path"),
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


def _split(meta: dict, frames: List[Frame], json_path: Path, dropped: List[str]) -> Tuple[List[int], List[int]]:
    """``(train, test)`` frame indices: ``train_filenames`` / ``test_filenames`` (nerfstudio's ``val_filenames``
    when there is no test list) matched on normalised paths, else every 8th frame is test. ``dropped``: names of
    frames skipped as unreadable (left out of the lists without an error)."""
    names = {f.index: f.name for f in frames}
    test_key = "test_filenames" if "test_filenames" in meta else "val_filenames"
    if "train_filenames" in meta or test_key in meta:

        def idx(key: str) -> list[int]:
            listed = meta.get(key, [])
            if not isinstance(listed, list):
                raise SceneFormatError(f"{json_path}: '{key}' must be a list of frame file paths.")
            return match_split_names(listed, names, key, str(json_path), dropped)

        test = idx(test_key)
        if "train_filenames" in meta:
            train = idx("train_filenames")
        else:
            train = [f.index for f in frames if f.index not in set(test)]
    else:
        test = [f.index for f in frames if f.index % TEST_EVERY == TEST_EVERY - 1]
        train = [f.index for f in frames if f.index not in set(test)]
    if not train:
        raise SceneFormatError(f"{json_path}: the train split is empty.")
    both = sorted(set(train) & set(test))
    if both:
        listed = ", ".join(f"frame {i} ({names[i]})" for i in both[:4])
        raise SceneFormatError(
            f"{json_path}: {listed} {'is' if len(both) == 1 else 'are'} in both train_filenames and {test_key}; "
            "a test frame must be held out of training. Remove it from one list."
        )
    for key, idx in (("train_filenames", train), (test_key, test)):
        if len(set(idx)) != len(idx):
            dup = sorted({names[i] for i in idx if idx.count(i) > 1})
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
    try:
        aabb = np.asarray(meta["aabb"], dtype=np.float64)
    except (TypeError, ValueError):
        aabb = np.zeros(0)
    if aabb.shape != (2, 3) or not np.isfinite(aabb).all() or (aabb[1] <= aabb[0]).any():
        raise SceneFormatError(f"{json_path}: 'aabb' must be [[xmin,ymin,zmin],[xmax,ymax,zmax]] with min < max.")
    return aabb


def _applied_transform(meta: dict, json_path: Path) -> Dict:
    """nerfstudio's record of how its writer moved the poses (``applied_transform`` [3, 4] or [4, 4],
    ``applied_scale``): kept as plain lists; the poses in the file already include it."""
    out: Dict = {}
    if "applied_transform" in meta:
        try:
            matrix = np.asarray(meta["applied_transform"], dtype=np.float64)
        except (TypeError, ValueError):
            matrix = np.zeros(0)
        if matrix.shape not in ((3, 4), (4, 4)) or not np.isfinite(matrix).all():
            raise SceneFormatError(
                f"{json_path}: 'applied_transform' must be a finite 3x4 (or 4x4) matrix, got shape {matrix.shape}."
            )
        out["applied_transform"] = matrix[:3].tolist()
    if "applied_scale" in meta:
        out["applied_scale"] = float(meta["applied_scale"])
    return out


def _sfm_points_path(meta: dict, json_path: Path) -> Optional[Path]:
    """nerfstudio's SfM point cloud: ``ply_file_path`` (relative to the file's folder; its points are in the poses'
    frame) when given, else the COLMAP model ``colmap/sparse/0`` that ``ns-process-data`` leaves beside
    ``transforms.json`` (its points are in COLMAP's frame: :func:`lift3d.data.loading.sfm_points` moves them by
    ``applied_transform``)."""
    if "ply_file_path" in meta:
        return json_path.parent / str(meta["ply_file_path"])
    if "lift3d_sfm_model" in meta:  # written by lift3d from a COLMAP project: the model's frame is the poses'
        return json_path.parent / str(meta["lift3d_sfm_model"])
    model = json_path.parent / "colmap" / "sparse" / "0"
    if any((model / f"points3D{ext}").is_file() for ext in (".bin", ".txt")):
        return model
    return None


def depth_density(frames: List[Frame], unit_scale: float) -> float:
    """Mean over ``frames`` of the fraction of depth-map pixels holding a depth (finite and > 0): about 1 for a
    sensor's dense depth, a few thousandths for nerfstudio's SfM depth (COLMAP points splatted into the image); 0
    when the frames have no depth."""
    fractions = []
    for f in frames:
        if f.depth_path is None:
            return 0.0
        d = read_depth(f.depth_path, unit_scale)
        fractions.append(float((np.isfinite(d) & (d > 0)).mean()) if d.size else 0.0)
    return float(np.mean(fractions)) if fractions else 0.0


def load_transforms_json(path: str | Path, check_files: bool = True, skip_bad_frames: bool = False) -> Scene:
    """Read and validate a scene folder (or a ``transforms.json`` path).

    Checks, before any work, on every frame (train and test): the JSON parses; each frame has the required keys
    (``file_path``, ``transform_matrix``; both segment keys or neither); intrinsics are finite and focal lengths and
    sizes positive; the camera model is one lift3d models; class ids are JSON integers and ``thing`` a JSON boolean;
    ``file_path``s and their stems are distinct; no frame is in both splits; every referenced file exists, decodes
    completely (a truncated file is found here, not mid-fit) and has the frame's ``w x h`` (depth and masks: its
    aspect ratio); poses are finite 4x4 matrices with a rotation part; instance/semantic maps are single-channel
    integer images, depth maps single-channel; semantic and ground-truth semantic ids are known classes and instance
    ids are >= 0. Raises :class:`SceneFormatError` naming the file and the frame.

    ``skip_bad_frames``: a frame that cannot be read (a key missing, a file missing or damaged, a wrong size) is
    dropped instead, listed in ``scene.extras['skipped_frames']`` as ``{"index", "name", "reason"}`` (the index in
    the file); the kept frames are renumbered 0..n-1.

    ``scene.extras`` records ``format`` ("transforms_json"), ``scene_file``, ``depth_density`` (:func:`depth_density`),
    ``camera_models`` (the distortion model names, "pinhole" for none) and nerfstudio's ``applied_transform`` /
    ``applied_scale`` when given.
    """
    json_path, meta = _read_meta(Path(path))
    classes = _parse_classes(meta, json_path)
    scale = float(meta.get("depth_unit_scale_factor", DEFAULT_DEPTH_UNIT))
    skipped: List[dict] = []
    frames: List[Frame] = []
    for i, fr in enumerate(meta["frames"]):
        try:
            frames.append(_parse_frame(meta, fr, i, json_path))
        except SceneFormatError as err:
            if not skip_bad_frames:
                raise
            name = fr.get("file_path", "?") if isinstance(fr, dict) else "?"
            skipped.append({"index": i, "name": str(name), "reason": str(err)})
    if not frames:
        raise SceneFormatError(f"{json_path}: no frame could be read (the first: {skipped[0]['reason']}).")
    _check_unique_names(frames, json_path)
    if check_files:
        frames, bad = check_frames(
            frames,
            lambda f: f"{json_path}, frame {f.index} ({f.name})",
            lambda f: check_frame_files(f, f"{json_path}, frame {f.index} ({f.name})"),
            skip_bad_frames,
        )
        skipped += bad
    has_depth = _given_for_all(frames, "depth_path", "depth_file_path", json_path)
    has_conf = _given_for_all(frames, "confidence_path", "confidence_file_path", json_path)
    _given_for_all(frames, "instance_path", "instance_file_path", json_path)
    has_gti = _given_for_all(frames, "gt_instance_path", "gt_instance_file_path", json_path)
    has_gts = _given_for_all(frames, "gt_semantic_path", "gt_semantic_file_path", json_path)
    if has_gti != has_gts:
        raise SceneFormatError(
            f"{json_path}: give both 'gt_instance_file_path' and 'gt_semantic_file_path' "
            "(evaluation needs both) or neither."
        )
    train, test = _split(meta, frames, json_path, [s["name"] for s in skipped])
    frames, train, test = renumber_frames(frames, train, test)
    extras = {
        "format": "transforms_json",
        "scene_file": str(json_path),
        "depth_density": depth_density(frames, scale) if has_depth else 0.0,
        "camera_models": sorted({f.distortion.model if f.distortion else "pinhole" for f in frames}),
        **_applied_transform(meta, json_path),
    }
    sfm = _sfm_points_path(meta, json_path)
    if sfm is not None:
        extras["sfm_points_path"] = str(sfm)
    if skipped:
        extras["skipped_frames"] = skipped
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
        extras=extras,
    )
    if check_files:
        check_frame_ids(scene, json_path)
    return scene


READER = SceneReader(
    name="transforms_json",
    description="a folder holding a nerfstudio transforms.json (or that file)",
    can_read=can_read,
    load=load_transforms_json,
)
