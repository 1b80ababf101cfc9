"""Checkpoints of a fit: what one holds, written atomically, read back to resume training or to render.

A checkpoint (``RunDir.latest_checkpoint``) holds the step, the resolved config, the model's and the occupancy
grid's state, both optimisers, the RNG states (the trainer's generator and torch's global one), the loss
history, the scene's class count, box and path. Resuming restores all of it, so a resumed fit takes the same
steps as an uninterrupted one.

Checkpoints are read with ``torch.load(weights_only=True)``: a checkpoint holds only tensors, numbers, strings,
lists and dicts, so no code in a (tampered) file ever runs. Saving keeps the last two (``latest.pt`` and
``previous.pt``), so a damaged latest one still leaves a run to resume from. Results computed from a checkpoint
record :func:`made_from` (its step and config hash), so stale results can be told from fresh ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lift3d.config_io import config_from_dict, config_to_dict
from lift3d.engine.config import FitConfig
from lift3d.engine.run_dir import RunDir, RunFileError
from lift3d.io.atomic import atomic_torch_save
from lift3d.models import LiftModel
from lift3d.objectives import OBJECTIVES, build_objective

__all__ = [
    "CheckpointError",
    "config_hash",
    "made_from",
    "checkpoint_made_from",
    "save_checkpoint",
    "load_checkpoint",
    "fit_config_from_dict",
    "training_state",
    "restore_training_state",
    "load_model",
    "resize_grids",
]


class CheckpointError(RunFileError):
    """A checkpoint file is damaged or not a lift3d checkpoint; the message names it and says how to recover."""


def config_hash(config: dict) -> str:
    """First 12 hex digits of the SHA-256 of a stored FitConfig dict (keys sorted): equal configs, equal hashes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def made_from(ckpt: dict) -> dict:
    """``{"checkpoint_step", "config_hash"}`` of a checkpoint payload: what renders, clusters and metrics record."""
    return {"checkpoint_step": int(ckpt["step"]), "config_hash": config_hash(ckpt["config"])}


def save_checkpoint(path: Path, payload: dict, previous: Path | None = None) -> None:
    """``torch.save`` to a temporary file, then rename: a checkpoint is never half-written. With ``previous``, the
    checkpoint ``path`` held until now is kept there (hard-linked, so ``path`` exists at every moment)."""
    path = Path(path)
    if previous is not None and path.exists():
        previous = Path(previous)
        tmp = previous.with_name(f".{previous.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:  # a file system without hard links
            shutil.copy2(path, tmp)
        os.replace(tmp, previous)
    atomic_torch_save(path, payload)


def _recovery_hint(path: Path) -> str:
    previous = path.with_name("previous.pt")
    run = path.parent.parent
    if path.name != "previous.pt" and previous.exists():
        return (
            f"The checkpoint before it is kept: `mv {previous} {path}` then `lift3d fit DATA --out {run} --resume` "
            "continues from there (or refit into a new folder)."
        )
    return f"Refit: `lift3d fit DATA --out NEW_FOLDER` (or delete {run} and fit it again)."


def load_checkpoint(path: Path, device: str = "cpu") -> dict:
    """The payload of a checkpoint file, tensors mapped to ``device``; read as plain data (``weights_only``).

    Raises:
        CheckpointError: the file is missing, truncated, corrupt or holds something else than a lift3d checkpoint
            (naming the file and the way back: the previous checkpoint kept beside it, or a refit).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no checkpoint; run `lift3d fit DATA --out {path.parent.parent}` first.")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on a damaged file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(
            f"{path}: the checkpoint is damaged or not a lift3d checkpoint ({type(err).__name__}: {first[:160]}). "
            + _recovery_hint(path)
        ) from None
    missing = [k for k in ("step", "config", "model") if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path}: not a lift3d checkpoint (missing {', '.join(missing)}). " + _recovery_hint(path)
        )
    return ckpt


def checkpoint_made_from(run_dir: Path) -> dict | None:
    """:func:`made_from` of a run's latest checkpoint, or None when the run has none."""
    path = RunDir(run_dir).latest_checkpoint
    if not path.exists():
        return None
    return made_from(load_checkpoint(path))


def fit_config_from_dict(d: dict) -> FitConfig:
    """A stored FitConfig dict back as a :class:`FitConfig`; the objective it names first upgrades dicts written
    by an older lift3d (e.g. linear assignment's K, once stored as ``model.embedding_dim``)."""
    objective = OBJECTIVES.get(d.get("losses", {}).get("instance_loss", ""))
    if objective is not None:
        d = objective.upgrade_stored_config(d)
    return config_from_dict(FitConfig, d)


def training_state(trainer: Any) -> dict:
    """Everything a :class:`lift3d.engine.trainer.Trainer` needs to continue where it stands."""
    occ = trainer.model.occupancy.state_dict() if trainer.model.occupancy is not None else None
    return {
        "step": trainer.step,
        "config": config_to_dict(trainer.cfg),
        "model": trainer.model.state_dict(),
        "occupancy": occ,
        "opt_field": trainer.opt_field.state_dict(),
        "opt_instance": trainer.opt_instance.state_dict(),
        "num_classes": trainer.scene.num_classes,
        "aabb": trainer.aabb.tolist(),
        "generator": trainer.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": trainer.history,
        "scene": str(trainer.scene.root),
    }


def restore_training_state(trainer: Any, ckpt: dict) -> None:
    """Put ``trainer`` back in the state :func:`training_state` saved (optimisers rebuilt for the loaded grids)."""
    resize_grids(trainer.model, ckpt["model"])
    trainer.model.load_state_dict(ckpt["model"])
    trainer.make_optimisers()
    trainer.opt_field.load_state_dict(ckpt["opt_field"])
    trainer.opt_instance.load_state_dict(ckpt["opt_instance"])
    if ckpt.get("occupancy") is not None and trainer.model.occupancy is not None:
        trainer.model.occupancy.load_state_dict(ckpt["occupancy"])
    trainer.generator.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])
    trainer.step, trainer.history = ckpt["step"], ckpt.get("history", [])


def load_model(run_dir: Path, device: str = "cpu") -> tuple[LiftModel, FitConfig, dict]:
    """The fitted model of a run folder (its latest checkpoint), its config and the checkpoint payload."""
    run = RunDir(run_dir)
    ckpt = load_checkpoint(run.latest_checkpoint, device)
    cfg = fit_config_from_dict(ckpt["config"])
    objective = build_objective(cfg.losses, cfg.model.embedding_dim)
    model = LiftModel(
        cfg.model, ckpt["num_classes"], np.asarray(ckpt["aabb"]), device, instance_dim=objective.output_dim
    )
    resize_grids(model, ckpt["model"])
    # Training-only modules of the objective (the DINO baseline's projection heads) are not part of the rendered model.
    private = objective.training_only_prefixes
    model.load_state_dict({k: v for k, v in ckpt["model"].items() if not (private and k.startswith(private))})
    if model.occupancy is not None and ckpt.get("occupancy") is not None:
        model.occupancy.load_state_dict(
            {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in ckpt["occupancy"].items()}
        )
    return model.to(device), cfg, ckpt


def resize_grids(model: LiftModel, state: dict) -> None:
    """A checkpoint saved after a TensoRF upsample has larger planes: grow the fresh model to match."""
    key = "radiance.density_grid.planes.0"
    if key in state and state[key].shape[-1] != getattr(model.radiance, "density_grid", None).resolution:
        model.radiance.upsample(int(state[key].shape[-1]))
