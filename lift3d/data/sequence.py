"""Video (+ LiDAR) sequences: a scene folder with ``sequence.json`` and per-frame flow and LiDAR sidecar files.

The format is ``docs/sequence-format.md``. A sequence *is* a lift3d scene (``transforms.json``, frames in time
order), so :func:`lift3d.data.loading.load_scene` reads it unchanged; :func:`load_sequence` adds the clips, the
sensors and the sidecar files, and validates them before any work starts (every problem is a
:class:`~lift3d.data.scene.SceneFormatError` naming the file, the frame and the fix). :func:`load_sequence_frame`
reads one frame's arrays: images, depth, ids, the forward flow to the next frame of its clip and the LiDAR scan.

>>> seq = load_sequence("outputs/sequences/train")  # doctest: +SKIP
>>> for clip in seq.clips:  # doctest: +SKIP
...     frames = [load_sequence_frame(seq, i) for i in clip.frames]
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from lift3d.data.loading import load_frame, load_scene
from lift3d.data.scene import Scene, SceneFormatError
from lift3d.geometry.cameras import Intrinsics
from lift3d.geometry.lidar import LidarSensor

__all__ = [
    "SEQUENCE_FILE",
    "SEQUENCE_VERSION",
    "Clip",
    "LidarRig",
    "FlowSettings",
    "SceneSequence",
    "LidarScan",
    "SequenceFrameData",
    "load_sequence",
    "load_sequence_frame",
    "load_clip",
    "read_flow_file",
    "read_lidar_file",
]

SEQUENCE_FILE = "sequence.json"
"""Name of the sequence metadata file beside ``transforms.json``."""
SEQUENCE_VERSION = 1
"""The version of ``sequence.json`` this module reads and the generator writes."""
FLOW_KEYS = ("flow", "valid")
LIDAR_KEYS = ("points", "instance", "semantic", "range_image", "range_instance", "range_semantic")


@dataclass(frozen=True)
class Clip:
    """One continuous clip of the sequence."""

    name: str
    """Name of the clip (``clip_000``, ...)."""
    frames: Tuple[int, ...]
    """Indices into the scene's frames, in time order (consecutive ones are ``1 / fps`` seconds apart)."""
    split: str
    """``train`` or ``test``: the split every frame of the clip belongs to."""


@dataclass(frozen=True)
class LidarRig:
    """The LiDAR sensor and where it is mounted."""

    sensor: LidarSensor
    """Beams, vertical field of view, columns, maximum range."""
    lidar_to_camera: np.ndarray
    """``[4, 4]`` float64 rigid transform from the LiDAR frame (x forward, y left, z up) to the camera frame
    (OpenGL axes); a LiDAR point in the world is ``camera_to_world @ lidar_to_camera @ p``."""
    folder: str = "lidar"
    """Sidecar folder of the LiDAR files, relative to the scene folder."""


@dataclass(frozen=True)
class FlowSettings:
    """Where the flow files are and the occlusion test that made their ``valid`` masks."""

    folder: str = "flow"
    """Sidecar folder of the flow files, relative to the scene folder."""
    depth_tolerance_relative: float = 0.03
    """Relative depth tolerance of the occlusion test."""
    depth_tolerance_m: float = 0.01
    """Absolute depth tolerance (metres) of the occlusion test (the larger of the two is used)."""


@dataclass
class SceneSequence:
    """A validated sequence: the scene plus its clips, sensors and sidecar folders."""

    scene: Scene
    """The scene (``load_scene`` of the same folder); frames in time order."""
    clips: List[Clip]
    """The clips, in the order of ``sequence.json``."""
    fps: float
    """Frames per second of every clip."""
    flow: Optional[FlowSettings]
    """None when the sequence has no flow files."""
    lidar: Optional[LidarRig]
    """None when the sequence has no LiDAR files."""
    trajectory: Dict = field(default_factory=dict)
    """The generator's trajectory settings (plain record)."""
    version: int = SEQUENCE_VERSION
    """Version of ``sequence.json``."""

    @property
    def root(self) -> Path:
        """The scene folder."""
        return self.scene.root

    @property
    def num_frames(self) -> int:
        """Number of frames of the scene."""
        return len(self.scene.frames)

    def clip_of(self, index: int) -> Tuple[int, int]:
        """``(clip number, position in the clip)`` of frame ``index``; ``KeyError`` if no clip holds it."""
        return self._position[index]

    def next_frame(self, index: int) -> Optional[int]:
        """The frame after ``index`` in its clip, or None for a clip's last frame."""
        c, k = self.clip_of(index)
        frames = self.clips[c].frames
        return frames[k + 1] if k + 1 < len(frames) else None

    def frame_stem(self, index: int) -> str:
        """Stem of the frame's ``file_path`` (``images/frame_00003.png`` -> ``frame_00003``): names its sidecars."""
        return self.scene.frames[index].image_path.stem

    def flow_path(self, index: int) -> Optional[Path]:
        """The flow file of frame ``index`` (None without flow or for a clip's last frame)."""
        if self.flow is None or self.next_frame(index) is None:
            return None
        return self.root / self.flow.folder / f"{self.frame_stem(index)}.npz"

    def lidar_path(self, index: int) -> Optional[Path]:
        """The LiDAR file of frame ``index`` (None without LiDAR)."""
        if self.lidar is None:
            return None
        return self.root / self.lidar.folder / f"{self.frame_stem(index)}.npz"

    def __post_init__(self) -> None:
        self._position = {i: (c, k) for c, clip in enumerate(self.clips) for k, i in enumerate(clip.frames)}


@dataclass
class LidarScan:
    """One LiDAR scan (``docs/sequence-format.md``)."""

    points: np.ndarray
    """float32 ``[N, 3]`` returns in the LiDAR frame (x forward, y left, z up), metres."""
    instance: np.ndarray
    """int64 ``[N]`` ground-truth instance (track) id per point, 0 = background."""
    semantic: np.ndarray
    """int64 ``[N]`` ground-truth class per point."""
    range_image: np.ndarray
    """float32 ``[B, W]`` range per cell (spherical projection, nearest return), 0 = no return."""
    range_instance: np.ndarray
    """int64 ``[B, W]`` instance id per cell, 0 where no return."""
    range_semantic: np.ndarray
    """int64 ``[B, W]`` class per cell, 0 where no return."""


@dataclass
class SequenceFrameData:
    """Arrays of one frame of a sequence. Image arrays are ``[H, W]`` (``[H, W, 3]`` for RGB)."""

    index: int
    """Index of the frame in the scene."""
    clip: int
    """Number of the clip holding it."""
    position: int
    """Position of the frame in its clip (0 = first)."""
    rgb: np.ndarray
    """float32 ``[H, W, 3]`` in [0, 1]."""
    depth: Optional[np.ndarray]
    """float32 ``[H, W]`` metres along the optical axis (0 = unknown), None if the scene has no depth."""
    gt_instance: Optional[np.ndarray]
    """int64 ``[H, W]`` ground-truth instance ids = track ids, consistent over the sequence (0 = background)."""
    gt_semantic: Optional[np.ndarray]
    """int64 ``[H, W]`` ground-truth classes."""
    instance: np.ndarray
    """int64 ``[H, W]`` the 2D segmenter's instance ids (arbitrary per frame, 0 = no segment)."""
    semantic: np.ndarray
    """int64 ``[H, W]`` the 2D segmenter's classes."""
    confidence: Optional[np.ndarray]
    """float32 ``[H, W]`` the 2D segmenter's confidence in [0, 1]."""
    flow: Optional[np.ndarray]
    """float32 ``[H, W, 2]`` forward flow ``(du, dv)`` in pixels to the next frame of the clip; None for the last."""
    flow_valid: Optional[np.ndarray]
    """bool ``[H, W]`` True where the pixel is visible in the next frame (not occluded, not out of the image)."""
    lidar: Optional[LidarScan]
    """The LiDAR scan at this frame's time, None without LiDAR."""
    camera_to_world: np.ndarray
    """float64 ``[4, 4]`` camera-to-world (OpenGL axes)."""
    intrinsics: Intrinsics
    """The frame's pinhole camera."""
    lidar_to_world: Optional[np.ndarray] = None
    """float64 ``[4, 4]`` LiDAR-to-world, ``camera_to_world @ lidar_to_camera`` (None without LiDAR)."""


# --------------------------------------------------------------------------------------------------------------
# sequence.json
# --------------------------------------------------------------------------------------------------------------


def _number(value, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SceneFormatError(f"{where}: '{key}' must be a finite number, got {value!r}.")
    return float(value)


def _parse_clips(meta: dict, scene: Scene, where: str) -> List[Clip]:
    clips_raw = meta.get("clips")
    if not isinstance(clips_raw, list) or not clips_raw:
        raise SceneFormatError(f"{where}: 'clips' must be a non-empty list of {{'name', 'frames', 'split'}}.")
    seen: Dict[int, str] = {}
    clips = []
    for c, raw in enumerate(clips_raw):
        name = raw.get("name", f"clip_{c:03d}") if isinstance(raw, dict) else None
        at = f"{where}, clip {c} ({name})"
        frames = raw.get("frames") if isinstance(raw, dict) else None
        if not isinstance(frames, list) or not frames:
            raise SceneFormatError(f"{at}: 'frames' must be a non-empty list of frame indices.")
        for i in frames:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(scene.frames):
                raise SceneFormatError(
                    f"{at}: frame index {i!r} is not an index of transforms.json's {len(scene.frames)} frames "
                    f"(0..{len(scene.frames) - 1})."
                )
            if i in seen:
                raise SceneFormatError(
                    f"{at}: frame {i} ({scene.frames[i].name}) is already in {seen[i]}; each frame belongs to at "
                    "most one clip, once."
                )
            seen[i] = f"clip {c} ({name})"
        split = raw.get("split", "train")
        if split not in ("train", "test"):
            raise SceneFormatError(f"{at}: 'split' must be 'train' or 'test', got {split!r}.")
        clips.append(Clip(str(name), tuple(int(i) for i in frames), split))
    return clips


def _parse_rigid(matrix, where: str) -> np.ndarray:
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise SceneFormatError(f"{where}: 'lidar_to_camera' is not a numeric 4x4 matrix.") from None
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise SceneFormatError(f"{where}: 'lidar_to_camera' must be a finite 4x4 matrix, got shape {m.shape}.")
    rot = m[:3, :3]
    if np.abs(rot.T @ rot - np.eye(3)).max() > 1e-4 or np.linalg.det(rot) < 0 or np.abs(m[3] - [0, 0, 0, 1]).max():
        raise SceneFormatError(
            f"{where}: 'lidar_to_camera' must be rigid (an orthonormal rotation with det +1, last row 0 0 0 1); "
            "remove any scale, shear or mirroring."
        )
    return m


def _parse_lidar(raw, where: str) -> Optional[LidarRig]:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SceneFormatError(f"{where}: 'lidar' must be null or an object (see docs/sequence-format.md).")
    at = f"{where}, lidar"
    try:
        fov_raw = raw.get("vertical_fov_deg")
        if not isinstance(fov_raw, list) or len(fov_raw) != 2:
            raise SceneFormatError(f"{at}: 'vertical_fov_deg' must be [down, up] in degrees, got {fov_raw!r}.")
        fov = tuple(_number(v, "vertical_fov_deg", at) for v in fov_raw)
        sensor = LidarSensor(
            beams=int(_number(raw.get("beams"), "beams", at)),
            vertical_fov_deg=fov,
            columns=int(_number(raw.get("columns"), "columns", at)),
            max_range_m=_number(raw.get("max_range_m", LidarSensor.max_range_m), "max_range_m", at),
        )
    except ValueError as err:
        if isinstance(err, SceneFormatError):
            raise
        raise SceneFormatError(f"{at}: {err}") from None
    return LidarRig(sensor, _parse_rigid(raw.get("lidar_to_camera"), at), str(raw.get("folder", "lidar")))


def _parse_flow(raw, where: str) -> Optional[FlowSettings]:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SceneFormatError(f"{where}: 'flow' must be null or an object (see docs/sequence-format.md).")
    defaults = FlowSettings()
    return FlowSettings(
        folder=str(raw.get("folder", defaults.folder)),
        depth_tolerance_relative=_number(
            raw.get("depth_tolerance_relative", defaults.depth_tolerance_relative), "depth_tolerance_relative", where
        ),
        depth_tolerance_m=_number(raw.get("depth_tolerance_m", defaults.depth_tolerance_m), "depth_tolerance_m", where),
    )


def read_sequence_json(path: Path) -> dict:
    """The parsed ``sequence.json`` at ``path``; :class:`SceneFormatError` if it is missing or not a JSON object."""
    if not path.exists():
        raise SceneFormatError(
            f"{path}: not found; a sequence is a scene folder with a sequence.json (docs/sequence-format.md). "
            "Generate one with `lift3d generate messy-rooms --trajectory video ...`."
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SceneFormatError(f"{path}: not valid JSON ({err}); write the file again.") from None
    if not isinstance(meta, dict):
        raise SceneFormatError(f"{path}: must hold a JSON object, got {type(meta).__name__}.")
    return meta


# --------------------------------------------------------------------------------------------------------------
# Sidecar files
# --------------------------------------------------------------------------------------------------------------


def _read_npz(path: Path, keys: Tuple[str, ...], where: str) -> Dict[str, np.ndarray]:
    """The arrays ``keys`` of the ``.npz`` at ``path``; ``where`` (naming the file and frame) prefixes errors."""
    if not path.exists():
        raise SceneFormatError(f"{where}: the file does not exist; generate the sequence again (or remove the frame).")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise SceneFormatError(f"{where}: lacks the arrays {missing} (it holds {z.files}); write it again.")
            return {k: z[k] for k in keys}
    except SceneFormatError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise SceneFormatError(
            f"{where}: cannot be read ({type(err).__name__}: {err}); the file is damaged or truncated. Write it again."
        ) from None


def _check_array(arr: np.ndarray, kind: str, shape: Tuple[Optional[int], ...], name: str, where: str) -> None:
    """``where`` names the file and frame, ``name`` the array."""
    ok_kind = {
        "float": np.issubdtype(arr.dtype, np.floating),
        "int": np.issubdtype(arr.dtype, np.integer),
        "bool": arr.dtype == np.bool_,
    }[kind]
    if not ok_kind:
        raise SceneFormatError(f"{where}: '{name}' must hold {kind} values, it holds {arr.dtype}.")
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
        raise SceneFormatError(f"{where}: '{name}' must have shape {want}, it has {list(arr.shape)}.")
    if kind == "float" and not np.isfinite(arr).all():
        raise SceneFormatError(f"{where}: '{name}' has non-finite values (NaN/inf).")


def read_flow_file(path: Path, height: int, width: int, where: str = "") -> Tuple[np.ndarray, np.ndarray]:
    """``(flow float32 [H, W, 2], valid bool [H, W])`` of a flow sidecar, checked against the frame's size."""
    where = f"{where}: {path}" if where else str(path)
    z = _read_npz(path, FLOW_KEYS, where)
    _check_array(z["flow"], "float", (height, width, 2), "flow", where)
    _check_array(z["valid"], "bool", (height, width), "valid", where)
    return z["flow"].astype(np.float32), z["valid"]


def read_lidar_file(path: Path, sensor: LidarSensor, where: str = "") -> LidarScan:
    """The :class:`LidarScan` of a LiDAR sidecar, checked against ``sensor`` (range images ``[beams, columns]``)."""
    where = f"{where}: {path}" if where else str(path)
    z = _read_npz(path, LIDAR_KEYS, where)
    n = len(z["points"]) if z["points"].ndim == 2 else None
    grid = (sensor.beams, sensor.columns)
    _check_array(z["points"], "float", (None, 3), "points", where)
    _check_array(z["instance"], "int", (n,), "instance", where)
    _check_array(z["semantic"], "int", (n,), "semantic", where)
    _check_array(z["range_image"], "float", grid, "range_image", where)
    _check_array(z["range_instance"], "int", grid, "range_instance", where)
    _check_array(z["range_semantic"], "int", grid, "range_semantic", where)
    return LidarScan(
        points=z["points"].astype(np.float32),
        instance=z["instance"].astype(np.int64),
        semantic=z["semantic"].astype(np.int64),
        range_image=z["range_image"].astype(np.float32),
        range_instance=z["range_instance"].astype(np.int64),
        range_semantic=z["range_semantic"].astype(np.int64),
    )


def _frame_where(seq: SceneSequence, index: int) -> str:
    f = seq.scene.frames[index]
    return f"{seq.root / SEQUENCE_FILE}, frame {index} ({f.name})"


def _check_sidecars(seq: SceneSequence, check_files: bool) -> None:
    stems: Dict[str, int] = {}
    for clip in seq.clips:
        for i in clip.frames:
            stem = seq.frame_stem(i)
            if stem in stems:
                raise SceneFormatError(
                    f"{_frame_where(seq, i)}: its file stem {stem!r} is also frame {stems[stem]}'s; sidecar files are "
                    "named by the stem, so give the frames distinct file names."
                )
            stems[stem] = i
            where = _frame_where(seq, i)
            f = seq.scene.frames[i]
            for path, reader in (
                (seq.flow_path(i), lambda p: read_flow_file(p, f.height, f.width, where)),
                (seq.lidar_path(i), lambda p: read_lidar_file(p, seq.lidar.sensor, where)),
            ):
                if path is None:
                    continue
                if not path.exists():
                    raise SceneFormatError(
                        f"{where}: {path} does not exist; generate the sequence again (or drop the frame from its clip)."
                    )
                if check_files:
                    reader(path)


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


def load_sequence(path: str | Path, check_files: bool = True) -> SceneSequence:
    """Read and validate the sequence at ``path`` (a scene folder holding ``transforms.json`` and ``sequence.json``).

    The scene is read by :func:`lift3d.data.loading.load_scene` (its checks included). Then ``sequence.json`` is
    checked (version, fps, clips, flow and LiDAR settings), every sidecar file a frame needs must exist, and with
    ``check_files`` each is opened and its arrays checked (keys, dtypes, shapes, finite values).

    Raises:
        SceneFormatError: naming ``sequence.json`` or the sidecar file, the frame and the fix.
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    scene = load_scene(root, check_files=check_files)
    where = str(scene.root / SEQUENCE_FILE)
    meta = read_sequence_json(scene.root / SEQUENCE_FILE)
    version = meta.get("version")
    if version != SEQUENCE_VERSION:
        raise SceneFormatError(
            f"{where}: unsupported 'version' {version!r}; this lift3d reads version {SEQUENCE_VERSION}. "
            "Generate the sequence again with this lift3d."
        )
    fps = _number(meta.get("fps"), "fps", where)
    if fps <= 0:
        raise SceneFormatError(f"{where}: 'fps' must be > 0, got {fps!r}.")
    trajectory = meta.get("trajectory") or {}
    if not isinstance(trajectory, dict):
        raise SceneFormatError(f"{where}: 'trajectory' must be an object, got {type(trajectory).__name__}.")
    seq = SceneSequence(
        scene=scene,
        clips=_parse_clips(meta, scene, where),
        fps=fps,
        flow=_parse_flow(meta.get("flow"), where),
        lidar=_parse_lidar(meta.get("lidar"), where),
        trajectory=trajectory,
        version=int(version),
    )
    _check_sidecars(seq, check_files)
    return seq


def load_sequence_frame(seq: SceneSequence, index: int, with_ground_truth: bool = True) -> SequenceFrameData:
    """Read every array of frame ``index`` of ``seq`` (see :class:`SequenceFrameData` for dtypes and shapes).

    ``flow`` / ``flow_valid`` are None for the last frame of a clip (or without flow), ``lidar`` None without LiDAR.
    """
    if not 0 <= index < seq.num_frames:
        raise IndexError(f"{seq.root}: frame {index} is out of range (the sequence has {seq.num_frames} frames).")
    if index not in seq._position:
        raise SceneFormatError(f"{_frame_where(seq, index)}: the frame is in no clip of {SEQUENCE_FILE}.")
    clip, position = seq.clip_of(index)
    frame = seq.scene.frames[index]
    where = _frame_where(seq, index)
    data = load_frame(seq.scene, index, with_ground_truth=with_ground_truth)
    flow = valid = None
    flow_path = seq.flow_path(index)
    if flow_path is not None:
        flow, valid = read_flow_file(flow_path, frame.height, frame.width, where)
    lidar = lidar_to_world = None
    if seq.lidar is not None:
        lidar = read_lidar_file(seq.lidar_path(index), seq.lidar.sensor, where)
        lidar_to_world = frame.camera_to_world @ seq.lidar.lidar_to_camera
    return SequenceFrameData(
        index=index,
        clip=clip,
        position=position,
        rgb=data.rgb,
        depth=data.depth,
        gt_instance=data.gt_instance,
        gt_semantic=data.gt_semantic,
        instance=data.instance,
        semantic=data.semantic,
        confidence=data.confidence,
        flow=flow,
        flow_valid=valid,
        lidar=lidar,
        camera_to_world=frame.camera_to_world.copy(),
        intrinsics=frame.camera_intrinsics,
        lidar_to_world=lidar_to_world,
    )


def load_clip(seq: SceneSequence, clip: int, with_ground_truth: bool = True) -> List[SequenceFrameData]:
    """Every frame of clip number ``clip``, in time order."""
    return [load_sequence_frame(seq, i, with_ground_truth) for i in seq.clips[clip].frames]
