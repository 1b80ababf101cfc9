"""2D segmenters that give a scene its 2D input (``lift3d segments predict``): one module per segmenter behind one
registry (:mod:`lift3d.segmenters.base`). Heavy packages (transformers, detectron2) are imported only when a
segmenter is built. See docs/segmenters.md."""

from lift3d.segmenters import classical, detectron2, mask2former, sam, twod  # noqa: F401  (register the segmenters)
from lift3d.segmenters.base import (
    Segmentation,
    Segmenter,
    SegmenterError,
    SegmenterOptions,
    SegmenterUnavailableError,
    SegmenterWeightsError,
    build_segmenter,
    registered_segmenters,
)
from lift3d.segmenters.predict import predict_scene_segments

__all__ = [
    "Segmentation",
    "Segmenter",
    "SegmenterError",
    "SegmenterOptions",
    "SegmenterUnavailableError",
    "SegmenterWeightsError",
    "build_segmenter",
    "registered_segmenters",
    "predict_scene_segments",
]
