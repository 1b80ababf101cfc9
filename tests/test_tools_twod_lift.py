"""MOTS of per-view predictions over a sequence's test clips (tools.twod_lift.clip_mots), on a generated sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lift3d.data.loading import load_frame
from lift3d.data.sequence import load_sequence
from lift3d.twod.clips import thing_track_ids
from tools.twod_lift import clip_mots


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> Path:
    """4 objects, 2 clips of 5 frames (the second is the test clip), 64x64, with ground truth."""
    from lift3d.generate import MessyRoomsConfig, generate_scene
    from lift3d.generate.config import VideoConfig

    out = tmp_path_factory.mktemp("mots") / "seq"
    cfg = MessyRoomsConfig(
        num_objects=4,
        resolution=64,
        seed=3,
        trajectory="video",
        test_fraction=0.5,
        video=VideoConfig(num_clips=2, frames_per_clip=5),
    )
    return generate_scene(cfg, out, progress=False)


def _ground_truth(seq_dir: Path):
    seq = load_sequence(seq_dir)
    (clip,) = seq.clips_of_split("test")
    views = list(clip.frames)
    frames = [load_frame(seq.scene, i, with_ground_truth=True) for i in views]
    return seq, views, [f.gt_semantic for f in frames], [f.gt_instance for f in frames]


def test_ground_truth_as_prediction_is_perfect(sequence):
    seq, views, sem, inst = _ground_truth(sequence)
    out = clip_mots(sequence, views, sem, inst)
    things = seq.scene.thing_ids
    num_masks = sum(len(np.setdiff1d(np.unique(thing_track_ids(i, s, things)), [0])) for i, s in zip(inst, sem))
    assert num_masks > 0
    assert out["clips"] == 1 and out["num_gt"] == num_masks
    assert out["tp"] == num_masks and out["fp"] == 0 and out["fn"] == 0 and out["ids"] == 0
    assert out["smotsa"] == pytest.approx(1.0) and out["motsp"] == pytest.approx(1.0)


def test_per_frame_ids_switch_at_every_reappearance(sequence):
    """The same masks with new ids in every frame: each mask of a track after its first frame is an ID switch."""
    seq, views, sem, inst = _ground_truth(sequence)
    renamed = [np.where(i > 0, i + 1000 * (t + 1), 0) for t, i in enumerate(inst)]
    out = clip_mots(sequence, views, sem, renamed)
    things = seq.scene.thing_ids
    tracks = [np.setdiff1d(np.unique(thing_track_ids(i, s, things)), [0]) for i, s in zip(inst, sem)]
    distinct = len(np.unique(np.concatenate(tracks)))
    assert out["tp"] == out["num_gt"] and out["ids"] == out["num_gt"] - distinct > 0
    assert out["motsa"] == pytest.approx((out["num_gt"] - out["ids"]) / out["num_gt"])


def test_no_whole_test_clip_or_no_sequence_gives_none(sequence, tiny_scene_dir):
    _, views, sem, inst = _ground_truth(sequence)
    assert clip_mots(sequence, views[:-1], sem[:-1], inst[:-1]) is None
    assert clip_mots(tiny_scene_dir, [0], sem[:1], inst[:1]) is None
