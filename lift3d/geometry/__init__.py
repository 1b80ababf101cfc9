"""Camera geometry shared by every layer: one intrinsics type, rays, projection, quaternions (a leaf)."""

from lift3d.geometry.cameras import (
    Distortion,
    Intrinsics,
    IntrinsicsLike,
    backproject,
    camera_rays,
    matrix_to_quat_wxyz,
    matrix_to_quat_xyzw,
    project,
    quat_wxyz_to_matrix,
    quat_xyzw_to_matrix,
    ray_length_per_z,
)

__all__ = [
    "Distortion",
    "Intrinsics",
    "IntrinsicsLike",
    "backproject",
    "camera_rays",
    "matrix_to_quat_wxyz",
    "matrix_to_quat_xyzw",
    "project",
    "quat_wxyz_to_matrix",
    "quat_xyzw_to_matrix",
    "ray_length_per_z",
]
