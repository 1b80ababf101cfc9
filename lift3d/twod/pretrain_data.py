"""The frames of self-supervised pretraining (``lift3d twod pretrain``): images, depth and coherent depth regions.

Frames come from scene folders or sequence folders (a sequence is a scene folder with ``sequence.json``); no ground
truth is read. Depth has two sources (:func:`depth_source`): the scene's own depth maps (``"scene"``) or the depth
head of a trained spatio-temporal run (paper 001's auxiliary self-supervised depth, ``lift3d twod train --method
spatio-temporal``), run over each clip of a sequence in time order (a plain scene's frames one by one). Coherent
depth regions (:func:`lift3d.twod.regions.coherent_depth_regions`) are computed once per frame and cached, with the
depth they were made from, in ``RUN/regions/`` (:meth:`PretrainFrames.prepare`); a run resumed with another depth
source or region setting is refused.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from lift3d.data.loading import load_frame, load_scene
from lift3d.data.scene import Scene, SceneFormatError
from lift3d.io import atomic_write_bytes, atomic_write_json

__all__ = ["PretrainFrames", "PretrainDataError", "depth_source"]


class PretrainDataError(ValueError):
    """Pretraining cannot use the given data or depth source; the message names the file, the frame and the fix."""


def depth_source(depth: str) -> str:
    """``"scene"`` or the resolved path of a spatio-temporal run with a depth head (checked up front)."""
    if depth == "scene":
        return "scene"
    from lift3d.twod.model import TwodModelError, twod_checkpoint_path, twod_method

    try:
        path = twod_checkpoint_path(Path(depth))
    except TwodModelError as err:
        raise PretrainDataError(f"--depth {depth}: {err} Pass --depth scene or a spatio-temporal run.") from None
    if twod_method(path) != "spatio-temporal":
        raise PretrainDataError(
            f"--depth {depth}: a {twod_method(path)} run has no depth head; pass a run of "
            "`lift3d twod train --method spatio-temporal` (with its depth head) or --depth scene."
        )
    return str(Path(depth).resolve())


def _crop8(h: int, w: int) -> tuple[int, int]:
    return h - h % 8, w - w % 8


class PretrainFrames:
    """Every frame of ``folders`` (scenes or sequences): ``items[i] = (scene index, frame index)``.

    Images are cropped to sides divisible by 8 (top-left corner kept). ``depth`` is ``"scene"`` or a
    spatio-temporal run (see :func:`depth_source`).
    """

    def __init__(self, folders: Sequence[Path], depth: str = "scene"):
        if not folders:
            raise PretrainDataError("no data given; pass --data SCENE_OR_SEQUENCE [...] (scene or sequence folders).")
        self.folders = [Path(f) for f in folders]
        self.scenes: list[Scene] = [load_scene(f) for f in self.folders]
        self.depth = depth_source(depth)
        for s in self.scenes:
            h, w = _crop8(s.frames[0].height, s.frames[0].width)
            if h < 8 or w < 8:
                raise PretrainDataError(f"{s.root / 'transforms.json'}: frames of {w}x{h} px are too small.")
            if self.depth == "scene":
                missing = [f for f in s.frames if f.depth_path is None]
                if missing:
                    f = missing[0]
                    raise PretrainDataError(
                        f"{s.root / 'transforms.json'}, frame {f.index} ({f.name}): no depth_file_path; --depth scene "
                        "needs depth on every frame. Pass --depth RUN2D (a spatio-temporal run) instead."
                    )
        self.items = [(si, fi) for si, s in enumerate(self.scenes) for fi in range(len(s.frames))]
        self.cache: Optional[Path] = None

    def __len__(self) -> int:
        return len(self.items)

    def image(self, index: int) -> np.ndarray:
        """``[H, W, 3]`` uint8 of item ``index`` (cropped to multiples of 8)."""
        si, fi = self.items[index]
        rgb = load_frame(self.scenes[si], fi).rgb
        h, w = _crop8(*rgb.shape[:2])
        return np.clip(np.round(rgb[:h, :w] * 255.0), 0, 255).astype(np.uint8)

    def intrinsics(self, index: int) -> np.ndarray:
        """``[3, 3]`` float64 camera matrix of item ``index``."""
        si, fi = self.items[index]
        return self.scenes[si].frames[fi].camera_intrinsics.matrix

    def _cache_file(self, index: int) -> Path:
        si, fi = self.items[index]
        assert self.cache is not None, "call prepare() first"
        return self.cache / f"scene{si:03d}_frame{fi:05d}.npz"

    def depth_and_regions(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(depth [H, W] float32 metres, regions [H, W] int64)`` of item ``index`` from the cache."""
        with np.load(self._cache_file(index)) as z:
            return z["depth"], z["regions"]

    def prepare(
        self,
        cache: Path,
        region_config,
        regions_fn: Callable[..., np.ndarray],
        device: str = "cpu",
        progress: bool = True,
    ) -> None:
        """Compute (or reuse) every frame's depth and coherent depth regions into ``cache``.

        ``regions_fn(image, depth, intrinsics, region_config) -> [H, W] int64`` (the regions module's
        :func:`coherent_depth_regions`). ``cache/meta.json`` records the depth source and the region settings; a
        cache made with others is refused (start a new run folder)."""
        cache = Path(cache)
        self.cache = cache
        meta = {
            "depth": self.depth,
            "regions": _jsonable(asdict(region_config)),
            "data": [str(s.root) for s in self.scenes],
        }
        meta_file = cache / "meta.json"
        if meta_file.exists():
            old = json.loads(meta_file.read_text())
            if old != json.loads(json.dumps(meta)):
                raise PretrainDataError(
                    f"{meta_file}: the cached regions were made with other data, depth or region settings "
                    f"({old.get('depth')}); use another --out or the run's original settings."
                )
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write_json(meta_file, meta)
        todo = [i for i in range(len(self)) if not self._cache_file(i).exists()]
        if not todo:
            return
        network_depth = self._network_depths(todo, device) if self.depth != "scene" else {}
        bar = _progress(progress, len(todo), "depth regions")
        try:
            for i in todo:
                image = self.image(i)
                depth = network_depth[i] if i in network_depth else self._scene_depth(i)
                regions = regions_fn(image, depth, self.intrinsics(i), region_config)
                buf = io.BytesIO()
                np.savez_compressed(buf, depth=depth.astype(np.float32), regions=regions.astype(np.int64))
                atomic_write_bytes(self._cache_file(i), buf.getvalue())
                if bar is not None:
                    bar[0].update(bar[1], advance=1)
        finally:
            if bar is not None:
                bar[0].stop()

    def _scene_depth(self, index: int) -> np.ndarray:
        si, fi = self.items[index]
        depth = load_frame(self.scenes[si], fi).depth
        h, w = _crop8(*depth.shape)
        return np.asarray(depth[:h, :w], np.float32)

    def _network_depths(self, todo: list[int], device: str) -> dict[int, np.ndarray]:
        """Depth of the ``todo`` items from the spatio-temporal run's depth head, clip by clip in time order."""
        from lift3d.twod.video_model import load_spatio_temporal_model

        model, _ = load_spatio_temporal_model(Path(self.depth), device=device)
        if model.net.decoder_depth is None:
            raise PretrainDataError(f"--depth {self.depth}: the run was trained without its depth head (no-depth).")
        wanted = set(todo)
        out: dict[int, np.ndarray] = {}
        position = {item: i for i, item in enumerate(self.items)}
        for si, scene in enumerate(self.scenes):
            for frames in _clips_of(scene):
                idx = [position[(si, f)] for f in frames]
                if not wanted.intersection(idx):
                    continue
                images = np.stack([self.image(i) for i in idx])
                x = torch.from_numpy(images).permute(0, 3, 1, 2).float().to(device)[None] / 255.0
                with torch.no_grad():
                    depth = model.net(x).depth[0, :, 0].cpu().numpy().astype(np.float32)
                out.update({i: d for i, d in zip(idx, depth) if i in wanted})
        return out


def _clips_of(scene: Scene) -> list[tuple[int, ...]]:
    """The frame indices of each clip of a sequence (time order); every frame alone for a plain scene."""
    if (scene.root / "sequence.json").exists():
        from lift3d.data.sequence import load_sequence

        try:
            return [c.frames for c in load_sequence(scene.root, check_files=False).clips]
        except SceneFormatError as err:
            raise PretrainDataError(str(err)) from None
    return [(f.index,) for f in scene.frames]


def _progress(enabled: bool, total: int, label: str):
    from lift3d.twod.distributed import training_progress

    return training_progress(enabled, total, 0, label)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
