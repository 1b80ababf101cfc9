"""Many Messy Rooms scenes from one command (``lift3d generate messy-rooms-batch``), serially or one Ray task each.

A batch is a list of :class:`BatchScene` (a folder name and a :class:`MessyRoomsConfig`): the grid of
``num_objects x seed`` over one base configuration (:func:`grid_scenes`; scene ``N025_seed1`` has 25 objects and
seed 1) or the entries of a JSON spec file (:func:`spec_scenes`; a list of config dicts over the same base).
:func:`generate_batch` checks every scene before any work, skips those already generated with the same settings
(a scene folder is built in a hidden sibling and renamed into place by :func:`~lift3d.generate.pipeline
.generate_scene`, so a folder with ``transforms.json`` is complete), then generates the others through
:func:`lift3d.fanout.run_tasks`: in this process, or one Ray task per scene. A scene that fails is reported with
its name and the others go on; ``OUT/batch.json`` records every scene's settings, status and error.

Each scene depends only on its own configuration (every random choice is seeded by ``cfg.seed``), so a scene is
byte for byte the same whether it was generated serially, on Ray, or alone with ``lift3d generate messy-rooms``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from lift3d.fanout import RayOptions, TaskOutcome, import_ray, run_tasks
from lift3d.generate.config import MessyRoomsConfig, config_from_dict, config_to_dict
from lift3d.io.atomic import atomic_write_json

__all__ = [
    "BATCH_RECORD",
    "BatchSpecError",
    "BatchGenerationError",
    "BatchScene",
    "scene_name",
    "grid_scenes",
    "spec_scenes",
    "scene_status",
    "generate_one",
    "generate_batch",
    "raise_on_failures",
]

BATCH_RECORD = "batch.json"
"""File in the batch folder recording every scene's name, settings, status and error of the last run."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")


class BatchSpecError(ValueError):
    """The batch cannot start: a bad spec file or entry, two scenes with one name, or a scene folder holding a
    scene generated with other settings. Raised before any scene is generated; the message names the fix."""


class BatchGenerationError(RuntimeError):
    """Some scenes of a batch failed (each was reported with its name); the others were written."""


@dataclass(frozen=True)
class BatchScene:
    """One scene of a batch."""

    name: str
    """Folder name of the scene inside the batch folder."""
    config: MessyRoomsConfig
    """Its generator configuration."""


def scene_name(num_objects: int, seed: int) -> str:
    """Stable folder name of a grid scene: ``N{num_objects:03d}_seed{seed}`` (``N025_seed1``)."""
    return f"N{num_objects:03d}_seed{seed}"


def _plain(base: MessyRoomsConfig, **changes: Any) -> MessyRoomsConfig:
    """``base`` as a plain :class:`MessyRoomsConfig` (a CLI subclass's extra fields dropped) with ``changes``."""
    return config_from_dict({**config_to_dict(base), **changes})


def grid_scenes(base: MessyRoomsConfig, objects: Sequence[int], seeds: Sequence[int]) -> list[BatchScene]:
    """One scene per ``(num_objects, seed)`` of ``objects x seeds`` (objects-major), every other setting from
    ``base``; named by :func:`scene_name`."""
    scenes = []
    for n in objects:
        for seed in seeds:
            try:
                cfg = _plain(base, num_objects=int(n), seed=int(seed))
            except ValueError as err:
                raise BatchSpecError(f"scene {scene_name(n, seed)}: {err}") from None
            scenes.append(BatchScene(scene_name(n, seed), cfg))
    return scenes


def spec_scenes(path: Path, base: MessyRoomsConfig) -> list[BatchScene]:
    """The scenes of a JSON spec file: a list of objects, each a dict of :class:`MessyRoomsConfig` fields applied
    over ``base`` plus an optional ``"name"`` (default :func:`scene_name` of its ``num_objects`` and ``seed``).

    Raises :class:`BatchSpecError` naming the file and the entry for anything that is not such a list.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BatchSpecError(
            f"{path}: cannot read the batch spec ({err}); it must be a JSON list of objects."
        ) from None
    if not isinstance(entries, list) or not entries:
        raise BatchSpecError(f"{path}: the batch spec must be a non-empty JSON list of MessyRoomsConfig objects.")
    scenes = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BatchSpecError(f"{path}: entry {i} is {type(entry).__name__}, not an object of config fields.")
        fields_ = {k: v for k, v in entry.items() if k != "name"}
        try:
            cfg = _plain(base, **fields_)
        except (ValueError, TypeError) as err:
            raise BatchSpecError(f"{path}: entry {i}: {err}") from None
        name = entry.get("name", scene_name(cfg.num_objects, cfg.seed))
        if not isinstance(name, str) or not _NAME.match(name):
            raise BatchSpecError(
                f"{path}: entry {i}: name {name!r} is not a folder name (letters, digits, _ . = -; not starting "
                "with a dot)."
            )
        scenes.append(BatchScene(name, cfg))
    return scenes


def _canonical(cfg_dict: dict) -> str:
    return json.dumps(cfg_dict, sort_keys=True, default=str)


def scene_status(folder: Path, cfg: MessyRoomsConfig) -> str:
    """``"missing"`` (no scene in ``folder``), ``"done"`` (a complete scene generated with ``cfg``) or
    ``"different"`` (a scene generated with other settings, or a non-empty folder that is no generated scene)."""
    folder = Path(folder)
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return "missing"
    try:
        record = json.loads((folder / "transforms.json").read_text())["generator"]["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return "different"
    return "done" if _canonical(record) == _canonical(config_to_dict(cfg)) else "different"


def generate_one(config: dict, out_dir: str, overwrite: bool) -> dict:
    """Generate one scene (the task body, serial or on a Ray worker): ``config`` as :func:`config_to_dict` gives
    it, written to ``out_dir``. Returns ``{"objects_placed", "views", "seconds"}``."""
    from lift3d.generate.pipeline import generate_scene

    t0 = time.perf_counter()
    cfg = config_from_dict(config)
    generate_scene(cfg, Path(out_dir), progress=False, overwrite=overwrite)
    transforms = json.loads((Path(out_dir) / "transforms.json").read_text())
    return {
        "objects_placed": transforms["generator"]["num_objects_placed"],
        "views": len(transforms["frames"]),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _check_scenes(scenes: Sequence[BatchScene], out: Path, overwrite: bool) -> dict[str, str]:
    """Every scene's status, or :class:`BatchSpecError` before any work (duplicate names, backends that cannot
    run here, folders holding other scenes without ``overwrite``)."""
    from lift3d.generate.pipeline import check_backend

    names = [s.name for s in scenes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BatchSpecError(
            f'two scenes of the batch are named {duplicates}: give the spec entries distinct "name" keys (or '
            "distinct num_objects / seed)."
        )
    checked: set[str] = set()
    for s in scenes:
        key = f"{s.config.backend}|{s.config.assets}|{s.config.kubric.physics}"
        if key not in checked:
            try:
                check_backend(s.config)
            except (ValueError, NotImplementedError) as err:
                raise BatchSpecError(f"scene {s.name}: {err}") from None
            checked.add(key)
    status = {s.name: scene_status(out / s.name, s.config) for s in scenes}
    different = [n for n, st in status.items() if st == "different"]
    if different and not overwrite:
        raise BatchSpecError(
            f"{out}: the folders {different} hold scenes generated with other settings (or other files); delete "
            "them, choose another --out, or pass --overwrite to generate them again."
        )
    return status


def generate_batch(
    scenes: Sequence[BatchScene],
    out: Path,
    ray_options: Optional[RayOptions] = None,
    overwrite: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> dict[str, dict]:
    """Generate every scene of ``scenes`` into ``out/NAME`` and return ``{name: record}`` (also in
    ``out/batch.json``), each record holding ``status`` (``skipped``: already generated with the same settings;
    ``generated``; ``failed`` with ``error`` and ``traceback``) and the scene's ``config``.

    ``ray_options`` None runs the scenes one after another here, else one Ray task per scene
    (:func:`lift3d.fanout.run_tasks`). Checks every scene first (:class:`BatchSpecError`); a scene that fails is
    logged with its name and the others go on (the caller decides the exit status).
    """
    from tqdm import tqdm

    log = log or tqdm.write
    out = Path(out).resolve()
    if ray_options is not None:
        import_ray()  # a missing ray is one line before any work
    status = _check_scenes(scenes, out, overwrite)
    records = {s.name: {"status": "pending", "config": config_to_dict(s.config)} for s in scenes}
    for s in scenes:
        if status[s.name] == "done":
            records[s.name]["status"] = "skipped"
            log(f"{s.name}: already generated with these settings, skipped")
    todo = [s for s in scenes if status[s.name] != "done"]
    record_path = out / BATCH_RECORD
    atomic_write_json(record_path, records)

    def on_done(outcome: TaskOutcome) -> None:
        rec = records[outcome.name]
        if outcome.ok:
            rec.update(status="generated", **outcome.value)
            log(
                f"{outcome.name}: {outcome.value['objects_placed']} objects, {outcome.value['views']} views in "
                f"{outcome.value['seconds']:.1f} s -> {out / outcome.name}"
            )
        else:
            rec.update(status="failed", error=outcome.error, traceback=outcome.traceback)
            log(f"{outcome.name}: FAILED: {outcome.error}")
        atomic_write_json(record_path, records)

    where = "serially" if ray_options is None else "as Ray tasks"
    log(f"{len(todo)} of {len(scenes)} scenes to generate {where} into {out}")
    tasks = [(s.name, (config_to_dict(s.config), str(out / s.name), status[s.name] == "different")) for s in todo]
    run_tasks(generate_one, tasks, ray_options, on_done=on_done, desc="scenes", unit="scene")
    return records


def raise_on_failures(records: dict[str, dict], out: Path) -> None:
    """:class:`BatchGenerationError` listing the failed scenes of ``records``, if any."""
    failed = [name for name, rec in records.items() if rec["status"] == "failed"]
    if failed:
        raise BatchGenerationError(
            f"{len(failed)} of {len(records)} scenes failed ({', '.join(failed)}; errors above and in "
            f"{Path(out) / BATCH_RECORD}); the others are in {out}. Run the same command again to retry only these."
        )
