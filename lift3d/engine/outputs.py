"""Writing renders of a run to disk and reading them back for evaluation.

Layout of ``RUN/renders/<split>/``: ``rgb/<name>.png``, ``semantic/<name>.png`` (8/16-bit class ids),
``instance/<name>.png`` (16-bit instance ids, 0 = stuff), ``embedding/<name>.png`` (fast embedding, first three
dimensions min-max normalised to RGB), ``depth/<name>.png`` (16-bit millimetres) and ``frames.json`` listing the
frame index and name of every view.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lift3d.data.images import atomic_write_bytes, read_id_map, read_rgb, write_depth_png, write_id_map, write_rgb
from lift3d.engine.inference import ViewRender
from lift3d.engine.run_dir import RunFileError

__all__ = ["write_renders", "read_renders", "read_renders_record", "embedding_to_rgb", "instance_to_rgb", "frame_stem"]


def frame_stem(name: str) -> str:
    return Path(name).stem


def embedding_to_rgb(emb: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
    """[H, W, D] -> [H, W, 3] in [0, 1]: first three dims (zero padded) min-max normalised with (lo, hi)."""
    e = emb[..., :3]
    if e.shape[-1] < 3:
        e = np.concatenate([e, np.zeros(e.shape[:-1] + (3 - e.shape[-1],), e.dtype)], -1)
    lo = e.reshape(-1, 3).min(0) if lo is None else lo
    hi = e.reshape(-1, 3).max(0) if hi is None else hi
    return np.clip((e - lo) / np.maximum(hi - lo, 1e-6), 0, 1)


def instance_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Colour an id map deterministically (0 -> black) for viewing: [H, W] -> uint8 [H, W, 3]."""
    ids = ids.astype(np.int64)
    h = (ids * 2654435761) & 0xFFFFFFFF
    rgb = np.stack([(h >> 0) & 255, (h >> 8) & 255, (h >> 16) & 255], -1).astype(np.float32)
    rgb = 60 + rgb * (195 / 255)
    rgb[ids == 0] = 0
    return rgb.astype(np.uint8)


def write_renders(out_dir: Path, renders: list[ViewRender], names: list[str], made_from: dict | None = None) -> None:
    """Write every view's PNGs and ``frames.json`` (last, so a half-written folder has none); ``made_from`` (the
    checkpoint step and config hash the renders came from) is recorded in ``frames.json``. Names whose stems clash
    are refused before anything is written (one render would overwrite the other)."""
    out_dir = Path(out_dir)
    stems = [frame_stem(n) for n in names]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise ValueError(
            f"{out_dir}: frames {[n for n in names if frame_stem(n) in clashes][:6]} share the file stem(s) "
            f"{clashes[:3]}; their renders would overwrite each other. Give the frames' images distinct names."
        )
    (out_dir / "frames.json").unlink(missing_ok=True)
    all_emb = np.concatenate([r.embedding.reshape(-1, r.embedding.shape[-1])[:, :3] for r in renders])
    lo, hi = np.percentile(all_emb, 1, axis=0), np.percentile(all_emb, 99, axis=0)
    if lo.shape[0] < 3:
        lo, hi = np.pad(lo, (0, 3 - lo.shape[0])), np.pad(hi, (0, 3 - hi.shape[0]), constant_values=1)
    frames = []
    for r, name in zip(renders, names):
        stem = frame_stem(name)
        write_rgb(out_dir / "rgb" / f"{stem}.png", r.rgb)
        write_id_map(out_dir / "semantic" / f"{stem}.png", r.semantic, bits=16)
        if r.instance is not None:
            write_id_map(out_dir / "instance" / f"{stem}.png", r.instance, bits=16)
        write_rgb(out_dir / "embedding" / f"{stem}.png", embedding_to_rgb(r.embedding, lo, hi))
        write_depth_png(out_dir / "depth" / f"{stem}.png", r.depth)
        frames.append({"frame_index": r.frame_index, "name": name, "stem": stem})
    record = {"frames": frames, **({"made_from": made_from} if made_from is not None else {})}
    atomic_write_bytes(out_dir / "frames.json", json.dumps(record, indent=2).encode())


def read_renders_record(out_dir: Path) -> dict:
    """The content of ``frames.json`` of a renders folder (``frames``, and ``made_from`` when recorded)."""
    meta_path = Path(out_dir) / "frames.json"
    try:
        return json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise RunFileError(f"{meta_path}: no renders here; run `lift3d render` first.") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFileError(f"{meta_path}: cannot be read ({err}); delete {Path(out_dir)} and render again.") from None


def read_renders(out_dir: Path) -> list[dict]:
    """Per view: ``frame_index``, ``name``, ``rgb``, ``semantic``, ``instance`` arrays."""
    out_dir = Path(out_dir)
    views = []
    for f in read_renders_record(out_dir)["frames"]:
        stem = f["stem"]
        views.append(
            {
                "frame_index": f["frame_index"],
                "name": f["name"],
                "rgb": read_rgb(out_dir / "rgb" / f"{stem}.png"),
                "semantic": read_id_map(out_dir / "semantic" / f"{stem}.png"),
                "instance": read_id_map(out_dir / "instance" / f"{stem}.png"),
            }
        )
    return views
