"""Reliability and security (issue 15): no code runs from a data file, one writer per run folder, results know the
checkpoint they were made from, physically invalid input is refused (or warned) before any work, faults leave the
run usable. Every case runs the real component on the mini scene or the tiny generated one, in seconds."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lift3d.data.images import read_rgb, write_id_map
from lift3d.data.loading import load_scene
from lift3d.data.sanity import scene_warnings
from lift3d.data.scene import SceneFormatError
from lift3d.data.segments_import import SegmentsImportError, import_segments
from lift3d.engine.checkpoint import CheckpointError, load_checkpoint, load_model
from lift3d.engine.run_dir import RunDir, RunFileError
from lift3d.engine.run_lock import RunLockedError, run_lock
from lift3d.io.atomic import DiskFullError
from lift3d.pipeline import evaluate_run, fit_scene, render_run
from lift3d.pipeline.runs import ResumeMismatchError, StaleResultsError
from lift3d.presets import get_preset
from tests.conftest import make_mini_scene, write_meta

REPO = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False, log=lambda *_: None)


def tiny(iterations: int = 20):
    cfg = get_preset("tiny")
    cfg.optim.iterations = iterations
    return cfg


# ----------------------------------------------------------------------------------------------- 1. no code from data
class _Hostile:
    """Unpickling this runs ``touch MARKER``: the test checks the marker never appears."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_predictions(tmp_path: Path, ext: str) -> tuple[Path, Path, Path]:
    scene = tmp_path / "scene"
    make_mini_scene(scene)
    src, marker = tmp_path / "preds", tmp_path / "CODE_RAN"
    src.mkdir()
    for i in range(3):
        payload = {"pred_masks": _Hostile(marker), "scores": [0.9]}
        with open(src / f"f{i}{ext}", "wb") as fh:
            torch.save(payload, fh) if ext == ".pt" else pickle.dump(payload, fh)
    return scene, src, marker


@pytest.mark.parametrize("ext", [".pt", ".pkl"])
def test_a_hostile_prediction_file_runs_no_code(tmp_path, ext):
    scene, src, marker = _hostile_predictions(tmp_path, ext)
    before = (scene / "transforms.json").read_text()
    with pytest.raises(SegmentsImportError, match=re.escape(str(src / f"f0{ext}")) + ".*refused"):
        import_segments(scene, src, "detectron2")
    assert not marker.exists()  # the payload never ran
    assert (scene / "transforms.json").read_text() == before and not list((scene / "segments").rglob("*"))


def test_pkl_is_read_only_with_trust_pickle_and_plain_pt_always(tmp_path):
    scene = tmp_path / "scene"
    make_mini_scene(scene)
    masks = np.zeros((1, 4, 6), bool)
    masks[0, :, :2] = True  # the left two columns
    for ext, writer in ((".pkl", pickle.dump), (".pt", torch.save)):
        src = tmp_path / f"src{ext}"
        src.mkdir()
        for i in range(3):
            with open(src / f"f{i}{ext}", "wb") as fh:
                obj = {"pred_masks": torch.from_numpy(masks), "scores": torch.tensor([0.8])}
                writer(obj, fh)
        kw = {"trust_pickle": True} if ext == ".pkl" else {}
        out = import_segments(scene, src, "detectron2", name=ext[1:], **kw)
        inst = np.asarray(Image.open(out / "instance" / "f1.png"))
        assert inst[:, :2].tolist() == [[1, 1]] * 4 and inst[:, 2:].max() == 0


def test_a_hostile_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "CODE_RAN"
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    path.parent.mkdir(parents=True)
    torch.save({"step": 1, "config": {}, "model": _Hostile(marker)}, path)
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*damaged or not a lift3d checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_trust_pickle_is_documented_as_a_risk_in_help():
    from lift3d.data.segments_import import SegmentsImport

    out = subprocess.run(
        [sys.executable, "-m", "lift3d.cli", "segments", "import", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "--trust-pickle" in out and "runs any code" in " ".join(out.split())
    assert SegmentsImport.__dataclass_fields__["trust_pickle"].default is False


# ----------------------------------------------------------------------------------------------- 2. one writer per run
def test_a_second_writer_is_refused_naming_the_holder(tiny_scene_dir, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom lift3d.engine.run_lock import run_lock\n"
            f"with run_lock(r'{run / '.lock'}', 'lift3d fit (test holder)'):\n    print('held', flush=True)\n"
            "    time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} .*lift3d fit \(test holder\)"):
            fit_scene(tiny_scene_dir, run, tiny(), **QUIET)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing of the run was written
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up: its lock is stale, recovered, and the fit runs.
    assert json.loads((run / ".lock").read_text())["pid"] == holder.pid
    lines: list[str] = []
    fit_scene(tiny_scene_dir, run, tiny(10), progress=False, log=lines.append)
    assert any("stale lock" in line and str(holder.pid) in line for line in lines)
    assert not (run / ".lock").exists() and (run / "checkpoints" / "latest.pt").exists()


def test_the_lock_is_reentrant_for_its_holder_and_released_on_error(tmp_path):
    lock = tmp_path / "run" / ".lock"
    with pytest.raises(ZeroDivisionError):
        with run_lock(lock, "outer"):
            with run_lock(lock, "inner"):  # eval renders first: the same process takes it again
                assert json.loads(lock.read_text())["command"] == "outer"
            assert lock.exists()
            1 / 0
    assert not lock.exists()


@pytest.fixture(scope="module")
def finished_run(tiny_scene_dir, tmp_path_factory):
    """A tiny run fitted to 20 iterations (checkpoints every 10), rendered and evaluated; tests copy it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    fit_scene(tiny_scene_dir, run, tiny(20), preset="tiny", **QUIET)
    evaluate_run(run, "test", log=lambda *_: None)
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _snapshot(run: Path) -> dict:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_resume_with_another_config_is_refused_before_any_file_changes(tiny_scene_dir, finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    before = _snapshot(run)
    other = tiny(20)
    other.model.embedding_dim = 8
    other.losses.instance_weight = 0.5
    with pytest.raises(
        ResumeMismatchError,
        match=r"2 keys differ: losses.instance_weight: run has 1.0, asked 0.5; "
        r"model.embedding_dim: run has \d+, asked 8",
    ):
        fit_scene(tiny_scene_dir, run, other, resume=True, **QUIET)
    assert _snapshot(run) == before


def test_resume_of_a_finished_run_keeps_its_history(tiny_scene_dir, finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    before = _snapshot(run)
    lines: list[str] = []
    summary = fit_scene(tiny_scene_dir, run, tiny(20), resume=True, progress=False, log=lines.append)
    assert any("already finished (20 iterations)" in line for line in lines)
    assert summary == json.loads(before["fit.json"]) and summary["final_losses"]
    assert _snapshot(run) == before


def test_the_last_two_checkpoints_are_kept(finished_run):
    run = RunDir(finished_run)
    assert load_checkpoint(run.latest_checkpoint)["step"] == 20
    assert load_checkpoint(run.previous_checkpoint)["step"] == 10


# ----------------------------------------------------------------------------------------------- 3. stale results
def test_results_record_the_checkpoint_they_were_made_from(finished_run):
    run = RunDir(finished_run)
    ckpt = load_checkpoint(run.latest_checkpoint)
    from lift3d.engine.checkpoint import made_from

    src = made_from(ckpt)
    assert src["checkpoint_step"] == 20 and re.fullmatch(r"[0-9a-f]{12}", src["config_hash"])
    assert json.loads((run.renders("test") / "frames.json").read_text())["made_from"] == src
    assert json.loads(run.clustering.read_text())["made_from"] == src
    assert json.loads(run.metrics.read_text())["made_from"] == src
    assert json.loads(run.fit_summary.read_text())["made_from"] == src


def test_eval_refuses_when_the_checkpoint_is_gone(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    shutil.rmtree(run / "checkpoints")
    before = (run / "metrics.json").read_text()
    with pytest.raises(StaleResultsError, match=r"latest.pt: missing.*nothing was scored"):
        evaluate_run(run, "test", log=lambda *_: None)
    assert (run / "metrics.json").read_text() == before


def test_eval_renders_again_after_a_resumed_fit(tiny_scene_dir, finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    fit_scene(tiny_scene_dir, run, tiny(30), resume=True, **QUIET)
    lines: list[str] = []
    metrics = evaluate_run(run, "test", log=lines.append)
    assert any("rendered from checkpoint step 20, the run is now at step 30; rendering again" in ln for ln in lines)
    assert metrics["made_from"]["checkpoint_step"] == 30
    frames = json.loads((run / "renders" / "test" / "frames.json").read_text())
    assert frames["made_from"]["checkpoint_step"] == 30


def test_render_refuses_clusters_of_another_checkpoint(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    info = json.loads((run / "clustering.json").read_text())
    info["made_from"]["checkpoint_step"] = 10
    (run / "clustering.json").write_text(json.dumps(info))
    with pytest.raises(StaleResultsError, match=r"clusters.json: decoded from checkpoint step 10 .* at step 20"):
        render_run(run, "test", **QUIET)


def test_metrics_say_which_classes_left_the_mean_and_why(tiny_scene_dir, finished_run):
    from lift3d.pipeline.runs import score_segments

    scene = load_scene(tiny_scene_dir)
    views = scene.test_indices
    gts = [np.asarray(Image.open(scene.frames[i].gt_semantic_path)).astype(np.int64) for i in views]
    # A prediction of background everywhere except one pixel of "object": object is tiny in pred, large in GT.
    sem = [np.zeros_like(g) for g in gts]
    sem[0][0, 0] = 1
    m = score_segments(scene, views, sem, [np.zeros_like(g) for g in gts])
    left = {c["name"]: c["reason"] for c in m["classes_left_out"]}
    assert "object" in left and "min_class_fraction" in left["object"]
    assert "background" not in left and "0" in m["per_class"]


# ----------------------------------------------------------------------------------------------- 4. invalid input
def _mini(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "mini"
    return root, make_mini_scene(root, num_frames=4)


def _edit_meta(fn):
    def apply(root: Path, meta: dict) -> None:
        fn(meta)
        write_meta(root, meta)

    return apply


def _rewrite(key: str, frame: int, fn, suffix: str | None = None):
    def apply(root: Path, meta: dict) -> None:
        path = root / meta["frames"][frame][key]
        arr = fn(np.asarray(Image.open(path)))
        if suffix == ".npy":
            np.save(path.with_suffix(".npy"), arr)
            meta["frames"][frame][key] = str(Path(meta["frames"][frame][key]).with_suffix(".npy"))
            write_meta(root, meta)
        else:
            Image.fromarray(arr).save(path)

    return apply


def _truncate(key: str, frame: int):
    def apply(root: Path, meta: dict) -> None:
        path = root / meta["frames"][frame][key]
        path.write_bytes(path.read_bytes()[:-20])

    return apply


def _clash(root: Path, meta: dict) -> None:
    (root / "other").mkdir()
    shutil.copy(root / "images/f3.png", root / "other/f2.png")
    meta["frames"][3]["file_path"] = "other/f2.png"
    meta["test_filenames"] = ["other/f2.png"]
    write_meta(root, meta)


def _with_unknown_id(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[0, 0] = 7
    return a


INVALID = [
    (
        "focal 0",
        _edit_meta(lambda m: m.update(fl_x=0.0)),
        r"frame 0 \(images/f0.png\): intrinsic 'fl_x' must be positive",
    ),
    ("focal negative", _edit_meta(lambda m: m.update(fl_y=-5.0)), r"intrinsic 'fl_y' must be positive, got -5.0"),
    ("width 0", _edit_meta(lambda m: m.update(w=0)), r"intrinsic 'w' must be positive"),
    (
        "per-frame focal 0",
        _edit_meta(lambda m: m["frames"][2].update(fl_x=0)),
        r"frame 2 \(images/f2.png\): intrinsic 'fl_x'",
    ),
    ("thing as a string", _edit_meta(lambda m: m["classes"][1].update(thing="false")), r"classes\[1\].*JSON boolean"),
    ("class id as a string", _edit_meta(lambda m: m["classes"][1].update(id="1")), r"classes\[1\].*JSON integer"),
    (
        "frame in both splits",
        _edit_meta(lambda m: m["test_filenames"].append("images/f0.png")),
        r"frame 0 \(images/f0.png\) is in both train_filenames and test_filenames",
    ),
    (
        "duplicate file_path",
        _edit_meta(lambda m: m["frames"][1].update(file_path="images/f0.png")),
        r"frame 1 \(images/f0.png\): the same file_path as frame 0",
    ),
    ("clashing output stems", _clash, r"frame 3 \(other/f2.png\): the same file stem 'f2' as frame 2"),
    ("truncated RGB", _truncate("file_path", 3), r"frame 3 \(images/f3.png\): file_path .*f3.png cannot be read"),
    (
        "truncated depth",
        _truncate("depth_file_path", 1),
        r"frame 1 \(images/f1.png\): depth_file_path .*cannot be read",
    ),
    (
        "3-channel depth",
        _rewrite("depth_file_path", 2, lambda a: np.stack([(a // 20).astype(np.uint8)] * 3, -1)),
        r"frame 2 \(images/f2.png\): depth_file_path f2.png must be a single-channel image, it has 3 channels",
    ),
    (
        "negative instance ids",
        _rewrite("instance_file_path", 1, lambda a: a.astype(np.int64) - 400, ".npy"),
        r"frame 1 \(images/f1.png\): instance_file_path f1.npy holds negative instance ids",
    ),
    (
        "unknown class in a test frame only",
        _rewrite("semantic_file_path", 3, _with_unknown_id),
        r"frame 3 \(images/f3.png\) semantic_file_path f3.png: semantic ids \[7\] are not in 'classes'",
    ),
]


@pytest.mark.parametrize("name, edit, message", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_input_is_refused_before_work_naming_frame_and_file(tmp_path, name, edit, message):
    root, meta = _mini(tmp_path)
    edit(root, meta)
    with pytest.raises(SceneFormatError, match=message):
        load_scene(root)


def test_unknown_ground_truth_class_is_refused_at_load(tmp_path):
    root, meta = _mini(tmp_path)
    for i, f in enumerate(meta["frames"]):
        gt = np.full((4, 6), 1 if i != 3 else 9, np.int64)
        write_id_map(root / f"gt/sem{i}.png", gt, bits=8)
        write_id_map(root / f"gt/inst{i}.png", gt, bits=16)
        f.update(gt_semantic_file_path=f"gt/sem{i}.png", gt_instance_file_path=f"gt/inst{i}.png")
    write_meta(root, meta)
    with pytest.raises(
        SceneFormatError, match=r"frame 3 \(images/f3.png\) gt_semantic_file_path sem3.png: semantic ids \[9\]"
    ):
        load_scene(root)


def test_16_bit_and_grey_images_are_read_at_their_values(tmp_path):
    v = np.arange(24, dtype=np.uint16).reshape(4, 6) * 2700  # up to 62100 of 65535
    Image.fromarray(v).save(tmp_path / "g16.png")
    rgb = read_rgb(tmp_path / "g16.png")
    assert rgb.shape == (4, 6, 3)
    np.testing.assert_allclose(rgb[..., 1], v / 65535.0, atol=1e-6)
    Image.fromarray((v // 256).astype(np.uint8)).save(tmp_path / "g8.png")
    np.testing.assert_allclose(read_rgb(tmp_path / "g8.png")[..., 0], (v // 256) / 255.0, atol=1e-6)


def test_valid_scenes_raise_no_plausibility_warning(tmp_path, tiny_scene):
    root, _ = _mini(tmp_path)
    assert scene_warnings(load_scene(root)) == []
    assert scene_warnings(tiny_scene) == []


def test_depth_in_the_wrong_unit_is_warned_naming_the_fix(tmp_path):
    root, meta = _mini(tmp_path)
    meta["depth_unit_scale_factor"] = 1e-6  # the PNGs hold millimetres; read as micrometres, ~1 mm deep
    write_meta(root, meta)
    (warning,) = scene_warnings(load_scene(root))
    # frame i's median is 1000 + 100 i + 17.5 units (median of 10 v + u is 17.5); the median of the 4 frames is
    # 1167.5 units = 0.0011675 m, while the cameras stand ~3 m from what they look at.
    assert "median depth is 0.001168 m" in warning and "depth_unit_scale_factor" in warning


def test_a_far_camera_is_warned_naming_the_frame(tmp_path):
    root, meta = _mini(tmp_path)
    meta["frames"][2]["transform_matrix"][0][3] += 1e6
    write_meta(root, meta)
    warnings = scene_warnings(load_scene(root))
    assert any(re.search(r"frame 2 \(images/f2.png\): the camera is 1e\+06 from the median", w) for w in warnings)


def test_an_empty_test_split_is_warned(tmp_path):
    root, meta = _mini(tmp_path)
    meta["train_filenames"], meta["test_filenames"] = [f["file_path"] for f in meta["frames"]], []
    write_meta(root, meta)
    assert any("the test split is empty" in w for w in scene_warnings(load_scene(root)))


@pytest.mark.parametrize("what", ["no segments", "only background"])
def test_no_usable_segments_are_warned_and_the_stage_shows_only_running_losses(tmp_path, what):
    from lift3d.engine.trainer import Trainer

    root, meta = _mini(tmp_path)
    for i in range(4):
        key = "inst" if what == "no segments" else "sem"
        write_id_map(root / f"{key}/f{i}.png", np.zeros((4, 6), np.int64), bits=16 if key == "inst" else 8)
    lines: list[str] = []
    cfg = tiny(20)
    trainer = Trainer(load_scene(root), cfg, tmp_path / "run", progress=False, log=lines.append)
    expected = "no training frame carries 2D segments" if what == "no segments" else "only on stuff classes"
    assert any(line.startswith("WARNING") and expected in line for line in lines)
    trainer.step = cfg.losses.segment_consistency_start + 1
    assert trainer.stage() == ("rgb+sem" if what == "no segments" else "rgb+sem+seg")
    logs = trainer.train_step()
    assert "con" not in logs and "inst" not in logs  # the instance objective indeed never ran


# ----------------------------------------------------------------------------------------------- 5. faults
def test_a_corrupt_checkpoint_names_the_file_and_the_previous_one(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    latest = run / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=re.escape(str(latest)) + r".*damaged.*mv .*previous.pt"):
        load_model(run)
    os.replace(run / "checkpoints" / "previous.pt", latest)  # what the message says to do
    assert load_model(run)[2]["step"] == 10


def test_corrupt_run_records_name_the_file(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    (run / "config.json").write_bytes(b'{"scene": "\xff\xfe')
    with pytest.raises(RunFileError, match=re.escape(str(run / "config.json")) + r": cannot be read"):
        render_run(run, "test", **QUIET)
    run = _copy(finished_run, tmp_path / "b")
    (run / "clusters.json").write_text('{"format": "lift3d-clu')
    with pytest.raises(
        RunFileError, match=re.escape(str(run / "clusters.json")) + r": cannot read the instance labeler"
    ):
        render_run(run, "test", **QUIET)
    assert not (run / ".lock").exists()  # released on the error


def test_a_full_disk_says_so_removes_partial_files_and_keeps_the_last_checkpoint(tiny_scene_dir, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        run = disk / "run"
        with pytest.raises(DiskFullError, match=r"no space left on device while writing .*latest.pt"):
            fit_scene(tiny_scene_dir, run, tiny(20), **QUIET)
        assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
        assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 10  # the last good one
        assert not (run / ".lock").exists()
    finally:
        subprocess.run(["umount", str(disk)])


def test_ctrl_c_saves_a_checkpoint_and_exits_130_in_one_line(tiny_scene_dir, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lift3d.cli",
            "fit",
            str(tiny_scene_dir),
            "--preset",
            "tiny",
            "--out",
            str(run),
            "--iterations",
            "100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell job ignores SIGINT
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "checkpoints" / "latest.pt").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in out + err and err.strip().splitlines()[-1] == "lift3d: interrupted"
    saved = re.search(r"interrupted at iteration (\d+)/100000: checkpoint saved", out)
    assert saved and load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == int(saved.group(1))
    assert not (run / ".lock").exists()


# ----------------------------------------------------------------------------------------------- regressions that hold
_KILLED_AT_15 = """
import os, signal, sys
from lift3d.pipeline import fit_scene
from lift3d.presets import get_preset
cfg = get_preset("tiny")
cfg.optim.iterations = 20
def die(info):
    if info.step == 15:  # after the checkpoint of step 10, before the one of step 20
        os.kill(os.getpid(), signal.SIGKILL)
fit_scene(sys.argv[1], sys.argv[2], cfg, preset="tiny", progress=False, log=lambda *_: None, callbacks=(die,))
"""


def _weights(run: Path) -> dict:
    return load_checkpoint(Path(run) / "checkpoints" / "latest.pt")["model"]


def test_kill_9_then_resume_matches_an_uninterrupted_fit(tiny_scene_dir, finished_run, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_15, str(tiny_scene_dir), str(run)],
        cwd=REPO,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 10 and (run / ".lock").exists()
    fit_scene(tiny_scene_dir, run, tiny(20), preset="tiny", resume=True, **QUIET)  # recovers the dead pid's lock
    resumed, straight = _weights(run), _weights(finished_run)
    assert resumed.keys() == straight.keys()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=1e-5, msg=k)


def test_the_same_seed_twice_gives_identical_weights(tiny_scene_dir, finished_run, tmp_path):
    fit_scene(tiny_scene_dir, tmp_path / "again", tiny(20), preset="tiny", **QUIET)
    again, first = _weights(tmp_path / "again"), _weights(finished_run)
    assert all(torch.equal(again[k], first[k]) for k in first)
