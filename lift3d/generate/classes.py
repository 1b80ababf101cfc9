"""Semantic classes of a generated Messy Rooms scene: ``--classes binary`` or ``--classes families``.

``binary`` (the default, Contrastive Lift's Messy Rooms): two classes, ``0 background`` (stuff: the whole room,
and the sky of the open environments) and ``1 object`` (thing: every object).

``families``: semantic segmentation is no longer a two-class problem.

* Stuff classes split the background by surface, with ids fixed across scenes: ``0 floor``, ``1 wall``,
  ``2 ceiling``, ``3 sky``. A closed room (``old_room``, ``large_corridor``) lists floor, wall and ceiling; an open
  environment (``open_floor``) lists floor and sky.
* Thing classes, from ``FIRST_THING_ID = 4`` on. Procedural assets: the class of the shape family
  (:data:`PROCEDURAL_THING_CLASSES`, 11 classes grouping the families of :mod:`lift3d.generate.procedural` by
  what they look like; compounds by template), every class listed in every scene so ids are the same in all
  procedural scenes. Google Scanned Objects: the category in the object's ``metadata.pbtxt`` (GSO's
  ``categories { first: "Shoe" }`` or ``annotations { key: "category" value: "Shoe" }``), one class per category
  of the whole asset folder (sorted by name, so every scene drawn from one folder has the same ids) and one class
  ``object`` for objects without a category.

:class:`SceneClasses` is the class table of one scene: what ``transforms.json`` lists and how a renderer colours
its ground truth (a class per instance id, per room surface and for the sky). Both backends, the LiDAR and the
simulated segmenter use it, so every product of a scene shares one class space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from lift3d.generate.gso import KIND as GSO_KIND
from lift3d.generate.gso import discover_objects
from lift3d.generate.mesh import AssetSpec
from lift3d.generate.procedural import COMPOUND_TEMPLATES, SHAPE_FAMILIES
from lift3d.generate.textures import CEILING, FLOOR, OPEN_ENVIRONMENTS, WALL

__all__ = [
    "CLASS_SCHEMES",
    "BINARY_CLASSES",
    "STUFF_CLASSES",
    "FIRST_THING_ID",
    "PROCEDURAL_THING_CLASSES",
    "SceneClasses",
    "asset_family",
    "gso_category",
    "scene_classes",
    "room_surface_of_rays",
    "layout_classes",
    "semantic_from_instances",
]

CLASS_SCHEMES = ("binary", "families")
"""Values of ``MessyRoomsConfig.classes``."""

BINARY_CLASSES: List[Dict] = [
    {"id": 0, "name": "background", "thing": False},
    {"id": 1, "name": "object", "thing": True},
]
"""The two classes of ``--classes binary`` (Messy Rooms as released)."""

STUFF_CLASSES: Dict[str, int] = {"floor": 0, "wall": 1, "ceiling": 2, "sky": 3}
"""Stuff class ids of ``--classes families`` (the same in every scene)."""

FIRST_THING_ID = 4
"""Thing classes of ``--classes families`` are numbered from here."""

PROCEDURAL_THING_CLASSES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("box", ("box",)),
    ("ball", ("ellipsoid", "capsule")),
    ("cup", ("cylinder", "cone", "compound:mug")),
    ("ring", ("torus",)),
    ("vase", ("vase",)),
    ("bottle", ("bottle",)),
    ("bowl", ("bowl",)),
    ("rock", ("hull", "pebble")),
    ("block", ("extrusion",)),
    ("table", ("compound:table",)),
    ("toy", ("compound:dumbbell", "compound:mushroom", "compound:snowman")),
)
"""``(class name, asset families)`` of the procedural thing classes, in id order from :data:`FIRST_THING_ID`. A
family is a shape family of :data:`~lift3d.generate.procedural.SHAPE_FAMILIES` or ``compound:<template>``."""

GSO_NO_CATEGORY = "object"
"""Class of a Google Scanned Object whose metadata names no category."""

GSO_METADATA = "metadata.pbtxt"
"""File of a GSO object folder holding its category."""

_CATEGORY_PATTERNS = (
    re.compile(r'categories\s*\{\s*first\s*:\s*"([^"]*)"', re.S),
    re.compile(r'annotations\s*\{\s*key\s*:\s*"category"\s*value\s*:\s*"([^"]*)"', re.S),
)


def asset_family(asset: AssetSpec) -> str:
    """Family of a procedural asset: its shape family, or ``compound:<template>`` for compounds."""
    if asset.kind == "compound":
        return f"compound:{asset.params['template']}"
    return asset.kind


def _procedural_family_table() -> Dict[str, int]:
    table = {}
    for k, (_, families) in enumerate(PROCEDURAL_THING_CLASSES):
        for fam in families:
            table[fam] = FIRST_THING_ID + k
    expected = {f for f in SHAPE_FAMILIES if f != "compound"} | {f"compound:{t}" for t in COMPOUND_TEMPLATES}
    if set(table) != expected:  # a new family must be given a class here
        raise RuntimeError(f"PROCEDURAL_THING_CLASSES covers {sorted(table)}, the library has {sorted(expected)}.")
    return table


PROCEDURAL_FAMILY_CLASS: Dict[str, int] = _procedural_family_table()
"""Asset family -> thing class id under ``--classes families``."""


@lru_cache(maxsize=4096)
def gso_category(folder: str) -> Optional[str]:
    """The category of a GSO object folder from its ``metadata.pbtxt`` (None without file or category)."""
    path = Path(folder) / GSO_METADATA
    if not path.is_file():
        return None
    text = path.read_text(errors="replace")
    for pattern in _CATEGORY_PATTERNS:
        found = pattern.search(text)
        if found and found.group(1).strip():
            return found.group(1).strip()
    return None


@dataclass(frozen=True)
class SceneClasses:
    """The class table of one generated scene (module docstring)."""

    classes: Tuple[Tuple[int, str, bool], ...]
    """``(id, name, thing)`` of every class the scene lists, sorted by id."""
    object_class: Tuple[int, ...]
    """Class id of each instance id ``0..N`` (index 0, the background, is unused)."""
    surface_class: Tuple[int, int, int]
    """Class id of the room's floor, wall and ceiling (indexed by ``textures.FLOOR / WALL / CEILING``)."""
    sky_class: int
    """Class id of the sky (rays of the open environments that hit nothing)."""

    def to_json(self) -> List[Dict]:
        """The ``classes`` list of ``transforms.json``."""
        return [{"id": i, "name": n, "thing": t} for i, n, t in self.classes]

    @property
    def thing_ids(self) -> List[int]:
        return [i for i, _, t in self.classes if t]

    @property
    def stuff_ids(self) -> List[int]:
        return [i for i, _, t in self.classes if not t]

    def object_lut(self) -> np.ndarray:
        """``[N + 1]`` int64 class id per instance id (the background entry 0 gets the floor's class)."""
        lut = np.asarray(self.object_class, np.int64).copy()
        lut[0] = self.surface_class[FLOOR]
        return lut

    def semantic(self, instance: np.ndarray, surface: np.ndarray, sky: Optional[np.ndarray] = None) -> np.ndarray:
        """Ground-truth classes of rays: ``instance [...]`` ids (0 = room or sky), ``surface [...]`` room surface
        kind where ``instance == 0`` (ignored elsewhere), ``sky [...]`` bool (rays that hit nothing). Returns
        ``[...]`` int64."""
        inst = np.asarray(instance).astype(np.int64)
        room = np.asarray(self.surface_class, np.int64)[np.clip(np.asarray(surface, np.int64), 0, 2)]
        out = np.where(inst > 0, self.object_lut()[inst], room)
        if sky is not None:
            out = np.where(sky, self.sky_class, out)
        return out


def _binary(num_objects: int) -> SceneClasses:
    classes = tuple((c["id"], c["name"], c["thing"]) for c in BINARY_CLASSES)
    return SceneClasses(classes, (0,) + (1,) * num_objects, (0, 0, 0), 0)


def _stuff(environment: str) -> Tuple[Tuple[int, str, bool], ...]:
    names = ("floor", "sky") if environment in OPEN_ENVIRONMENTS else ("floor", "wall", "ceiling")
    return tuple((STUFF_CLASSES[n], n, False) for n in names)


def _gso_things(assets: str) -> Dict[str, int]:
    """Category name -> thing class id for every object of a GSO folder."""
    names = sorted({gso_category(str(p)) or GSO_NO_CATEGORY for p in discover_objects(assets)})
    return {n: FIRST_THING_ID + k for k, n in enumerate(names)}


def scene_classes(scheme: str, environment: str, assets: str, objects: Sequence[AssetSpec]) -> SceneClasses:
    """The class table of a scene with ``objects`` (the assets of instance ids ``1..N``, in order).

    ``scheme``: ``binary`` or ``families`` (module docstring); ``environment``: ``MessyRoomsConfig.environment``
    (closed rooms have walls and a ceiling, open ones a sky); ``assets``: ``procedural`` or the GSO folder.
    """
    if scheme not in CLASS_SCHEMES:
        raise ValueError(f"Unknown classes scheme {scheme!r}; expected one of {CLASS_SCHEMES}.")
    if scheme == "binary":
        return _binary(len(objects))
    stuff = _stuff(environment)
    if assets == "procedural":
        things = tuple((FIRST_THING_ID + k, name, True) for k, (name, _) in enumerate(PROCEDURAL_THING_CLASSES))
        ids = [PROCEDURAL_FAMILY_CLASS[asset_family(a)] for a in objects]
    else:
        table = _gso_things(assets)
        things = tuple((i, n, True) for n, i in table.items())
        ids = []
        for a in objects:
            if a.kind != GSO_KIND:
                raise ValueError(f"asset of kind {a.kind!r} in a scene drawn from the GSO folder {assets}.")
            ids.append(table[gso_category(str(a.params["path"])) or GSO_NO_CATEGORY])
    surfaces = (STUFF_CLASSES["floor"], STUFF_CLASSES["wall"], STUFF_CLASSES["ceiling"])
    return SceneClasses(stuff + things, (STUFF_CLASSES["floor"],) + tuple(ids), surfaces, STUFF_CLASSES["sky"])


def room_surface_of_rays(origins: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Which face of the closed room box ``[lo, hi]`` rays starting inside it leave through.

    For ray ``o + t d`` the exit parameter along axis ``a`` is ``t_a = (hi_a - o_a) / d_a`` if ``d_a > 0``,
    ``(lo_a - o_a) / d_a`` if ``d_a < 0`` (``inf`` if 0); the ray leaves through the axis of the smallest ``t_a``:
    the floor (``z``, going down), the ceiling (``z``, going up) or a wall (``x`` or ``y``). A ray that sees the
    room (no object in front) hits exactly that face, so this gives the room's ground-truth surface to a renderer
    that does not report which room face a pixel shows (the kubric backend).

    Args:
        origins, dirs: ``[M, 3]`` ray origins (inside the box) and directions.
        lo, hi: ``[3]`` corners of the box.

    Returns:
        ``[M]`` int64 surface kinds ``textures.FLOOR / WALL / CEILING``.
    """
    o, d = np.asarray(origins, np.float64), np.asarray(dirs, np.float64)
    bound = np.where(d > 0, np.asarray(hi, np.float64), np.asarray(lo, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d != 0, (bound - o) / np.where(d != 0, d, 1.0), np.inf)
    axis = np.argmin(t, axis=1)
    going_up = d[np.arange(len(d)), 2] > 0
    return np.where(axis == 2, np.where(going_up, CEILING, FLOOR), WALL).astype(np.int64)


def layout_classes(layout, cfg) -> SceneClasses:
    """:func:`scene_classes` of a :class:`~lift3d.generate.layout.SceneLayout` generated with ``cfg`` (a
    :class:`~lift3d.generate.config.MessyRoomsConfig`)."""
    return scene_classes(cfg.classes, cfg.environment, cfg.assets, [o.asset for o in layout.objects])


def semantic_from_instances(layout, classes: SceneClasses, instance: np.ndarray) -> np.ndarray:
    """Ground-truth classes of views rendered without surface information (the kubric backend's cryptomatte
    instance maps): objects get their class, room pixels the class of the room face their pixel-centre ray
    leaves the box through (:func:`room_surface_of_rays`; closed rooms and pinhole cameras only).

    Args:
        layout: the :class:`~lift3d.generate.layout.SceneLayout` (cameras, intrinsics, room box).
        classes: its :class:`SceneClasses`.
        instance: ``[V, H, W]`` ground-truth instance ids (0 = room).

    Returns:
        ``[V, H, W]`` uint8 class ids.
    """
    K = layout.intrinsics
    V, H, W = instance.shape
    x, y = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    d_cam = np.stack([(x - K.cx) / K.fx, -(y - K.cy) / K.fy, -np.ones_like(x)], -1).reshape(-1, 3)
    out = np.zeros((V, H, W), np.uint8)
    for v in range(V):
        c2w = layout.camera_to_world[v]
        dirs = d_cam @ c2w[:3, :3].T
        origins = np.broadcast_to(c2w[:3, 3], dirs.shape)
        surface = room_surface_of_rays(origins, dirs, layout.room_min, layout.room_max)
        out[v] = classes.semantic(instance[v].reshape(-1), surface).reshape(H, W)
    return out
