"""Load a scene from disk with whichever registered reader recognises it, and read a frame's arrays.

:func:`load_scene` dispatches to the readers of :mod:`lift3d.data.readers` (a scene folder holding
``transforms.json``, a released Messy Rooms folder, ...); every reader validates the scene *before* any work starts
and reports problems with the file, the frame and what is wrong. :func:`load_frame` then reads one frame's images
into arrays and applies the reader's :class:`~lift3d.data.scene.FrameAdapter`, if any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from lift3d.data.images import read_confidence, read_depth, read_id_map, read_rgb
from lift3d.data.readers import find_reader, get_reader, registered_readers
from lift3d.data.scene import FrameData, Scene, SceneFormatError, check_semantic_ids

__all__ = ["load_scene", "load_frame"]


def _no_reader_error(path: Path) -> SceneFormatError:
    json_path = path / "transforms.json" if path.is_dir() else path
    known = "; ".join(f"{r.name}: {r.description}" for r in registered_readers())
    return SceneFormatError(
        f"{json_path}: not found. Point lift3d at a scene folder holding transforms.json "
        f"(no registered scene reader recognises {path}; registered readers: {known})."
    )


def load_scene(path: str | Path, check_files: bool = True, reader: Optional[str] = None) -> Scene:
    """Read and validate the scene at ``path`` (a folder, or a ``transforms.json`` path).

    The first registered reader whose ``can_read(path)`` is True loads it (``reader`` names the one to use):
    ``transforms.json`` scenes (see :func:`lift3d.data.readers.transforms_json.load_transforms_json` for the
    checks) and released Messy Rooms folders (:func:`lift3d.data.readers.messy_rooms.load_release`).
    ``check_files`` also opens every referenced file to check it exists and has the frame's size.

    Raises:
        SceneFormatError: naming the file and the frame; for a path no reader recognises, listing the readers.
    """
    path = Path(path)
    if reader is not None:
        chosen = get_reader(reader)
        if not chosen.can_read(path):
            raise SceneFormatError(
                f"{path}: the scene reader {chosen.name!r} expects {chosen.description}; "
                "point it at such a path, or leave out reader= to detect the layout."
            )
    else:
        chosen = find_reader(path)
    if chosen is None:
        raise _no_reader_error(path)
    return chosen.load(path, check_files=check_files)


def load_frame(scene: Scene, index: int, with_ground_truth: bool = False) -> FrameData:
    """Read the arrays of frame ``index``; see :class:`~lift3d.data.scene.FrameData` for dtypes and units."""
    f = scene.frames[index]
    where = f"{scene.root / 'transforms.json'}, frame {index} ({f.name})"
    data = FrameData(
        rgb=read_rgb(f.image_path), instance=read_id_map(f.instance_path), semantic=read_id_map(f.semantic_path)
    )
    check_semantic_ids(data.semantic, {c.id for c in scene.classes}, f"{where} {f.semantic_path.name}")
    if f.confidence_path is not None:
        data.confidence = read_confidence(f.confidence_path)
    if f.depth_path is not None:
        data.depth = read_depth(f.depth_path, scene.depth_unit_scale_factor)
        if not np.isfinite(data.depth).all():
            raise SceneFormatError(f"{where}: depth {f.depth_path.name} has non-finite values.")
    if with_ground_truth and f.gt_instance_path is not None:
        data.gt_instance = read_id_map(f.gt_instance_path)
        data.gt_semantic = read_id_map(f.gt_semantic_path)
    if scene.frame_adapter is not None:  # the reader's dataset-specific conventions
        data = scene.frame_adapter.adapt_frame(scene, index, data)
    return data
