"""Frame datasets for the 2D networks, built from lift3d scenes with ground-truth instance maps.

A :class:`FrameDataset` indexes ``(scene, frame)`` pairs of any scene :func:`lift3d.data.loading.load_scene` reads
(generated Messy Rooms, kubric renders, ...) and streams each frame from disk when asked for it (nothing is held
in memory between items). Images are handed out as uint8 ``[3, H, W]`` tensors (converted to float on the device),
ids as int64. The split into training and validation is by scene (:func:`split_by_scene`), so no view of a
validation scene is ever trained on. Augmentations (:class:`AugmentConfig`: horizontal flip, scale-crop, colour
jitter) are drawn from a generator seeded by ``(seed, epoch, item)``, so the same item gives the same sample in
every process of a DDP run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lift3d.data.loading import load_frame, load_scene
from lift3d.data.scene import Scene, SceneClass

__all__ = [
    "AugmentConfig",
    "ClassSpace",
    "Sample",
    "FrameDataset",
    "MissingGroundTruthError",
    "split_by_scene",
    "collate",
    "instance_classes_of",
]


class MissingGroundTruthError(ValueError):
    """A scene used for training or evaluation has no ground-truth instance maps; the message names it."""


@dataclass
class AugmentConfig:
    """Training augmentations (all off gives the frame as stored)."""

    flip: bool = True
    """Mirror left-right with probability 1/2."""
    scale_range: tuple[float, float] = (0.75, 1.5)
    """Resize by a factor drawn uniformly from this range, then crop (or pad) to ``crop``."""
    crop: Optional[int] = None
    """Square crop side in pixels (divisible by 8); None keeps the frame's size (after the scale, crop/pad back)."""
    brightness: float = 0.2
    """Colour jitter: multiply the image by ``1 + U(-b, b)``."""
    contrast: float = 0.2
    """Colour jitter: scale around the image mean by ``1 + U(-c, c)``."""
    saturation: float = 0.2
    """Colour jitter: blend with the grey image by ``1 + U(-s, s)``."""


@dataclass(frozen=True)
class ClassSpace:
    """How a scene's class ids map to the network's channels: thing classes to seed channels, all to class logits."""

    classes: tuple[SceneClass, ...]

    @staticmethod
    def of_scene(scene: Scene) -> "ClassSpace":
        return ClassSpace(tuple(sorted(scene.classes, key=lambda c: c.id)))

    @property
    def thing_ids(self) -> list[int]:
        return [c.id for c in self.classes if c.thing]

    @property
    def class_ids(self) -> list[int]:
        return [c.id for c in self.classes]

    def to_dict(self) -> list[dict]:
        return [{"id": c.id, "name": c.name, "thing": c.thing} for c in self.classes]

    @staticmethod
    def from_dict(items: list[dict]) -> "ClassSpace":
        return ClassSpace(tuple(SceneClass(int(d["id"]), str(d["name"]), bool(d["thing"])) for d in items))

    def semantic_channels(self, semantic: np.ndarray) -> np.ndarray:
        """Class ids ``[H, W]`` -> class-logit channels (-1 for ids outside the space)."""
        lut = {cid: i for i, cid in enumerate(self.class_ids)}
        out = np.full(semantic.shape, -1, np.int64)
        for cid, i in lut.items():
            out[semantic == cid] = i
        return out


def instance_classes_of(instance: np.ndarray, semantic: np.ndarray, thing_ids: Sequence[int]) -> dict[int, int]:
    """``{instance id: seed channel}`` for the instances of a ground-truth frame whose majority class is a thing.

    ``instance [H, W]`` int (0 = none), ``semantic [H, W]`` class ids. The seed channel is the index of the class
    in ``thing_ids``; instances whose majority class is stuff are left out.
    """
    out: dict[int, int] = {}
    ids = np.unique(instance)
    for k in ids[ids != 0]:
        values, counts = np.unique(semantic[instance == k], return_counts=True)
        cls = int(values[np.argmax(counts)])
        if cls in thing_ids:
            out[int(k)] = list(thing_ids).index(cls)
    return out


@dataclass
class Sample:
    """One frame ready for the network."""

    image: torch.Tensor
    """[3, H, W] uint8."""
    instance: torch.Tensor
    """[H, W] int64 ground-truth instance ids (0 = none)."""
    semantic: torch.Tensor
    """[H, W] int64 class-logit channel (-1 = ignore)."""
    instance_classes: dict[int, int]
    """{instance id: seed channel} of the frame's thing instances."""


def split_by_scene(scenes: Sequence[Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """The last ``round(val_fraction * n)`` scenes (at least one when ``val_fraction > 0`` and ``n > 1``) are
    validation scenes; the others train. The order of ``scenes`` is kept."""
    scenes = list(scenes)
    n_val = int(round(val_fraction * len(scenes)))
    if val_fraction > 0 and len(scenes) > 1:
        n_val = max(1, n_val)
    n_val = min(n_val, len(scenes) - 1) if len(scenes) > 1 else 0
    return scenes[: len(scenes) - n_val], scenes[len(scenes) - n_val :]


def _require_ground_truth(scene: Scene) -> None:
    json_path = scene.root / "transforms.json"
    for f in scene.frames:
        if f.gt_instance_path is None or f.gt_semantic_path is None:
            raise MissingGroundTruthError(
                f"{json_path}, frame {f.index} ({f.name}): no gt_instance_file_path / gt_semantic_file_path. "
                "Training and evaluating a 2D network need ground-truth instance and class maps on every frame; "
                "use generated scenes (lift3d generate messy-rooms) or add the ground-truth maps to transforms.json."
            )


class FrameDataset(torch.utils.data.Dataset):
    """Every frame (train and test views alike) of the given scenes, streamed from disk.

    ``scenes``: scene folders; ``classes``: the class space (default: the first scene's); every scene must have
    the same classes. ``augment=None`` returns frames unchanged. Items are :class:`Sample`.
    """

    def __init__(
        self,
        scenes: Sequence[Path],
        classes: Optional[ClassSpace] = None,
        augment: Optional[AugmentConfig] = None,
        seed: int = 0,
    ):
        if not scenes:
            raise ValueError("no scenes given; pass at least one scene folder with ground truth.")
        self.scenes = [load_scene(p) for p in scenes]
        for s in self.scenes:
            _require_ground_truth(s)
        self.classes = classes or ClassSpace.of_scene(self.scenes[0])
        for s in self.scenes:
            if ClassSpace.of_scene(s) != self.classes:
                raise ValueError(
                    f"{s.root / 'transforms.json'}: classes {ClassSpace.of_scene(s).to_dict()} differ from "
                    f"{self.classes.to_dict()}; train on scenes that share one class list."
                )
        self.items = [(si, fi) for si, s in enumerate(self.scenes) for fi in range(len(s.frames))]
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (the same ``(seed, epoch, item)`` always gives the same sample)."""
        self.epoch = epoch

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rgb uint8 [H, W, 3], gt instance [H, W], gt semantic [H, W])`` of item ``index`` as stored."""
        si, fi = self.items[index]
        data = load_frame(self.scenes[si], fi, with_ground_truth=True)
        rgb = np.clip(np.round(data.rgb * 255.0), 0, 255).astype(np.uint8)
        return rgb, data.gt_instance.astype(np.int64), data.gt_semantic.astype(np.int64)

    def __getitem__(self, index: int) -> Sample:
        rgb, inst, sem = self.raw(index)
        image = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
        instance = torch.from_numpy(inst)
        semantic = torch.from_numpy(self.classes.semantic_channels(sem))
        if self.augment is not None:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
            image, instance, semantic = augment_frame(image, instance, semantic, self.augment, gen)
        classes = instance_classes_of(instance.numpy(), _semantic_ids(semantic, self.classes), self.classes.thing_ids)
        return Sample(image=image, instance=instance, semantic=semantic, instance_classes=classes)


def _semantic_ids(channels: torch.Tensor, classes: ClassSpace) -> np.ndarray:
    ids = np.asarray(classes.class_ids + [-1], np.int64)
    return ids[channels.numpy()]  # channel -1 indexes the trailing -1


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def augment_frame(
    image: torch.Tensor, instance: torch.Tensor, semantic: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flip, scale-crop and colour-jitter one frame (``image [3, H, W]`` uint8, ids ``[H, W]``), ids resampled by
    nearest neighbour; padding is black with instance 0 and class -1 (ignored)."""
    if cfg.flip and float(torch.rand((), generator=gen)) < 0.5:
        image, instance, semantic = image.flip(-1), instance.flip(-1), semantic.flip(-1)
    h, w = instance.shape
    crop = cfg.crop or None
    scale = _uniform(gen, *cfg.scale_range)
    sh, sw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    img = F.interpolate(image[None].float(), size=(sh, sw), mode="bilinear", align_corners=False)[0]
    inst = F.interpolate(instance[None, None].double(), size=(sh, sw), mode="nearest")[0, 0].long()
    sem = F.interpolate(semantic[None, None].double(), size=(sh, sw), mode="nearest")[0, 0].long()
    ch, cw = (crop, crop) if crop else (h, w)
    out_img = torch.zeros(3, ch, cw)
    out_inst = torch.zeros(ch, cw, dtype=torch.int64)
    out_sem = torch.full((ch, cw), -1, dtype=torch.int64)
    y0 = int(torch.randint(0, max(1, sh - ch + 1), (), generator=gen))
    x0 = int(torch.randint(0, max(1, sw - cw + 1), (), generator=gen))
    ph, pw = min(ch, sh - y0), min(cw, sw - x0)
    out_img[:, :ph, :pw] = img[:, y0 : y0 + ph, x0 : x0 + pw]
    out_inst[:ph, :pw] = inst[y0 : y0 + ph, x0 : x0 + pw]
    out_sem[:ph, :pw] = sem[y0 : y0 + ph, x0 : x0 + pw]
    b = 1.0 + _uniform(gen, -cfg.brightness, cfg.brightness)
    c = 1.0 + _uniform(gen, -cfg.contrast, cfg.contrast)
    s = 1.0 + _uniform(gen, -cfg.saturation, cfg.saturation)
    x = out_img * b
    x = (x - x.mean()) * c + x.mean()
    grey = x.mean(0, keepdim=True)
    x = (x - grey) * s + grey
    return x.clamp(0, 255).round().to(torch.uint8), out_inst, out_sem


def collate(samples: Sequence[Sample]) -> dict:
    """Stack samples of one size: ``images [B, 3, H, W]`` uint8, ``instance``/``semantic [B, H, W]``,
    ``instance_classes`` a list of dicts."""
    return {
        "images": torch.stack([s.image for s in samples]),
        "instance": torch.stack([s.instance for s in samples]),
        "semantic": torch.stack([s.semantic for s in samples]),
        "instance_classes": [s.instance_classes for s in samples],
    }
