"""Evaluation metrics: scene-level and per-frame panoptic quality, COCO mask AP, mIoU, PSNR, MOTS (numpy, CPU)."""

from lift3d.metrics.image import mean_psnr, psnr
from lift3d.metrics.mask_ap import mask_ap
from lift3d.metrics.mots import MotsResult, mots, mots_over_sequences
from lift3d.metrics.panoptic import ClassStats, PanopticResult, frame_pq, scene_pq
from lift3d.metrics.semantic import confusion_matrix, miou, semantic_miou

__all__ = [
    "mask_ap",
    "scene_pq",
    "frame_pq",
    "miou",
    "semantic_miou",
    "confusion_matrix",
    "psnr",
    "mean_psnr",
    "PanopticResult",
    "ClassStats",
    "mots",
    "mots_over_sequences",
    "MotsResult",
]
