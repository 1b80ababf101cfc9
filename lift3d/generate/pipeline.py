"""The Messy Rooms generation pipeline: check the backend, then layout -> rendering -> simulated segmenter -> write.

Messy Rooms is the benchmark of Contrastive Lift (Bhalgat et al., NeurIPS 2023), Sec. 4 and appendix A. The stages:
:func:`~lift3d.generate.layout.make_layout` (assets, physics, cameras; renderer-independent) -> :func:`render`
(``fast``: :func:`~lift3d.generate.fast_backend.render_views`; ``kubric``:
:func:`~lift3d.generate.kubric_backend.render_views_kubric`, optional extra ``lift3d[generate]``) ->
:func:`run_segmenter` (:func:`~lift3d.generate.segmenter.simulate_segmenter` per view) ->
:func:`~lift3d.generate.writer.write_scene`. :func:`generate_scene` runs them all.

The renderers, the kubric physics and the writer are imported inside the functions that use them, so importing
this module (and ``lift3d.generate``) loads neither open3d, kubric nor Blender.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from lift3d.generate.classes import SceneClasses, layout_classes, scene_classes
from lift3d.generate.config import MessyRoomsConfig
from lift3d.generate.layout import SceneLayout, make_layout
from lift3d.generate.segmenter import SEGMENTER_PRESETS, SegmenterClasses, simulate_segmenter
from lift3d.generate.views import RenderedViews, SegmenterOutputs

__all__ = [
    "SEGMENTER_STREAM",
    "KubricBackendNotInstalled",
    "check_backend",
    "settle_function",
    "render",
    "segmenter_rng",
    "run_segmenter",
    "generate_scene",
]

SEGMENTER_STREAM = 1
"""Second entry of the segmenter's seed ``[cfg.seed, SEGMENTER_STREAM, view]``, so the segmenter's randomness never
shifts the layout's (which uses ``default_rng(cfg.seed)``)."""


class KubricBackendNotInstalled(NotImplementedError):
    """Raised when ``backend='kubric'`` (or ``kubric.physics='kubric'``) is asked for but the optional ``generate``
    extra (kubric, bpy 4.2, ...) is not installed."""


def _needs_kubric(cfg: MessyRoomsConfig) -> bool:
    return cfg.backend == "kubric" or cfg.kubric.physics == "kubric"


def check_backend(cfg: MessyRoomsConfig) -> None:
    """Raise a clear error if ``cfg.backend`` (or ``cfg.kubric.physics``) cannot run here."""
    if cfg.backend not in ("fast", "kubric"):
        raise ValueError(f"Unknown backend {cfg.backend!r}; expected 'fast' or 'kubric'.")
    if cfg.kubric.physics not in ("layout", "kubric"):
        raise ValueError(f"Unknown kubric.physics {cfg.kubric.physics!r}; expected 'layout' or 'kubric'.")
    if cfg.assets != "procedural":
        from lift3d.generate.gso import discover_objects

        discover_objects(cfg.assets)  # GSOError (a ValueError) naming the folder if it holds no GSO objects
    if _needs_kubric(cfg):
        from lift3d.generate.kubric_backend import KubricUnavailable, check_available

        try:
            check_available()
        except KubricUnavailable as err:
            raise KubricBackendNotInstalled(str(err)) from err


def settle_function(cfg: MessyRoomsConfig):
    """The physics of ``cfg``: None (``make_layout``'s own pybullet settle) or kubric's PyBullet simulator."""
    if cfg.kubric.physics == "kubric":
        from lift3d.generate.kubric_backend import settle_with_kubric

        return settle_with_kubric
    return None


def render(
    layout: SceneLayout, cfg: MessyRoomsConfig, progress: Optional[Callable[[int, int], None]] = None
) -> RenderedViews:
    """Render ``layout`` with ``cfg.backend`` (``fast``: open3d ray casting; ``kubric``: Blender Cycles)."""
    check_backend(cfg)
    if cfg.backend == "kubric":
        from lift3d.generate.kubric_backend import render_views_kubric

        return render_views_kubric(layout, cfg, progress)
    from lift3d.generate.fast_backend import render_views

    return render_views(layout, cfg, progress)


def segmenter_rng(seed: int, view: int) -> np.random.Generator:
    """Independent generator of the simulated segmenter for one view: ``default_rng([seed, 1, view])``."""
    return np.random.default_rng([seed, SEGMENTER_STREAM, view])


def run_segmenter(
    views: RenderedViews,
    cfg: MessyRoomsConfig,
    progress: Optional[Callable[[int, int], None]] = None,
    classes: Optional[SceneClasses] = None,
) -> SegmenterOutputs:
    """Simulate the 2D segmenter (preset ``cfg.segmenter_noise``) on every view's ground truth, in the scene's
    class space ``classes`` (:func:`~lift3d.generate.classes.layout_classes`; may be left out for
    ``cfg.classes == "binary"``)."""
    if cfg.segmenter_noise not in SEGMENTER_PRESETS:
        raise ValueError(
            f"Unknown segmenter_noise {cfg.segmenter_noise!r}; expected one of {sorted(SEGMENTER_PRESETS)}."
        )
    if classes is None:
        if cfg.classes != "binary":
            raise ValueError(f"run_segmenter: classes={cfg.classes!r} needs the scene's table, layout_classes(...).")
        classes = scene_classes("binary", cfg.environment, "procedural", [])
    space = SegmenterClasses(tuple(classes.thing_ids), tuple(classes.stuff_ids))
    noise = SEGMENTER_PRESETS[cfg.segmenter_noise]
    V = len(views.instance)
    out = SegmenterOutputs(
        np.zeros_like(views.instance, np.uint16),
        np.zeros_like(views.semantic, np.uint8),
        np.zeros(views.instance.shape, np.float32),
    )
    for v in range(V):
        out.instance[v], out.semantic[v], out.confidence[v] = simulate_segmenter(
            views.instance[v], views.semantic[v], segmenter_rng(cfg.seed, v), noise, space
        )
        if progress is not None:
            progress(v + 1, V)
    return out


@contextmanager
def _stages(enabled: bool) -> Iterator[Callable[[str], Callable[[int, int], None]]]:
    """Yield ``stage(name) -> progress(done, total)`` backed by one rich progress bar per stage."""
    if not enabled:
        yield lambda name: lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        units = {
            "physics": "steps",
            "rendering": "views",
            "segmenter": "views",
            "writing": "frames",
            "flow": "frames",
            "lidar": "scans",
        }

        def stage(name: str) -> Callable[[int, int], None]:
            task = bar.add_task(name, total=None, unit=units.get(name, ""))

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return update

        yield stage


def generate_scene(
    cfg: MessyRoomsConfig,
    out_dir: Path,
    progress: bool = True,
    *,
    overwrite: bool = False,
    release_dir: Optional[Path] = None,
) -> Path:
    """Generate one Messy Rooms scene into ``out_dir`` (lift3d scene format) and return ``out_dir``.

    Stages: layout and physics -> rendering (``cfg.backend``) -> simulated 2D segmenter -> atomic write.
    ``progress`` shows one rich progress bar per stage. Raises ``FileExistsError`` if ``out_dir`` exists, is not
    empty and ``overwrite`` is False, and :class:`KubricBackendNotInstalled` for ``backend='kubric'`` without the
    optional ``generate`` extra. With ``release_dir`` the same frames are also written there in the released
    Messy Rooms layout (``lift3d.data.writers.messy_rooms``; readable by ``load_scene`` and ``lift3d fit``).
    """
    from lift3d.generate.writer import check_output_folder, write_release_layout, write_scene

    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite)  # fail before the (slow) physics runs
    if release_dir is not None:
        release_dir = Path(release_dir)
        if release_dir.resolve() == out_dir.resolve():
            raise ValueError(f"release_dir {release_dir} must differ from the scene folder {out_dir}.")
        if cfg.distortion is not None:
            raise ValueError(
                f"release_dir {release_dir}: the released Messy Rooms layout has no lens distortion; leave out "
                "--release-out or --distortion."
            )
        check_output_folder(release_dir, overwrite)
    check_backend(cfg)

    t0 = time.perf_counter()
    with _stages(progress) as stage:
        layout = make_layout(cfg, stage("physics"), settle_fn=settle_function(cfg))
        plan = None
        if cfg.trajectory == "video":  # docs/sequence-format.md
            from lift3d.generate.trajectory import video_layout

            layout, plan = video_layout(layout, cfg)
        views = render(layout, cfg, stage("rendering"))
        segments = run_segmenter(views, cfg, stage("segmenter"), layout_classes(layout, cfg))
        num_train, extra_files = None, None
        if plan is not None:
            from lift3d.generate.sequence import clip_split, make_sequence_outputs, write_sequence_files

            sequence = make_sequence_outputs(layout, views, plan, cfg, stage)
            num_train = clip_split(len(plan.clips), cfg.test_fraction) * cfg.video.frames_per_clip

            def extra_files(folder: Path) -> None:
                write_sequence_files(folder, sequence, cfg)

        write_scene(
            out_dir,
            layout,
            views,
            segments,
            cfg,
            overwrite=overwrite,
            progress=stage("writing"),
            num_train=num_train,
            extra_files=extra_files,
        )
        if release_dir is not None:
            write_release_layout(release_dir, layout, views, segments, cfg, overwrite=overwrite)
    if progress:
        from rich import print as rprint

        rprint(
            f"Wrote {out_dir} ({len(layout.objects)} objects, {layout.num_views} views, "
            f"{cfg.resolution}x{cfg.resolution}) in {time.perf_counter() - t0:.1f} s"
        )
    return out_dir
