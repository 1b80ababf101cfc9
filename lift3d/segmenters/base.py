"""The common face of every 2D segmenter: :class:`Segmenter` (image in, id maps out, plus the classes it
produces), :class:`Segmentation`, the errors a user can meet, and the registry that names the segmenters.

A segmenter turns one view ``image [H, W, 3]`` float32 in ``[0, 1]`` (and, where it uses it, ``depth [H, W]``
metres, 0 = unknown) into a :class:`Segmentation`: ``instance [H, W]`` int64 (0 = no segment), ``semantic [H, W]``
int64 (ids of :attr:`Segmenter.classes`, 0 where no segment) and ``confidence [H, W]`` float32 in ``[0, 1]``.
Every module of :mod:`lift3d.segmenters` defines one segmenter and registers it with :func:`register_segmenter`;
``lift3d segments predict --segmenter NAME`` builds it by name (:func:`build_segmenter`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from lift3d.data.scene import SceneClass

__all__ = [
    "Segmentation",
    "Segmenter",
    "SegmenterOptions",
    "SegmenterSpec",
    "SegmenterError",
    "SegmenterUnavailableError",
    "SegmenterWeightsError",
    "register_segmenter",
    "registered_segmenters",
    "build_segmenter",
    "require_module",
    "hub_or_local_weights",
    "load_pretrained",
    "BACKGROUND_CLASS",
]

BACKGROUND_CLASS = SceneClass(0, "background", False)
"""Class 0 of every segmenter's class list: pixels no segment covers (lift3d's convention, docs/scene-format.md)."""


class SegmenterError(ValueError):
    """A segmenter cannot run as asked (unknown name, bad option, a file it would overwrite); the message says how
    to fix it."""


class SegmenterUnavailableError(SegmenterError):
    """The Python package a segmenter needs is not installed; the message names what to install."""


class SegmenterWeightsError(SegmenterError):
    """A segmenter's weights cannot be found or loaded; the message names the path or hub id and what to do."""


@dataclass
class Segmentation:
    """One view's segments, all ``[H, W]``."""

    instance: np.ndarray
    """int64 instance ids, 0 = no segment (stuff regions carry 0 and only a class)."""
    semantic: np.ndarray
    """int64 class ids of :attr:`Segmenter.classes` (0 = background where no segment)."""
    confidence: np.ndarray
    """float32 in [0, 1], the segmenter's confidence in each pixel's label."""

    def check(self, shape: tuple[int, int], class_ids: set[int], where: str) -> None:
        """Raise :class:`SegmenterError` unless the three maps are ``shape`` with the documented dtypes, ids
        ``>= 0``, classes in ``class_ids`` and confidences in ``[0, 1]``."""
        for key, dtype in (("instance", np.int64), ("semantic", np.int64), ("confidence", np.float32)):
            arr = getattr(self, key)
            if arr.shape != shape or arr.dtype != dtype:
                raise SegmenterError(
                    f"{where}: the segmenter returned {key} {arr.shape} {arr.dtype}, expected {shape} {np.dtype(dtype)}."
                )
        if self.instance.min(initial=0) < 0:
            raise SegmenterError(f"{where}: the segmenter returned negative instance ids.")
        unknown = sorted(set(np.unique(self.semantic).tolist()) - class_ids)
        if unknown:
            raise SegmenterError(f"{where}: the segmenter returned class ids {unknown[:10]} outside its class list.")
        if not (np.isfinite(self.confidence).all() and self.confidence.min() >= 0 and self.confidence.max() <= 1):
            raise SegmenterError(f"{where}: the segmenter returned confidences outside [0, 1].")


class Segmenter(ABC):
    """A 2D segmenter ready to run (weights loaded)."""

    name: str = ""
    """Registry name (``--segmenter NAME``)."""
    uses_depth: bool = False
    """True when :meth:`segment` uses the view's depth (the caller then reads it when the scene has depth)."""

    @property
    @abstractmethod
    def classes(self) -> list[SceneClass]:
        """The classes its semantic maps use (class 0 is the background, a stuff class)."""

    @abstractmethod
    def segment(self, image: np.ndarray, depth: Optional[np.ndarray] = None) -> Segmentation:
        """``image [H, W, 3]`` float32 in [0, 1] (``depth [H, W]`` metres, 0 = unknown, or None) ->
        :class:`Segmentation` of the same ``H x W``."""

    def describe(self) -> dict:
        """Plain data recorded next to the written maps (``segments/<name>/segmenter.json``)."""
        return {"segmenter": self.name}


@dataclass(frozen=True)
class SegmenterOptions:
    """What every segmenter is built from (its own settings come in its own config)."""

    weights: Optional[str] = None
    """A local folder / file of weights, or a Hugging Face hub id; None: the segmenter's default."""
    device: str = "cpu"
    """torch device the network runs on (cpu, cuda, cuda:1)."""
    settings: Dict[str, object] = field(default_factory=dict)
    """Per-segmenter configs by segmenter name (e.g. ``{"classical": ClassicalConfig(...)}``)."""


@dataclass(frozen=True)
class SegmenterSpec:
    """A registered segmenter: its name, a one-line description, what the user downloads, and its builder."""

    name: str
    description: str
    downloads: str
    """What a user must download or install to run it (shown in errors and docs)."""
    build: Callable[[SegmenterOptions], Segmenter]


_REGISTRY: Dict[str, SegmenterSpec] = {}


def register_segmenter(spec: SegmenterSpec) -> SegmenterSpec:
    """Add ``spec`` to the registry under ``spec.name`` (a second spec with the same name is an error)."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"a segmenter named {spec.name!r} is already registered.")
    _REGISTRY[spec.name] = spec
    return spec


def registered_segmenters() -> list[SegmenterSpec]:
    """Every registered segmenter, in registration order."""
    return list(_REGISTRY.values())


def build_segmenter(name: str, options: Optional[SegmenterOptions] = None) -> Segmenter:
    """The segmenter registered as ``name``, built (weights loaded) with ``options``."""
    if name not in _REGISTRY:
        known = ", ".join(_REGISTRY)
        raise SegmenterError(f"--segmenter {name}: no such segmenter; choose one of {known}.")
    return _REGISTRY[name].build(options or SegmenterOptions())


def require_module(module: str, segmenter: str, install: str):
    """Import ``module`` or raise :class:`SegmenterUnavailableError` saying that segmenter ``segmenter`` needs it
    and how to install it (``install``, e.g. ``pip install 'lift3d[segmenters]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise SegmenterUnavailableError(
            f"the {segmenter} segmenter needs the Python package {module!r}, which cannot be imported here "
            f"({err}); install it with: {install}"
        ) from None


def hub_or_local_weights(weights: Optional[str], default_hub_id: str, segmenter: str) -> str:
    """What ``from_pretrained`` should load: an existing local path as given, a hub id (``owner/name`` that is no
    local path) as given, ``default_hub_id`` when ``weights`` is None. A path-like ``weights`` (starting with ``.``,
    ``/`` or ``~``, or naming a deeper path than ``owner/name``) that does not exist is a
    :class:`SegmenterWeightsError`."""
    if weights is None:
        return default_hub_id
    path = Path(weights).expanduser()
    if path.exists():
        return str(path)
    looks_like_path = weights.startswith((".", "/", "~")) or weights.count("/") != 1 or "\\" in weights
    if looks_like_path:
        raise SegmenterWeightsError(
            f"--weights {weights}: no such file or folder for the {segmenter} segmenter; pass the folder holding "
            f"config.json and the weights (e.g. from: huggingface-cli download {default_hub_id} --local-dir DIR), "
            f"or a hub id such as {default_hub_id}."
        )
    return weights


def load_pretrained(loader, source: str, segmenter: str, default_hub_id: str):
    """``loader(source)`` (a ``from_pretrained``), turning a failure to find or read the weights into a
    :class:`SegmenterWeightsError` that says how to fetch them."""
    try:
        return loader(source)
    except (OSError, ValueError, EnvironmentError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SegmenterWeightsError(
            f"cannot load the {segmenter} weights from {source!r} ({first[:200]}). On a machine that reaches the "
            f"Hugging Face hub run: huggingface-cli download {default_hub_id} --local-dir DIR, copy DIR here and pass "
            "--weights DIR."
        ) from None
