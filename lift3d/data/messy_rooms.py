"""The released Messy Rooms layout (paper 004): reader, writer and converters to / from lift3d's scene format.

A release folder (see ``docs/messy-rooms-format.md`` for every assumption)::

    metadata.json                 kubric-style: "metadata" (resolution, num_frames), "camera" (normalised K,
                                  positions, (w, x, y, z) quaternions of a Blender camera, focal_length, ...)
    color/00000.png               RGB (or RGBA), 8-bit; frames are the numeric stems of color/*.png, sorted
    depth/00000.png               16-bit millimetres
    semantic/00000.npy            ground-truth classes (0 background, 1 object), integer [H, W]
    instance/00000.npy            ground-truth instance ids, consistent across frames, integer [H, W]
    detic_semantic/00000.npy      the 2D segmenter's (Detic's) classes
    detic_instance/00000.npy      the 2D segmenter's instance ids (arbitrary per frame)
    detic_probabilities/00000.npy the 2D segmenter's per-pixel confidence, float [H, W]
    invalid/00000.jpg             (optional) non-zero where a pixel is to be ignored

Cameras (paper 004's reference loader): ``K_pixels = diag(W, H, 1) @ K`` then absolute values, so
``fx = |K00| W, cx = |K02| W, fy = |K11| H, cy = |K12| H``; the camera-to-world of frame ``i`` is
``[R(q_i) | p_i]`` with ``q_i = (w, x, y, z)``: a Blender camera (looks down -z, y up), which *is* lift3d's
OpenGL ``transform_matrix``; ``[R | p] @ diag(1, -1, -1, 1)`` is the OpenCV camera-to-world.

:func:`load_release` turns a release folder into a :class:`~lift3d.data.scene.Scene` (no copies: frames point at
the release's files), so ``lift3d fit RELEASE_DIR`` works unchanged (``load_scene`` detects the layout). Split as
the reference: frames sorted by number, the last 20 % (``frames[int(0.8 N):]``) are test frames.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Literal, Optional, Sequence, Tuple

import numpy as np

from lift3d.data.images import write_depth_png, write_rgb

__all__ = ["RELEASE_DIRS", "TEST_FRACTION", "is_release_folder", "release_frame_names", "read_release_cameras",
           "release_camera_metadata", "write_release", "write_release_frame", "export_scene_to_release",
           "load_release", "DepthKind"]

RELEASE_DIRS = ("color", "depth", "semantic", "instance", "detic_semantic", "detic_instance", "detic_probabilities")
TEST_FRACTION = 0.2
"""The reference holds out the last 20 % of the frames sorted by number."""
SENSOR_WIDTH_MM = 36.0
"""Sensor width written to ``metadata.json`` (kubric's default); only the ratio focal_length / sensor_width matters."""
DepthKind = Literal["distance", "z"]
"""``distance``: metres from the camera centre along the pixel's ray (kubric's ``depth`` layer);
``z``: metres along the optical axis (kubric's ``z`` layer, lift3d's convention)."""
DEFAULT_RELEASE_DEPTH: DepthKind = "distance"
"""Assumed for a release whose metadata.json does not say (``lift3d.depth``): kubric's ``depth`` layer. Override
with the environment variable ``LIFT3D_RELEASE_DEPTH`` (``distance``, ``z`` or ``none`` to ignore depth)."""
CLASSES = [{"id": 0, "name": "background", "thing": False}, {"id": 1, "name": "object", "thing": True}]


# --------------------------------------------------------------------------------------------------------------
# Cameras
# --------------------------------------------------------------------------------------------------------------


def _quat_wxyz_to_matrix(q: Sequence[float]) -> np.ndarray:
    """Quaternion ``(w, x, y, z)`` (normalised here) -> rotation ``[3, 3]``."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _matrix_to_quat_wxyz(R: np.ndarray) -> Tuple[float, float, float, float]:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    if w < 0:  # one of the two equal quaternions, with w >= 0
        w, x, y, z = -w, -x, -y, -z
    return float(w), float(x), float(y), float(z)


def release_camera_metadata(camera_to_world: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                            width: int, height: int) -> Dict:
    """The kubric-style ``camera`` record: normalised ``K``, per-frame ``positions`` and ``(w, x, y, z)``
    ``quaternions`` of the Blender camera (= the OpenGL camera-to-world ``[V, 4, 4]``), ``focal_length`` (mm),
    ``sensor_width`` (mm) and the horizontal ``field_of_view`` (radians).

    ``K = [[fx/W, 0, -cx/W], [0, -fy/H, -cy/H], [0, 0, -1]]`` (kubric's sign convention: a camera looking down
    -z with y up); the reference loader takes absolute values after scaling rows by W and H.
    """
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    K = [[fx / width, 0.0, -cx / width], [0.0, -fy / height, -cy / height], [0.0, 0.0, -1.0]]
    return {
        "K": K,
        "focal_length": fx * SENSOR_WIDTH_MM / width,
        "sensor_width": SENSOR_WIDTH_MM,
        "field_of_view": 2.0 * math.atan2(width / 2.0, fx),
        "positions": c2w[:, :3, 3].tolist(),
        "quaternions": [list(_matrix_to_quat_wxyz(m[:3, :3])) for m in c2w],
    }


def read_release_cameras(meta: Dict, width: int, height: int, where: str = "metadata.json"
                         ) -> Tuple[Tuple[float, float, float, float], np.ndarray]:
    """``((fx, fy, cx, cy), camera_to_world [V, 4, 4])`` from a release's ``metadata.json`` dict.

    Intrinsics: ``K_pixels = |diag(W, H, 1) @ K|`` (the reference loader's rule). Poses: ``[R(q) | p]`` of the
    Blender camera, i.e. OpenGL axes as lift3d's ``transform_matrix``.
    """
    from lift3d.data.scene import SceneFormatError

    try:
        cam = meta["camera"]
        K = np.abs(np.asarray(cam["K"], dtype=np.float64) * np.array([[width], [height], [1.0]]))
        positions = np.asarray(cam["positions"], dtype=np.float64)
        quats = np.asarray(cam["quaternions"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise SceneFormatError(f"{where}: expected camera.K (3x3), camera.positions [N, 3] and camera.quaternions "
                               f"[N, 4] (w, x, y, z) as kubric writes them ({type(err).__name__}: {err}).") from None
    if K.shape != (3, 3) or positions.ndim != 2 or positions.shape[1] != 3 or quats.shape != (len(positions), 4):
        raise SceneFormatError(f"{where}: camera.K must be 3x3, camera.positions [N, 3] and camera.quaternions "
                               f"[N, 4]; got {K.shape}, {positions.shape}, {quats.shape}.")
    if not (np.isfinite(K).all() and np.isfinite(positions).all() and np.isfinite(quats).all()):
        raise SceneFormatError(f"{where}: camera values must be finite.")
    if (np.linalg.norm(quats, axis=1) < 1e-8).any():
        raise SceneFormatError(f"{where}: camera.quaternions holds a zero quaternion.")
    c2w = np.tile(np.eye(4), (len(positions), 1, 1))
    for i, (p, q) in enumerate(zip(positions, quats)):
        c2w[i, :3, :3] = _quat_wxyz_to_matrix(q)
        c2w[i, :3, 3] = p
    return (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])), c2w


# --------------------------------------------------------------------------------------------------------------
# Depth conventions
# --------------------------------------------------------------------------------------------------------------


def ray_length_per_z(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    """``[H, W]`` factor ``distance / z = || ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1) ||`` of every pixel."""
    u = (np.arange(width) + 0.5 - cx) / fx
    v = (np.arange(height) + 0.5 - cy) / fy
    return np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def frame_name(index: int) -> str:
    """File stem of frame ``index`` in a release written by lift3d: ``00000``, ``00001``, ..."""
    return f"{index:05d}"


def write_release_frame(root: Path, index: int, rgb: np.ndarray, depth_z: Optional[np.ndarray],
                        gt_instance: np.ndarray, gt_semantic: np.ndarray, instance: np.ndarray, semantic: np.ndarray,
                        confidence: np.ndarray, ray_factor: Optional[np.ndarray], depth_kind: DepthKind) -> None:
    """Write one frame's files under ``root`` (folders must exist). ``depth_z`` is metres along the optical axis
    (``[H, W]``, 0 = unknown), stored as ``depth_kind`` in 16-bit millimetres (``ray_factor`` from
    :func:`ray_length_per_z` converts z to distance)."""
    name = frame_name(index)
    write_rgb(root / "color" / f"{name}.png", np.asarray(rgb)[..., :3])
    if depth_z is not None:
        d = np.asarray(depth_z, dtype=np.float64)
        if depth_kind == "distance":
            d = d * ray_factor
        write_depth_png(root / "depth" / f"{name}.png", d)
    for folder, arr, dtype in (("instance", gt_instance, np.int32), ("semantic", gt_semantic, np.uint8),
                               ("detic_instance", instance, np.int32), ("detic_semantic", semantic, np.uint8)):
        arr = np.asarray(arr)
        if arr.min(initial=0) < np.iinfo(dtype).min or arr.max(initial=0) > np.iinfo(dtype).max:
            raise ValueError(f"{root / folder / name}.npy: ids {arr.min()}..{arr.max()} do not fit {np.dtype(dtype)}.")
        np.save(root / folder / f"{name}.npy", arr.astype(dtype))
    np.save(root / "detic_probabilities" / f"{name}.npy", np.clip(np.asarray(confidence, np.float32), 0.0, 1.0))


@contextlib.contextmanager
def _release_folder(out_dir: Path, overwrite: bool, with_depth: bool) -> Iterator[Path]:
    """Yield a temporary release folder (``RELEASE_DIRS`` made, ``depth/`` only ``with_depth``) beside
    ``out_dir``; on normal exit it replaces ``out_dir`` in one rename, on any exception it is removed and
    ``out_dir`` is left as it was."""
    tmp = _atomic_folder(out_dir, overwrite)
    try:
        if not with_depth:
            shutil.rmtree(tmp / "depth")
        yield tmp
        _finish_folder(tmp, Path(out_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _atomic_folder(out_dir: Path, overwrite: bool) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty; choose another folder or pass "
                              "overwrite=True.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in RELEASE_DIRS:
        (tmp / sub).mkdir(parents=True)
    return tmp


def _finish_folder(tmp: Path, out_dir: Path) -> None:
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    else:
        os.replace(tmp, out_dir)


def _metadata(camera: Dict, width: int, height: int, num_frames: int, depth_kind: DepthKind,
              extra: Optional[Dict]) -> Dict:
    meta = {
        "metadata": {"resolution": [width, height], "num_frames": num_frames},
        "camera": camera,
        "lift3d": {"depth": depth_kind, "depth_unit": 0.001, "classes": CLASSES,
                   "written_by": "lift3d.data.messy_rooms"},
    }
    if extra:
        meta.update(extra)
    return meta


def write_release(out_dir: Path, *, rgb: np.ndarray, depth: Optional[np.ndarray], gt_instance: np.ndarray,
                  gt_semantic: np.ndarray, instance: np.ndarray, semantic: np.ndarray, confidence: np.ndarray,
                  camera_to_world: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                  depth_kind: DepthKind = DEFAULT_RELEASE_DEPTH, extra_metadata: Optional[Dict] = None,
                  overwrite: bool = False) -> Path:
    """Write ``[V, ...]`` stacks in the released Messy Rooms layout (see the module docstring), atomically.

    ``rgb [V, H, W, 3]`` uint8; ``depth [V, H, W]`` metres along the optical axis (or None); ground-truth
    ``gt_instance`` / ``gt_semantic`` and the segmenter's ``instance`` / ``semantic`` ``[V, H, W]`` integers;
    ``confidence [V, H, W]`` in [0, 1]; ``camera_to_world [V, 4, 4]`` OpenGL axes; pinhole intrinsics in pixels.
    ``extra_metadata`` entries are added to metadata.json at the top level (e.g. kubric-style ``instances``).
    """
    V, H, W = np.asarray(gt_instance).shape
    out_dir = Path(out_dir)
    with _release_folder(out_dir, overwrite, with_depth=depth is not None) as tmp:
        factor = ray_length_per_z(fx, fy, cx, cy, W, H)
        for v in range(V):
            write_release_frame(tmp, v, rgb[v], None if depth is None else depth[v], gt_instance[v], gt_semantic[v],
                                instance[v], semantic[v], confidence[v], factor, depth_kind)
        camera = release_camera_metadata(camera_to_world, fx, fy, cx, cy, W, H)
        meta = _metadata(camera, W, H, V, depth_kind, extra_metadata)
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=1))
    return out_dir


def export_scene_to_release(scene_dir: Path, out_dir: Path, depth_kind: DepthKind = DEFAULT_RELEASE_DEPTH,
                            overwrite: bool = False) -> Path:
    """Convert a lift3d scene (with ground truth; one shared set of intrinsics) into the release layout.

    Frames are written in ``transforms.json`` order as ``00000, 00001, ...``; note that the release's split rule
    (last 20 %) replaces the scene's own split. A scene without confidence maps gets confidence 1.
    """
    from lift3d.data.scene import load_frame, load_scene

    scene = load_scene(scene_dir)
    if not scene.has_ground_truth:
        raise ValueError(f"{scene.root}: the release layout needs ground truth (gt_instance_file_path and "
                         "gt_semantic_file_path on every frame).")
    f0 = scene.frames[0]
    for f in scene.frames:
        if (f.width, f.height) != (f0.width, f0.height) or not np.allclose(f.intrinsics(), f0.intrinsics()):
            raise ValueError(f"{scene.root}: frame {f.index} ({f.name}) has other intrinsics than frame 0; the "
                             "release layout has one camera K for all frames.")
    out_dir = Path(out_dir)
    with _release_folder(out_dir, overwrite, with_depth=scene.has_depth) as tmp:
        factor = ray_length_per_z(f0.fx, f0.fy, f0.cx, f0.cy, f0.width, f0.height)
        for f in scene.frames:
            d = load_frame(scene, f.index, with_ground_truth=True)
            rgb8 = np.round(d.rgb * 255.0).astype(np.uint8)
            conf = d.confidence if d.confidence is not None else np.ones(d.instance.shape, np.float32)
            write_release_frame(tmp, f.index, rgb8, d.depth, d.gt_instance, d.gt_semantic, d.instance, d.semantic,
                                conf, factor, depth_kind)
        c2w = np.stack([f.camera_to_world for f in scene.frames])
        camera = release_camera_metadata(c2w, f0.fx, f0.fy, f0.cx, f0.cy, f0.width, f0.height)
        meta = _metadata(camera, f0.width, f0.height, len(scene.frames), depth_kind,
                         {"lift3d_source": str(scene.root)})
        meta["lift3d"]["classes"] = [{"id": c.id, "name": c.name, "thing": c.thing} for c in scene.classes]
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=1))
    return out_dir


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


def is_release_folder(path: Path) -> bool:
    """True for a folder holding ``metadata.json`` and a ``color/`` folder (and no ``transforms.json``)."""
    path = Path(path)
    return (path.is_dir() and (path / "metadata.json").is_file() and (path / "color").is_dir()
            and not (path / "transforms.json").exists())


def _frame_sort_key(stem: str):
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def release_frame_names(path: Path) -> List[str]:
    """Stems of ``color/*.png`` (``.jpg`` if there is no PNG), numeric stems sorted by number, then the others by
    name (the reference sorts the same way)."""
    color = Path(path) / "color"
    stems = [p.stem for p in color.iterdir() if p.suffix.lower() == ".png"]
    if not stems:
        stems = [p.stem for p in color.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")]
    return sorted(stems, key=_frame_sort_key)


def _image_file(folder: Path, stem: str) -> Optional[Path]:
    for ext in (".png", ".jpg", ".jpeg"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def _release_depth_kind(meta: Dict) -> Optional[DepthKind]:
    env = os.environ.get("LIFT3D_RELEASE_DEPTH")
    if env:
        if env not in ("distance", "z", "none"):
            raise ValueError(f"LIFT3D_RELEASE_DEPTH={env!r}; expected 'distance', 'z' or 'none'.")
        return None if env == "none" else env  # type: ignore[return-value]
    kind = meta.get("lift3d", {}).get("depth", DEFAULT_RELEASE_DEPTH)
    if kind not in ("distance", "z"):
        raise ValueError(f"metadata.json: lift3d.depth={kind!r}; expected 'distance' or 'z'.")
    return kind


def load_release(path: Path, check_files: bool = True, segments: str = "detic"):
    """Read a release folder as a :class:`~lift3d.data.scene.Scene` (frames point at the release's files).

    ``segments`` names the 2D segmenter folders ``{segments}_instance``, ``{segments}_semantic`` and
    ``{segments}_probabilities`` (the last optional). Ground truth (``instance/``, ``semantic/``) and ``depth/``
    are used when present for every frame. When a frame is loaded (:func:`~lift3d.data.scene.load_frame`), as in
    the reference loader the confidence of pixels whose segmenter class is 0 (background) becomes 1, pixels
    marked in ``invalid/`` get confidence 0, and depth stored as distance from the camera centre is converted to
    distance along the optical axis.
    """
    from lift3d.data.images import read_id_map, read_image_size
    from lift3d.data.scene import Frame, Scene, SceneClass, SceneFormatError, _check_frame_files, _check_semantic_ids

    root = Path(path)
    meta_path = root / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise SceneFormatError(f"{meta_path}: invalid JSON ({err}).") from None
    names = release_frame_names(root)
    if not names:
        raise SceneFormatError(f"{root / 'color'}: no .png (or .jpg) images; a Messy Rooms release holds "
                               "color/00000.png, color/00001.png, ...")
    first = _image_file(root / "color", names[0])
    (height, width), _, _ = read_image_size(first)
    (fx, fy, cx, cy), c2w = read_release_cameras(meta, width, height, str(meta_path))
    if len(c2w) != len(names):
        raise SceneFormatError(f"{meta_path}: {len(c2w)} camera poses but {len(names)} images in {root / 'color'}; "
                               "each color image needs one pose (in sorted frame order).")
    inst_dir, sem_dir, conf_dir = (root / f"{segments}_instance", root / f"{segments}_semantic",
                                   root / f"{segments}_probabilities")
    for d in (inst_dir, sem_dir):
        if not d.is_dir():
            raise SceneFormatError(f"{d}: missing. A release needs the 2D segmenter's {d.name}/<frame>.npy maps; "
                                   "import other segments with `lift3d segments import`.")

    def all_present(folder: Path, ext: str) -> bool:
        return folder.is_dir() and all((folder / f"{n}{ext}").is_file() for n in names)

    has_conf = all_present(conf_dir, ".npy")
    depth_kind = _release_depth_kind(meta)
    has_depth = depth_kind is not None and all_present(root / "depth", ".png")
    has_gt = all_present(root / "instance", ".npy") and all_present(root / "semantic", ".npy")
    frames = []
    for i, n in enumerate(names):
        frame = Frame(
            index=i, name=f"color/{_image_file(root / 'color', n).name}", image_path=_image_file(root / "color", n),
            instance_path=inst_dir / f"{n}.npy", semantic_path=sem_dir / f"{n}.npy",
            confidence_path=conf_dir / f"{n}.npy" if has_conf else None,
            depth_path=root / "depth" / f"{n}.png" if has_depth else None,
            gt_instance_path=root / "instance" / f"{n}.npy" if has_gt else None,
            gt_semantic_path=root / "semantic" / f"{n}.npy" if has_gt else None,
            camera_to_world=c2w[i], fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)
        if check_files:
            _check_frame_files(frame, f"{root}, frame {i} ({frame.name})")
        frames.append(frame)
    raw_classes = meta.get("lift3d", {}).get("classes", CLASSES)
    classes = [SceneClass(int(c["id"]), str(c["name"]), bool(c["thing"])) for c in raw_classes]
    num_train = int(len(frames) * (1.0 - TEST_FRACTION))
    invalid_dir = root / "invalid"
    scene = Scene(root=root, frames=frames, classes=classes, train_indices=list(range(num_train)),
                  test_indices=list(range(num_train, len(frames))), depth_unit_scale_factor=0.001, aabb=None,
                  has_depth=has_depth, has_confidence=True, has_ground_truth=has_gt,
                  extras={"format": "messy_rooms_release", "depth_kind": depth_kind,
                          "frame_stems": names, "frame_adapter": _ReleaseFrameAdapter(
                              names, invalid_dir if invalid_dir.is_dir() else None,
                              ray_length_per_z(fx, fy, cx, cy, width, height) if depth_kind == "distance" else None)})
    if check_files:
        ids = {c.id for c in classes}
        for f in frames[: min(3, len(frames))]:
            _check_semantic_ids(read_id_map(f.semantic_path), ids, f"{root}, frame {f.index} ({f.semantic_path.name})")
    return scene


class _ReleaseFrameAdapter:
    """Applied by ``load_frame`` to a release frame: the reference loader's conventions (see :func:`load_release`)."""

    def __init__(self, stems: List[str], invalid_dir: Optional[Path], ray_factor: Optional[np.ndarray]) -> None:
        self.stems, self.invalid_dir, self.ray_factor = stems, invalid_dir, ray_factor

    def __call__(self, scene, index: int, data):
        conf = data.confidence if data.confidence is not None else np.ones(data.instance.shape, np.float32)
        conf = conf.astype(np.float32, copy=True)
        conf[data.semantic == 0] = 1.0
        if self.invalid_dir is not None:
            mask_file = _image_file(self.invalid_dir, self.stems[index])
            if mask_file is not None:
                from PIL import Image

                with Image.open(mask_file) as im:
                    invalid = np.asarray(im.convert("L")) > 0
                conf[invalid] = 0.0
        data.confidence = conf
        if data.depth is not None and self.ray_factor is not None:
            data.depth = (data.depth / self.ray_factor).astype(np.float32)
        return data
