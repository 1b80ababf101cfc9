"""``lift3d twod eval-features``: unsupervised semantic segmentation with a (pre)trained encoder's pixel features,
scored as paper 003 does (:mod:`lift3d.metrics.unsupervised`: k-means with as many clusters as classes, Hungarian
matching, pixel accuracy and mIoU).

The features are the encoder's (``[width, H/8, W/8]``, what fine-tuning starts from; ``head`` takes a pretraining
run's projection head instead), upsampled bilinearly to the image. The network comes from a ``lift3d twod pretrain``
run, a ``lift3d twod train`` run (its encoder), or ``random`` (a randomly initialised encoder of ``preset``: the
"scratch" row of the tables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

from lift3d.io import atomic_write_json
from lift3d.metrics.unsupervised import kmeans_pixel_clusters, unsupervised_segmentation_scores
from lift3d.twod.dataset import FrameDataset
from lift3d.twod.network import NETWORK_PRESETS, Encoder, NetworkConfig

__all__ = ["RANDOM_ENCODER", "feature_extractor", "evaluate_features"]

RANDOM_ENCODER = "random"
"""The run name that stands for a randomly initialised encoder (no pretraining)."""

_MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


def feature_extractor(run: str | Path, features: Literal["encoder", "head"], preset: str, seed: int, device: str):
    """``images [B, 3, H, W] in [0, 1] -> [B, D, H/8, W/8]`` of the run's encoder (or pretraining head), and a
    description of the source."""
    if str(run) == RANDOM_ENCODER:
        torch.manual_seed(seed)
        enc = Encoder(NETWORK_PRESETS[preset]).to(device).eval()
        return lambda x: enc((x - _MEAN.to(device)) / _STD.to(device)), {
            "source": "random",
            "preset": preset,
            "seed": seed,
        }
    from lift3d.twod.model import twod_checkpoint_path, twod_method

    path = twod_checkpoint_path(Path(run))
    if twod_method(path) == "pretrain":
        from lift3d.twod.pretrain import load_pretrained_network

        net, meta = load_pretrained_network(path, device)
        fn = net.features if features == "head" else net.encode
        return fn, {
            "source": str(path),
            "pretrain_method": meta["pretrain_method"],
            "lambda_pixel": meta["lambda_pixel"],
        }
    if features == "head":
        raise ValueError(f"{path}: --features head needs a `lift3d twod pretrain` run.")
    state = torch.load(path, map_location=device, weights_only=True)
    cfg = NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["meta"]["network"].items()})
    enc = Encoder(cfg).to(device)
    enc.load_state_dict({k[8:]: v for k, v in state["model"].items() if k.startswith("encoder.")})
    enc.eval()
    return lambda x: enc((x - _MEAN.to(device)) / _STD.to(device)), {"source": str(path), "method": twod_method(path)}


@torch.no_grad()
def evaluate_features(
    run: str | Path,
    scenes: Sequence[Path],
    out: Path,
    features: Literal["encoder", "head"] = "encoder",
    preset: str = "cpu-small",
    seed: int = 0,
    device: str = "cpu",
    threads: int = 1,
) -> dict:
    """Cluster the pixel features of every frame of ``scenes`` (with ground-truth classes) into as many clusters as
    the scenes have classes and score them (see the module docstring); writes ``out`` (JSON) and returns it."""
    torch.set_num_threads(threads)
    extract, source = feature_extractor(run, features, preset, seed, device)
    data = FrameDataset(list(scenes))
    feats, gts = [], []
    for i in range(len(data)):
        rgb, _, sem = data.raw(i)
        h, w = sem.shape
        ph, pw = (-h) % 8, (-w) % 8
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().to(device) / 255.0
        x = F.pad(x, (0, pw, 0, ph))
        f = extract(x)
        f = F.interpolate(f, size=(h + ph, w + pw), mode="bilinear", align_corners=False)[0, :, :h, :w]
        feats.append(f.permute(1, 2, 0).cpu().numpy())
        gts.append(sem)
    class_ids = data.classes.class_ids
    clusters = kmeans_pixel_clusters(feats, len(class_ids), seed=seed)
    result = unsupervised_segmentation_scores(clusters, gts, class_ids)
    result = {
        "accuracy": result["accuracy"],
        "miou": result["miou"],
        "per_class_iou": {str(k): v for k, v in result["per_class_iou"].items()},
        "mapping": {str(k): v for k, v in result["mapping"].items()},
        "classes": data.classes.to_dict(),
        "num_pixels": result["num_pixels"],
        "num_frames": len(data),
        "features": features,
        "network": source,
        "scenes": [str(Path(s).resolve()) for s in scenes],
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    return result
