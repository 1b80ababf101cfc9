"""One registry of scene readers: each on-disk layout lift3d reads is a :class:`SceneReader` registered by name.

:func:`lift3d.data.loading.load_scene` asks the registered readers, in registration order, which one recognises a
path (:meth:`SceneReader.can_read`) and lets it load the scene. Adding a layout (COLMAP, Panoptic Lifting's format,
...) is one module in :mod:`lift3d.data.readers` that defines a ``READER`` plus one :func:`register_reader` line in
``lift3d/data/readers/__init__.py``. Readers never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from lift3d.data.scene import Scene

__all__ = ["SceneReader", "register_reader", "unregister_reader", "registered_readers", "get_reader", "find_reader"]


@dataclass(frozen=True)
class SceneReader:
    """A reader of one on-disk scene layout."""

    name: str
    """Unique name, e.g. ``"transforms_json"``; ``load_scene(path, reader=name)`` forces this reader."""
    description: str
    """What the reader recognises, in a few words (listed when no reader recognises a path)."""
    can_read: Callable[[Path], bool]
    """``can_read(path) -> bool``: cheap test (file names only, nothing decoded) that ``path`` is this layout."""
    load: Callable[..., Scene]
    """``load(path, check_files=True) -> Scene``: read and validate; problems raise ``SceneFormatError``. A reader
    that can drop unreadable frames also takes ``skip_bad_frames: bool`` (listing them in
    ``scene.extras['skipped_frames']``)."""


_READERS: Dict[str, SceneReader] = {}


def register_reader(reader: SceneReader, replace: bool = False) -> SceneReader:
    """Add ``reader`` to the registry (after the ones already there). Returns ``reader``.

    Raises:
        ValueError: a reader of that name is registered and ``replace`` is False.
    """
    if reader.name in _READERS and not replace:
        raise ValueError(
            f"a scene reader named {reader.name!r} is already registered; pick another name or pass replace=True."
        )
    _READERS[reader.name] = reader
    return reader


def unregister_reader(name: str) -> None:
    """Remove the reader ``name`` (no error when it is not registered)."""
    _READERS.pop(name, None)


def registered_readers() -> List[SceneReader]:
    """The registered readers, in registration order (the order :func:`find_reader` asks them)."""
    return list(_READERS.values())


def get_reader(name: str) -> SceneReader:
    """The reader registered as ``name``.

    Raises:
        KeyError: no reader of that name; the message lists the registered names.
    """
    if name not in _READERS:
        raise KeyError(f"no scene reader named {name!r}; registered readers: {', '.join(_READERS) or 'none'}.")
    return _READERS[name]


def find_reader(path: Path) -> Optional[SceneReader]:
    """The first registered reader whose ``can_read(path)`` is True, or None."""
    for reader in _READERS.values():
        if reader.can_read(Path(path)):
            return reader
    return None
