"""lift3d.objectives: every registered instance objective builds, attaches its modules and computes its loss on a
hand-made batch whose value is known; a toy objective registered here trains through the Trainer by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lift3d.cluster import DECODERS, SceneClusters, decode_instance_field
from lift3d.cluster.slots import ArgmaxSlots
from lift3d.data.loading import load_scene
from lift3d.engine.checkpoint import fit_config_from_dict
from lift3d.engine.trainer import Trainer
from lift3d.fields.heads import HeadConfig
from lift3d.losses.config import LossConfig
from lift3d.models import LiftModel, ModelConfig, RaySamples
from lift3d.objectives import (
    OBJECTIVES,
    InstanceBatch,
    InstanceObjective,
    build_objective,
    get_objective,
    register_objective,
)
from lift3d.presets import get_preset

NUM_SLOTS = 6
"""K of linear assignment in these tests."""
BUILT_IN = ("slow-fast", "vanilla", "linear-assignment", "associative-embedding", "margin", "dino")
"""The objectives lift3d registers."""


def objective_and_model(name: str) -> tuple[InstanceObjective, LiftModel]:
    """The objective ``name`` (no concentration term) and a small real model whose instance field has its width."""
    losses = LossConfig(instance_loss=name, concentration_weight=0.0, num_slots=NUM_SLOTS, dino_prototypes=8)
    objective = build_objective(losses, embedding_dim=3)
    torch.manual_seed(0)
    cfg = ModelConfig(
        semantic=HeadConfig(16, 1),
        instance=HeadConfig(16, 2),
        embedding_dim=3,
        occupancy_resolution=0,
        background="none",
    )
    model = LiftModel(cfg, num_classes=2, aabb=np.array([[-1.0] * 3, [1.0] * 3]), instance_dim=objective.output_dim)
    objective.attach(model)
    return objective, model


def batch_at(points: torch.Tensor, ids: torch.Tensor) -> InstanceBatch:
    """One sample per ray, weight 1, at ``points`` [P, 3]: the rendered embedding of ray r is f(points[r])."""
    samples = RaySamples(points=points[:, None, :], weights=torch.ones(len(points), 1), t=torch.zeros(len(points), 1))
    return InstanceBatch(samples, torch.arange(len(points)), ids, torch.ones(len(points)))


def test_every_objective_is_registered_under_its_name():
    assert set(BUILT_IN) <= set(OBJECTIVES)
    for name, cls in OBJECTIVES.items():
        assert cls.name == name and get_objective(name) is cls
    with pytest.raises(KeyError, match="register_objective"):
        get_objective("no-such-objective")


@pytest.mark.parametrize("name", ["slow-fast", "vanilla", "associative-embedding", "margin"])
def test_embedding_objectives_are_zero_on_one_segment_at_one_point(name):
    """Eight pixels of ONE segment rendered at the same point have identical embeddings: every pull term is 0 and
    there is nothing to push from, so the loss is exactly 0 (slow-fast: P_i = 1; vanilla: numerator = denominator;
    associative embedding: no spread, one mean; margin: every distance 0 < m+)."""
    objective, model = objective_and_model(name)
    assert objective.output_dim == 3 and model.instance.embedding_dim == 3
    batch = batch_at(torch.full((8, 3), 0.25), torch.full((8,), 7))
    logs: dict = {}
    loss = objective.loss(model, batch, torch.Generator().manual_seed(0), logs)
    assert loss.shape == () and abs(float(loss.detach())) < 1e-6
    assert logs and all(math.isfinite(v) for v in logs.values())


def test_linear_assignment_loss_is_minus_log_of_the_most_likely_slot():
    """All pixels at one point share the slot distribution p = softmax(z): the one segment is matched to argmax p,
    so the loss is -log max_k p_k; the field outputs K = num_slots logits."""
    objective, model = objective_and_model("linear-assignment")
    assert objective.output_dim == NUM_SLOTS and model.instance.embedding_dim == NUM_SLOTS
    point = torch.full((1, 3), -0.4)
    with torch.no_grad():
        z = model.instance(point)[0]
    loss = objective.loss(model, batch_at(point.expand(5, 3), torch.full((5,), 3)), torch.Generator(), {})
    torch.testing.assert_close(loss.detach(), -torch.log_softmax(z, 0).max())


def test_dino_loss_is_the_cross_entropy_of_teacher_and_student_heads():
    """The teacher head starts as a copy of the student and the centre at 0, and every pixel has the same
    embedding e: loss = -sum_p softmax(h(e)/0.04)_p log softmax(h(e)/0.1)_p. The heads are training-only modules
    on the model, their parameters join the instance optimiser, and after the step the teacher follows by EMA."""
    objective, model = objective_and_model("dino")
    assert objective.training_only_prefixes == ("dino_",)
    assert [p is q for p, q in zip(objective.extra_parameters(model), model.dino_fast.parameters())] == [True] * 4
    point = torch.full((1, 3), 0.1)
    with torch.no_grad():
        h = model.dino_fast(model.instance(point))[0]
    expected = -(torch.softmax(h / 0.04, 0) * torch.log_softmax(h / 0.1, 0)).sum()
    loss = objective.loss(model, batch_at(point.expand(8, 3), torch.full((8,), 2)), torch.Generator(), {})
    torch.testing.assert_close(loss.detach(), expected)
    teacher_before = [p.clone() for p in model.dino_slow.parameters()]
    with torch.no_grad():
        for p in model.dino_fast.parameters():
            p.add_(1.0)
    objective.after_step(model)
    m = model.instance.momentum
    for t, t0, s in zip(model.dino_slow.parameters(), teacher_before, model.dino_fast.parameters()):
        torch.testing.assert_close(t, m * t0 + (1 - m) * s)


@pytest.mark.parametrize("name", BUILT_IN)
def test_objective_gradient_reaches_the_fast_field_never_the_slow_one(name):
    objective, model = objective_and_model(name)
    points = torch.linspace(-0.8, 0.8, 16)[:, None].expand(16, 3).contiguous()
    ids = torch.tensor([1, 2] * 8)
    loss = objective.loss(model, batch_at(points, ids), torch.Generator().manual_seed(1), {})
    loss.backward()
    assert all(p.grad is None for p in model.instance.slow.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.instance.fast.parameters())


def test_decoders_follow_the_objective():
    """Linear assignment decodes by argmax over its K slots (id = slot + 1 on thing pixels); an embedding objective
    clusters (two tight blobs -> two clusters)."""
    la, _ = objective_and_model("linear-assignment")
    logits = np.zeros((70, NUM_SLOTS))
    logits[:30, 2], logits[30:60, 4], logits[60:, 1] = 1.0, 1.0, 1.0
    sem = np.array([1] * 60 + [0] * 10)  # the last ten pixels are stuff
    assert la.decoder == "argmax"
    dec = decode_instance_field(
        la, logits, sem, [1], None, (), score=lambda _: 0.0, label_views=lambda lab: [lab.label(sem, logits)]
    )
    assert isinstance(dec.labeler, ArgmaxSlots) and dec.labeler.num_slots == NUM_SLOTS
    assert sorted(set(dec.labeler.label(sem, logits).tolist())) == [0, 3, 5]
    assert dec.info["decoding"] == "argmax" and dec.info["num_clusters"] == {"all": 2}
    emb = np.concatenate([np.zeros((30, 3)), np.ones((30, 3))]) + np.random.default_rng(0).normal(0, 0.01, (60, 3))
    sem = np.ones(60, dtype=np.int64)
    sf, _ = objective_and_model("slow-fast")
    cfg = get_preset("tiny").cluster
    cfg.min_cluster_size = 10
    assert sf.decoder == "clustering"
    dec = decode_instance_field(sf, emb, sem, [1], cfg, (), score=lambda _: 0.0, label_views=lambda lab: [])
    assert isinstance(dec.labeler, SceneClusters) and dec.info["num_clusters"] == {"1": 2}


def test_every_objective_names_a_registered_decoder_and_an_unknown_one_is_refused():
    assert {cls.decoder for cls in OBJECTIVES.values()} <= set(DECODERS)

    class Odd:
        name, decoder = "odd", "no-such-decoder"

    with pytest.raises(KeyError, match="registered decoders"):
        decode_instance_field(Odd(), np.zeros((1, 1)), np.zeros(1), [1], None, (), lambda _: 0.0, lambda _: [])


def test_old_linear_assignment_runs_keep_their_k():
    """Runs written before losses.num_slots stored K as model.embedding_dim; loading upgrades them."""
    cfg = fit_config_from_dict({"losses": {"instance_loss": "linear-assignment"}, "model": {"embedding_dim": 28}})
    assert cfg.losses.num_slots == 28 and build_objective(cfg.losses, cfg.model.embedding_dim).output_dim == 28
    cfg = fit_config_from_dict({"losses": {"instance_loss": "slow-fast"}, "model": {"embedding_dim": 5}})
    assert cfg.losses.num_slots == LossConfig().num_slots and cfg.model.embedding_dim == 5


class PullToOrigin(InstanceObjective):
    """Toy objective: the mean squared norm of the rendered embeddings [P, 5] (every embedding pulled to 0)."""

    @property
    def output_dim(self) -> int:
        return 5

    def loss(self, model, batch, generator, logs):
        emb = model.render_embedding(batch.samples, batch.rows)
        loss = (emb**2).sum(-1).mean()
        logs["toy"] = float(loss.detach())
        return loss


def test_a_new_objective_registered_by_name_trains_through_the_trainer(tiny_scene_dir, tmp_path):
    """Where a new objective goes: a registered subclass, selected by losses.instance_loss."""
    register_objective("test-pull-to-origin")(PullToOrigin)
    try:
        cfg = get_preset("tiny")
        cfg.losses.instance_loss = "test-pull-to-origin"
        trainer = Trainer(load_scene(tiny_scene_dir), cfg, tmp_path / "run", progress=False)
        assert isinstance(trainer.objective, PullToOrigin) and trainer.model.instance.embedding_dim == 5
        toy = [trainer.train_step().get("toy") for _ in range(cfg.losses.instance_start + 6)]
        assert toy[: cfg.losses.instance_start] == [None] * cfg.losses.instance_start
        toy = toy[cfg.losses.instance_start :]
        assert all(v is not None and v >= 0 for v in toy) and toy[-1] < toy[0]
    finally:
        OBJECTIVES.pop("test-pull-to-origin")
