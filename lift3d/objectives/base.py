"""What an instance objective is, and the registry that names them.

An instance objective trains the instance field from the pixels of ONE training image at a time (2D segment ids
are consistent only within an image) and later turns the rendered field into instance ids. Each objective is one
class here, registered by name with :func:`register_objective`; ``FitConfig.losses.instance_loss`` holds that
name. The trainer, inference and presets call the interface below and never ask which objective they hold.

Where a new objective goes: a subclass of :class:`InstanceObjective` in a module of this package (or anywhere,
e.g. a test), decorated with ``@register_objective("my-name")``; then ``cfg.losses.instance_loss = "my-name"``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import torch
from torch import nn

from lift3d.losses.config import LossConfig

__all__ = ["InstanceBatch", "InstanceObjective", "OBJECTIVES", "register_objective", "get_objective", "build_objective"]


@dataclass
class InstanceBatch:
    """The thing pixels of one training image that an instance step sees (``P`` pixels)."""

    samples: Any
    """:class:`lift3d.models.RaySamples` of the image's sampled rays (weights computed without gradient)."""
    rows: torch.Tensor
    """[P] rows of ``samples`` that are thing pixels."""
    ids: torch.Tensor
    """[P] their 2D segment ids (consistent within this image only)."""
    confidence: torch.Tensor
    """[P] confidence of their 2D labels."""


class InstanceObjective(ABC):
    """One instance objective: its extra modules, their parameters, its loss, its after-step hook, its decoder.

    Args:
        losses: the fit's loss configuration (weights and the objective's own settings).
        embedding_dim: ``model.embedding_dim``, the width D of embedding objectives.
    """

    name: ClassVar[str] = ""
    """Registry name, set by :func:`register_objective`."""
    decoder: ClassVar[str] = "clustering"
    """How the rendered field becomes instance ids after fitting: the name of a decoder registered in
    :mod:`lift3d.cluster.decoders` (``"clustering"``: HDBSCAN on the embeddings per thing class with the
    ``min_cluster_size`` sweep; ``"argmax"``: argmax over ``output_dim`` slots). The decoders live a layer above
    the engine; the objective only names the one that suits its output."""
    training_only_prefixes: ClassVar[tuple[str, ...]] = ()
    """State-dict key prefixes of modules this objective adds to the model for training only (not rendered)."""

    def __init__(self, losses: LossConfig, embedding_dim: int):
        self.losses = losses
        self.embedding_dim = int(embedding_dim)

    @classmethod
    def upgrade_stored_config(cls, config: dict) -> dict:
        """A stored FitConfig dict (a run's ``config.json`` or checkpoint) written by an older lift3d, brought up to
        date for this objective (default: unchanged)."""
        return config

    @property
    def output_dim(self) -> int:
        """Width of the instance field's output: the embedding dimension D (objectives with slots override it)."""
        return self.embedding_dim

    def attach(self, model: nn.Module) -> None:
        """Register the objective's extra modules on ``model`` (called once, right after the model is built)."""

    def extra_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """Trainable parameters of the extra modules; they join the fast field's network group of the instance
        optimiser (learning rate ``optim.lr_instance``)."""
        return []

    def check_segments(self, segments_per_view: Sequence[int], log: Callable[[str], None]) -> None:
        """Warn (through ``log``) when the training images do not suit the objective; ``segments_per_view`` holds
        the number of distinct 2D segments of every training image."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: InstanceBatch, generator: torch.Generator, logs: dict) -> torch.Tensor:
        """The objective's scalar loss on ``batch`` (its parts are written into ``logs`` as floats). Random choices
        (e.g. the fast/slow split) draw from ``generator``."""

    def after_step(self, model: nn.Module) -> None:
        """After the instance optimiser's step: the slow field follows the fast one by EMA (Contrastive Lift
        (Bhalgat et al. 2023), Sec. 3.2). Objectives without a slow branch still keep it in step, so every run
        has the same model."""
        model.instance.update_slow()


OBJECTIVES: dict[str, type[InstanceObjective]] = {}
"""Registered instance objectives by name."""


def register_objective(name: str) -> Callable[[type[InstanceObjective]], type[InstanceObjective]]:
    """Class decorator: register an :class:`InstanceObjective` subclass as ``name`` (the value of
    ``losses.instance_loss`` that selects it). A name may be registered only once."""

    def register(cls: type[InstanceObjective]) -> type[InstanceObjective]:
        if not (isinstance(cls, type) and issubclass(cls, InstanceObjective)):
            raise TypeError(f"register_objective({name!r}): {cls!r} is not an InstanceObjective subclass.")
        if name in OBJECTIVES and OBJECTIVES[name] is not cls:
            raise ValueError(
                f"register_objective: {name!r} is already registered to {OBJECTIVES[name].__name__}; "
                "choose another name."
            )
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return register


def get_objective(name: str) -> type[InstanceObjective]:
    """The objective class registered as ``name``."""
    if name not in OBJECTIVES:
        raise KeyError(
            f"unknown instance objective {name!r} (losses.instance_loss); choose one of "
            f"{sorted(OBJECTIVES)} or register a new one with lift3d.objectives.register_objective."
        )
    return OBJECTIVES[name]


def build_objective(losses: LossConfig, embedding_dim: int) -> InstanceObjective:
    """The objective named by ``losses.instance_loss``, built for this configuration."""
    return get_objective(losses.instance_loss)(losses, embedding_dim)
