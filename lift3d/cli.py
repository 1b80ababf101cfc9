"""The ``lift3d`` command line (one tyro entry point; ``lift3d <command> --help`` documents every option)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import tyro

from lift3d.configs import PRESETS

PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]


@dataclass
class Fit:
    """Fit a neural field (radiance + semantic + fast/slow instance embeddings) to a scene, then cluster the
    embeddings into instances. Writes RUN/checkpoints, RUN/clusters.json and RUN/fit.json."""

    data: tyro.conf.Positional[Path]
    """Scene folder holding transforms.json (see docs/scene-format.md)."""
    out: Path = Path("runs/latest")
    """Run folder to write."""
    preset: PresetName = "cpu-small"
    """Configuration preset (lift3d/configs.py): contrastive-lift, vanilla, cpu-small, cpu-small-vanilla, tiny."""
    iterations: Optional[int] = None
    """Override the preset's number of training iterations (loss onsets are kept as they are)."""
    set: tuple[str, ...] = ()
    """Further overrides as dotted key=value, e.g. --set losses.kernel=exp_distance model.embedding_dim=8."""
    resume: bool = False
    """Continue from RUN/checkpoints/latest.pt (atomic checkpoints are written every checkpoint_every steps)."""
    device: str = "auto"
    """auto (CUDA when available), cpu or cuda."""
    seed: int = 0
    """Seed of every random choice."""

    def run_command(self) -> None:
        from lift3d.engine.pipeline import fit_scene

        overrides = list(self.set) + [f"device={self.device}", f"seed={self.seed}"]
        if self.iterations is not None:
            overrides.append(f"optim.iterations={self.iterations}")
        summary = fit_scene(self.data, self.out, self.preset, overrides, resume=self.resume)
        print(f"fit done: {summary['iterations']} iterations in {summary['seconds']} s "
              f"({summary['iterations_per_second']} it/s), clustering {summary['clustering_seconds']} s -> {self.out}")


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

    def run_command(self) -> None:
        from lift3d.engine.pipeline import render_run

        render_run(self.run, self.split, self.data, self.device)


@dataclass
class Eval:
    """Score a run's renders against the scene's ground truth: PQ^scene (+ SQ, RQ), per-frame PQ, mIoU, PSNR.
    Writes RUN/metrics.json and prints a table (renders first if RUN/renders/SPLIT is missing)."""

    run: tyro.conf.Positional[Path]
    """Run folder written by `lift3d fit`."""
    split: Literal["test", "train", "all"] = "test"
    """Which views to evaluate."""
    data: Optional[Path] = None
    """Scene folder (default: the one the run was fitted on)."""

    def run_command(self) -> None:
        from lift3d.engine.pipeline import evaluate_run

        evaluate_run(self.run, self.split, self.data)


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
    segmenter_noise: Literal["clean", "detic-like", "heavy"] = "detic-like"
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
    from lift3d.generate.cli import GenerateMessyRooms

    args = _alias_generate(sys.argv[1:] if argv is None else argv)
    sub = tyro.extras.subcommand_cli_from_dict(
        {"fit": Fit, "render": Render, "eval": Eval, "demo": Demo, "generate-messy-rooms": GenerateMessyRooms,
         "segments-import": SegmentsImport},
        description="lift3d: lift inconsistent 2D instance masks into a consistent 3D instance field.", args=args)
    sub.run_command()


def _alias_generate(argv: list[str]) -> list[str]:
    """Accept ``lift3d generate messy-rooms ...`` / ``lift3d segments import ...`` as the hyphenated commands."""
    if len(argv) >= 2 and argv[0] in ("generate", "segments") and not argv[1].startswith("-"):
        return [f"{argv[0]}-{argv[1]}"] + argv[2:]
    return argv


if __name__ == "__main__":
    entrypoint()
