r"""Cameras: the one intrinsics type, lens distortion, camera rays, projection / back-projection and quaternions.

Conventions (those of the scene format, ``docs/scene-format.md``):

* camera axes are OpenGL's: x right, y up, the camera looks down -z; ``camera_to_world`` is ``[R | t]``;
* pixel ``(u, v)`` (column, row) has its centre at ``(u + 0.5, v + 0.5)``;
* depth ``z`` is the distance along the optical axis (``z > 0`` in front of the camera).

With intrinsics ``(fx, fy, cx, cy)`` and no distortion, the camera-space direction through a pixel centre, scaled
to a unit -z component, is

.. math::
    d_{cam} = \Bigl[\frac{u + 0.5 - c_x}{f_x},\ -\frac{v + 0.5 - c_y}{f_y},\ -1\Bigr]^\top,
    \qquad X = R\, (z\, d_{cam}) + t,

so the point at optical-axis depth ``z`` is ``o + z d_world``. Projection inverts it:
:math:`p = R^\top (X - t)`, :math:`z = -p_z`, continuous image coordinates
:math:`(f_x p_x / z + c_x,\ c_y - f_y p_y / z)` whose floor is the pixel.

A camera may carry a lens model (:class:`Distortion`: COLMAP's ``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV``,
``FULL_OPENCV`` and ``OPENCV_FISHEYE``). It acts on normalised coordinates in OpenCV's image axes (y down):
projection distorts them before the intrinsics (:func:`distort_normalized`), ray generation inverts it by Newton's
method (:func:`undistort_normalized`), and ``d_cam = [x, -y, -1]`` with ``(x, y)`` the undistorted coordinates.
OpenCV's pixel convention puts pixel centres at integers: its camera matrix has ``cx - 0.5, cy - 0.5``
(:meth:`Intrinsics.opencv_matrix`). Other models (equirectangular, ...) raise :class:`UnsupportedCameraError`.

Quaternion helpers carry the component order in their names: ``wxyz`` (kubric, Blender, the Messy Rooms
release) and ``xyzw`` (pybullet, scipy).

This module is a leaf: numpy and torch only (scipy is imported lazily by the matrix -> quaternion helpers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    "DISTORTION_MODELS",
    "Distortion",
    "DistortionLike",
    "Intrinsics",
    "IntrinsicsLike",
    "UnsupportedCameraError",
    "backproject",
    "camera_rays",
    "distort_normalized",
    "pack_distortion",
    "pixel_directions",
    "project",
    "project_points",
    "ray_length_per_z",
    "undistort_normalized",
    "quat_wxyz_to_matrix",
    "quat_xyzw_to_matrix",
    "matrix_to_quat_wxyz",
    "matrix_to_quat_xyzw",
]


# --------------------------------------------------------------------------------------------------------------
# Lens distortion
# --------------------------------------------------------------------------------------------------------------

DISTORTION_MODELS: dict[str, Tuple[str, ...]] = {
    "simple_radial": ("k",),
    "radial": ("k1", "k2"),
    "opencv": ("k1", "k2", "p1", "p2"),
    "full_opencv": ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
    "opencv_fisheye": ("k1", "k2", "k3", "k4"),
}
"""The lens models lift3d honours (COLMAP's definitions) and the names of their coefficients, in order."""

PACKED_DISTORTION_SIZE = 9
"""Length of :meth:`Distortion.packed`: a model kind and eight coefficients."""
KIND_PINHOLE, KIND_PERSPECTIVE, KIND_FISHEYE = 0, 1, 2
"""Kinds in slot 0 of a packed distortion: none, OpenCV's rational-radial + tangential model, OpenCV's fisheye."""

_NEWTON_ITERATIONS = 20
"""Newton steps of the inverse distortion (converges in 3-6 for real lenses; the extra steps cost little)."""
_NEWTON_TOLERANCE = 1e-13
"""Stop early once every residual (normalised image units) is below this."""
_FISHEYE_MAX_THETA = 0.5 * math.pi - 1e-6
"""Largest angle from the optical axis a fisheye ray may take (a -z camera direction cannot go beyond 90 deg)."""


class UnsupportedCameraError(ValueError):
    """A camera model lift3d cannot model (equirectangular, an unknown distortion, wrong coefficient count)."""


def _unsupported(model: str, detail: str) -> UnsupportedCameraError:
    known = ", ".join(f"{name} ({' '.join(params)})" for name, params in DISTORTION_MODELS.items())
    return UnsupportedCameraError(
        f"camera model {model!r}: {detail}. lift3d models pinhole cameras and these distortions: {known}. "
        "Undistort the images first (e.g. `colmap image_undistorter`) and give pinhole intrinsics."
    )


@dataclass(frozen=True)
class Distortion:
    r"""A lens distortion model of COLMAP / OpenCV, applied to normalised image coordinates.

    With ``(x, y)`` the normalised coordinates in OpenCV's image axes (x right, y *down*; lift3d's camera y is up,
    so ``x = (u + 0.5 - c_x) / f_x`` and ``y = (v + 0.5 - c_y) / f_y`` for pixel ``(u, v)``) and
    :math:`r^2 = x^2 + y^2`, the distorted coordinates are (OpenCV's ``projectPoints``; COLMAP's camera models)

    .. math::
        \rho = \frac{1 + k_1 r^2 + k_2 r^4 + k_3 r^6}{1 + k_4 r^2 + k_5 r^4 + k_6 r^6},\quad
        x_d = x \rho + 2 p_1 x y + p_2 (r^2 + 2 x^2),\quad
        y_d = y \rho + p_1 (r^2 + 2 y^2) + 2 p_2 x y

    for ``simple_radial`` (``k``: :math:`k_1 = k`), ``radial`` (k1, k2), ``opencv`` (k1, k2, p1, p2) and
    ``full_opencv`` (k1, k2, p1, p2, k3, k4, k5, k6), the coefficients not named being 0; and for
    ``opencv_fisheye`` (k1..k4; OpenCV's fisheye model, equidistant)

    .. math::
        \theta = \arctan r,\quad \theta_d = \theta (1 + k_1 \theta^2 + k_2 \theta^4 + k_3 \theta^6 + k_4 \theta^8),
        \quad (x_d, y_d) = \frac{\theta_d}{r} (x, y).

    Pixels are then ``(f_x x_d + c_x, f_y y_d + c_y)``. ``model`` is matched case-insensitively (``"OPENCV"`` works)
    and stored lower-case; an unknown model or a wrong number of coefficients raises :class:`UnsupportedCameraError`.
    """

    model: str
    """Name of the model: one of :data:`DISTORTION_MODELS` (``opencv``, ``full_opencv``, ``opencv_fisheye``,
    ``simple_radial``, ``radial``)."""
    params: Tuple[float, ...] = ()
    """The model's coefficients in COLMAP's order (:data:`DISTORTION_MODELS` names them)."""

    def __post_init__(self) -> None:
        model = str(self.model).strip().lower()
        if model not in DISTORTION_MODELS:
            raise _unsupported(self.model, "unknown or unsupported lens model")
        params = tuple(float(p) for p in self.params)
        expected = DISTORTION_MODELS[model]
        if len(params) != len(expected):
            raise _unsupported(
                self.model, f"takes {len(expected)} coefficients ({', '.join(expected)}), got {len(params)}"
            )
        if not all(math.isfinite(p) for p in params):
            raise _unsupported(self.model, f"coefficients must be finite, got {params}")
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "params", params)

    @property
    def is_fisheye(self) -> bool:
        return self.model == "opencv_fisheye"

    @property
    def is_identity(self) -> bool:
        """True when every coefficient is 0 (the camera is then an ideal pinhole)."""
        return all(p == 0.0 for p in self.params)

    def coefficients(self) -> dict[str, float]:
        """The coefficients by name, e.g. ``{"k1": -0.25, "k2": 0.08, "p1": 0.002, "p2": -0.001}``."""
        return dict(zip(DISTORTION_MODELS[self.model], self.params))

    def describe(self) -> str:
        """One-line summary, e.g. ``opencv k1=-0.25 k2=0.08 p1=0.002 p2=-0.001``."""
        return self.model + " " + " ".join(f"{k}={v:.4g}" for k, v in self.coefficients().items())

    def opencv_coefficients(self) -> np.ndarray:
        """The coefficients in OpenCV's layout: ``[8]`` ``(k1, k2, p1, p2, k3, k4, k5, k6)`` for the perspective
        models (what ``cv2.projectPoints`` takes), ``[4]`` ``(k1, k2, k3, k4)`` for ``opencv_fisheye``."""
        if self.is_fisheye:
            return np.asarray(self.params, dtype=np.float64)
        named = self.coefficients()
        if self.model == "simple_radial":
            named = {"k1": named["k"]}
        return np.array([named.get(k, 0.0) for k in ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")])

    def packed(self) -> np.ndarray:
        """``[9]`` float64 ``(kind, c_1..c_8)``: kind 1 with :meth:`opencv_coefficients` of a perspective model,
        kind 2 with ``(k1, k2, k3, k4, 0, 0, 0, 0)`` for the fisheye; the layout the torch functions take."""
        out = np.zeros(PACKED_DISTORTION_SIZE, dtype=np.float64)
        coeffs = self.opencv_coefficients()
        out[0] = KIND_FISHEYE if self.is_fisheye else KIND_PERSPECTIVE
        out[1 : 1 + coeffs.size] = coeffs
        return out


def pack_distortion(distortion: Optional[Distortion]) -> np.ndarray:
    """``[9]`` :meth:`Distortion.packed`, or zeros (kind 0, pinhole) for None."""
    if distortion is None:
        return np.zeros(PACKED_DISTORTION_SIZE, dtype=np.float64)
    return distortion.packed()


DistortionLike = Union[None, Distortion, torch.Tensor]
"""None (pinhole), one :class:`Distortion` for every ray, or packed distortions ``[9]`` / ``[N, 9]``."""


def _as_packed(distortion: DistortionLike, n: int) -> Optional[torch.Tensor]:
    """``[n, 9]`` float64 packed distortions, or None when every ray is pinhole."""
    if distortion is None:
        return None
    if isinstance(distortion, Distortion):
        packed = torch.from_numpy(distortion.packed())
    else:
        packed = torch.as_tensor(distortion).to(torch.float64)
    if packed.shape[-1] != PACKED_DISTORTION_SIZE:
        raise ValueError(
            f"packed distortion must have {PACKED_DISTORTION_SIZE} entries, got shape {tuple(packed.shape)}"
        )
    packed = packed.expand(n, PACKED_DISTORTION_SIZE) if packed.dim() == 1 else packed
    if not bool((packed[:, 0] != KIND_PINHOLE).any()):
        return None
    return packed


def _perspective_forward(xy: torch.Tensor, c: torch.Tensor, with_jacobian: bool):
    """OpenCV's rational-radial + tangential model (see :class:`Distortion`) and its Jacobian.

    xy ``[N, 2]``, c ``[N, 8]`` (k1, k2, p1, p2, k3, k4, k5, k6) -> distorted ``[N, 2]`` and, with
    ``with_jacobian``, ``d(x_d, y_d) / d(x, y)`` as four ``[N]`` tensors (a, b, c, d) = (dxd/dx, dxd/dy, dyd/dx, dyd/dy).
    """
    x, y = xy[:, 0], xy[:, 1]
    k1, k2, p1, p2, k3, k4, k5, k6 = c.unbind(-1)
    r2 = x * x + y * y
    num = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    den = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))
    rho = num / den
    xd = x * rho + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * rho + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    out = torch.stack([xd, yd], dim=-1)
    if not with_jacobian:
        return out, None
    dnum = k1 + r2 * (2.0 * k2 + 3.0 * r2 * k3)  # d num / d r2
    dden = k4 + r2 * (2.0 * k5 + 3.0 * r2 * k6)
    drho = (dnum * den - num * dden) / (den * den)  # d rho / d r2; d r2 / dx = 2x
    a = rho + 2.0 * x * x * drho + 2.0 * p1 * y + 6.0 * p2 * x
    b = 2.0 * x * y * drho + 2.0 * p1 * x + 2.0 * p2 * y
    cc = 2.0 * x * y * drho + 2.0 * p1 * x + 2.0 * p2 * y
    d = rho + 2.0 * y * y * drho + 6.0 * p1 * y + 2.0 * p2 * x
    return out, (a, b, cc, d)


def _fisheye_theta_d(theta: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    t2 = theta * theta
    k1, k2, k3, k4 = k.unbind(-1)
    return theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))


def _fisheye_forward(xy: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """OpenCV's fisheye model (see :class:`Distortion`): xy ``[N, 2]``, k ``[N, 4]`` -> ``[N, 2]``."""
    r = xy.norm(dim=-1)
    theta_d = _fisheye_theta_d(torch.atan(r), k)
    scale = torch.where(r > 1e-12, theta_d / r.clamp_min(1e-12), torch.ones_like(r))
    return xy * scale[:, None]


def _fisheye_inverse(xy_d: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Solve ``theta_d(theta) = |xy_d|`` by Newton's method, then ``xy = xy_d tan(theta) / theta_d``."""
    theta_d = xy_d.norm(dim=-1)
    theta = theta_d.clamp(max=_FISHEYE_MAX_THETA)
    k1, k2, k3, k4 = k.unbind(-1)
    for _ in range(_NEWTON_ITERATIONS):
        t2 = theta * theta
        residual = _fisheye_theta_d(theta, k) - theta_d
        slope = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))
        theta = (theta - residual / slope).clamp(0.0, _FISHEYE_MAX_THETA)
        if float(residual.abs().max()) < _NEWTON_TOLERANCE:
            break
    scale = torch.where(theta_d > 1e-12, torch.tan(theta) / theta_d.clamp_min(1e-12), torch.ones_like(theta_d))
    return xy_d * scale[:, None]


def _perspective_inverse(xy_d: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Solve ``distort(xy) = xy_d`` by Newton's method on the 2x2 Jacobian, starting at ``xy = xy_d``."""
    xy = xy_d.clone()
    for _ in range(_NEWTON_ITERATIONS):
        f, (a, b, cc, d) = _perspective_forward(xy, c, with_jacobian=True)
        r = f - xy_d
        det = a * d - b * cc
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        step = torch.stack([(d * r[:, 0] - b * r[:, 1]) / det, (a * r[:, 1] - cc * r[:, 0]) / det], dim=-1)
        xy = xy - step
        if float(r.abs().max()) < _NEWTON_TOLERANCE:
            break
    return xy


def distort_normalized(xy: torch.Tensor, distortion: DistortionLike) -> torch.Tensor:
    """Apply the lens model (:class:`Distortion`) to undistorted normalised coordinates.

    Args:
        xy: ``[N, 2]`` normalised coordinates in OpenCV's image axes (x right, y down).
        distortion: one :class:`Distortion`, packed ``[9]`` or ``[N, 9]`` (rows of kind 0 are left as they are),
            or None.
    Returns:
        ``[N, 2]`` distorted normalised coordinates, computed in float64, in ``xy``'s dtype.
    """
    packed = _as_packed(distortion, xy.shape[0])
    if packed is None:
        return xy.clone()
    x64 = xy.to(torch.float64)
    out = x64.clone()
    kind = packed[:, 0]
    persp, fish = kind == KIND_PERSPECTIVE, kind == KIND_FISHEYE
    if persp.any():
        out[persp] = _perspective_forward(x64[persp], packed[persp, 1:], with_jacobian=False)[0]
    if fish.any():
        out[fish] = _fisheye_forward(x64[fish], packed[fish, 1:5])
    return out.to(xy.dtype)


def undistort_normalized(xy_d: torch.Tensor, distortion: DistortionLike) -> torch.Tensor:
    """Invert the lens model (:class:`Distortion`): distorted normalised coordinates -> undistorted ones.

    The perspective models are inverted by Newton's method on the 2D map (the Jacobian in closed form; what
    nerfstudio's ``radial_and_tangential_undistort`` does), the fisheye by Newton's method on
    :math:`\\theta_d(\\theta)`; up to 20 steps in float64, stopping once every residual is below 1e-13.

    Args:
        xy_d: ``[N, 2]`` distorted normalised coordinates (OpenCV's image axes: x right, y down).
        distortion: one :class:`Distortion`, packed ``[9]`` or ``[N, 9]``, or None.
    Returns:
        ``[N, 2]`` undistorted normalised coordinates in ``xy_d``'s dtype.
    """
    packed = _as_packed(distortion, xy_d.shape[0])
    if packed is None:
        return xy_d.clone()
    x64 = xy_d.to(torch.float64)
    out = x64.clone()
    kind = packed[:, 0]
    persp, fish = kind == KIND_PERSPECTIVE, kind == KIND_FISHEYE
    if persp.any():
        out[persp] = _perspective_inverse(x64[persp], packed[persp, 1:])
    if fish.any():
        out[fish] = _fisheye_inverse(x64[fish], packed[fish, 1:5])
    return out.to(xy_d.dtype)


# --------------------------------------------------------------------------------------------------------------
# Intrinsics
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intrinsics:
    """Intrinsics of one camera, in pixels, with an optional lens distortion. See the module docstring."""

    fx: float
    """Focal length along the image columns (pixels)."""
    fy: float
    """Focal length along the image rows (pixels)."""
    cx: float
    """Principal point, column coordinate (pixels; the image spans ``[0, width]``)."""
    cy: float
    """Principal point, row coordinate (pixels; the image spans ``[0, height]``)."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    distortion: Optional[Distortion] = None
    """Lens distortion (:class:`Distortion`); None for an ideal pinhole."""

    @property
    def matrix(self) -> np.ndarray:
        """``[3, 3]`` float64 ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in lift3d's pixel convention (pixel
        centres at +0.5; OpenCV's ``K`` has ``cx - 0.5, cy - 0.5``: :meth:`opencv_matrix`)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    def opencv_matrix(self) -> np.ndarray:
        """``[3, 3]`` float64 camera matrix in OpenCV's pixel convention (pixel centres at integers)."""
        return np.array(
            [[self.fx, 0.0, self.cx - 0.5], [0.0, self.fy, self.cy - 0.5], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    def vector(self) -> np.ndarray:
        """``[4]`` float64 ``(fx, fy, cx, cy)``, the layout :func:`camera_rays` takes."""
        return np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)

    def require_pinhole(self, what: str) -> None:
        """Raise :class:`NotImplementedError` naming ``what`` when the camera carries a distortion model (for code
        that has no distortion path; the functions of this module all have one)."""
        if self.distortion is not None and not self.distortion.is_identity:
            raise NotImplementedError(
                f"{what}: the camera has a '{self.distortion.model}' distortion model, which this function does not "
                "support; undistort the images (e.g. colmap image_undistorter) and give pinhole intrinsics."
            )


IntrinsicsLike = Union[Intrinsics, Sequence[float]]
"""An :class:`Intrinsics` or a sequence ``(fx, fy, cx, cy)`` in pixels (pinhole)."""


def _split_intrinsics(intrinsics: IntrinsicsLike) -> Tuple[float, float, float, float, Optional[Distortion]]:
    if isinstance(intrinsics, Intrinsics):
        d = intrinsics.distortion
        return intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy, None if d is None or d.is_identity else d
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    return fx, fy, cx, cy, None


# --------------------------------------------------------------------------------------------------------------
# Rays, back-projection and projection
# --------------------------------------------------------------------------------------------------------------


def camera_rays(
    c2w: torch.Tensor, intrinsics: torch.Tensor, uv: torch.Tensor, distortion: DistortionLike = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray origins and directions through pixel centres, through the lens model when there is one.

    Pinhole: ``d_cam = [(u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1]``. With a distortion, the pixel centre's
    normalised coordinates ``(x_d, y_d) = ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy)`` (y down) are undistorted
    (:func:`undistort_normalized`) to ``(x, y)`` and ``d_cam = [x, -y, -1]``. Then ``d_world = R d_cam``, ``o = t``.

    Args:
        c2w: ``[N, 4, 4]`` or ``[4, 4]`` camera-to-world (OpenGL axes).
        intrinsics: ``[N, 4]`` or ``[4]`` ``(fx, fy, cx, cy)`` (e.g. :meth:`Intrinsics.vector` as a tensor).
        uv: ``[N, 2]`` integer pixel coordinates (column u, row v).
        distortion: None (pinhole), a :class:`Distortion` of every ray, or packed ``[9]`` / ``[N, 9]``
            (:meth:`Distortion.packed`; rows of kind 0 are pinhole).
    Returns:
        origins ``[N, 3]`` and directions ``[N, 3]`` whose camera-space z component is -1, so ``o + t d`` is the
        point at optical-axis depth ``t``.
    """
    uv = uv.to(torch.float32) + 0.5
    if intrinsics.dim() == 1:
        intrinsics = intrinsics.expand(uv.shape[0], 4)
    if c2w.dim() == 2:
        c2w = c2w.expand(uv.shape[0], 4, 4)
    fx, fy, cx, cy = intrinsics.unbind(-1)
    packed = _as_packed(distortion, uv.shape[0])
    if packed is None:
        d_cam = torch.stack([(uv[:, 0] - cx) / fx, -(uv[:, 1] - cy) / fy, -torch.ones_like(fx)], dim=-1)
    else:
        f64 = intrinsics.to(torch.float64).unbind(-1)
        uv64 = uv.to(torch.float64)
        xy_d = torch.stack([(uv64[:, 0] - f64[2]) / f64[0], (uv64[:, 1] - f64[3]) / f64[1]], dim=-1)
        xy = undistort_normalized(xy_d, packed).to(fx.dtype)
        d_cam = torch.stack([xy[:, 0], -xy[:, 1], -torch.ones_like(fx)], dim=-1)
    dirs = torch.einsum("nij,nj->ni", c2w[:, :3, :3], d_cam)
    return c2w[:, :3, 3].clone(), dirs


def pixel_directions(intrinsics: IntrinsicsLike, height: int, width: int) -> np.ndarray:
    """``[H, W, 3]`` float64 camera-space directions ``d_cam`` (unit -z component) of every pixel centre, through the
    camera's lens model (:func:`camera_rays` with the identity pose)."""
    fx, fy, cx, cy, dist = _split_intrinsics(intrinsics)
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    xy_d = np.stack([(u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy], axis=-1).reshape(-1, 2)
    xy = undistort_normalized(torch.from_numpy(xy_d), dist).numpy() if dist is not None else xy_d
    return np.concatenate([xy[:, :1], -xy[:, 1:], -np.ones((xy.shape[0], 1))], axis=-1).reshape(height, width, 3)


def backproject(depth: np.ndarray, c2w: np.ndarray, intrinsics: IntrinsicsLike) -> tuple[np.ndarray, np.ndarray]:
    """World points of every pixel centre of a depth map: ``X = R (z d_cam) + t`` (module docstring), with
    ``d_cam`` through the lens model when ``intrinsics`` carries one (:func:`pixel_directions`).

    Args:
        depth: ``[H, W]`` optical-axis depth in metres; pixels that are not finite or ``<= 0`` are invalid.
        c2w: ``[4, 4]`` camera-to-world (OpenGL axes).
        intrinsics: :class:`Intrinsics` (with or without distortion) or ``(fx, fy, cx, cy)``.

    Returns:
        ``(points [H, W, 3] float64, valid [H, W] bool)``; invalid pixels hold NaN.
    """
    depth = np.asarray(depth, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    h, w = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, np.nan)
    p_cam = pixel_directions(intrinsics, h, w) * z[..., None]  # [H, W, 3]
    points = p_cam @ c2w[:3, :3].T + c2w[:3, 3]
    return points, valid


def project_points(
    points: np.ndarray, c2w: np.ndarray, intrinsics: IntrinsicsLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuous image coordinates of world points, through the lens model when there is one.

    ``p = R^T (X - t)``, ``z = -p_z``, ``(x, y) = (p_x / z, -p_y / z)`` (y down), ``(x_d, y_d)`` =
    :func:`distort_normalized` ``(x, y)``, ``(u_c, v_c) = (f_x x_d + c_x, f_y y_d + c_y)``: pixel ``(u, v)`` spans
    ``[u, u + 1) x [v, v + 1)`` (its centre is ``u + 0.5``; OpenCV's ``projectPoints`` gives ``u_c - 0.5``).

    Args:
        points: ``[N, 3]`` world points.
        c2w: ``[4, 4]`` camera-to-world of the camera.
        intrinsics: :class:`Intrinsics` or ``(fx, fy, cx, cy)``.
    Returns:
        ``(uv [N, 2] float64, z [N] float64, valid [N] bool)``: continuous coordinates, optical-axis depth, and
        whether the point is in front of the camera and (with distortion) inside the region where the lens model is
        one-to-one (undistorting ``uv`` returns the point's own direction; far outside the image a polynomial lens
        model folds back, and such points are not valid).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    c2w = np.asarray(c2w, dtype=np.float64)
    fx, fy, cx, cy, dist = _split_intrinsics(intrinsics)
    p = (points - c2w[:3, 3]) @ c2w[:3, :3]  # R^T (X - t), row vectors
    z = -p[:, 2]
    in_front = z > 0
    safe_z = np.where(in_front, z, 1.0)
    xy = np.stack([p[:, 0] / safe_z, -p[:, 1] / safe_z], axis=-1)
    valid = in_front & np.isfinite(xy).all(-1)
    if dist is not None:
        xy_t = torch.from_numpy(np.where(valid[:, None], xy, 0.0))
        xy_d = distort_normalized(xy_t, dist)
        back = undistort_normalized(xy_d, dist)
        scale = 1.0 + np.abs(xy_t.numpy()).max(-1)
        valid &= np.abs(back.numpy() - xy_t.numpy()).max(-1) <= 1e-6 * scale
        xy = np.where(valid[:, None], xy_d.numpy(), xy)
    uv = np.stack([fx * xy[:, 0] + cx, fy * xy[:, 1] + cy], axis=-1)
    return uv, z, valid & np.isfinite(uv).all(-1)


def project(
    points: np.ndarray, c2w: np.ndarray, intrinsics: IntrinsicsLike, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels hit by world points in a camera (inverse of :func:`backproject`): the floor of
    :func:`project_points`' continuous coordinates, ``(u, v) = floor(fx x_d + cx, fy y_d + cy)``.

    Args:
        points: ``[N, 3]`` world points.
        c2w: ``[4, 4]`` camera-to-world of the target camera.
        intrinsics: :class:`Intrinsics` (with or without distortion) or ``(fx, fy, cx, cy)`` of the target camera.
        height, width: image size of the target camera.

    Returns:
        ``(u [N] int64, v [N] int64, z [N] float64, inside [N] bool)``: column, row, optical-axis depth and
        whether the point is in front of the camera (``z > 0``), valid for the lens model and inside the image.
    """
    uv, z, valid = project_points(points, c2w, intrinsics)
    u = np.floor(np.where(valid, uv[:, 0], -1.0)).astype(np.int64)
    v = np.floor(np.where(valid, uv[:, 1], -1.0)).astype(np.int64)
    inside = valid & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return u, v, z, inside


def ray_length_per_z(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    """``[H, W]`` factor ``distance / z = || ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1) ||`` of every pixel
    (pinhole; for a camera with distortion take the norm of :func:`pixel_directions`).

    Multiplying an optical-axis depth map by it gives the distance from the camera centre along each pixel's ray.
    """
    u = (np.arange(width) + 0.5 - cx) / fx
    v = (np.arange(height) + 0.5 - cy) / fy
    return np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)


# --------------------------------------------------------------------------------------------------------------
# Quaternions
# --------------------------------------------------------------------------------------------------------------


def _unit_quaternion_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    """Rotation ``[3, 3]`` of the unit quaternion ``w + x i + y j + z k`` (Hamilton convention)."""
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_wxyz_to_matrix(q: Sequence[float], normalize: bool = True) -> np.ndarray:
    """Quaternion ``(w, x, y, z)`` (kubric / Blender / Messy Rooms order) -> rotation ``[3, 3]`` float64.

    ``normalize`` divides ``q`` by its norm first; pass False for a quaternion that is already unit length.
    """
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q / np.linalg.norm(q) if normalize else q
    return _unit_quaternion_matrix(w, x, y, z)


def quat_xyzw_to_matrix(q: Sequence[float], normalize: bool = True) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` (pybullet / scipy order) -> rotation ``[3, 3]`` float64.

    ``normalize`` divides ``q`` by its norm first; pass False for a quaternion that is already unit length.
    """
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = q / np.linalg.norm(q) if normalize else q
    return _unit_quaternion_matrix(w, x, y, z)


def _matrix_to_xyzw(R: np.ndarray, w_nonnegative: bool) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    if w_nonnegative and q[3] < 0:  # q and -q are the same rotation: pick the one with w >= 0
        q = -q
    return q


def matrix_to_quat_wxyz(R: np.ndarray, w_nonnegative: bool = True) -> Tuple[float, float, float, float]:
    """Rotation ``[3, 3]`` -> unit quaternion ``(w, x, y, z)``; with ``w_nonnegative`` the one of ``+-q`` with
    ``w >= 0`` (else whichever scipy returns)."""
    x, y, z, w = _matrix_to_xyzw(R, w_nonnegative)
    return float(w), float(x), float(y), float(z)


def matrix_to_quat_xyzw(R: np.ndarray, w_nonnegative: bool = True) -> np.ndarray:
    """Rotation ``[3, 3]`` -> unit quaternion ``[4]`` ``(x, y, z, w)``; with ``w_nonnegative`` the one of ``+-q``
    with ``w >= 0`` (else whichever scipy returns)."""
    return _matrix_to_xyzw(R, w_nonnegative)
