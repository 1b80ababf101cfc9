"""Cost per frame of the coherent-depth-region grouping and of a copy-paste (paper 003), on generated frames.

For every ``--sizes`` entry a Messy Rooms scene is generated in memory (fast backend, ``--trajectory`` ``video`` by
default: the robot-height sequences the copy-paste pretraining reads; ``dome``: the lift's views) with
``--frames`` frames, and on each frame :func:`lift3d.twod.regions.coherent_depth_regions` is timed as a whole (what
a caller pays) and stage by stage (SLIC; centroids + adjacency + weights; community detection; merging), then
:func:`lift3d.twod.copy_paste.paste_regions` pastes frame ``t``'s regions into frame ``t + 1``. Every time is the
median over the frames; the scene's depth is the renderer's (not a network's). Alongside the cost, what the regions
are on these frames: regions per frame, the fraction of ground-truth objects that one region matches with
IoU >= 0.5 (``object_recall``) and the 3D distance below which neighbouring superpixels merge
(``merge_distance_m``, from the frame's depth range). ``--picture`` draws one frame's image, depth, regions, ground-truth instances and
a paste.

    flock /tmp/lift3d-heavy.lock .venv/bin/python -m tools.bench_regions \
        --out docs/results/twod-copy-paste/bench_regions.json --picture docs/results/twod-copy-paste/regions.png
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from lift3d.io import atomic_write_bytes, atomic_write_json
from lift3d.twod import regions as R
from lift3d.twod.copy_paste import CopyPasteConfig, paste_regions


def pinhole(size: int, fov_deg: float = 70.0) -> np.ndarray:
    """``[3, 3]`` intrinsics of a square ``size`` px image with a ``fov_deg`` field of view."""
    focal = 0.5 * size / np.tan(np.radians(fov_deg) / 2)
    return np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1.0]])


def render_rectangles(rectangles, intrinsics: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast rectangles ``(corner, edge_1, edge_2)`` (camera frame: x right, y down, z forward): optical-axis
    depth ``[H, W]`` (0 where nothing is hit) and the index of the visible rectangle ``[H, W]`` (-1 none)."""
    v, u = np.mgrid[0:size, 0:size]
    rays = np.stack([u + 0.5, v + 0.5, np.ones((size, size))], axis=-1) @ np.linalg.inv(intrinsics).T  # z = 1
    depth = np.full((size, size), np.inf)
    index = np.full((size, size), -1)
    for k, (corner, edge_1, edge_2) in enumerate(np.asarray(r, dtype=np.float64) for r in rectangles):
        normal = np.cross(edge_1, edge_2)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (corner @ normal) / (rays @ normal)  # ray parameter = optical-axis depth since d_z = 1
        local = t[..., None] * rays - corner
        a, b = local @ edge_1 / (edge_1 @ edge_1), local @ edge_2 / (edge_2 @ edge_2)
        hit = (t > 0) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1) & (t < depth)
        depth[hit], index[hit] = t[hit], k
    depth[~np.isfinite(depth)] = 0.0
    return depth.astype(np.float32), index


#: floor, back wall, a side wall and a box face; every pair that touches in the image is >= 1.5 m apart in 3D there
SEPARATED_PLANES = [
    ([-12, -12, 10], [24, 0, 0], [0, 24, 0]),  # back wall, z = 10
    ([-3, 1.5, 1.5], [6, 0, 0], [0, 0, 5.5]),  # floor, y = 1.5, from z = 1.5 to 7
    ([-2.8, -2.5, 3.0], [0, 0, 3.5], [0, 3.3, 0]),  # side wall panel, x = -2.8, z 3..6.5, above the floor
    ([0.3, -0.2, 3.0], [1.2, 0, 0], [0, 1.0, 0]),  # box face, z = 3
]
PLANE_COLOURS = np.array([[200, 200, 180], [120, 90, 60], [90, 140, 200], [220, 60, 60]])


def textured_planes(index: np.ndarray, seed: int = 0) -> np.ndarray:
    """``[H, W, 3]`` uint8: each plane's colour of :data:`PLANE_COLOURS` with Gaussian noise (std 6)."""
    noise = np.random.default_rng(seed).normal(0, 6, index.shape + (3,))
    return np.clip(PLANE_COLOURS[index] + noise, 0, 255).astype(np.uint8)


def generated_frames(size: int, frames: int, trajectory: str, seed: int) -> dict:
    """``frames`` rendered frames of one generated scene: rgb ``[T, S, S, 3]``, depth ``[T, S, S]``, instance, K."""
    from lift3d.generate.config import MessyRoomsConfig, VideoConfig
    from lift3d.generate.layout import make_layout
    from lift3d.generate.pipeline import render

    cfg = MessyRoomsConfig(
        num_views=frames,
        resolution=size,
        seed=seed,
        trajectory=trajectory,
        video=VideoConfig(num_clips=1, frames_per_clip=frames),
    )
    layout = make_layout(cfg)
    if trajectory == "video":
        from lift3d.generate.trajectory import video_layout

        layout, _ = video_layout(layout, cfg)
    views = render(layout, cfg)
    k = layout.intrinsics
    intrinsics = np.array([[k.fx, 0, k.cx], [0, k.fy, k.cy], [0, 0, 1.0]])
    return {"rgb": views.rgb, "depth": views.depth, "instance": views.instance, "intrinsics": intrinsics}


def staged_regions(image, depth, intrinsics, config: R.DepthRegionConfig) -> dict:
    """The steps of :func:`coherent_depth_regions` timed one by one (seconds)."""
    times = {}
    t0 = time.perf_counter()
    depth = depth.astype(np.float64)
    valid = depth > 0
    labels = R.superpixels(image, valid, R.superpixel_size(intrinsics, config), config)
    t1 = time.perf_counter()
    centroids = R.superpixel_centroids(labels, depth, intrinsics)
    edges = R.superpixel_adjacency(labels)
    weight = R.depth_edge_weight(
        centroids, edges, depth[valid].min(), depth[valid].max(), config.distance_gain, config.distance_offset
    )
    t2 = time.perf_counter()
    community = R.detect_communities(len(centroids), edges, 1.0 - weight, config)
    t3 = time.perf_counter()
    R.merge_communities(community, edges, weight, config.merge_threshold)
    t4 = time.perf_counter()
    times["slic"], times["graph"], times["communities"], times["merge"] = t1 - t0, t2 - t1, t3 - t2, t4 - t3
    times["superpixels"] = int(labels.max()) + 1
    times["communities_found"] = int(community.max()) + 1
    return times


def object_recall(regions: np.ndarray, instance: np.ndarray) -> tuple[int, int]:
    """(objects matched by one region with IoU >= 0.5, objects); ``instance`` 0 is the background."""
    found, total = 0, 0
    for obj in np.unique(instance[instance > 0]):
        mask = instance == obj
        total += 1
        ids, overlap = np.unique(regions[mask], return_counts=True)
        sizes = np.array([(regions == i).sum() for i in ids])
        iou = overlap / (sizes + mask.sum() - overlap)
        found += int(iou.max() >= 0.5)
    return found, total


def merge_distance(depth: np.ndarray, config: R.DepthRegionConfig) -> float:
    """Centroid distance at which the weight reaches the merge threshold: ``(logit(0.2) + 4) (z_min + z_max) / 48``."""
    known = depth[depth > 0]
    logit = np.log(config.merge_threshold / (1 - config.merge_threshold))
    return float((logit + config.distance_offset) * (known.min() + known.max()) / config.distance_gain)


def bench_size(size: int, args, config: R.DepthRegionConfig, paste_config: CopyPasteConfig) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    data = generated_frames(size, args.frames, args.trajectory, args.seed)
    generate_s = time.perf_counter() - t0
    K = data["intrinsics"]
    totals, stages, pastes, pasted_pixels, num_regions = [], [], [], [], []
    found = total = 0
    region_maps = []
    R.coherent_depth_regions(data["rgb"][0], data["depth"][0], K, config)  # warm-up (imports, caches), untimed
    for t in range(args.frames):
        t1 = time.perf_counter()
        regions = R.coherent_depth_regions(data["rgb"][t], data["depth"][t], K, config)
        totals.append(time.perf_counter() - t1)
        region_maps.append(regions)
        stages.append(staged_regions(data["rgb"][t], data["depth"][t], K, config))
        num_regions.append(int(regions.max()) + 1)
        f, n = object_recall(regions, data["instance"][t])
        found, total = found + f, total + n
    rng = np.random.default_rng(args.seed)
    pairs = []
    for t in range(args.frames - 1):
        t1 = time.perf_counter()
        pair = paste_regions(
            data["rgb"][t],
            data["depth"][t],
            region_maps[t],
            data["rgb"][t + 1],
            data["depth"][t + 1],
            rng,
            paste_config,
        )
        pastes.append(time.perf_counter() - t1)
        pasted_pixels.append(len(pair.pasted_index))
        pairs.append(pair)
    result = {
        "size": size,
        "frames": args.frames,
        "focal_px": round(float(K[0, 0]), 2),
        "pixels_per_superpixel": round(R.superpixel_size(K, config), 2),
        "superpixels_median": statistics.median(s["superpixels"] for s in stages),
        "communities_before_merge_median": statistics.median(s["communities_found"] for s in stages),
        "regions_per_frame": num_regions,
        "object_recall_iou50": round(found / max(total, 1), 3),
        "merge_distance_m_median": round(statistics.median(merge_distance(d, config) for d in data["depth"]), 3),
        "objects": total,
        "regions_seconds_per_frame": round(statistics.median(totals), 5),
        "stage_seconds_per_frame": {
            key: round(statistics.median(s[key] for s in stages), 5)
            for key in ("slic", "graph", "communities", "merge")
        },
        "paste_seconds_per_frame": round(statistics.median(pastes), 5) if pastes else None,
        "pasted_pixels_per_frame": pasted_pixels,
        "generate_seconds": round(generate_s, 2),
    }
    example = {"data": data, "regions": region_maps, "pairs": pairs}
    return result, example


def draw_picture(example: dict, path: Path) -> None:
    """Two rows: a generated frame (image, depth, regions, ground truth, the frame's regions pasted into the next
    frame, for the frame pair with the most pasted pixels) and the analytic planes scene of the tests."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import mark_boundaries

    data, pairs = example["data"], example["pairs"]
    t = int(np.argmax([len(p.pasted_index) for p in pairs]))
    pair, regions = pairs[t], example["regions"][t]
    pasted = np.zeros(regions.size, bool)
    pasted[pair.pasted_index] = True
    size = regions.shape[0]
    intrinsics = pinhole(size)
    depth, plane = render_rectangles(SEPARATED_PLANES, intrinsics, size)
    image = textured_planes(plane)
    plane_regions = R.coherent_depth_regions(image, depth, intrinsics)
    superpixels = R.superpixels(
        image, depth > 0, R.superpixel_size(intrinsics, R.DepthRegionConfig()), R.DepthRegionConfig()
    )
    rows = [
        [
            (f"generated frame {t}", data["rgb"][t], {}),
            ("depth (m)", data["depth"][t], {"cmap": "viridis"}),
            (f"regions ({regions.max() + 1})", mark_boundaries(data["rgb"][t], regions), {}),
            ("ground-truth instances", data["instance"][t], {"cmap": "tab20", "interpolation": "nearest"}),
            (f"pasted into frame {t + 1}", mark_boundaries(pair.pasted, pasted.reshape(regions.shape)), {}),
        ],
        [
            ("analytic planes (tests)", image, {}),
            ("depth (m)", depth, {"cmap": "viridis"}),
            (f"regions ({plane_regions.max() + 1})", mark_boundaries(image, plane_regions), {}),
            ("planes", plane, {"cmap": "tab20", "interpolation": "nearest"}),
            (f"superpixels ({superpixels.max() + 1})", mark_boundaries(image, superpixels), {}),
        ],
    ]
    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(3.2 * len(rows[0]), 3.4 * len(rows)))
    for row_axes, row in zip(axes, rows):
        for ax, (title, img, kw) in zip(row_axes, row):
            ax.imshow(img, **kw)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--frames", type=int, default=8, help="frames per size (one clip)")
    parser.add_argument("--trajectory", choices=["video", "dome"], default="video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="JSON with the figures")
    parser.add_argument("--picture", type=Path, default=None, help="PNG of one frame's regions and a paste")
    parser.add_argument("--picture-size", type=int, default=128)
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be >= 2 (a paste needs a source and a target frame)")
    config, paste_config = R.DepthRegionConfig(), CopyPasteConfig()
    results = []
    for size in args.sizes:
        result, example = bench_size(size, args, config, paste_config)
        results.append(result)
        print(
            f"{size:4d} px: regions {result['regions_seconds_per_frame'] * 1e3:7.1f} ms/frame "
            f"{result['stage_seconds_per_frame']}, paste {result['paste_seconds_per_frame'] * 1e3:6.1f} ms, "
            f"regions/frame {result['regions_per_frame']}, object recall {result['object_recall_iou50']}",
            flush=True,
        )
        if args.picture is not None and size == args.picture_size:
            draw_picture(example, args.picture)
    record = {
        "what": "coherent_depth_regions and paste_regions, median seconds per generated frame",
        "command": "python -m tools.bench_regions " + " ".join(sys.argv[1:] if argv is None else argv),
        "trajectory": args.trajectory,
        "depth_region_config": vars(config),
        "copy_paste_config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(paste_config).items()},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
        "results": results,
    }
    atomic_write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
