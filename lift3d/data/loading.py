"""Load a scene from disk with whichever registered reader recognises it, and read a frame's arrays.

:func:`load_scene` dispatches to the readers of :mod:`lift3d.data.readers` (a nerfstudio ``transforms.json``, a
COLMAP model, Panoptic Lifting's preprocessed layout, a released Messy Rooms folder, ...); every reader validates
the scene *before* any work starts and reports problems with the file, the frame and what is wrong. The options
every reader shares (``downscale``, ``skip_bad_frames``) are applied here. :func:`load_frame` then reads one frame's
images into arrays at the frame's size and applies the reader's :class:`~lift3d.data.scene.FrameAdapter`, if any.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from lift3d.data.images import (
    read_confidence,
    read_depth,
    read_id_map,
    read_image_size,
    read_mask,
    read_rgb,
    resize_confidence,
    resize_depth,
    resize_nearest,
    resize_rgb,
)
from lift3d.data.readers import find_reader, get_reader, registered_readers
from lift3d.data.scene import Frame, FrameData, Scene, SceneFormatError, check_semantic_ids, scene_file

__all__ = ["load_scene", "load_frame", "downscaled", "sfm_points", "SceneOptions", "SkippedFramesWarning"]


class SkippedFramesWarning(UserWarning):
    """``load_scene(..., skip_bad_frames=True)`` dropped unreadable frames (listed in the message and in
    ``scene.extras['skipped_frames']``)."""


@dataclass(frozen=True)
class SceneOptions:
    """How a command loads its scene (the CLI's ``--format``, ``--downscale``, ``--skip-bad-frames``); a run records
    them (:meth:`to_dict`) so that render / eval / view load the scene the fit saw."""

    format: Optional[str] = None
    """Scene reader to use (transforms_json, colmap, panoptic_lifting, messy_rooms_release); None: detect it."""
    downscale: int = 1
    """Use the images at 1/N of their resolution (nerfstudio's images_N folders when present, else resampled)."""
    skip_bad_frames: bool = False
    """Drop frames whose files are missing or unreadable (listed in the log) instead of refusing the scene."""

    def load(self, path: str | Path, check_files: bool = True) -> Scene:
        """:func:`load_scene` of ``path`` with these options."""
        return load_scene(
            path, check_files, self.format, downscale=self.downscale, skip_bad_frames=self.skip_bad_frames
        )

    def to_dict(self) -> dict:
        """Plain JSON-able dict (``SceneOptions(**d)`` reads it back)."""
        return asdict(self)


def _no_reader_error(path: Path) -> SceneFormatError:
    json_path = path / "transforms.json" if path.is_dir() else path
    known = "; ".join(f"{r.name}: {r.description}" for r in registered_readers())
    return SceneFormatError(
        f"{json_path}: not found. Point lift3d at a scene folder holding transforms.json "
        f"(no registered scene reader recognises {path}; registered readers: {known})."
    )


def load_scene(
    path: str | Path,
    check_files: bool = True,
    reader: Optional[str] = None,
    *,
    downscale: int = 1,
    skip_bad_frames: bool = False,
) -> Scene:
    """Read and validate the scene at ``path`` (a folder, or a ``transforms.json`` path).

    The first registered reader whose ``can_read(path)`` is True loads it; ``reader`` names the one to use
    (``transforms_json``, ``colmap``, ``panoptic_lifting``, ``messy_rooms_release``; the CLI's ``--format``).
    ``check_files`` also opens every referenced file to check it exists and has the frame's size.

    Args:
        downscale: use the frames at ``1 / downscale`` of their resolution (:func:`downscaled`: intrinsics scaled,
            nerfstudio's ``images_N`` folders used when present, other files resampled by :func:`load_frame`).
        skip_bad_frames: drop frames whose files are missing or unreadable instead of refusing the scene; they are
            listed in ``scene.extras['skipped_frames']`` and in a :class:`SkippedFramesWarning`.

    Raises:
        SceneFormatError: naming the file and the frame; for a path no reader recognises, listing the readers.
    """
    path = Path(path)
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise SceneFormatError(f"{path}: downscale must be a whole number >= 1, got {downscale!r}.")
    if reader is not None:
        try:
            chosen = get_reader(reader)
        except KeyError as err:
            raise SceneFormatError(f"{path}: {err.args[0]} Pass one of them as the format.") from None
        if not chosen.can_read(path):
            raise SceneFormatError(
                f"{path}: the scene reader {chosen.name!r} expects {chosen.description}; "
                "point it at such a path, or leave out the format to detect the layout."
            )
    else:
        chosen = find_reader(path)
    if chosen is None:
        raise _no_reader_error(path)
    if skip_bad_frames:
        if "skip_bad_frames" not in inspect.signature(chosen.load).parameters:
            raise SceneFormatError(f"{path}: the {chosen.name!r} reader cannot skip bad frames; fix the frames.")
        scene = chosen.load(path, check_files=check_files, skip_bad_frames=True)
    else:
        scene = chosen.load(path, check_files=check_files)
    skipped = scene.extras.get("skipped_frames", [])
    if skipped:
        listed = "; ".join(f"frame {s['index']} ({s['name']})" for s in skipped[:10])
        warnings.warn(
            f"{scene_file(scene)}: skipped {len(skipped)} unreadable frame(s) (--skip-bad-frames): {listed}"
            f"{' ...' if len(skipped) > 10 else ''}. First reason: {skipped[0]['reason']}",
            SkippedFramesWarning,
            stacklevel=2,
        )
    return downscaled(scene, downscale) if downscale > 1 else scene


def _downscaled_file(path: Path, factor: int) -> Optional[Path]:
    """nerfstudio's pre-shrunk copy of an image: ``ROOT/images_N/NAME`` beside ``ROOT/images/NAME`` (the folder's
    name + ``_N``), or None."""
    candidate = path.parent.parent / f"{path.parent.name}_{factor}" / path.name
    return candidate if candidate.is_file() else None


def downscaled(scene: Scene, factor: int) -> Scene:
    """``scene`` with every frame used at ``1 / factor`` of its resolution.

    A frame whose image has a copy ``images_N/NAME`` (nerfstudio's ``ns-process-data`` writes ``images_2``,
    ``images_4``, ``images_8``) uses that copy and its size; else the size is ``(floor(W / N), floor(H / N))`` and
    :func:`load_frame` resamples the image. The intrinsics scale by the ratio of the sizes per axis
    (``fx' = fx W' / W``, ``cx' = cx W' / W``; the same with ``H`` for ``fy``, ``cy``), which is exact for a resampling
    that maps the pixel grid ``x' = x W' / W``. Lens distortion acts on normalised coordinates and is unchanged.
    Every other file (segments, depth, masks, ground truth) stays at the original size
    (:attr:`~lift3d.data.scene.Frame.file_size`) and is resampled on load. Records ``extras['downscale']``.
    """
    frames = []
    for f in scene.frames:
        small = _downscaled_file(f.image_path, factor)
        if small is not None:
            (height, width), _, _ = read_image_size(small)
        else:
            height, width = f.height // factor, f.width // factor
        if height < 1 or width < 1:
            raise SceneFormatError(
                f"{scene_file(scene)}, frame {f.index} ({f.name}): downscale {factor} leaves no pixel of its "
                f"{f.width}x{f.height} image; use a smaller factor."
            )
        sx, sy = width / f.width, height / f.height
        frames.append(
            replace(
                f,
                image_path=small if small is not None else f.image_path,
                fx=f.fx * sx,
                fy=f.fy * sy,
                cx=f.cx * sx,
                cy=f.cy * sy,
                width=width,
                height=height,
                file_size=f.file_size or (f.height, f.width),
            )
        )
    extras = dict(scene.extras, downscale=factor)
    return replace(scene, frames=frames, extras=extras)


def _at_frame_size(arr: np.ndarray, frame: Frame, kind: str) -> np.ndarray:
    """``arr`` [h, w] (or [h, w, 3]) resampled to the frame's size when it differs (``kind``: rgb, ids, depth,
    confidence, mask)."""
    size = (frame.height, frame.width)
    if arr.shape[:2] == size:
        return arr
    if kind == "rgb":
        return resize_rgb(arr, size)
    if kind == "depth":
        return resize_depth(arr, size)
    if kind == "confidence":
        return resize_confidence(arr, size)
    return resize_nearest(arr, size)


def load_frame(scene: Scene, index: int, with_ground_truth: bool = False) -> FrameData:
    """Read the arrays of frame ``index`` at the frame's ``height x width``; see
    :class:`~lift3d.data.scene.FrameData` for dtypes and units.

    Files of another size (a downscaled scene, depth at a lower resolution than the image) are resampled: RGB by
    area (shrinking) or bilinearly, ids and masks by nearest neighbour, confidence bilinearly, depth by
    :func:`~lift3d.data.images.resize_depth` (no value is invented; sparse points are kept). ``mask_path`` becomes
    ``valid_mask`` (False = excluded). A scene without segments gives all-0 instance and semantic maps.
    """
    f = scene.frames[index]
    where = f"{scene_file(scene)}, frame {index} ({f.name})"
    shape = (f.height, f.width)
    rgb = _at_frame_size(read_rgb(f.image_path), f, "rgb")
    if f.instance_path is not None and f.semantic_path is not None:
        instance = _at_frame_size(read_id_map(f.instance_path), f, "ids")
        semantic = _at_frame_size(read_id_map(f.semantic_path), f, "ids")
        check_semantic_ids(semantic, {c.id for c in scene.classes}, f"{where} {f.semantic_path.name}")
    else:
        instance, semantic = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    data = FrameData(rgb=rgb, instance=instance, semantic=semantic)
    if f.confidence_path is not None:
        data.confidence = _at_frame_size(read_confidence(f.confidence_path), f, "confidence")
    if f.depth_path is not None:
        depth = read_depth(f.depth_path, scene.depth_unit_scale_factor)
        if not np.isfinite(depth).all():
            raise SceneFormatError(f"{where}: depth {f.depth_path.name} has non-finite values.")
        data.depth = _at_frame_size(depth, f, "depth")
    if f.mask_path is not None:
        if not f.mask_path.is_file():
            raise SceneFormatError(f"{where}: mask_path {f.mask_path} does not exist; restore it or remove the key.")
        data.valid_mask = _at_frame_size(read_mask(f.mask_path), f, "mask")
    if with_ground_truth and f.gt_instance_path is not None:
        data.gt_instance = _at_frame_size(read_id_map(f.gt_instance_path), f, "ids")
        data.gt_semantic = _at_frame_size(read_id_map(f.gt_semantic_path), f, "ids")
    if scene.frame_adapter is not None:  # the reader's dataset-specific conventions
        data = scene.frame_adapter.adapt_frame(scene, index, data)
    return data


def sfm_points(scene: Scene) -> Optional[np.ndarray]:
    """The scene's structure-from-motion points as ``[N, 3]`` float64 world coordinates (the frame of the poses),
    or None when the scene has none. Read from ``scene.extras['sfm_points_path']``: a COLMAP model folder (the
    ``colmap`` reader; a nerfstudio folder with ``colmap/sparse/0``, whose points are moved into the poses' frame by
    nerfstudio's ``applied_transform`` ``A`` [3, 4]: ``X' = A[:, :3] X + A[:, 3]``) or a ``.ply`` point cloud
    (nerfstudio's ``ply_file_path``, e.g. ``sparse_pc.ply``, already in the poses' frame)."""
    path = scene.extras.get("sfm_points_path")
    if not path:
        return None
    path = Path(path)
    if path.suffix.lower() == ".ply":
        import open3d as o3d

        if not path.is_file():
            raise SceneFormatError(
                f"{scene_file(scene)}: ply_file_path {path} does not exist; restore it or remove it."
            )
        return np.asarray(o3d.io.read_point_cloud(str(path)).points, dtype=np.float64).reshape(-1, 3)
    from lift3d.data.readers.colmap import read_sfm_points

    points = read_sfm_points(path)
    if scene.extras.get("format") == "transforms_json" and "applied_transform" in scene.extras:
        moved = np.asarray(scene.extras["applied_transform"], dtype=np.float64)
        points = points @ moved[:, :3].T + moved[:, 3]
    return points
