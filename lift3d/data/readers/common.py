"""Helpers shared by the scene readers (not a reader itself): camera models, image files without an extension,
split lists matched on normalised paths.

Camera models are named as COLMAP names them. A reader turns a model and its parameters into pinhole intrinsics
``(fx, fy, cx, cy)`` and a :class:`~lift3d.geometry.cameras.Distortion` whose ``model`` is the lower-case COLMAP
name and whose ``params`` are the distortion coefficients in COLMAP's order:

=================  =========================================  ===============================================
COLMAP model       COLMAP parameters                          ``Distortion``
=================  =========================================  ===============================================
SIMPLE_PINHOLE     f, cx, cy                                  None
PINHOLE            fx, fy, cx, cy                             None
SIMPLE_RADIAL      f, cx, cy, k                               ``("simple_radial", (k,))``
RADIAL             f, cx, cy, k1, k2                          ``("radial", (k1, k2))``
OPENCV             fx, fy, cx, cy, k1, k2, p1, p2             ``("opencv", (k1, k2, p1, p2))``
OPENCV_FISHEYE     fx, fy, cx, cy, k1, k2, k3, k4             ``("opencv_fisheye", (k1, k2, k3, k4))``
FULL_OPENCV        fx, fy, cx, cy, k1, k2, p1, p2, k3..k6     ``("full_opencv", (k1, k2, p1, p2, k3, k4, k5, k6))``
=================  =========================================  ===============================================

A model whose coefficients are all 0 is an ideal pinhole (``Distortion`` None). Every other model (equirectangular,
FOV, the other fisheye models, ...) is refused with :class:`~lift3d.data.scene.SceneFormatError`.
"""

from __future__ import annotations

import math
import posixpath
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from lift3d.data.scene import SceneFormatError
from lift3d.geometry.cameras import Distortion

__all__ = [
    "SUPPORTED_CAMERA_MODELS",
    "IMAGE_EXTENSIONS",
    "colmap_camera",
    "distortion_from_coefficients",
    "find_image_file",
    "normalised_name",
    "match_split_names",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
"""Extensions tried, in this order, for an image path written without one (Blender / instant-ngp style)."""

_COLMAP_LAYOUT: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    # model -> (intrinsic parameter names, distortion parameter names), COLMAP's order
    "SIMPLE_PINHOLE": (("f", "cx", "cy"), ()),
    "PINHOLE": (("fx", "fy", "cx", "cy"), ()),
    "SIMPLE_RADIAL": (("f", "cx", "cy"), ("k",)),
    "RADIAL": (("f", "cx", "cy"), ("k1", "k2")),
    "OPENCV": (("fx", "fy", "cx", "cy"), ("k1", "k2", "p1", "p2")),
    "OPENCV_FISHEYE": (("fx", "fy", "cx", "cy"), ("k1", "k2", "k3", "k4")),
    "FULL_OPENCV": (("fx", "fy", "cx", "cy"), ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
}
SUPPORTED_CAMERA_MODELS = tuple(_COLMAP_LAYOUT)
"""COLMAP camera models lift3d reads (the others are refused)."""


def _refuse_model(model: str, where: str) -> SceneFormatError:
    return SceneFormatError(
        f"{where}: camera model {model!r} cannot be modelled by lift3d (it reads {', '.join(SUPPORTED_CAMERA_MODELS)}"
        "). Undistort the images to a pinhole camera first (e.g. `colmap image_undistorter`, or `ns-process-data "
        "... --camera-type perspective`) and point lift3d at the undistorted scene."
    )


def distortion_from_coefficients(model: str, coefficients: Sequence[float], where: str) -> Optional[Distortion]:
    """The :class:`Distortion` of COLMAP model ``model`` (upper-case name) with distortion ``coefficients`` in
    COLMAP's order (module table); None for the pinhole models or when every coefficient is 0."""
    model = model.upper()
    if model not in _COLMAP_LAYOUT:
        raise _refuse_model(model, where)
    names = _COLMAP_LAYOUT[model][1]
    if len(coefficients) != len(names):
        raise SceneFormatError(
            f"{where}: camera model {model} has {len(names)} distortion coefficients ({', '.join(names)}), got "
            f"{len(coefficients)}."
        )
    values = tuple(float(c) for c in coefficients)
    if not all(math.isfinite(v) for v in values):
        raise SceneFormatError(f"{where}: distortion coefficients {values} of {model} are not all finite.")
    if not names or not any(values):
        return None
    return Distortion(model.lower(), values)


def colmap_camera(
    model: str, params: Sequence[float], where: str
) -> Tuple[float, float, float, float, Optional[Distortion]]:
    """``(fx, fy, cx, cy, distortion)`` of a COLMAP camera ``model`` (upper-case name) with its full parameter
    vector ``params`` (intrinsics then distortion, COLMAP's order; the module table)."""
    model = model.upper()
    if model not in _COLMAP_LAYOUT:
        raise _refuse_model(model, where)
    intrinsic_names, distortion_names = _COLMAP_LAYOUT[model]
    params = [float(p) for p in params]
    if len(params) != len(intrinsic_names) + len(distortion_names):
        raise SceneFormatError(
            f"{where}: camera model {model} takes {len(intrinsic_names) + len(distortion_names)} parameters "
            f"({', '.join(intrinsic_names + distortion_names)}), got {len(params)}."
        )
    values = dict(zip(intrinsic_names, params))
    fx = values.get("fx", values.get("f"))
    fy = values.get("fy", values.get("f"))
    if not (fx > 0 and fy > 0) or not all(math.isfinite(p) for p in params):
        raise SceneFormatError(f"{where}: camera {model} has focal lengths ({fx}, {fy}); they must be finite and > 0.")
    distortion = distortion_from_coefficients(model, params[len(intrinsic_names) :], where)
    return fx, fy, values["cx"], values["cy"], distortion


def find_image_file(root: Path, relative: str) -> Optional[Path]:
    """``root / relative`` when that file exists; for a path without an extension (Blender / instant-ngp style:
    ``./train/r_0``) the first of :data:`IMAGE_EXTENSIONS` that exists; else None."""
    path = root / relative
    if path.is_file():
        return path
    if not Path(relative).suffix:
        for ext in IMAGE_EXTENSIONS:
            candidate = path.with_name(path.name + ext)
            if candidate.is_file():
                return candidate
    return None


def normalised_name(name: str) -> str:
    """A frame path as split lists are compared: POSIX separators, ``./`` and ``a/../`` removed
    (``./images/x.png`` == ``images/x.png``)."""
    return posixpath.normpath(str(name).replace("\\", "/"))


def _without_extension(name: str) -> str:
    root, ext = posixpath.splitext(name)
    return root if ext.lower() in {e.lower() for e in IMAGE_EXTENSIONS} else name


def match_split_names(
    listed: Iterable[str], frame_names: Mapping[int, str], key: str, where: str, dropped: Iterable[str] = ()
) -> List[int]:
    """Frame indices of the split list ``listed`` (its ``key`` in the scene file ``where``), matched on
    :func:`normalised_name` with or without an image extension. ``frame_names`` maps index -> the frame's name;
    names in ``dropped`` (frames skipped as unreadable) are left out silently; any other unknown name is an error."""
    exact: Dict[str, int] = {}
    stem: Dict[str, List[int]] = {}
    for index, name in frame_names.items():
        norm = normalised_name(name)
        exact[norm] = index
        stem.setdefault(_without_extension(norm), []).append(index)
    dropped_norm = {normalised_name(n) for n in dropped} | {_without_extension(normalised_name(n)) for n in dropped}
    out = []
    for raw in listed:
        norm = normalised_name(raw)
        if norm in exact:
            out.append(exact[norm])
            continue
        candidates = stem.get(_without_extension(norm), [])
        if len(candidates) == 1:
            out.append(candidates[0])
            continue
        if norm in dropped_norm or _without_extension(norm) in dropped_norm:
            continue
        if len(candidates) > 1:
            raise SceneFormatError(
                f"{where}: '{key}' lists {raw!r}, which matches several frames without its extension; write the "
                "full file name."
            )
        raise SceneFormatError(
            f"{where}: '{key}' lists {raw!r}, which is no frame's file_path (compared without './' and with or "
            "without the extension); fix the name or remove it from the list."
        )
    return out
