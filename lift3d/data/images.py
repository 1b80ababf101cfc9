"""Reading and writing the image files of a scene (RGB, 8/16-bit id maps, depth, confidence).

Writers are atomic (:func:`lift3d.io.atomic_write_bytes`): they write a temporary file beside the target and
rename it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lift3d.io import atomic_write_bytes

__all__ = [
    "read_rgb",
    "read_id_map",
    "read_depth",
    "read_confidence",
    "read_mask",
    "read_image_size",
    "resize_rgb",
    "resize_nearest",
    "resize_confidence",
    "resize_depth",
    "verify_image",
    "write_rgb",
    "write_id_map",
    "write_depth_png",
]


def read_image_size(path: Path) -> tuple[tuple[int, int], int, np.dtype | None]:
    """((height, width), channels, dtype or None) of an image or ``.npy`` without decoding more than needed."""
    path = Path(path)
    if path.suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        return (arr.shape[0], arr.shape[1]), channels, arr.dtype
    if path.suffix == ".npz":
        arr = _npz_confidence(path)
        return (arr.shape[0], arr.shape[1]), 1, arr.dtype
    with Image.open(path) as im:
        w, h = im.size
        bands = len(im.getbands())
        mode = im.mode
    dtype = None
    if mode in ("I;16", "I;16B", "I;16L", "I", "L", "P", "1"):
        dtype = np.dtype(np.int64)
    elif mode == "F":
        dtype = np.dtype(np.float32)
    return (h, w), bands, dtype


def verify_image(path: Path) -> None:
    """Decode the whole file once (PNG chunk CRCs and pixel data; ``.npy``: its full length) and raise on a
    truncated or corrupt file."""
    path = Path(path)
    if path.suffix == ".npy":
        np.load(path, mmap_mode="r").sum()  # reads every byte; a short file fails to map
        return
    if path.suffix == ".npz":
        _npz_confidence(path).sum()  # decompresses the member; a damaged archive fails here
        return
    with Image.open(path) as im:
        im.verify()  # chunk checksums (PNG), without decoding
    with Image.open(path) as im:
        im.load()  # the pixel data, to its end


def read_rgb(path: Path) -> np.ndarray:
    """RGB image as float32 [H, W, 3] in [0, 1] (alpha dropped, grey expanded). 16-bit images (grey ``I;16`` or
    ``I``) are scaled by 1/65535, 8-bit ones by 1/255."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = np.asarray(im).astype(np.float32)
            scale = 65535.0 if im.mode != "I" or grey.max(initial=0) > 255 else 255.0
            return np.repeat((grey / np.float32(scale))[..., None], 3, axis=-1)
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return arr


def read_id_map(path: Path) -> np.ndarray:
    """Single-channel integer id map (8- or 16-bit PNG, or integer ``.npy``) as int64 [H, W]."""
    path = Path(path)
    if path.suffix == ".npy":
        arr = np.load(path)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{path}: id map must be integer, got {arr.dtype}")
        return arr.astype(np.int64)
    with Image.open(path) as im:
        if im.mode == "P":
            arr = np.asarray(im)  # palette index = id
        else:
            arr = np.asarray(im)
    if arr.ndim != 2:
        raise ValueError(f"{path}: id map must be single-channel, got shape {arr.shape}")
    return arr.astype(np.int64)


def read_depth(path: Path, unit_scale: float = 0.001) -> np.ndarray:
    """Depth along the optical axis in metres, float32 [H, W]; 16-bit PNG * ``unit_scale`` or float ``.npy``."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path).astype(np.float32)
    with Image.open(path) as im:
        arr = np.asarray(im)
    return arr.astype(np.float32) * np.float32(unit_scale)


def _npz_confidence(path: Path) -> np.ndarray:
    """The ``confidence`` [H, W] array of a ``.npz`` (Panoptic Lifting's ``m2f_probabilities/<frame>.npz`` holds
    ``probability`` [H, W, C] and ``confidence`` [H, W]); without that key, its only 2D array."""
    with np.load(path, allow_pickle=False) as npz:
        if "confidence" in npz.files:
            arr = npz["confidence"]
        else:
            arrays = [npz[k] for k in npz.files if npz[k].ndim == 2]
            if len(arrays) != 1:
                raise ValueError(f"{path}: no 'confidence' array (keys: {npz.files}).")
            arr = arrays[0]
    if arr.ndim != 2:
        raise ValueError(f"{path}: 'confidence' must be [H, W], got shape {arr.shape}.")
    return arr


def read_confidence(path: Path) -> np.ndarray:
    """Per-pixel confidence in [0, 1], float32 [H, W]: 8-bit /255, 16-bit /65535, float ``.npy``, or the
    ``confidence`` array of a ``.npz``."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.clip(np.load(path).astype(np.float32), 0.0, 1.0)
    if path.suffix == ".npz":
        return np.clip(_npz_confidence(path).astype(np.float32), 0.0, 1.0)
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    scale = 65535.0 if arr.dtype == np.uint16 or arr.max(initial=0) > 255 else 255.0
    return arr.astype(np.float32) / np.float32(scale)


def read_mask(path: Path) -> np.ndarray:
    """A nerfstudio ``mask_path`` image as bool [H, W]: True where the pixel is used (value > 0), False where it is
    excluded (value 0). A multi-channel mask uses its first channel; a ``.npy`` mask is read the same way."""
    path = Path(path)
    if path.suffix == ".npy":
        arr = np.load(path)
    else:
        with Image.open(path) as im:
            arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr > 0


def _resize_channel(channel: np.ndarray, size_hw: tuple[int, int], resample) -> np.ndarray:
    """One float32 [H, W] channel resampled by PIL to ``size_hw`` = (height, width)."""
    im = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
    return np.asarray(im.resize((size_hw[1], size_hw[0]), resample), dtype=np.float32)


def resize_rgb(rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """float32 [H, W, 3] resampled to ``size_hw`` = (height, width): box filter (area average) when shrinking,
    bilinear when enlarging; the pixel grid maps as ``x' = x * W' / W`` (the intrinsics scale by the same ratio)."""
    if rgb.shape[:2] == tuple(size_hw):
        return rgb
    shrink = size_hw[0] <= rgb.shape[0] and size_hw[1] <= rgb.shape[1]
    resample = Image.BOX if shrink else Image.BILINEAR
    out = np.stack([_resize_channel(rgb[..., c], size_hw, resample) for c in range(rgb.shape[2])], axis=-1)
    return np.clip(out, 0.0, 1.0)


def resize_nearest(arr: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of an [H, W] map (ids, masks) to ``size_hw``: target pixel ``(u', v')`` takes
    source pixel ``(floor((u' + 0.5) W / W'), floor((v' + 0.5) H / H'))``, so values are never mixed."""
    height, width = arr.shape[:2]
    if (height, width) == tuple(size_hw):
        return arr
    rows = np.minimum(((np.arange(size_hw[0]) + 0.5) * height / size_hw[0]).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(size_hw[1]) + 0.5) * width / size_hw[1]).astype(np.int64), width - 1)
    return arr[rows[:, None], cols[None, :]]


def resize_confidence(conf: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """float32 [H, W] confidence resampled bilinearly to ``size_hw`` and clipped to [0, 1]."""
    if conf.shape == tuple(size_hw):
        return conf
    return np.clip(_resize_channel(conf, size_hw, Image.BILINEAR), 0.0, 1.0)


def resize_depth(depth: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """float32 [H, W] depth (0 = unknown) resampled to ``size_hw`` without inventing values.

    Nearest neighbour (:func:`resize_nearest`: zeros stay zeros, no depth is averaged across an edge), then every
    valid source pixel ``(u, v)`` whose target pixel ``(floor(u W' / W), floor(v H' / H))`` is still 0 writes its
    depth there (the nearest of several): sparse depth (SfM points, a few % of pixels) keeps its points when it is
    shrunk, where nearest sampling alone would drop most of them.
    """
    out = resize_nearest(depth, size_hw).astype(np.float32, copy=True)
    if depth.shape == tuple(size_hw):
        return out
    v, u = np.nonzero(depth > 0)
    if v.size:
        tv = np.minimum(v * size_hw[0] // depth.shape[0], size_hw[0] - 1)
        tu = np.minimum(u * size_hw[1] // depth.shape[1], size_hw[1] - 1)
        values = depth[v, u].astype(np.float32)
        nearest = np.full(size_hw, np.inf, np.float32)
        np.minimum.at(nearest, (tv, tu), values)
        fill = (out <= 0) & np.isfinite(nearest)
        out[fill] = nearest[fill]
    return out


def _save_png(path: Path, im: Image.Image) -> None:
    import io

    buf = io.BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write float [H, W, 3] in [0, 1] (or uint8) as an 8-bit PNG."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    _save_png(path, Image.fromarray(rgb, mode="RGB"))


def write_id_map(path: Path, ids: np.ndarray, bits: int = 16) -> None:
    """Write an integer id map [H, W] as a 16-bit (default) or 8-bit single-channel PNG."""
    ids = np.asarray(ids)
    limit = 65535 if bits == 16 else 255
    if ids.min(initial=0) < 0 or ids.max(initial=0) > limit:
        raise ValueError(f"{path}: ids must lie in [0, {limit}] for a {bits}-bit PNG, got [{ids.min()}, {ids.max()}]")
    if bits == 16:
        im = Image.fromarray(ids.astype(np.uint16))  # mode I;16
    else:
        im = Image.fromarray(ids.astype(np.uint8), mode="L")
    _save_png(path, im)


def write_depth_png(path: Path, depth_m: np.ndarray, unit_scale: float = 0.001) -> None:
    """Write depth in metres as a 16-bit PNG in units of ``unit_scale`` metres (0 = unknown)."""
    d = np.round(np.nan_to_num(depth_m, nan=0.0, posinf=0.0) / unit_scale)
    write_id_map(path, np.clip(d, 0, 65535).astype(np.int64), bits=16)
