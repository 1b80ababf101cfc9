"""Bounds experiment: PQ^scene of a scene fitted with its objects' box given (``aabb``) and without it (the automatic
foreground box, with and without the mip-NeRF 360 scene contraction), on generated open-floor and room scenes.

For every (environment, N): generate the scene (same layout seed for both environments, cameras low enough that
the open floor shows its horizon and sky), write a copy whose ``transforms.json`` has no ``aabb`` (the other files
linked), then for every variant fit with ``lift3d fit`` and score with ``lift3d eval``. Results go to
``OUT/bounds.json`` (every run's metrics, the box the fit used and its source) and ``OUT/bounds.md`` (the table).
A re-run skips variants whose ``metrics.json`` exists (``--fresh`` redoes them).

    python -m tools.bounds_study --out docs/results/own-data --work outputs/bounds
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

__all__ = ["VARIANTS", "main"]

VARIANTS = {
    "aabb": ("given", ["--model.scene-contraction", "none"]),
    "auto": ("removed", ["--model.scene-contraction", "none"]),
    "auto+contraction": ("removed", ["--model.scene-contraction", "mipnerf360"]),
    "aabb+contraction": ("given", ["--model.scene-contraction", "mipnerf360"]),
    "old-depth-box": ("removed", ["--model.scene-contraction", "none"]),
}
"""Variant name -> (the scene's aabb given or removed, extra ``lift3d fit`` options). ``old-depth-box`` is lift3d's
behaviour before the automatic foreground box: the 2nd-98th percentile box of depth back-projections (+5% margin),
given as ``--model.aabb``, no contraction."""


def old_depth_box(scene_dir: Path) -> list[float]:
    """The former ``scene_bounds`` without an ``aabb``: 2nd-98th percentiles of (up to 200,000, seed 0) depth
    back-projections of the training views, each side pushed out by 5% of the box's size."""
    import numpy as np
    import torch

    from lift3d.data.loading import load_scene
    from lift3d.data.rays import load_pixel_set

    scene = load_scene(scene_dir)
    pixels = load_pixel_set(scene, scene.train_indices)
    valid = torch.nonzero(pixels.depth > 0).squeeze(-1)
    sel = valid[torch.randperm(valid.numel(), generator=torch.Generator().manual_seed(0))[:200_000]]
    o, d = pixels.rays(sel)
    pts = (o + d * pixels.depth[sel, None]).numpy()
    lo, hi = np.percentile(pts, 2, axis=0), np.percentile(pts, 98, axis=0)
    pad = (hi - lo) * 0.05 + 1e-3
    return [float(x) for x in np.concatenate([lo - pad, hi + pad])]


LIFT3D = [sys.executable, "-m", "lift3d.cli"]


def _run(cmd: list[str], log_path: Path) -> str:
    """Run ``cmd``, tee its output to ``log_path``; raise on failure. Returns the output."""
    print("$ " + shlex.join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}); see {log_path}")
    return proc.stdout


def num_views_for(n: int) -> int:
    """clamp(4 N, 100, 1200), as the cpu-small study (tools/study.py)."""
    return int(min(max(4 * n, 100), 1200))


def prepare_scene(work: Path, env: str, n: int, args) -> tuple[Path, Path]:
    """Generate (once) the scene and its copy without ``aabb``; returns (with_aabb, without_aabb) folders."""
    scene = work / "scenes" / f"{env}_{n:03d}"
    bare = work / "scenes" / f"{env}_{n:03d}_noaabb"
    if not (scene / "transforms.json").exists():
        cmd = LIFT3D + ["generate", "messy-rooms", "--num-objects", str(n), "--num-views", str(num_views_for(n))]
        cmd += ["--resolution", str(args.resolution), "--environment", env, "--seed", str(n), "--out", str(scene)]
        cmd += ["--base-focal-length", str(args.focal), "--camera-elevation-deg", *map(str, args.elevation)]
        _run(cmd, work / "logs" / f"generate_{env}_{n:03d}.log")
    if not (bare / "transforms.json").exists():
        bare.mkdir(parents=True, exist_ok=True)
        meta = json.loads((scene / "transforms.json").read_text())
        meta.pop("aabb")
        for entry in scene.iterdir():
            if entry.name != "transforms.json" and not (bare / entry.name).exists():
                os.symlink(entry.resolve(), bare / entry.name)
        (bare / "transforms.json").write_text(json.dumps(meta, indent=1))
    return scene, bare


def fit_and_eval(scene: Path, run: Path, extra: list[str], n: int, args, fresh: bool) -> dict:
    """``lift3d fit`` + ``lift3d eval``; returns the metrics and the box line of the fit log."""
    metrics_path = run / "metrics.json"
    if fresh or not metrics_path.exists():
        train_views = num_views_for(n) - round(0.2 * num_views_for(n))
        cmd = LIFT3D + ["fit", str(scene), "--out", str(run), "--preset", args.preset, "--seed", str(args.seed)]
        cmd += ["--threads", str(args.threads), "--cluster-views", str(min(max(round(0.25 * train_views), 6), 80))]
        cmd += ["--cluster.max-points", str(min(max(600 * n, 20_000), 60_000))]
        if args.iterations:
            cmd += ["--iterations", str(args.iterations)]
        start = time.time()
        out = _run(cmd + extra, run.parent / f"{run.name}.fit.log")
        fit_s = time.time() - start
        _run(LIFT3D + ["eval", str(run)], run.parent / f"{run.name}.eval.log")
        box = next((ln for ln in out.splitlines() if ln.startswith("foreground box from")), "")
        (run / "bounds_study.json").write_text(json.dumps({"box_line": box, "fit_and_cluster_s": round(fit_s, 1)}))
    info = json.loads((run / "bounds_study.json").read_text())
    metrics = json.loads(metrics_path.read_text())
    return {**info, "metrics": metrics}


def _pick(metrics: dict, *names: str) -> Optional[float]:
    for name in names:
        if name in metrics and isinstance(metrics[name], (int, float)):
            return float(metrics[name])
    return None


def write_table(results: list[dict], out: Path, command: str) -> None:
    rows = [
        "| environment | N | views | variant | aabb | PQ^scene | mIoU | PSNR | fit + clustering s | box |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["metrics"]
        pq, miou, psnr = _pick(m, "pq_scene", "PQ^scene"), _pick(m, "miou", "mIoU"), _pick(m, "psnr", "PSNR")
        box = re.sub(r"\s+", " ", r["box_line"].replace("foreground box from ", ""))
        rows.append(
            f"| {r['environment']} | {r['objects']} | {r['views']} | {r['variant']} | {r['aabb']} | "
            f"{pq:.4f} | {miou:.4f} | {psnr:.2f} | {r['fit_and_cluster_s']} | {box} |"
        )
    text = "\n".join(rows) + f"\n\nCommand: `{command}`\n"
    (out / "bounds-table.md").write_text(text)
    print(text)


def main(argv: Optional[list[str]] = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs/results/own-data"))
    ap.add_argument("--work", type=Path, default=Path("outputs/bounds"))
    ap.add_argument("--environments", nargs="+", default=["open_floor", "old_room"])
    ap.add_argument("--objects", nargs="+", type=int, default=[10, 40])
    ap.add_argument("--variants", nargs="+", default=["aabb", "auto+contraction"], choices=sorted(VARIANTS))
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--focal", type=float, default=2.0, help="generator base focal length (image widths)")
    ap.add_argument("--elevation", type=float, nargs=2, default=[8.0, 40.0], help="camera elevation range (deg)")
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--iterations", type=int, default=0, help="0 = the preset's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args(argv)
    command = "python -m tools.bounds_study " + shlex.join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "bounds.json"
    results = json.loads(json_path.read_text())["runs"] if json_path.exists() else []
    done = {(r["environment"], r["objects"], r["variant"]) for r in results}
    for env in args.environments:
        for n in args.objects:
            scene, bare = prepare_scene(args.work, env, n, args)
            for variant in args.variants:
                if (env, n, variant) in done and not args.fresh:
                    continue
                given, extra = VARIANTS[variant]
                if variant == "old-depth-box":
                    extra = extra + ["--model.aabb", *(f"{x:.4f}" for x in old_depth_box(bare))]
                run = args.work / "runs" / f"{env}_{n:03d}_{variant.replace('+', '_')}"
                r = fit_and_eval(scene if given == "given" else bare, run, extra, n, args, args.fresh)
                results = [x for x in results if (x["environment"], x["objects"], x["variant"]) != (env, n, variant)]
                results.append(
                    {"environment": env, "objects": n, "views": num_views_for(n), "variant": variant, "aabb": given} | r
                )
                tmp = json_path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"command": command, "runs": results}, indent=1))
                os.replace(tmp, json_path)
    results.sort(key=lambda r: (r["environment"], r["objects"], r["variant"]))
    write_table(results, args.out, command)
    return results


if __name__ == "__main__":
    main()
