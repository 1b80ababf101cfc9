"""Probe the ``lift3d`` CLI as users meet it: bad-input variants of a valid tiny scene and fault cases.

Every case runs the real CLI in a subprocess (``python -m lift3d.cli``) against the tree on ``--tree`` (default: this
checkout) and is classified from what a user sees:

* ``refused before work``: non-zero exit, no Python traceback, and no checkpoint was written;
* ``refused late``: non-zero exit after training wrote a checkpoint (or during eval);
* ``traceback``: a Python traceback reached the terminal;
* ``warned``: exit 0 with a line starting ``WARNING``;
* ``accepted``: exit 0, no warning.

Input variants are marked ``invalid`` (should be refused or warned), ``suspect`` (may be intended: a warning is the
right answer) or ``valid`` (must be accepted, read correctly). Faults record whether the run survived (nothing lost)
and how the failure read.

    python -m tools.reliability_probe --out outputs/reliability_probe.json [--tree /path/to/other/checkout]

Writes JSON (one record per case, with the exit code and the last lines printed) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

TRACEBACK = "Traceback (most recent call last)"
HOSTILE_MARKER = "HOSTILE_CODE_RAN"


def _cli(tree: Path, args: list[str], timeout: float = 300) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "lift3d.cli", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=tree
    )
    out = p.stdout + p.stderr
    return {"rc": p.returncode, "output": out, "seconds": round(time.perf_counter() - t0, 1)}


def _classify(res: dict, run: Path | None) -> str:
    if TRACEBACK in res["output"]:
        return "traceback"
    if res["rc"] != 0:
        started = run is not None and (run / "checkpoints").exists() and any((run / "checkpoints").iterdir())
        return "refused late" if started else "refused before work"
    if any(line.lstrip().upper().startswith("WARNING") for line in res["output"].splitlines()):
        return "warned"
    return "accepted"


def _tail(text: str, n: int = 3) -> list[str]:
    return [line[:300] for line in text.strip().splitlines()[-n:]]


# ------------------------------------------------------------------------------------------------- scene edits
def _meta(scene: Path) -> dict:
    return json.loads((scene / "transforms.json").read_text())


def _put(scene: Path, meta: dict) -> None:
    (scene / "transforms.json").write_text(json.dumps(meta, indent=1))


def _edit(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(scene: Path) -> None:
        meta = _meta(scene)
        fn(meta)
        _put(scene, meta)

    return apply


def _set_frame(i: int, **kv) -> Callable[[dict], None]:
    return lambda m: m["frames"][i].update(kv)


def _depth_in_metres(scene: Path) -> None:
    """Depth PNGs holding metres as integers (1, 2, 3) while the scene says millimetres."""
    for f in _meta(scene)["frames"]:
        p = scene / f["depth_file_path"]
        mm = np.asarray(Image.open(p)).astype(np.float64)
        Image.fromarray(np.round(mm / 1000.0).astype(np.uint16)).save(p)


def _pose_far(m: dict) -> None:
    m["frames"][2]["transform_matrix"][0][3] += 1e6
    m.pop("aabb", None)


def _grey16(scene: Path) -> None:
    f = _meta(scene)["frames"][0]
    p = scene / f["file_path"]
    grey = np.asarray(Image.open(p).convert("L"), dtype=np.float64) / 255.0
    Image.fromarray((grey * 65535).astype(np.uint16)).save(p)


def _grey8(scene: Path) -> None:
    f = _meta(scene)["frames"][1]
    p = scene / f["file_path"]
    Image.open(p).convert("L").save(p)


def _rgba(scene: Path) -> None:
    f = _meta(scene)["frames"][1]
    p = scene / f["file_path"]
    Image.open(p).convert("RGBA").save(p)


def _both_splits(m: dict) -> None:
    m["test_filenames"].append(m["train_filenames"][0])


def _duplicate_path(m: dict) -> None:
    m["frames"][1]["file_path"] = m["frames"][0]["file_path"]
    m["train_filenames"] = [f for f in m["train_filenames"] if f != "images/frame_00001.png"]


def _clashing_stems(scene: Path) -> None:
    meta = _meta(scene)
    f = meta["frames"][7]
    (scene / "images2").mkdir(exist_ok=True)
    shutil.copy(scene / f["file_path"], scene / "images2" / "frame_00006.png")
    meta["test_filenames"] = [n for n in meta["test_filenames"] if n != f["file_path"]] + ["images2/frame_00006.png"]
    f["file_path"] = "images2/frame_00006.png"
    _put(scene, meta)


def _map_edit(key: str, frames: list[int] | None, fn: Callable[[np.ndarray], np.ndarray], npy: bool = False):
    def apply(scene: Path) -> None:
        meta = _meta(scene)
        for i, f in enumerate(meta["frames"]):
            if frames is not None and i not in frames:
                continue
            p = scene / f[key]
            arr = fn(np.asarray(Image.open(p)).astype(np.int64))
            if npy:
                q = p.with_suffix(".npy")
                np.save(q, arr)
                f[key] = str(Path(f[key]).with_suffix(".npy"))
            else:
                Image.fromarray(arr.astype(np.uint16 if arr.max() > 255 else np.uint8)).save(p)
        _put(scene, meta)

    return apply


def _truncate(scene: Path) -> None:
    p = scene / _meta(scene)["frames"][3]["file_path"]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _depth_rgb(scene: Path) -> None:
    p = scene / _meta(scene)["frames"][0]["depth_file_path"]
    d = np.asarray(Image.open(p)).astype(np.float64)
    Image.fromarray(np.stack([(d / 20).clip(0, 255)] * 3, -1).astype(np.uint8)).save(p)


def _empty_test(m: dict) -> None:
    m["train_filenames"] = m["train_filenames"] + m["test_filenames"]
    m["test_filenames"] = []


def _unknown_test_semantic(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[0, 0] = 5
    return a


# (name, kind, edit, commands after fit)
VARIANTS: list[tuple[str, str, Callable[[Path], None], tuple[str, ...]]] = [
    ("valid scene (control)", "valid", lambda s: None, ("eval",)),
    ("8-bit grey RGB image", "valid", _grey8, ()),
    ("RGBA image", "valid", _rgba, ()),
    ("16-bit grey RGB image", "valid", _grey16, ()),
    ("focal length 0", "invalid", _edit(lambda m: m.update(fl_x=0.0)), ()),
    ("focal length negative", "invalid", _edit(lambda m: m.update(fl_y=-51.2)), ()),
    ("principal point NaN", "invalid", _edit(lambda m: m.update(cx=float("nan"))), ()),
    ("width 0", "invalid", _edit(lambda m: m.update(w=0)), ()),
    ('"thing": "false" (a string)', "invalid", _edit(lambda m: m["classes"][1].update(thing="false")), ()),
    ("class id a string", "invalid", _edit(lambda m: m["classes"][1].update(id="1")), ()),
    ("frame in both splits", "invalid", _edit(_both_splits), ()),
    ("duplicate file_path", "invalid", _edit(_duplicate_path), ()),
    ("two test frames with one file stem", "invalid", _clashing_stems, ("eval",)),
    (
        "non-orthonormal pose (control)",
        "invalid",
        _edit(lambda m: m["frames"][1]["transform_matrix"][0].__setitem__(0, 3.0)),
        (),
    ),
    ("missing image file (control)", "invalid", _edit(_set_frame(2, file_path="images/nope.png")), ()),
    ("truncated RGB PNG", "invalid", _truncate, ()),
    ("3-channel depth PNG", "invalid", _depth_rgb, ()),
    ("negative instance ids (.npy)", "invalid", _map_edit("instance_file_path", [0], lambda a: a - 3, npy=True), ()),
    (
        "unknown semantic id in a test frame only",
        "invalid",
        _map_edit("semantic_file_path", [7], _unknown_test_semantic),
        (),
    ),
    (
        "unknown GT class in a test frame",
        "invalid",
        _map_edit("gt_semantic_file_path", [7], _unknown_test_semantic),
        ("eval",),
    ),
    ("depth in metres stored as uint16 (mm scale)", "suspect", _depth_in_metres, ()),
    ("one pose 1e6 away", "suspect", _edit(_pose_far), ()),
    ("empty test split", "suspect", _edit(_empty_test), ("eval",)),
    ("all instance masks empty", "suspect", _map_edit("instance_file_path", None, lambda a: a * 0), ()),
    ("only background in segments", "suspect", _map_edit("semantic_file_path", None, lambda a: a * 0), ()),
]


def run_variants(tree: Path, base: Path, work: Path) -> list[dict]:
    records = []
    for i, (name, kind, edit, after) in enumerate(VARIANTS):
        scene, run = work / f"v{i:02d}" / "scene", work / f"v{i:02d}" / "run"
        shutil.copytree(base, scene)
        edit(scene)
        res = _cli(tree, ["fit", str(scene), "--preset", "tiny", "--out", str(run)])
        outcome = _classify(res, run)
        rec = {"case": name, "kind": kind, "fit": outcome, "rc": res["rc"], "tail": _tail(res["output"])}
        warnings = [ln.strip() for ln in res["output"].splitlines() if ln.lstrip().upper().startswith("WARNING")]
        rec["warnings"] = warnings[:4]
        if res["rc"] == 0 and "eval" in after:
            ev = _cli(tree, ["eval", str(run)])
            rec["eval"] = _classify(ev, None) if ev["rc"] != 0 or TRACEBACK in ev["output"] else "ok"
            rec["eval_tail"] = _tail(ev["output"])
        records.append(rec)
        print(
            f"{name:<45} {kind:<8} fit: {outcome:<20} {rec.get('eval', '')}  | {rec['tail'][-1] if rec['tail'] else ''}"[
                :220
            ]
        )
    return records


# ------------------------------------------------------------------------------------------------- faults
class _Hostile:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('HOSTILE_DIR', '/tmp')}/{HOSTILE_MARKER}",))


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _fit(tree: Path, scene: Path, run: Path, *extra: str) -> dict:
    return _cli(tree, ["fit", str(scene), "--preset", "tiny", "--out", str(run), *extra])


def run_faults(tree: Path, base: Path, work: Path) -> list[dict]:
    recs: list[dict] = []

    def rec(name: str, survived: bool, res: dict, note: str) -> None:
        tb = TRACEBACK in res["output"]
        recs.append(
            {
                "case": name,
                "survived": survived,
                "traceback": tb,
                "rc": res["rc"],
                "note": note,
                "tail": _tail(res["output"]),
            }
        )
        print(f"{name:<45} survived={survived!s:<5} traceback={tb!s:<5} rc={res['rc']:<4} {note}"[:220])

    w = work / "faults"
    w.mkdir(parents=True, exist_ok=True)
    scene = base

    # two writers on one run folder
    run = w / "concurrent"
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "lift3d.cli",
        "fit",
        str(scene),
        "--preset",
        "tiny",
        "--out",
        str(run),
        "--iterations",
        "300",
    ]
    p1 = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tree)
    time.sleep(0.5)
    p2 = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tree)
    p1.communicate()
    o2 = p2.communicate()[0]
    both = {"rc": p2.returncode, "output": o2}
    rec(
        "two fits into one --out at once",
        p1.returncode == 0 and p2.returncode != 0,
        both,
        f"first rc={p1.returncode}, second rc={p2.returncode}",
    )

    # --resume with another preset
    run = w / "resume_other"
    _fit(tree, scene, run)
    before = (run / "config.json").read_text()
    res = _fit(tree, scene, run, "--resume")
    res2 = _cli(tree, ["fit", str(scene), "--preset", "cpu-small", "--out", str(run), "--resume"])
    unchanged = (run / "config.json").read_text() == before
    rec(
        "--resume with another preset",
        unchanged and res2["rc"] != 0,
        res2,
        f"config.json unchanged={unchanged}; {len(res2['output'].splitlines())} lines printed",
    )

    # --resume on a finished run keeps its history
    run = w / "resume_finished"
    _fit(tree, scene, run)
    losses = json.loads((run / "fit.json").read_text())["final_losses"]
    res = _fit(tree, scene, run, "--resume")
    after = json.loads((run / "fit.json").read_text())["final_losses"] if (run / "fit.json").exists() else {}
    rec("--resume on a finished run", res["rc"] == 0 and after == losses, res, f"final_losses kept={after == losses}")

    # eval with the checkpoint deleted
    run = w / "eval_no_ckpt"
    _fit(tree, scene, run)
    _cli(tree, ["render", str(run)])
    shutil.rmtree(run / "checkpoints")
    res = _cli(tree, ["eval", str(run)])
    rec("eval with the checkpoint deleted", res["rc"] != 0, res, "stale renders must not be scored")

    # eval after a resumed fit (stale renders)
    run = w / "eval_stale"
    _fit(tree, scene, run)
    _cli(tree, ["eval", str(run)])
    frames = run / "renders" / "test" / "frames.json"
    stamp = frames.stat().st_mtime_ns
    _fit(tree, scene, run, "--resume", "--iterations", "60")
    res = _cli(tree, ["eval", str(run)])
    m = json.loads((run / "metrics.json").read_text())
    step = (m.get("made_from") or {}).get("checkpoint_step")
    rerendered = frames.stat().st_mtime_ns != stamp
    rec(
        "eval after a resumed fit (renders stale)",
        res["rc"] == 0 and rerendered,
        res,
        f"renders made again={rerendered}, metrics made_from step={step}",
    )

    # corrupt files
    for name, rel, cmd in (
        ("corrupt checkpoint", "checkpoints/latest.pt", "render"),
        ("corrupt clusters.json", "clusters.json", "render"),
        ("corrupt config.json", "config.json", "render"),
    ):
        run = w / name.replace(" ", "_").replace(".", "_")
        _fit(tree, scene, run)
        p = run / rel
        p.write_bytes(p.read_bytes()[: max(len(p.read_bytes()) // 3, 1)] + b"\xff\xfe")
        res = _cli(tree, [cmd, str(run)])
        named = str(p) in res["output"] or rel in res["output"]
        rec(name, res["rc"] != 0 and named, res, f"file named={named}")

    # a full disk
    mnt = w / "small_disk"
    mnt.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode == 0:
        try:
            run = mnt / "run"
            res = _fit(tree, scene, run)
            tmps = [str(p) for p in run.rglob("*.tmp")] if run.exists() else []
            kept = (run / "checkpoints" / "latest.pt").exists()
            nospace = "no space left on device" in res["output"].lower()
            rec(
                "disk full during fit",
                res["rc"] != 0 and not tmps and kept and nospace,
                res,
                f"partial .tmp left={len(tmps)}, last checkpoint kept={kept}, says no space={nospace}",
            )
        finally:
            subprocess.run(["umount", str(mnt)])
    else:
        print("disk full: cannot mount a tmpfs here (skipped)")

    # SIGINT during a fit
    run = w / "sigint"
    cmd = [
        sys.executable,
        "-m",
        "lift3d.cli",
        "fit",
        str(scene),
        "--preset",
        "tiny",
        "--out",
        str(run),
        "--iterations",
        "100000",
    ]
    # A shell's background job inherits SIGINT ignored, and Python then installs no Ctrl-C handler: restore it.
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tree, preexec_fn=_default_sigint
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoints" / "latest.pt").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=120)[0]
    res = {"rc": p.returncode, "output": out}
    rec(
        "SIGINT during fit",
        p.returncode == 130 and TRACEBACK not in out,
        res,
        f"rc={p.returncode}, lines after ^C={len(out.strip().splitlines()[-1:])}",
    )
    res = _fit(tree, scene, run, "--resume", "--iterations", "40")
    rec("--resume after SIGINT", res["rc"] == 0, res, "")

    # hostile pickles
    for ext in (".pt", ".pkl"):
        hostile = w / f"hostile{ext}"
        shutil.rmtree(hostile, ignore_errors=True)
        hostile.mkdir()
        os.environ["HOSTILE_DIR"] = str(hostile)
        sc = hostile / "scene"
        shutil.copytree(base, sc)
        src = hostile / "preds"
        src.mkdir()
        for f in _meta(sc)["frames"]:
            with open(src / f"{Path(f['file_path']).stem}{ext}", "wb") as fh:
                if ext == ".pt":
                    import torch

                    torch.save({"pred_masks": _Hostile(), "scores": [1.0]}, fh)
                else:
                    pickle.dump({"pred_masks": _Hostile(), "scores": [1.0]}, fh)
        res = _cli(tree, ["segments", "import", str(sc), str(src), "--kind", "detectron2"])
        ran = (hostile / HOSTILE_MARKER).exists()
        rec(f"hostile {ext} given to segments import", not ran and res["rc"] != 0, res, f"code ran={ran}")
    return recs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("outputs/reliability_probe.json"))
    ap.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--work", type=Path, default=Path("/tmp/lift3d_reliability_probe"))
    ap.add_argument("--only", choices=("variants", "faults", "all"), default="all")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    base = args.work / "base"
    env = {**os.environ, "PYTHONPATH": str(args.tree)}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from lift3d.generate import MessyRoomsConfig, generate_scene; generate_scene("
            "MessyRoomsConfig(num_objects=4, num_views=8, resolution=32, seed=0), r'%s', progress=False)" % base,
        ],
        check=True,
        env=env,
        capture_output=True,
        cwd=args.tree,
    )
    out = {"tree": str(args.tree)}
    if args.only in ("variants", "all"):
        out["variants"] = run_variants(args.tree, base, args.work)
    if args.only in ("faults", "all"):
        out["faults"] = run_faults(args.tree, base, args.work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
