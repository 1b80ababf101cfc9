"""Decoding for Panoptic Lifting's linear-assignment instance field: the instance of a pixel is the argmax of its
K rendered slot logits (no clustering; K bounds the number of objects). Same ``label``/``save``/``load`` interface
as :class:`lift3d.cluster.SceneClusters`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lift3d.io.atomic import atomic_write_json

__all__ = ["ArgmaxSlots", "load_labeler"]

_FORMAT = "lift3d-argmax-slots"


@dataclass
class ArgmaxSlots:
    thing_classes: tuple[int, ...]
    """Semantic classes that get instance ids; every other pixel gets 0."""
    num_slots: int
    """K, the number of slots the field outputs."""

    @property
    def num_instances(self) -> int:
        return self.num_slots

    uses_position = False
    """Argmax needs no surface points (same interface as :class:`lift3d.cluster.SceneClusters`)."""

    def label(self, sem, emb, position=None) -> np.ndarray:
        """sem [M] or [H, W], emb [..., K] -> ids: ``argmax_k emb + 1`` on thing pixels, 0 elsewhere
        (``position`` is ignored)."""
        sem = np.asarray(sem)
        emb = np.asarray(emb).reshape(sem.size, -1)
        ids = emb.argmax(-1).astype(np.int64) + 1
        return np.where(np.isin(sem.reshape(-1), self.thing_classes), ids, 0).reshape(sem.shape)

    def save(self, path) -> None:
        """Write the labeler to a small JSON file atomically."""
        atomic_write_json(
            Path(path),
            {
                "format": _FORMAT,
                "thing_classes": [int(c) for c in self.thing_classes],
                "num_slots": int(self.num_slots),
            },
            indent=None,
        )

    @classmethod
    def load(cls, path) -> "ArgmaxSlots":
        d = json.loads(Path(path).read_text())
        return cls(tuple(d["thing_classes"]), int(d["num_slots"]))


def load_labeler(path):
    """Read a run's instance labeler: cached cluster centroids or argmax slots, whichever was saved."""
    from lift3d.cluster.embedding_clusterer import SceneClusters

    path = Path(path)
    try:
        kind = json.loads(path.read_text()).get("format")
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the instance labeler ({err}); re-run `lift3d fit --resume`.") from err
    return ArgmaxSlots.load(path) if kind == _FORMAT else SceneClusters.load(path)
