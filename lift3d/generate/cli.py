"""``lift3d generate messy-rooms``: the CLI face of :func:`lift3d.generate.generate_scene`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

from lift3d.generate.config import MessyRoomsConfig

__all__ = ["GenerateMessyRooms", "GenerateMessyRoomsBatch"]


@dataclass
class GenerateMessyRooms(MessyRoomsConfig):
    """Generate a Messy Rooms scene (Contrastive Lift (Bhalgat et al., NeurIPS 2023), Sec. 4): objects dropped and
    settled on a floor, seen from cameras in a dome-shaped shell; writes lift3d's scene format (transforms.json +
    images, depth, GT and 2D segments)."""

    out: Path = Path("scenes/messy_rooms")
    """Folder to write (must not exist or be empty; written atomically)."""
    release_out: Optional[Path] = None
    """Also write the frames here in the released Messy Rooms layout (color/, depth/, semantic/, instance/,
    detic_*/, metadata.json; see docs/messy-rooms-format.md)."""

    def run_command(self) -> None:
        from lift3d.generate.pipeline import generate_scene

        path = generate_scene(self, self.out, release_dir=self.release_out)
        print(f"wrote {path}" + (f" and {self.release_out}" if self.release_out is not None else ""))


@dataclass
class GenerateMessyRoomsBatch(MessyRoomsConfig):
    """Generate many Messy Rooms scenes from one command, one folder each under --out: the grid --objects x --seeds
    (scene N025_seed1: 25 objects, seed 1) or the entries of --spec, every other setting from the options below.
    Serial by default; --ray runs one Ray task per scene (local Ray; --ray-address joins a cluster). Resumable:
    scenes already generated with the same settings are skipped; a scene that fails is reported by name, the others
    go on, and the command exits non-zero at the end. OUT/batch.json records each scene's settings and status."""

    num_objects: tyro.conf.Suppress[int] = 10
    """(Set per scene by --objects or --spec.)"""
    seed: tyro.conf.Suppress[int] = 0
    """(Set per scene by --seeds or --spec.)"""
    out: Path = Path("scenes/batch")
    """Batch folder: scene NAME is written to OUT/NAME (each atomically)."""
    objects: tuple[int, ...] = ()
    """Object counts of the grid (default 10 without --spec), e.g. --objects 25 50 100."""
    seeds: tuple[int, ...] = ()
    """Seeds of the grid (default 0 without --spec), e.g. --seeds 0 1."""
    spec: Optional[Path] = None
    """JSON file: a list of objects of MessyRoomsConfig fields (applied over the options given here), each with an
    optional "name" (default N{num_objects:03d}_seed{seed}); instead of --objects / --seeds."""
    overwrite: bool = False
    """Generate again the scenes whose folder holds a scene generated with other settings (default: refuse before
    any work). Scenes generated with the same settings are always kept."""
    ray: bool = False
    """One Ray task per scene (pip install 'lift3d[ray]'); local Ray unless --ray-address is given."""
    ray_workers: Optional[int] = None
    """Scenes generated at once on local Ray (its CPUs; default: every CPU)."""
    ray_address: Optional[str] = None
    """Join this Ray cluster (implies --ray); its nodes must see --out and import lift3d."""

    def run_command(self) -> None:
        from lift3d.fanout import RayOptions
        from lift3d.generate.batch import BatchSpecError, generate_batch, grid_scenes, raise_on_failures, spec_scenes

        if self.spec is not None:
            if self.objects or self.seeds:
                raise BatchSpecError(f"give either --spec ({self.spec}) or --objects / --seeds, not both.")
            scenes = spec_scenes(self.spec, self)
        else:
            scenes = grid_scenes(self, self.objects or (10,), self.seeds or (0,))
        use_ray = self.ray or self.ray_address is not None
        options = RayOptions(address=self.ray_address, workers=self.ray_workers) if use_ray else None
        records = generate_batch(scenes, self.out, options, overwrite=self.overwrite)
        raise_on_failures(records, self.out)
        print(f"wrote {len(records)} scenes to {self.out} ({self.out / 'batch.json'})")
