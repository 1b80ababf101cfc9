"""The 2D side: networks that segment single images into instances, trained on scenes with ground truth.

Their per-view masks are what the lift consumes (``lift3d segments predict --model RUN2D``). First method:
spatial embeddings with a learned clustering bandwidth (Neven et al., CVPR 2019) on a branched ERFNet.
Modules: :mod:`.dataset` (frames from scenes, augmentations, split by scene), :mod:`.network` (ERFNet-style
encoder-decoder), :mod:`.spatial_embeddings` (loss and clustering), :mod:`.model` (checkpoint + inference),
:mod:`.train` (single-process or DDP), :mod:`.evaluate` (AP, per-frame PQ, contact sheet), :mod:`.predict`
(a scene's segments from a trained network).

Cross-modal consistency (Zhu et al., IROS 2022; ``--method cross-modal``, on camera + LiDAR sequences):
:mod:`.cross_modal_network` (image and range-image branches), :mod:`.correspondence` (LiDAR-pixel pairs,
flow-warped ids, even boundary-aware sampling), :mod:`.cross_modal_data` (training items), :mod:`.mean_shift`
(cosine mean shift, embedding tracker), :mod:`.cross_modal_config` and :mod:`.cross_modal` (loss, training,
evaluation with MOTS, tracked prediction); the NT-Xent itself is :mod:`lift3d.losses.ntxent`.

Video (paper 001, spatio-temporal embeddings): :mod:`.clips` (training windows of sequences), :mod:`.temporal`
(causal 3-D-convolution temporal model), :mod:`.depth` (self-supervised monocular depth, Monodepth2's losses; also a
stand-alone depth network), :mod:`.spatio_temporal` (network and loss), :mod:`.tracking` (mean-shift clustering
per frame, ids carried over time), :mod:`.video_model` (checkpoint + inference of a clip), :mod:`.video_eval` (MOTS,
AP, PQ, depth metrics), :mod:`.video_predict` (tracks or per-frame ids into a scene).

Copy-paste pretraining (paper 003, Zeng et al., BMVC 2022): :mod:`.regions` (coherent depth regions: SLIC
superpixels grouped by 3D distance, community detection, merging) and :mod:`.copy_paste` (regions pasted into other
frames with depth-consistent scale and a z-test, with the exact pixel correspondence), :mod:`.pretrain_data` (frames,
scene or network depth, cached regions), :mod:`.pretrain` (SwAV at pixel and region level over the pastes, or plain
SwAV; the encoder that ``twod train --init`` starts from) and :mod:`.feature_eval` (unsupervised segmentation with
an encoder's features); SwAV's maths is :mod:`lift3d.losses.swav`, the scores :mod:`lift3d.metrics.unsupervised`.

This package imports data, geometry, io, losses and metrics, never the 3D engine.
"""
