r"""Video camera paths for ``--trajectory video``: clips of a robot driving around the objects (docs/sequence-format.md).

The robot drives on a closed loop around the floor region, the superellipse

.. math::
    |x|^n + |y|^n = R^n, \qquad R = L + \text{path\_clearance\_m},

(``L`` = ``floor_half_side``, ``n`` = ``path_exponent``) at constant speed ``v`` (``speed_m_per_s``), its camera
at height ``h`` (``camera_height_m``). Frame ``k`` of a clip is taken at time ``t_k = k / fps`` at arc length
``s_k = s_0 \pm v t_k`` along the loop (start ``s_0`` and direction drawn per clip). The camera's yaw is the
driving direction :math:`\psi(s_k)` turned towards the inside of the loop by ``look_inward_deg`` plus a panning
``look_around_deg * sin(2 pi t_k / look_around_period_s + phase)``; its pitch is ``pitch_deg`` and roll 0. The
path is smooth (the superellipse with ``n >= 2`` is C^1 and arc-length parametrised here), so consecutive frames
overlap and nearby objects pass in front of farther ones as the camera moves.

Randomness: ``numpy.random.default_rng([seed, TRAJECTORY_STREAM])``, so the layout's draws (objects, poses, dome
cameras) are the same as without ``--trajectory video``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from lift3d.generate.config import MessyRoomsConfig, VideoConfig
from lift3d.generate.layout import CameraIntrinsics, SceneLayout, look_at

__all__ = ["TRAJECTORY_STREAM", "VideoPlan", "loop_polyline", "video_cameras", "video_layout", "video_intrinsics"]

TRAJECTORY_STREAM = 2
"""Second entry of the trajectory's seed ``[cfg.seed, TRAJECTORY_STREAM]``."""
LOOP_SAMPLES = 4096
"""Points of the dense polyline that approximates the loop for the arc-length parametrisation."""


@dataclass
class VideoPlan:
    """The clips of a video trajectory: which frames form each clip, and the path's parameters."""

    clips: List[List[int]]
    """Frame indices of each clip, in time order (frames are numbered clip after clip)."""
    camera_to_world: np.ndarray
    """``[num_clips * frames_per_clip, 4, 4]`` camera-to-world of every frame (OpenGL axes)."""
    loop_radius_m: float
    """``R`` of the superellipse loop."""
    loop_length_m: float
    """Perimeter of the loop (m)."""
    clip_starts_m: List[float]
    """Arc length at which each clip starts."""
    clip_directions: List[int]
    """+1: counter-clockwise along the loop, -1: clockwise."""

    def record(self, video: VideoConfig) -> dict:
        """The ``trajectory`` record of ``sequence.json``."""
        return {
            "kind": "video",
            **dataclasses.asdict(video),
            "loop": "superellipse |x|^n + |y|^n = R^n",
            "loop_radius_m": self.loop_radius_m,
            "loop_length_m": self.loop_length_m,
            "clip_starts_m": self.clip_starts_m,
            "clip_directions": self.clip_directions,
        }


def loop_polyline(radius: float, exponent: float, samples: int = LOOP_SAMPLES) -> Tuple[np.ndarray, np.ndarray]:
    r"""Dense counter-clockwise polyline of the superellipse ``|x|^n + |y|^n = R^n`` and its arc lengths.

    Points :math:`(R\,\mathrm{sgn}(\cos a)\,|\cos a|^{2/n},\ R\,\mathrm{sgn}(\sin a)\,|\sin a|^{2/n})` for
    ``a`` uniform in ``[0, 2 pi]`` (closed: the last point repeats the first). Returns ``points [S + 1, 2]`` and the
    cumulative arc length ``[S + 1]`` (0 first, the perimeter last).
    """
    a = np.linspace(0.0, 2.0 * np.pi, samples + 1)
    c, s = np.cos(a), np.sin(a)
    pts = radius * np.stack([np.sign(c) * np.abs(c) ** (2.0 / exponent), np.sign(s) * np.abs(s) ** (2.0 / exponent)], 1)
    pts[-1] = pts[0]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    return pts, arc


def _at_arc_length(points: np.ndarray, arc: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Positions ``[K, 2]`` and unit counter-clockwise tangents ``[K, 2]`` at arc lengths ``s`` (taken modulo the
    perimeter), linearly interpolated on the polyline."""
    s = np.mod(s, arc[-1])
    pos = np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], axis=1)
    closed = len(points) - 1  # the last point repeats the first
    seg = np.clip(np.searchsorted(arc, s, side="right") - 1, 0, closed - 1)
    # tangent over a short window around the segment (wrapping round the closed loop), smooth between segments
    tangent = points[(seg + 5) % closed] - points[(seg - 4) % closed]
    return pos, tangent / np.linalg.norm(tangent, axis=1, keepdims=True)


def video_intrinsics(resolution: int, horizontal_fov_deg: float) -> CameraIntrinsics:
    """Square centred pinhole with ``f = (W / 2) / tan(fov / 2)``."""
    f = 0.5 * resolution / np.tan(np.deg2rad(horizontal_fov_deg) / 2.0)
    return CameraIntrinsics(f, f, resolution / 2.0, resolution / 2.0, resolution, resolution)


def camera_pose(position: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world ``[4, 4]`` (OpenGL axes) at ``position`` ``[3]`` looking along yaw / pitch (radians; yaw from
    the world x axis about z, pitch above the horizon), no roll."""
    forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    return look_at(position, position + forward)


def video_cameras(cfg: MessyRoomsConfig, floor_half_side: float) -> VideoPlan:
    """The camera of every frame of every clip (module docstring for the path and the yaw)."""
    video = cfg.video
    rng = np.random.default_rng([cfg.seed, TRAJECTORY_STREAM])
    radius = floor_half_side + video.path_clearance_m
    points, arc = loop_polyline(radius, video.path_exponent)
    times = np.arange(video.frames_per_clip) / video.fps
    poses, clips, starts, directions = [], [], [], []
    for c in range(video.num_clips):
        s0 = float(rng.uniform(0.0, arc[-1]))
        direction = int(rng.choice([-1, 1]))
        phase = float(rng.uniform(0.0, 2.0 * np.pi))
        pos, tangent = _at_arc_length(points, arc, s0 + direction * video.speed_m_per_s * times)
        heading = np.arctan2(tangent[:, 1], tangent[:, 0]) + (0.0 if direction > 0 else np.pi)
        inward = direction * np.deg2rad(video.look_inward_deg)  # the inside is to the left when counter-clockwise
        pan = np.deg2rad(video.look_around_deg) * np.sin(2.0 * np.pi * times / video.look_around_period_s + phase)
        for k in range(video.frames_per_clip):
            position = np.array([pos[k, 0], pos[k, 1], video.camera_height_m])
            poses.append(camera_pose(position, heading[k] + inward + pan[k], np.deg2rad(video.pitch_deg)))
        clips.append(list(range(c * video.frames_per_clip, (c + 1) * video.frames_per_clip)))
        starts.append(s0)
        directions.append(direction)
    return VideoPlan(clips, np.stack(poses), radius, float(arc[-1]), starts, directions)


def video_layout(layout: SceneLayout, cfg: MessyRoomsConfig) -> Tuple[SceneLayout, VideoPlan]:
    """``layout`` with its dome cameras replaced by the video cameras and intrinsics (objects and room unchanged).

    Raises ``ValueError`` when a camera would sit outside the room box (lower ``video.path_clearance_m`` or
    ``video.camera_height_m``).
    """
    plan = video_cameras(cfg, layout.floor_half_side)
    positions = plan.camera_to_world[:, :3, 3]
    if (positions <= layout.room_min).any() or (positions >= layout.room_max).any():
        raise ValueError(
            f"The video path (loop radius {plan.loop_radius_m:.2f} m, height {cfg.video.camera_height_m} m) leaves "
            f"the room box {layout.room_min.tolist()}..{layout.room_max.tolist()}; lower video.path_clearance_m or "
            "video.camera_height_m."
        )
    intrinsics = video_intrinsics(cfg.resolution, cfg.video.horizontal_fov_deg)
    return dataclasses.replace(layout, camera_to_world=plan.camera_to_world, intrinsics=intrinsics), plan
