"""One writer per run folder: a lock file holding the owner's pid, host and command.

``lift3d fit`` (and ``--resume``), ``lift3d render`` and ``lift3d eval`` write into a run folder; each holds
``RUN/.lock`` (:attr:`lift3d.engine.run_dir.RunDir.lock`) while it works. The file is created with ``O_CREAT |
O_EXCL``, so of two processes starting at once exactly one gets it; the other raises :class:`RunLockedError`
naming the holder. A lock left by a process that died (same host, pid no longer running) is stale: it is
removed and taken over. The process that holds a lock may take it again (``evaluate_run`` renders first).
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["RunLockedError", "run_lock", "read_lock"]

_HELD: dict[Path, int] = {}
"""Locks this process holds (resolved path -> nesting depth)."""


class RunLockedError(RuntimeError):
    """Another live process is writing the run folder; the message names it (pid, host, command, since when)."""


def read_lock(path: Path) -> Optional[dict]:
    """The owner record of the lock file ``path`` (``pid``, ``host``, ``command``, ``started``), or None when
    there is none; an unreadable record reads as ``{}``."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        rec = json.loads(text)
        return rec if isinstance(rec, dict) else {}
    except ValueError:
        return {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _is_stale(rec: dict) -> bool:
    """True when the lock's owner ran on this host and is no longer running (a record without a pid, e.g. one
    cut short by a crash while it was being written, is stale too)."""
    pid = rec.get("pid")
    if not isinstance(pid, int):
        return True
    return rec.get("host") == socket.gethostname() and not _pid_alive(pid)


def _try_create(path: Path, record: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(record))
    return True


@contextmanager
def run_lock(path: Path, command: str, log=print) -> Iterator[None]:
    """Hold the lock file ``path`` (``RUN/.lock``) while the body runs; remove it afterwards (also on errors).

    Raises:
        RunLockedError: a live process holds it (pid, host, command and start time named).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = path.parent.resolve() / path.name
    if key in _HELD:  # re-entered by the holder
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.time()}
    for _ in range(3):
        if _try_create(path, record):
            break
        rec = read_lock(path)
        if rec is None:  # removed between our two calls: try again
            continue
        if _is_stale(rec):
            log(
                f"WARNING: {path}: removing a stale lock of process {rec.get('pid')} ({rec.get('command')}), which no "
                "longer runs"
            )
            path.unlink(missing_ok=True)
            continue
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.get("started", 0)))
        raise RunLockedError(
            f"{path.parent}: another process is writing this run folder: pid {rec.get('pid')} on "
            f"{rec.get('host')} ({rec.get('command')}, since {since}). Wait for it to finish or stop it, or choose "
            f"another --out. If it is not running any more, delete {path}."
        )
    else:
        raise RunLockedError(f"{path}: could not take the run folder's lock; try again.")
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        if (read_lock(path) or {}).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
