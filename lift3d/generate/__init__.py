"""Messy Rooms scene generation (paper 004, section 4 and appendix A).

Pipeline: :func:`~lift3d.generate.layout.make_layout` (assets, physics, cameras; renderer-independent) ->
a renderer (``fast``: :func:`~lift3d.generate.fast_backend.render_views`; ``kubric``: separate package) ->
:func:`~lift3d.generate.segmenter.simulate_segmenter` per view -> :func:`~lift3d.generate.writer.write_scene`.

>>> from pathlib import Path
>>> from lift3d.generate import MessyRoomsConfig, generate_scene
>>> generate_scene(MessyRoomsConfig(num_objects=10, num_views=40, resolution=96), Path("scenes/demo"))  # doctest: +SKIP
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from lift3d.generate.config import MessyRoomsConfig, PhysicsConfig, config_from_dict, load_config
from lift3d.generate.layout import SceneLayout, make_layout
from lift3d.generate.segmenter import SEGMENTER_PRESETS, SegmenterNoise, simulate_segmenter
from lift3d.generate.views import RenderedViews, SegmenterOutputs

__all__ = [
    "MessyRoomsConfig", "PhysicsConfig", "SceneLayout", "SegmenterNoise", "SEGMENTER_PRESETS", "RenderedViews",
    "SegmenterOutputs", "KubricBackendNotInstalled", "check_backend", "make_layout", "render", "run_segmenter",
    "generate_scene", "segmenter_rng", "load_config", "config_from_dict",
]

SEGMENTER_STREAM = 1
"""Second entry of the segmenter's seed ``[cfg.seed, SEGMENTER_STREAM, view]``, so the segmenter's randomness never
shifts the layout's (which uses ``default_rng(cfg.seed)``)."""


class KubricBackendNotInstalled(NotImplementedError):
    """Raised when ``backend='kubric'`` is asked for but the kubric backend is not available."""


def check_backend(cfg: MessyRoomsConfig) -> None:
    """Raise a clear error if ``cfg.backend`` cannot render here."""
    if cfg.backend == "kubric":
        raise KubricBackendNotInstalled(
            "The kubric backend of the Messy Rooms generator is not installed in this version of lift3d. "
            "Use backend='fast' (open3d ray casting), which renders the same layout and cameras."
        )
    if cfg.backend != "fast":
        raise ValueError(f"Unknown backend {cfg.backend!r}; expected 'fast' or 'kubric'.")
    if cfg.assets != "procedural":
        raise ValueError(f"assets={cfg.assets!r} is not available with the fast backend; use assets='procedural'.")


def render(layout: SceneLayout, cfg: MessyRoomsConfig,
           progress: Optional[Callable[[int, int], None]] = None) -> RenderedViews:
    """Render ``layout`` with ``cfg.backend``."""
    check_backend(cfg)
    from lift3d.generate.fast_backend import render_views

    return render_views(layout, cfg, progress)


def segmenter_rng(seed: int, view: int) -> np.random.Generator:
    """Independent generator of the simulated segmenter for one view: ``default_rng([seed, 1, view])``."""
    return np.random.default_rng([seed, SEGMENTER_STREAM, view])


def run_segmenter(views: RenderedViews, cfg: MessyRoomsConfig,
                  progress: Optional[Callable[[int, int], None]] = None) -> SegmenterOutputs:
    """Simulate the 2D segmenter (preset ``cfg.segmenter_noise``) on every view's ground truth."""
    if cfg.segmenter_noise not in SEGMENTER_PRESETS:
        raise ValueError(f"Unknown segmenter_noise {cfg.segmenter_noise!r}; expected one of "
                         f"{sorted(SEGMENTER_PRESETS)}.")
    noise = SEGMENTER_PRESETS[cfg.segmenter_noise]
    V = len(views.instance)
    out = SegmenterOutputs(np.zeros_like(views.instance, np.uint16), np.zeros_like(views.semantic, np.uint8),
                           np.zeros(views.instance.shape, np.float32))
    for v in range(V):
        out.instance[v], out.semantic[v], out.confidence[v] = simulate_segmenter(
            views.instance[v], views.semantic[v], segmenter_rng(cfg.seed, v), noise)
        if progress is not None:
            progress(v + 1, V)
    return out


@contextmanager
def _stages(enabled: bool) -> Iterator[Callable[[str], Callable[[int, int], None]]]:
    """Yield ``stage(name) -> progress(done, total)`` backed by one rich progress bar per stage."""
    if not enabled:
        yield lambda name: (lambda done, total: None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    with Progress(TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TimeRemainingColumn()) as bar:
        units = {"physics": "steps", "rendering": "views", "segmenter": "views", "writing": "frames"}

        def stage(name: str) -> Callable[[int, int], None]:
            task = bar.add_task(name, total=None, unit=units.get(name, ""))

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return update

        yield stage


def generate_scene(cfg: MessyRoomsConfig, out_dir: Path, progress: bool = True, *, overwrite: bool = False) -> Path:
    """Generate one Messy Rooms scene into ``out_dir`` (lift3d scene format) and return ``out_dir``.

    Stages: layout and physics -> rendering (``cfg.backend``) -> simulated 2D segmenter -> atomic write.
    ``progress`` shows one rich progress bar per stage. Raises ``FileExistsError`` if ``out_dir`` exists, is not
    empty and ``overwrite`` is False, and :class:`KubricBackendNotInstalled` for ``backend='kubric'``.
    """
    from lift3d.generate.writer import check_output_folder, write_scene

    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite)  # fail before the (slow) physics runs
    check_backend(cfg)

    t0 = time.perf_counter()
    with _stages(progress) as stage:
        layout = make_layout(cfg, stage("physics"))
        views = render(layout, cfg, stage("rendering"))
        segments = run_segmenter(views, cfg, stage("segmenter"))
        write_scene(out_dir, layout, views, segments, cfg, overwrite=overwrite, progress=stage("writing"))
    if progress:
        from rich import print as rprint

        rprint(f"Wrote {out_dir} ({len(layout.objects)} objects, {layout.num_views} views, "
               f"{cfg.resolution}x{cfg.resolution}) in {time.perf_counter() - t0:.1f} s")
    return out_dir
