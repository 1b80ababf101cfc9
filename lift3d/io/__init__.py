"""Leaf I/O helpers shared by every layer (no lift3d imports)."""

from lift3d.io.atomic import atomic_folder, atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["atomic_folder", "atomic_torch_save", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
