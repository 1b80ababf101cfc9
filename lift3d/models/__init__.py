"""The lifting model: radiance field + semantic field + fast/slow instance fields, and how rays are rendered."""

from lift3d.models.inference_render import InferenceRenderConfig, MarchStats, march_rays, render_heads
from lift3d.models.lift_model import LiftModel, ModelConfig, RaySamples

__all__ = [
    "LiftModel",
    "ModelConfig",
    "RaySamples",
    "InferenceRenderConfig",
    "MarchStats",
    "march_rays",
    "render_heads",
]
