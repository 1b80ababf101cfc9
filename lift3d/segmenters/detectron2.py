"""``detectron2`` and ``detic``: instance segmentation with a detectron2 model, when the user has detectron2 (and,
for Detic, the Detic repository) installed. Nothing here is imported until the segmenter is built, and no test runs
either here (detectron2 has no wheel on PyPI; it is built from source against the local torch).

``--weights`` is a folder holding ``config.yaml`` and the weights (``model_final.pth`` or the one ``.pth``), or
(detectron2 only) a model-zoo config name such as ``COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml`` whose
weights detectron2 downloads itself. The predictor's ``instances`` (``pred_masks``, ``scores``,
``pred_classes``) are painted as :func:`lift3d.data.segments_import.masks_to_segments` paints imported predictions
(higher score wins); detector class ``k`` (the test dataset's ``thing_classes`` in detectron2's
``MetadataCatalog``) becomes lift3d thing class ``k + 1``, class 0 is background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from lift3d.data.scene import SceneClass
from lift3d.data.segments_import import masks_to_segments
from lift3d.segmenters.base import (
    BACKGROUND_CLASS,
    Segmentation,
    Segmenter,
    SegmenterSpec,
    SegmenterWeightsError,
    register_segmenter,
    require_module,
)

__all__ = ["Detectron2Segmenter"]

INSTALL_D2 = "pip install 'git+https://github.com/facebookresearch/detectron2.git' (built against your torch)"
INSTALL_DETIC = (
    f"{INSTALL_D2}, then clone https://github.com/facebookresearch/Detic (with --recurse-submodules) and put it and "
    "its third_party/CenterNet2 on PYTHONPATH"
)
SCORE_THRESHOLD = 0.5
"""Detections scoring below this are dropped (``MODEL.ROI_HEADS.SCORE_THRESH_TEST``)."""
BACKGROUND_CONFIDENCE = 0.5
"""Confidence of pixels no detection covers."""


def _config_and_weights(weights: Optional[str], name: str) -> tuple[Optional[Path], Optional[Path], Optional[str]]:
    """``(config.yaml, weights file, model-zoo name)`` from ``--weights`` (see the module docstring)."""
    if weights is None:
        raise SegmenterWeightsError(
            f"--segmenter {name} needs --weights: a folder with config.yaml and model_final.pth"
            + (" or a detectron2 model-zoo config name." if name == "detectron2" else ".")
        )
    path = Path(weights).expanduser()
    if path.is_dir():
        config = path / "config.yaml"
        pths = sorted(path.glob("*.pth"))
        chosen = path / "model_final.pth" if (path / "model_final.pth").is_file() else (pths[0] if pths else None)
        if not config.is_file() or chosen is None:
            raise SegmenterWeightsError(f"--weights {path}: needs config.yaml and a .pth weights file in the folder.")
        return config, chosen, None
    if name == "detectron2" and weights.endswith(".yaml") and not path.exists():
        return None, None, weights
    raise SegmenterWeightsError(f"--weights {weights}: no such folder (config.yaml + model_final.pth).")


class Detectron2Segmenter(Segmenter):
    """A detectron2 (or Detic) ``DefaultPredictor`` as a segmenter (module docstring)."""

    def __init__(self, weights: Optional[str], device: str = "cpu", detic: bool = False):
        self.name = "detic" if detic else "detectron2"
        install = INSTALL_DETIC if detic else INSTALL_D2
        require_module("detectron2", self.name, install)
        config_mod = require_module("detectron2.config", self.name, install)
        engine = require_module("detectron2.engine", self.name, install)
        data = require_module("detectron2.data", self.name, install)
        config_file, weights_file, zoo_name = _config_and_weights(weights, self.name)
        cfg = config_mod.get_cfg()
        if detic:
            require_module("centernet.config", self.name, install).add_centernet_config(cfg)
            require_module("detic.config", self.name, install).add_detic_config(cfg)
        if zoo_name is not None:
            model_zoo = require_module("detectron2.model_zoo", self.name, install)
            cfg.merge_from_file(model_zoo.get_config_file(zoo_name))
            cfg.MODEL.WEIGHTS = model_zoo.get_checkpoint_url(zoo_name)
        else:
            cfg.merge_from_file(str(config_file))
            cfg.MODEL.WEIGHTS = str(weights_file)
        cfg.MODEL.DEVICE = device
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = SCORE_THRESHOLD
        cfg.freeze()
        self.predictor = engine.DefaultPredictor(cfg)
        self.input_format = cfg.INPUT.FORMAT
        dataset = cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else None
        names = list(data.MetadataCatalog.get(dataset).get("thing_classes", [])) if dataset else []
        num = int(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
        names = names + [f"class_{k}" for k in range(len(names), num)]
        self._classes = [BACKGROUND_CLASS] + [SceneClass(k + 1, n, True) for k, n in enumerate(names)]
        self.source = str(weights)

    @property
    def classes(self) -> list[SceneClass]:
        return list(self._classes)

    def segment(self, image: np.ndarray, depth: Optional[np.ndarray] = None) -> Segmentation:
        rgb = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
        out = self.predictor(rgb[..., ::-1] if self.input_format == "BGR" else rgb)["instances"].to("cpu")
        masks = out.pred_masks.numpy().astype(bool)
        scores = out.scores.numpy().astype(np.float64)
        classes = out.pred_classes.numpy().astype(np.int64)
        class_of = {k - 1: k for k in range(1, len(self._classes))}
        instance, semantic, confidence = masks_to_segments(
            masks.reshape((-1,) + image.shape[:2]), scores, classes, SCORE_THRESHOLD, BACKGROUND_CONFIDENCE, class_of, 1
        )
        return Segmentation(instance.astype(np.int64), semantic.astype(np.int64), confidence.astype(np.float32))

    def describe(self) -> dict:
        return {"segmenter": self.name, "weights": self.source}


SPEC = register_segmenter(
    SegmenterSpec(
        name="detectron2",
        description="a detectron2 instance-segmentation model (needs detectron2 installed)",
        downloads="detectron2 (built from source) + a model: config.yaml and model_final.pth, or a model-zoo name",
        build=lambda options: Detectron2Segmenter(options.weights, options.device, detic=False),
    )
)
SPEC_DETIC = register_segmenter(
    SegmenterSpec(
        name="detic",
        description="Detic (detectron2 + the Detic repository on PYTHONPATH)",
        downloads="detectron2 + the Detic repository + a Detic model (config.yaml + .pth, e.g. Detic_LCOCOI21k_CLIP_SwinB)",
        build=lambda options: Detectron2Segmenter(options.weights, options.device, detic=True),
    )
)
