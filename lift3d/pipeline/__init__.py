"""The jobs behind the CLI verbs, on run folders: fit a scene (train, then decode the instance field), render a
run, evaluate it. This layer sits above the engine, the clustering and the metrics, and ties them together."""

from lift3d.pipeline.decoding import cluster_from_training_views
from lift3d.pipeline.runs import (
    evaluate_run,
    fit_scene,
    format_metrics_table,
    render_run,
    run_scene_options,
    score_segments,
    score_without_ground_truth,
    split_indices,
)

__all__ = [
    "cluster_from_training_views",
    "evaluate_run",
    "fit_scene",
    "format_metrics_table",
    "render_run",
    "run_scene_options",
    "score_segments",
    "score_without_ground_truth",
    "split_indices",
]
