"""Ray fan-out of the study runner (tools/study.py): one Ray task per scene size N.

A task generates (or reuses) scene N, fits its shared fields, scores the 2D baselines and fits and scores every
lifted method not yet in ``OUT/results.json``, and returns those entries; the driver writes each task's entries into
``results.json`` as the task finishes (so an interrupted study resumes: scenes whose entries are all there get no
task, and a task skips the methods already there) and shows one progress bar over the tasks. Then the serial
runner does what needs every scene in one process (the round-robin throughput, the embedding sweep, the report),
reusing the scenes and fits the tasks wrote: its results are the serial runner's, task for task (same seeds, same
threads per fit).

The dispatch (local Ray, progress, resources per task) is :mod:`lift3d.fanout`, shared with
``lift3d generate messy-rooms-batch``. Local Ray by default (``ray.init(num_cpus=workers)``: no cluster needed);
``--ray-address`` joins a running cluster, whose nodes must see the same ``--work`` folder and have lift3d
importable. A task asks for
``cfg.threads`` CPUs (1 when unset) and, when the cluster has GPUs and the device is not ``cpu``, one GPU.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Callable, Optional

__all__ = ["scene_unit", "run_scene_tasks", "init_ray"]


def scene_unit(cfg, n: int, work: Path, reuse_scenes: Optional[Path], done: list, log: Callable = print) -> dict:
    """Everything of scene ``n`` the study can do alone: scene, shared fields, 2D baselines, lifted methods.

    ``done``: the result names (methods and baselines) already in ``results.json`` for ``n``; they are not redone.
    Returns ``{"n", "stats", "results": {name: entry}}`` with the entries this call computed. Runs in a Ray worker
    or in the driver; the work (scenes, runs) goes to ``work`` exactly as the serial runner writes it.
    """
    import torch

    from lift3d.data.loading import load_scene
    from tools.study import fit_config_for, instance_steps_for, network_input_scene, prepare_scene
    from tools.study_baselines import BASELINES, score_baselines
    from tools.study_lift import fit_and_score_method, fit_shared_fields, method_config, num_slots_for

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    work = Path(work)
    scene_dir = (Path(reuse_scenes) if reuse_scenes else work / "scenes") / f"N{n:03d}"
    stats = prepare_scene(cfg, n, scene_dir, log, regenerate_stale=reuse_scenes is None)
    generated = stats.pop("generated")
    if generated:
        stale_runs = work / "runs" / f"N{n:03d}"
        if stale_runs.exists():
            log(f"[N={n}] removing {stale_runs}: fitted on the previous scene")
            shutil.rmtree(stale_runs)
        done = []  # entries of the previous scene are stale
    if cfg.two_d_input == "network":
        scene_dir = network_input_scene(cfg, n, scene_dir, work, stats, generated, log)
    scene = load_scene(scene_dir)
    fit = fit_config_for(cfg, n, len(scene.train_indices))
    shared = dataclasses.replace(fit, losses=dataclasses.replace(fit.losses, instance_weight=0.0))
    base_run = work / "runs" / f"N{n:03d}" / "shared"
    summary = fit_shared_fields(scene, shared, base_run, log=log)
    stats["shared_fit"] = {k: summary.get(k) for k in ("iterations", "seconds", "iterations_per_second")}
    stats["num_slots"] = num_slots_for(n, stats["max_segments_per_train_view"], cfg.slot_margin)
    steps = instance_steps_for(cfg, len(scene.train_indices))
    results = {}
    if not all(b in done for b in BASELINES):
        results.update(score_baselines(scene, log=log))
    for m in cfg.methods:
        if m in done:
            continue
        mcfg = method_config(fit, m, stats["num_slots"])
        label = f"[N={n}] {m}"
        results[m] = fit_and_score_method(
            scene, mcfg, base_run, work / "runs" / f"N{n:03d}" / m, steps, log=log, label=label
        )
        log(f"{label}: PQ^scene {results[m]['pq_scene']:.3f}")
    return {"n": n, "stats": stats, "results": results}


def init_ray(address: Optional[str], workers: Optional[int]):
    """Start local Ray with ``workers`` CPUs (default: all) or join the cluster at ``address``; returns ``ray``
    (:func:`lift3d.fanout.init_ray`; workers also import ``tools`` from this repository)."""
    from lift3d.fanout import init_ray as start

    return start(address, workers, python_paths=(_repo_root(),))


def _repo_root() -> str:
    return str(Path(__file__).resolve().parents[1])


def run_scene_tasks(
    cfg,
    objects: list,
    work: Path,
    reuse_scenes: Optional[Path],
    done_of: Callable[[int], list],
    all_names: list,
    on_result: Callable[[dict], None],
    address: Optional[str] = None,
    workers: Optional[int] = None,
    log: Callable = print,
) -> int:
    """Dispatch :func:`scene_unit` for every ``n`` in ``objects`` that misses any of ``all_names`` (``done_of(n)``
    lists those it has); ``on_result`` receives each task's return value as it finishes. Returns the number of
    tasks run, largest N first (the longest task). A task that fails stops the study with its error
    (:func:`lift3d.fanout.run_tasks`)."""
    from lift3d.fanout import RayOptions, run_tasks

    # largest scene first: it is the longest task, and starting it last would leave the other workers idle at the end
    todo = sorted((n for n in objects if not all(name in done_of(n) for name in all_names)), reverse=True)
    if not todo:
        return 0
    ray = init_ray(address, workers)
    options = RayOptions(
        address=address,
        workers=workers,
        num_cpus_per_task=cfg.threads or 1,
        num_gpus_per_task=0 if cfg.device == "cpu" else 1,
        python_paths=(_repo_root(),),
    )
    resources = ray.cluster_resources()
    log(
        f"Ray: {len(todo)} scene tasks (N = {todo}) on {resources.get('CPU', 0):.0f} CPUs, {resources.get('GPU', 0):.0f} GPUs"
    )
    tasks = [(f"N={n}", (cfg, n, str(work), str(reuse_scenes) if reuse_scenes else None, done_of(n))) for n in todo]

    def on_done(outcome) -> None:
        on_result(outcome.value)
        log(f"[{outcome.name}] scene task finished")

    run_tasks(_scene_task, tasks, options, on_done=on_done, stop_on_error=True, desc="scene tasks", unit="scene")
    return len(todo)


def _scene_task(cfg, n, work, reuse_scenes, done):
    """The Ray task body (a module-level function so that workers import it by name)."""

    def log(msg: str) -> None:
        print(f"[N={n} worker] {msg}", flush=True)

    return scene_unit(cfg, n, Path(work), Path(reuse_scenes) if reuse_scenes else None, done, log)
