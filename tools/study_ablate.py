"""Ablate settings on one scene of a finished study: each variant is the study's configuration plus dotted
overrides; its shared fields are reused from the study when the overrides leave them unchanged (instance,
clustering settings) and fitted again otherwise; then one lifted method is trained and scored exactly as in the
study (decoding from training views, PQ^scene / per-frame PQ / mIoU on the test views).

    python -m tools.study_ablate --config cpu-small --work outputs/study/cpu-small-v2 --objects 100 \\
        --variant "study" \\
        --variant "frequency semantic head=model.semantic.encoding=frequency" \\
        --variant "argmax sweep=cluster.sweep_tolerance=0" \\
        --out docs/results/cpu-small-choices

A variant is ``NAME=KEY=VALUE[,KEY=VALUE...]`` (overrides as ``lift3d fit --set``) or just ``NAME`` (the study's
configuration). Writes ``OUT/ablation.json`` (rewritten after every variant; a rerun skips finished variants) and
``OUT/ablation.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from lift3d.config_io import apply_overrides
from lift3d.engine.run_dir import RunDir
from tools.study import STUDY_CONFIGS, fit_config_for, instance_steps_for
from tools.study_lift import (
    fit_and_score_method,
    fit_shared_fields,
    method_config,
    num_slots_for,
    shared_fields_config,
    shared_fit_key,
    stored_shared_fit_key,
    write_json_atomic,
)


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"name=k=v,k2=v2"`` -> ``("name", ["k=v", "k2=v2"])``; ``"name"`` -> ``("name", [])``."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not name:
        raise ValueError(f"--variant {text!r}: expected NAME or NAME=KEY=VALUE[,KEY=VALUE...]")
    overrides = [o.strip() for o in rest.split(",") if o.strip()] if sep else []
    for o in overrides:
        if "=" not in o:
            raise ValueError(f"--variant {text!r}: override {o!r} is not KEY=VALUE")
    return name, overrides


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "variant"


def run_ablation(
    config: str,
    work: Path,
    n: int,
    variants: list[tuple[str, list[str]]],
    method: str,
    out: Path,
    steps: int | None = None,
    log=print,
) -> dict:
    from lift3d.data.loading import load_scene

    cfg = STUDY_CONFIGS[config]
    work, out = Path(work), Path(out)
    scene_dir = work / "scenes" / f"N{n:03d}"
    study_shared = work / "runs" / f"N{n:03d}" / "shared"
    if not RunDir(study_shared).fit_summary.exists():
        raise FileNotFoundError(
            f"{study_shared}: no finished shared fit; run python -m tools.study --config {config} "
            f"--work {work} --objects {n} first"
        )
    scene = load_scene(scene_dir)
    results_path = out / "ablation.json"
    data = json.loads(results_path.read_text()) if results_path.exists() else {}
    data.update(
        {
            "config": config,
            "work": str(work),
            "objects": n,
            "method": method,
            "command": " ".join(shlex.quote(a) for a in sys.argv),
        }
    )
    data.setdefault("variants", {})
    study_fit = fit_config_for(cfg, n, len(scene.train_indices))
    study_key = shared_fit_key(_shared(study_fit))
    if stored_shared_fit_key(RunDir(study_shared).config)[1] != study_key:
        raise ValueError(
            f"{study_shared}: fitted with another configuration than python -m tools.study --config {config} "
            "gives now; run the study again first"
        )
    # K slots matter for linear assignment only; counting segments reads every training frame
    num_slots = num_slots_for(n, _max_segments(scene), cfg.slot_margin) if method == "linear-assignment" else 0
    for name, overrides in variants:
        key = name
        done = data["variants"].get(key, {})
        if done.get("overrides") == overrides and (steps is None or done.get("instance_steps") == steps):
            log(f"{name}: done before, skipped")
            continue
        t0 = time.perf_counter()
        fit = apply_overrides(study_fit, overrides) if overrides else study_fit
        shared = _shared(fit)
        key_now = shared_fit_key(shared)
        earlier = None
        if key_now != study_key:
            earlier = _earlier_shared_fit(work / "ablate" / f"N{n:03d}", key_now, scene_dir)
        if key_now == study_key:
            base, refit = study_shared, False
        elif earlier is not None:
            base, refit = earlier, True
            log(f"{name}: the overrides change the shared fields; reusing {base} (fitted with the same settings)")
        else:
            base, refit = work / "ablate" / f"N{n:03d}" / _slug(name) / "shared", True
            log(f"{name}: the overrides change the shared fields; fitting them into {base}")
            fit_shared_fields(scene, shared, base, log=log)
        steps_n = steps if steps is not None else instance_steps_for(cfg, len(scene.train_indices))
        mcfg = method_config(fit, method, num_slots)
        log(f"{name}: {method}, {steps_n} instance steps")
        r = fit_and_score_method(
            scene, mcfg, base, work / "ablate" / f"N{n:03d}" / _slug(name) / method, steps_n, log=log, label=name
        )
        data["variants"][key] = {
            "overrides": overrides,
            "shared_refitted": refit,
            "shared_run": str(base),
            "seconds": round(time.perf_counter() - t0, 1),
            **{
                k: r[k]
                for k in (
                    "pq_scene",
                    "pq_frame",
                    "miou",
                    "min_cluster_size",
                    "num_clusters",
                    "instance_steps",
                    "instance_it_per_s_median",
                )
            },
            "things": r["per_class"].get(str(scene.thing_ids[0]), {}),
        }
        log(f"{name}: PQ^scene {r['pq_scene']:.4f}, per-frame PQ {r['pq_frame']:.4f}, mIoU {r['miou']:.4f}")
        write_json_atomic(results_path, data)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(render_markdown(data))
    return data


def _earlier_shared_fit(ablate_dir: Path, key: dict, scene_dir: Path):
    """A finished shared fit of an earlier variant (``ablate_dir/*/shared``) on the same scene with the same shared
    settings ``key``, or None: variants that differ only in instance or clustering settings from one that refitted
    the shared fields reuse its fields instead of fitting them again."""
    for cand in sorted(ablate_dir.glob("*/shared")):
        run = RunDir(cand)
        if not run.fit_summary.exists():
            continue
        scene, cand_key = stored_shared_fit_key(run.config)
        if cand_key == key and scene == str(Path(scene_dir).resolve()):
            return cand
    return None


def _shared(fit):
    return shared_fields_config(fit)


def _max_segments(scene) -> int:
    import numpy as np

    from lift3d.data.loading import load_frame

    most = 0
    for i in scene.train_indices:
        inst = load_frame(scene, i).instance
        most = max(most, len(np.unique(inst[inst > 0])))
    return most


def render_markdown(data: dict) -> str:
    lines = [
        f"# Ablation on the N = {data['objects']} scene of study `{data['config']}` ({data['method']})",
        "",
        f"Command: `{data['command']}`",
        "",
        "| variant | overrides | shared fields | instance steps | PQ^scene | things PQ (TP / FP / FN) | per-frame PQ | "
        "mIoU | min cluster size | clusters | instance it/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in data["variants"].items():
        t = v.get("things", {})
        things = f"{100 * t['pq']:.1f} ({t['tp']} / {t['fp']} / {t['fn']})" if t else ""
        clusters = sum(v["num_clusters"].values()) if isinstance(v.get("num_clusters"), dict) else ""
        lines.append(
            f"| {name} | {', '.join(f'`{o}`' for o in v['overrides']) or '(the study)'} | "
            f"{'refitted' if v['shared_refitted'] else 'the study'} | {v.get('instance_steps', '')} | "
            f"{100 * v['pq_scene']:.1f} | {things} | "
            f"{100 * v['pq_frame']:.1f} | {100 * v['miou']:.1f} | {v['min_cluster_size'] or ''} | {clusters} | "
            f"{v['instance_it_per_s_median']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(STUDY_CONFIGS), default="cpu-small")
    p.add_argument("--work", type=Path, required=True, help="the study's work folder (scenes/ and runs/)")
    p.add_argument("--objects", type=int, required=True, help="scene size N of the study to ablate on")
    p.add_argument("--variant", action="append", required=True, help="NAME or NAME=KEY=VALUE[,KEY=VALUE...]")
    p.add_argument("--method", default="slow-fast")
    p.add_argument("--steps", type=int, default=None, help="instance steps (default: the study's)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    cfg = STUDY_CONFIGS[a.config]
    threads = torch.get_num_threads()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return run_ablation(
            a.config,
            a.work,
            a.objects,
            [parse_variant(v) for v in a.variant],
            a.method,
            a.out,
            a.steps,
            log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True),
        )
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
