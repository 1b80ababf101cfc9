"""The two branches of the cross-modal method (Zhu et al., IROS 2022, Sec. III-B): one network per sensor.

* :class:`ImageEmbeddingNet`: the part-1 ERFNet encoder (:class:`lift3d.twod.network.Encoder`) with two decoders,
  one for the ``c``-channel instance embedding (the paper: c = 32, in place of Panoptic-DeepLab's centre and offset
  heads) and one for the class logits (the paper's semantic head, whose majority vote names each instance's class).
* :class:`RangeEmbeddingNet`: a small encoder-decoder over the LiDAR range image ``[beams, W_az]`` whose input
  channels are the range and the per-point features (the point's x, y, z in the LiDAR frame and a validity flag).
  It downsamples the azimuth only (a range image has tens of rows and hundreds of columns) and pads the azimuth
  circularly when the image spans the full turn, so the columns at -180° and +180° are neighbours.

Both return raw embeddings; the loss and the clustering normalise them (the cosine similarity of Eq. 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import nn

from lift3d.twod.network import Decoder, Encoder, NetworkConfig, _norm

__all__ = ["ImageEmbeddingNet", "RangeNetConfig", "RANGE_PRESETS", "RangeEmbeddingNet", "RANGE_INPUT_CHANNELS"]

RANGE_INPUT_CHANNELS = 5
"""Range-image input channels: range / max_range, x / max_range, y / max_range, z / max_range, valid."""


class ImageEmbeddingNet(nn.Module):
    """ERFNet encoder -> (embedding decoder ``[B, c, H, W]``, class decoder ``[B, n_classes, H, W]``).

    ``forward(images [B, 3, H, W] float in [0, 1]) -> (embeddings, class_logits)``; ``H``, ``W`` divisible by 8.
    """

    def __init__(self, cfg: NetworkConfig, embedding_dim: int, n_classes: int):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.decoder_embedding = Decoder(cfg, embedding_dim)
        self.decoder_semantic = Decoder(cfg, n_classes)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = images.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"image size {w}x{h} (w x h) must be divisible by 8; crop or pad the input.")
        feats = self.encoder((images - self.mean) / self.std)
        return self.decoder_embedding(feats), self.decoder_semantic(feats)


@dataclass
class RangeNetConfig:
    """Width of :class:`RangeEmbeddingNet`."""

    widths: Tuple[int, int, int] = (16, 32, 64)
    """Channels at full, 1/2 and 1/4 azimuth resolution."""
    blocks: int = 1
    """Residual 3x3 blocks per resolution in the encoder and in the decoder."""
    groups: int = 4
    """GroupNorm groups (capped by the channel count)."""


RANGE_PRESETS = {
    "paper": RangeNetConfig(widths=(32, 64, 128), blocks=2),
    "cpu-small": RangeNetConfig(),
    "tiny": RangeNetConfig(widths=(4, 8, 8), groups=2),
}
"""Range-branch sizes matching the image presets of :data:`lift3d.twod.network.NETWORK_PRESETS` by name (the paper
runs a second Xception-71 DeepLab on the range image; these are small stand-ins for CPUs)."""


class _WrapConv(nn.Module):
    """3x3 convolution with zero padding over the rows and circular (or zero) padding over the columns."""

    def __init__(self, cin: int, cout: int, circular: bool, stride: Tuple[int, int] = (1, 1)):
        super().__init__()
        self.circular = circular
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (1, 1, 0, 0), mode="circular" if self.circular else "constant")
        return self.conv(nn.functional.pad(x, (0, 0, 1, 1)))


class _Block(nn.Module):
    def __init__(self, channels: int, groups: int, circular: bool):
        super().__init__()
        self.c1, self.n1 = _WrapConv(channels, channels, circular), _norm(channels, groups)
        self.c2, self.n2 = _WrapConv(channels, channels, circular), _norm(channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.n1(self.c1(x)))
        return torch.relu(x + self.n2(self.c2(y)))


class RangeEmbeddingNet(nn.Module):
    """Range image ``[B, 5, beams, W_az]`` -> embeddings ``[B, c, beams, W_az]`` (``W_az`` divisible by 4).

    Encoder: stem 3x3 conv, residual blocks, two azimuth-only downsamplings (stride ``(1, 2)``); decoder: transposed
    ``(1, 2)`` upsamplings with skip connections (added), residual blocks, a 1x1 embedding head.
    """

    def __init__(self, cfg: RangeNetConfig, embedding_dim: int, circular: bool = True):
        super().__init__()
        w1, w2, w3 = cfg.widths
        g, c = cfg.groups, circular
        self.stem = nn.Sequential(_WrapConv(RANGE_INPUT_CHANNELS, w1, c), _norm(w1, g), nn.ReLU())
        self.enc1 = nn.Sequential(*[_Block(w1, g, c) for _ in range(cfg.blocks)])
        self.down2 = nn.Sequential(_WrapConv(w1, w2, c, stride=(1, 2)), _norm(w2, g), nn.ReLU())
        self.enc2 = nn.Sequential(*[_Block(w2, g, c) for _ in range(cfg.blocks)])
        self.down3 = nn.Sequential(_WrapConv(w2, w3, c, stride=(1, 2)), _norm(w3, g), nn.ReLU())
        self.enc3 = nn.Sequential(*[_Block(w3, g, c) for _ in range(cfg.blocks)])
        self.up2 = nn.ConvTranspose2d(w3, w2, (1, 2), stride=(1, 2))
        self.dec2 = nn.Sequential(*[_Block(w2, g, c) for _ in range(cfg.blocks)])
        self.up1 = nn.ConvTranspose2d(w2, w1, (1, 2), stride=(1, 2))
        self.dec1 = nn.Sequential(*[_Block(w1, g, c) for _ in range(cfg.blocks)])
        self.head = nn.Conv2d(w1, embedding_dim, 1)

    def forward(self, range_input: torch.Tensor) -> torch.Tensor:
        if range_input.shape[1] != RANGE_INPUT_CHANNELS or range_input.shape[-1] % 4:
            raise ValueError(
                f"range input must be [B, {RANGE_INPUT_CHANNELS}, beams, W_az] with W_az divisible by 4; "
                f"got {tuple(range_input.shape)}"
            )
        f1 = self.enc1(self.stem(range_input))
        f2 = self.enc2(self.down2(f1))
        f3 = self.enc3(self.down3(f2))
        d2 = self.dec2(self.up2(f3) + f2)
        d1 = self.dec1(self.up1(d2) + f1)
        return self.head(d1)
