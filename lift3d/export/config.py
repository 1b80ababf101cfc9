"""Settings of an export (``lift3d export`` options and the viewer's export buttons)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ExportConfig:
    """How surfaces are sampled and meshed."""

    pixel_stride: int = 1
    """Every ``pixel_stride``-th pixel (along rows and columns) of each training view gives a surface point."""
    min_opacity: float = 0.5
    """A pixel gives a point only when its ray's rendered opacity ``sum_i w_i`` reaches this (rays that leave the
    box through empty space carry no surface)."""
    min_class_confidence: float = 0.9
    """A point whose rendered class probability is below this gets no instance (id 0, kept in the scene PLY only):
    at a fit's uncertain places (floor next to thin objects) the class, and so the object, is a guess."""
    mesh_resolution: int = 96
    """Grid cells per axis of the box on which marching cubes samples the density."""
    surface_opacity: float = 0.5
    """Iso-surface of the meshes: the density at which a slab ``surface_thickness`` thick reaches this opacity."""
    surface_thickness: float = 0.02
    """Thickness of that slab, as a fraction of the box's largest half size (see :func:`density_level`)."""
    chunk: int = 8192
    """Rays (or grid points) evaluated per forward pass."""
