"""``lift3d segments predict --model RUN2D DATA [--out DATA2]``: a trained 2D network as the lift's 2D input.

Every frame of the scene is segmented by the network (:meth:`lift3d.twod.model.TwodModel.predict`); its instance,
class and confidence maps are written as per-view id maps and brought into the scene with
:func:`lift3d.data.segments_import.import_segments` (``segments/<name>/`` + ``transforms.json`` pointing at them),
so ``lift3d fit`` then lifts the network's masks like any other segmenter's. With ``out`` the scene is first copied
there (atomically) and the copy is changed; changing ``DATA`` in place, or replacing an existing ``out`` or
``segments/<name>``, needs ``force``. ``segments/<name>/model.json`` records which network made the masks.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from lift3d.data.images import write_id_map
from lift3d.data.loading import load_frame, load_scene
from lift3d.data.segments_import import import_segments
from lift3d.data.sequence import load_sequence
from lift3d.io import atomic_folder, atomic_write_json
from lift3d.twod.model import TwodModel, load_twod_model, twod_method
from lift3d.twod.video_predict import IdMode, write_tracked_maps

__all__ = ["predict_scene_segments", "write_predicted_maps", "PredictError"]


class PredictError(ValueError):
    """The prediction would overwrite the user's files, or its inputs are wrong; the message says how to fix it."""


def write_predicted_maps(model: TwodModel, scene, folder: Path) -> int:
    """Segment every frame of ``scene`` and write ``folder/{instance,semantic,confidence}/<stem>.{png,npy}``;
    returns the number of instances found over all frames."""
    for sub in ("instance", "semantic", "confidence"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    total = 0
    for f in scene.frames:
        rgb = np.clip(np.round(load_frame(scene, f.index).rgb * 255.0), 0, 255).astype(np.uint8)
        p = model.predict(rgb)
        stem = Path(f.name).stem
        write_id_map(folder / "instance" / f"{stem}.png", p.instance.astype(np.int64), bits=16)
        write_id_map(folder / "semantic" / f"{stem}.png", p.semantic, bits=16)
        np.save(folder / "confidence" / f"{stem}.npy", p.confidence)
        total += len(p.instances)
    return total


def predict_scene_segments(
    data: Path,
    model: Path,
    out: Optional[Path] = None,
    name: str = "twod",
    force: bool = False,
    device: str = "cpu",
    threads: int = 1,
    loader: Callable = load_twod_model,
    writer: Callable = write_predicted_maps,
    ids: IdMode = "tracks",
) -> Path:
    """Write the network ``model`` (a 2D run folder or checkpoint)'s masks into the scene ``data`` (or a copy at
    ``out``) as ``segments/<name>/`` and point its ``transforms.json`` at them; returns ``segments/<name>``.
    ``loader(model, device) -> (network, checkpoint)`` and ``writer(network, scene, folder) -> count`` let other
    2D methods (the cross-modal one) reuse the checks and the import.

    A ``spatio-temporal`` network needs a sequence (``sequence.json``) and writes its track ids (``ids="tracks"``)
    or per-frame ids (``ids="per-frame"``), :mod:`lift3d.twod.video_predict`."""
    data = Path(data)
    torch.set_num_threads(threads)
    if out is None and not force:
        raise PredictError(
            f"{data / 'transforms.json'} would be changed in place (its frames would point at segments/{name}/). "
            f"Pass --out DATA2 to write a copy of the scene with the network's masks, or --force to change {data}."
        )
    scene = load_scene(data)
    video = twod_method(model) == "spatio-temporal"
    if video:
        from lift3d.twod.video_model import load_spatio_temporal_model

        net, state = load_spatio_temporal_model(model, device=device)
        load_sequence(data, check_files=False)  # a video network needs the clips: refuse before copying anything
    else:
        net, state = loader(model, device=device)
    scene_classes = {c.id for c in scene.classes}
    for c in net.classes.classes:
        if c.id not in scene_classes:
            raise PredictError(
                f"{data / 'transforms.json'}: the network predicts class {c.id} ({c.name}), which the scene does not "
                f"list in 'classes' ({sorted(scene_classes)}); use a network trained on scenes with these classes."
            )
    target = data
    if out is not None:
        out = Path(out)
        if out.resolve() == data.resolve():
            raise PredictError(f"--out {out} is the scene itself; leave out --out and pass --force instead.")
        if out.exists() and any(out.iterdir()) and not force:
            raise PredictError(f"{out} already exists and is not empty; choose another --out or pass --force.")
        with atomic_folder(out, overwrite=True) as tmp:
            shutil.copytree(data, tmp, dirs_exist_ok=True, symlinks=False)
        target = out
        scene = load_scene(target)
    with tempfile.TemporaryDirectory(prefix="twod-predict-") as tmp:
        if video:
            count = write_tracked_maps(net, target, Path(tmp), ids)
        else:
            count = writer(net, scene, Path(tmp))
        seg_dir = import_segments(target, Path(tmp), "id-maps", name=name, overwrite=force)
    atomic_write_json(
        seg_dir / "model.json",
        {
            "model": str(Path(model).resolve()),
            "step": int(state["step"]),
            "instances": count,
            **({"ids": ids} if video else {}),
            **net.meta(),
        },
    )
    return seg_dir
