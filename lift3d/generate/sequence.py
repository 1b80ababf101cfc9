"""The sequence stage of ``--trajectory video``: optical flow, LiDAR scans and ``sequence.json`` (docs/sequence-format.md).

After rendering, :func:`make_sequence_outputs` computes, per clip, the exact forward flow of every frame but the
last (:func:`lift3d.geometry.flow.flow_from_depth` on the renderer's float depth and the poses) and, with
``--lidar``, one scan per frame (:func:`lift3d.generate.lidar.cast_lidar`). :func:`write_sequence_files` writes
them, with ``sequence.json``, into the scene folder while it is still being built (inside the writer's atomic
folder), so a crash never leaves a half-written sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from lift3d.data.sequence import SEQUENCE_FILE, SEQUENCE_VERSION
from lift3d.generate.classes import layout_classes
from lift3d.generate.config import MessyRoomsConfig
from lift3d.generate.layout import SceneLayout
from lift3d.generate.lidar import LidarFrame, cast_lidar, mount_extrinsic, sensor_of
from lift3d.generate.trajectory import VideoPlan
from lift3d.generate.views import RenderedViews
from lift3d.geometry.flow import flow_from_depth

__all__ = ["SequenceOutputs", "make_sequence_outputs", "write_sequence_files", "clip_split", "FLOW_DIR", "LIDAR_DIR"]

FLOW_DIR = "flow"
"""Sidecar folder of the flow files."""
LIDAR_DIR = "lidar"
"""Sidecar folder of the LiDAR files."""


@dataclass
class SequenceOutputs:
    """What the sequence stage adds to the rendered views."""

    plan: VideoPlan
    """The clips and cameras."""
    flow: Dict[int, Tuple[np.ndarray, np.ndarray]]
    """Frame index -> ``(flow float32 [H, W, 2], valid bool [H, W])`` for every frame with a successor in its clip."""
    lidar: Optional[List[LidarFrame]]
    """One scan per frame, or None without ``--lidar``."""
    lidar_to_camera: Optional[np.ndarray]
    """``[4, 4]`` mount of the LiDAR, or None."""


def clip_split(num_clips: int, test_fraction: float) -> int:
    """Number of training clips: the last ``round(test_fraction * num_clips)`` clips are test clips."""
    return num_clips - int(round(test_fraction * num_clips))


def make_sequence_outputs(
    layout: SceneLayout,
    views: RenderedViews,
    plan: VideoPlan,
    cfg: MessyRoomsConfig,
    stage: Callable[[str], Callable[[int, int], None]] = lambda name: lambda done, total: None,
) -> SequenceOutputs:
    """Flow of every frame but each clip's last, and (``cfg.lidar``) a LiDAR scan per frame."""
    K = layout.intrinsics
    intrinsics = (K.fx, K.fy, K.cx, K.cy)
    pairs = [(a, b) for clip in plan.clips for a, b in zip(clip[:-1], clip[1:])]
    flow_progress = stage("flow")
    flow = {}
    for n, (a, b) in enumerate(pairs):
        flow[a] = flow_from_depth(
            views.depth[a],
            layout.camera_to_world[a],
            layout.camera_to_world[b],
            intrinsics,
            next_depth=views.depth[b],
            depth_tolerance_relative=cfg.video.flow_depth_tolerance_relative,
            depth_tolerance_m=cfg.video.flow_depth_tolerance_m,
        )
        flow_progress(n + 1, len(pairs))
    lidar = extrinsic = None
    if cfg.lidar:
        extrinsic = mount_extrinsic(layout.camera_to_world, cfg.lidar_sensor.mount_offset_m)
        classes = layout_classes(layout, cfg)
        lidar = cast_lidar(layout, cfg.lidar_sensor, stage("lidar"), classes=classes, environment=cfg.environment)
    return SequenceOutputs(plan, flow, lidar, extrinsic)


def sequence_record(outputs: SequenceOutputs, cfg: MessyRoomsConfig) -> dict:
    """The content of ``sequence.json``."""
    num_train_clips = clip_split(len(outputs.plan.clips), cfg.test_fraction)
    lidar = None
    if outputs.lidar is not None:
        lidar = {
            "folder": LIDAR_DIR,
            **sensor_of(cfg.lidar_sensor).to_dict(),
            "mount_offset_m": cfg.lidar_sensor.mount_offset_m,
            "lidar_to_camera": outputs.lidar_to_camera.tolist(),
        }
    return {
        "version": SEQUENCE_VERSION,
        "fps": cfg.video.fps,
        "clips": [
            {"name": f"clip_{c:03d}", "frames": frames, "split": "train" if c < num_train_clips else "test"}
            for c, frames in enumerate(outputs.plan.clips)
        ],
        "trajectory": outputs.plan.record(cfg.video),
        "flow": {
            "folder": FLOW_DIR,
            "depth_tolerance_relative": cfg.video.flow_depth_tolerance_relative,
            "depth_tolerance_m": cfg.video.flow_depth_tolerance_m,
        },
        "lidar": lidar,
    }


def write_sequence_files(
    folder: Path,
    outputs: SequenceOutputs,
    cfg: MessyRoomsConfig,
    progress: Optional[Callable[[int, int], None]] = None,
) -> None:
    """Write ``sequence.json``, ``flow/<stem>.npz`` and ``lidar/<stem>.npz`` into ``folder`` (the scene folder
    being built; frame ``v``'s stem is ``frame_{v:05d}``, as :mod:`lift3d.generate.writer` names the images)."""
    folder = Path(folder)
    (folder / FLOW_DIR).mkdir(exist_ok=True)
    for v, (flow, valid) in outputs.flow.items():
        np.savez_compressed(folder / FLOW_DIR / f"frame_{v:05d}.npz", flow=flow, valid=valid)
    if outputs.lidar is not None:
        (folder / LIDAR_DIR).mkdir(exist_ok=True)
        for v, scan in enumerate(outputs.lidar):
            np.savez_compressed(
                folder / LIDAR_DIR / f"frame_{v:05d}.npz",
                points=scan.points,
                instance=scan.instance,
                semantic=scan.semantic,
                range_image=scan.range_image.range,
                range_instance=scan.range_image.instance,
                range_semantic=scan.range_image.semantic,
            )
            if progress is not None:
                progress(v + 1, len(outputs.lidar))
    (folder / SEQUENCE_FILE).write_text(json.dumps(sequence_record(outputs, cfg), indent=2))
