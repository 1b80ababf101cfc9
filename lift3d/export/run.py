"""Export a fitted run: what ``lift3d export`` and the viewer's export buttons call (docs/export-format.md).

Layout of the export folder ``OUT``::

    instances.json                    per instance: id, class, centroid, boxes, point count, views, its files
    scene_points.ply                  every surface point, with colour, ``instance`` and ``class`` per vertex
    points/instance_<id>.ply          the points of one instance                       (--what points|both)
    scene_mesh.<fmt>                  marching-cubes mesh, faces coloured by instance  (--what mesh|both)
    meshes/instance_<id>.<fmt>        the faces of one instance
    labels/points_{xyz,instance,class,view}.npy, labels/mesh_{vertices,faces,face_instance,face_class}.npy

Everything is in the scene's world frame and units (the poses of its transforms.json).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np

from lift3d.cluster.slots import load_labeler
from lift3d.data.loading import SceneOptions
from lift3d.data.scene import Scene
from lift3d.engine.checkpoint import load_model
from lift3d.engine.config import FitConfig
from lift3d.engine.run_dir import RunDir, RunFileMissingError
from lift3d.engine.trainer import resolve_device
from lift3d.export.boxes import instance_record
from lift3d.export.config import ExportConfig
from lift3d.export.mesh import LabelledMesh, extract_labelled_mesh
from lift3d.export.palette import instance_colours
from lift3d.export.ply import write_points_ply
from lift3d.export.points import LabelledPoints, surface_points
from lift3d.io.atomic import atomic_write_bytes, atomic_write_json
from lift3d.models import LiftModel

What = Literal["points", "mesh", "both"]
MeshFormat = Literal["ply", "obj", "glb"]


@dataclass
class ExportedRun:
    """A fitted run opened for export (and for the viewer)."""

    run: RunDir
    scene: Scene
    model: LiftModel
    cfg: FitConfig
    labeler: Any
    """The run's instance labeler (``clusters.json``): ``label(class [M], embedding [M, D]) -> ids [M]``."""
    points: Optional[LabelledPoints] = None
    """Surface points, once computed (:meth:`ensure_points`)."""
    mesh: Optional[LabelledMesh] = None
    """Labelled mesh, once computed (:meth:`ensure_mesh`)."""
    min_class_confidence: float = 0.0
    """The class confidence the points were labelled with (re-used by :meth:`relabel`)."""

    @property
    def instance_ids(self) -> list[int]:
        """Every instance id of the labeler: 1 .. num_instances."""
        return list(range(1, int(self.labeler.num_instances) + 1))

    def class_name(self, class_id: int) -> str:
        return next((c.name for c in self.scene.classes if c.id == class_id), f"class_{class_id}")

    def instance_class(self, instance_id: int) -> int:
        """The class an instance id belongs to (the labeler's, else the majority class of its points, else -1)."""
        classes = getattr(self.labeler, "instance_classes", None)
        if classes is not None:
            return int(classes().get(instance_id, -1))
        if self.points is not None:
            sem = self.points.semantic[self.points.instance == instance_id]
            if len(sem):
                return int(np.bincount(sem).argmax())
        return -1

    def relabel(self, labeler) -> None:
        """Swap in another labeler (the viewer's re-clustering): the cached points are labelled again from their
        rendered class and embedding; the mesh is dropped (re-extracted by the next mesh export)."""
        self.labeler = labeler
        if self.points is not None:
            p = self.points
            p.instance = (
                np.asarray(labeler.label(p.semantic.astype(np.int64), p.embedding, p.xyz)).reshape(-1).astype(np.int32)
            )
        self.mesh = None

    def ensure_points(self, cfg: ExportConfig, progress: bool = False, log=print) -> LabelledPoints:
        if self.points is None:
            from rich.progress import Progress

            views = list(self.scene.train_indices)
            t0 = time.perf_counter()
            with Progress(disable=not progress) as bar:
                task = bar.add_task("surface points (render training views)", total=len(views))
                self.min_class_confidence = cfg.min_class_confidence
            self.points = surface_points(
                self.model,
                self.scene,
                self.labeler,
                views,
                cfg.pixel_stride,
                cfg.min_opacity,
                cfg.min_class_confidence,
                cfg.chunk,
                progress=lambda: bar.advance(task),
            )
            log(
                f"{len(self.points)} surface points from {len(views)} training views in {time.perf_counter() - t0:.1f} s"
            )
        return self.points

    def ensure_mesh(self, cfg: ExportConfig, progress: bool = False, log=print) -> LabelledMesh:
        if self.mesh is None:
            from rich.progress import Progress

            t0 = time.perf_counter()
            with Progress(disable=not progress) as bar:
                task = bar.add_task("mesh (density grid)", total=cfg.mesh_resolution)
                self.mesh = extract_labelled_mesh(
                    self.model,
                    self.labeler,
                    cfg.mesh_resolution,
                    cfg.surface_opacity,
                    cfg.surface_thickness,
                    cfg.chunk,
                    progress=lambda: bar.advance(task),
                )
            log(
                f"mesh: {len(self.mesh.vertices)} vertices, {len(self.mesh.faces)} faces in {time.perf_counter() - t0:.1f} s"
            )
        return self.mesh


def load_export_inputs(run: Path, data: Optional[Path] = None, device: str = "auto") -> ExportedRun:
    """Open a fitted run: its scene (``data`` or the one it was fitted on), model and instance labeler. A run without
    ``clusters.json`` is refused with how to finish it."""
    run_dir = RunDir(run)
    record = run_dir.read_record()
    if not run_dir.clusters.exists():
        raise RunFileMissingError(
            f"{run_dir.clusters}: the run has no clusters yet (its fit did not reach the clustering step). Run "
            f"`lift3d fit {record.get('scene', 'DATA')} --out {run_dir.root} --resume` to the end, then export."
        )
    options = SceneOptions(**record.get("scene_options", {}))  # how the fit loaded its scene
    scene = options.load(data if data is not None else record["scene"])
    model, cfg, _ = load_model(run_dir.root, resolve_device(device))
    return ExportedRun(run_dir, scene, model, cfg, load_labeler(run_dir.clusters))


class InstanceSelectionError(ValueError):
    """``--instances`` names no valid instance of the run; the message lists the ids it has."""


def parse_instance_ids(spec: str, known: Sequence[int]) -> list[int]:
    """``"all"`` or comma-separated ids ``"3,7"`` -> sorted ids; an id the run does not have is an error."""
    if spec.strip() == "all":
        return sorted(known)
    try:
        ids = sorted({int(s) for s in spec.split(",") if s.strip()})
    except ValueError as err:
        raise InstanceSelectionError(f"--instances {spec!r}: use `all` or comma-separated ids such as 3,7") from err
    unknown = [i for i in ids if i not in set(known)]
    if unknown or not ids:
        raise InstanceSelectionError(
            f"--instances {spec!r}: ids {unknown or spec!r} are not instances of this run; it has ids "
            f"{min(known, default=0)}..{max(known, default=0)} (see instances.json of an `--instances all` export)."
        )
    return ids


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def export_run(
    opened: ExportedRun,
    out: Path,
    what: What = "both",
    instance_ids: Optional[Sequence[int]] = None,
    fmt: MeshFormat = "ply",
    cfg: Optional[ExportConfig] = None,
    progress: bool = False,
    log=print,
) -> dict:
    """Write the export folder (module docstring) for ``instance_ids`` (None = all); every file atomically.
    Returns the content of ``instances.json`` plus ``seconds`` and ``bytes`` per file."""
    cfg = cfg or ExportConfig()
    out = Path(out)
    ids = sorted(opened.instance_ids if instance_ids is None else instance_ids)
    t0 = time.perf_counter()
    pts = opened.ensure_points(cfg, progress, log)
    written: dict[str, int] = {}

    def put(rel: str, data: bytes) -> None:
        atomic_write_bytes(out / rel, data)
        written[rel] = len(data)

    def put_ply(rel: str, p: LabelledPoints) -> None:
        write_points_ply(out / rel, p.xyz, p.rgb, p.instance, p.semantic)
        written[rel] = (out / rel).stat().st_size

    names = np.array([f.name for f in opened.scene.frames])
    records = {}
    for i in ids:
        sel = pts.instance == i
        cls = opened.instance_class(i)
        records[i] = instance_record(i, cls, opened.class_name(cls), pts.xyz[sel], list(names[pts.view[sel]]))
    put_ply("scene_points.ply", pts)
    for k in ("xyz", "instance", "semantic", "view"):
        put(f"labels/points_{'class' if k == 'semantic' else k}.npy", _npy_bytes(getattr(pts, k)))
    if what in ("points", "both"):
        for i in ids:
            if records[i].point_count:
                rel = f"points/instance_{i:04d}.ply"
                put_ply(rel, pts.subset(pts.instance == i))
                records[i].files["points"] = rel
    if what in ("mesh", "both"):
        mesh = opened.ensure_mesh(cfg, progress, log)
        if len(mesh.faces):
            put(f"scene_mesh.{fmt}", mesh.to_trimesh(instance_colours(mesh.instance)).export(file_type=fmt))
        for k, v in (("vertices", mesh.vertices), ("faces", mesh.faces)):
            put(f"labels/mesh_{k}.npy", _npy_bytes(v))
        put("labels/mesh_face_instance.npy", _npy_bytes(mesh.instance))
        put("labels/mesh_face_class.npy", _npy_bytes(mesh.semantic))
        for i in ids:
            part = mesh.select(mesh.instance == i)
            if len(part.faces):
                rel = f"meshes/instance_{i:04d}.{fmt}"
                put(rel, part.to_trimesh(instance_colours(part.instance)).export(file_type=fmt))
                records[i].files["mesh"] = rel
                records[i].files["mesh_faces"] = int(len(part.faces))
    doc = {
        "format": "lift3d-export",
        "version": 1,
        "run": str(opened.run.root.resolve()),
        "scene": str(opened.scene.root.resolve()),
        "frame": "world frame and units of the scene's transforms.json (camera poses), z as in the scene",
        "num_instances": len(ids),
        "instances": [records[i].to_dict() for i in ids],
    }
    atomic_write_json(out / "instances.json", doc)
    written["instances.json"] = (out / "instances.json").stat().st_size
    seconds = round(time.perf_counter() - t0, 2)
    log(
        f"exported {len(ids)} instances ({sum(written.values()) / 1e6:.2f} MB in {len(written)} files) in {seconds} s -> {out}"
    )
    return {**doc, "seconds": seconds, "bytes": written}
