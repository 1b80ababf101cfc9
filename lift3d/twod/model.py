"""A trained 2D network and what it needs at inference: the network, its class space, the coordinate scale and
the clustering settings; saved as one checkpoint file (:func:`save_twod_checkpoint`) and read back by
:func:`load_twod_model`. :meth:`TwodModel.predict` turns an image into instances and lift3d id maps."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from lift3d.io import atomic_torch_save
from lift3d.twod.dataset import ClassSpace
from lift3d.twod.network import BranchedERFNet, NetworkConfig
from lift3d.twod.spatial_embeddings import (
    ClusteringConfig,
    Instance,
    cluster_spatial_embeddings,
    sigma_for_bandwidth,
)

__all__ = [
    "TwodModel",
    "Prediction",
    "prediction_maps",
    "save_twod_checkpoint",
    "load_twod_model",
    "latest_twod_checkpoint",
    "twod_method",
    "twod_checkpoint_path",
]


@dataclass
class Prediction:
    """The network's answer for one image of ``H x W``."""

    instances: list[Instance]
    """Clustered instances (non-overlapping masks, scores, seed channels)."""
    instance: np.ndarray
    """[H, W] uint16 instance ids 1..N in the order of ``instances`` (0 = none)."""
    semantic: np.ndarray
    """[H, W] int64 class ids: the instance's thing class inside instances, the most likely stuff class outside
    (the most likely class when the space has no stuff class)."""
    confidence: np.ndarray
    """[H, W] float32: the instance's score inside instances, the class probability outside."""
    classes: np.ndarray
    """[N] thing class id of each instance."""
    scores: np.ndarray
    """[N] score of each instance."""


class TwodModel:
    """A :class:`BranchedERFNet` with its class space, coordinate scale and clustering settings."""

    def __init__(
        self,
        network_cfg: NetworkConfig,
        classes: ClassSpace,
        pixels_per_unit: float,
        clustering: ClusteringConfig,
        device: str = "cpu",
        initial_bandwidth_pixels: float = 5.0,
    ):
        self.network_cfg, self.classes = network_cfg, classes
        self.pixels_per_unit, self.clustering = pixels_per_unit, clustering
        n_seed = max(1, len(classes.thing_ids))
        sigma_init = sigma_for_bandwidth(initial_bandwidth_pixels, pixels_per_unit)
        self.net = BranchedERFNet(network_cfg, n_seed, len(classes.classes), sigma_init).to(device)
        self.device = device

    def meta(self) -> dict:
        return {
            "network": asdict(self.network_cfg),
            "classes": self.classes.to_dict(),
            "pixels_per_unit": self.pixels_per_unit,
            "clustering": asdict(self.clustering),
        }

    @torch.no_grad()
    def predict(self, image: np.ndarray | torch.Tensor) -> Prediction:
        """``image`` ``[H, W, 3]`` uint8 (numpy) or ``[3, H, W]`` uint8 tensor -> :class:`Prediction`. Sides that
        are not multiples of 8 are padded (black) and the padding cut from the outputs."""
        self.net.eval()
        if isinstance(image, np.ndarray):
            image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        h, w = image.shape[1:]
        ph, pw = (-h) % 8, (-w) % 8
        x = image.float().to(self.device)[None] / 255.0
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph))
        out = self.net(x)
        offsets, sigma = out.offsets[0, :, :h, :w], out.sigma[0, :, :h, :w]
        seed = torch.sigmoid(out.seed_logits[0, :, :h, :w])
        probs = torch.softmax(out.semantic_logits[0, :, :h, :w], 0)
        instances = cluster_spatial_embeddings(offsets, sigma, seed, self.clustering, self.pixels_per_unit)
        return self._to_maps(instances, probs.cpu())

    def _to_maps(self, instances: list[Instance], probs: torch.Tensor) -> Prediction:
        return prediction_maps(self.classes, instances, probs)


def prediction_maps(classes: ClassSpace, instances: list[Instance], probs: torch.Tensor) -> Prediction:
    """Instance, class and confidence maps of one image from its clustered ``instances`` and the class
    probabilities ``probs [n_classes, H, W]`` (CPU): see :class:`Prediction`."""
    ids = classes.class_ids
    stuff = [i for i, c in enumerate(classes.classes) if not c.thing] or list(range(len(ids)))
    best = probs[stuff].argmax(0)
    semantic = np.asarray(ids)[np.asarray(stuff)[best.numpy()]].astype(np.int64)
    confidence = probs[stuff].max(0).values.numpy().astype(np.float32)
    instance = np.zeros(semantic.shape, np.uint16)
    thing_ids = classes.thing_ids
    instance_classes, scores = [], []
    for n, inst in enumerate(instances, start=1):
        m = inst.mask.cpu().numpy()
        cls = thing_ids[inst.channel] if thing_ids else ids[0]
        instance[m], semantic[m], confidence[m] = n, cls, inst.score
        instance_classes.append(cls)
        scores.append(inst.score)
    return Prediction(
        instances=instances,
        instance=instance,
        semantic=semantic,
        confidence=confidence,
        classes=np.asarray(instance_classes, np.int64),
        scores=np.asarray(scores, np.float64),
    )


def save_twod_checkpoint(path: Path, model: TwodModel, optimizer: Optional[torch.optim.Optimizer], step: int) -> Path:
    """Write the network, its meta data, the optimiser state and the step to ``path`` atomically."""
    state = {"meta": model.meta(), "model": model.net.state_dict(), "step": step}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    return atomic_torch_save(Path(path), state)


def latest_twod_checkpoint(run_dir: Path) -> Optional[Path]:
    """The checkpoint with the highest step in ``run_dir/checkpoints`` (None if there is none)."""
    files = sorted((Path(run_dir) / "checkpoints").glob("step_*.pt"))
    return files[-1] if files else None


class TwodModelError(FileNotFoundError):
    """The path given as a trained 2D network is not one: no run folder with checkpoints, no checkpoint file."""


def twod_checkpoint_path(run_or_file: Path) -> Path:
    """The checkpoint file of a 2D run folder (its latest) or the file itself; :class:`TwodModelError` if none."""
    path = Path(run_or_file)
    if path.is_dir():
        found = latest_twod_checkpoint(path)
        if found is None:
            raise TwodModelError(
                f"{path}: no checkpoints/step_*.pt; train a 2D network first (lift3d twod train --out {path} ...)."
            )
        return found
    if not path.is_file():
        raise TwodModelError(
            f"{path}: no such 2D network run folder or checkpoint; pass the --out folder of `lift3d twod train`."
        )
    return path


def twod_method(run_or_file: Path) -> str:
    """The ``--method`` a 2D run folder or checkpoint was trained with (``meta.method``; checkpoints written before
    the field existed are ``spatial-embeddings``)."""
    state = torch.load(twod_checkpoint_path(run_or_file), map_location="cpu", weights_only=True)
    return str(state["meta"].get("method", "spatial-embeddings"))


def load_twod_model(run_or_file: Path, device: str = "cpu") -> tuple[TwodModel, dict]:
    """Load a trained 2D network from a run folder (its latest checkpoint) or a checkpoint file.

    Returns the model (in eval mode) and the raw checkpoint (``step``, ``optimizer``, ``meta``)."""
    path = twod_checkpoint_path(run_or_file)
    state = torch.load(path, map_location=device, weights_only=True)  # plain data only: no code runs from the file
    meta = state["meta"]
    if meta.get("method", "spatial-embeddings") != "spatial-embeddings":
        raise TwodModelError(f"{path}: a {meta['method']} network, not spatial-embeddings; load it with its method.")
    model = TwodModel(
        NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["network"].items()}),
        ClassSpace.from_dict(meta["classes"]),
        float(meta["pixels_per_unit"]),
        ClusteringConfig(**meta["clustering"]),
        device=device,
    )
    model.net.load_state_dict(state["model"])
    model.net.eval()
    return model, state
