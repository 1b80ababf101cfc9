"""Instance steps over several images at once (``optim.instance_images``) and pixels drawn evenly over 2D segments
(``optim.instance_pixel_sampling = "segment"``): pairs never form across images, each segment gets its share."""

from __future__ import annotations

import torch

from lift3d.data.loading import load_scene
from lift3d.engine.trainer import Trainer
from lift3d.presets import get_preset


def _trainer(scene_dir, tmp_path, **optim):
    cfg = get_preset("tiny")
    for key, value in optim.items():
        setattr(cfg.optim, key, value)
    return Trainer(load_scene(scene_dir), cfg, tmp_path / "run", progress=False, log=lambda *_: None)


def test_default_draw_is_a_uniform_prefix_of_one_permutation(tiny_scene_dir, tmp_path):
    trainer = _trainer(tiny_scene_dir, tmp_path)
    view = trainer.instance_views[0]
    state = trainer.generator.get_state()
    drawn = trainer._draw_image_pixels(view, 50)
    trainer.generator.set_state(state)
    candidates = trainer.view_segment_rows[view]
    expected = candidates[torch.randperm(candidates.numel(), generator=trainer.generator)[:50]]
    assert torch.equal(drawn, expected)


def test_segment_sampling_gives_every_segment_its_share(tiny_scene_dir, tmp_path):
    trainer = _trainer(tiny_scene_dir, tmp_path, instance_pixel_sampling="segment")
    ids_all = trainer.train_pixels.instance
    for view in trainer.instance_views:
        candidates = trainer.view_segment_rows[view]
        sizes = torch.unique(ids_all[candidates], return_counts=True)[1]
        if sizes.numel() < 2 or int(sizes.min()) == int(sizes.max()):
            continue
        count = int(sizes.min()) * sizes.numel() + 3  # more than the smallest segment's share
        drawn = trainer._draw_image_pixels(view, count)
        assert drawn.numel() == count and torch.unique(drawn).numel() == count
        assert bool(torch.isin(drawn, candidates).all())
        segment_of = {int(s): int(c) for s, c in zip(*torch.unique(ids_all[candidates], return_counts=True))}
        got = {s: int((ids_all[drawn] == s).sum()) for s in segment_of}
        # round robin: the smallest segment is taken whole; segments not exhausted differ by at most one pixel
        smallest = min(segment_of, key=segment_of.get)
        assert got[smallest] == segment_of[smallest]
        open_counts = [got[s] for s in segment_of if got[s] < segment_of[s]]
        assert open_counts and max(open_counts) - min(open_counts) <= 1
        assert all(got[s] <= max(open_counts) for s in segment_of)
        return
    raise AssertionError("the tiny scene has no view with segments of different sizes")


def test_several_images_per_step_never_pair_pixels_across_images(tiny_scene_dir, tmp_path):
    trainer = _trainer(tiny_scene_dir, tmp_path, instance_images=3, instance_pixels=96)
    seen = []
    real_loss = trainer.instance_loss

    def recording_loss(batch, logs):
        seen.append(batch)
        return real_loss(batch, logs)

    trainer.instance_loss = recording_loss
    before = [p.detach().clone() for p in trainer.model.instance.parameters()]
    for _ in range(3):
        seen.clear()
        trainer.train_instance_step()
        assert 1 <= len(seen) <= 3
        for batch in seen:
            assert batch.rows.numel() <= 32  # 96 pixels split over 3 images
        # every batch holds the thing pixels of ONE image; batches index disjoint rows of the step's samples
        rows = torch.cat([b.rows for b in seen])
        assert torch.unique(rows).numel() == rows.numel()
    after = list(trainer.model.instance.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "the instance field did not train"


def test_several_images_per_step_batches_come_from_single_views(tiny_scene_dir, tmp_path):
    trainer = _trainer(tiny_scene_dir, tmp_path, instance_images=2, instance_pixels=64)
    picks = []
    real_draw = trainer._draw_image_pixels

    def recording_draw(view, count):
        rows = real_draw(view, count)
        picks.append((view, rows))
        return rows

    trainer._draw_image_pixels = recording_draw
    trainer.train_instance_step()
    assert len(picks) == 2 and all(rows.numel() <= 32 for _, rows in picks)
    for view, rows in picks:
        assert bool((trainer.train_pixels.pixel_view[rows] == trainer.train_pixels.pixel_view[rows[0]]).all())
        assert bool(torch.isin(rows, trainer.view_segment_rows[view]).all())
