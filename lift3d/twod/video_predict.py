"""A spatio-temporal network's masks as a sequence's 2D input (``lift3d twod predict`` / ``lift3d segments predict``
with a ``--method spatio-temporal`` run).

Every clip of the sequence is run in time order (:meth:`lift3d.twod.video_model.SpatioTemporalModel.predict_clip`)
and each frame's instance, class and confidence maps are written as id maps for
:func:`lift3d.data.segments_import.import_segments`. ``ids="tracks"`` keeps the network's track ids (consistent
through a clip; the clips' ids are offset so two clips never share an id), the method's own answer to video instance
segmentation; ``ids="per-frame"`` renumbers every frame's instances ``1..N`` (the same masks without the tracking),
the 2D input the lift needs, since it associates masks across views itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from lift3d.data.images import write_id_map
from lift3d.data.loading import load_frame
from lift3d.data.sequence import load_sequence
from lift3d.twod.video_model import SpatioTemporalModel

__all__ = ["IdMode", "write_tracked_maps", "renumber_per_frame"]

IdMode = Literal["tracks", "per-frame"]


def renumber_per_frame(instance: np.ndarray) -> np.ndarray:
    """``instance [H, W]`` -> the same segments numbered ``1..N`` in order of first appearance (row-major)."""
    flat = instance.reshape(-1)
    ids, first = np.unique(flat[flat > 0], return_index=True)
    order = ids[np.argsort(first)]
    out = np.zeros_like(instance)
    for n, k in enumerate(order, start=1):
        out[instance == k] = n
    return out


def write_tracked_maps(model: SpatioTemporalModel, sequence: Path, folder: Path, ids: IdMode = "tracks") -> int:
    """Segment every clip of the sequence at ``sequence`` and write ``folder/{instance,semantic,confidence}/<stem>``;
    returns the number of distinct instance ids written (tracks, or per-frame instances)."""
    seq = load_sequence(sequence, check_files=False)
    for sub in ("instance", "semantic", "confidence"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    offset, count = 0, 0
    for clip in seq.clips:
        rgb = [np.clip(np.round(load_frame(seq.scene, i).rgb * 255.0), 0, 255).astype(np.uint8) for i in clip.frames]
        out = model.predict_clip(rgb)
        clip_max = 0
        for i, p in zip(clip.frames, out.frames):
            inst = p.instance.astype(np.int64)
            clip_max = max(clip_max, int(inst.max()))
            if ids == "tracks":
                inst = np.where(inst > 0, inst + offset, 0)
            else:
                inst = renumber_per_frame(inst)
                count += int(inst.max())
            stem = seq.frame_stem(i)
            write_id_map(folder / "instance" / f"{stem}.png", inst, bits=16)
            write_id_map(folder / "semantic" / f"{stem}.png", p.semantic, bits=16)
            np.save(folder / "confidence" / f"{stem}.npy", p.confidence)
        offset += clip_max
    return offset if ids == "tracks" else count
