"""``twod``: lift3d's own trained 2D network (a ``lift3d twod train`` run folder or checkpoint, ``--weights``),
through :meth:`lift3d.twod.model.TwodModel.predict`. Its classes are the ones it was trained with (the training
scenes' classes); instances carry the network's scores as confidence, other pixels the class probability."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from lift3d.data.scene import SceneClass
from lift3d.segmenters.base import (
    Segmentation,
    Segmenter,
    SegmenterOptions,
    SegmenterSpec,
    SegmenterWeightsError,
    register_segmenter,
)

__all__ = ["TwodSegmenter"]


class TwodSegmenter(Segmenter):
    """A trained lift3d 2D network as a segmenter."""

    name = "twod"

    def __init__(self, weights: Optional[str], device: str = "cpu"):
        from lift3d.twod.model import load_twod_model

        if weights is None:
            raise SegmenterWeightsError(
                "--segmenter twod needs --weights RUN2D: the --out folder of `lift3d twod train` (or a checkpoint)."
            )
        self.source = Path(weights)
        self.model, state = load_twod_model(self.source, device=device)
        self.step = int(state["step"])

    @property
    def classes(self) -> list[SceneClass]:
        return list(self.model.classes.classes)

    def segment(self, image: np.ndarray, depth: Optional[np.ndarray] = None) -> Segmentation:
        rgb = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
        p = self.model.predict(rgb)
        return Segmentation(
            p.instance.astype(np.int64), p.semantic.astype(np.int64), np.clip(p.confidence, 0, 1).astype(np.float32)
        )

    def describe(self) -> dict:
        return {"segmenter": self.name, "model": str(self.source.resolve()), "step": self.step, **self.model.meta()}


def _build(options: SegmenterOptions) -> TwodSegmenter:
    return TwodSegmenter(options.weights, options.device)


SPEC = register_segmenter(
    SegmenterSpec(
        name="twod",
        description="a lift3d 2D network trained with `lift3d twod train` (--weights RUN2D)",
        downloads="nothing: train one with lift3d twod train",
        build=_build,
    )
)
