"""Training items of the cross-modal method: a frame, its successor and its LiDAR scan, with every sample's id.

One item of :class:`CrossModalDataset` is frame ``t`` of a clip of a sequence (``docs/sequence-format.md``):

* the image at ``t`` with its ground-truth ids (0 = background, itself one group) and class channels;
* with ``temporal``: the image at ``t + 1`` with frame ``t``'s ids and classes carried there along the flow
  (:func:`lift3d.twod.correspondence.warp_labels_with_flow`; the paper's flow-warped pseudo ground truth) or, with
  ``temporal_labels="ground-truth"``, ``t + 1``'s own ids (the generator's ids are track ids);
* with ``lidar``: the range image at ``t`` as the range branch's input (:func:`range_input`), the id of every
  cell's return (``-1`` where none), and the pixel of image ``t`` each return projects to
  (:func:`lift3d.twod.correspondence.project_lidar_points`, ``-1`` outside the image or hidden from the camera
  by the depth test).

Each frame is read from disk when asked for (nothing is cached), so DDP ranks each read only their share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
import torch

from lift3d.data.sequence import SceneSequence, load_sequence, load_sequence_frame
from lift3d.geometry.lidar import LidarSensor
from lift3d.twod.correspondence import pixel_labels_of_points, project_lidar_points, warp_labels_with_flow
from lift3d.twod.cross_modal_config import CrossModalError
from lift3d.twod.dataset import AugmentConfig, ClassSpace, MissingGroundTruthError, augment_frame

__all__ = ["camera_columns", "range_input", "CrossModalDataset", "collate_cross_modal", "SequenceDataError"]


class SequenceDataError(CrossModalError):
    """A sequence cannot train the cross-modal method (no LiDAR, no flow, no clip with two frames, ...)."""


def camera_columns(
    sensor: LidarSensor, lidar_to_camera: np.ndarray, intrinsics, height: int, width: int, margin: int = 4
) -> np.ndarray:
    """The range-image columns that the camera sees (Zhu et al. 2022 crop a central 64x512 patch of the 64x2048
    range image "corresponding to the camera field of view"): every column with a cell whose ray, at 1, 3 and 10 m,
    projects into the image, widened by ``margin`` columns each side and to a multiple of 4 (the range branch
    halves the width twice). Returns ``[W_crop]`` int64 column indices in order (wrapping around the seam).
    """
    dirs = sensor.ray_directions().reshape(-1, 3)
    seen = np.zeros(sensor.columns, bool)
    for distance in (1.0, 3.0, 10.0):
        inside = project_lidar_points(dirs * distance, lidar_to_camera, intrinsics, height, width)[3]
        seen |= inside.reshape(sensor.beams, sensor.columns).any(0)
    if not seen.any():
        return np.arange(sensor.columns - sensor.columns % 4, dtype=np.int64)
    # the longest run of unseen columns (cyclically) is outside the crop; the crop starts right after it
    cols = np.nonzero(seen)[0]
    gaps = np.diff(np.concatenate([cols, [cols[0] + sensor.columns]]))
    first = cols[(int(np.argmax(gaps)) + 1) % len(cols)]
    span = int((cols[int(np.argmax(gaps))] - first) % sensor.columns) + 1 + 2 * margin
    span = min(sensor.columns - sensor.columns % 4, span + (-span) % 4)
    return (first - margin + np.arange(span)) % sensor.columns


def range_input(range_image: np.ndarray, sensor: LidarSensor, columns: Optional[np.ndarray] = None) -> np.ndarray:
    """The range branch's input ``[5, B, W]`` float32 from a range image ``[B, W]`` (0 = no return); with
    ``columns`` the range image holds only those columns of the sensor (a crop, see :func:`camera_columns`).

    Channels: ``range / max_range``, then the return's ``x, y, z`` in the LiDAR frame divided by ``max_range``
    (the per-point features; the point is the cell's ray direction times its range, exact for the generator's
    one-ray-per-cell scans), and a validity flag. Cells without a return are 0 in every channel.
    """
    r = np.asarray(range_image, np.float64)
    valid = r > 0
    dirs = sensor.ray_directions()
    xyz = (dirs if columns is None else dirs[:, columns]) * r[..., None]  # [B, W, 3]
    scale = 1.0 / sensor.max_range_m
    out = np.concatenate([(r * scale)[None], np.moveaxis(xyz * scale, -1, 0), valid[None].astype(np.float64)])
    return np.where(valid[None], out, 0.0).astype(np.float32)


def _rgb_uint8(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous()


class CrossModalDataset(torch.utils.data.Dataset):
    """Frames of video (+ LiDAR) sequences as cross-modal training items (see the module docstring).

    Args:
        sequences: sequence folders (``sequence.json`` beside ``transforms.json``), all with ground truth.
        classes: the class space (default: the first sequence's).
        temporal: add the next frame of the clip (frames without a successor are then left out).
        lidar: add the LiDAR scan (every sequence must have one).
        temporal_labels: ``"warped"`` (frame ``t``'s ids along the flow) or ``"ground-truth"``.
        depth_test: pair a LiDAR return with its pixel only if the camera's depth there does not hide it.
        depth_tolerance: relative tolerance of that test.
        augment: colour jitter drawn once per item and applied to both images (geometric augmentations are
            turned off: they would have to move the flow and the LiDAR pairing too); None for none.
        seed: seed of the jitter draws (item ``i`` of epoch ``e`` always gets the same draw).
        crop_to_camera: give the range branch only the columns the camera sees (:func:`camera_columns`).
    """

    def __init__(
        self,
        sequences: Sequence[Path],
        classes: Optional[ClassSpace] = None,
        temporal: bool = True,
        lidar: bool = True,
        temporal_labels: Literal["warped", "ground-truth"] = "warped",
        depth_test: bool = True,
        depth_tolerance: float = 0.05,
        augment: Optional[AugmentConfig] = None,
        seed: int = 0,
        crop_to_camera: bool = True,
    ):
        if not sequences:
            raise SequenceDataError("no sequences given; pass sequence folders made with --trajectory video --lidar.")
        self.sequences: list[SceneSequence] = [load_sequence(p) for p in sequences]
        self.classes = classes or ClassSpace.of_scene(self.sequences[0].scene)
        self.temporal, self.lidar, self.temporal_labels = temporal, lidar, temporal_labels
        self.depth_test, self.depth_tolerance = depth_test, depth_tolerance
        self.augment = None
        if augment is not None:
            self.augment = AugmentConfig(
                flip=False,
                scale_range=(1.0, 1.0),
                crop=None,
                brightness=augment.brightness,
                contrast=augment.contrast,
                saturation=augment.saturation,
            )
        self.seed, self.epoch = seed, 0
        self.crop_to_camera, self._columns = crop_to_camera, {}
        self.items: list[tuple[int, int]] = []
        for si, seq in enumerate(self.sequences):
            self._check(seq)
            for clip in seq.clips:
                for i in clip.frames:
                    if not temporal or seq.next_frame(i) is not None:
                        self.items.append((si, i))
        if not self.items:
            raise SequenceDataError(
                f"{self.sequences[0].root / 'sequence.json'}: no clip has two frames; the temporal positives need "
                "clips of at least two frames (or turn them off)."
            )

    def _check(self, seq: SceneSequence) -> None:
        where = seq.root / "sequence.json"
        if self.lidar and seq.lidar is None:
            raise SequenceDataError(
                f"{where}: the sequence has no LiDAR ('lidar' is null); generate it with --lidar, or train without "
                "the LiDAR positives."
            )
        if self.temporal and self.temporal_labels == "warped" and seq.flow is None:
            raise SequenceDataError(
                f"{where}: the sequence has no optical flow ('flow' is null); the warped temporal labels need it."
            )
        if ClassSpace.of_scene(seq.scene) != self.classes:
            raise SequenceDataError(
                f"{seq.root / 'transforms.json'}: classes {ClassSpace.of_scene(seq.scene).to_dict()} differ from "
                f"{self.classes.to_dict()}; train on sequences that share one class list."
            )
        for f in seq.scene.frames:
            if f.gt_instance_path is None or f.gt_semantic_path is None:
                raise MissingGroundTruthError(
                    f"{seq.root / 'transforms.json'}, frame {f.index} ({f.name}): no ground-truth instance / class "
                    "maps; the cross-modal method trains on generated sequences with ground truth."
                )

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Change the jitter draws (the same ``(seed, epoch, item)`` always gives the same item)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        si, i = self.items[index]
        seq = self.sequences[si]
        f = load_sequence_frame(seq, i)
        labels = torch.from_numpy(f.gt_instance.astype(np.int64))
        semantic = torch.from_numpy(self.classes.semantic_channels(f.gt_semantic))
        item = {"image": _rgb_uint8(f.rgb), "labels": labels, "semantic": semantic}
        if self.temporal:
            g = load_sequence_frame(seq, seq.next_frame(i))
            if self.temporal_labels == "warped":
                flow, valid = torch.from_numpy(f.flow), torch.from_numpy(f.flow_valid)
                next_labels = warp_labels_with_flow(labels, flow, valid)
                next_semantic = warp_labels_with_flow(semantic, flow, valid)
            else:
                next_labels = torch.from_numpy(g.gt_instance.astype(np.int64))
                next_semantic = torch.from_numpy(self.classes.semantic_channels(g.gt_semantic))
            item.update(next_image=_rgb_uint8(g.rgb), next_labels=next_labels, next_semantic=next_semantic)
        if self.lidar:
            item.update(self._lidar_item(si, f))
        if self.augment is not None:
            self._jitter(item, index)
        return item

    def columns_of(self, si: int) -> Optional[np.ndarray]:
        """The range-image columns given to the range branch for sequence ``si`` (None: all, uncropped)."""
        if not self.crop_to_camera:
            return None
        if si not in self._columns:
            seq = self.sequences[si]
            f = seq.scene.frames[seq.clips[0].frames[0]]
            self._columns[si] = camera_columns(
                seq.lidar.sensor, seq.lidar.lidar_to_camera, f.camera_intrinsics, f.height, f.width
            )
        return self._columns[si]

    def _lidar_item(self, si: int, f) -> dict:
        seq = self.sequences[si]
        sensor, scan = seq.lidar.sensor, f.lidar
        columns = self.columns_of(si)
        r, inst = scan.range_image, scan.range_instance
        dirs = sensor.ray_directions()
        if columns is not None:
            r, inst, dirs = r[:, columns], inst[:, columns], dirs[:, columns]
        points = (dirs * r[..., None]).reshape(-1, 3)
        h, w = f.gt_instance.shape
        u, v, z, inside = project_lidar_points(points, seq.lidar.lidar_to_camera, f.intrinsics, h, w)
        inside &= r.reshape(-1) > 0
        depth = f.depth if self.depth_test else None
        pixel, _ = pixel_labels_of_points(f.gt_instance, u, v, z, inside, depth, self.depth_tolerance)
        labels = np.where(r > 0, inst, -1).astype(np.int64)
        return {
            "range_input": torch.from_numpy(range_input(r, sensor, columns)),
            "range_labels": torch.from_numpy(labels),
            "range_pixel": torch.from_numpy(pixel.reshape(r.shape)),
        }

    def _jitter(self, item: dict, index: int) -> None:
        gen_seed = (self.seed * 1_000_003 + self.epoch) * 1_000_003 + index
        for key in ("image", "next_image"):
            if key in item:  # the same generator seed: the same jitter on both images
                gen = torch.Generator().manual_seed(gen_seed)
                dummy = torch.zeros(item[key].shape[1:], dtype=torch.int64)
                item[key] = augment_frame(item[key], dummy, dummy, self.augment, gen)[0]


def collate_cross_modal(items: Sequence[dict]) -> dict:
    """Stack items of one size key by key (``[B, ...]``)."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
