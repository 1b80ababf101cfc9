"""Per-instance export of a fitted run: labelled point clouds (PLY), meshes (marching cubes, PLY / OBJ / GLB),
``instances.json`` and label arrays, all in the scene's own world frame and units (docs/export-format.md).

``lift3d export`` and the viewer's export buttons both call :func:`export_run`."""

from .boxes import InstanceRecord, oriented_box
from .config import ExportConfig
from .mesh import LabelledMesh, extract_labelled_mesh
from .palette import instance_colours
from .ply import read_ply_vertices, write_points_ply
from .points import LabelledPoints, surface_points
from .rays import RayRender, render_rays
from .run import ExportedRun, export_run, load_export_inputs, parse_instance_ids

__all__ = [
    "ExportConfig",
    "ExportedRun",
    "InstanceRecord",
    "LabelledMesh",
    "LabelledPoints",
    "RayRender",
    "export_run",
    "extract_labelled_mesh",
    "instance_colours",
    "load_export_inputs",
    "oriented_box",
    "parse_instance_ids",
    "read_ply_vertices",
    "render_rays",
    "surface_points",
    "write_points_ply",
]
