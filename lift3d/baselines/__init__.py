"""Baselines that do not lift: 2D instance maps made consistent across views by tracking (Contrastive Lift Table 4).

:mod:`.tracking` holds the three trackers (consecutive-frame IoU, IoU after depth warping, point-cloud
fusion); :mod:`.warping` the id-map warping and voxel keys they share (cameras: :mod:`lift3d.geometry.cameras`).
"""

from .tracking import mask_overlaps, track_by_depth_warping, track_by_iou, track_by_point_cloud_fusion
from .warping import voxel_keys, warp_instance_map

__all__ = [
    "track_by_iou",
    "track_by_depth_warping",
    "track_by_point_cloud_fusion",
    "mask_overlaps",
    "warp_instance_map",
    "voxel_keys",
]
