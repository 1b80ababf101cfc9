"""A trained spatio-temporal network (paper 001) and its inference: tracks and depth for a whole clip.

:class:`SpatioTemporalModel` holds the network, its class space and the tracking settings; it is saved as one
checkpoint file (``meta.method = "spatio-temporal"``, :func:`save_spatio_temporal_checkpoint`) and read back by
:func:`load_spatio_temporal_model`. :meth:`SpatioTemporalModel.predict_clip` runs the causal network over the frames
of one clip in time order (frame ``t``'s output sees frames ``<= t`` only, so it equals an online run), clusters each
frame's foreground embeddings and carries the ids over time (:mod:`lift3d.twod.tracking`): the instance maps of the
returned :class:`~lift3d.twod.model.Prediction` s hold **track ids**, consistent over the clip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from lift3d.io import atomic_torch_save
from lift3d.losses.discriminative import DiscriminativeLossConfig
from lift3d.twod.dataset import ClassSpace
from lift3d.twod.depth import DepthLossConfig
from lift3d.twod.model import Prediction, TwodModelError, twod_checkpoint_path
from lift3d.twod.network import NetworkConfig
from lift3d.twod.spatial_embeddings import Instance
from lift3d.twod.spatio_temporal import SpatioTemporalConfig, SpatioTemporalNetwork
from lift3d.twod.tracking import EmbeddingTracker, TrackingConfig, cluster_embeddings

__all__ = [
    "METHOD",
    "ClipPrediction",
    "SpatioTemporalModel",
    "save_spatio_temporal_checkpoint",
    "load_spatio_temporal_model",
]

METHOD = "spatio-temporal"
"""The ``meta.method`` of this network's checkpoints (and ``lift3d twod train --method``)."""


@dataclass
class ClipPrediction:
    """The network's answer for a clip of ``T`` frames."""

    frames: list[Prediction]
    """Per frame: instances, the instance map of track ids, class and confidence maps."""
    depth: Optional[list[np.ndarray]]
    """Per frame ``[H, W]`` float32 predicted depth (None without the depth head)."""


class SpatioTemporalModel:
    """A :class:`SpatioTemporalNetwork` with its class space and tracking settings."""

    def __init__(
        self,
        network_cfg: NetworkConfig,
        classes: ClassSpace,
        cfg: SpatioTemporalConfig,
        tracking: TrackingConfig,
        device: str = "cpu",
    ):
        self.network_cfg, self.classes, self.cfg, self.tracking = network_cfg, classes, cfg, tracking
        self.net = SpatioTemporalNetwork(network_cfg, len(classes.classes), cfg).to(device)
        self.device = device

    def meta(self) -> dict:
        return {
            "method": METHOD,
            "network": asdict(self.network_cfg),
            "classes": self.classes.to_dict(),
            "spatio_temporal": asdict(self.cfg),
            "tracking": asdict(self.tracking),
        }

    @torch.no_grad()
    def predict_clip(self, images: Sequence[np.ndarray], chunk: int = 16) -> ClipPrediction:
        """``images``: the clip's frames in time order, ``[H, W, 3]`` uint8 each -> tracks and depth.

        Sides that are not multiples of 8 are padded (black) and the padding cut off. The encoder and decoders run
        ``chunk`` frames at a time; the temporal model sees the whole clip at once (it is causal).
        """
        self.net.eval()
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().to(self.device) / 255.0  # [T, 3, H, W]
        t, _, h, w = x.shape
        ph, pw = (-h) % 8, (-w) % 8
        x = torch.nn.functional.pad(x, (0, pw, 0, ph))
        out = self.net(x[None])
        emb = out.embedding[0, :, :, :h, :w]
        probs = torch.softmax(out.semantic_logits[0, :, :, :h, :w], 1)
        depth = out.depth[0, :, 0, :h, :w].cpu().numpy().astype(np.float32) if out.depth is not None else None
        tracker = EmbeddingTracker(self.tracking)
        frames = [self._frame(emb[i], probs[i].cpu(), tracker) for i in range(t)]
        return ClipPrediction(frames=frames, depth=list(depth) if depth is not None else None)

    def _frame(self, emb: torch.Tensor, probs: torch.Tensor, tracker: EmbeddingTracker) -> Prediction:
        ids = self.classes.class_ids
        thing = self.classes.thing_ids
        best = probs.argmax(0).numpy()
        semantic = np.asarray(ids, np.int64)[best]
        confidence = probs.max(0).values.numpy().astype(np.float32)
        foreground = torch.from_numpy(np.isin(semantic, thing))
        clusters = cluster_embeddings(emb, foreground.to(emb.device), self.tracking)
        labels = []
        for c in clusters:
            m = c.mask.cpu().numpy()
            values, counts = np.unique(semantic[m], return_counts=True)
            labels.append(int(values[np.argmax(counts)]))
        track_ids = tracker.step(clusters, labels)
        instance = np.zeros(semantic.shape, np.uint16)
        instances, classes, scores = [], [], []
        thing_probs = probs[[ids.index(c) for c in thing]].sum(0).numpy() if thing else confidence
        for c, label, tid in zip(clusters, labels, track_ids):
            m = c.mask.cpu().numpy()
            score = float(thing_probs[m].mean())
            instance[m], semantic[m], confidence[m] = tid, label, score
            instances.append(Instance(mask=c.mask.cpu(), score=score, channel=thing.index(label)))
            classes.append(label)
            scores.append(score)
        # foreground pixels left out of every instance (too small clusters) fall back to the best stuff class
        stuff = [i for i, c in enumerate(self.classes.classes) if not c.thing]
        orphan = foreground.numpy() & (instance == 0)
        if stuff and orphan.any():
            best_stuff = probs[stuff].argmax(0).numpy()
            semantic[orphan] = np.asarray(ids, np.int64)[np.asarray(stuff)[best_stuff[orphan]]]
        return Prediction(
            instances=instances,
            instance=instance,
            semantic=semantic,
            confidence=confidence,
            classes=np.asarray(classes, np.int64),
            scores=np.asarray(scores, np.float64),
        )


def save_spatio_temporal_checkpoint(
    path: Path, model: SpatioTemporalModel, optimizer: Optional[torch.optim.Optimizer], step: int
) -> Path:
    """Write the network, its meta data, the optimiser state and the step to ``path`` atomically."""
    state = {"meta": model.meta(), "model": model.net.state_dict(), "step": step}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    return atomic_torch_save(Path(path), state)


def _config_from_meta(raw: dict) -> SpatioTemporalConfig:
    raw = dict(raw)
    raw["discriminative"] = DiscriminativeLossConfig(**raw["discriminative"])
    raw["depth_loss"] = DepthLossConfig(**raw["depth_loss"])
    return SpatioTemporalConfig(**raw)


def load_spatio_temporal_model(run_or_file: Path, device: str = "cpu") -> tuple[SpatioTemporalModel, dict]:
    """Load a trained spatio-temporal network from a run folder (its latest checkpoint) or a checkpoint file.

    Returns the model (eval mode) and the raw checkpoint (``step``, ``optimizer``, ``meta``)."""
    path = twod_checkpoint_path(run_or_file)
    state = torch.load(path, map_location=device, weights_only=True)
    meta = state["meta"]
    if meta.get("method") != METHOD:
        raise TwodModelError(f"{path}: a {meta.get('method', 'spatial-embeddings')} network, not {METHOD}.")
    model = SpatioTemporalModel(
        NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["network"].items()}),
        ClassSpace.from_dict(meta["classes"]),
        _config_from_meta(meta["spatio_temporal"]),
        TrackingConfig(**meta["tracking"]),
        device=device,
    )
    model.net.load_state_dict(state["model"])
    model.net.eval()
    return model, state
