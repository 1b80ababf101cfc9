"""Binary PLY point clouds with per-vertex colour, ``instance`` and ``class`` properties (read by open3d,
plyfile, MeshLab, CloudCompare), written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lift3d.io.atomic import atomic_write_bytes

_VERTEX_DTYPE = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("instance", "<i4"),
        ("class", "<i4"),
    ]
)
_PLY_TYPES = {"<f4": "float", "|u1": "uchar", "<i4": "int"}


def write_points_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray, instance: np.ndarray, semantic: np.ndarray) -> Path:
    """Write N points: xyz [N, 3] float, rgb [N, 3] uint8, instance [N] and semantic class [N] ints, as a binary
    little-endian PLY whose vertex element has the properties x, y, z, red, green, blue, instance, class."""
    n = int(np.asarray(xyz).shape[0])
    v = np.empty(n, dtype=_VERTEX_DTYPE)
    v["x"], v["y"], v["z"] = (np.asarray(xyz, np.float32)[:, k] for k in range(3))
    v["red"], v["green"], v["blue"] = (np.asarray(rgb, np.uint8)[:, k] for k in range(3))
    v["instance"], v["class"] = np.asarray(instance, np.int32), np.asarray(semantic, np.int32)
    props = "".join(f"property {_PLY_TYPES[_VERTEX_DTYPE[name].str]} {name}\n" for name in _VERTEX_DTYPE.names)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment lift3d export: world frame of the scene, its units\n"
        f"element vertex {n}\n{props}end_header\n"
    )
    return atomic_write_bytes(Path(path), header.encode("ascii") + v.tobytes())


def read_ply_vertices(path: Path) -> np.ndarray:
    """The vertex records of a PLY written by :func:`write_points_ply` (structured array)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii")
    if "binary_little_endian" not in header or "property int class" not in header:
        raise ValueError(f"{path}: not a lift3d point PLY (binary, with instance and class properties).")
    n = int(next(line.split()[2] for line in header.splitlines() if line.startswith("element vertex")))
    return np.frombuffer(data[end:], dtype=_VERTEX_DTYPE, count=n)
