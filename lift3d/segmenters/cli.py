"""``lift3d segments predict``: the CLI face of :mod:`lift3d.segmenters`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import tyro

from lift3d.segmenters.base import SegmenterError, SegmenterOptions, build_segmenter, registered_segmenters
from lift3d.segmenters.classical import ClassicalConfig
from lift3d.segmenters.mask2former import Mask2FormerOptions
from lift3d.segmenters.predict import check_targets, predict_scene_segments
from lift3d.segmenters.sam import SamConfigOptions

__all__ = ["SegmentsPredict"]

SegmenterName = Literal[tuple(spec.name for spec in registered_segmenters())]  # type: ignore[valid-type]


@dataclass
class SegmentsPredict:
    """Run a 2D segmenter on every view of a scene and make its masks the scene's 2D input: writes
    SCENE/segments/NAME/{instance,semantic,confidence}/ and points transforms.json at them, in a copy at --out or,
    with --force, in DATA itself (docs/segmenters.md lists what each segmenter needs)."""

    data: tyro.conf.Positional[Path]
    """Scene folder (transforms.json)."""
    segmenter: Optional[SegmenterName] = None
    """classical (weights-free), sam, mask2former, twod (a lift3d 2D network), detectron2, detic."""
    weights: Optional[str] = None
    """Local weights folder / file, or a Hugging Face hub id (sam, mask2former); the run folder for twod; a folder
    with config.yaml + model_final.pth for detectron2 / detic. Default: the segmenter's hub id."""
    model: Optional[Path] = None
    """Shorthand for --segmenter twod --weights MODEL (a `lift3d twod train` run folder)."""
    out: Optional[Path] = None
    """Write a copy of the scene here with the masks; without it DATA itself is changed (needs --force)."""
    name: Optional[str] = None
    """The masks go to <scene>/segments/NAME/ (default: the segmenter's name)."""
    force: bool = False
    """Allow changing DATA in place, or replacing an existing --out / segments/NAME."""
    device: str = "cpu"
    """Where a network runs (cpu, cuda)."""
    threads: int = 1
    """torch CPU threads."""
    progress: bool = True
    """Show a progress bar over the views."""
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    """Settings of the classical segmenter."""
    sam: SamConfigOptions = field(default_factory=SamConfigOptions)
    """Settings of SAM's automatic mask generation."""
    mask2former: Mask2FormerOptions = field(default_factory=Mask2FormerOptions)
    """Settings of Mask2Former's panoptic post-processing."""

    def resolved_segmenter(self) -> tuple[str, Optional[str]]:
        """``(segmenter name, weights)`` after the ``--model`` shorthand; a missing choice is an error."""
        if self.model is not None:
            if self.segmenter not in (None, "twod") or self.weights is not None:
                raise SegmenterError("--model RUN2D means --segmenter twod --weights RUN2D; give one form, not both.")
            return "twod", str(self.model)
        if self.segmenter is None:
            listed = "; ".join(f"{s.name}: {s.description} (needs {s.downloads})" for s in registered_segmenters())
            raise SegmenterError(f"pass --segmenter NAME, one of: {listed}.")
        return self.segmenter, self.weights

    def run_command(self) -> None:
        import torch

        name, weights = self.resolved_segmenter()
        check_targets(self.data, self.out, self.force)  # before any weights are loaded
        torch.set_num_threads(self.threads)
        settings = {"classical": self.classical, "sam": self.sam, "mask2former": self.mask2former}
        segmenter = build_segmenter(name, SegmenterOptions(weights=weights, device=self.device, settings=settings))
        out = predict_scene_segments(
            self.data, segmenter, out=self.out, name=self.name, force=self.force, progress=self.progress
        )
        print(f"wrote the {name} segmenter's masks into {out}; lift3d fit {out.parent.parent} uses them")
