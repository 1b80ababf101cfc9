"""Messy Rooms scene generation (Contrastive Lift (Bhalgat et al., NeurIPS 2023), Sec. 4 and appendix A).

Pipeline (:mod:`lift3d.generate.pipeline`): :func:`~lift3d.generate.layout.make_layout` (assets, physics, cameras;
renderer-independent) -> a renderer (``fast``: :func:`~lift3d.generate.fast_backend.render_views`; ``kubric``:
:func:`~lift3d.generate.kubric_backend.render_views_kubric`, optional extra ``lift3d[generate]``) ->
:func:`~lift3d.generate.segmenter.simulate_segmenter` per view -> :func:`~lift3d.generate.writer.write_scene`.

Modules: ``config`` (the :class:`MessyRoomsConfig`), ``mesh`` (asset and mesh types), ``procedural`` and ``gso``
(the two asset libraries), ``assets`` (dispatch between them), ``textures``, ``layout``, ``fast_backend`` and
``kubric_backend`` (renderers), ``segmenter``, ``writer``, ``pipeline`` (:func:`generate_scene`) and ``cli``.

>>> from pathlib import Path
>>> from lift3d.generate import MessyRoomsConfig, generate_scene
>>> generate_scene(MessyRoomsConfig(num_objects=10, num_views=40, resolution=96), Path("scenes/demo"))  # doctest: +SKIP
"""

from __future__ import annotations

from lift3d.generate.config import KubricConfig, MessyRoomsConfig, PhysicsConfig, config_from_dict, load_config
from lift3d.generate.layout import SceneLayout, make_layout
from lift3d.generate.pipeline import (
    SEGMENTER_STREAM,
    KubricBackendNotInstalled,
    check_backend,
    generate_scene,
    render,
    run_segmenter,
    segmenter_rng,
    settle_function,
)
from lift3d.generate.segmenter import SEGMENTER_PRESETS, SegmenterNoise, simulate_segmenter
from lift3d.generate.views import RenderedViews, SegmenterOutputs

__all__ = [
    "MessyRoomsConfig",
    "PhysicsConfig",
    "SceneLayout",
    "SegmenterNoise",
    "SEGMENTER_PRESETS",
    "simulate_segmenter",
    "RenderedViews",
    "SegmenterOutputs",
    "KubricBackendNotInstalled",
    "check_backend",
    "make_layout",
    "render",
    "run_segmenter",
    "generate_scene",
    "segmenter_rng",
    "load_config",
    "config_from_dict",
    "settle_function",
    "KubricConfig",
    "SEGMENTER_STREAM",
]
