r"""A spinning multi-beam LiDAR: the sensor's geometry, its rays and the spherical projection to a range image.

Conventions (``docs/sequence-format.md``): the LiDAR frame has x forward, y left, z up. A point ``p = (x, y, z)`` has
range :math:`\rho = \lVert p \rVert`, azimuth :math:`\varphi = \operatorname{atan2}(y, x)` and elevation
:math:`\theta = \arcsin(z / \rho)`. With ``B`` beams evenly spaced over the vertical field of view
``[down, up]`` and ``W`` azimuth columns, the cell of a point is

.. math::
    c = \Bigl\lfloor \frac{\pi - \varphi}{2\pi} W \Bigr\rfloor \bmod W, \qquad
    r = \operatorname{round}\Bigl(\frac{up - \theta}{up - down} (B - 1)\Bigr),

so straight ahead is column ``W / 2`` and row 0 is the highest beam. A point whose row falls outside ``[0, B)``
is outside the field of view. When several points fall into one cell the nearest return wins.

This module is a leaf: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

__all__ = ["LidarSensor", "RangeImage", "spherical_projection"]


@dataclass(frozen=True)
class LidarSensor:
    """Geometry of a spinning multi-beam LiDAR (defaults: a 32-beam sensor with a [-25, 15] degree field of view)."""

    beams: int = 32
    """Number of laser beams (rows of the range image), evenly spaced in elevation."""
    vertical_fov_deg: Tuple[float, float] = (-25.0, 15.0)
    """Elevation of the lowest and of the highest beam, degrees (down, up); down < up."""
    columns: int = 900
    """Azimuth steps per revolution (columns of the range image); the horizontal resolution is 360 / columns."""
    max_range_m: float = 30.0
    """Returns further than this (metres) are dropped."""

    def __post_init__(self) -> None:
        down, up = self.vertical_fov_deg
        if self.beams < 1:
            raise ValueError(f"LiDAR beams must be >= 1, got {self.beams}.")
        if self.columns < 1:
            raise ValueError(f"LiDAR columns must be >= 1, got {self.columns}.")
        if not (-90.0 <= down <= up <= 90.0) or (down == up and self.beams > 1):
            raise ValueError(
                f"LiDAR vertical_fov_deg must satisfy -90 <= down < up <= 90, got {self.vertical_fov_deg}."
            )
        if not self.max_range_m > 0:
            raise ValueError(f"LiDAR max_range_m must be > 0, got {self.max_range_m}.")

    @property
    def horizontal_resolution_deg(self) -> float:
        """Azimuth step in degrees, ``360 / columns``."""
        return 360.0 / self.columns

    def beam_elevations(self) -> np.ndarray:
        """``[B]`` float64 elevation of each beam in radians, row 0 (highest) first: ``up - r (up - down) / (B - 1)``."""
        down, up = np.deg2rad(self.vertical_fov_deg)
        if self.beams == 1:
            return np.array([up])
        return up - np.arange(self.beams) * (up - down) / (self.beams - 1)

    def column_azimuths(self) -> np.ndarray:
        """``[W]`` float64 azimuth of each column's centre in radians, ``pi - (c + 0.5) 2 pi / W``."""
        return np.pi - (np.arange(self.columns) + 0.5) * 2.0 * np.pi / self.columns

    def ray_directions(self) -> np.ndarray:
        """``[B, W, 3]`` float64 unit ray directions of every cell in the LiDAR frame (x forward, y left, z up)."""
        el = self.beam_elevations()[:, None]
        az = self.column_azimuths()[None, :]
        return np.stack(
            np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) + 0.0 * az), axis=-1
        )

    def cells(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column (int64 ``[N]``; row -1 outside the vertical field of view) and range (float64 ``[N]``) of
        points ``[N, 3]`` in the LiDAR frame (module docstring)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        rng = np.linalg.norm(p, axis=1)
        az = np.arctan2(p[:, 1], p[:, 0])
        el = np.arcsin(np.clip(p[:, 2] / np.maximum(rng, 1e-12), -1.0, 1.0))
        col = np.floor((np.pi - az) / (2.0 * np.pi) * self.columns).astype(np.int64) % self.columns
        down, up = np.deg2rad(self.vertical_fov_deg)
        if self.beams == 1:
            row = np.where(np.abs(el - up) <= np.deg2rad(0.5), 0, -1)
        else:
            row = np.round((up - el) / (up - down) * (self.beams - 1)).astype(np.int64)
            row[(row < 0) | (row >= self.beams)] = -1
        row[rng <= 0] = -1
        return row.astype(np.int64), col, rng

    def to_dict(self) -> dict:
        """The sensor's fields plus ``horizontal_resolution_deg`` (as written to ``sequence.json``)."""
        return {
            "beams": self.beams,
            "vertical_fov_deg": list(self.vertical_fov_deg),
            "columns": self.columns,
            "horizontal_resolution_deg": self.horizontal_resolution_deg,
            "max_range_m": self.max_range_m,
        }


@dataclass
class RangeImage:
    """A range image and the ids of the return in each cell."""

    range: np.ndarray
    """float32 ``[B, W]`` range in metres; 0 = no return."""
    instance: np.ndarray
    """int64 ``[B, W]`` instance id of the cell's return (0 where none)."""
    semantic: np.ndarray
    """int64 ``[B, W]`` class of the cell's return (0 where none)."""
    point_index: np.ndarray
    """int64 ``[B, W]`` index into the projected points of the cell's return (-1 where none)."""


def spherical_projection(
    points: np.ndarray, instance: np.ndarray, semantic: np.ndarray, sensor: LidarSensor
) -> RangeImage:
    r"""Project LiDAR points into a ``[B, W]`` range image; the nearest return wins a shared cell.

    Args:
        points: ``[N, 3]`` points in the LiDAR frame (x forward, y left, z up).
        instance: ``[N]`` instance id of each point.
        semantic: ``[N]`` class of each point.
        sensor: beams ``B``, columns ``W`` and vertical field of view (module docstring for the cell formula).

    Returns:
        :class:`RangeImage` with ``range[r, c] = min`` over the points of cell ``(r, c)`` of :math:`\lVert p\rVert`
        (0 for an empty cell) and that point's ids and index. Points outside the vertical field of view, at the
        origin, or beyond ``sensor.max_range_m`` are left out.
    """
    row, col, rng = sensor.cells(points)
    keep = np.flatnonzero((row >= 0) & (rng <= sensor.max_range_m))
    cell = row[keep] * sensor.columns + col[keep]
    order = np.lexsort((rng[keep], cell))  # by cell, then nearest first
    first = np.unique(cell[order], return_index=True)[1]  # the nearest return of each occupied cell
    winners = keep[order[first]]
    out = RangeImage(
        np.zeros((sensor.beams, sensor.columns), np.float32),
        np.zeros((sensor.beams, sensor.columns), np.int64),
        np.zeros((sensor.beams, sensor.columns), np.int64),
        np.full((sensor.beams, sensor.columns), -1, np.int64),
    )
    r, c = row[winners], col[winners]
    out.range[r, c] = rng[winners]
    out.instance[r, c] = np.asarray(instance, np.int64).reshape(-1)[winners]
    out.semantic[r, c] = np.asarray(semantic, np.int64).reshape(-1)[winners]
    out.point_index[r, c] = winners
    return out
