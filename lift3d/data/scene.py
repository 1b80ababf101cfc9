"""The scene types of lift3d (a leaf): :class:`Scene`, :class:`Frame`, :class:`FrameData`, classes and validators.

A scene on disk (``docs/scene-format.md``: a nerfstudio ``transforms.json`` extended with 2D segmenter outputs, or
another layout a reader in :mod:`lift3d.data.readers` understands) is read by
:func:`lift3d.data.loading.load_scene` into these types; :func:`lift3d.data.loading.load_frame` reads one frame's
images. The validators here (:func:`check_camera_to_world`, :func:`check_frame_files`, :func:`check_semantic_ids`)
are shared by every reader so that each problem is reported with the file, the frame and what is wrong.

This module imports no reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from lift3d.data.images import read_id_map, read_image_size, verify_image
from lift3d.geometry.cameras import Distortion, Intrinsics

__all__ = [
    "SceneClass",
    "Frame",
    "Scene",
    "FrameData",
    "FrameAdapter",
    "SceneFormatError",
    "MissingSegmentsError",
    "require_segments",
    "check_camera_to_world",
    "check_frames",
    "check_frame_files",
    "check_semantic_ids",
    "check_frame_ids",
    "renumber_frames",
    "scene_file",
]


class SceneFormatError(ValueError):
    """A scene on disk does not follow ``docs/scene-format.md``. The message names the file and frame."""


class MissingSegmentsError(SceneFormatError):
    """The scene has no 2D segments (no ``instance_file_path`` / ``semantic_file_path``) and the command needs
    them; the message names the scene file and the commands that add segments."""


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
    instance_path: Optional[Path]
    """2D segmenter instance ids; None in a scene without segments (:attr:`Scene.has_segments`)."""
    semantic_path: Optional[Path]
    """2D segmenter class ids; None exactly when ``instance_path`` is None."""
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
    distortion: Optional[Distortion] = None
    """Lens distortion of the frame's camera (None: ideal pinhole)."""
    mask_path: Optional[Path] = None
    """Optional per-pixel mask (nerfstudio ``mask_path``: 0 = pixel excluded from every loss and from clustering)."""
    file_size: Optional[Tuple[int, int]] = None
    """``(height, width)`` of the frame's files when the frame is used at another size (``load_scene(...,
    downscale=N)``); :func:`~lift3d.data.loading.load_frame` resamples files of that size to ``(height, width)``.
    None: the files are ``height x width``."""

    @property
    def camera_intrinsics(self) -> Intrinsics:
        """The frame's camera as the one intrinsics type of :mod:`lift3d.geometry.cameras`."""
        return Intrinsics(
            fx=self.fx,
            fy=self.fy,
            cx=self.cx,
            cy=self.cy,
            width=self.width,
            height=self.height,
            distortion=self.distortion,
        )

    def intrinsics(self) -> np.ndarray:
        """[4] float64 array ``(fx, fy, cx, cy)`` (:meth:`Intrinsics.vector` of :attr:`camera_intrinsics`)."""
        return self.camera_intrinsics.vector()


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
    """Plain metadata a reader records (e.g. ``format``, ``depth_kind``, ``frame_stems``); nothing callable."""
    frame_adapter: Optional["FrameAdapter"] = None
    """Dataset-specific conventions applied to every frame by ``load_frame`` (see :class:`FrameAdapter`)."""

    @property
    def has_segments(self) -> bool:
        """True when every frame has 2D segments (instance and semantic maps); a reader refuses a scene where only
        some frames have them. A scene without segments loads (``lift3d segments import`` / ``predict`` add
        them), but ``lift3d fit`` refuses it (:func:`require_segments`)."""
        return all(f.instance_path is not None and f.semantic_path is not None for f in self.frames)

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
    """int64 2D segmenter ids, 0 = no segment (all 0 in a scene without segments)."""
    semantic: np.ndarray
    """int64 2D segmenter class ids (all 0 in a scene without segments)."""
    confidence: Optional[np.ndarray] = None
    """float32 in [0, 1]."""
    depth: Optional[np.ndarray] = None
    """float32 metres along the optical axis, 0 = unknown."""
    gt_instance: Optional[np.ndarray] = None
    gt_semantic: Optional[np.ndarray] = None
    valid_mask: Optional[np.ndarray] = None
    """bool [H, W], False = pixel excluded from every loss and from clustering samples (from ``mask_path``)."""


@runtime_checkable
class FrameAdapter(Protocol):
    """A reader's dataset-specific conventions, applied by ``load_frame`` to each frame's arrays after reading.

    An adapter may change the values of ``confidence`` (e.g. ignore masks set it to 0, a background rule sets it to
    1; it may create it when the files have none), of ``depth`` (e.g. convert distance along the ray to depth
    along the optical axis) and of ``valid_mask`` (e.g. from a dataset's own mask of invalid pixels). It must keep every array's shape, must not change the ids of ``instance``,
    ``semantic``, ``gt_instance`` or ``gt_semantic``, and must not change the scene or its frames.
    """

    def adapt_frame(self, scene: "Scene", index: int, data: FrameData) -> FrameData:
        """Return frame ``index``'s arrays with the dataset's conventions applied (may modify ``data``)."""
        ...


# --------------------------------------------------------------------------------------------------------------
# Validators shared by the readers
# --------------------------------------------------------------------------------------------------------------


def scene_file(scene: Scene) -> Path:
    """The file that describes ``scene`` (named in messages): ``scene.extras['scene_file']`` when a reader recorded
    it, else ``ROOT/transforms.json``."""
    return Path(scene.extras.get("scene_file", scene.root / "transforms.json"))


def require_segments(scene: Scene, command: str = "lift3d fit") -> None:
    """Raise :class:`MissingSegmentsError` (one line: which file, that it has no segments, the fix) unless
    ``scene.has_segments``. Called before any work by the commands that train on segments."""
    if scene.has_segments:
        return
    missing = [f for f in scene.frames if f.instance_path is None]
    first = missing[0]
    raise MissingSegmentsError(
        f"{scene_file(scene)}: the scene has no 2D segments (frame {first.index} ({first.name}) and "
        f"{len(missing) - 1} more have no instance_file_path / semantic_file_path), which `{command}` needs. Add "
        f"them first: `lift3d segments predict {scene.root} --segmenter classical` (or another segmenter), or "
        f"`lift3d segments import {scene.root} SEGMENTS_DIR --kind id-maps`."
    )


def check_camera_to_world(matrix, where: str) -> np.ndarray:
    """A validated ``[4, 4]`` float64 camera-to-world from a ``3x4`` or ``4x4`` nested list / array.

    Raises :class:`SceneFormatError` (prefixed with ``where``) unless it is numeric, finite, of one of those shapes,
    and its rotation part is orthonormal: ``max |R^T R - I| <= 1e-2``.
    """
    try:
        c2w = np.asarray(matrix, dtype=np.float64)
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
        raise SceneFormatError(
            f"{where}: the rotation part of transform_matrix is not orthonormal "
            f"(max |R^T R - I| = {np.abs(rot.T @ rot - np.eye(3)).max():.4f}, "
            f"det={np.linalg.det(rot):.4f}); remove any scale or shear from the pose."
        )
    return c2w


ASPECT_TOLERANCE = 0.02
"""Depth maps, masks and confidence maps of another size than the image are resampled when their aspect ratio (w / h) is within
this relative tolerance of the image's (Polycam, Record3D: 256x192 depth beside 1024x768 or 960x720 images)."""


def _size_ok(key: str, size: Tuple[int, int], frame: Frame) -> bool:
    """Whether a file of ``size`` = (height, width) can serve the frame: the frame's size or its files' size; for
    depth and masks any size of the same aspect ratio (resampled by ``load_frame``)."""
    if size == (frame.height, frame.width) or size == frame.file_size:
        return True
    if key in ("depth_file_path", "mask_path", "confidence_file_path") and min(size) > 0:
        return abs((size[1] / size[0]) / (frame.width / frame.height) - 1.0) <= ASPECT_TOLERANCE
    return False


def check_frame_files(frame: Frame, where: str) -> None:
    """Every file of ``frame`` exists, decodes completely (a truncated or corrupt file is reported here, not
    mid-fit), has the frame's size (or :attr:`Frame.file_size`; depth and masks: the same aspect ratio, see
    :data:`ASPECT_TOLERANCE`); id maps are single-channel integers, depth single-channel."""
    checks = [
        ("file_path", frame.image_path, "rgb"),
        ("instance_file_path", frame.instance_path, "id"),
        ("semantic_file_path", frame.semantic_path, "id"),
        ("confidence_file_path", frame.confidence_path, "grey"),
        ("depth_file_path", frame.depth_path, "grey"),
        ("gt_instance_file_path", frame.gt_instance_path, "id"),
        ("gt_semantic_file_path", frame.gt_semantic_path, "id"),
        ("mask_path", frame.mask_path, "mask"),
    ]
    for key, path, kind in checks:
        if path is None:
            continue
        if not path.exists():
            raise SceneFormatError(f"{where}: {key} {path} does not exist; restore the file or remove the frame.")
        try:
            size, channels, dtype = read_image_size(path)
            verify_image(path)
        except Exception as e:  # unreadable / truncated / corrupt
            raise SceneFormatError(
                f"{where}: {key} {path} cannot be read ({type(e).__name__}: {e}); the file is damaged or truncated. "
                "Write it again (or remove the frame)."
            ) from None
        if not _size_ok(key, size, frame):
            raise SceneFormatError(
                f"{where}: {key} {path.name} is {size[1]}x{size[0]} but the frame is "
                f"{frame.width}x{frame.height} (w x h)."
            )
        if kind == "id":
            if channels != 1:
                raise SceneFormatError(
                    f"{where}: {key} {path.name} must be a single-channel id map, it has {channels} channels."
                )
            if dtype is not None and not np.issubdtype(dtype, np.integer):
                raise SceneFormatError(f"{where}: {key} {path.name} must hold integer ids, it holds {dtype}.")
        if kind == "grey" and channels != 1:
            raise SceneFormatError(
                f"{where}: {key} {path.name} must be a single-channel image, it has {channels} channels (write depth "
                "as a 16-bit grey PNG or a float .npy, confidence as a grey PNG)."
            )


SKIP_HINT = " (or pass --skip-bad-frames / load_scene(..., skip_bad_frames=True) to drop such frames and go on)"
"""Appended to a bad frame's error when the reader could have skipped it."""


def check_frames(
    frames: List[Frame], where: Callable[[Frame], str], check: Callable[[Frame], None], skip_bad_frames: bool
) -> Tuple[List[Frame], List[dict]]:
    """Run ``check(frame)`` on every frame; a frame whose check raises :class:`SceneFormatError` is dropped when
    ``skip_bad_frames`` (recorded as ``{"index", "name", "reason"}``), else the error is raised with
    :data:`SKIP_HINT` appended. Returns ``(kept frames, skipped records)``; kept frames keep their indices (call
    :func:`renumber_frames` once the split is known)."""
    kept, skipped = [], []
    for f in frames:
        try:
            check(f)
        except SceneFormatError as err:
            if not skip_bad_frames:
                raise SceneFormatError(str(err).rstrip(".") + "." + SKIP_HINT) from None
            skipped.append({"index": f.index, "name": f.name, "reason": str(err)})
            continue
        kept.append(f)
    if not kept:
        raise SceneFormatError(f"{where(frames[0])}: every frame is unreadable; nothing is left to load.")
    return kept, skipped


def renumber_frames(frames: List[Frame], *index_lists: List[int]) -> Tuple[List[Frame], ...]:
    """Re-index ``frames`` 0..n-1 in their order (in place) and map each of ``index_lists`` (old
    :attr:`Frame.index` values; those of frames no longer there are left out) to the new indices. Returns
    ``(frames, mapped list, ...)``."""
    new_of = {f.index: i for i, f in enumerate(frames)}
    for i, f in enumerate(frames):
        f.index = i
    return (frames,) + tuple([new_of[i] for i in indices if i in new_of] for indices in index_lists)


def check_semantic_ids(sem: np.ndarray, class_ids: set[int], where: str) -> None:
    """Every id of the semantic map ``sem`` ``[H, W]`` is one of ``class_ids``."""
    unknown = sorted(set(np.unique(sem).tolist()) - class_ids)
    if unknown:
        raise SceneFormatError(
            f"{where}: semantic ids {unknown[:10]} are not in 'classes' ({sorted(class_ids)}); add them to 'classes' "
            "in transforms.json or fix the map."
        )


def check_frame_ids(scene: Scene, where: str | Path) -> None:
    """On every frame, train and test: the 2D segmenter's and the ground truth's semantic ids are classes of the
    scene and instance ids are >= 0 (each id map is decoded once). ``where`` names the scene file in messages."""
    class_ids = {c.id for c in scene.classes}
    for f in scene.frames:
        at = f"{where}, frame {f.index} ({f.name})"
        for key, path, semantic in (
            ("semantic_file_path", f.semantic_path, True),
            ("gt_semantic_file_path", f.gt_semantic_path, True),
            ("instance_file_path", f.instance_path, False),
            ("gt_instance_file_path", f.gt_instance_path, False),
        ):
            if path is None:
                continue
            ids = read_id_map(path)
            if semantic:
                check_semantic_ids(ids, class_ids, f"{at} {key} {path.name}")
            elif ids.size and ids.min() < 0:
                raise SceneFormatError(
                    f"{at}: {key} {path.name} holds negative instance ids (min {int(ids.min())}); ids are >= 0 with "
                    "0 = no segment. Relabel the map."
                )
