"""Instance objectives: one class per objective, registered by name (``losses.instance_loss``).

slow-fast and vanilla (:mod:`.contrastive`), linear-assignment (:mod:`.assignment`), associative-embedding and
margin (:mod:`.metric_learning`), dino (:mod:`.dino`). See :mod:`.base` for the interface and where a new
objective goes.
"""

from lift3d.objectives.assignment import LinearAssignmentObjective
from lift3d.objectives.base import (
    OBJECTIVES,
    InstanceBatch,
    InstanceObjective,
    build_objective,
    get_objective,
    register_objective,
)
from lift3d.objectives.contrastive import SlowFastObjective, VanillaObjective
from lift3d.objectives.dino import DinoObjective
from lift3d.objectives.metric_learning import AssociativeEmbeddingObjective, MarginObjective

__all__ = [
    "OBJECTIVES",
    "InstanceBatch",
    "InstanceObjective",
    "build_objective",
    "get_objective",
    "register_objective",
    "SlowFastObjective",
    "VanillaObjective",
    "LinearAssignmentObjective",
    "AssociativeEmbeddingObjective",
    "MarginObjective",
    "DinoObjective",
]
