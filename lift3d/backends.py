"""Which implementation runs the two accelerated pieces, decided once per run (a leaf: imports no lift3d module).

Two pieces of the model have an accelerated implementation next to a pure-PyTorch twin:

* volume rendering (:func:`lift3d.render.volume.render_weights`): nerfacc's ``render_weight_from_density`` or
  the twin :func:`lift3d.render.volume.render_weights_torch`;
* the multiresolution hash grid (:func:`lift3d.fields.hashgrid.make_hash_grid`): tinycudann's ``HashGrid``
  encoding or :class:`lift3d.fields.hashgrid.HashGridTorch` (the radiance field's; the optional hash grids in
  front of the semantic and instance heads are always :class:`HashGridTorch`).

:func:`resolve_backends` looks at the device and at what imports, once, and returns a frozen :class:`Backends`
that the renderer and the fields are given; nothing decides again per call and no error raised by an accelerated
library at call time is swallowed. ``"auto"`` picks the accelerated path only where it can run: a CUDA device,
the library imports, and (nerfacc) its CUDA extension loads. An explicit request that cannot run raises
:class:`BackendUnavailable` naming what is missing and how to fix it.

On a CPU device nerfacc 0.5.3 has no kernels to run: on a dense ``[num_rays, num_samples]`` layout its
``render_weight_from_density`` is ``exp(-cumsum)`` in plain torch, the very operations of the twin in the same
order (same values and gradients bit for bit). ``"auto"`` on CPU therefore picks the twin; ``"nerfacc"`` on CPU is
honoured (it runs nerfacc's batched torch code) and says so in :meth:`Backends.describe`.

>>> print(resolve_backends("cpu").describe())  # doctest: +ELLIPSIS
backends: volume rendering torch (...), hash grid torch (...), device cpu
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Backends",
    "BackendUnavailable",
    "resolve_backends",
    "resolve_volume_rendering",
    "resolve_hash_grid",
    "VolumeRenderingBackend",
    "HashGridBackend",
]

VolumeRenderingBackend = Literal["nerfacc", "torch"]
HashGridBackend = Literal["tcnn", "torch"]

VOLUME_RENDERING_FIELD = "model.volume_rendering_backend"
"""The config field that requests a volume-rendering backend (named in error messages)."""
HASH_GRID_FIELD = "model.radiance.hash_implementation"
"""The config field that requests a hash-grid backend (named in error messages)."""


class BackendUnavailable(RuntimeError):
    """An explicitly requested accelerated backend cannot run on this machine or device."""


@dataclass(frozen=True)
class Backends:
    """The implementations one run uses; made by :func:`resolve_backends`, passed to the renderer and the fields."""

    volume_rendering: VolumeRenderingBackend = "torch"
    """``nerfacc``: nerfacc's ``render_weight_from_density``; ``torch``: the pure-PyTorch twin."""
    hash_grid: HashGridBackend = "torch"
    """``tcnn``: tinycudann's HashGrid encoding (CUDA only); ``torch``: :class:`HashGridTorch`."""
    device: str = "cpu"
    """The torch device the run uses (``cpu``, ``cuda``, ``cuda:1``, ...)."""
    volume_rendering_note: str = "pure PyTorch"
    """Why this volume-rendering backend (and, for nerfacc, its version and whether its CUDA extension loaded)."""
    hash_grid_note: str = "pure PyTorch"
    """Why this hash-grid backend (e.g. ``tinycudann not installed``)."""

    def describe(self) -> str:
        """The one log line of a run, e.g. ``backends: volume rendering nerfacc 0.5.3 (CUDA extension loaded),
        hash grid torch (tinycudann not installed), device cuda``."""
        return (
            f"backends: volume rendering {self.volume_rendering} ({self.volume_rendering_note}), "
            f"hash grid {self.hash_grid} ({self.hash_grid_note}), device {self.device}"
        )


def _is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def _nerfacc_version() -> str:
    """nerfacc's version; raises ImportError (or OSError from a broken install) when it does not import."""
    import nerfacc

    return str(nerfacc.__version__)


def _nerfacc_cuda_extension_problem() -> str:
    """'' when nerfacc's CUDA extension loads (prebuilt, or nerfacc's own JIT build), else what went wrong.

    Only called for a CUDA device: on a CPU-only machine importing the extension fails (no CUDA_HOME / nvcc)."""
    try:
        from nerfacc.cuda._backend import _C
    except (ImportError, OSError, RuntimeError) as err:  # resolution time, not call time: reported, not hidden
        return f"its CUDA extension does not load: {type(err).__name__}: {err}"
    if _C is None:
        return "its CUDA extension did not build (no CUDA toolkit / nvcc found)"
    return ""


def resolve_volume_rendering(
    device: str, requested: Literal["auto", "nerfacc", "torch"] = "auto"
) -> tuple[VolumeRenderingBackend, str]:
    """(backend, note) for volume rendering on ``device``; see the module docstring for the rules."""
    if requested == "torch":
        return "torch", "requested"
    if requested not in ("auto", "nerfacc"):
        raise ValueError(f"{VOLUME_RENDERING_FIELD}={requested!r}: expected 'auto', 'nerfacc' or 'torch'.")
    if requested == "auto" and not _is_cuda(device):
        return "torch", f"device {device}: nerfacc's batched path would run the same torch ops"
    try:
        version = _nerfacc_version()
    except (ImportError, OSError) as err:
        if requested == "auto":
            return "torch", "nerfacc not installed"
        raise BackendUnavailable(
            f"{VOLUME_RENDERING_FIELD}='nerfacc' was requested but nerfacc does not import ({err}). Install it "
            f"(`pip install nerfacc==0.5.3`) or set {VOLUME_RENDERING_FIELD} to 'auto' or 'torch'."
        ) from err
    if not _is_cuda(device):
        return "nerfacc", f"nerfacc {version} batched path: plain torch ops on {device}"
    problem = _nerfacc_cuda_extension_problem()
    if problem and requested == "auto":
        return "torch", f"nerfacc {version}: {problem}"
    if problem:
        raise BackendUnavailable(
            f"{VOLUME_RENDERING_FIELD}='nerfacc' was requested on {device} but nerfacc {version}: {problem}. Install "
            f"a CUDA toolkit (nvcc, CUDA_HOME) so nerfacc can build its extension, or set {VOLUME_RENDERING_FIELD} "
            "to 'auto' or 'torch'."
        )
    return "nerfacc", f"nerfacc {version}, CUDA extension loaded"


def _tinycudann_problem() -> str:
    """'' when ``import tinycudann`` works, else why not."""
    try:
        import tinycudann  # noqa: F401
    except ModuleNotFoundError:
        return "tinycudann not installed"
    except (ImportError, OSError, RuntimeError) as err:  # resolution time, not call time: reported, not hidden
        return f"tinycudann does not import: {type(err).__name__}: {err}"
    return ""


def resolve_hash_grid(device: str, requested: Literal["auto", "tcnn", "torch"] = "auto") -> tuple[HashGridBackend, str]:
    """(backend, note) for the hash grid on ``device``: tinycudann needs a CUDA device and ``import tinycudann``."""
    if requested == "torch":
        return "torch", "requested"
    if requested not in ("auto", "tcnn"):
        raise ValueError(f"{HASH_GRID_FIELD}={requested!r}: expected 'auto', 'tcnn' or 'torch'.")
    if not _is_cuda(device):
        if requested == "auto":
            return "torch", f"device {device}: tinycudann is CUDA-only"
        raise BackendUnavailable(
            f"{HASH_GRID_FIELD}='tcnn' was requested but tinycudann runs only on a CUDA device and the device is "
            f"{device}. Run on a machine with a GPU (--device cuda) or set {HASH_GRID_FIELD} to 'auto' or 'torch'."
        )
    problem = _tinycudann_problem()
    if problem and requested == "auto":
        return "torch", problem
    if problem:
        raise BackendUnavailable(
            f"{HASH_GRID_FIELD}='tcnn' was requested but {problem}. Install it (`pip install "
            "git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch` with a CUDA toolkit) or set "
            f"{HASH_GRID_FIELD} to 'auto' or 'torch'."
        )
    return "tcnn", "tinycudann"


def resolve_backends(
    device: str,
    volume_rendering: Literal["auto", "nerfacc", "torch"] = "auto",
    hash_grid: Literal["auto", "tcnn", "torch"] = "auto",
) -> Backends:
    """Decide, once per run, which implementation renders and which encodes the hash grid on ``device``.

    Args:
        device: the run's torch device (``cpu``, ``cuda``, ``cuda:0``, ...).
        volume_rendering: ``auto`` (nerfacc on CUDA when its extension loads, else torch), ``nerfacc`` or ``torch``.
        hash_grid: ``auto`` (tinycudann on CUDA when it imports, else torch), ``tcnn`` or ``torch``.

    Raises:
        BackendUnavailable: an explicit ``nerfacc`` / ``tcnn`` request that cannot run here.
    """
    device = str(device)
    vr, vr_note = resolve_volume_rendering(device, volume_rendering)
    hg, hg_note = resolve_hash_grid(device, hash_grid)
    return Backends(
        volume_rendering=vr, hash_grid=hg, device=device, volume_rendering_note=vr_note, hash_grid_note=hg_note
    )
