"""The ``lift3d`` command line (one tyro entry point; ``lift3d <command> --help`` documents every option).

``lift3d fit`` resolves the configuration here, never in the engine: the preset (``--preset``) is read first and its
values become the defaults of every nested option (``--model.embedding-dim 8``, ``--losses.num-slots 200``,
``--optim.iterations 2000``; ``lift3d fit --preset NAME --help`` lists them with that preset's values), then
the ``--set a.b=value`` overrides and ``--iterations`` are applied on top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from lift3d.config_io import apply_overrides
from lift3d.engine.config import FitConfig
from lift3d.models.inference_render import HEAD_SAMPLES_DEFAULT
from lift3d.presets import PRESETS, get_preset

PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]


@dataclass
class Fit:
    """Fit a neural field (radiance + semantic + fast/slow instance embeddings) to a scene, then cluster the
    embeddings into instances. Writes RUN/config.json, RUN/checkpoints, RUN/clusters.json and RUN/fit.json.
    Every field of the configuration is an option below; its default is the chosen preset's value."""

    data: tyro.conf.Positional[Path]
    """Scene folder holding transforms.json (see docs/scene-format.md)."""
    out: Path = Path("runs/latest")
    """Run folder to write."""
    preset: PresetName = "cpu-small"
    """Configuration preset (lift3d/presets.py), e.g. contrastive-lift, vanilla, panoptic-lifting, cpu-small,
    cpu-small-vanilla, tiny. Read before the other options: its values are their defaults."""
    iterations: Optional[int] = None
    """Shortcut for --optim.iterations (loss onsets are kept as they are)."""
    set: tuple[str, ...] = ()
    """Overrides as dotted key=value, applied last, e.g. --set losses.kernel=exp_distance model.embedding_dim=8
    (kept for scripts; the typed options below are checked and documented, prefer them)."""
    resume: bool = False
    """Continue from RUN/checkpoints/latest.pt (atomic checkpoints are written every checkpoint_every steps; the
    previous one is kept as previous.pt). The run's configuration must be the one asked for (only optim.iterations,
    device, threads, checkpoint_every, render_chunk and clustering settings may change): a mismatch is refused
    before any file is touched. A finished run is left as it was."""
    view: bool = False
    """Show the fit live in the browser viewer (lift3d[viewer]) and keep serving the finished run's viewer."""
    view_host: str = "127.0.0.1"
    """Address of the --view viewer (see `lift3d view --help`)."""
    view_port: int = 7007
    """Port of the --view viewer."""
    format: Optional[str] = None
    """Scene reader (transforms_json, colmap, panoptic_lifting, messy_rooms_release); default: detected. Recorded
    in the run, like --downscale and --skip-bad-frames, so render / eval / view / export load the scene the same way."""
    downscale: int = 1
    """Fit the images at 1/N of their resolution (nerfstudio's images_N folders when present, else resampled)."""
    skip_bad_frames: bool = False
    """Drop frames whose files are missing or unreadable (listed in the log) instead of refusing the scene."""
    config: Annotated[FitConfig, tyro.conf.arg(name="")] = field(default_factory=lambda: get_preset("cpu-small"))
    """The fit's configuration (defaults: the preset's)."""

    def resolved_config(self) -> FitConfig:
        """The configuration this command fits with: the preset, the typed options, --set, then --iterations."""
        overrides = list(self.set)
        if self.iterations is not None:
            overrides.append(f"optim.iterations={self.iterations}")
        return apply_overrides(self.config, overrides)

    def run_command(self) -> None:
        from lift3d.data.loading import SceneOptions
        from lift3d.pipeline import fit_scene

        options = SceneOptions(format=self.format, downscale=self.downscale, skip_bad_frames=self.skip_bad_frames)
        live = None
        if self.view:
            from lift3d.viewer.app import ViewerConfig
            from lift3d.viewer.live import FitViewer

            live = FitViewer(options.load(self.data), ViewerConfig(host=self.view_host, port=self.view_port))
        summary = fit_scene(
            self.data,
            self.out,
            self.resolved_config(),
            resume=self.resume,
            preset=self.preset,
            callbacks=(live,) if live is not None else (),
            scene_options=options,
        )
        print(
            f"fit done: {summary['iterations']} iterations in {summary['seconds']} s "
            f"({summary['iterations_per_second']} it/s), clustering {summary['clustering_seconds']} s -> {self.out}"
        )
        if live is not None:
            live.finish(self.out).serve_forever()


def parse_fit(args: list[str]) -> Fit:
    """``lift3d fit ARGS``: the preset named by ``--preset`` (default cpu-small) gives the defaults of every
    configuration option, then the options given override them."""
    name = _preset_in(args)
    default = Fit(data=tyro.MISSING, preset=name, config=get_preset(name)) if name in PRESETS else None
    return tyro.cli(
        Fit, args=args, default=default, prog="lift3d fit", description=Fit.__doc__ and " ".join(Fit.__doc__.split())
    )


def _preset_in(args: list[str]) -> str:
    """The value of the last ``--preset NAME`` / ``--preset=NAME`` of ``args`` (cpu-small when absent)."""
    name = "cpu-small"
    for i, a in enumerate(args):
        if a == "--preset" and i + 1 < len(args):
            name = args[i + 1]
        elif a.startswith("--preset="):
            name = a.split("=", 1)[1]
    return name


@dataclass
class Render:
    """Render the views of a split with a fitted run: RGB, semantic PNG, 16-bit instance PNG, depth and an
    embedding visualisation per view, under RUN/renders/SPLIT/."""

    run: tyro.conf.Positional[Path]
    """Run folder written by `lift3d fit`."""
    split: Literal["test", "train", "all"] = "test"
    """Which views to render."""
    data: Optional[Path] = None
    """Scene folder (default: the one the run was fitted on)."""
    device: str = "auto"
    """auto, cpu or cuda."""
    exact: bool = False
    """Render with the training-time path (density and colour at every occupied sample, heads by the model's
    rule) instead of the fast one (empty-space skipping, early ray termination, colour and heads only where weights
    matter); docs/results/own-data/render-speed.md compares them."""
    head_samples: int = HEAD_SAMPLES_DEFAULT
    """Fast path: the semantic and instance heads are evaluated at each ray's this many heaviest samples (weights
    rescaled to the ray's opacity); 0 = the model's own rule (the exact path's heads, slower)."""

    def run_command(self) -> None:
        from lift3d.models import InferenceRenderConfig
        from lift3d.pipeline import render_run

        fast = InferenceRenderConfig(head_samples=self.head_samples)
        render_run(self.run, self.split, self.data, self.device, exact=self.exact, fast=fast)


@dataclass
class Eval:
    """Score a run's renders against the scene's ground truth: PQ^scene (+ SQ, RQ), per-frame PQ, mIoU, PSNR.
    On a scene without ground truth: PSNR and the 2D consistency (per-frame PQ of the rendered instances against
    the views' own 2D segments). Writes RUN/metrics.json and prints a table (renders first if RUN/renders/SPLIT is
    missing)."""

    run: tyro.conf.Positional[Path]
    """Run folder written by `lift3d fit`."""
    split: Literal["test", "train", "all"] = "test"
    """Which views to evaluate."""
    data: Optional[Path] = None
    """Scene folder (default: the one the run was fitted on)."""

    def run_command(self) -> None:
        from lift3d.pipeline import evaluate_run

        evaluate_run(self.run, self.split, self.data)


@dataclass
class View:
    """Open a fitted run in the browser (viser): training cameras, labelled surface points, live renders of the
    field, click an object to select it, hide / recolour instances, re-cluster and save clusters.json, export.
    Listens on localhost; on a headless server forward the port: ssh -L 7007:localhost:7007 SERVER."""

    run: tyro.conf.Positional[Path]
    """Run folder written by `lift3d fit`."""
    data: Optional[Path] = None
    """Scene folder (default: the one the run was fitted on)."""
    host: str = "127.0.0.1"
    """Address to listen on; 0.0.0.0 exposes the viewer to the network (a warning is printed)."""
    port: int = 7007
    """Port of the web page."""
    render_height: int = 128
    """Height of the refined live render (raise it on a GPU)."""
    device: str = "auto"
    """auto, cpu or cuda."""

    def run_command(self) -> None:
        from lift3d.export.run import load_export_inputs
        from lift3d.viewer.app import RunViewer, ViewerConfig

        cfg = ViewerConfig(host=self.host, port=self.port, render_height=self.render_height)
        RunViewer(load_export_inputs(self.run, self.data, self.device), cfg).serve_forever()


@dataclass
class Export:
    """Write a fitted run's instances to files other tools read (docs/export-format.md): per-instance PLY point
    clouds with colour, instance and class per vertex, a labelled scene PLY, marching-cubes meshes (PLY / OBJ /
    GLB) labelled per face, instances.json (class, centroid, boxes, point count, views) and .npy label arrays,
    all in the scene's world frame and units."""

    run: tyro.conf.Positional[Path]
    """Run folder written by `lift3d fit` (it must have clusters.json)."""
    out: Path
    """Export folder to write."""
    what: Literal["points", "mesh", "both"] = "both"
    """Point clouds, meshes or both."""
    instances: str = "all"
    """`all` or comma-separated instance ids, e.g. 3,7."""
    format: Literal["ply", "obj", "glb"] = "ply"
    """Mesh file format."""
    data: Optional[Path] = None
    """Scene folder (default: the one the run was fitted on)."""
    pixel_stride: int = 1
    """Every n-th pixel of the training views gives a surface point."""
    mesh_resolution: int = 96
    """Marching-cubes grid cells per axis of the field's box."""
    device: str = "auto"
    """auto, cpu or cuda."""

    def run_command(self) -> None:
        from lift3d.export import ExportConfig, export_run, load_export_inputs, parse_instance_ids

        opened = load_export_inputs(self.run, self.data, self.device)
        ids = parse_instance_ids(self.instances, opened.instance_ids)
        cfg = ExportConfig(pixel_stride=self.pixel_stride, mesh_resolution=self.mesh_resolution)
        export_run(opened, self.out, self.what, ids, self.format, cfg, progress=True)


@dataclass
class Demo:
    """Generate a small built-in scene, fit it with cpu-small, render and evaluate the held-out views, and write
    OUT/metrics.json (lifted vs the simulated 2D segmenter's raw masks) and OUT/contact_sheet.png."""

    out: Path = Path("outputs/demo")
    """Output folder (scene/, run/, metrics.json, contact_sheet.png)."""
    objects: int = 10
    """Number of objects in the generated scene."""
    views: int = 40
    """Number of views."""
    resolution: int = 96
    """Image width and height."""
    segmenter_noise: Literal["clean", "detic-like", "detic-real", "heavy"] = "detic-like"
    """Noise of the simulated 2D segmenter."""
    preset: PresetName = "cpu-small"
    """Fit preset."""
    seed: int = 0
    """Seed of the scene and the fit."""

    def run_command(self) -> None:
        from lift3d.demo import run_demo

        run_demo(self)


def entrypoint(argv: Optional[list[str]] = None) -> None:
    import sys

    from lift3d.data.segments_import import SegmentsImport
    from lift3d.generate.cli import GenerateMessyRooms, GenerateMessyRoomsBatch
    from lift3d.segmenters.cli import SegmentsPredict
    from lift3d.twod.cli import TwodEval, TwodEvalFeatures, TwodPredict, TwodPretrain, TwodTrain

    args = _alias_generate(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LIFT3D_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    if args and args[0] == "fit":
        _run_reporting_errors(parse_fit(args[1:]).run_command, debug)
        return
    sub = tyro.extras.subcommand_cli_from_dict(
        {
            "fit": Fit,
            "render": Render,
            "eval": Eval,
            "view": View,
            "export": Export,
            "demo": Demo,
            "generate-messy-rooms": GenerateMessyRooms,
            "generate-messy-rooms-batch": GenerateMessyRoomsBatch,
            "segments-import": SegmentsImport,
            "segments-predict": SegmentsPredict,
            "twod-train": TwodTrain,
            "twod-eval": TwodEval,
            "twod-predict": TwodPredict,
            "twod-pretrain": TwodPretrain,
            "twod-eval-features": TwodEvalFeatures,
        },
        description="lift3d: lift inconsistent 2D instance masks into a consistent 3D instance field.",
        args=args,
    )
    _run_reporting_errors(sub.run_command, debug)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message already names the file, the frame and the fix: printed as one line, no traceback."""
    from lift3d.config_io import ConfigOverrideError
    from lift3d.data.scene import SceneFormatError
    from lift3d.data.segments_import import SegmentsImportError
    from lift3d.engine.run_dir import RunFileError
    from lift3d.engine.run_lock import RunLockedError
    from lift3d.export.run import InstanceSelectionError
    from lift3d.fanout import RayUnavailableError
    from lift3d.generate.batch import BatchGenerationError, BatchSpecError
    from lift3d.geometry.bounds import BoundsError
    from lift3d.geometry.cameras import UnsupportedCameraError
    from lift3d.io.atomic import DiskFullError
    from lift3d.pipeline.runs import ResumeMismatchError, StaleResultsError
    from lift3d.segmenters.base import SegmenterError
    from lift3d.twod.cross_modal_config import CrossModalError
    from lift3d.twod.dataset import MissingGroundTruthError
    from lift3d.twod.model import TwodModelError
    from lift3d.twod.predict import PredictError
    from lift3d.twod.pretrain import PretrainError
    from lift3d.twod.pretrain_data import PretrainDataError
    from lift3d.twod.train import TwodTrainError

    return (
        ConfigOverrideError,
        SceneFormatError,
        MissingGroundTruthError,
        PredictError,
        TwodModelError,
        InstanceSelectionError,
        TwodTrainError,
        PretrainError,
        PretrainDataError,
        CrossModalError,
        SegmentsImportError,
        RunFileError,
        RunLockedError,
        DiskFullError,
        ResumeMismatchError,
        StaleResultsError,
        SegmenterError,
        UnsupportedCameraError,
        BoundsError,
        RayUnavailableError,
        BatchSpecError,
        BatchGenerationError,
    )


def _run_reporting_errors(command, debug: bool = False) -> None:
    """Run a subcommand: Ctrl-C exits 130 with one line (a fit saves a checkpoint first); the user errors of
    :func:`_user_errors` print their message and exit 2. ``--debug`` (anywhere on the command line) or
    ``LIFT3D_DEBUG=1`` shows the traceback of a user error too; any other exception is a bug in lift3d and keeps its
    traceback, followed by one line saying so."""
    import sys

    try:
        command()
    except KeyboardInterrupt:
        print("lift3d: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except _user_errors() as err:
        if debug:
            raise
        print(f"lift3d: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            "lift3d: internal error (a bug in lift3d, not in your data or options): please report it with the "
            "traceback above and the command line.",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


def _alias_generate(argv: list[str]) -> list[str]:
    """Accept ``lift3d generate messy-rooms ...`` / ``lift3d segments import ...`` / ``lift3d twod train ...`` as the
    hyphenated commands."""
    if len(argv) >= 2 and argv[0] in ("generate", "segments", "twod") and not argv[1].startswith("-"):
        return [f"{argv[0]}-{argv[1]}"] + argv[2:]
    return argv


if __name__ == "__main__":
    entrypoint()
