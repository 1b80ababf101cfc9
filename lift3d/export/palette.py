"""A fixed colour per instance id, shared by the exports and the viewer."""

from __future__ import annotations

import numpy as np

_GOLDEN = 0.618033988749895


def instance_colours(ids: np.ndarray) -> np.ndarray:
    """ids [N] int -> uint8 colours [N, 3]: 0 (no instance) is grey, id k has hue ``frac(k * golden ratio)`` at
    full saturation, so neighbouring ids get distant hues."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    h = (ids * _GOLDEN) % 1.0
    s, v = 0.75, 0.95
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack(
        [
            np.stack([np.full_like(f, v), t, np.full_like(f, p)], -1),
            np.stack([q, np.full_like(f, v), np.full_like(f, p)], -1),
            np.stack([np.full_like(f, p), np.full_like(f, v), t], -1),
            np.stack([np.full_like(f, p), q, np.full_like(f, v)], -1),
            np.stack([t, np.full_like(f, p), np.full_like(f, v)], -1),
            np.stack([np.full_like(f, v), np.full_like(f, p), q], -1),
        ],
        axis=1,
    )  # [N, 6, 3]
    rgb = table[np.arange(len(ids)), i]
    rgb[ids == 0] = 0.55
    return (rgb * 255).round().astype(np.uint8)
