"""The layout of a run folder, named once.

A run folder holds ``config.json`` (the scene, the preset name if any and the resolved FitConfig),
``checkpoints/latest.pt`` (atomic, resumable) and ``checkpoints/previous.pt`` (the one before it, kept in case the
latest is damaged), ``.lock`` (the process writing the folder, :mod:`lift3d.engine.run_lock`), ``fit.json`` (timings, final losses), ``clusters.json`` (the
instance labeler: cached centroids or argmax slots), ``clustering.json`` (how it was chosen: the
min_cluster_size sweep), ``renders/<split>/`` (see :mod:`lift3d.engine.outputs`) and ``metrics.json``. Every JSON
of a run is written atomically (:meth:`RunDir.write_json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lift3d.io.atomic import atomic_write_json

__all__ = ["RunDir", "RunFileError", "RunExistsError"]


class RunFileError(ValueError):
    """A file of a run folder is missing its content or damaged; the message names the file and what to do."""


class RunFileMissingError(RunFileError, FileNotFoundError):
    """A run folder lacks a file a command needs (no config.json: not a run; no clusters.json: fit not finished)."""


class RunExistsError(RunFileError, FileExistsError):
    """A fit without ``--resume`` into a folder that already holds a run."""


@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder. ``RunDir(path)`` accepts a str or Path."""

    root: Path
    """The run folder."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        """``config.json``: ``{"scene", "preset", "config"}`` written before training starts."""
        return self.root / "config.json"

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``."""
        return self.root / "checkpoints"

    @property
    def latest_checkpoint(self) -> Path:
        """``checkpoints/latest.pt``: model, optimisers, RNG states and history at the last saved step."""
        return self.checkpoints / "latest.pt"

    @property
    def previous_checkpoint(self) -> Path:
        """``checkpoints/previous.pt``: the checkpoint saved before ``latest.pt`` (the last two are kept)."""
        return self.checkpoints / "previous.pt"

    @property
    def lock(self) -> Path:
        """``.lock``: pid, host and command of the process writing this folder (see :mod:`lift3d.engine.run_lock`)."""
        return self.root / ".lock"

    @property
    def fit_summary(self) -> Path:
        """``fit.json``: iterations, seconds, rate, final losses, clustering choice, device."""
        return self.root / "fit.json"

    @property
    def clusters(self) -> Path:
        """``clusters.json``: the instance labeler (cluster centroids or argmax slots)."""
        return self.root / "clusters.json"

    @property
    def clustering(self) -> Path:
        """``clustering.json``: the views clustered and how the labeler was chosen."""
        return self.root / "clustering.json"

    @property
    def metrics(self) -> Path:
        """``metrics.json``: scores of the last ``lift3d eval``."""
        return self.root / "metrics.json"

    @property
    def renders_root(self) -> Path:
        """``renders/``."""
        return self.root / "renders"

    def renders(self, split: str) -> Path:
        """``renders/<split>/``: one folder of rendered views per split."""
        return self.renders_root / split

    def write_json(self, path: Path, obj: Any) -> Path:
        """Write ``obj`` (indented JSON) to ``path`` (one of this run's files) atomically."""
        return atomic_write_json(path, obj)

    def read_record(self) -> dict:
        """The content of ``config.json``."""
        if not self.config.exists():
            raise RunFileMissingError(
                f"{self.config}: not a lift3d run folder (no config.json); pass the folder that "
                "`lift3d fit --out` wrote."
            )
        try:
            record = json.loads(self.config.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise RunFileError(
                f"{self.config}: cannot be read ({type(err).__name__}: {str(err)[:200]}); the run's record is "
                "damaged. Refit into a new folder (`lift3d fit DATA --out NEW`), or, if you know the scene, pass "
                "--data SCENE to render / eval."
            ) from None
        if not isinstance(record, dict) or "config" not in record:
            raise RunFileError(f"{self.config}: not a lift3d run record (no 'config'); refit into a new folder.")
        return record
