"""Masked pixels (``FrameData.valid_mask`` False, nerfstudio's ``mask_path``) enter no loss and no clustering sample;
the fit log states cameras, depth density and masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from conftest import MINI_H, MINI_W, make_mini_scene, write_meta

from lift3d.data.images import write_id_map
from lift3d.data.loading import load_scene
from lift3d.data.rays import describe_inputs, load_pixel_set
from lift3d.data.scene import FrameData, Scene
from lift3d.engine.checkpoint import load_model
from lift3d.engine.inference import render_pixel_set
from lift3d.engine.trainer import Trainer
from lift3d.pipeline.decoding import cluster_from_training_views
from lift3d.presets import get_preset

MASKED_COLUMNS = 12
"""The adapter below masks out the left 12 columns of every frame."""


class LeftColumnsMasked:
    """A frame adapter that sets every frame's valid_mask: False on the left MASKED_COLUMNS columns."""

    def adapt_frame(self, scene: Scene, index: int, data: FrameData) -> FrameData:
        mask = np.ones(data.instance.shape, bool)
        mask[:, :MASKED_COLUMNS] = False
        data.valid_mask = mask
        return data


def masked_scene(scene_dir) -> Scene:
    scene = load_scene(scene_dir)
    return dataclasses.replace(scene, frame_adapter=LeftColumnsMasked())


def test_pixel_set_flags_masked_pixels_and_usable_rows_skip_them(tiny_scene_dir):
    scene = masked_scene(tiny_scene_dir)
    ps = load_pixel_set(scene, scene.train_indices[:2])
    assert ps.valid is not None and ps.valid.shape == (ps.rgb.shape[0],)
    masked_by_uv = ps.pixel_uv[:, 0] < MASKED_COLUMNS
    torch.testing.assert_close(ps.valid, ~masked_by_uv)
    rows = ps.usable_rows()
    assert rows.numel() == int((~masked_by_uv).sum()) and bool(ps.valid[rows].all())
    # no mask anywhere: valid stays None and every row is usable
    plain = load_pixel_set(load_scene(tiny_scene_dir), [0])
    assert plain.valid is None and plain.usable_rows().numel() == plain.rgb.shape[0]


def test_masked_pixels_never_enter_a_training_batch(tiny_scene_dir, tmp_path):
    cfg = get_preset("tiny")
    cfg.optim.iterations = cfg.losses.instance_start + 4
    cfg.losses.segment_consistency_start = cfg.losses.instance_start  # every kind of batch runs
    lines: list[str] = []
    trainer = Trainer(masked_scene(tiny_scene_dir), cfg, tmp_path / "run", progress=False, log=lines.append)
    pixels = trainer.train_pixels
    drawn: list[torch.Tensor] = []
    real_rays = pixels.rays

    def recording_rays(rows):  # the real rays, with the rows remembered
        drawn.append(rows.clone())
        return real_rays(rows)

    pixels.rays = recording_rays
    logs = [trainer.train_step() for _ in range(cfg.optim.iterations)]
    assert any("seg" in lg for lg in logs) and any(("con" in lg or "inst" in lg) for lg in logs)
    rows = torch.cat(drawn)
    assert rows.numel() > cfg.optim.iterations * cfg.optim.rays_per_batch
    assert bool(pixels.valid[rows].all()), "a masked pixel entered a batch"
    assert int(pixels.pixel_uv[rows, 0].min()) == MASKED_COLUMNS  # the first usable column is drawn
    for segment_rows in trainer.view_segment_rows:
        assert bool(pixels.valid[segment_rows].all())
    frac = MASKED_COLUMNS / 32
    assert f"masks: {100 * frac:.3g}% of pixels excluded (mask_path)" in "\n".join(lines)
    assert "cameras: pinhole (6 views)" in lines


def test_masked_pixels_give_no_clustering_sample(fitted_run, tmp_path):
    scene_dir, run_dir = fitted_run  # read only: the clusters are written to tmp_path
    model, cfg, _ = load_model(run_dir)
    cfg.cluster.min_cluster_size = 5  # no sweep: the samples are what is checked
    scene = masked_scene(scene_dir)
    _, info = cluster_from_training_views(model, scene, cfg, tmp_path, log=lambda *_: None)
    views = [f.index for f in scene.frames if f.name in info["cluster_views"]]
    renders = render_pixel_set(model, load_pixel_set(scene, views), cfg.render_chunk)
    things = scene.thing_ids
    in_valid = sum(int(np.isin(r.semantic[:, MASKED_COLUMNS:], things).sum()) for r in renders)
    everywhere = sum(int(np.isin(r.semantic, things).sum()) for r in renders)
    assert info["num_points"] == in_valid
    assert everywhere > in_valid  # objects are seen in the masked columns too: the mask really removed samples


def test_describe_inputs_reports_sparse_depth_and_lens_models(tiny_scene_dir):
    ps = load_pixel_set(load_scene(tiny_scene_dir), [0, 1])
    assert describe_inputs(ps) == ["cameras: pinhole (2 views)", "depth: 100% of pixels valid (dense); masks: none"]
    ps.depth = torch.where(torch.arange(ps.depth.numel()) % 200 == 0, ps.depth, torch.zeros_like(ps.depth))
    ps.distortion_names = ["opencv k1=-0.25 k2=0.08 p1=0.002 p2=-0.001", "pinhole"]
    assert describe_inputs(ps) == [
        "cameras: opencv k1=-0.25 k2=0.08 p1=0.002 p2=-0.001 (1 view), pinhole (1 view)",
        f"depth: {100 * 11 / 2048:.3g}% of pixels valid (sparse: supervises only its valid pixels); masks: none",
    ]


def test_mask_path_of_a_transforms_json_scene_reaches_the_pixel_set(tmp_path):
    """nerfstudio's ``mask_path`` (0 = excluded) read by the scene reader becomes ``PixelSet.valid``."""
    meta = make_mini_scene(tmp_path, num_frames=3)
    for i, frame in enumerate(meta["frames"]):
        mask = np.full((MINI_H, MINI_W), 255, np.int64)
        mask[i % MINI_H, :] = 0  # frame i: row i excluded
        write_id_map(tmp_path / f"masks/f{i}.png", mask, bits=8)
        frame["mask_path"] = f"masks/f{i}.png"
    write_meta(tmp_path, meta)
    ps = load_pixel_set(load_scene(tmp_path), [0, 2])
    expected = np.ones((2, MINI_H, MINI_W), bool)
    expected[0, 0, :] = expected[1, 2, :] = False
    np.testing.assert_array_equal(ps.valid.numpy(), expected.reshape(-1))
    assert describe_inputs(ps)[1].endswith(
        f"masks: {100 * MINI_W / (MINI_H * MINI_W):.3g}% of pixels excluded (mask_path)"
    )
