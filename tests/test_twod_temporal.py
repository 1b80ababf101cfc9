"""The causal temporal model: frame t's output never depends on frames after t."""

from __future__ import annotations

import torch

from lift3d.twod.temporal import CausalConv3d, CausalTemporalModel


def test_output_at_t_is_unchanged_when_later_frames_change():
    torch.manual_seed(0)
    model = CausalTemporalModel(channels=8, blocks=3, time_kernel=2, groups=2).eval()
    x = torch.randn(2, 8, 6, 5, 7)  # [B, C, T, H, W]
    y = model(x)
    for t in range(5):
        changed = x.clone()
        changed[:, :, t + 1 :] = torch.randn_like(changed[:, :, t + 1 :]) * 5
        z = model(changed)
        assert torch.equal(z[:, :, : t + 1], y[:, :, : t + 1]), t
        assert not torch.allclose(z[:, :, t + 1], y[:, :, t + 1])  # ... while the changed frame's output changes


def test_the_past_is_seen_within_the_receptive_field():
    torch.manual_seed(0)
    model = CausalTemporalModel(channels=8, blocks=3, time_kernel=2, groups=2).eval()
    assert model.receptive_field == 3
    x = torch.randn(1, 8, 6, 5, 5)
    changed = x.clone()
    changed[:, :, 2] += 3.0
    y, z = model(x), model(changed)
    assert torch.equal(y[:, :, :2], z[:, :, :2])
    for t in (2, 3, 4):  # frame 2 reaches frames 2, 3 and 4 (receptive field 3) ...
        assert not torch.allclose(y[:, :, t], z[:, :, t])
    assert torch.equal(y[:, :, 5], z[:, :, 5])  # ... but not frame 5


def test_causal_conv_by_hand():
    conv = CausalConv3d(1, 1, (2, 1, 1))
    with torch.no_grad():
        conv.conv.weight[:] = torch.tensor([10.0, 1.0]).reshape(1, 1, 2, 1, 1)  # 10 x_{t-1} + x_t
        conv.conv.bias.zero_()
    x = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1, 1)
    assert conv(x).flatten().tolist() == [1.0, 12.0, 23.0]  # x_{-1} is the zero padding
