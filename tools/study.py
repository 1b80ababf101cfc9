"""Experiment runner of Contrastive Lift Sec. 5 on generated Messy Rooms scenes: lifted methods vs 2D tracking baselines.

For every scene size N: generate (or reuse) a scene with detic-like segmenter noise; fit the shared fields once
(density, colour, semantics; no instance objective); for every method train only its instance field on top of the
frozen shared fields, timing the instance phase, decode it from training views only (clustering, or argmax slots
for linear assignment), render the test views and score PQ^scene, per-frame PQ and mIoU; score the 2D baselines
(raw segmenter masks, and three trackers run over all frames in order) on the same test views. Then measure the
instance-phase throughput of every (method, N) round-robin in one go, optionally sweep the embedding size on one
scene (paper Fig. 5), and write ``results.json``, ``results.md``, ``pq_vs_objects.png`` and
``throughput_vs_objects.png`` into ``--out``.

    python -m tools.study --config cpu-small --out docs/results/cpu-small
    python -m tools.study --config cpu-tiny --out /tmp/study --embedding-sweep
    python -m tools.study --config paper --out docs/results/paper --device cuda  # paper-size scenes, GPU
    python -m tools.study --config cpu-small-cover --out docs/results/cpu-small-cover

Scenes and runs go to ``--work`` (default ``outputs/study/<config>``); a re-run with the same ``--work`` resumes:
finished scenes, base fits and (method, N) entries of ``OUT/results.json`` are kept (``--fresh`` ignores them).
``--ray`` runs one Ray task per scene (local Ray, ``--ray-workers`` CPUs; ``--ray-address`` joins a cluster):
see tools/study_ray.py.

    python -m tools.study --config cpu-small --out docs/results/cpu-small --ray --ray-workers 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tools.study_baselines import BASELINES, score_baselines
from tools.study_lift import (
    METHOD_PRESETS,
    fit_and_score_method,
    fit_shared_fields,
    interleaved_throughput,
    method_config,
    method_trainer,
    num_slots_for,
    shared_fields_config,
    write_json_atomic,
)

__all__ = ["StudyConfig", "STUDY_CONFIGS", "run_study", "main"]


@dataclass
class StudyConfig:
    """One study: scenes, the fit preset shared by every method, instance-phase length, decoding and timing."""

    preset: str
    """lift3d fit preset (lift3d/presets.py) used for the shared fields and as the base of every method."""
    objects: tuple[int, ...]
    """Scene sizes N (objects dropped into the room); one generated scene each."""
    resolution: int
    """Image width and height of the generated scenes (pixels)."""
    views_per_object: float
    """Views of a scene = clamp(views_per_object * N, min_views, max_views): the generator keeps about the same
    number of objects per image, so covering every object needs views in proportion to N."""
    min_views: int
    """Fewest views of a scene."""
    max_views: int
    """Most views of a scene."""
    methods: tuple[str, ...] = ("slow-fast", "vanilla", "linear-assignment")
    """Lifted methods (tools/study_lift.py METHOD_PRESETS): slow-fast, no-concentration, vanilla,
    vanilla-concentration, linear-assignment, associative-embedding, margin, dino."""
    segmenter_noise: str = "detic-like"
    """Noise preset of the simulated 2D segmenter."""
    environment: str = "old_room"
    """Background of the generated rooms."""
    classes: str = "binary"
    """Semantic classes of the generated scenes (``lift3d generate messy-rooms --classes``): ``binary`` or
    ``families`` (stuff floor / wall / ceiling, one thing class per asset family)."""
    base_focal_length: Optional[float] = None
    """Generator focal length in image widths (None: the generator's default, about 7 objects per image)."""
    test_fraction: float = 0.2
    """Last fraction of the frames used as test views (paper: 20%)."""
    fit_overrides: tuple[str, ...] = ()
    """Dotted overrides applied to the preset for the shared fit and every method (e.g. optim.iterations=2000)."""
    shared_passes: float = 0.0
    """Shared-fit iterations = clamp(shared_passes * training pixels / optim.rays_per_batch, min_shared_iterations,
    max_shared_iterations): about how often the shared fit visits every training pixel, so the fit grows with the
    scene (0: the preset's ``optim.iterations`` after ``fit_overrides``). The N = 500 scene needs about 1.6 passes for
    its semantic field (docs/results/cpu-small-n500-cover: 1500 iterations = 0.4 passes, test mIoU 73.4; 6000 =
    1.6 passes, 79.4)."""
    min_shared_iterations: int = 1500
    """Fewest shared-fit iterations when ``shared_passes > 0``."""
    max_shared_iterations: int = 6000
    """Most shared-fit iterations when ``shared_passes > 0``."""
    reference_objects: int = 25
    """Scene size the preset's grid and position encodings are meant for; see ``scale_with_extent``."""
    scale_with_extent: bool = True
    """Keep the field's resolution per metre as at ``reference_objects``: the scene's side grows as sqrt(N), so
    TensoRF grid and occupancy resolutions are multiplied by s = sqrt(N / reference_objects) (capped by
    ``max_grid_resolution``) and the semantic / instance position encodings get round(log2 s) more octaves."""
    max_grid_resolution: int = 256
    """Cap of the scaled TensoRF final resolution (memory and the dense Adam update of the planes)."""
    instance_steps_per_train_view: float = 4.0
    """Instance-phase steps = clamp(this * training views, min_instance_steps, max_instance_steps): each step uses
    one training image, so this is about how often every image is visited."""
    min_instance_steps: int = 600
    """Fewest instance-phase steps."""
    max_instance_steps: int = 2000
    """Most instance-phase steps."""
    cluster_view_fraction: float = 0.25
    """Training views rendered for clustering = clamp(fraction * training views, min, max): the clusters can only
    hold objects these views see, so the count grows with the scene."""
    min_cluster_views: int = 6
    max_cluster_views: int = 80
    cluster_points_per_object: int = 600
    """HDBSCAN subsample = clamp(points_per_object * N, min_cluster_points, max_cluster_points)."""
    cluster_sample: str = "uniform"
    """``cluster.sample`` of every fit: ``uniform`` (the paper) or ``segment`` (at most
    ``cluster_points_per_segment`` pixels of every 2D segment of every clustering view, so small objects get points)."""
    cluster_points_per_segment: int = 8
    """``cluster.points_per_segment`` when ``cluster_sample = segment``."""
    max_score_views: int = 0
    """``cluster.max_score_views``: the sweep scores its candidates on at most this many clustering views (0 = all)."""
    min_cluster_points: int = 20_000
    max_cluster_points: int = 60_000
    slot_margin: float = 0.1
    """Linear assignment K = ceil((1 + margin) * max(N, most 2D segments in one training image))."""
    throughput_methods: tuple[str, ...] = ("slow-fast", "linear-assignment")
    """Methods whose instance-phase rate is measured round-robin over every N (paper Table 6)."""
    throughput_rounds: int = 6
    """Rounds of the round-robin throughput measurement."""
    throughput_block: int = 20
    """Timed instance steps per trainer per round."""
    sweep_dims: tuple[int, ...] = (1, 2, 3, 6, 12, 24)
    """Embedding sizes of ``--embedding-sweep`` (slow-fast; paper Fig. 5)."""
    sweep_objects: Optional[int] = None
    """Scene size of the sweep (None: the second-smallest of ``objects``, or the only one)."""
    seed: int = 0
    """Seed of the fits; scene N uses generator seed ``seed * 1000 + N``."""
    device: str = "auto"
    """Device of the fits (auto: CUDA when available)."""
    two_d_input: str = "simulated"
    """The lift's 2D input: ``simulated`` (the generator's simulated segmenter, ``segmenter_noise``) or ``network``
    (a trained 2D network, ``two_d_model``, segments every view: ``lift3d segments predict``). Use a separate
    ``--work`` per input: runs are not told apart by their 2D input."""
    two_d_model: Optional[str] = None
    """2D run folder (``lift3d twod train --out``) when ``two_d_input`` is ``network``."""
    threads: Optional[int] = None
    """torch CPU threads (None: torch's default). On a shared 2-core machine 1 thread is far faster than 2: with
    another process busy, two torch threads wait on each other (measured 7.5 vs 1.1 shared-fit it/s)."""


STUDY_CONFIGS: dict[str, StudyConfig] = {
    # seconds to a minute: the test's configuration
    "cpu-tiny": StudyConfig(
        preset="tiny",
        objects=(3, 6),
        resolution=32,
        views_per_object=0.0,
        min_views=8,
        max_views=8,
        fit_overrides=("optim.iterations=80",),
        scale_with_extent=False,
        instance_steps_per_train_view=0.0,
        min_instance_steps=12,
        max_instance_steps=12,
        min_cluster_views=2,
        max_cluster_views=2,
        min_cluster_points=2000,
        max_cluster_points=2000,
        throughput_rounds=2,
        throughput_block=3,
        sweep_dims=(1, 3),
        reference_objects=3,
        threads=1,
    ),
    # under an hour on 2 CPU cores (see docs/results/cpu-small/README.md for the measured wall time)
    "cpu-small": StudyConfig(
        preset="cpu-small",
        objects=(25, 50, 100, 500),
        resolution=64,
        views_per_object=4.0,
        min_views=100,
        max_views=1200,
        instance_steps_per_train_view=0.0,
        min_instance_steps=2000,
        max_instance_steps=2000,
        sweep_objects=25,
        threads=1,
    ),
    # paper-size scenes (600 views of 256x256, focal 2.5 as datasets/messy_rooms/configs): meant for a GPU
    "paper": StudyConfig(
        preset="contrastive-lift",
        objects=(25, 50, 100, 500),
        resolution=256,
        views_per_object=0.0,
        min_views=600,
        max_views=600,
        base_focal_length=2.5,
        scale_with_extent=False,
        methods=("slow-fast", "no-concentration", "vanilla", "vanilla-concentration", "linear-assignment"),
        instance_steps_per_train_view=0.0,
        min_instance_steps=240_000,
        max_instance_steps=240_000,
        cluster_view_fraction=0.1,
        min_cluster_views=24,
        max_cluster_views=48,
        cluster_points_per_object=2000,
        min_cluster_points=50_000,
        max_cluster_points=50_000,
        throughput_rounds=10,
        throughput_block=100,
    ),
}


# cpu-small with what makes N = 500 segment (docs/results/cpu-small-n500-cover): clustering on every training
# view with 8 pixels of every 2D segment, the sweep scored on 80 views, instance steps and shared-fit iterations
# growing with the training views (2000 -> 8000 steps, 1500 -> 6000 iterations at N = 500), the weight of the
# surface point in the clustering chosen by the sweep, and the semantic loss's confidences balanced per class
# (docs/results/cpu-small-n500-real)
STUDY_CONFIGS["cpu-small-cover"] = dataclasses.replace(
    STUDY_CONFIGS["cpu-small"],
    fit_overrides=("cluster.position_weight=None", "losses.semantic_confidence=class-balanced"),
    shared_passes=1.6,
    min_shared_iterations=1500,
    max_shared_iterations=6000,
    instance_steps_per_train_view=8.4,
    min_instance_steps=2000,
    max_instance_steps=8000,
    cluster_view_fraction=1.0,
    max_cluster_views=1200,
    cluster_sample="segment",
    cluster_points_per_segment=8,
    max_score_views=80,
)


# ---------------------------------------------------------------------------------------------- per-scene plan
def num_views_for(cfg: StudyConfig, n: int) -> int:
    return int(min(max(round(cfg.views_per_object * n), cfg.min_views), cfg.max_views))


def _clamp(x: float, lo: int, hi: int) -> int:
    return int(min(max(round(x), lo), hi))


def fit_config_for(cfg: StudyConfig, n: int, num_train_views: int):
    """The FitConfig of scene size ``n`` with the instance objective of the preset (methods override it)."""
    from lift3d.config_io import apply_overrides
    from lift3d.presets import get_preset

    fit = apply_overrides(
        get_preset(cfg.preset),
        list(cfg.fit_overrides)
        + [f"seed={cfg.seed}", f"device={cfg.device}"]
        + ([f"threads={cfg.threads}"] if cfg.threads else []),
    )
    if cfg.scale_with_extent and n > cfg.reference_objects:
        s = math.sqrt(n / cfg.reference_objects)
        r = fit.model.radiance
        final = min(int(round(r.final_grid_resolution * s)), cfg.max_grid_resolution)
        s_grid = final / r.final_grid_resolution
        r.grid_resolution = int(round(r.grid_resolution * s_grid))
        r.final_grid_resolution = final
        if fit.model.occupancy_resolution > 0:
            fit.model.occupancy_resolution = int(round(fit.model.occupancy_resolution * s_grid))
        extra = int(round(math.log2(s)))
        for head in (fit.model.semantic, fit.model.instance):
            if head.position_frequencies > 0:
                head.position_frequencies += extra
            if head.encoding == "hashgrid":  # same cells per metre: finest level x s, table x s^2 (up to 2^17)
                head.hash_max_resolution = int(round(head.hash_max_resolution * s))
                head.hash_log2_table_size = min(head.hash_log2_table_size + 2 * extra, 17)
    if cfg.shared_passes > 0:
        train_pixels = num_train_views * cfg.resolution * cfg.resolution
        fit.optim.iterations = _clamp(
            cfg.shared_passes * train_pixels / fit.optim.rays_per_batch,
            cfg.min_shared_iterations,
            cfg.max_shared_iterations,
        )
    fit.cluster_views = _clamp(
        cfg.cluster_view_fraction * num_train_views, cfg.min_cluster_views, cfg.max_cluster_views
    )
    fit.cluster.max_points = _clamp(cfg.cluster_points_per_object * n, cfg.min_cluster_points, cfg.max_cluster_points)
    fit.cluster.sample = cfg.cluster_sample
    fit.cluster.points_per_segment = cfg.cluster_points_per_segment
    fit.cluster.max_score_views = cfg.max_score_views
    return fit


def instance_steps_for(cfg: StudyConfig, num_train_views: int) -> int:
    return _clamp(cfg.instance_steps_per_train_view * num_train_views, cfg.min_instance_steps, cfg.max_instance_steps)


STUDY_SCENE_FILE = "study_scene.json"
"""Generator settings a study wrote next to each scene it generated (compared on reuse)."""


def scene_mismatch(scene_dir: Path, wanted: dict) -> str:
    """Why the scene in ``scene_dir`` is not the one ``wanted`` (generator settings) describes; "" if it is.

    Uses the settings the study recorded when it generated the scene; a scene without that record (generated
    elsewhere) is compared by frame count and resolution only."""
    record = scene_dir / STUDY_SCENE_FILE
    if record.exists():
        from lift3d.generate import MessyRoomsConfig

        have = json.loads(record.read_text())
        # a setting the record lacks was added to the generator later, with a default that keeps the old scenes
        default = json.loads(json.dumps(dataclasses.asdict(MessyRoomsConfig()), default=str))
        diff = [f"{k}: {have.get(k)!r} != {v!r}" for k, v in wanted.items() if have.get(k, default.get(k)) != v]
        return "; ".join(diff)
    frames = json.loads((scene_dir / "transforms.json").read_text()).get("frames", [])
    diff = []
    if len(frames) != wanted["num_views"]:
        diff.append(f"{len(frames)} views, the study asks for {wanted['num_views']}")
    w = frames[0].get("w") if frames else None
    if w is not None and int(w) != wanted["resolution"]:
        diff.append(f"{w} px wide, the study asks for {wanted['resolution']}")
    return "; ".join(diff)


def prepare_scene(cfg: StudyConfig, n: int, scene_dir: Path, log=print, regenerate_stale: bool = True) -> dict:
    """Generate scene ``n`` into ``scene_dir`` unless the scene there matches the configuration; return its statistics.

    A scene generated with other settings is generated again (``regenerate_stale``) or refused with a ValueError
    (scenes the user pointed the study at). ``stats["generated"]`` says whether this call wrote the scene."""
    import numpy as np

    from lift3d.data.loading import load_frame, load_scene
    from lift3d.generate import MessyRoomsConfig, generate_scene

    t0 = time.perf_counter()
    generated = False
    kw = {} if cfg.base_focal_length is None else {"base_focal_length": cfg.base_focal_length}
    gen = MessyRoomsConfig(
        num_objects=n,
        num_views=num_views_for(cfg, n),
        resolution=cfg.resolution,
        environment=cfg.environment,
        segmenter_noise=cfg.segmenter_noise,
        classes=cfg.classes,
        seed=cfg.seed * 1000 + n,
        test_fraction=cfg.test_fraction,
        **kw,
    )
    wanted = json.loads(json.dumps(dataclasses.asdict(gen), default=str))
    record = scene_dir / STUDY_SCENE_FILE
    if (scene_dir / "transforms.json").exists():
        stale = scene_mismatch(scene_dir, wanted)
        if stale and not regenerate_stale:
            raise ValueError(
                f"{scene_dir}: this scene does not match the study configuration ({stale}); point "
                "--reuse-scenes at scenes generated with it, or drop the option to generate them."
            )
        if stale:
            log(f"scene N={n}: {scene_dir} was generated with other settings ({stale}); generating it again")
    else:
        stale = "missing"
    if stale:
        generate_scene(gen, scene_dir, progress=False, overwrite=True)
        write_json_atomic(record, wanted)
        generated = True
    scene = load_scene(scene_dir)
    seen_train, seen_test, per_view, segs = set(), set(), [], []
    test_views_of: dict[int, int] = {}
    train_views_of: dict[int, int] = {}
    test_set, train_set = set(scene.test_indices), set(scene.train_indices)
    for i in range(len(scene.frames)):
        f = load_frame(scene, i, with_ground_truth=True)
        ids = set(np.unique(f.gt_instance).tolist()) - {0}
        (seen_test if i in test_set else seen_train).update(ids)
        for g in ids:
            counts = test_views_of if i in test_set else train_views_of
            counts[g] = counts.get(g, 0) + 1
        per_view.append(len(ids))
        if i in train_set:
            segs.append(len(np.unique(f.instance)) - (1 if (f.instance == 0).any() else 0))
    stats = {
        "path": str(scene_dir),
        "num_objects": n,
        "num_views": len(scene.frames),
        "num_train_views": len(scene.train_indices),
        "num_test_views": len(scene.test_indices),
        "resolution": scene.frames[0].width,
        "objects_visible": len(seen_train | seen_test),
        "objects_in_test_views": len(seen_test),
        "test_objects_unseen_in_training": len(seen_test - seen_train),
        "objects_per_view_mean": round(float(np.mean(per_view)), 2),
        # PQ^scene tests cross-view consistency only through objects seen in several test views
        "test_views_per_object_mean": round(float(np.mean(list(test_views_of.values()))), 2) if test_views_of else 0.0,
        "objects_in_one_test_view_only": sum(1 for c in test_views_of.values() if c == 1),
        "train_views_per_object_mean": round(float(np.mean(list(train_views_of.values()))), 2)
        if train_views_of
        else 0.0,
        "max_segments_per_train_view": int(max(segs)),
        "thing_ids": list(scene.thing_ids),
        "seconds_generate": round(time.perf_counter() - t0, 1) if generated else None,
        "generated": generated,
    }
    log(
        f"scene N={n}: {stats['num_views']} views ({stats['num_train_views']} train), {stats['resolution']} px, "
        f"{stats['objects_visible']} objects visible, {stats['objects_per_view_mean']} per view, "
        f"{stats['test_objects_unseen_in_training']} test objects never seen in training"
    )
    return stats


# ---------------------------------------------------------------------------------------------- the study
class _Results:
    """``OUT/results.json``, rewritten after every finished unit so that an interrupted study resumes."""

    def __init__(self, path: Path, fresh: bool, header: dict):
        self.path = path
        old = {}
        if path.exists() and not fresh:
            old = json.loads(path.read_text())
            if old.get("study") != header["study"]:
                old = {}  # another configuration: start over
        self.data = {
            **header,
            "scenes": old.get("scenes", {}),
            "results": old.get("results", {}),
            "throughput": old.get("throughput", {}),
            "embedding_sweep": old.get("embedding_sweep", {}),
            "invocations": old.get("invocations", []),
        }

    def has(self, section: str, *keys) -> bool:
        d = self.data[section]
        for k in keys:
            if k not in d:
                return False
            d = d[k]
        return True

    def put(self, section: str, key1: str, key2: Optional[str], value) -> None:
        if key2 is None:
            self.data[section][key1] = value
        else:
            self.data[section].setdefault(key1, {})[key2] = value
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)


def _machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def run_study(
    cfg: StudyConfig,
    out: Path,
    work: Path,
    embedding_sweep: bool = False,
    fresh: bool = False,
    reuse_scenes: Optional[Path] = None,
    command: str = "",
    config_name: str = "",
    log=print,
    use_ray: bool = False,
    ray_address: Optional[str] = None,
    ray_workers: Optional[int] = None,
) -> dict:
    """Run the study (see the module docstring) and write its results into ``out``; returns results.json's dict.

    ``use_ray``: one Ray task per scene (tools/study_ray.py; local Ray with ``ray_workers`` CPUs, or the cluster at
    ``ray_address``) for the scenes, shared fits, baselines and methods, then the rest serially.
    ``cfg.threads`` applies for the duration of the call; torch's thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        ray_opts = {"address": ray_address, "workers": ray_workers} if use_ray or ray_address else None
        return _run_study(cfg, out, work, embedding_sweep, fresh, reuse_scenes, command, config_name, log, ray_opts)
    finally:
        torch.set_num_threads(threads)


def network_input_scene(
    cfg: StudyConfig, n: int, scene_dir: Path, work: Path, stats: dict, generated: bool, log=print
) -> Path:
    """A copy of scene ``n`` whose 2D segments come from the trained 2D network ``cfg.two_d_model``
    (``work/scenes-twod/N###``, predicted again when the scene was ``generated`` anew or the network changed);
    updates ``stats``."""
    import numpy as np

    from lift3d.data.loading import load_frame, load_scene
    from lift3d.twod.predict import predict_scene_segments

    if cfg.two_d_input != "network" or not cfg.two_d_model:
        raise ValueError("two_d_input=network needs two_d_model (a folder written by lift3d twod train --out)")
    model = Path(cfg.two_d_model)
    predicted = work / "scenes-twod" / f"N{n:03d}"
    record = predicted / "segments" / "twod" / "model.json"
    latest = sorted((model / "checkpoints").glob("step_*.pt")) if model.is_dir() else [model]
    wanted = {"model": str(model.resolve()), "checkpoint": latest[-1].name if latest else None}
    current = json.loads(record.read_text()) if record.exists() else {}
    fresh = generated or {k: current.get(k) for k in wanted} != wanted
    if fresh:
        log(f"scene N={n}: segmenting every view with the 2D network {model} into {predicted}")
        seg = predict_scene_segments(scene_dir, model, out=predicted, force=True, threads=cfg.threads or 1)
        write_json_atomic(seg / "model.json", {**json.loads((seg / "model.json").read_text()), **wanted})
        stale_runs = work / "runs" / f"N{n:03d}"
        if stale_runs.exists():
            log(f"[N={n}] removing {stale_runs}: fitted on other 2D masks")
            shutil.rmtree(stale_runs)
    scene = load_scene(predicted)
    segs = []
    for i in scene.train_indices:
        inst = load_frame(scene, i).instance
        segs.append(len(np.unique(inst)) - (1 if (inst == 0).any() else 0))
    stats["max_segments_per_train_view"] = int(max(segs))
    stats["two_d_input"] = {"kind": "network", **wanted, "scene": str(predicted)}
    return predicted


def _run_study(
    cfg: StudyConfig,
    out: Path,
    work: Path,
    embedding_sweep: bool,
    fresh: bool,
    reuse_scenes: Optional[Path],
    command: str,
    config_name: str,
    log,
    ray_opts: Optional[dict] = None,
) -> dict:
    from lift3d.data.loading import load_scene

    t_start = time.perf_counter()
    out, work = Path(out), Path(work)
    unknown = [m for m in cfg.methods if m not in METHOD_PRESETS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {sorted(METHOD_PRESETS)}")
    header = {
        "study": {"config": config_name, **json.loads(json.dumps(dataclasses.asdict(cfg)))},
        "command": command,
        "machine": _machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    res = _Results(out / "results.json", fresh, header)
    objects = sorted(cfg.objects)
    scenes, bases, fits = {}, {}, {}

    # 0. with Ray: one task per scene (scene, shared fields, baselines, methods); steps 1-3 then find them done
    if ray_opts is not None:
        from tools.study_ray import run_scene_tasks

        def done_of(n: int) -> list:
            return [name for name, per_n in res.data["results"].items() if str(n) in per_n]

        def on_result(r: dict) -> None:
            res.data["scenes"][str(r["n"])] = r["stats"]
            for name, entry in r["results"].items():
                res.data["results"].setdefault(name, {})[str(r["n"])] = entry
            res.save()

        run_scene_tasks(
            cfg,
            objects,
            work,
            reuse_scenes,
            done_of,
            list(BASELINES) + list(cfg.methods),
            on_result,
            log=log,
            **ray_opts,
        )

    # 1. scenes and shared fields
    for n in objects:
        scene_dir = (Path(reuse_scenes) if reuse_scenes else work / "scenes") / f"N{n:03d}"
        stats = prepare_scene(cfg, n, scene_dir, log, regenerate_stale=reuse_scenes is None)
        generated = stats.pop("generated")
        if generated:
            stale_runs = work / "runs" / f"N{n:03d}"
            if stale_runs.exists():  # fitted on a scene that no longer exists
                log(f"[N={n}] removing {stale_runs}: fitted on the previous scene")
                shutil.rmtree(stale_runs)
        if cfg.two_d_input == "network":
            scene_dir = network_input_scene(cfg, n, scene_dir, work, stats, generated, log)
        scene = load_scene(scene_dir)
        fit = fit_config_for(cfg, n, len(scene.train_indices))
        shared = shared_fields_config(fit)
        base_run = work / "runs" / f"N{n:03d}" / "shared"
        log(
            f"[N={n}] shared fields (radiance + semantics, no instance objective): {shared.optim.iterations} "
            f"iterations, grid {shared.model.radiance.grid_resolution}->{shared.model.radiance.final_grid_resolution}"
        )
        summary = fit_shared_fields(scene, shared, base_run, log=log)
        stats["shared_fit"] = {k: summary.get(k) for k in ("iterations", "seconds", "iterations_per_second")}
        stats["grid_resolution"] = shared.model.radiance.final_grid_resolution
        stats["instance_position_frequencies"] = shared.model.instance.position_frequencies
        stats["instance_steps"] = instance_steps_for(cfg, len(scene.train_indices))
        stats["num_slots"] = num_slots_for(n, stats["max_segments_per_train_view"], cfg.slot_margin)
        stats["cluster_views"], stats["cluster_max_points"] = fit.cluster_views, fit.cluster.max_points
        if stats["seconds_generate"] is None:  # keep the generation time of the run (or Ray task) that generated it
            stats["seconds_generate"] = res.data["scenes"].get(str(n), {}).get("seconds_generate")
        res.put("scenes", str(n), None, stats)
        scenes[n], bases[n], fits[n] = scene, base_run, fit

    # 2. 2D baselines
    for n in objects:
        if all(res.has("results", b, str(n)) for b in BASELINES):
            continue
        log(f"[N={n}] 2D baselines (trackers over all {len(scenes[n].frames)} frames, test frames scored)")
        for b, s in score_baselines(scenes[n], log=log).items():
            res.put("results", b, str(n), s)

    # 3. lifted methods
    for n in objects:
        for m in cfg.methods:
            if res.has("results", m, str(n)):
                continue
            st = res.data["scenes"][str(n)]
            mcfg = method_config(fits[n], m, st["num_slots"])
            log(f"[N={n}] {m}: {st['instance_steps']} instance steps (D = {mcfg.model.embedding_dim})")
            r = fit_and_score_method(
                scenes[n],
                mcfg,
                bases[n],
                work / "runs" / f"N{n:03d}" / m,
                st["instance_steps"],
                log=log,
                label=f"[N={n}] {m}",
            )
            log(
                f"[N={n}] {m}: PQ^scene {r['pq_scene']:.3f}, per-frame PQ {r['pq_frame']:.3f}, mIoU {r['miou']:.3f}, "
                f"{r['instance_it_per_s_median']:.1f} it/s"
            )
            res.put("results", m, str(n), r)

    # 4. instance-phase throughput, round-robin over every (method, N) in one go
    tp_methods = [m for m in cfg.throughput_methods if m in cfg.methods] or list(cfg.methods[:1])
    if not all(res.has("throughput", m, str(n)) for m in tp_methods for n in objects):
        log(f"throughput: {cfg.throughput_rounds} rounds x {cfg.throughput_block} steps for {tp_methods} x N {objects}")
        trainers = {}
        for n in objects:
            st = res.data["scenes"][str(n)]
            for m in tp_methods:
                mcfg = method_config(fits[n], m, st["num_slots"])
                trainers[(m, n)] = method_trainer(
                    scenes[n], mcfg, bases[n], work / "runs" / f"N{n:03d}" / f"{m}-throughput", log=log
                )
        tp = interleaved_throughput(
            {f"{m}@{n}": t for (m, n), t in trainers.items()}, cfg.throughput_rounds, cfg.throughput_block, log=log
        )
        del trainers
        for key, v in tp.items():
            m, n = key.split("@")
            res.data["throughput"].setdefault(m, {})[n] = {
                **v,
                "num_slots": res.data["scenes"][n]["num_slots"] if m == "linear-assignment" else None,
            }
        res.save()

    # 5. embedding-size sweep (paper Fig. 5)
    if embedding_sweep:
        n = cfg.sweep_objects or (objects[1] if len(objects) > 1 else objects[0])
        if n not in scenes:
            raise ValueError(f"sweep_objects={n} is not one of the study's scene sizes {objects}")
        st = res.data["scenes"][str(n)]
        for d in cfg.sweep_dims:
            if res.has("embedding_sweep", str(n), str(d)):
                continue
            mcfg = method_config(fits[n], "slow-fast", st["num_slots"], embedding_dim=d)
            same = "slow-fast" in cfg.methods and d == fits[n].model.embedding_dim
            if same:  # the main table's slow-fast run is exactly this setting
                r = res.data["results"]["slow-fast"][str(n)]
            else:
                log(f"[N={n}] embedding sweep: slow-fast with D = {d}")
                r = fit_and_score_method(
                    scenes[n],
                    mcfg,
                    bases[n],
                    work / "runs" / f"N{n:03d}" / f"slow-fast-D{d}",
                    st["instance_steps"],
                    log=log,
                    label=f"[N={n}] D={d}",
                )
            log(f"[N={n}] D = {d}: PQ^scene {r['pq_scene']:.3f}")
            res.put("embedding_sweep", str(n), str(d), r)

    res.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    res.data["invocations"].append(
        {
            "command": command,
            "started": header["started"],
            "finished": res.data["finished"],
            "wall_seconds": round(time.perf_counter() - t_start, 1),
        }
    )
    res.save()
    from tools.study_report import write_report

    write_report(res.data, out)
    log(
        f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'pq_vs_objects.png'}, "
        f"{out / 'throughput_vs_objects.png'} in {time.perf_counter() - t_start:.0f} s"
    )
    return res.data


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config",
        choices=sorted(STUDY_CONFIGS),
        default="cpu-small",
        help="cpu-tiny: seconds (tests); cpu-small: under an hour on 2 CPU cores; paper: paper-size scenes on a GPU",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md and the plots")
    p.add_argument("--work", type=Path, default=None, help="scenes and runs (default outputs/study/<config>)")
    p.add_argument("--objects", type=int, nargs="+", default=None, help="scene sizes N (default: the config's)")
    p.add_argument("--methods", nargs="+", default=None, choices=sorted(METHOD_PRESETS), help="lifted methods")
    p.add_argument(
        "--reuse-scenes",
        type=Path,
        default=None,
        help="folder holding N025/, N050/, ... scenes to use (missing ones are generated there)",
    )
    p.add_argument("--embedding-sweep", action="store_true", help="also sweep the slow-fast embedding size (Fig. 5)")
    p.add_argument("--sweep-objects", type=int, default=None, help="scene size of the embedding sweep")
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default: the config's)")
    p.add_argument(
        "--set",
        nargs="+",
        default=(),
        metavar="FIELD=VALUE",
        help="StudyConfig fields, e.g. --set min_instance_steps=300 throughput_rounds=4",
    )
    p.add_argument("--fresh", action="store_true", help="ignore the entries of an existing OUT/results.json")
    p.add_argument("--ray", action="store_true", help="one Ray task per scene on local Ray (tools/study_ray.py)")
    p.add_argument("--ray-workers", type=int, default=None, help="CPUs of local Ray (default: all)")
    p.add_argument("--ray-address", default=None, help="join this Ray cluster (implies --ray)")
    return p


def _apply_study_overrides(cfg: StudyConfig, items) -> StudyConfig:
    kw = {}
    types = {f.name: f for f in dataclasses.fields(StudyConfig)}
    for item in items:
        key, _, raw = item.partition("=")
        if key not in types or not _:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(types)}")
        cur = getattr(cfg, key)
        if isinstance(cur, bool):
            kw[key] = raw.lower() in ("1", "true", "yes")
        elif isinstance(cur, tuple):
            kw[key] = tuple(type(cur[0])(x) if cur else x for x in raw.split(",") if x)
        elif cur is None:
            kw[key] = (
                None
                if raw.lower() == "none"
                else (float(raw) if "." in raw else int(raw))
                if raw.replace(".", "", 1).isdigit()
                else raw
            )
        else:
            kw[key] = type(cur)(raw)
    return dataclasses.replace(cfg, **kw)


def main(argv: Optional[list[str]] = None) -> dict:
    args = build_parser().parse_args(argv)
    cfg = STUDY_CONFIGS[args.config]
    if args.objects:
        cfg = dataclasses.replace(cfg, objects=tuple(args.objects))
    if args.methods:
        cfg = dataclasses.replace(cfg, methods=tuple(args.methods))
    if args.sweep_objects:
        cfg = dataclasses.replace(cfg, sweep_objects=args.sweep_objects)
    if args.device:
        cfg = dataclasses.replace(cfg, device=args.device)
    cfg = _apply_study_overrides(cfg, args.set)
    work = args.work or Path("outputs/study") / args.config
    command = "python -m tools.study " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    return run_study(
        cfg,
        args.out,
        work,
        embedding_sweep=args.embedding_sweep,
        fresh=args.fresh,
        reuse_scenes=args.reuse_scenes,
        command=command,
        config_name=args.config,
        log=log,
        use_ray=args.ray,
        ray_address=args.ray_address,
        ray_workers=args.ray_workers,
    )


if __name__ == "__main__":
    main()
