"""Atomic writers: the destination is either the old content or the new one, never partial; temporaries vanish."""

from __future__ import annotations

import json

import pytest
import torch

from lift3d.io import atomic_folder, atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_file_writers_round_trip_and_leave_no_temporaries(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "t.txt", "héllo")
    atomic_write_json(tmp_path / "j.json", {"x": [1, 2]})
    atomic_torch_save(tmp_path / "w.pt", {"w": torch.arange(3)})
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "j.json").read_text()) == {"x": [1, 2]}
    assert torch.equal(torch.load(tmp_path / "w.pt", weights_only=True)["w"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "j.json", "t.txt", "w.pt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})  # not JSON-serialisable: fails before the rename
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_atomic_folder_replaces_only_on_success(tmp_path):
    out = tmp_path / "scene"
    with atomic_folder(out, subdirs=("images",)) as tmp:
        (tmp / "images" / "a.txt").write_text("1")
        assert not out.exists()  # nothing visible before the end
    assert (out / "images" / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError, match="not empty"):
        with atomic_folder(out):
            pass
    with pytest.raises(RuntimeError):
        with atomic_folder(out, overwrite=True) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["images"]  # old folder untouched
    with atomic_folder(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]  # no temporaries or old copies left


def test_written_files_get_the_mode_a_plain_open_gives(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        (tmp_path / "b.txt").write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
