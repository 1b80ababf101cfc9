"""Procedural solid textures: colour as a function of a 3D point, evaluated where a camera ray hits a surface.

Objects use :class:`TextureSpec` in object-local coordinates (so the pattern moves with the object); the room
(floor, walls, ceiling) uses the environment styles in world coordinates. Everything is a pure function of its
inputs (no global random state): the same spec always gives the same colours.

Colours in specs are sRGB in ``[0, 1]``; evaluation returns *linear* RGB (``srgb ** 2.2``) ready for shading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Tuple

import numpy as np

TextureKind = Literal["solid", "checker", "stripes", "noise", "dots", "rings", "marble"]
TEXTURE_KINDS: Tuple[str, ...] = ("solid", "checker", "stripes", "noise", "dots", "rings", "marble")

GAMMA = 2.2
"""Exponent of the simple sRGB <-> linear approximation used by the fast renderer."""


# --------------------------------------------------------------------------------------------------------------
# Hashed value noise
# --------------------------------------------------------------------------------------------------------------

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hash01(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random value in ``[0, 1)`` per integer lattice point. Shapes: ``[M]`` -> ``[M]``."""
    with np.errstate(over="ignore"):
        h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        h ^= (iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)) & _MASK64
        h ^= (iz.astype(np.uint64) * np.uint64(0x165667B19E3779F9)) & _MASK64
        h ^= np.uint64((seed * 0x27D4EB2F165667C5) & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(33)
        h = (h * np.uint64(0xFF51AFD7ED558CCD)) & _MASK64
        h ^= h >> np.uint64(33)
        h = (h * np.uint64(0xC4CEB9FE1A85EC53)) & _MASK64
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def hash_cell(cells: np.ndarray, seed: int) -> np.ndarray:
    """Random value in ``[0, 1)`` per integer cell. ``cells``: ``[M, 3]`` (or ``[M, 2]``) integers -> ``[M]``."""
    cells = np.asarray(cells, dtype=np.int64)
    z = cells[:, 2] if cells.shape[1] > 2 else np.zeros(len(cells), np.int64)
    return _hash01(cells[:, 0], cells[:, 1], z, seed)


def value_noise(points: np.ndarray, seed: int) -> np.ndarray:
    """Smooth 3D value noise in ``[0, 1]``: trilinear blend (smoothstep weights) of hashed lattice values.

    ``points``: ``[M, 3]`` -> ``[M]``.
    """
    p = np.asarray(points, dtype=np.float64)
    base = np.floor(p)
    f = p - base
    w = f * f * (3.0 - 2.0 * f)
    i = base.astype(np.int64)
    out = np.zeros(len(p))
    for dx in (0, 1):
        wx = w[:, 0] if dx else 1.0 - w[:, 0]
        for dy in (0, 1):
            wy = w[:, 1] if dy else 1.0 - w[:, 1]
            for dz in (0, 1):
                wz = w[:, 2] if dz else 1.0 - w[:, 2]
                out += wx * wy * wz * _hash01(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz, seed)
    return out


def fbm(points: np.ndarray, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of ``octaves`` value-noise layers (each twice the frequency, half the amplitude), in ``[0, 1]``."""
    total = np.zeros(len(points))
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * value_noise(points * (2.0**octave), seed + 7919 * octave)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def srgb_to_linear(color: np.ndarray) -> np.ndarray:
    """Approximate sRGB -> linear conversion, ``c ** 2.2``."""
    return np.clip(np.asarray(color, dtype=np.float64), 0.0, 1.0) ** GAMMA


def linear_to_srgb8(color: np.ndarray) -> np.ndarray:
    """Linear RGB -> 8-bit sRGB, ``round(255 * clip(c) ** (1 / 2.2))``."""
    return np.round(255.0 * np.clip(color, 0.0, 1.0) ** (1.0 / GAMMA)).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# Object textures
# --------------------------------------------------------------------------------------------------------------


@dataclass
class TextureSpec:
    """A procedural solid texture of one object (JSON-serialisable)."""

    kind: str
    """One of ``TEXTURE_KINDS``."""
    colors: Tuple[Tuple[float, float, float], ...]
    """Two or three sRGB colours in ``[0, 1]``."""
    frequency: float
    """Pattern features per object size (the object's largest extent is 1 in texture space)."""
    axis: Tuple[float, float, float]
    """Unit direction of stripes / rings / marble veins in object-local coordinates."""
    seed: int
    """Seed of the noise lattice."""


def sample_texture(rng: np.random.Generator) -> TextureSpec:
    """Draw a random texture: kind, 2-3 harmonised colours, frequency, axis and noise seed."""
    kind = TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))]
    num_colors = int(rng.integers(2, 4))
    hue = rng.random()
    colors = []
    for k in range(num_colors):
        h = (hue + (0.0 if k == 0 else rng.choice([0.08, 0.33, 0.5, 0.67]) * (1 if rng.random() < 0.5 else -1))) % 1.0
        s = rng.uniform(0.35, 0.95) if rng.random() > 0.1 else rng.uniform(0.0, 0.1)
        v = rng.uniform(0.35, 0.95)
        colors.append(_hsv_to_rgb(h, s, v))
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis) + 1e-12
    frequency = float(rng.uniform(2.0, 6.0))
    seed = int(rng.integers(0, 2**31 - 1))
    return TextureSpec(kind, tuple(colors), frequency, tuple(float(a) for a in axis), seed)


def _hsv_to_rgb(h: float, s: float, v: float) -> Tuple[float, float, float]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return tuple(float(c) for c in rgb)


def _pick(colors: np.ndarray, index: np.ndarray) -> np.ndarray:
    return colors[np.mod(index, len(colors)).astype(np.int64)]


def evaluate_texture(spec: TextureSpec, points: np.ndarray) -> np.ndarray:
    """Linear-RGB albedo of ``spec`` at object-local texture coordinates.

    ``points``: ``[M, 3]`` object-local points divided by the object size (the object spans about ``[-0.5, 0.5]``).
    Returns ``[M, 3]``.
    """
    q = np.asarray(points, dtype=np.float64)
    colors = srgb_to_linear(np.asarray(spec.colors))
    axis = np.asarray(spec.axis)
    freq = spec.frequency
    if spec.kind == "solid":
        albedo = np.repeat(colors[:1], len(q), axis=0)
    elif spec.kind == "checker":
        cells = np.floor(q * freq).astype(np.int64)
        albedo = _pick(colors, cells.sum(axis=1))
    elif spec.kind == "stripes":
        albedo = _pick(colors, np.floor(q @ axis * freq * 1.5))
    elif spec.kind == "noise":
        t = fbm(q * freq, spec.seed)
        a = np.clip((t - 0.35) / 0.3, 0.0, 1.0)[:, None]
        albedo = colors[0] * (1 - a) + colors[1] * a
        if len(colors) > 2:
            albedo = np.where((t > 0.68)[:, None], colors[2], albedo)
    elif spec.kind == "dots":
        cell = q * freq * 1.3
        d = np.linalg.norm(cell - np.floor(cell) - 0.5, axis=1)
        which = np.floor(cell).astype(np.int64).sum(axis=1)
        spot = _pick(colors[1:], which)
        albedo = np.where((d < 0.32)[:, None], spot, colors[0])
    elif spec.kind == "rings":
        radial = np.linalg.norm(q - np.outer(q @ axis, axis), axis=1)
        t = radial * freq * 2.0 + 0.8 * fbm(q * 3.0, spec.seed)
        albedo = _pick(colors, np.floor(t))
    elif spec.kind == "marble":
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (q @ axis * freq * 0.7 + 1.5 * fbm(q * 2.5, spec.seed, 4)))
        a = (t**3)[:, None]
        albedo = colors[0] * (1 - a) + colors[1] * a
    else:
        raise ValueError(f"Unknown texture kind {spec.kind!r}; expected one of {TEXTURE_KINDS}.")
    grain = 0.88 + 0.24 * value_noise(q * 24.0, spec.seed + 1)
    return albedo * grain[:, None]


# --------------------------------------------------------------------------------------------------------------
# Environment (room) styles: procedural stand-ins for the PolyHaven HDRIs of Contrastive Lift's Messy Rooms
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvironmentStyle:
    """Light and room textures of one environment."""

    light_azimuth_deg: float
    """Azimuth of the directional light (degrees, counter-clockwise from +x)."""
    light_elevation_deg: float
    """Elevation of the directional light above the floor (degrees)."""
    light_color: Tuple[float, float, float]
    """Linear RGB intensity of the directional light."""
    ambient_color: Tuple[float, float, float]
    """Linear RGB ambient light (lights every surface, shadowed or not)."""


ENVIRONMENTS = {
    "old_room": EnvironmentStyle(35.0, 55.0, (0.95, 0.85, 0.70), (0.36, 0.33, 0.30)),
    "large_corridor": EnvironmentStyle(-120.0, 65.0, (0.80, 0.86, 0.95), (0.40, 0.42, 0.45)),
    "open_floor": EnvironmentStyle(60.0, 50.0, (1.00, 0.95, 0.85), (0.30, 0.34, 0.40)),
}

OPEN_ENVIRONMENTS = ("open_floor",)
"""Environments without walls or ceiling: an unbounded floor plane under the sky (:func:`sky_radiance`)."""

# Room surface indices (as returned by the renderer's room geometry).
FLOOR, WALL, CEILING = 0, 1, 2


def _old_room(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    out = np.empty((len(points), 3))
    # Floor: staggered wooden planks (0.14 m wide, 1.2 m long) with grain and dark gaps.
    f = surface == FLOOR
    plank_w, plank_l = 0.14, 1.2
    row = np.floor(y[f] / plank_w).astype(np.int64)
    shift = hash_cell(np.stack([row, row, row], 1), 11) * plank_l
    col = np.floor((x[f] + shift) / plank_l).astype(np.int64)
    tint = hash_cell(np.stack([row, col, np.zeros_like(row)], 1), 12)
    grain = fbm(np.stack([x[f] * 3.0, y[f] * 60.0, np.zeros_like(row, dtype=float)], 1), 13)
    wood = srgb_to_linear(np.array([0.55, 0.36, 0.20])) * (0.6 + 0.5 * tint[:, None]) * (0.75 + 0.5 * grain[:, None])
    gap = (np.mod(y[f], plank_w) < 0.008) | (np.mod(x[f] + shift, plank_l) < 0.008)
    out[f] = np.where(gap[:, None], wood * 0.3, wood)
    # Walls: warm plaster with a darker wainscot below 0.9 m.
    w = surface == WALL
    plaster = srgb_to_linear(np.array([0.85, 0.78, 0.64])) * (0.8 + 0.35 * fbm(points[w] * 1.5, 14)[:, None])
    panel = srgb_to_linear(np.array([0.30, 0.40, 0.30])) * (0.85 + 0.3 * fbm(points[w] * 8.0, 15)[:, None])
    out[w] = np.where((z[w] < 0.9)[:, None], panel, plaster)
    c = surface == CEILING
    out[c] = srgb_to_linear(np.array([0.92, 0.90, 0.85])) * (0.9 + 0.1 * value_noise(points[c], 16)[:, None])
    return out


def _large_corridor(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    out = np.empty((len(points), 3))
    # Floor: 0.6 m tiles in two greys with dark grout lines.
    f = surface == FLOOR
    tile = 0.6
    cells = np.floor(points[f, :2] / tile).astype(np.int64)
    light = srgb_to_linear(np.array([0.72, 0.72, 0.70]))
    dark = srgb_to_linear(np.array([0.45, 0.47, 0.50]))
    base = np.where((cells.sum(1) % 2 == 0)[:, None], light, dark)
    base = base * (0.9 + 0.2 * value_noise(points[f] * 6.0, 21)[:, None])
    frac = np.mod(points[f, :2], tile)
    grout = (frac < 0.012).any(axis=1)
    out[f] = np.where(grout[:, None], srgb_to_linear(np.array([0.15, 0.15, 0.15])), base)
    # Walls: cool panels with vertical seams every 1.5 m and a dark skirting board.
    w = surface == WALL
    along = np.where(np.abs(x[w]) > np.abs(y[w]), y[w], x[w])
    seam = np.mod(along, 1.5) < 0.02
    wall = srgb_to_linear(np.array([0.70, 0.76, 0.82])) * (0.9 + 0.2 * fbm(points[w] * 2.0, 22)[:, None])
    wall = np.where(seam[:, None], wall * 0.5, wall)
    out[w] = np.where((z[w] < 0.15)[:, None], srgb_to_linear(np.array([0.12, 0.12, 0.14])), wall)
    c = surface == CEILING
    lamp = (np.mod(points[c, :2], 2.0) > 0.6).all(axis=1) & (np.mod(points[c, :2], 2.0) < 1.4).all(axis=1)
    out[c] = np.where(lamp[:, None], np.array([1.0, 1.0, 1.0]), srgb_to_linear(np.array([0.8, 0.8, 0.8])))
    return out


def _open_floor(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Paving of 1 m slabs in three stone tones with dark joints, over a slow (10 m) colour drift so that the far
    floor still has structure. Only ``FLOOR`` exists in this environment."""
    out = np.empty((len(points), 3))
    slab = 1.0
    cells = np.floor(points[:, :2] / slab).astype(np.int64)
    tone = hash_cell(cells, 31)
    tones = srgb_to_linear(np.array([[0.62, 0.60, 0.55], [0.50, 0.52, 0.50], [0.68, 0.63, 0.52]]))
    base = tones[np.minimum((tone * 3).astype(np.int64), 2)]
    drift = fbm(np.stack([points[:, 0] * 0.1, points[:, 1] * 0.1, np.zeros(len(points))], 1), 32)
    base = base * (0.75 + 0.4 * drift[:, None]) * (0.9 + 0.2 * value_noise(points * 4.0, 33)[:, None])
    joint = (np.mod(points[:, :2], slab) < 0.03).any(axis=1)
    out[:] = np.where(joint[:, None], base * 0.35, base)
    return out


def sky_radiance(environment: str, dirs: np.ndarray) -> np.ndarray:
    """Linear-RGB radiance of the sky of an open environment seen along ``dirs`` ``[M, 3]`` (any length):
    a vertical blend from a pale horizon to a blue zenith, ``c = h + (z - h) * sqrt(max(0, e))`` with ``e`` the
    sine of the ray's elevation (rays below the horizon see the horizon colour). Returns ``[M, 3]``."""
    if environment not in OPEN_ENVIRONMENTS:
        raise ValueError(f"Environment {environment!r} has walls, not a sky; open ones: {OPEN_ENVIRONMENTS}.")
    d = np.asarray(dirs, dtype=np.float64)
    e = np.clip(d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-12), 0.0, 1.0)
    horizon = srgb_to_linear(np.array([0.85, 0.88, 0.92]))
    zenith = srgb_to_linear(np.array([0.32, 0.50, 0.82]))
    return horizon + (zenith - horizon) * np.sqrt(e)[:, None]


def environment_albedo(environment: str, points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Linear-RGB albedo of the room of ``environment`` at world ``points`` ``[M, 3]`` on ``surface`` ``[M]``
    (``FLOOR``, ``WALL`` or ``CEILING``). Returns ``[M, 3]``."""
    if environment == "old_room":
        return _old_room(points, surface)
    if environment == "large_corridor":
        return _large_corridor(points, surface)
    if environment == "open_floor":
        return _open_floor(points, surface)
    raise ValueError(f"Unknown environment {environment!r}; expected one of {sorted(ENVIRONMENTS)}.")
