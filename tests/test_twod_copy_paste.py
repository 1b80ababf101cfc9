"""Copy-paste of depth regions (paper 003): z-test, depth-consistent scale, exact pixel correspondence."""

from __future__ import annotations

import numpy as np
import pytest

from lift3d.twod.copy_paste import CopyPasteConfig, PasteCanvas, paste_region, paste_regions


def square_source(size: int = 40):
    """Region 0: the 10x10 square x, y in 5..14 at depth 2; region 1: the rest at depth 6."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    regions = np.ones((size, size), dtype=np.int64)
    regions[5:15, 5:15] = 0
    depth = np.where(regions == 0, 2.0, 6.0).astype(np.float32)
    return image, depth, regions


def split_target(size: int = 40):
    """Depth 1 on the left half (x < 20), 5 on the right half."""
    image = np.full((size, size, 3), 128, dtype=np.uint8)
    depth = np.where(np.arange(size)[None, :] < 20, 1.0, 5.0).astype(np.float32) * np.ones((size, 1), np.float32)
    return image, depth


def test_z_test_keeps_only_the_part_in_front():
    image, depth, regions = square_source()
    target_image, target_depth = split_target()
    canvas = PasteCanvas(target_image, target_depth)
    # scale z_s / z_p = 2 / 2 = 1: centroid (10, 10) lands on pixel (20, 20), the square covers x, y in 15..24
    written = paste_region(canvas, image, depth, regions, 0, (20, 20), 2.0)
    visible = canvas.source_pixel >= 0
    expected = np.zeros_like(visible)
    expected[15:25, 20:25] = True  # only the right half, where the target (5 m) is behind the paste (2 m)
    assert np.array_equal(visible, expected) and written == 50
    assert (canvas.depth[15:25, 15:20] == 1.0).all()  # the left half stays the target's (1 m is in front)
    assert np.allclose(canvas.depth[expected], 2.0)
    ys, xs = np.nonzero(expected)
    assert np.array_equal(canvas.source_pixel[ys, xs], (ys - 10) * 40 + (xs - 10))
    assert np.array_equal(canvas.image[ys, xs], image[ys - 10, xs - 10])


def test_depth_consistent_scale_halves_the_region_at_twice_the_depth():
    image, depth, regions = square_source()
    target_image, target_depth = split_target()
    canvas = PasteCanvas(target_image, 10 * target_depth)  # 10 m / 50 m: everything pasted at 4 m is in front
    paste_region(canvas, image, depth, regions, 0, (20, 20), 4.0)
    # s = 2 / 4 = 0.5: 10x10 -> 5x5 pixels around (20.5, 20.5): target pixels 18..22, each from source pixel
    # floor(10 + (q + 0.5 - 20.5) / 0.5) = 2 q - 30
    visible = canvas.source_pixel >= 0
    expected = np.zeros_like(visible)
    expected[18:23, 18:23] = True
    assert np.array_equal(visible, expected)
    ys, xs = np.nonzero(expected)
    assert np.array_equal(canvas.source_pixel[ys, xs], (2 * ys - 30) * 40 + (2 * xs - 30))
    assert np.allclose(canvas.depth[expected], 4.0)  # translate: 2 + (4 - 2)


@pytest.mark.parametrize("depth_rule", ["translate", "scale"])
def test_paste_regions_correspondence_is_exact(depth_rule):
    size = 64
    rng = np.random.default_rng(3)
    source_image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    target_image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    # source: 16 blocks of 16x16, each a region on a slanted plane, depths 2..4
    yy, xx = np.mgrid[0:size, 0:size]
    source_regions = (yy // 16) * 4 + xx // 16
    source_depth = (2.0 + xx / size + yy / size).astype(np.float32)
    source_depth[:4, :4] = 0.0
    source_regions[:4, :4] = -1
    target_depth = (3.0 + 3.0 * np.sin(xx / 9.0) ** 2).astype(np.float32)
    target_depth[-6:, :] = 0.0  # unknown: counts as infinitely far
    config = CopyPasteConfig(num_regions=4, min_area_fraction=0.01, max_area_fraction=0.1, depth_rule=depth_rule)
    pair = paste_regions(source_image, source_depth, source_regions, target_image, target_depth, rng, config)
    m = len(pair.pasted_index)
    assert m > 100
    assert len(pair.source_index) == len(pair.region) == m
    assert np.all(np.diff(pair.pasted_index) > 0)  # each pasted pixel once
    assert np.array_equal(pair.source, source_image)
    flat_source, flat_pasted = source_image.reshape(-1, 3), pair.pasted.reshape(-1, 3)
    assert np.array_equal(flat_pasted[pair.pasted_index], flat_source[pair.source_index])
    assert np.array_equal(source_regions.reshape(-1)[pair.source_index], pair.region)
    # untouched pixels keep the target's image and depth
    untouched = np.ones(size * size, bool)
    untouched[pair.pasted_index] = False
    assert np.array_equal(flat_pasted[untouched], target_image.reshape(-1, 3)[untouched])
    assert np.array_equal(pair.pasted_depth.reshape(-1)[untouched], target_depth.reshape(-1)[untouched])
    # z-test: every visible pasted pixel is in front of the target's surface (unknown target depth = infinitely far)
    z_new = pair.pasted_depth.reshape(-1)[pair.pasted_index].astype(np.float64)
    z_target = target_depth.reshape(-1)[pair.pasted_index]
    assert np.all((z_new < z_target) | (z_target == 0))
    z_src = source_depth.reshape(-1)[pair.source_index].astype(np.float64)
    for region in np.unique(pair.region):
        sel = pair.region == region
        z_s = float(np.median(source_depth[source_regions == region]))
        if depth_rule == "translate":
            shift = z_new[sel] - z_src[sel]
            assert np.ptp(shift) < 1e-5
            z_p = z_s + shift[0]
        else:
            ratio = z_new[sel] / z_src[sel]
            assert np.ptp(ratio) < 1e-5
            z_p = z_s * ratio[0]
        scale = z_s / z_p
        assert config.scale_range[0] - 1e-6 <= scale <= config.scale_range[1] + 1e-6
        # nearest-neighbour inverse map: source centre within half a pixel of c_s + (q - c_t) / s for one c_t
        ys, xs = np.nonzero(source_regions == region)
        centroid = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
        q = np.stack([pair.pasted_index[sel] % size, pair.pasted_index[sel] // size], 1) + 0.5
        p = np.stack([pair.source_index[sel] % size, pair.source_index[sel] // size], 1) + 0.5
        anchor = q - scale * (p - centroid)  # each estimate within 0.5 s of the true anchor centre
        anchor_centre = np.floor(anchor.mean(0)) + 0.5
        residual = centroid + (q - anchor_centre) / scale - p
        assert np.abs(residual).max() <= 0.5 + 1e-9


def test_paste_regions_rejects_frames_of_different_sizes():
    image, depth, regions = square_source()
    with pytest.raises(ValueError, match="target_depth"):
        paste_regions(image, depth, regions, image, depth[:30], np.random.default_rng(0))


def test_region_areas_select_candidates():
    image, depth, regions = square_source()  # region 0: 100 px (6%), region 1: 94%
    target_image, target_depth = split_target()
    config = CopyPasteConfig(num_regions=5, min_area_fraction=0.01, max_area_fraction=0.5)
    pair = paste_regions(image, depth, regions, target_image, 2 * target_depth, np.random.default_rng(0), config)
    assert set(pair.region.tolist()) == {0}


def test_no_paste_where_no_plausible_depth_exists():
    # z_s = 2 and s >= 0.5 need z_p <= 4, but z_p >= 0.6 z_t >= 6 on a 10 m / 50 m target: nothing is pasted
    image, depth, regions = square_source()
    target_image, target_depth = split_target()
    pair = paste_regions(image, depth, regions, target_image, 10 * target_depth, np.random.default_rng(0))
    assert len(pair.pasted_index) == 0 and np.array_equal(pair.pasted, target_image)
