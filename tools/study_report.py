"""Report of a study (tools/study.py): Markdown tables, the paper's claims checked against the numbers, PNG plots.

Input is the ``results.json`` dict; everything here is a pure function of it, so a report can be rebuilt without
re-running anything: ``python -m tools.study_report docs/results/cpu-small``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

__all__ = ["write_report", "markdown_report", "check_claims", "plot_pq", "plot_throughput", "plot_sweep"]

BASELINE_LABELS = {
    "2d-raw": "2D segmenter (no tracking)",
    "2d-track-iou": "2D + tracking (1) IoU",
    "2d-track-warp": "2D + tracking (2) depth warping",
    "2d-track-fusion": "2D + tracking (3) point-cloud fusion",
}
PAPER_PQ = {
    "slow-fast": (78.9, 75.8, 69.1, 55.0),
    "vanilla": (74.1, 71.2, 63.6, 49.7),
    "linear-assignment": (73.2, 69.9, 64.3, 51.0),
}
"""Contrastive Lift Table 2, old_room, N = 25, 50, 100, 500."""
PAPER_IT_S = {"slow-fast": (16.06, 16.06, 16.06, 16.06), "linear-assignment": (13.01, 12.53, 12.10, 9.41)}
"""Contrastive Lift Table 6 (A40): Contrastive Lift regardless of N; PanopLi for N = 25, 50, 100, 500."""


def _ns(data: dict) -> list[int]:
    return sorted(int(n) for n in data.get("scenes", {}))


def _lifted(data: dict) -> list[str]:
    return [m for m in data["study"]["methods"] if m in data["results"]]


def _baselines(data: dict) -> list[str]:
    return [b for b in BASELINE_LABELS if b in data["results"]]


def _get(data: dict, method: str, n: int, key: str) -> Optional[float]:
    v = data["results"].get(method, {}).get(str(n), {}).get(key)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _pq_things(data: dict, method: str, n: int) -> Optional[float]:
    """Mean PQ^scene over the scene's thing classes (Messy Rooms: class 1, the default when a study predates
    ``thing_ids``); None when the small-class rule dropped every thing class."""
    r = data["results"].get(method, {}).get(str(n), {})
    things = data["scenes"].get(str(n), {}).get("thing_ids") or [1]
    vals = [r["per_class"][str(c)]["pq"] for c in things if str(c) in r.get("per_class", {})]
    return float(sum(vals) / len(vals)) if vals else None


def _fmt(v: Optional[float], scale: float = 100.0, digits: int = 1) -> str:
    return "–" if v is None else f"{v * scale:.{digits}f}"


def _clusters(v) -> str:
    """Instances found: clusters summed over thing classes, or the argmax slots used (linear assignment)."""
    if isinstance(v, dict):
        return str(sum(int(x) for x in v.values()))
    return "" if v is None else str(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _metric_table(data: dict, key: str, methods: list[str], bold_best: bool = True) -> str:
    ns = _ns(data)
    best = {
        n: max((_get(data, m, n, key) for m in methods if _get(data, m, n, key) is not None), default=None) for n in ns
    }
    rows = []
    for m in methods:
        row = [BASELINE_LABELS.get(m, m)]
        for n in ns:
            v = _get(data, m, n, key)
            s = _fmt(v)
            s = f"**{s}**" if bold_best and v is not None and v == best[n] else s
            if data["results"].get(m, {}).get(str(n), {}).get("thing_scored") is False:
                s += " †"
            row.append(s)
        rows.append(row)
    return _table(["method"] + [f"N = {n}" for n in ns], rows)


def check_claims(data: dict) -> list[dict]:
    """The study's claims (issue items 5-6), each ``{"claim", "holds": True/False/None, "evidence"}``.

    None means the study lacks the entries to decide (a method or scene size was not run).
    """
    ns, res, tp = _ns(data), data["results"], data.get("throughput", {})
    out = []
    big = [n for n in (100, 500) if n in ns] or ns[-1:]
    order = ["slow-fast", "vanilla", "linear-assignment"]
    for n in big:
        vals = [_get(data, m, n, "pq_scene") for m in order]
        holds = None if None in vals else bool(vals[0] >= vals[1] >= vals[2])
        out.append(
            {
                "claim": f"slow-fast >= vanilla >= linear assignment in PQ^scene at N = {n}",
                "holds": holds,
                "evidence": ", ".join(f"{m} {_fmt(v)}" for m, v in zip(order, vals)),
            }
        )
    lifted, base = _lifted(data), _baselines(data)
    for n in ns:
        lv = {m: _get(data, m, n, "pq_scene") for m in lifted}
        bv = {b: _get(data, b, n, "pq_scene") for b in base}
        if not lv or not bv or None in lv.values() or None in bv.values():
            out.append(
                {
                    "claim": f"every lifted method above every 2D baseline at N = {n}",
                    "holds": None,
                    "evidence": "missing entries",
                }
            )
            continue
        worst_l = min(lv, key=lv.get)
        best_b = max(bv, key=bv.get)
        out.append(
            {
                "claim": f"every lifted method above every 2D baseline at N = {n}",
                "holds": bool(lv[worst_l] > bv[best_b]),
                "evidence": f"lowest lifted: {worst_l} {_fmt(lv[worst_l])}; best 2D: {best_b} {_fmt(bv[best_b])}",
            }
        )
    if "2d-raw" in res and "slow-fast" in res:
        for n in ns:
            a, b = _get(data, "slow-fast", n, "pq_frame"), _get(data, "2d-raw", n, "pq_frame")
            if a is not None and b is not None:
                out.append(
                    {
                        "claim": f"per-frame PQ of the lifted result (slow-fast) above the 2D input at N = {n} "
                        "(paper Table 5)",
                        "holds": bool(a > b),
                        "evidence": f"slow-fast {_fmt(a)}, 2D input {_fmt(b)}",
                    }
                )
    for n, by_d in data.get("embedding_sweep", {}).items():
        if "3" in by_d and len(by_d) > 1:
            best_d = max(by_d, key=lambda d: by_d[d]["pq_scene"])
            gap = by_d[best_d]["pq_scene"] - by_d["3"]["pq_scene"]
            out.append(
                {
                    "claim": f"D = 3 within 2 PQ points of the best embedding size at N = {n} (paper Fig. 5)",
                    "holds": bool(gap <= 0.02),
                    "evidence": f"D = 3: {_fmt(by_d['3']['pq_scene'])}; best D = {best_d}: "
                    f"{_fmt(by_d[best_d]['pq_scene'])}",
                }
            )
    if len(ns) >= 2:
        lo, hi = str(ns[0]), str(ns[-1])
        sf = tp.get("slow-fast", {})
        if lo in sf and hi in sf:
            r = sf[hi]["it_per_s"] / sf[lo]["it_per_s"]
            out.append(
                {
                    "claim": f"slow-fast instance-phase it/s at N = {hi} >= 0.9 x at N = {lo}",
                    "holds": bool(r >= 0.9),
                    "evidence": f"{sf[lo]['it_per_s']:.2f} -> {sf[hi]['it_per_s']:.2f} it/s (x{r:.2f})",
                }
            )
        la = tp.get("linear-assignment", {})
        if lo in la and hi in la:
            r = la[hi]["it_per_s"] / la[lo]["it_per_s"]
            out.append(
                {
                    "claim": f"linear-assignment instance-phase it/s falls from N = {lo} to N = {hi}",
                    "holds": bool(r < 1.0),
                    "evidence": f"{la[lo]['it_per_s']:.2f} (K = {la[lo].get('num_slots')}) -> {la[hi]['it_per_s']:.2f} it/s "
                    f"(K = {la[hi].get('num_slots')}) (x{r:.2f})",
                }
            )
    return out


def markdown_report(data: dict) -> str:
    ns, lifted, base = _ns(data), _lifted(data), _baselines(data)
    st = data["study"]
    inv = data.get("invocations", [])
    parts = [
        f"# Study `{st.get('config', '')}`: lifted methods vs 2D tracking on generated Messy Rooms scenes",
        "",
        f"Machine: {data['machine'].get('processor')}, "
        f"{data['machine'].get('cpu_count')} CPUs, torch {data['machine'].get('torch')} "
        f"({data['machine'].get('torch_threads')} threads), CUDA: {data['machine'].get('cuda')}  ",
        "Invocations (a later one resumes the earlier and adds what is missing):",
        "",
    ]
    parts += [
        f"- `{i['command']}`: {i['started']} -> {i['finished']}, wall time {i['wall_seconds'] / 60:.1f} min"
        for i in inv
    ]
    parts += [
        "",
        f"Scenes: segmenter noise `{st['segmenter_noise']}`, base preset `{st['preset']}`, one scene per N; "
        "shared fields (density, colour, semantics) fitted once per scene, then each method trains only its "
        "instance field. Values are x100.",
        "",
    ]
    parts += [
        "## PQ^scene on the test views (paper Tables 2 and 4)",
        "",
        _metric_table(data, "pq_scene", lifted + base),
        "",
    ]
    if any(r.get("thing_scored") is False for by_n in data["results"].values() for r in by_n.values()):
        parts += [
            "† no thing class was scored: the prediction has thing pixels, but fewer than 0.5% of the evaluated "
            "pixels, so the small-class rule of PQ^scene drops the class and the score is that of the stuff class "
            "alone (not an instance result). A prediction with no thing pixels at all keeps the class: its "
            "objects are false negatives.",
            "",
        ]
    paper = [m for m in lifted if m in PAPER_PQ]
    if paper:
        cols = [25, 50, 100, 500]
        parts += [
            "Contrastive Lift Table 2 (old_room) for reference:",
            "",
            _table(["method"] + [f"N = {n}" for n in cols], [[m] + [f"{v:.1f}" for v in PAPER_PQ[m]] for m in paper]),
            "",
        ]
    tp = data.get("throughput", {})
    if tp:
        rows = []
        for m, by_n in tp.items():
            row = [m]
            for n in ns:
                e = by_n.get(str(n))
                row.append(
                    "–"
                    if e is None
                    else f"{e['it_per_s']:.2f} ± {e['std']:.2f}"
                    + (f" (K = {e['num_slots']})" if e.get("num_slots") else "")
                )
            if len(ns) >= 2 and str(ns[0]) in by_n and str(ns[-1]) in by_n:
                row.append(f"{by_n[str(ns[-1])]['it_per_s'] / by_n[str(ns[0])]['it_per_s']:.2f}")
            else:
                row.append("–")
            rows.append(row)
        parts += [
            "## Instance-phase throughput (paper Table 6)",
            "",
            "Iterations per second of the instance phase alone (one training image per step, every other field "
            "frozen), measured round-robin over every (method, N) in one go: median over rounds ± std.",
            "",
            _table(["method"] + [f"N = {n}" for n in ns] + [f"N = {ns[-1]} / N = {ns[0]}"], rows),
            "",
        ]
        rows = [
            [m] + [f"{_get(data, m, n, 'instance_it_per_s_median') or float('nan'):.2f}" for n in ns] for m in lifted
        ]
        parts += [
            "Median rate during each method's own instance phase (measured at different times, so more exposed "
            "to load from other processes):",
            "",
            _table(["method"] + [f"N = {n}" for n in ns], rows),
            "",
        ]
    parts += [
        "## Per-frame PQ: lifted result vs the 2D input (paper Table 5)",
        "",
        _metric_table(data, "pq_frame", (["2d-raw"] if "2d-raw" in base else []) + lifted),
        "",
    ]
    sweep = data.get("embedding_sweep", {})
    for n, by_d in sweep.items():
        ds = sorted(by_d, key=int)
        parts += [
            f"## Embedding size (paper Fig. 5), slow-fast, N = {n}",
            "",
            _table(
                ["D"] + ds,
                [
                    ["PQ^scene"] + [_fmt(by_d[d].get("pq_scene")) for d in ds],
                    ["per-frame PQ"] + [_fmt(by_d[d].get("pq_frame")) for d in ds],
                    ["instance it/s (median)"]
                    + [f"{by_d[d].get('instance_it_per_s_median', float('nan')):.2f}" for d in ds],
                ],
            ),
            "",
        ]
    claims = check_claims(data)
    if claims:
        mark = {True: "holds", False: "**does not hold**", None: "not decided"}
        parts += [
            "## Claims",
            "",
            _table(["claim", "result", "numbers"], [[c["claim"], mark[c["holds"]], c["evidence"]] for c in claims]),
            "",
        ]
    rows = []
    for n in ns:
        s = data["scenes"][str(n)]
        rows.append(
            [
                str(n),
                str(s["num_views"]),
                f"{s['num_train_views']}/{s['num_test_views']}",
                str(s["resolution"]),
                str(s["objects_visible"]),
                str(s["objects_per_view_mean"]),
                f"{s.get('train_views_per_object_mean', '–')} / {s.get('test_views_per_object_mean', '–')}",
                str(s.get("objects_in_one_test_view_only", "–")),
                str(s["test_objects_unseen_in_training"]),
                str(s["max_segments_per_train_view"]),
                str(s["num_slots"]),
                str(s.get("grid_resolution")),
                str(s["instance_steps"]),
                str(s.get("cluster_views")),
                f"{(s.get('shared_fit') or {}).get('seconds') or 0:.0f}",
            ]
        )
    parts += [
        "## Scenes and per-scene settings",
        "",
        _table(
            [
                "N",
                "views",
                "train/test",
                "px",
                "objects visible",
                "objects / view",
                "views / object (train / test)",
                "objects in 1 test view only",
                "test objects unseen in train",
                "max 2D segments / image",
                "K (lin. assign.)",
                "grid",
                "instance steps",
                "cluster views",
                "shared fit s",
            ],
            rows,
        ),
        "",
    ]
    rows = []
    for m in lifted + base:
        for n in ns:
            r = data["results"].get(m, {}).get(str(n))
            if r is None:
                continue
            rows.append(
                [
                    m,
                    str(n),
                    _fmt(r.get("pq_scene")),
                    _fmt(_pq_things(data, m, n)),
                    _fmt(r.get("sq_scene")),
                    _fmt(r.get("rq_scene")),
                    _fmt(r.get("pq_frame")),
                    _fmt(r.get("miou")),
                    _clusters(r.get("num_clusters")) if m in lifted else "",
                    str(r.get("min_cluster_size", "") or ""),
                    f"{r.get('seconds_instance_phase', r.get('seconds', 0)):.0f}",
                ]
            )
    parts += [
        "## All scores",
        "",
        "PQ^scene is the mean over the thing class and the stuff (background) class; "
        "the thing column is the instance result alone.",
        "",
        _table(
            [
                "method",
                "N",
                "PQ^scene",
                "PQ^scene things",
                "SQ^scene",
                "RQ^scene",
                "per-frame PQ",
                "mIoU",
                "clusters",
                "min cluster size",
                "seconds",
            ],
            rows,
        ),
        "",
    ]
    return "\n".join(parts)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pq(data: dict, path: Path) -> None:
    plt = _pyplot()
    ns = _ns(data)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for m in _lifted(data):
        ax.plot(ns, [_get(data, m, n, "pq_scene") or float("nan") for n in ns], "o-", label=m)
    for b in _baselines(data):
        ax.plot(
            ns, [_get(data, b, n, "pq_scene") or float("nan") for n in ns], "s--", alpha=0.7, label=BASELINE_LABELS[b]
        )
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("objects in the scene (N)")
    ax.set_ylabel("PQ^scene (test views)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"PQ^scene vs number of objects ({data['study'].get('config', '')})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_throughput(data: dict, path: Path) -> None:
    plt = _pyplot()
    ns = _ns(data)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for m, by_n in data.get("throughput", {}).items():
        xs = [n for n in ns if str(n) in by_n]
        ax.errorbar(
            xs,
            [by_n[str(n)]["it_per_s"] for n in xs],
            yerr=[by_n[str(n)]["std"] for n in xs],
            fmt="o-",
            capsize=3,
            label=m + (" (K grows with N)" if m == "linear-assignment" else ""),
        )
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("objects in the scene (N)")
    ax.set_ylabel("instance-phase iterations / s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Instance-phase throughput vs number of objects ({data['study'].get('config', '')})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_sweep(data: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    for n, by_d in data.get("embedding_sweep", {}).items():
        ds = sorted(by_d, key=int)
        ax.plot([int(d) for d in ds], [by_d[d]["pq_scene"] for d in ds], "o-", label=f"PQ^scene, N = {n}")
        ax.plot([int(d) for d in ds], [by_d[d]["pq_frame"] for d in ds], "s--", label=f"per-frame PQ, N = {n}")
    ax.set_xscale("log", base=2)
    dims = sorted({int(d) for by_d in data.get("embedding_sweep", {}).values() for d in by_d})
    ax.set_xticks(dims)
    ax.set_xticklabels([str(d) for d in dims])
    ax.minorticks_off()
    ax.set_xlabel("embedding size D")
    ax.set_ylabel("PQ")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(data: dict, out: Path) -> None:
    """``results.md``, ``pq_vs_objects.png``, ``throughput_vs_objects.png`` (+ ``embedding_sweep.png``) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown_report(data) + "\n")
    plot_pq(data, out / "pq_vs_objects.png")
    plot_throughput(data, out / "throughput_vs_objects.png")
    if data.get("embedding_sweep"):
        plot_sweep(data, out / "embedding_sweep.png")


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    write_report(json.loads((folder / "results.json").read_text()), folder)
    print(f"rebuilt {folder / 'results.md'} and the plots")
