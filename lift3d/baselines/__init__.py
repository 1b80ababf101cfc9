"""Baselines that do not lift: 2D instance maps made consistent across views by tracking (paper 004 Table 4).

:mod:`.tracking` holds the three trackers (consecutive-frame IoU, IoU after depth warping, point-cloud
fusion); :mod:`.warping` the pinhole geometry they share (scene-format OpenGL cameras).
"""

from .tracking import mask_overlaps, track_by_depth_warping, track_by_iou, track_by_point_cloud_fusion
from .warping import backproject, project, voxel_keys, warp_instance_map

__all__ = [
    "track_by_iou",
    "track_by_depth_warping",
    "track_by_point_cloud_fusion",
    "mask_overlaps",
    "backproject",
    "project",
    "warp_instance_map",
    "voxel_keys",
]
