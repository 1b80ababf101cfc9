"""Cost of generating Messy Rooms scenes: wall and CPU time per stage and peak memory, per backend and scene size.

For every backend (``fast``, ``kubric``) and scene size N, one child process runs the generator's four stages on the
standard scene config ``datasets/messy_rooms/configs/{environment}_{N:03d}.json`` with the number of views and the
resolution replaced (default 100 views of 256x256):

1. layout + physics (:func:`lift3d.generate.make_layout`: assets, spawn, pybullet drop and settle, cameras);
2. rendering (:func:`lift3d.generate.render`);
3. the simulated 2D segmenter (:func:`lift3d.generate.run_segmenter`);
4. writing the scene folder (:func:`lift3d.generate.writer.write_scene`; deleted afterwards).

Each stage is timed with ``time.perf_counter`` (wall) and ``time.process_time`` (CPU seconds of all the child's
threads). The child's peak resident memory is ``ru_maxrss`` of that child as reported by ``os.wait4`` (one fresh
process per run, so runs do not inherit each other's peaks); the child also reports ``VmHWM`` right after its imports
(the libraries' share: open3d, pybullet, and for kubric bpy and tensorflow). Loading the kubric backend's modules
(Blender, tensorflow: several seconds, once per process) is timed as its own ``backend import`` stage.

The kubric backend path-traces every view (seconds per view on a CPU), so it renders only ``--kubric-views K``
views. Its rendering progress is time-stamped after every Blender call (``KubricConfig.views_per_render_call``
views), which separates the one-off cost of a render (building the Blender scene, the first BVH) from the marginal
cost per view; the 100-view figures of the kubric rows are extrapolated from those (rendering:
``measured + marginal_per_view * (views - K)``; segmenter and writing: in proportion to the views; layout: as is),
and labelled as extrapolated everywhere they appear.

    .venv/bin/python -m tools.bench_generate                                   # fast 100 views + kubric 8 views
    .venv/bin/python -m tools.bench_generate --backends fast --objects 25 --views 20 --resolution 128 --out /tmp/b

Writes ``OUT/generate-benchmark.json`` (every figure, the command, the machine and its load average before and after
each run) and ``OUT/generate-benchmark.md`` (the tables; ``--rebuild-md`` rewrites it from the JSON). Wall times on a shared machine are inflated by other
processes; the load averages recorded next to every run say how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
BYTES_PER_PIXEL_HELD = 3 + 4 + 2 + 1 + 2 + 1 + 4
"""Bytes per pixel of one view held in memory between the stages: rendered RGB (3), depth float32 (4), GT instance
uint16 (2), GT semantic (1); segmenter instance uint16 (2), semantic (1), confidence float32 (4)."""


# --------------------------------------------------------------------------------------------------------------
# Child: one (backend, N) run
# --------------------------------------------------------------------------------------------------------------


def _vm_hwm_mb() -> Optional[float]:
    """Peak resident set size so far of this process (``VmHWM`` of /proc/self/status), MiB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def scene_config(
    environment: str, num_objects: int, views: int, resolution: int, backend: str, kubric_spp: Optional[int]
):
    """The standard scene config of (environment, N) with views, resolution and backend replaced.

    Falls back to the environment's 100-object config with ``num_objects`` replaced when no standard config of N
    exists. Returns ``(config, source path)``.
    """
    from lift3d.generate import load_config

    folder = REPO / "datasets" / "messy_rooms" / "configs"
    path = folder / f"{environment}_{num_objects:03d}.json"
    source = path if path.is_file() else folder / f"{environment}_100.json"
    cfg = load_config(source)
    cfg.num_objects, cfg.num_views, cfg.resolution, cfg.backend = num_objects, views, resolution, backend
    if kubric_spp is not None:
        cfg.kubric.samples_per_pixel = kubric_spp
    return cfg, source


def run_child(spec: Dict) -> Dict:
    """Generate one scene stage by stage, timing each stage; returns the figures (see the module docstring)."""
    t_start = time.perf_counter()
    import numpy as np

    from lift3d.generate import make_layout, render, run_segmenter, settle_function
    from lift3d.generate.writer import write_scene

    cfg, source = scene_config(
        spec["environment"],
        spec["num_objects"],
        spec["views"],
        spec["resolution"],
        spec["backend"],
        spec.get("kubric_spp"),
    )
    wall: Dict[str, float] = {}
    cpu: Dict[str, float] = {}

    def timed(name, fn):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall[name], cpu[name] = time.perf_counter() - w0, time.process_time() - c0
        return out

    if cfg.backend == "kubric":
        from lift3d.generate.kubric_backend import _import_kubric

        timed("backend_import", _import_kubric)
    else:
        import importlib

        timed("backend_import", lambda: importlib.import_module("lift3d.generate.fast_backend"))  # open3d
    import_wall = time.perf_counter() - t_start
    rss_after_import = _vm_hwm_mb()

    layout = timed("layout_physics", lambda: make_layout(cfg, settle_fn=settle_function(cfg)))
    ticks: List[List[float]] = []
    t_render = [0.0]

    def progress(done: int, total: int) -> None:
        ticks.append([done, time.perf_counter() - t_render[0]])

    def do_render():
        t_render[0] = time.perf_counter()
        return render(layout, cfg, progress)

    views = timed("rendering", do_render)
    segments = timed("segmenter", lambda: run_segmenter(views, cfg))
    work = Path(spec["work"])
    out_dir = work / f"{cfg.backend}_N{cfg.num_objects:03d}"
    timed("writing", lambda: write_scene(out_dir, layout, views, segments, cfg, overwrite=True))
    disk = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    if not spec.get("keep"):
        shutil.rmtree(out_dir, ignore_errors=True)

    V, R = cfg.num_views, cfg.resolution
    visible_1 = [int((np.bincount(views.instance[v].ravel())[1:] >= 1).sum()) for v in range(V)]
    min_px = max(1, round(0.001 * R * R))
    visible_min = [int((np.bincount(views.instance[v].ravel())[1:] >= min_px).sum()) for v in range(V)]
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    children_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "backend": cfg.backend,
        "num_objects": cfg.num_objects,
        "views": V,
        "resolution": R,
        "config_source": str(source.relative_to(REPO)),
        "seed": cfg.seed,
        "base_focal_length": cfg.base_focal_length,
        "samples_per_pixel": cfg.kubric.samples_per_pixel if cfg.backend == "kubric" else None,
        "views_per_render_call": cfg.kubric.views_per_render_call if cfg.backend == "kubric" else None,
        "objects_placed": len(layout.objects),
        "physics": vars(layout.physics),
        "wall_s": wall,
        "cpu_s": cpu,
        "total_wall_s": time.perf_counter() - t_start,
        "import_wall_s": import_wall,
        "render_ticks": ticks,
        "peak_rss_after_import_mb": rss_after_import,
        "peak_rss_vmhwm_mb": _vm_hwm_mb(),
        "self_maxrss_mb": self_usage.ru_maxrss / 1024.0,
        "grandchildren_maxrss_mb": children_usage.ru_maxrss / 1024.0,
        "scene_bytes_on_disk": disk,
        "mean_visible_objects_per_view": float(np.mean(visible_1)),
        "mean_objects_per_view_min_pixels": float(np.mean(visible_min)),
        "min_pixels": min_px,
    }


# --------------------------------------------------------------------------------------------------------------
# Parent: one child process per run, figures, extrapolation, report
# --------------------------------------------------------------------------------------------------------------


def marginal_render_per_view(ticks: List[List[float]], total_views: int) -> Optional[float]:
    """Seconds per view after the first Blender call: ``(t_last - t_first_call) / (views_last - views_first_call)``
    from the progress time stamps ``[[views_done, seconds since the render started], ...]``; None when the views
    were rendered in a single call."""
    calls = [(d, t) for d, t in ticks if d > 0]
    if len(calls) < 2 or calls[-1][0] != total_views:
        return None
    (d0, t0), (d1, t1) = calls[0], calls[-1]
    return (t1 - t0) / (d1 - d0)


def extrapolate(run: Dict, target_views: int) -> Dict:
    """Linear extrapolation of a reduced-view run to ``target_views`` (see the module docstring)."""
    K = run["views"]
    per_view = run["render_marginal_s_per_view"]
    if per_view is None:
        per_view = run["wall_s"]["rendering"] / K
    render = run["wall_s"]["rendering"] + per_view * (target_views - K)
    seg = run["wall_s"]["segmenter"] * target_views / K
    write = run["wall_s"]["writing"] * target_views / K
    fixed = run["wall_s"]["backend_import"] + run["wall_s"]["layout_physics"]
    return {
        "views": target_views,
        "rendering_s": render,
        "segmenter_s": seg,
        "writing_s": write,
        "stages_total_s": fixed + render + seg + write,
        "held_arrays_mb": target_views * run["resolution"] ** 2 * BYTES_PER_PIXEL_HELD / 2**20,
    }


def run_one(spec: Dict, log_dir: Path) -> Dict:
    """Run one (backend, N) in a fresh child process; add its ``ru_maxrss`` (``os.wait4``) and the load average."""
    result_file = log_dir / f"{spec['backend']}_N{spec['num_objects']:03d}.json"
    log_file = log_dir / f"{spec['backend']}_N{spec['num_objects']:03d}.log"
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.bench_generate",
                "--child",
                json.dumps(spec),
                "--child-out",
                str(result_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise RuntimeError(
            f"bench child {spec['backend']} N={spec['num_objects']} failed (exit {proc.returncode});"
            f" log {log_file}:\n{tail}"
        )
    run = json.loads(result_file.read_text())
    run["process_wall_s"] = wall
    run["process_maxrss_mb"] = usage.ru_maxrss / 1024.0
    run["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    run["loadavg_before"], run["loadavg_after"] = list(load_before), list(os.getloadavg())
    run["render_marginal_s_per_view"] = marginal_render_per_view(run["render_ticks"], run["views"])
    run["render_s_per_view"] = run["wall_s"]["rendering"] / run["views"]
    return run


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _machine() -> Dict:
    mem = None
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
    }


def _f(x: Optional[float], nd: int = 1) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _load(run: Dict) -> str:
    return f"{run['loadavg_before'][0]:.1f} / {run['loadavg_after'][0]:.1f}"


def markdown(data: Dict) -> str:
    """The Markdown report (tables of :func:`main`'s JSON)."""
    s = data["settings"]
    lines = [
        "# Messy Rooms generator: cost per stage",
        "",
        f"Command: `{data['command']}`  ",
        f"Machine: {data['machine']['processor']}, {data['machine']['cpu_count']} CPUs, "
        f"{_f(data['machine']['memory_gib'])} GiB, Python {data['machine']['python']}; "
        f"started {data['started']}.  ",
        f"`uptime` before: `{data['uptime_before']}`  ",
        f"`uptime` after: `{data['uptime_after']}`  ",
        "",
    ]
    if data.get("note"):
        edited = (
            " (written after the run with `--rebuild-md`; it replaces the `--note` above)"
            if data.get("note_rewritten")
            else ""
        )
        lines += [f"Note{edited}: {data['note']}", ""]
    lines += [
        f"Scenes: `datasets/messy_rooms/configs/{s['environment']}_NNN.json` (seeds, focal length "
        f"{data['runs'][0]['base_focal_length'] if data['runs'] else '?'}, detic-like segmenter) with "
        f"{s['resolution']}x{s['resolution']} images. Wall seconds per stage (CPU seconds of all threads "
        "in brackets); peak RSS = `ru_maxrss` of the child process that ran the whole pipeline (imports "
        "included; the part taken by the imports alone in brackets). Load = 1-minute load average before / "
        "after the run.",
        "",
    ]
    fast = [r for r in data["runs"] if r["backend"] == "fast"]
    kub = [r for r in data["runs"] if r["backend"] == "kubric"]
    if fast:
        lines += [
            "## fast backend (measured)",
            "",
            "| N | placed | views | layout + physics | rendering | per view | segmenter | writing | total | "
            "peak RSS MiB | on disk MiB | objects / view | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in fast:
            w, c = r["wall_s"], r["cpu_s"]
            lines.append(
                f"| {r['num_objects']} | {r['objects_placed']} | {r['views']} | {_f(w['layout_physics'])} "
                f"({_f(c['layout_physics'])}) | {_f(w['rendering'])} ({_f(c['rendering'])}) | "
                f"{_f(r['render_s_per_view'], 2)} | {_f(w['segmenter'])} ({_f(c['segmenter'])}) | "
                f"{_f(w['writing'])} ({_f(c['writing'])}) | {_f(r['total_wall_s'])} | "
                f"{r['process_maxrss_mb']:.0f} ({r['peak_rss_after_import_mb']:.0f}) | "
                f"{r['scene_bytes_on_disk'] / 2**20:.0f} | {_f(r['mean_objects_per_view_min_pixels'])} | "
                f"{_load(r)} |"
            )
        lines += [
            "",
            f"`total` = the child's wall time (imports {_f(fast[0]['import_wall_s'])} s included). "
            f"`objects / view` = mean number of objects with at least {fast[0]['min_pixels']} pixels "
            "(0.1% of the image) per view.",
            "",
        ]
    if kub:
        K = kub[0]["views"]
        T = s["views"]
        lines += [
            f"## kubric backend (measured on {K} views; {T}-view figures extrapolated)",
            "",
            f"Blender Cycles, {kub[0]['samples_per_pixel']} samples per pixel, denoised, "
            f"{kub[0]['views_per_render_call']} views per Blender call.",
            "",
            f"| N | placed | backend import | layout + physics | rendering {K} views | one-off render set-up | "
            f"marginal per view | segmenter | writing | total ({K} views) | peak RSS MiB | load | "
            f"**extrapolated** rendering {T} views | **extrapolated** stages total {T} views |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in kub:
            w, c = r["wall_s"], r["cpu_s"]
            m = r["render_marginal_s_per_view"]
            setup = None if m is None else w["rendering"] - m * K
            ex = r["extrapolated"]
            lines.append(
                f"| {r['num_objects']} | {r['objects_placed']} | {_f(w['backend_import'])} | "
                f"{_f(w['layout_physics'])} ({_f(c['layout_physics'])}) | {_f(w['rendering'])} "
                f"({_f(c['rendering'])}) | {_f(setup)} | {_f(m, 2)} | {_f(w['segmenter'], 2)} | "
                f"{_f(w['writing'], 2)} | {_f(r['total_wall_s'])} | {r['process_maxrss_mb']:.0f} "
                f"({r['peak_rss_after_import_mb']:.0f}) | {_load(r)} | {_f(ex['rendering_s'])} "
                f"({_f(ex['rendering_s'] / 60)} min) | {_f(ex['stages_total_s'])} "
                f"({_f(ex['stages_total_s'] / 60)} min) |"
            )
        lines += [
            "",
            f"`one-off render set-up` = rendering time minus `marginal per view` x {K} (Blender scene "
            "building: subdivided object meshes, baked room textures, first BVH). `marginal per view` = time "
            "between the first and the last Blender call's progress stamps per view rendered in between. "
            f"Extrapolated rendering = measured + marginal x ({T} - {K}); extrapolated total = backend import "
            f"+ layout + extrapolated rendering + segmenter and writing scaled by {T}/{K} (the imports of lift3d "
            f"itself, about 1 s, are left out). Peak RSS is measured for {K} views: the stages hand "
            f"{BYTES_PER_PIXEL_HELD} bytes per pixel and view to each other, i.e. about "
            f"{kub[0]['extrapolated']['held_arrays_mb']:.0f} MiB of image arrays for {T} views against "
            f"{K * s['resolution'] ** 2 * BYTES_PER_PIXEL_HELD / 2**20:.0f} MiB for {K}, so a {T}-view run "
            "needs about the difference more (not measured).",
            "",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> Dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backends", nargs="+", default=["fast", "kubric"], choices=["fast", "kubric"])
    ap.add_argument("--objects", nargs="+", type=int, default=[25, 100, 500], help="scene sizes N")
    ap.add_argument("--views", type=int, default=100, help="views per scene (fast backend; kubric target)")
    ap.add_argument(
        "--kubric-views",
        type=int,
        default=8,
        help="views the kubric backend actually renders (its figures for --views are extrapolated)",
    )
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--environment", default="old_room", choices=["old_room", "large_corridor"])
    ap.add_argument(
        "--kubric-spp", type=int, default=None, help="Cycles samples per pixel (default: KubricConfig's default)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder for the written scenes (default: tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the written scenes in --work")
    ap.add_argument("--note", default="", help="a line written under the header of the Markdown report")
    ap.add_argument(
        "--rebuild-md",
        action="store_true",
        help="only rewrite OUT/generate-benchmark.md from OUT/generate-benchmark.json (with --note: "
        "replace the recorded note)",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child is not None:
        result = run_child(json.loads(args.child))
        Path(args.child_out).write_text(json.dumps(result, indent=1))
        return result

    if args.rebuild_md:
        json_path = args.out / "generate-benchmark.json"
        data = json.loads(json_path.read_text())
        if args.note:
            data["note"], data["note_rewritten"] = args.note, True
            json_path.write_text(json.dumps(data, indent=1))
        (args.out / "generate-benchmark.md").write_text(markdown(data))
        return data

    argv_list = sys.argv[1:] if argv is None else list(argv)
    command = ".venv/bin/python -m tools.bench_generate" + ("" if not argv_list else " " + shlex.join(argv_list))
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lift3d_bench_")) if args.work is None else args.work
    work.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="lift3d_bench_logs_"))
    data = {
        "command": command,
        "machine": _machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "uptime_before": _uptime(),
        "note": args.note,
        "settings": {
            "views": args.views,
            "kubric_views": args.kubric_views,
            "resolution": args.resolution,
            "environment": args.environment,
            "kubric_spp": args.kubric_spp,
            "objects": args.objects,
            "backends": args.backends,
        },
        "runs": [],
    }
    json_path, md_path = args.out / "generate-benchmark.json", args.out / "generate-benchmark.md"
    for backend in args.backends:
        for n in args.objects:
            views = args.views if backend == "fast" else min(args.kubric_views, args.views)
            spec = {
                "backend": backend,
                "num_objects": n,
                "views": views,
                "resolution": args.resolution,
                "environment": args.environment,
                "kubric_spp": args.kubric_spp,
                "work": str(work),
                "keep": args.keep,
            }
            print(f"[bench] {backend} N={n} views={views} {args.resolution}x{args.resolution} ...", flush=True)
            run = run_one(spec, log_dir)
            if backend == "kubric":
                run["extrapolated"] = extrapolate(run, args.views)
            data["runs"].append(run)
            print(
                f"[bench]   total {run['total_wall_s']:.1f} s, stages "
                + ", ".join(f"{k} {v:.1f}" for k, v in run["wall_s"].items())
                + f" s, peak RSS {run['process_maxrss_mb']:.0f} MiB, load {_load(run)}",
                flush=True,
            )
            data["uptime_after"] = _uptime()
            json_path.write_text(json.dumps(data, indent=1))  # partial results survive an interrupted run
            md_path.write_text(markdown(data))
    if args.work is None and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(log_dir, ignore_errors=True)  # kept (and named in the error) when a child fails
    print(f"[bench] wrote {json_path} and {md_path}")
    return data


if __name__ == "__main__":
    main()
