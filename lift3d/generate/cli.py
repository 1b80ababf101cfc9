"""``lift3d generate messy-rooms``: the CLI face of :func:`lift3d.generate.generate_scene`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lift3d.generate.config import MessyRoomsConfig

__all__ = ["GenerateMessyRooms"]


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
