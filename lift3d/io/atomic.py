"""Atomic writes: a reader (or a crash) never sees half a file or half a folder.

Every writer here writes a temporary sibling in the destination's folder (same file system) and renames it over the
destination with :func:`os.replace`, which POSIX and Windows make atomic for files. A failure at any point
(an exception, a full disk) removes the temporary and leaves the previous destination untouched.

This module is a leaf: it imports nothing from lift3d, so any layer may use it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = [
    "DiskFullError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "atomic_folder",
]


_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class DiskFullError(OSError):
    """The file system holding a destination is full (or over quota). The message names the path; the partial
    temporary file has been removed and the previous destination, if any, is untouched."""


def _disk_full(path: Path, err: OSError) -> DiskFullError:
    return DiskFullError(
        err.errno,
        f"no space left on device while writing {path} ({os.strerror(err.errno)}); the partial file was removed "
        "and the previous one, if any, is kept. Free some space (or choose another output folder) and run the "
        "command again (a fit continues with --resume).",
    )


def _atomic_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        if err.errno in _NO_SPACE:
            raise _disk_full(path, err) from None
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, _default_file_mode())  # mkstemp makes 0o600; give the file the mode open() would
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in _NO_SPACE and not isinstance(err, DiskFullError):
            raise _disk_full(path, err) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _default_file_mode() -> int:
    """0o666 minus the process umask: the mode a plain ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically. Returns ``path``."""
    return _atomic_file(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically. Returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (a trailing newline, ``indent`` spaces) to ``path`` atomically. Returns ``path``."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


class _RecordingWriter(io.RawIOBase):
    """A write-only file that remembers the ``OSError`` of a failed write: ``torch.save`` reports a full disk as a
    bare ``RuntimeError('[enforce fail ...] unexpected pos')``; this keeps the real cause."""

    def __init__(self, fh):
        super().__init__()
        self.fh, self.error = fh, None

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        try:
            return self.fh.write(b)
        except OSError as err:
            self.error = err
            raise


def atomic_torch_save(path: Path, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (torch is imported only when called). Returns ``path``.

    Raises:
        DiskFullError: the file system is full; no partial file is left and the previous ``path`` is kept.
    """
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb", buffering=0) as fh:
            writer = _RecordingWriter(fh)
            try:
                torch.save(obj, writer)
            except RuntimeError:
                if writer.error is not None:
                    raise writer.error from None
                raise

    return _atomic_file(path, write)


def _check_output_folder(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is a file, not a folder; choose another output folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out_dir} already exists and is not empty; choose another folder or pass overwrite=True."
        )


@contextmanager
def atomic_folder(out_dir: Path, overwrite: bool = False, subdirs: tuple[str, ...] = ()) -> Iterator[Path]:
    """Build a whole folder atomically: ``with atomic_folder(out) as tmp:`` write everything under ``tmp``.

    On a clean exit the temporary folder replaces ``out_dir`` (an existing non-empty ``out_dir`` is moved aside
    first and deleted only once the new one is in place, and only when ``overwrite``); on any exception the
    temporary folder is removed and ``out_dir`` is left as it was. ``subdirs`` are created inside ``tmp`` first.

    Raises:
        FileExistsError: ``out_dir`` is a file, or a non-empty folder and ``overwrite`` is False (checked before
            anything is written).
    """
    out_dir = Path(out_dir)
    _check_output_folder(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()  # a plain mkdir honours the umask (tempfile.mkdtemp would leave the finished folder at mode 0o700)
    try:
        for sub in subdirs:
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        yield tmp
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            old.rmdir()
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
