"""Why sparse depth (SfM points: ~0.4% of pixels valid) made a fit worse than no depth, measured variant by variant.

The scene is a generated one (exact depth everywhere). In memory, with no file written, each variant changes one
thing: depth kept on a fixed random ``--density`` fraction of every frame's pixels (the others 0 = unknown, as
nerfstudio writes SfM depth), or dropped, or dense; the scene's ``aabb`` removed (real captures have none, so the
field's box comes from :func:`lift3d.data.rays.scene_bounds`) or given; the depth-guided samples or the depth /
line-of-sight losses switched off. Each variant is fitted ``--iterations`` steps of the preset with the same seed;
the JSON records the final running rgb loss, the test-view PSNR and the modelled box.

    flock /tmp/lift3d-heavy.lock .venv/bin/python -m tools.study_sparse_depth --scene SCENE --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np

from lift3d.data.loading import load_scene
from lift3d.data.rays import load_pixel_set, scene_bounds
from lift3d.data.scene import FrameData, Scene
from lift3d.engine.inference import render_pixel_set
from lift3d.engine.trainer import Trainer
from lift3d.io.atomic import atomic_write_json
from lift3d.metrics.image import psnr
from lift3d.presets import get_preset


@dataclasses.dataclass
class SparseDepth:
    """Frame adapter: keeps depth on a fixed random ``density`` fraction of each frame's pixels, 0 elsewhere."""

    density: float
    seed: int = 0

    def adapt_frame(self, scene: Scene, index: int, data: FrameData) -> FrameData:
        if data.depth is not None:
            keep = np.random.default_rng(self.seed + index).random(data.depth.shape) < self.density
            data.depth = np.where(keep, data.depth, 0.0).astype(np.float32)
        return data


BEFORE = ["losses.depth_weight_per_pixel=False"]
"""The depth terms as they were: plain means over the rays that carry depth."""
VARIANTS = {
    "no depth": dict(depth="none"),
    "dense": dict(depth="dense"),
    "sparse, before (mean over rays with depth)": dict(depth="sparse", cfg=BEFORE),
    "sparse, before, box from cameras": dict(depth="sparse", box="cameras", cfg=BEFORE),
    "sparse, before, no depth-guided samples": dict(depth="sparse", cfg=[*BEFORE, "model.depth_guided_samples=0"]),
    "sparse, no depth / line-of-sight losses": dict(
        depth="sparse", cfg=["losses.depth_weight=0", "losses.free_space_weight=0"]
    ),
    "sparse, after (weighted per depth pixel)": dict(depth="sparse"),
}


def variant_scene(base: Scene, spec: dict, density: float, aabb_given: bool) -> Scene:
    scene = dataclasses.replace(base, aabb=base.aabb if aabb_given else None)
    if spec["depth"] == "none":
        frames = [dataclasses.replace(f, depth_path=None) for f in base.frames]
        scene = dataclasses.replace(scene, frames=frames, has_depth=False)
    elif spec["depth"] == "sparse":
        scene = dataclasses.replace(scene, frame_adapter=SparseDepth(density))
    if spec.get("box") == "cameras":  # the box the fit would take with no depth at all
        scene = dataclasses.replace(scene, aabb=scene_bounds(scene, None))
    return scene


def run_variant(name: str, scene: Scene, args, overrides: list[str]) -> dict:
    from lift3d.config_io import apply_overrides

    cfg = apply_overrides(get_preset(args.preset), [f"optim.iterations={args.iterations}", *overrides])
    cfg.threads = args.threads
    lines: list[str] = []
    t0 = time.perf_counter()
    trainer = Trainer(scene, cfg, Path(args.out) / "runs" / re.sub(r"[^a-z0-9]+", "_", name), False, lines.append)
    summary = trainer.fit()
    test = load_pixel_set(scene, scene.test_indices)
    renders = render_pixel_set(trainer.model, test, cfg.render_chunk)
    psnrs = [psnr(r.rgb, test.rgb[test.view_rows(p)].reshape(*test.sizes[p], 3).numpy()) for p, r in enumerate(renders)]
    return {
        "variant": name,
        "overrides": overrides,
        "rgb_loss_final": summary["final_losses"].get("rgb"),
        "history": trainer.history,
        "test_psnr": round(float(np.mean(psnrs)), 3),
        "box": np.round(trainer.aabb, 3).tolist(),
        "box_size": np.round(trainer.aabb[1] - trainer.aabb[0], 3).tolist(),
        "log": lines,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--density", type=float, default=0.0036)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--aabb-given", action="store_true", help="keep the scene's aabb (default: removed)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    base = load_scene(args.scene)
    results = []
    for name in args.variants:
        spec = VARIANTS[name]
        res = run_variant(name, variant_scene(base, spec, args.density, args.aabb_given), args, spec.get("cfg", []))
        results.append(res)
        print(
            f"{name:42s} rgb {res['rgb_loss_final']:.4f}  test PSNR {res['test_psnr']:.2f} dB  "
            f"box size {res['box_size']}  ({res['seconds']} s)",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        args.out / "sparse_depth.json",
        {
            "scene": str(args.scene),
            "density": args.density,
            "iterations": args.iterations,
            "preset": args.preset,
            "aabb_given": args.aabb_given,
            "results": results,
        },
    )
    print(json.dumps({r["variant"]: [r["rgb_loss_final"], r["test_psnr"]] for r in results}))


if __name__ == "__main__":
    main()
