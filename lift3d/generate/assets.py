"""Asset libraries of the Messy Rooms generator behind one door: draw an asset, build (and cache) its mesh.

``MessyRoomsConfig.assets`` picks the library: ``"procedural"`` (:mod:`lift3d.generate.procedural`: boxes,
solids of revolution, extrusions, compounds, ... with procedural solid textures) or the path of a local Google
Scanned Objects folder (:mod:`lift3d.generate.gso`: ``kind == "gso"`` specs, meshes with per-corner UVs and a
texture image). The types (:class:`~lift3d.generate.mesh.AssetSpec`, :class:`~lift3d.generate.mesh.Mesh`) live in
:mod:`lift3d.generate.mesh`; both libraries import only that module (and :mod:`lift3d.generate.textures`), never
this one.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Tuple

import numpy as np

from lift3d.generate.gso import KIND as GSO_KIND
from lift3d.generate.gso import build_gso_mesh, sample_gso_asset
from lift3d.generate.mesh import AssetSpec, Mesh
from lift3d.generate.procedural import build_procedural_mesh, sample_procedural_asset

__all__ = ["sample_asset", "build_mesh"]


def sample_asset(rng: np.random.Generator, size_range: Tuple[float, float], library: str = "procedural") -> AssetSpec:
    """Draw a random asset: family (uniform), unit-scale parameters, size in ``size_range`` and a texture.

    ``library`` is ``MessyRoomsConfig.assets``: ``"procedural"``
    (:func:`lift3d.generate.procedural.sample_procedural_asset`), or the path of a local Google Scanned Objects
    folder, from which an object is drawn uniformly (:func:`lift3d.generate.gso.sample_gso_asset`).
    """
    if library != "procedural":
        return sample_gso_asset(rng, size_range, library)
    return sample_procedural_asset(rng, size_range)


def build_mesh(spec: AssetSpec) -> Mesh:
    """Deterministically build the mesh of ``spec``: centred on its convex hull's centroid, largest extent = size.

    Meshes are cached (procedural ones by family, parameters and size; GSO ones by folder and size) and read-only.
    """
    if spec.kind == GSO_KIND:
        return build_gso_mesh(spec.params, spec.size)
    key = json.dumps({"kind": spec.kind, "size": spec.size, "params": spec.params}, sort_keys=True)
    return _build_cached(key)


@lru_cache(maxsize=4096)
def _build_cached(key: str) -> Mesh:
    """Procedural mesh of a JSON key ``{"kind", "size", "params"}`` (the key makes the spec hashable)."""
    d = json.loads(key)
    return build_procedural_mesh(d["kind"], d["params"], d["size"])
