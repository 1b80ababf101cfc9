"""Checkpoints of a fit: what one holds, written atomically, read back to resume training or to render.

A checkpoint (``RunDir.latest_checkpoint``) holds the step, the resolved config, the model's and the occupancy
grid's state, both optimisers, the RNG states (the trainer's generator and torch's global one), the loss
history, the scene's class count, box and path. Resuming restores all of it, so a resumed fit takes the same
steps as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lift3d.config_io import config_from_dict, config_to_dict
from lift3d.engine.config import FitConfig
from lift3d.engine.run_dir import RunDir
from lift3d.io.atomic import atomic_torch_save
from lift3d.models import LiftModel
from lift3d.objectives import OBJECTIVES, build_objective

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "fit_config_from_dict",
    "training_state",
    "restore_training_state",
    "load_model",
    "resize_grids",
]


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` to a temporary file, then rename: a checkpoint is never half-written."""
    atomic_torch_save(Path(path), payload)


def load_checkpoint(path: Path, device: str = "cpu") -> dict:
    """The payload of a checkpoint file, tensors mapped to ``device``."""
    return torch.load(Path(path), map_location=device, weights_only=False)


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
    ckpt_path = run.latest_checkpoint
    if not ckpt_path.exists():
        raise FileNotFoundError(f"{ckpt_path}: no checkpoint; run `lift3d fit DATA --out {run.root}` first.")
    ckpt = load_checkpoint(ckpt_path, device)
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
