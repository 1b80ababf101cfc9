"""Inference speed of the 2D networks on the CPU: frames per second at 256x256 (or ``--size``).

For each network preset (``cpu-small``, ``paper``) the network's forward pass alone is timed on random images
(weights untouched: the cost does not depend on them). With ``--model RUN2D`` the full prediction of a trained
network (forward + seed-driven clustering + id maps, :meth:`lift3d.twod.model.TwodModel.predict`) is timed on the
frames of ``--scene`` resized to the size (bilinear), which is what ``lift3d segments predict`` pays per view.
Every figure is the median over ``--frames`` timed frames after ``--warmup`` untimed ones, with ``--threads``
torch threads, on whatever else the machine is running (its load average is recorded).

    .venv/bin/python -m tools.bench_twod --out docs/results/twod-spatial-embeddings/bench.json \
        --model outputs/twod/run --scene outputs/twod/scenes/unseen100
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lift3d.io import atomic_write_json
from lift3d.twod.network import NETWORK_PRESETS, BranchedERFNet


def _median_seconds(fn, warmup: int, frames: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_forward(preset: str, size: int, warmup: int, frames: int) -> dict:
    net = BranchedERFNet(NETWORK_PRESETS[preset], n_seed=1, n_classes=2).eval()
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        s = _median_seconds(lambda: net(x), warmup, frames)
    return {
        "preset": preset,
        "parameters": sum(p.numel() for p in net.parameters()),
        "seconds_per_frame": round(s, 5),
        "frames_per_second": round(1.0 / s, 2),
    }


def bench_predict(model_dir: Path, scene: Path, size: int, warmup: int, frames: int) -> dict:
    from lift3d.twod.dataset import FrameDataset
    from lift3d.twod.model import load_twod_model

    model, state = load_twod_model(model_dir)
    data = FrameDataset([scene], classes=model.classes)
    images = []
    for i in range(min(len(data), warmup + frames)):
        rgb = torch.from_numpy(data.raw(i)[0]).permute(2, 0, 1)[None].float()
        big = torch.nn.functional.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)[0]
        images.append(big.clamp(0, 255).round().to(torch.uint8))
    counter = {"i": 0, "instances": []}

    def one():
        p = model.predict(images[counter["i"] % len(images)])
        counter["instances"].append(len(p.instances))
        counter["i"] += 1

    s = _median_seconds(one, warmup, frames)
    return {
        "model": str(model_dir),
        "step": int(state["step"]),
        "preset_widths": list(model.network_cfg.widths),
        "seconds_per_frame": round(s, 5),
        "frames_per_second": round(1.0 / s, 2),
        "mean_instances_per_frame": round(float(np.mean(counter["instances"])), 2),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--frames", type=int, default=15)
    p.add_argument("--presets", nargs="+", default=["cpu-small", "paper"])
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--scene", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    result = {
        "command": " ".join(["python -m tools.bench_twod"] + sys.argv[1:]),
        "size": a.size,
        "threads": a.threads,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "torch": torch.__version__,
        "load_average_before": list(os.getloadavg()),
        "forward": [bench_forward(pr, a.size, a.warmup, a.frames) for pr in a.presets],
    }
    if a.model is not None and a.scene is not None:
        result["predict"] = bench_predict(a.model, a.scene, a.size, a.warmup, a.frames)
    result["load_average_after"] = list(os.getloadavg())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out, result)
    for r in result["forward"]:
        print(f"forward {r['preset']:<10} {r['frames_per_second']:7.2f} fps ({r['parameters']} parameters)")
    if "predict" in result:
        print(f"predict (forward + clustering) {result['predict']['frames_per_second']:.2f} fps")
    return result


if __name__ == "__main__":
    main()
