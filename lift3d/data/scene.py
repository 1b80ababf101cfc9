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
from typing import Optional, Protocol, runtime_checkable

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
    "check_camera_to_world",
    "check_frame_files",
    "check_semantic_ids",
    "check_frame_ids",
]


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
    distortion: Optional[Distortion] = None
    """Lens distortion of the frame's camera (None: ideal pinhole)."""
    mask_path: Optional[Path] = None
    """Optional per-pixel mask (nerfstudio ``mask_path``: 0 = pixel excluded from every loss and from clustering)."""

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
    valid_mask: Optional[np.ndarray] = None
    """bool [H, W], False = pixel excluded from every loss and from clustering samples (from ``mask_path``)."""


@runtime_checkable
class FrameAdapter(Protocol):
    """A reader's dataset-specific conventions, applied by ``load_frame`` to each frame's arrays after reading.

    An adapter may change the values of ``confidence`` (e.g. ignore masks set it to 0, a background rule sets it to
    1; it may create it when the files have none) and of ``depth`` (e.g. convert distance along the ray to depth
    along the optical axis). It must keep every array's shape, must not change the ids of ``instance``,
    ``semantic``, ``gt_instance`` or ``gt_semantic``, and must not change the scene or its frames.
    """

    def adapt_frame(self, scene: "Scene", index: int, data: FrameData) -> FrameData:
        """Return frame ``index``'s arrays with the dataset's conventions applied (may modify ``data``)."""
        ...


# --------------------------------------------------------------------------------------------------------------
# Validators shared by the readers
# --------------------------------------------------------------------------------------------------------------


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


def check_frame_files(frame: Frame, where: str) -> None:
    """Every file of ``frame`` exists, decodes completely (a truncated or corrupt file is reported here, not
    mid-fit), has the frame's size; id maps are single-channel integers, depth single-channel."""
    checks = [
        ("file_path", frame.image_path, "rgb"),
        ("instance_file_path", frame.instance_path, "id"),
        ("semantic_file_path", frame.semantic_path, "id"),
        ("confidence_file_path", frame.confidence_path, "grey"),
        ("depth_file_path", frame.depth_path, "grey"),
        ("gt_instance_file_path", frame.gt_instance_path, "id"),
        ("gt_semantic_file_path", frame.gt_semantic_path, "id"),
    ]
    for key, path, kind in checks:
        if path is None:
            continue
        if not path.exists():
            raise SceneFormatError(f"{where}: {key} {path} does not exist.")
        try:
            size, channels, dtype = read_image_size(path)
            verify_image(path)
        except Exception as e:  # unreadable / truncated / corrupt
            raise SceneFormatError(
                f"{where}: {key} {path} cannot be read ({type(e).__name__}: {e}); the file is damaged or truncated. "
                "Write it again (or remove the frame)."
            ) from None
        if size != (frame.height, frame.width):
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
