"""GPU benchmark of the ``gpu-fast`` preset: a 600-view 256x256 Messy Rooms scene generated, fitted and evaluated,
one JSON line out (issue 14: at most 10 minutes on one H100 / H200, the whole script under 8).

Stages, each timed (wall seconds, and iterations per second where there are iterations): ``generate``
(:func:`lift3d.generate.generate_scene`, reused when ``--work/scene`` holds it), ``fit`` (``lift3d fit`` with
``--preset``, its clustering included), ``eval`` (``lift3d eval``: renders the test views, PQ^scene). Also
recorded: peak GPU memory (``torch.cuda.max_memory_allocated``), the backends the fit used and the GPU's name::

    python -m tools.bench_gpu --work /tmp/bench-gpu --out docs/results/gpu/gpu-fast.json

Without CUDA the script refuses (exit 2) unless ``--smoke``: a seconds-long CPU run of the same stages on a tiny
scene and the ``tiny`` preset (what the test exercises). The GPU machine has no network, so nerfacc and
tinycudann travel as wheels: ``--wheels DIR`` installs every ``DIR/*.whl`` into ``DIR/site`` (pip, no index) and
puts it first on ``sys.path`` before anything is imported; download them where pip works with
``pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64 -d DIR
nerfacc==0.5.3`` (see the device notes). A backend that cannot run is reported in ``backends`` (the fit then
uses the torch twin: the figure would not be the CUDA path's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def install_wheels(wheels: Path) -> None:
    """pip-install ``wheels/*.whl`` (no index, no dependencies) into ``wheels/site`` and put it on ``sys.path``."""
    site = wheels / "site"
    files = sorted(str(p) for p in wheels.glob("*.whl"))
    if files and not site.exists():
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site), *files]
        subprocess.run(cmd, check=True)
    sys.path.insert(0, str(site))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="folder for the scene and the run")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (one line)")
    p.add_argument("--objects", type=int, default=25)
    p.add_argument("--views", type=int, default=600)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--preset", default="gpu-fast")
    p.add_argument("--iterations", type=int, default=None, help="override the preset's iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wheels", type=Path, default=None, help="folder of wheels to install first (no network)")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run of the same stages (tests)")
    args = p.parse_args(argv)
    if args.wheels:
        install_wheels(args.wheels)

    import torch

    cuda = torch.cuda.is_available()
    if args.smoke:
        args.objects, args.views, args.resolution, args.preset = 4, 6, 32, "tiny"
        args.iterations = args.iterations or 20
    elif not cuda:
        print(
            "tools/bench_gpu.py: no CUDA device (torch.cuda.is_available() is False); run it on a GPU machine, "
            "or pass --smoke for the tiny CPU version.",
            file=sys.stderr,
        )
        raise SystemExit(2)

    from lift3d.cli import entrypoint as lift3d
    from lift3d.generate import MessyRoomsConfig, generate_scene

    device = "cuda" if cuda and not args.smoke else "cpu"
    scene, run = args.work / "scene", args.work / "run"
    result = {"preset": args.preset, "objects": args.objects, "views": args.views, "resolution": args.resolution}
    result["gpu"] = torch.cuda.get_device_name(0) if device == "cuda" else None
    stages = {}

    t0 = time.perf_counter()
    if not (scene / "transforms.json").exists():
        cfg = MessyRoomsConfig(
            num_objects=args.objects, num_views=args.views, resolution=args.resolution, seed=args.seed
        )
        generate_scene(cfg, scene, progress=not args.smoke, overwrite=True)
    stages["generate"] = {"seconds": round(time.perf_counter() - t0, 1)}

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fit_args = ["fit", str(scene), "--out", str(run), "--preset", args.preset, "--set", f"device={device}"]
    if args.iterations:
        fit_args += ["--iterations", str(args.iterations)]
    lift3d(fit_args)
    fit_seconds = time.perf_counter() - t0
    summary = json.loads((run / "fit.json").read_text())
    iterations = summary.get("iterations") or args.iterations
    stages["fit"] = {
        "seconds": round(fit_seconds, 1),
        "iterations": iterations,
        "it_per_s": round(iterations / fit_seconds, 2) if iterations else None,
        "it_per_s_training": summary.get("iterations_per_second"),
    }
    stages["fit"]["of_which_clustering_seconds"] = summary.get("clustering_seconds")
    from lift3d.backends import resolve_backends
    from lift3d.presets import get_preset

    model_cfg = get_preset(args.preset).model
    backends = resolve_backends(device, model_cfg.volume_rendering_backend, model_cfg.radiance.hash_implementation)
    result["backends"] = backends.describe()
    result["packed_sampling"] = model_cfg.packed_sampling

    t0 = time.perf_counter()
    lift3d(["eval", str(run)])
    stages["eval"] = {"seconds": round(time.perf_counter() - t0, 1)}
    metrics = json.loads((run / "metrics.json").read_text())
    result["pq_scene"] = metrics.get("pq_scene")
    result["stages"] = stages
    result["seconds_total"] = round(sum(s["seconds"] for s in stages.values()), 1)
    result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2) if device == "cuda" else None
    line = json.dumps(result)
    print(line)
    if args.out:
        from lift3d.io import atomic_write_json

        atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
