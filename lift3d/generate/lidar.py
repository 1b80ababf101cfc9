"""LiDAR scans of a generated scene: the fast backend's open3d ray caster, one ray per beam and azimuth column.

The sensor (:class:`lift3d.geometry.lidar.LidarSensor`) is mounted level, ``mount_offset_m`` straight above the
camera and turned with the camera's yaw (docs/sequence-format.md): its pose in the world is

``lidar_to_world = [[f_h, l_h, e_z, c + mount_offset_m e_z], [0, 0, 0, 1]]``

with ``f_h`` the camera's viewing direction projected on the floor plane and normalised, ``e_z`` the world's up,
``l_h = e_z x f_h`` and ``c`` the camera centre; ``lidar_to_camera = camera_to_world^-1 lidar_to_world``, the
same for every frame because the camera's pitch and roll are fixed. Each cell ``(r, c)`` casts one ray along
:meth:`LidarSensor.ray_directions`; the hit's distance is the range, the hit geometry gives the ground-truth
instance (0 for the room) and class (the images' classes, :mod:`lift3d.generate.classes`: ``1`` object and ``0``
background with ``classes binary``; the object's family or the room surface with ``classes families``). The scan
is instantaneous (no rolling shutter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from lift3d.generate.classes import SceneClasses, scene_classes
from lift3d.generate.config import LidarConfig
from lift3d.generate.layout import SceneLayout
from lift3d.geometry.lidar import LidarSensor, RangeImage, spherical_projection

__all__ = ["LidarFrame", "sensor_of", "lidar_to_world", "mount_extrinsic", "cast_lidar"]


@dataclass
class LidarFrame:
    """One scan: returns in the LiDAR frame with their ground truth, and the range image."""

    points: np.ndarray
    """float32 ``[N, 3]``."""
    instance: np.ndarray
    """int64 ``[N]``."""
    semantic: np.ndarray
    """int64 ``[N]``."""
    range_image: RangeImage
    """The spherical projection of the points."""


def sensor_of(cfg: LidarConfig) -> LidarSensor:
    """The sensor geometry of a :class:`LidarConfig`."""
    return LidarSensor(cfg.beams, tuple(cfg.vertical_fov_deg), cfg.columns, cfg.max_range_m)


def lidar_to_world(camera_to_world: np.ndarray, mount_offset_m: float) -> np.ndarray:
    """``[4, 4]`` pose of the level LiDAR above a camera (module docstring); the camera must not look straight down
    or up."""
    forward = -camera_to_world[:3, 2]  # OpenGL cameras look down -z
    f_h = np.array([forward[0], forward[1], 0.0])
    norm = np.linalg.norm(f_h)
    if norm < 1e-6:
        raise ValueError("A camera looks straight up or down; the LiDAR's heading is undefined.")
    f_h /= norm
    up = np.array([0.0, 0.0, 1.0])
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = f_h, np.cross(up, f_h), up
    pose[:3, 3] = camera_to_world[:3, 3] + mount_offset_m * up
    return pose


def mount_extrinsic(camera_to_world: np.ndarray, mount_offset_m: float) -> np.ndarray:
    """``[4, 4]`` ``lidar_to_camera`` shared by every frame; ``ValueError`` if the frames' mounts disagree (a
    camera with roll or changing pitch).

    Args:
        camera_to_world: ``[V, 4, 4]`` cameras of the sequence.
    """
    extrinsics = [np.linalg.inv(c2w) @ lidar_to_world(c2w, mount_offset_m) for c2w in camera_to_world]
    spread = max(np.abs(e - extrinsics[0]).max() for e in extrinsics)
    if spread > 1e-6:
        raise ValueError(f"The LiDAR mount differs between frames by {spread:.2e}; the camera's pitch must be fixed.")
    return extrinsics[0]


def cast_lidar(
    layout: SceneLayout,
    cfg: LidarConfig,
    progress: Optional[Callable[[int, int], None]] = None,
    classes: Optional[SceneClasses] = None,
    environment: str = "old_room",
) -> List[LidarFrame]:
    """One scan per camera of ``layout`` with the fast backend's ray caster (module docstring).

    ``classes``: the scene's class table (the images' classes; default ``classes binary``); ``environment``: the
    scene's (open environments have no walls: a beam that hits nothing gives no return)."""
    from lift3d.generate.fast_backend import _Scene  # open3d, loaded only when LiDAR is asked for

    scene = _Scene(layout, environment)
    if classes is None:
        classes = scene_classes("binary", environment, "procedural", [o.asset for o in layout.objects])
    sensor = sensor_of(cfg)
    dirs_lidar = sensor.ray_directions().reshape(-1, 3)  # [B * W, 3] unit vectors in the LiDAR frame
    frames = []
    for v, c2w in enumerate(layout.camera_to_world):
        pose = lidar_to_world(c2w, cfg.mount_offset_m)
        dirs = dirs_lidar @ pose[:3, :3].T
        origins = np.broadcast_to(pose[:3, 3], dirs.shape)
        t, gid, prim, *_ = scene.cast(origins, dirs)
        keep = t <= sensor.max_range_m
        points = (t[keep, None] * dirs_lidar[keep]).astype(np.float32)
        instance = scene.instance_of[np.minimum(gid[keep], scene.num_objects)].astype(np.int64)
        semantic = scene.semantic_of_hits(classes, t[keep], gid[keep], prim[keep], instance).astype(np.int64)
        frames.append(LidarFrame(points, instance, semantic, spherical_projection(points, instance, semantic, sensor)))
        if progress is not None:
            progress(v + 1, len(layout.camera_to_world))
    return frames
