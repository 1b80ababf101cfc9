"""A branched ERFNet-style encoder-decoder in pure torch (the network of Neven et al. 2019).

ERFNet (Romera et al., T-ITS 2018) is chosen over a U-Net because it is what the spatial-embeddings paper uses and
because its factorised residual blocks (a 3x3 convolution split into 3x1 and 1x3, with dilations in the last
stage) give a large receptive field at a low cost, which is what an instance centre 100 pixels away needs. One
shared encoder (downsamplers: a strided 3x3 convolution concatenated with a max-pool; factorised residual blocks)
feeds two decoders (transposed convolutions + factorised blocks): decoder A predicts the 2 offset and ``n_sigma``
bandwidth channels, decoder B the seed maps (one per thing class) and the class logits.

Normalisation is GroupNorm instead of ERFNet's BatchNorm: it does not depend on the batch, so small CPU batches
train the same way and a DDP run on N processes gives exactly the single-process result for the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import nn

__all__ = ["NetworkConfig", "NETWORK_PRESETS", "BranchedERFNet", "NetworkOutput"]


@dataclass
class NetworkConfig:
    """Width and depth of :class:`BranchedERFNet`."""

    widths: Tuple[int, int, int] = (16, 64, 128)
    """Channels after each of the three downsamplers (ERFNet: 16, 64, 128); the input side must be divisible by 8."""
    stage2_blocks: int = 5
    """Factorised residual blocks at 1/4 resolution (ERFNet: 5)."""
    stage3_groups: int = 2
    """Groups of four dilated blocks (dilations 2, 4, 8, 16) at 1/8 resolution (ERFNet: 2)."""
    decoder_blocks: int = 2
    """Factorised blocks after each upsampling in each decoder (ERFNet: 2)."""
    dropout: float = 0.0
    """Dropout in the encoder's residual blocks (ERFNet: 0.03 / 0.3); 0 keeps DDP runs bit-comparable."""
    groups: int = 4
    """GroupNorm groups (capped by the channel count)."""
    n_sigma: int = 2
    """Bandwidth channels: 2 (one per axis, elliptical instances) or 1 (circular)."""


NETWORK_PRESETS = {
    "paper": NetworkConfig(),
    "cpu-small": NetworkConfig(widths=(16, 32, 64), stage2_blocks=2, stage3_groups=1, decoder_blocks=1),
    "tiny": NetworkConfig(widths=(4, 8, 8), stage2_blocks=1, stage3_groups=1, decoder_blocks=1, groups=2),
}
"""``paper``: ERFNet's widths and depths (~2.1M parameters per the two decoders); ``cpu-small``: half width,
fewer blocks, for CPU training; ``tiny``: for tests."""


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


class Downsampler(nn.Module):
    """ERFNet's downsampler: ``concat(conv3x3 stride 2 -> out - in channels, maxpool 2x2)``, norm, ReLU."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.pool = cin < cout
        self.conv = nn.Conv2d(cin, cout - cin if self.pool else cout, 3, stride=2, padding=1)
        self.norm = _norm(cout, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool:
            y = torch.cat([y, nn.functional.max_pool2d(x, 2)], 1)
        return torch.relu(self.norm(y))


class FactorisedBlock(nn.Module):
    """ERFNet's non-bottleneck-1D block: (3x1, 1x3) then dilated (3x1, 1x3), residual, ReLU."""

    def __init__(self, channels: int, dilation: int, dropout: float, groups: int):
        super().__init__()
        d = dilation
        self.c1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.c2 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1))
        self.n1 = _norm(channels, groups)
        self.c3 = nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.c4 = nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d))
        self.n2 = _norm(channels, groups)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c1(x))
        y = torch.relu(self.n1(self.c2(y)))
        y = torch.relu(self.c3(y))
        y = self.drop(self.n2(self.c4(y)))
        return torch.relu(y + x)


class Upsampler(nn.Module):
    """Transposed 3x3 convolution, stride 2 (doubles the size), norm, ReLU."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
        self.norm = _norm(cout, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class Encoder(nn.Sequential):
    def __init__(self, cfg: NetworkConfig):
        w1, w2, w3 = cfg.widths
        layers: list[nn.Module] = [Downsampler(3, w1, cfg.groups), Downsampler(w1, w2, cfg.groups)]
        layers += [FactorisedBlock(w2, 1, cfg.dropout / 10, cfg.groups) for _ in range(cfg.stage2_blocks)]
        layers.append(Downsampler(w2, w3, cfg.groups))
        for _ in range(cfg.stage3_groups):
            layers += [FactorisedBlock(w3, d, cfg.dropout, cfg.groups) for d in (2, 4, 8, 16)]
        super().__init__(*layers)


class Decoder(nn.Sequential):
    def __init__(self, cfg: NetworkConfig, out_channels: int):
        w1, w2, w3 = cfg.widths
        layers: list[nn.Module] = [Upsampler(w3, w2, cfg.groups)]
        layers += [FactorisedBlock(w2, 1, 0.0, cfg.groups) for _ in range(cfg.decoder_blocks)]
        layers.append(Upsampler(w2, w1, cfg.groups))
        layers += [FactorisedBlock(w1, 1, 0.0, cfg.groups) for _ in range(cfg.decoder_blocks)]
        layers.append(nn.ConvTranspose2d(w1, out_channels, 2, stride=2))
        super().__init__(*layers)


@dataclass
class NetworkOutput:
    """The heads of :class:`BranchedERFNet` for a batch of ``B`` images of ``H x W``."""

    offsets: torch.Tensor
    """[B, 2, H, W] raw offsets (the embedding is ``x + tanh(offsets)``)."""
    sigma: torch.Tensor
    """[B, n_sigma, H, W] bandwidth parameters (the Gaussian's precision is ``exp(10 σ)``)."""
    seed_logits: torch.Tensor
    """[B, n_seed, H, W] seed logits, one channel per thing class (the seed is their sigmoid)."""
    semantic_logits: torch.Tensor
    """[B, n_classes, H, W] class logits."""


class BranchedERFNet(nn.Module):
    """Shared ERFNet encoder, decoder A -> (offsets, sigma), decoder B -> (seeds, class logits).

    ``forward(images [B, 3, H, W] float in [0, 1]) -> NetworkOutput``; ``H`` and ``W`` must be divisible by 8.
    The offset and sigma outputs start at 0 and ``sigma_init`` (zero weights, bias 0 / ``sigma_init``); Neven et al.
    2019 start sigma at 1, a Gaussian of about 5 px at their 1024 pixels per unit (see
    :func:`lift3d.twod.spatial_embeddings.sigma_for_bandwidth`).
    """

    def __init__(self, cfg: NetworkConfig, n_seed: int, n_classes: int, sigma_init: float = 1.0):
        super().__init__()
        self.cfg, self.n_seed, self.n_classes = cfg, n_seed, n_classes
        self.encoder = Encoder(cfg)
        self.decoder_embedding = Decoder(cfg, 2 + cfg.n_sigma)
        self.decoder_seed = Decoder(cfg, n_seed + n_classes)
        last = self.decoder_embedding[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
            last.bias[2:] = sigma_init
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> NetworkOutput:
        h, w = images.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"image size {w}x{h} (w x h) must be divisible by 8; crop or resize the input.")
        feats = self.encoder((images - self.mean) / self.std)
        a = self.decoder_embedding(feats)
        b = self.decoder_seed(feats)
        return NetworkOutput(
            offsets=a[:, :2], sigma=a[:, 2:], seed_logits=b[:, : self.n_seed], semantic_logits=b[:, self.n_seed :]
        )
