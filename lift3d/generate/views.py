"""Per-view image stacks passed between the stages: what a renderer and the simulated segmenter produce.

Renderer-neutral, so the fast and the kubric backends hand the same structure to the segmenter and the writer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RenderedViews:
    """Rendered images of all views."""

    rgb: np.ndarray
    """``[V, H, W, 3]`` uint8 sRGB."""
    depth: np.ndarray
    """``[V, H, W]`` float32, distance along the optical axis (m); > 0 everywhere (closed room)."""
    instance: np.ndarray
    """``[V, H, W]`` uint16 ground-truth instance ids (0 = background), consistent across views."""
    semantic: np.ndarray
    """``[V, H, W]`` uint8 ground-truth classes (0 background, 1 object)."""


@dataclass
class SegmenterOutputs:
    """Simulated 2D segmenter output of all views."""

    instance: np.ndarray
    """``[V, H, W]`` uint16, 0 = no segment, ids arbitrary per view."""
    semantic: np.ndarray
    """``[V, H, W]`` uint8 class ids."""
    confidence: np.ndarray
    """``[V, H, W]`` float32 in ``[0, 1]``."""
