"""Hand-made sequences for the 2D tracking baselines of Contrastive Lift Table 4 (lift3d.baselines)."""

import numpy as np
import pytest

from lift3d.baselines import (
    mask_overlaps,
    track_by_depth_warping,
    track_by_iou,
    track_by_point_cloud_fusion,
    warp_instance_map,
)
from lift3d.baselines.tracking import _VoxelIdMap
from lift3d.geometry.cameras import backproject, project

H = W = 20
# Scene cameras for the 3D tests: fx = fy = 20, cx = cy = 10, a wall (plane) at depth 2 m in front of every
# camera. A pixel then spans 2 / 20 = 0.1 m on the wall, and a camera moved sideways by b metres sees the
# wall shifted by fx * b / z = 10 b pixels: b = 0.6 m -> every object moves 6 pixels LEFT
# (u' + 0.5 = u + 0.5 - 6 exactly, so the shift is an exact 6 pixels).
INTR = (20.0, 20.0, 10.0, 10.0)
WALL = np.full((H, W), 2.0)


def _cam(x: float) -> np.ndarray:
    c2w = np.eye(4)
    c2w[0, 3] = x
    return c2w


def _frame(rects: dict[int, tuple[int, int, int, int]], shape=(H, W)) -> np.ndarray:
    """Id map with rectangles ``id: (row0, row1, col0, col1)`` (inclusive bounds, clipped to the image)."""
    m = np.zeros(shape, dtype=np.uint16)
    for i, (r0, r1, c0, c1) in rects.items():
        m[max(r0, 0) : r1 + 1, max(c0, 0) : c1 + 1] = i
    return m


def _ids_of(tracked: np.ndarray, rect) -> int:
    r0, r1, c0, c1 = rect
    patch = tracked[max(r0, 0) : r1 + 1, max(c0, 0) : c1 + 1]
    assert np.all(patch == patch.flat[0]), "a segment was split"
    return int(patch.flat[0])


# ---------------------------------------------------------------------------------------------- geometry


def test_mask_overlaps_hand_counts():
    a = np.array([[1, 1, 0], [2, 2, 2]])
    b = np.array([[5, 0, 0], [5, 5, 6]])
    ids_a, ids_b, inter, area_a, area_b = mask_overlaps(a, b)
    assert ids_a.tolist() == [1, 2] and ids_b.tolist() == [5, 6]
    # (1,5): pixel (0,0); (2,5): (1,0), (1,1); (2,6): (1,2)
    assert inter.tolist() == [[1, 0], [2, 1]]
    assert area_a.tolist() == [2, 3] and area_b.tolist() == [3, 1]


def test_backproject_hand_values():
    # Pixel (u=10, v=5), depth 2: d_cam = [(10.5-10)/20, -(5.5-10)/20, -1] = [0.025, 0.225, -1]
    #   p_cam = [0.05, 0.45, -2].
    depth = np.zeros((H, W))
    depth[5, 10] = 2.0
    c2w = np.eye(4)
    c2w[:3, 3] = [1.0, 2.0, 3.0]
    pts, valid = backproject(depth, c2w, INTR)
    assert valid.sum() == 1 and valid[5, 10]
    assert np.allclose(pts[5, 10], [1.05, 2.45, 1.0])  # p_cam + t
    # Rotation by +90 degrees about y: R = [[0,0,1],[0,1,0],[-1,0,0]]; the camera looks along R[0,0,-1] = -x.
    #   X = R p_cam = [-2, 0.45, -0.05]
    c2w = np.eye(4)
    c2w[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
    pts, _ = backproject(depth, c2w, INTR)
    assert np.allclose(pts[5, 10], [-2.0, 0.45, -0.05])


def test_project_inverts_backproject_for_any_pose():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = q, rng.normal(size=3)
    depth = rng.uniform(0.5, 5.0, size=(7, 9))
    pts, valid = backproject(depth, c2w, (8.0, 9.0, 4.5, 3.5))
    u, v, z, inside = project(pts.reshape(-1, 3), c2w, (8.0, 9.0, 4.5, 3.5), 7, 9)
    vv, uu = np.meshgrid(np.arange(7), np.arange(9), indexing="ij")
    assert inside.all()
    assert np.array_equal(u, uu.ravel()) and np.array_equal(v, vv.ravel())
    assert np.allclose(z, depth.ravel())
    # A point behind the camera is not inside.
    behind = c2w[:3, :3] @ np.array([0.0, 0.0, 1.0]) + c2w[:3, 3]
    assert not project(behind[None], c2w, (8.0, 9.0, 4.5, 3.5), 7, 9)[3][0]


def test_warp_z_buffer_nearest_wins():
    # 1 x 8 image, fx = fy = 10, cx = 4, cy = 0.5; target camera moved by b = 0.2 m along +x.
    #   target column coordinate = u + 0.5 - fx b / z: z = 2 -> u - 0.5 (pixel u - 1); z = 1 -> u - 1.5 (u - 2).
    # Source pixel 3 (far, z = 2) and pixel 4 (near, z = 1) both land on target pixel 2: the near one wins.
    intr = (10.0, 10.0, 4.0, 0.5)
    depth = np.full((1, 8), np.nan)
    depth[0, 3], depth[0, 4] = 2.0, 1.0
    for far_id, near_id in [(7, 8), (8, 7), (7, 0)]:  # also: an unsegmented surface in front hides a segment
        ids = np.zeros((1, 8), dtype=np.int64)
        ids[0, 3], ids[0, 4] = far_id, near_id
        warped = warp_instance_map(ids, depth, np.eye(4), intr, _cam(0.2), intr)
        expected = np.zeros((1, 8), dtype=np.int64)
        expected[0, 2] = near_id
        assert np.array_equal(warped, expected), (far_id, near_id)


def test_warp_shifts_the_wall_by_six_pixels():
    ids = _frame({3: (6, 13, 8, 11)})
    warped = warp_instance_map(ids, WALL, _cam(0.0), INTR, _cam(0.6), INTR)
    assert np.array_equal(warped, _frame({3: (6, 13, 2, 5)}).astype(np.int64))


# ------------------------------------------------------------------------------------------ IoU tracking


def test_iou_tracking_recovers_permuted_ids_of_moving_rectangles():
    # Three objects move right by one pixel per frame; the 2D segmenter's ids are permuted every frame.
    # A 6-wide box moved by 1 px keeps IoU (6*5)/(6*7) = 0.71 > 0.5.
    objects = {"A": (2, 7, 2, 7), "B": (10, 16, 9, 15), "C": (2, 6, 11, 16)}
    labels = [{"A": 1, "B": 2, "C": 3}, {"A": 3, "B": 1, "C": 2}, {"A": 2, "B": 9, "C": 1}]

    def moved(rect, t):
        r0, r1, c0, c1 = rect
        return r0, r1, c0 + t, c1 + t

    maps = [_frame({labels[t][k]: moved(r, t) for k, r in objects.items()}) for t in range(3)]
    tracked = track_by_iou(maps)
    # Frame 0 is relabelled 1..n by increasing input id: A -> 1, B -> 2, C -> 3, then kept.
    gt = {"A": 1, "B": 2, "C": 3}
    for t in range(3):
        expected = _frame({gt[k]: moved(r, t) for k, r in objects.items()}).astype(np.int64)
        assert np.array_equal(tracked[t], expected), t
        assert tracked[t].dtype == np.int64


def test_iou_tracking_new_ids_threshold_and_gaps():
    a = (5, 10, 2, 7)
    far_move = (5, 10, 6, 11)  # IoU = (6*2) / (6*10) = 0.2
    maps = [_frame({4: a}), _frame({1: far_move}), _frame({1: far_move, 2: (15, 18, 15, 18)})]
    tracked = track_by_iou(maps)
    assert [_ids_of(tracked[0], a), _ids_of(tracked[1], far_move)] == [1, 2]  # below 0.5: new id
    assert _ids_of(tracked[2], (15, 18, 15, 18)) == 3  # a newly appearing object gets the next id
    tracked = track_by_iou(maps, iou_threshold=0.15)
    assert _ids_of(tracked[1], far_move) == 1
    # Only consecutive frames are compared: an object missing from frame 1 comes back with a new id.
    tracked = track_by_iou([_frame({1: a}), _frame({}), _frame({5: a})])
    assert _ids_of(tracked[0], a) == 1 and _ids_of(tracked[2], a) == 2


def test_iou_tracking_one_to_one():
    # Two current segments both overlap the same previous one by IoU >= 0.5 is impossible (IoU > 0.5 is unique),
    # so test with a low threshold: the previous id goes to the better match only.
    prev = _frame({1: (0, 9, 0, 9)})
    cur = _frame({1: (0, 9, 0, 6), 2: (0, 9, 7, 9)})  # IoU 0.7 and 0.3
    tracked = track_by_iou([prev, cur], iou_threshold=0.1)
    assert _ids_of(tracked[1], (0, 9, 0, 6)) == 1 and _ids_of(tracked[1], (0, 9, 7, 9)) == 2


def test_input_errors_name_the_frame():
    with pytest.raises(ValueError, match="frame 1"):
        track_by_iou([np.zeros((4, 4), dtype=np.int32), np.zeros((4, 4))])
    with pytest.raises(ValueError, match="frame 1"):
        track_by_iou([np.zeros((4, 4), dtype=np.int32), np.zeros((5, 4), dtype=np.int32)])
    with pytest.raises(ValueError, match="per frame"):
        track_by_depth_warping([np.zeros((4, 4), dtype=np.int32)] * 2, [np.ones((4, 4))], [np.eye(4)] * 2, INTR)


# ------------------------------------------------------------------------------------ depth warping


def test_depth_warping_tracks_a_shift_too_large_for_iou():
    # Cameras at x = 0, 0.6, 1.2 m: the wall moves 6 px left per frame. Objects A (4 wide) and B (4 wide, 2 px
    # to A's right) move more than their width, so 2D IoU pairs the PREVIOUS A with the CURRENT B (same
    # columns 8-11): plain IoU tracking swaps identities. Frame 2: A left the view, C enters on the right.
    a0, b0 = (6, 13, 8, 11), (6, 13, 14, 17)
    a1, b1 = (6, 13, 2, 5), (6, 13, 8, 11)
    b2, c2 = (6, 13, 2, 5), (6, 13, 14, 17)
    maps = [_frame({1: a0, 2: b0}), _frame({2: a1, 1: b1}), _frame({5: b2, 3: c2})]
    cams = [_cam(0.0), _cam(0.6), _cam(1.2)]
    tracked = track_by_depth_warping(maps, [WALL] * 3, cams, INTR)
    assert [_ids_of(tracked[0], a0), _ids_of(tracked[0], b0)] == [1, 2]
    assert [_ids_of(tracked[1], a1), _ids_of(tracked[1], b1)] == [1, 2]
    assert [_ids_of(tracked[2], b2), _ids_of(tracked[2], c2)] == [2, 3]
    # Per-frame intrinsics are accepted too and give the same answer.
    again = track_by_depth_warping(maps, [WALL] * 3, cams, [INTR] * 3)
    assert all(np.array_equal(x, y) for x, y in zip(tracked, again))
    # Plain IoU tracking gets it wrong: B in frame 1 inherits A's id.
    iou = track_by_iou(maps)
    assert _ids_of(iou[1], b1) == _ids_of(iou[0], a0) != _ids_of(iou[0], b0)


# ------------------------------------------------------------------------------- point-cloud fusion


def _leave_and_return_sequence():
    # Cameras at x = 0, 0.6, 0: A (columns 0-4) leaves the view in frame 1 and is back in frame 2.
    # C is seen only in frame 1 (wall x beyond the first camera's view). Input ids permuted.
    a0, b0 = (6, 13, 0, 4), (6, 13, 12, 16)
    b1, c1 = (6, 13, 6, 10), (6, 13, 14, 18)
    maps = [_frame({1: a0, 2: b0}), _frame({4: b1, 3: c1}), _frame({2: a0, 1: b0})]
    return maps, [_cam(0.0), _cam(0.6), _cam(0.0)], (a0, b0, b1, c1)


def test_fusion_keeps_the_id_of_an_object_that_leaves_and_returns():
    maps, cams, (a0, b0, b1, c1) = _leave_and_return_sequence()
    tracked = track_by_point_cloud_fusion(maps, [WALL] * 3, cams, INTR)
    assert [_ids_of(tracked[0], a0), _ids_of(tracked[0], b0)] == [1, 2]
    assert [_ids_of(tracked[1], b1), _ids_of(tracked[1], c1)] == [2, 3]
    assert [_ids_of(tracked[2], a0), _ids_of(tracked[2], b0)] == [1, 2]
    assert np.array_equal(tracked[2] > 0, maps[2] > 0)
    # The consecutive-frame trackers give the returning A a new id.
    for other in (track_by_iou(maps), track_by_depth_warping(maps, [WALL] * 3, cams, INTR)):
        assert _ids_of(other[2], a0) != _ids_of(other[0], a0)
    # ... and depth warping still tracks B through the camera motion.
    warp = track_by_depth_warping(maps, [WALL] * 3, cams, INTR)
    assert _ids_of(warp[1], b1) == _ids_of(warp[0], b0) == _ids_of(warp[2], b0)


def test_fusion_overlap_threshold_and_invalid_depth():
    # Same camera twice. Frame 1's segment covers 2 of A's 4 columns plus 6 new columns: overlap 2/8 = 0.25.
    a, wide = (6, 13, 0, 3), (6, 13, 2, 9)
    maps = [_frame({1: a}), _frame({1: wide})]
    cams = [_cam(0.0)] * 2
    assert _ids_of(track_by_point_cloud_fusion(maps, [WALL] * 2, cams, INTR)[1], wide) == 2
    assert _ids_of(track_by_point_cloud_fusion(maps, [WALL] * 2, cams, INTR, overlap_threshold=0.2)[1], wide) == 1
    # A segment without valid depth cannot be matched: it gets a new id but keeps its pixels.
    no_depth = WALL.copy()
    no_depth[6:14, 0:4] = 0.0
    tracked = track_by_point_cloud_fusion([maps[0], maps[0]], [WALL, no_depth], cams, INTR)
    assert _ids_of(tracked[1], a) == 2


def test_voxel_map_majority_label():
    vox = _VoxelIdMap()
    vox.add(np.array([10, 10, 10, 20, 30, 30]), np.array([2, 2, 5, 7, 3, 4]))
    # voxel 10: id 2 twice, id 5 once -> 2; voxel 20 -> 7; voxel 30: tie 3 / 4 -> smaller id 3; 40 unseen -> 0
    assert vox.labels(np.array([10, 20, 30, 40])).tolist() == [2, 7, 3, 0]
    vox.add(np.array([30, 30]), np.array([4, 4]))
    assert vox.labels(np.array([30])).tolist() == [4]
