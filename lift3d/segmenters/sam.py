"""``sam``: Segment Anything's automatic mask generation (Kirillov et al., "Segment Anything", ICCV 2023, Sec. 7
and appendix A "automatic mask generation") through Hugging Face ``transformers`` (``SamModel`` +
``SamProcessor``), every mask one ``object`` thing class.

For a view of ``H x W``: the image encoder runs once; a regular grid of ``points_per_side^2`` foreground point
prompts at :math:`((i + 1/2) W / n, (j + 1/2) H / n)` is decoded in batches, three masks per point
(``multimask_output``), each with its predicted IoU :math:`\\hat s`. A mask is kept when :math:`\\hat s \\ge`
``pred_iou_threshold`` and its stability score (the IoU of the mask logits ``L`` thresholded at :math:`\\pm\\delta`,
:math:`|L > \\delta| / |L > -\\delta|`, ``stability_offset``) is at least ``stability_threshold``; then greedy
non-maximum suppression on the masks' boxes (box IoU above ``nms_iou_threshold`` suppresses the lower
:math:`\\hat s`). Overlaps are resolved by painting the masks in increasing :math:`\\hat s` (the higher score wins,
:func:`lift3d.data.segments_import.masks_to_segments`); a pixel's confidence is its mask's :math:`\\hat s`,
``background_confidence`` where no mask covers it.

Weights: a local folder written by ``save_pretrained`` (``--weights DIR``) or the hub id (default
``facebook/sam-vit-base``, about 375 MB; ``facebook/sam-vit-large`` 1.25 GB, ``facebook/sam-vit-huge`` 2.56 GB).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from lift3d.data.scene import SceneClass
from lift3d.data.segments_import import masks_to_segments
from lift3d.segmenters.base import (
    BACKGROUND_CLASS,
    Segmentation,
    Segmenter,
    SegmenterOptions,
    SegmenterSpec,
    hub_or_local_weights,
    load_pretrained,
    register_segmenter,
    require_module,
)

__all__ = ["SamConfigOptions", "SamSegmenter", "stability_scores", "box_nms", "point_grid", "DEFAULT_SAM_HUB_ID"]

DEFAULT_SAM_HUB_ID = "facebook/sam-vit-base"
"""Hub id loaded when no ``--weights`` is given."""
INSTALL = "pip install 'lift3d[segmenters]' (Hugging Face transformers)"
OBJECT_CLASS = SceneClass(1, "object", True)
"""Every SAM mask is one instance of this thing class."""


@dataclass(frozen=True)
class SamConfigOptions:
    """Settings of SAM's automatic mask generation (the module docstring gives the rule each one drives)."""

    points_per_side: int = 32
    """n: the point prompts form an n x n grid over the image."""
    points_per_batch: int = 16
    """Point prompts decoded together (memory: points_per_batch x 3 x H x W floats)."""
    pred_iou_threshold: float = 0.88
    """Masks whose predicted IoU is below this are dropped."""
    stability_threshold: float = 0.95
    """Masks whose stability score is below this are dropped."""
    stability_offset: float = 1.0
    """delta: the logit offset of the stability score."""
    nms_iou_threshold: float = 0.7
    """Box IoU above which the lower-scoring of two masks is suppressed."""
    min_mask_pixels: int = 0
    """Masks with fewer pixels are dropped."""
    background_confidence: float = 0.5
    """Confidence of pixels no mask covers (their class is background)."""


def point_grid(points_per_side: int, height: int, width: int) -> np.ndarray:
    """``[n^2, 2]`` float64 ``(x, y)`` pixel coordinates :math:`((i + 1/2) W / n, (j + 1/2) H / n)`, rows of
    constant ``y``."""
    n = int(points_per_side)
    t = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(t * width, t * height)
    return np.stack([x.ravel(), y.ravel()], axis=1)


def stability_scores(logits, offset: float):
    """Stability of masks given their logits ``[..., H, W]`` (torch): :math:`|L > \\delta| / |L > -\\delta|`, the IoU
    of the two thresholded masks (the first is inside the second); 1 for a mask empty at both. Returns ``[...]``."""
    inner = (logits > offset).flatten(-2).sum(-1).double()
    outer = (logits > -offset).flatten(-2).sum(-1).double()
    return (inner / outer.clamp(min=1)).where(outer > 0, outer.new_ones(()))


def _boxes(masks: np.ndarray) -> np.ndarray:
    """``[N, 4]`` ``(x0, y0, x1, y1)`` inclusive pixel boxes of ``masks [N, H, W]`` (non-empty)."""
    rows, cols = masks.any(2), masks.any(1)
    y0, y1 = rows.argmax(1), masks.shape[1] - 1 - rows[:, ::-1].argmax(1)
    x0, x1 = cols.argmax(1), masks.shape[2] - 1 - cols[:, ::-1].argmax(1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float64)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, by decreasing score, of ``boxes [N, 4]`` (inclusive pixel
    boxes ``x0, y0, x1, y1``) so that no kept pair has box IoU above ``iou_threshold``."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep: list[int] = []
    for i in order:
        if keep:
            k = np.asarray(keep)
            w = np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0]) + 1
            h = np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1]) + 1
            inter = np.clip(w, 0, None) * np.clip(h, 0, None)
            if (inter / (area[k] + area[i] - inter) > iou_threshold).any():
                continue
        keep.append(int(i))
    return np.asarray(keep, np.int64)


class SamSegmenter(Segmenter):
    """SAM automatic mask generation (module docstring)."""

    name = "sam"

    def __init__(
        self, weights: Optional[str] = None, device: str = "cpu", config: SamConfigOptions = SamConfigOptions()
    ):
        transformers = require_module("transformers", "sam", INSTALL)
        self.torch = require_module("torch", "sam", "pip install torch")
        self.source = hub_or_local_weights(weights, DEFAULT_SAM_HUB_ID, "sam")
        self.model = load_pretrained(transformers.SamModel.from_pretrained, self.source, "sam", DEFAULT_SAM_HUB_ID)
        self.processor = load_pretrained(
            transformers.SamProcessor.from_pretrained, self.source, "sam", DEFAULT_SAM_HUB_ID
        )
        self.model.to(device).eval()
        self.device, self.config = device, config

    @property
    def classes(self) -> list[SceneClass]:
        return [BACKGROUND_CLASS, OBJECT_CLASS]

    def masks(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kept masks of ``image [H, W, 3]`` float in [0, 1]: ``(masks [N, H, W] bool, scores [N])`` after the
        IoU, stability, size and NMS filters."""
        torch, cfg = self.torch, self.config
        H, W = image.shape[:2]
        rgb = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
        inputs = self.processor(images=rgb, return_tensors="pt", input_data_format="channels_last")
        rh, rw = (int(v) for v in inputs["reshaped_input_sizes"][0])
        grid = point_grid(cfg.points_per_side, H, W) * np.array([rw / W, rh / H])
        kept_masks, kept_scores = [], []
        with torch.no_grad():
            embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
            for start in range(0, len(grid), cfg.points_per_batch):
                pts = torch.as_tensor(grid[start : start + cfg.points_per_batch], dtype=torch.float32)
                out = self.model(
                    image_embeddings=embeddings,
                    input_points=pts[None, :, None, :].to(self.device),
                    input_labels=torch.ones((1, len(pts), 1), dtype=torch.long, device=self.device),
                    multimask_output=True,
                )
                logits = self.processor.image_processor.post_process_masks(
                    out.pred_masks.cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"], binarize=False
                )[0].flatten(0, 1)  # [points * 3, H, W]
                scores = out.iou_scores.cpu().reshape(-1).double()
                good = (scores >= cfg.pred_iou_threshold) & (
                    stability_scores(logits, cfg.stability_offset) >= cfg.stability_threshold
                )
                masks = (logits[good] > 0).numpy()
                big = masks.reshape(len(masks), -1).sum(1) >= max(cfg.min_mask_pixels, 1)
                kept_masks.append(masks[big])
                kept_scores.append(scores[good].numpy()[big])
        masks = np.concatenate(kept_masks) if kept_masks else np.zeros((0, H, W), bool)
        scores = np.concatenate(kept_scores) if kept_scores else np.zeros(0)
        if len(masks):
            keep = box_nms(_boxes(masks), scores, cfg.nms_iou_threshold)
            masks, scores = masks[keep], scores[keep]
        return masks, np.clip(scores, 0.0, 1.0)

    def segment(self, image: np.ndarray, depth: Optional[np.ndarray] = None) -> Segmentation:
        masks, scores = self.masks(image)
        instance, semantic, confidence = masks_to_segments(
            masks.reshape((-1,) + image.shape[:2]),
            scores,
            None,
            score_threshold=-np.inf,
            background_confidence=self.config.background_confidence,
            class_of={},
            default_class=OBJECT_CLASS.id,
        )
        return Segmentation(_compact(instance), semantic.astype(np.int64), confidence.astype(np.float32))

    def describe(self) -> dict:
        return {"segmenter": self.name, "weights": self.source, "config": asdict(self.config)}


def _compact(instance: np.ndarray) -> np.ndarray:
    """Instance ids renumbered ``1..K`` in increasing order of the painted ids (masks fully covered by higher
    scores leave gaps otherwise); 0 stays 0. ``[H, W]`` -> ``[H, W]`` int64."""
    values, inverse = np.unique(instance, return_inverse=True)
    start = 0 if values[0] == 0 else 1
    return (np.arange(len(values)) + start)[inverse].reshape(instance.shape).astype(np.int64)


def _build(options: SegmenterOptions) -> SamSegmenter:
    return SamSegmenter(options.weights, options.device, options.settings.get("sam", SamConfigOptions()))


SPEC = register_segmenter(
    SegmenterSpec(
        name="sam",
        description="Segment Anything automatic masks (transformers), every mask one 'object' thing",
        downloads=f"{DEFAULT_SAM_HUB_ID} (~375 MB) or sam-vit-large / sam-vit-huge; transformers",
        build=_build,
    )
)
