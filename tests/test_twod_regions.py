"""Coherent depth regions (paper 003) on analytic scenes made of planes seen by a pinhole camera."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from lift3d.twod.regions import (
    DepthRegionConfig,
    coherent_depth_regions,
    depth_edge_weight,
    merge_communities,
    superpixel_adjacency,
    superpixel_centroids,
    superpixel_size,
)
from tools.bench_regions import SEPARATED_PLANES, pinhole, render_rectangles, textured_planes


@pytest.mark.parametrize("size", [64, 128])
def test_separated_planes_are_recovered(size):
    intrinsics = pinhole(size)
    depth, plane = render_rectangles(SEPARATED_PLANES, intrinsics, size)
    assert (plane >= 0).all() and len(np.unique(plane)) == 4
    regions = coherent_depth_regions(textured_planes(plane), depth, intrinsics)
    assert regions.dtype == np.int64 and regions.min() == 0
    # ids are consecutive 0..R-1
    assert np.array_equal(np.unique(regions), np.arange(regions.max() + 1))
    # measured: ARI 0.994 (64 px) and 0.993 (128 px), 4 regions; the rest are pixels of superpixels that straddle a border
    assert adjusted_rand_score(plane.ravel(), regions.ravel()) > 0.97
    assert regions.max() + 1 == 4
    for k in range(4):
        in_plane = regions[plane == k]
        majority = np.bincount(in_plane).argmax()
        assert (in_plane == majority).mean() > 0.97  # each plane covered by one region
        assert (plane[regions == majority] == k).mean() > 0.97  # that region lies inside the plane


def test_planes_meeting_at_a_crease_are_one_region():
    """The weight measures 3D distance, not orientation: a floor running into a wall without a gap is one region,
    a box floating in front of that wall another. (With the wall at 8 m the far floor, seen at a grazing angle, is cut
    off: neighbouring superpixels there are over ``2.61 (z_max + z_min) / 48`` apart.)"""
    size = 96
    intrinsics = pinhole(size)
    rectangles = [
        ([-8, -8, 6], [16, 0, 0], [0, 9.5, 0]),  # wall z = 6, down to the floor at y = 1.5
        ([-8, 1.5, 1.0], [16, 0, 0], [0, 0, 5.0]),  # floor y = 1.5 from z = 1 to the wall
        ([-0.6, -0.8, 2.5], [1.2, 0, 0], [0, 1.2, 0]),  # box face z = 2.5
    ]
    depth, index = render_rectangles(rectangles, intrinsics, size)
    colours = np.where(index[..., None] == 2, [220, 60, 60], np.where(index[..., None] == 1, [120, 90, 60], [200] * 3))
    image = np.clip(colours + np.random.default_rng(1).normal(0, 6, colours.shape), 0, 255).astype(np.uint8)
    regions = coherent_depth_regions(image, depth, intrinsics)
    structure = (index == 2).astype(int)  # 0 wall + floor, 1 box
    assert regions.max() + 1 == 2
    assert adjusted_rand_score(structure.ravel(), regions.ravel()) > 0.95


def test_unknown_depth_is_region_minus_one():
    size = 64
    intrinsics = pinhole(size)
    depth, plane = render_rectangles(SEPARATED_PLANES, intrinsics, size)
    depth[:, :10] = 0.0
    depth[40:, 30:] = np.nan
    regions = coherent_depth_regions(textured_planes(plane), depth, intrinsics)
    unknown = ~(np.isfinite(depth) & (depth > 0))
    assert (regions[unknown] == -1).all()
    assert (regions[~unknown] >= 0).all()
    assert (coherent_depth_regions(textured_planes(plane), np.zeros_like(depth), intrinsics) == -1).all()


def test_edge_weight_hand_values():
    config = DepthRegionConfig()
    centroids = np.array([[0.0, 0, 2], [0.0, 0, 3], [1.0, 0, 2]])
    edges = np.array([[0, 1], [0, 2]])
    # z_min + z_max = 12 -> distance 1 gives sigmoid(48 / 12 - 4) = 0.5; distance 0 would give sigmoid(-4)
    weight = depth_edge_weight(centroids, edges, 2.0, 10.0, config.distance_gain, config.distance_offset)
    np.testing.assert_allclose(weight, [0.5, 0.5])
    weight = depth_edge_weight(centroids, edges, 1.0, 5.0, 48.0, 4.0)  # 48 / 6 - 4 = 4
    np.testing.assert_allclose(weight, 1 / (1 + np.exp(-4.0)))


def test_centroids_and_adjacency_hand_values():
    labels = np.array([[0, 0, 1], [2, 2, 1], [-1, 2, 1]])
    edges = superpixel_adjacency(labels)
    assert edges.tolist() == [[0, 1], [0, 2], [1, 2]]
    intrinsics = np.array([[2.0, 0, 1.5], [0, 2.0, 1.5], [0, 0, 1]])
    depth = np.full((3, 3), 4.0)
    centroids = superpixel_centroids(labels, depth, intrinsics)
    # pixel (u, v) -> X = 4 (u + 0.5 - 1.5) / 2, Y = 4 (v + 0.5 - 1.5) / 2, Z = 4
    np.testing.assert_allclose(centroids[0], [(-2 + 0) / 2, -2, 4])
    np.testing.assert_allclose(centroids[1], [2, 0, 4])
    np.testing.assert_allclose(centroids[2], [(-2 + 0 + 0) / 3, (0 + 0 + 2) / 3, 4])


def test_merge_uses_mean_inter_community_weight():
    # superpixels 0..4 in communities A = {0, 1}, B = {2, 3}, C = {4}; edge 0-1 lies inside A and never counts.
    # A-B joined by weights 0.1 and 0.2 (mean 0.15 < 0.2): merged; then AB-C by 0.3 and 0.5 (mean 0.4): kept apart
    community = np.array([0, 0, 1, 1, 2])
    edges = np.array([[0, 2], [1, 3], [2, 4], [0, 4], [0, 1]])
    weight = np.array([0.1, 0.2, 0.3, 0.5, 0.9])
    merged = merge_communities(community, edges, weight, 0.2)
    assert merged[0] == merged[1] == merged[2] == merged[3] != merged[4]
    assert len(np.unique(merge_communities(community, edges, weight, 0.41))) == 1
    # B-C alone would be 0.3, A-C alone 0.5: below 0.35 B-C is not merged first because A-B (0.15) goes first and
    # the merged AB-C mean is 0.4
    assert len(np.unique(merge_communities(community, edges, weight, 0.35))) == 2


def test_superpixel_size_keeps_paper_value_on_paper_frames():
    config = DepthRegionConfig()
    cityscapes = np.array([[2262.52, 0, 1024], [0, 2262.52, 512], [0, 0, 1]])
    assert superpixel_size(cityscapes, config) == pytest.approx(1024 * 2048 / 10_000)
    small = pinhole(128)  # f = 91.4 px -> (0.03 f)^2 = 7.5 px
    assert superpixel_size(small, config) == pytest.approx((0.03 * small[0, 0]) ** 2)
    assert superpixel_size(small, DepthRegionConfig(max_superpixel_angle=None)) == config.pixels_per_superpixel
