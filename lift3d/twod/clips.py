"""Training clips for the video networks, cut from sequences (``docs/sequence-format.md``) with ground truth.

A :class:`ClipDataset` indexes every window of ``clip_length`` consecutive frames inside each clip of each sequence
(windows never cross a clip boundary, where the camera jumps), optionally only the clips of one split. An item
(:class:`ClipSample`) holds the frames as uint8, the ground-truth track ids restricted to thing instances (stuff and
background are 0, so they get no embedding term), the class channels, the frames' poses and the camera intrinsics.
Frames are streamed from disk per item. Augmentations (:class:`ClipAugmentConfig`) are the same for every frame of
a clip and drawn from a generator seeded by ``(seed, epoch, item)`` (identical in every DDP process); a horizontal
flip mirrors the camera too (``c2w ← c2w · diag(-1, 1, 1, 1)``, ``c_x ← W - c_x``), so the reprojection geometry
stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from lift3d.data.loading import load_frame
from lift3d.data.scene import SceneFormatError
from lift3d.data.sequence import SceneSequence, load_sequence
from lift3d.twod.dataset import ClassSpace, MissingGroundTruthError, instance_classes_of

__all__ = ["ClipAugmentConfig", "ClipSample", "ClipDataset", "thing_track_ids", "collate_clips"]


@dataclass
class ClipAugmentConfig:
    """Clip augmentations (the same draw for every frame of a clip)."""

    flip: bool = True
    """Mirror the clip left-right (and its cameras) with probability 1/2."""
    brightness: float = 0.2
    """Multiply the frames by ``1 + U(-b, b)``."""
    contrast: float = 0.2
    """Scale around the clip's mean by ``1 + U(-c, c)``."""


@dataclass
class ClipSample:
    """``T`` consecutive frames of one clip."""

    images: torch.Tensor
    """[T, 3, H, W] uint8."""
    instance: torch.Tensor
    """[T, H, W] int64 ground-truth track ids of thing instances (0 = background, stuff, or not a thing)."""
    semantic: torch.Tensor
    """[T, H, W] int64 class-logit channels (-1 = ignore)."""
    camera_to_world: torch.Tensor
    """[T, 4, 4] float32 poses (OpenGL axes)."""
    intrinsics: torch.Tensor
    """[4] float32 ``(fx, fy, cx, cy)``."""


def thing_track_ids(instance: np.ndarray, semantic: np.ndarray, thing_ids: Sequence[int]) -> np.ndarray:
    """``instance [H, W]`` with every id whose majority class (in this frame) is not a thing set to 0."""
    keep = instance_classes_of(instance, semantic, thing_ids)
    out = np.where(np.isin(instance, list(keep)), instance, 0)
    return out.astype(np.int64)


def collate_clips(samples: Sequence[ClipSample]) -> dict:
    """Stack clips of one size: ``images [B, T, 3, H, W]`` uint8, ``instance`` / ``semantic [B, T, H, W]``,
    ``camera_to_world [B, T, 4, 4]``, ``intrinsics [B, 4]``."""
    return {
        "images": torch.stack([s.images for s in samples]),
        "instance": torch.stack([s.instance for s in samples]),
        "semantic": torch.stack([s.semantic for s in samples]),
        "camera_to_world": torch.stack([s.camera_to_world for s in samples]),
        "intrinsics": torch.stack([s.intrinsics for s in samples]),
    }


def _require_gt(seq: SceneSequence) -> None:
    for f in seq.scene.frames:
        if f.gt_instance_path is None or f.gt_semantic_path is None:
            raise MissingGroundTruthError(
                f"{seq.root / 'transforms.json'}, frame {f.index} ({f.name}): no ground-truth instance / class maps; "
                "the video networks train on sequences with ground truth (lift3d generate messy-rooms --trajectory "
                "video)."
            )


class ClipDataset(torch.utils.data.Dataset):
    """Windows of ``clip_length`` frames of the clips of the given sequences (module docstring).

    ``split``: ``"train"`` / ``"test"`` keeps the clips of that split, ``None`` all. ``classes``: the class space
    (default: the first sequence's); every sequence must share it.
    """

    def __init__(
        self,
        sequences: Sequence[Path],
        clip_length: int,
        split: Optional[str] = None,
        classes: Optional[ClassSpace] = None,
        augment: Optional[ClipAugmentConfig] = None,
        seed: int = 0,
    ):
        if not sequences:
            raise ValueError("no sequences given; pass at least one sequence folder (sequence.json) with ground truth.")
        self.sequences = [load_sequence(p, check_files=False) for p in sequences]
        for s in self.sequences:
            _require_gt(s)
        self.classes = classes or ClassSpace.of_scene(self.sequences[0].scene)
        for s in self.sequences:
            if ClassSpace.of_scene(s.scene) != self.classes:
                raise SceneFormatError(
                    f"{s.root / 'transforms.json'}: classes differ from the first sequence's; train on sequences "
                    "that share one class list."
                )
        self.clip_length = clip_length
        self.items: list[tuple[int, tuple[int, ...]]] = []
        for si, s in enumerate(self.sequences):
            for clip in s.clips:
                if split is not None and clip.split != split:
                    continue
                for k in range(len(clip.frames) - clip_length + 1):
                    self.items.append((si, tuple(clip.frames[k : k + clip_length])))
        if not self.items:
            raise SceneFormatError(
                f"{self.sequences[0].root / 'sequence.json'}: no clip of split {split or 'any'} has "
                f"{clip_length} frames; use longer clips (--video.frames-per-clip) or a shorter --clip-length."
            )
        self.augment, self.seed, self.epoch = augment, seed, 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (the same ``(seed, epoch, item)`` always gives the same sample)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> ClipSample:
        si, frames = self.items[index]
        seq = self.sequences[si]
        images, inst, sem, poses = [], [], [], []
        for i in frames:
            d = load_frame(seq.scene, i, with_ground_truth=True)
            images.append(np.clip(np.round(d.rgb * 255.0), 0, 255).astype(np.uint8).transpose(2, 0, 1))
            inst.append(thing_track_ids(d.gt_instance, d.gt_semantic, self.classes.thing_ids))
            sem.append(self.classes.semantic_channels(d.gt_semantic))
            poses.append(seq.scene.frames[i].camera_to_world)
        f = seq.scene.frames[frames[0]]
        sample = ClipSample(
            images=torch.from_numpy(np.stack(images)),
            instance=torch.from_numpy(np.stack(inst)),
            semantic=torch.from_numpy(np.stack(sem)),
            camera_to_world=torch.tensor(np.stack(poses), dtype=torch.float32),
            intrinsics=torch.tensor([f.fx, f.fy, f.cx, f.cy], dtype=torch.float32),
        )
        if self.augment is not None:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
            sample = augment_clip(sample, self.augment, gen)
        return sample


def augment_clip(sample: ClipSample, cfg: ClipAugmentConfig, gen: torch.Generator) -> ClipSample:
    """Flip (with the cameras mirrored) and colour-jitter a clip, one draw for all its frames."""
    images, instance, semantic = sample.images, sample.instance, sample.semantic
    c2w, k = sample.camera_to_world, sample.intrinsics.clone()
    if cfg.flip and float(torch.rand((), generator=gen)) < 0.5:
        images, instance, semantic = images.flip(-1), instance.flip(-1), semantic.flip(-1)
        c2w = c2w @ torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
        k[2] = images.shape[-1] - k[2]
    b = 1.0 + (2 * float(torch.rand((), generator=gen)) - 1) * cfg.brightness
    c = 1.0 + (2 * float(torch.rand((), generator=gen)) - 1) * cfg.contrast
    x = images.float() * b
    x = (x - x.mean()) * c + x.mean()
    return ClipSample(
        images=x.clamp(0, 255).round().to(torch.uint8),
        instance=instance,
        semantic=semantic,
        camera_to_world=c2w,
        intrinsics=k,
    )
