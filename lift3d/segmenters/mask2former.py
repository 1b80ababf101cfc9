"""``mask2former``: Mask2Former panoptic segmentation (Cheng et al., "Masked-attention Mask Transformer for
Universal Image Segmentation", CVPR 2022) through Hugging Face ``transformers``
(``Mask2FormerForUniversalSegmentation`` + its image processor's ``post_process_panoptic_segmentation``).

Classes: the model's labels are kept as lift3d classes, label ``k`` (``config.id2label``) becoming class ``k + 1``
with the same name; class 0 is ``background`` (pixels no segment covers). A label is a thing when its name is one of
the 80 COCO thing categories (the COCO panoptic split of the 133 labels of the ``*-coco-panoptic`` models:
``person`` ... ``toothbrush`` are things, ``banner`` ... ``rug-merged`` stuff), or when listed in
``thing_labels``; the others are stuff. Stuff segments of one label are fused (``label_ids_to_fuse``) and carry
instance id 0 and their class; thing segments get instance ids 1, 2, ... Each pixel's confidence is its segment's
score (``background_confidence`` where none).

Weights: a local folder written by ``save_pretrained`` (``--weights DIR``, config.json + weights +
preprocessor_config.json) or a hub id (default ``facebook/mask2former-swin-tiny-coco-panoptic``, about 190 MB;
``facebook/mask2former-swin-large-coco-panoptic`` about 870 MB).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from lift3d.data.scene import SceneClass
from lift3d.segmenters.base import (
    BACKGROUND_CLASS,
    Segmentation,
    Segmenter,
    SegmenterOptions,
    SegmenterSpec,
    SegmenterWeightsError,
    hub_or_local_weights,
    load_pretrained,
    register_segmenter,
    require_module,
)

__all__ = ["Mask2FormerOptions", "Mask2FormerSegmenter", "COCO_THING_NAMES", "DEFAULT_MASK2FORMER_HUB_ID"]

DEFAULT_MASK2FORMER_HUB_ID = "facebook/mask2former-swin-tiny-coco-panoptic"
"""Hub id loaded when no ``--weights`` is given."""
INSTALL = "pip install 'lift3d[segmenters]' (Hugging Face transformers)"

COCO_THING_NAMES = frozenset(
    """person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter
    bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee skis
    snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup
    fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch
    potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven toaster sink
    refrigerator book clock vase scissors teddy_bear hair_drier toothbrush""".split()
)
"""The 80 COCO thing categories (spaces written as ``_``); compare with :func:`_label_key`."""


def _label_key(name: str) -> str:
    """A label name normalised for the thing list: lower case, spaces and hyphens as ``_``."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class Mask2FormerOptions:
    """Settings of the panoptic post-processing (transformers' ``post_process_panoptic_segmentation``)."""

    score_threshold: float = 0.8
    """Queries whose class score is below this are dropped."""
    mask_threshold: float = 0.5
    """Mask probability above which a pixel belongs to a query's mask."""
    overlap_threshold: float = 0.8
    """A segment is dropped when less than this fraction of its mask survives the overlaps."""
    thing_labels: tuple[str, ...] = ()
    """Extra label names treated as things (for models trained on other label sets than COCO)."""
    background_confidence: float = 0.5
    """Confidence of pixels no segment covers (their class is background)."""


class Mask2FormerSegmenter(Segmenter):
    """Mask2Former panoptic segmentation (module docstring)."""

    name = "mask2former"

    def __init__(
        self, weights: Optional[str] = None, device: str = "cpu", config: Mask2FormerOptions = Mask2FormerOptions()
    ):
        transformers = require_module("transformers", "mask2former", INSTALL)
        self.torch = require_module("torch", "mask2former", "pip install torch")
        self.source = hub_or_local_weights(weights, DEFAULT_MASK2FORMER_HUB_ID, "mask2former")
        load = transformers.Mask2FormerForUniversalSegmentation.from_pretrained
        self.model = load_pretrained(load, self.source, "mask2former", DEFAULT_MASK2FORMER_HUB_ID)
        self.processor = load_pretrained(
            transformers.AutoImageProcessor.from_pretrained, self.source, "mask2former", DEFAULT_MASK2FORMER_HUB_ID
        )
        self.model.to(device).eval()
        self.device, self.config = device, config
        labels = {int(k): str(v) for k, v in (self.model.config.id2label or {}).items()}
        if not labels:
            raise SegmenterWeightsError(f"{self.source}: the model's config.json has no id2label; cannot name classes.")
        things = COCO_THING_NAMES | {_label_key(n) for n in config.thing_labels}
        self._classes = [BACKGROUND_CLASS] + [
            SceneClass(k + 1, name, _label_key(name) in things) for k, name in sorted(labels.items())
        ]
        self._thing_label = {k: _label_key(n) in things for k, n in labels.items()}

    @property
    def classes(self) -> list[SceneClass]:
        return list(self._classes)

    def segment(self, image: np.ndarray, depth: Optional[np.ndarray] = None) -> Segmentation:
        torch, cfg = self.torch, self.config
        H, W = image.shape[:2]
        rgb = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
        inputs = self.processor(images=rgb, return_tensors="pt", input_data_format="channels_last")
        with torch.no_grad():
            outputs = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
        result = self.processor.post_process_panoptic_segmentation(
            outputs,
            threshold=cfg.score_threshold,
            mask_threshold=cfg.mask_threshold,
            overlap_mask_area_threshold=cfg.overlap_threshold,
            label_ids_to_fuse={k for k, thing in self._thing_label.items() if not thing},
            target_sizes=[(H, W)],
        )[0]
        segment_ids = result["segmentation"].cpu().numpy().astype(np.int64)
        instance = np.zeros((H, W), np.int64)
        semantic = np.zeros((H, W), np.int64)
        confidence = np.full((H, W), cfg.background_confidence, np.float32)
        next_id = 1
        for info in result["segments_info"]:
            m = segment_ids == int(info["id"])
            label = int(info["label_id"])
            if self._thing_label.get(label, False):
                instance[m] = next_id
                next_id += 1
            semantic[m] = label + 1
            confidence[m] = float(np.clip(info["score"], 0.0, 1.0))
        return Segmentation(instance, semantic, confidence)

    def describe(self) -> dict:
        return {"segmenter": self.name, "weights": self.source, "config": asdict(self.config)}


def _build(options: SegmenterOptions) -> Mask2FormerSegmenter:
    return Mask2FormerSegmenter(
        options.weights, options.device, options.settings.get("mask2former", Mask2FormerOptions())
    )


SPEC = register_segmenter(
    SegmenterSpec(
        name="mask2former",
        description="Mask2Former panoptic (transformers), COCO thing / stuff classes kept as lift3d classes",
        downloads=f"{DEFAULT_MASK2FORMER_HUB_ID} (~190 MB) or another *-coco-panoptic model; transformers",
        build=_build,
    )
)
