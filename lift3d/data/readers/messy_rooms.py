"""Reader of the released Messy Rooms layout (Contrastive Lift, Bhalgat et al. 2023).

The layout and its camera conventions are described in :mod:`lift3d.data.messy_rooms_format`.
:func:`load_release` turns a release folder into a :class:`~lift3d.data.scene.Scene` (no copies: frames point at
the release's files), so ``lift3d fit RELEASE_DIR`` works unchanged (``load_scene`` detects the layout). Split as
the reference: frames sorted by number, the last 20 % (``frames[int(0.8 N):]``) are test frames.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from lift3d.data.images import read_id_map, read_image_size, resize_nearest
from lift3d.data.messy_rooms_format import (
    CLASSES,
    DEFAULT_RELEASE_DEPTH,
    TEST_FRACTION,
    DepthKind,
    read_release_cameras,
)
from lift3d.data.readers.registry import SceneReader
from lift3d.data.scene import (
    Frame,
    FrameData,
    Scene,
    SceneClass,
    SceneFormatError,
    check_frame_files,
    check_frames,
    check_semantic_ids,
    renumber_frames,
)
from lift3d.geometry.cameras import ray_length_per_z

__all__ = ["READER", "is_release_folder", "release_frame_names", "load_release", "ReleaseFrameAdapter"]


def is_release_folder(path: Path) -> bool:
    """True for a folder holding ``metadata.json`` and a ``color/`` folder (and no ``transforms.json``)."""
    path = Path(path)
    return (
        path.is_dir()
        and (path / "metadata.json").is_file()
        and (path / "color").is_dir()
        and not (path / "transforms.json").exists()
    )


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


def _release_depth_kind(meta: Dict, meta_path: Path) -> Optional[DepthKind]:
    env = os.environ.get("LIFT3D_RELEASE_DEPTH")
    if env:
        if env not in ("distance", "z", "none"):
            raise SceneFormatError(
                f"{meta_path}: the environment variable LIFT3D_RELEASE_DEPTH={env!r}; set it to 'distance', 'z' or "
                "'none' (or unset it)."
            )
        return None if env == "none" else env  # type: ignore[return-value]
    kind = meta.get("lift3d", {}).get("depth", DEFAULT_RELEASE_DEPTH)
    if kind not in ("distance", "z"):
        raise SceneFormatError(f"{meta_path}: lift3d.depth={kind!r}; set it to 'distance' or 'z'.")
    return kind


def _read_metadata(root: Path) -> Dict:
    meta_path = root / "metadata.json"
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise SceneFormatError(f"{meta_path}: invalid JSON ({err}).") from None


def load_release(path: Path, check_files: bool = True, segments: str = "detic", skip_bad_frames: bool = False) -> Scene:
    """Read a release folder as a :class:`~lift3d.data.scene.Scene` (frames point at the release's files).

    ``segments`` names the 2D segmenter folders ``{segments}_instance``, ``{segments}_semantic`` and
    ``{segments}_probabilities`` (the last optional). Ground truth (``instance/``, ``semantic/``) and ``depth/``
    are used when present for every frame. When a frame is loaded (:func:`~lift3d.data.loading.load_frame`), as in
    the reference loader the confidence of pixels whose segmenter class is 0 (background) becomes 1, pixels
    marked in ``invalid/`` get confidence 0, and depth stored as distance from the camera centre is converted to
    distance along the optical axis (:class:`ReleaseFrameAdapter`).
    """
    root = Path(path)
    meta_path = root / "metadata.json"
    meta = _read_metadata(root)
    names = release_frame_names(root)
    if not names:
        raise SceneFormatError(
            f"{root / 'color'}: no .png (or .jpg) images; a Messy Rooms release holds "
            "color/00000.png, color/00001.png, ..."
        )
    (height, width), _, _ = read_image_size(_image_file(root / "color", names[0]))
    (fx, fy, cx, cy), c2w = read_release_cameras(meta, width, height, str(meta_path))
    if len(c2w) != len(names):
        raise SceneFormatError(
            f"{meta_path}: {len(c2w)} camera poses but {len(names)} images in {root / 'color'}; "
            "each color image needs one pose (in sorted frame order)."
        )
    inst_dir, sem_dir, conf_dir = (
        root / f"{segments}_instance",
        root / f"{segments}_semantic",
        root / f"{segments}_probabilities",
    )
    for d in (inst_dir, sem_dir):
        if not d.is_dir():
            raise SceneFormatError(
                f"{d}: missing. A release needs the 2D segmenter's {d.name}/<frame>.npy maps; "
                "import other segments with `lift3d segments import`."
            )

    def all_present(folder: Path, ext: str) -> bool:
        return folder.is_dir() and all((folder / f"{n}{ext}").is_file() for n in names)

    has_conf = all_present(conf_dir, ".npy")
    depth_kind = _release_depth_kind(meta, meta_path)
    has_depth = depth_kind is not None and all_present(root / "depth", ".png")
    has_gt = all_present(root / "instance", ".npy") and all_present(root / "semantic", ".npy")
    frames = []
    for i, n in enumerate(names):
        frame = Frame(
            index=i,
            name=f"color/{_image_file(root / 'color', n).name}",
            image_path=_image_file(root / "color", n),
            instance_path=inst_dir / f"{n}.npy",
            semantic_path=sem_dir / f"{n}.npy",
            confidence_path=conf_dir / f"{n}.npy" if has_conf else None,
            depth_path=root / "depth" / f"{n}.png" if has_depth else None,
            gt_instance_path=root / "instance" / f"{n}.npy" if has_gt else None,
            gt_semantic_path=root / "semantic" / f"{n}.npy" if has_gt else None,
            camera_to_world=c2w[i],
            fx=fx,
            fy=fy,
            cx=cx,
            cy=cy,
            width=width,
            height=height,
        )
        frames.append(frame)
    skipped: List[dict] = []
    if check_files:
        frames, skipped = check_frames(
            frames,
            lambda f: f"{root}, frame {f.index} ({f.name})",
            lambda f: check_frame_files(f, f"{root}, frame {f.index} ({f.name})"),
            skip_bad_frames,
        )
    raw_classes = meta.get("lift3d", {}).get("classes", CLASSES)
    classes = [SceneClass(int(c["id"]), str(c["name"]), bool(c["thing"])) for c in raw_classes]
    num_train = int(len(names) * (1.0 - TEST_FRACTION))
    kept_names = [names[f.index] for f in frames]
    frames, train, test = renumber_frames(frames, list(range(num_train)), list(range(num_train, len(names))))
    invalid_dir = root / "invalid"
    adapter = ReleaseFrameAdapter(kept_names, invalid_dir if invalid_dir.is_dir() else None, depth_kind == "distance")
    extras = {"format": "messy_rooms_release", "depth_kind": depth_kind, "frame_stems": kept_names}
    if skipped:
        extras["skipped_frames"] = skipped
    scene = Scene(
        root=root,
        frames=frames,
        classes=classes,
        train_indices=train,
        test_indices=test,
        depth_unit_scale_factor=0.001,
        aabb=None,
        has_depth=has_depth,
        has_confidence=True,
        has_ground_truth=has_gt,
        extras=extras,
        frame_adapter=adapter,
    )
    if check_files:
        ids = {c.id for c in classes}
        for f in frames:  # every frame, train and test, before any work
            check_semantic_ids(read_id_map(f.semantic_path), ids, f"{root}, frame {f.index} ({f.semantic_path.name})")
    return scene


class ReleaseFrameAdapter:
    """The reference loader's per-frame conventions (a :class:`~lift3d.data.scene.FrameAdapter`): confidence 1 where
    the segmenter's class is 0 (the background; any stuff class of a scene with more, e.g. ``--classes families``),
    confidence 0 where ``invalid/`` marks a pixel, depth stored as distance along the
    ray divided by ``ray_length_per_z`` of the frame's camera to give optical-axis depth (computed at the frame's
    size, so a downscaled scene is converted with its own intrinsics)."""

    def __init__(self, stems: List[str], invalid_dir: Optional[Path], depth_is_distance: bool) -> None:
        # frame stems in frame order; the invalid/ folder or None; whether depth/ holds distances along the ray
        self.stems, self.invalid_dir, self.depth_is_distance = stems, invalid_dir, depth_is_distance

    def adapt_frame(self, scene: Scene, index: int, data: FrameData) -> FrameData:
        conf = data.confidence if data.confidence is not None else np.ones(data.instance.shape, np.float32)
        conf = conf.astype(np.float32, copy=True)
        conf[np.isin(data.semantic, scene.stuff_ids)] = 1.0  # the reference's class 0; every stuff class here
        if self.invalid_dir is not None:
            mask_file = _image_file(self.invalid_dir, self.stems[index])
            if mask_file is not None:
                from PIL import Image

                with Image.open(mask_file) as im:
                    invalid = resize_nearest(np.asarray(im.convert("L")) > 0, conf.shape)
                conf[invalid] = 0.0
        data.confidence = conf
        if data.depth is not None and self.depth_is_distance:
            f = scene.frames[index]
            ray_factor = ray_length_per_z(f.fx, f.fy, f.cx, f.cy, f.width, f.height)
            data.depth = (data.depth / ray_factor).astype(np.float32)
        return data


READER = SceneReader(
    name="messy_rooms_release",
    description="a released Messy Rooms folder (metadata.json + color/ + detic_*/)",
    can_read=is_release_folder,
    load=load_release,
)
