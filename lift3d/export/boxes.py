"""What ``instances.json`` says about each instance: centroid, axis-aligned and oriented boxes, point count, views."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


def oriented_box(xyz: np.ndarray) -> dict:
    """Oriented bounding box of points xyz [N, 3] (N >= 1) from their principal axes: ``rotation`` [3, 3] has the
    axes as columns (right-handed, largest variance first), ``center`` [3] and ``extent`` [3] (full side lengths
    along those axes), so every point satisfies ``|R^T (x - center)| <= extent / 2``."""
    x = np.asarray(xyz, np.float64)
    mean = x.mean(axis=0)
    if len(x) < 3:
        rot = np.eye(3)
    else:
        _, vecs = np.linalg.eigh(np.cov((x - mean).T))
        rot = vecs[:, ::-1]
        if np.linalg.det(rot) < 0:
            rot[:, 2] = -rot[:, 2]
    local = (x - mean) @ rot
    lo, hi = local.min(axis=0), local.max(axis=0)
    center = mean + rot @ ((lo + hi) / 2)
    return {"center": center.tolist(), "extent": (hi - lo).tolist(), "rotation": rot.tolist()}


@dataclass
class InstanceRecord:
    """One entry of ``instances.json``."""

    id: int
    """Instance id, as in the labels (``instance`` properties, ``*.npy``, renders)."""
    class_id: int
    """Semantic class id."""
    class_name: str
    """Name of that class in the scene."""
    point_count: int
    """Exported surface points labelled with this id."""
    centroid: list = field(default_factory=list)
    """[3] mean of those points (world frame)."""
    aabb: dict = field(default_factory=dict)
    """``{"min": [3], "max": [3]}`` axis-aligned box of those points."""
    obb: dict = field(default_factory=dict)
    """:func:`oriented_box` of those points."""
    views: dict = field(default_factory=dict)
    """Training frame name -> number of its pixels that show this instance."""
    files: dict = field(default_factory=dict)
    """Files written for this instance, relative to the export folder."""

    def to_dict(self) -> dict:
        return asdict(self)


def instance_record(
    instance_id: int, class_id: int, class_name: str, xyz: np.ndarray, view_names: list[str]
) -> InstanceRecord:
    """The record of one instance from its points xyz [N, 3] and the frame name of each point [N]."""
    rec = InstanceRecord(id=int(instance_id), class_id=int(class_id), class_name=class_name, point_count=len(xyz))
    if len(xyz):
        x = np.asarray(xyz, np.float64)
        rec.centroid = x.mean(axis=0).tolist()
        rec.aabb = {"min": x.min(axis=0).tolist(), "max": x.max(axis=0).tolist()}
        rec.obb = oriented_box(x)
        names, counts = np.unique(np.asarray(view_names), return_counts=True)
        rec.views = {str(n): int(c) for n, c in zip(names, counts)}
    return rec
