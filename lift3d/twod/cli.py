"""``lift3d twod train / eval / predict``: the CLI faces of :mod:`lift3d.twod`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import tyro

from lift3d.twod.pretrain import PretrainConfig
from lift3d.twod.train import TwodTrainConfig

__all__ = ["TwodTrain", "TwodEval", "TwodPredict", "TwodPretrain", "TwodEvalFeatures"]


@dataclass
class TwodTrain(TwodTrainConfig):
    """Train a 2D instance network on scenes with ground truth: --method spatial-embeddings (Neven et al. 2019, single
    images) or spatio-temporal (paper 001: causal temporal model, discriminative loss over clips, self-supervised
    depth; --data sequences). Start it with torchrun --nproc_per_node N -m lift3d.cli twod train ... for DDP (gloo
    on CPU, nccl on CUDA)."""

    data: list[Path] = field(default_factory=list)
    """Scene folders with ground-truth instance and class maps (every frame of each is a training frame); sequence
    folders (sequence.json) for --method spatio-temporal (every window of --spatio-temporal.clip-length frames)."""
    out: Path = Path("runs/twod")
    """Run folder: config.json, checkpoints/, train.json."""
    resume: bool = False
    """Continue from the run folder's latest checkpoint."""

    def run_command(self) -> None:
        from lift3d.twod.train import train_twod

        if not self.data:
            raise SystemExit("lift3d twod train: pass --data SCENE [SCENE ...] (scene folders with ground truth).")
        cfg = TwodTrainConfig(**{k: getattr(self, k) for k in TwodTrainConfig.__dataclass_fields__})
        out = train_twod(self.data, self.out, cfg, resume=self.resume)
        print(f"trained {self.method} ({self.preset}) into {out}")


@dataclass
class TwodEval:
    """Evaluate a trained 2D network on scenes with ground truth: COCO mask AP, AP50, per-frame PQ, and a contact
    sheet of predictions; for a spatio-temporal network on sequences also MOTS (sMOTSA, MOTSA, MOTSP), PQ^scene of
    its tracks per clip and depth metrics. Writes RUN2D/eval/<name>.json and .png."""

    run: tyro.conf.Positional[Path]
    """The 2D run folder (or a checkpoint file)."""
    data: list[Path] = field(default_factory=list)
    """Scene folders with ground truth to evaluate on (every frame)."""
    name: str = "eval"
    """Stem of the written files under RUN2D/eval/."""
    device: str = "cpu"
    """Where the network runs."""
    threads: int = 1
    """torch CPU threads."""
    frames_in_sheet: int = 6
    """Frames shown in the contact sheet (image, ground truth, prediction)."""
    split: Optional[Literal["train", "test"]] = None
    """Sequences only: evaluate the clips of this split (default: every clip)."""

    def run_command(self) -> None:
        from lift3d.twod.cross_modal import evaluate_cross_modal
        from lift3d.twod.evaluate import evaluate_twod
        from lift3d.twod.model import twod_method

        if twod_method(self.run) == "spatio-temporal":
            from lift3d.twod.video_eval import evaluate_spatio_temporal

            r = evaluate_spatio_temporal(
                self.run, self.data, self.name, self.split, self.device, self.threads, self.frames_in_sheet
            )
            m, d = r["mots"], r["depth"]
            depth = f"  depth AbsRel {d['abs_rel']:.3f} RMSE {d['rmse']:.3f} d<1.25 {d['delta1']:.3f}" if d else ""
            print(
                f"sMOTSA {m['sMOTSA']:.3f}  MOTSA {m['MOTSA']:.3f}  MOTSP {m['MOTSP']:.3f}  IDS {m['IDS']}  "
                f"AP {r['AP']:.3f}  per-frame PQ {r['frame_pq']:.3f}  PQ^scene/clip {r['scene_pq']:.3f}{depth} "
                f"({r['num_clips']} clips, {r['num_frames']} frames); wrote {r['json']} and {r['sheet']}"
            )
            return
        cross_modal = twod_method(self.run) == "cross-modal"
        result = (evaluate_cross_modal if cross_modal else evaluate_twod)(
            self.run, self.data, name=self.name, device=self.device, threads=self.threads, sheet=self.frames_in_sheet
        )
        print(
            f"AP {result['AP']:.3f}  AP50 {result['AP50']:.3f}  per-frame PQ {result['frame_pq']:.3f} "
            + (f"mIoU {result['semantic_miou']:.3f} " if "semantic_miou" in result else "")
            + f"({result['num_frames']} frames); wrote {result['json']} and {result['sheet']}"
        )
        if result.get("mots"):
            print("sMOTSA {smotsa:.3f}  MOTSA {motsa:.3f}  MOTSP {motsp:.3f}  IDS {ids}".format(**result["mots"]))


@dataclass
class TwodPredict:
    """Segment a scene's views with a trained 2D network and make those masks the scene's 2D input (same as
    lift3d segments predict)."""

    data: tyro.conf.Positional[Path]
    """Scene folder (transforms.json)."""
    model: Path = Path("runs/twod")
    """The 2D run folder (or a checkpoint file)."""
    out: Optional[Path] = None
    """Write a copy of the scene here with the predicted masks; without it DATA itself is changed (needs --force)."""
    name: str = "twod"
    """The masks go to <scene>/segments/NAME/."""
    force: bool = False
    """Allow changing DATA in place, or replacing an existing --out / segments/NAME."""
    device: str = "cpu"
    """Where the network runs."""
    threads: int = 1
    """torch CPU threads."""
    ids: Literal["tracks", "per-frame"] = "tracks"
    """Spatio-temporal networks: write track ids (consistent through each clip) or per-frame ids (for the lift)."""

    def run_command(self) -> None:
        from lift3d.twod.cross_modal import predict_cross_modal
        from lift3d.twod.model import twod_method
        from lift3d.twod.predict import predict_scene_segments

        common = dict(out=self.out, name=self.name, force=self.force, device=self.device, threads=self.threads)
        if twod_method(self.model) == "cross-modal":  # its masks carry track ids over each clip
            out = predict_cross_modal(self.data, self.model, **common)
        else:
            out = predict_scene_segments(self.data, self.model, ids=self.ids, **common)
        print(f"wrote the network's masks into {out}; lift3d fit {out.parent.parent} uses them")


@dataclass
class TwodPretrain(PretrainConfig):
    """Self-supervised pretraining of the 2D encoder: --method copy-paste (paper 003: coherent depth regions
    copy-pasted into other frames, SwAV at pixel and region level, L = λ L_pixel + (1 - λ) L_region) or swav (plain
    SwAV on two crops: the baseline). Fine-tune with lift3d twod train --init RUN. DDP: torchrun as twod train."""

    data: list[Path] = field(default_factory=list)
    """Scene or sequence folders (every frame is used; no ground truth is read)."""
    out: Path = Path("runs/pretrain")
    """Run folder: config.json, regions/ (cached depth and regions), checkpoints/, train.json."""
    resume: bool = False
    """Continue from the run folder's latest checkpoint."""

    def run_command(self) -> None:
        from lift3d.twod.pretrain import pretrain

        if not self.data:
            raise SystemExit("lift3d twod pretrain: pass --data SCENE_OR_SEQUENCE [...].")
        cfg = PretrainConfig(**{k: getattr(self, k) for k in PretrainConfig.__dataclass_fields__})
        out = pretrain(self.data, self.out, cfg, resume=self.resume)
        print(f"pretrained ({self.method}, {self.preset}, depth {self.depth}) into {out}")


@dataclass
class TwodEvalFeatures:
    """Unsupervised semantic segmentation with an encoder's pixel features (paper 003 Table 1): k-means into as
    many clusters as classes, Hungarian matching to the ground-truth classes, pixel accuracy and mIoU. Writes
    RUN/eval/features-<name>.json (or --out)."""

    run: tyro.conf.Positional[str]
    """A lift3d twod pretrain or twod train run folder, or `random` (a randomly initialised encoder: scratch)."""
    data: list[Path] = field(default_factory=list)
    """Scene folders with ground-truth class maps (every frame)."""
    name: str = "eval"
    """Stem of the written file."""
    out: Optional[Path] = None
    """The JSON to write (required for `random`)."""
    features: Literal["encoder", "head"] = "encoder"
    """The encoder's features (default) or a pretraining run's projection head."""
    preset: Literal["cpu-small", "paper", "tiny"] = "cpu-small"
    """Encoder size of `random`."""
    seed: int = 0
    """Seed of `random`'s weights and of k-means."""
    device: str = "cpu"
    """Where the network runs."""
    threads: int = 1
    """torch CPU threads."""

    def run_command(self) -> None:
        from lift3d.twod.feature_eval import RANDOM_ENCODER, evaluate_features

        if not self.data:
            raise SystemExit("lift3d twod eval-features: pass --data SCENE [...] (scenes with ground-truth classes).")
        out = self.out
        if out is None:
            if self.run == RANDOM_ENCODER:
                raise SystemExit("lift3d twod eval-features random: pass --out FILE.json.")
            out = Path(self.run) / "eval" / f"features-{self.name}.json"
        r = evaluate_features(
            self.run, self.data, out, self.features, self.preset, self.seed, self.device, self.threads
        )
        print(
            f"unsupervised Acc {r['accuracy']:.3f}  mIoU {r['miou']:.3f} ({r['num_frames']} frames, "
            f"{len(r['classes'])} classes); wrote {out}"
        )
