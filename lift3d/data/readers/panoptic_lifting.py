"""Reader of Panoptic Lifting's preprocessed scenes (ScanNet, Replica, Hypersim; Siddiqui et al. 2023), the layout
Contrastive Lift trains on for those datasets.

One folder per scene::

    color/<frame>.jpg            RGB (.png accepted)
    pose/<frame>.txt             4x4 camera-to-world, OpenCV axes (x right, y down, z forward), whitespace-separated
    intrinsic/intrinsic_color.txt  4x4 (or 3x3) K of the color images: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    m2f_instance/<frame>.png     Mask2Former instance ids (0 = none)            (2D segments, optional)
    m2f_semantics/<frame>.png    Mask2Former class ids, reduced ScanNet classes  (2D segments, optional)
    m2f_probabilities/<frame>.npz  ``probability`` [h, w, C] and ``confidence`` [h, w] (optional; confidence used)
    rs_instance/<frame>.png      ground-truth instance ids (optional, evaluation)
    rs_semantics/<frame>.png     ground-truth class ids (optional, evaluation)
    depth/<frame>.png            16-bit depth in millimetres (optional)
    invalid/<frame>.jpg|png      pixels > 0 lie outside the room: excluded (optional)
    splits.json                  {"train": [frame, ...], "test": [...]} ("val" when there is no "test")

Frames are the stems of ``color/``, numeric stems sorted by number. Without ``splits.json`` every 8th frame is a
test frame. Poses convert to lift3d's OpenGL axes by ``c2w @ diag(1, -1, -1, 1)`` (flip y and z).

Classes: the 21 reduced ScanNet classes Panoptic Lifting maps every dataset to, plus id 0 = void (pixels no class
covers); things are bed, chair, sofa, refrigerator, television, person, toilet, sink and bag. The void class is a
stuff class of the scene (its ids must be valid) and is listed in ``extras['void_class_ids']`` so evaluation can drop
it, as Panoptic Lifting's evaluation does. A ``classes.json`` (``[{"id", "name", "thing"}, ...]``) in the folder
replaces the list. (``segmentation_data.pkl`` is a pickle and is never read.) ``segments`` picks another segmenter
prefix than ``m2f`` (e.g. a folder ``detic_instance/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from lift3d.data.images import read_depth, read_image_size, read_mask, resize_nearest
from lift3d.data.readers.common import IMAGE_EXTENSIONS
from lift3d.data.readers.registry import SceneReader
from lift3d.data.scene import (
    Frame,
    FrameData,
    Scene,
    SceneClass,
    SceneFormatError,
    check_camera_to_world,
    check_frame_files,
    check_frame_ids,
    check_frames,
    renumber_frames,
)

__all__ = ["READER", "can_read", "load_panoptic_lifting", "REDUCED_SCANNET_CLASSES", "InvalidMaskAdapter"]

REDUCED_SCANNET_CLASSES = [
    ("void", False),
    ("wall", False),
    ("floor", False),
    ("cabinet", False),
    ("bed", True),
    ("chair", True),
    ("sofa", True),
    ("table", False),
    ("door", False),
    ("window", False),
    ("counter", False),
    ("shelves", False),
    ("curtain", False),
    ("ceiling", False),
    ("refrigerator", True),
    ("television", True),
    ("person", True),
    ("toilet", True),
    ("sink", True),
    ("lamp", False),
    ("bag", True),
    ("otherprop", False),
]
"""(name, thing) of class ids 0..21: void, then the 21 reduced ScanNet classes of Panoptic Lifting."""
TEST_EVERY = 8
"""Without ``splits.json`` every 8th frame (7, 15, ...) is a test frame."""
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplied onto an OpenCV-axes camera-to-world, gives the OpenGL-axes one."""


def can_read(path: Path) -> bool:
    """True for a folder (without ``transforms.json``) holding ``color/``, ``pose/`` and
    ``intrinsic/intrinsic_color.txt``."""
    path = Path(path)
    return (
        path.is_dir()
        and not (path / "transforms.json").exists()
        and (path / "color").is_dir()
        and (path / "pose").is_dir()
        and (path / "intrinsic" / "intrinsic_color.txt").is_file()
    )


def _frame_stems(root: Path) -> List[str]:
    color = root / "color"
    stems = {p.stem for p in color.iterdir() if p.suffix in IMAGE_EXTENSIONS}
    return sorted(stems, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


def _read_matrix(path: Path, where: str) -> np.ndarray:
    try:
        rows = [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]
        matrix = np.asarray(rows, dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as err:
        raise SceneFormatError(f"{where}: {path.name} is not a whitespace-separated numeric matrix ({err}).") from None
    if matrix.ndim != 2:
        raise SceneFormatError(f"{where}: {path.name} rows have different lengths.")
    return matrix


def _intrinsics(root: Path) -> tuple[float, float, float, float]:
    path = root / "intrinsic" / "intrinsic_color.txt"
    k = _read_matrix(path, str(path))
    if k.shape not in ((3, 3), (4, 4)) or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise SceneFormatError(
            f"{path}: expected a 4x4 (or 3x3) intrinsic matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with positive "
            f"focal lengths, got shape {k.shape}."
        )
    return float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])


def _classes(root: Path) -> List[SceneClass]:
    path = root / "classes.json"
    if not path.is_file():
        return [SceneClass(i, name, thing) for i, (name, thing) in enumerate(REDUCED_SCANNET_CLASSES)]
    try:
        raw = json.loads(path.read_text())
        classes = [SceneClass(int(c["id"]), str(c["name"]), bool(c["thing"])) for c in raw]
    except (ValueError, KeyError, TypeError) as err:
        raise SceneFormatError(
            f"{path}: expected [{{'id': int, 'name': str, 'thing': true|false}}, ...] ({type(err).__name__}: {err})."
        ) from None
    if not any(c.thing for c in classes):
        raise SceneFormatError(f'{path}: no class has "thing": true; lift3d needs at least one thing class.')
    return classes


def _file(folder: Path, stem: str, exts=(".png", ".npy")) -> Optional[Path]:
    for ext in exts:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def _split(root: Path, stems: List[str]) -> tuple[List[int], List[int]]:
    path = root / "splits.json"
    if not path.is_file():
        test = [i for i in range(len(stems)) if i % TEST_EVERY == TEST_EVERY - 1]
        return [i for i in range(len(stems)) if i not in set(test)], test
    try:
        splits = json.loads(path.read_text())
    except ValueError as err:
        raise SceneFormatError(f"{path}: invalid JSON ({err}).") from None
    index = {s: i for i, s in enumerate(stems)}

    def indices(key: str) -> List[int]:
        out = []
        for name in splits.get(key, []):
            stem = Path(str(name)).stem
            if stem not in index:
                raise SceneFormatError(f"{path}: '{key}' lists {name!r}, which is no frame of color/.")
            out.append(index[stem])
        return out

    if not isinstance(splits, dict) or "train" not in splits:
        raise SceneFormatError(f"{path}: expected {{'train': [...], 'test': [...]}}.")
    train = indices("train")
    test = indices("test" if "test" in splits else "val")
    both = sorted(set(train) & set(test))
    if both:
        raise SceneFormatError(
            f"{path}: frames {[stems[i] for i in both[:4]]} are in both train and test; remove them from one list."
        )
    return train, test


def load_panoptic_lifting(
    path: str | Path, check_files: bool = True, skip_bad_frames: bool = False, segments: str = "m2f"
) -> Scene:
    """Read a Panoptic Lifting scene folder (module docstring). Segments (``{segments}_instance/``,
    ``{segments}_semantics/``), their confidence, depth and ground truth are used when every frame has them; the
    scene loads without segments when the folders are absent. ``invalid/`` masks become ``valid_mask``
    (:class:`InvalidMaskAdapter`). Raises :class:`SceneFormatError` naming the file and the frame."""
    root = Path(path)
    stems = _frame_stems(root)
    if not stems:
        raise SceneFormatError(f"{root / 'color'}: no images (.jpg or .png); the layout is color/<frame>.jpg.")
    fx, fy, cx, cy = _intrinsics(root)
    folders = {
        "instance": root / f"{segments}_instance",
        "semantic": root / f"{segments}_semantics",
        "confidence": root / f"{segments}_probabilities",
        "depth": root / "depth",
        "gt_instance": root / "rs_instance",
        "gt_semantic": root / "rs_semantics",
    }

    def for_all(role: str, exts=(".png", ".npy")) -> Optional[Dict[str, Path]]:
        folder = folders[role]
        if not folder.is_dir():
            return None
        files = {s: _file(folder, s, exts) for s in stems}
        return files if all(files.values()) else None

    instance, semantic = for_all("instance"), for_all("semantic")
    if (instance is None) != (semantic is None):
        have = folders["instance"] if instance is not None else folders["semantic"]
        lack = folders["semantic"] if instance is not None else folders["instance"]
        raise SceneFormatError(
            f"{have}: 2D segments need both {folders['instance'].name}/ and {folders['semantic'].name}/ for every "
            f"frame; {lack} is missing or lacks frames."
        )
    confidence = for_all("confidence", (".npz", ".npy", ".png")) if instance is not None else None
    depth = for_all("depth")
    gt_instance, gt_semantic = for_all("gt_instance"), for_all("gt_semantic")
    has_gt = gt_instance is not None and gt_semantic is not None
    frames: List[Frame] = []
    skipped: List[dict] = []
    first_size = (0, 0) if check_files else read_image_size(_file(root / "color", stems[0], IMAGE_EXTENSIONS))[0]
    for i, stem in enumerate(stems):
        image = _file(root / "color", stem, IMAGE_EXTENSIONS)
        where = f"{root}, frame {i} (color/{image.name})"
        try:
            pose_path = root / "pose" / f"{stem}.txt"
            if not pose_path.is_file():
                raise SceneFormatError(f"{where}: pose/{stem}.txt does not exist; every color image needs a pose.")
            c2w = check_camera_to_world(_read_matrix(pose_path, where), f"{where} pose/{stem}.txt") @ OPENCV_TO_OPENGL
            (height, width) = read_image_size(image)[0] if check_files else first_size
        except SceneFormatError as err:
            if not skip_bad_frames:
                raise
            skipped.append({"index": i, "name": f"color/{image.name}", "reason": str(err)})
            continue
        except Exception as err:  # an image whose header cannot be read
            reason = f"{where}: color/{image.name} cannot be read ({type(err).__name__}: {err})."
            if not skip_bad_frames:
                raise SceneFormatError(reason + " Write it again (or remove the frame).") from None
            skipped.append({"index": i, "name": f"color/{image.name}", "reason": reason})
            continue
        frames.append(
            Frame(
                index=i,
                name=f"color/{image.name}",
                image_path=image,
                instance_path=instance[stem] if instance else None,
                semantic_path=semantic[stem] if semantic else None,
                confidence_path=confidence[stem] if confidence else None,
                depth_path=depth[stem] if depth else None,
                gt_instance_path=gt_instance[stem] if has_gt else None,
                gt_semantic_path=gt_semantic[stem] if has_gt else None,
                camera_to_world=c2w,
                fx=fx,
                fy=fy,
                cx=cx,
                cy=cy,
                width=width,
                height=height,
            )
        )
    if not frames:
        raise SceneFormatError(f"{root}: no frame could be read (the first: {skipped[0]['reason']}).")
    if check_files:
        frames, bad = check_frames(
            frames,
            lambda f: f"{root}, frame {f.index} ({f.name})",
            lambda f: check_frame_files(f, f"{root}, frame {f.index} ({f.name})"),
            skip_bad_frames,
        )
        skipped += bad
    train, test = _split(root, stems)
    kept_stems = [stems[f.index] for f in frames]
    frames, train, test = renumber_frames(frames, train, test)
    extras = {
        "format": "panoptic_lifting",
        "scene_file": str(root),
        "void_class_ids": [0],
        "segments": segments if instance is not None else None,
        "frame_stems": kept_stems,
        "depth_density": 0.0,
    }
    if skipped:
        extras["skipped_frames"] = skipped
    invalid_dir = root / "invalid"
    scene = Scene(
        root=root,
        frames=frames,
        classes=_classes(root),
        train_indices=train,
        test_indices=test,
        depth_unit_scale_factor=0.001,
        has_depth=depth is not None,
        has_confidence=confidence is not None,
        has_ground_truth=has_gt,
        extras=extras,
        frame_adapter=InvalidMaskAdapter(kept_stems, invalid_dir) if invalid_dir.is_dir() else None,
    )
    if depth is not None:
        extras["depth_density"] = float(np.mean([(read_depth(f.depth_path) > 0).mean() for f in frames]))
    if check_files:
        check_frame_ids(scene, root)
    return scene


class InvalidMaskAdapter:
    """Panoptic Lifting's ``invalid/<frame>.jpg|png`` (pixels > 0 lie outside the room) as ``valid_mask``: a
    :class:`~lift3d.data.scene.FrameAdapter` that sets ``valid_mask = ~invalid`` (combined with any mask already
    there), resampled to the frame's size by nearest neighbour."""

    def __init__(self, stems: List[str], invalid_dir: Path) -> None:
        # frame stems in frame order; the scene's invalid/ folder
        self.stems, self.invalid_dir = stems, invalid_dir

    def adapt_frame(self, scene: Scene, index: int, data: FrameData) -> FrameData:
        path = _file(self.invalid_dir, self.stems[index], IMAGE_EXTENSIONS)
        if path is None:
            return data
        valid = ~resize_nearest(read_mask(path), data.instance.shape)
        data.valid_mask = valid if data.valid_mask is None else (data.valid_mask & valid)
        return data


READER = SceneReader(
    name="panoptic_lifting",
    description="a Panoptic Lifting scene folder (color/, pose/, intrinsic/intrinsic_color.txt, m2f_*/, splits.json)",
    can_read=can_read,
    load=load_panoptic_lifting,
)
