"""``lift3d segments import``: bring a real 2D segmenter's output into a scene (docs/scene-format.md).

Two kinds of input, one file (or set of files) per view, matched to the scene's frames by the stem of the frame's
image (``images/frame_00003.png`` <- ``frame_00003.*``) or, with ``match="order"``, by sorted order:

* ``id-maps``: folders of per-view id maps: ``SOURCE/instance/<stem>.{png,npy}`` (or the maps directly in
  ``SOURCE/``), optionally ``SOURCE/semantic/<stem>.{png,npy}`` and ``SOURCE/confidence/<stem>.{png,npy}``.
  Instance maps are single-channel integers (0 = no segment) or RGB PNGs encoding ``R + 256 G + 65536 B``.
  Without semantic maps every segment gets ``thing_class``; without confidence maps the confidence is 1.
* ``detectron2``: per-view instance predictions as detectron2 / Detic produce them, saved to disk as
  ``SOURCE/<stem>.{npz,pt,pth,pkl}`` holding ``pred_masks [N, H, W]`` (bool), ``scores [N]`` and optionally
  ``pred_classes [N]`` (a dict, a detectron2 ``Instances`` or a predictor output ``{"instances": ...}``). Masks
  with a score below ``score_threshold`` are dropped; the others are painted in increasing score order, so a
  pixel covered by several masks belongs to the highest-scoring one. A pixel's confidence is its mask's score
  (``background_confidence`` where no mask covers it); its class is ``class_map[pred_class]`` (default: every
  detection is ``thing_class``).

Output: ``segments/<name>/{instance,semantic,confidence}/<stem>.png`` (16-bit ids, 8/16-bit classes, 8-bit
confidence) written into a temporary folder and renamed (:func:`lift3d.io.atomic_folder`), then
``transforms.json`` is rewritten atomically so its frames point at the new maps (the previous maps stay on disk;
``segments_imported`` records the source). A scene without segments is fine; a COLMAP project (no
``transforms.json``) first gets one written from the loaded scene (:func:`bootstrap_transforms_json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import numpy as np
import tyro
from PIL import Image

from lift3d.data.images import read_confidence, read_id_map, write_id_map
from lift3d.data.readers.transforms_json import load_transforms_json
from lift3d.data.scene import Scene
from lift3d.io import atomic_folder, atomic_write_bytes

__all__ = [
    "SegmentsImport",
    "import_segments",
    "masks_to_segments",
    "read_detectron2_predictions",
    "SegmentsImportError",
    "bootstrap_transforms_json",
]

SourceKind = Literal["id-maps", "detectron2"]
ID_MAP_EXTS = (".png", ".npy")
PREDICTION_EXTS = (".npz", ".pt", ".pth", ".pkl")


class SegmentsImportError(ValueError):
    """The segmenter output cannot be imported; the message names the file, the frame and the fix."""


# --------------------------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------------------------


def masks_to_segments(
    masks: np.ndarray,
    scores: np.ndarray,
    classes: Optional[np.ndarray],
    score_threshold: float,
    background_confidence: float,
    class_of: Dict[int, int],
    default_class: int,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint instance masks into id maps.

    ``masks [N, H, W]`` bool, ``scores [N]``, ``classes [N]`` (or None). Masks with ``score < score_threshold`` are
    dropped; the rest are painted in increasing score order (ties: later index wins), so every pixel takes the
    highest-scoring mask covering it. Mask ``k`` (0-based, original order) gets instance id ``k + 1``. Returns
    ``instance [H, W]`` uint16, ``semantic [H, W]`` int64 (``class_of.get(classes[k], default_class)``, 0 where
    no mask) and ``confidence [H, W]`` float32 (the winning score, ``background_confidence`` where no mask).
    """
    masks = np.asarray(masks).astype(bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if masks.ndim != 3 or len(masks) != len(scores):
        raise ValueError(f"masks must be [N, H, W] with N = len(scores); got {masks.shape} and {scores.shape}.")
    if len(masks) > 65535:
        raise ValueError(f"{len(masks)} masks do not fit 16-bit instance ids.")
    H, W = masks.shape[1:]
    instance = np.zeros((H, W), np.uint16)
    semantic = np.zeros((H, W), np.int64)
    confidence = np.full((H, W), background_confidence, np.float32)
    order = sorted((k for k in range(len(scores)) if scores[k] >= score_threshold), key=lambda k: (scores[k], k))
    for k in order:
        m = masks[k]
        instance[m] = k + 1
        cls = default_class if classes is None else class_of.get(int(classes[k]), default_class)
        semantic[m] = cls
        confidence[m] = scores[k]
    return instance, semantic, np.clip(confidence, 0.0, 1.0)


def decode_rgb_ids(rgb: np.ndarray) -> np.ndarray:
    """RGB-encoded ids ``R + 256 G + 65536 B`` (the COCO panoptic convention) ``[H, W, 3]`` -> ``[H, W]`` int64."""
    rgb = np.asarray(rgb).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def compact_ids(ids: np.ndarray) -> np.ndarray:
    """Ids that do not fit 16 bits renumbered ``1..K`` in increasing order (0 stays 0); others unchanged."""
    if ids.max(initial=0) <= 65535 and ids.min(initial=0) >= 0:
        return ids
    values = np.unique(ids[ids != 0])
    if len(values) > 65535:
        raise ValueError(f"{len(values)} segments in one view do not fit 16-bit instance ids.")
    out = np.zeros(ids.shape, np.int64)
    out[ids != 0] = np.searchsorted(values, ids[ids != 0]) + 1
    return out


def _read_instance_map(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        with Image.open(path) as im:
            arr = np.asarray(im)
        if arr.ndim == 3:
            arr = decode_rgb_ids(arr[..., :3])
        return compact_ids(arr.astype(np.int64))
    return compact_ids(read_id_map(path))


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    elif hasattr(x, "tensor"):  # detectron2 Boxes / BitMasks wrappers
        x = x.tensor.detach().cpu().numpy()
    return np.asarray(x)


def read_detectron2_predictions(
    path: Path, trust_pickle: bool = False
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """``(masks [N, H, W] bool, scores [N], classes [N] or None)`` from a saved prediction file (see the module
    docstring for the accepted containers).

    No code from a data file runs unless asked: ``.npz`` is read without pickles, ``.pt``/``.pth`` only with
    ``torch.load(weights_only=True)`` (tensors, numbers, strings, lists and dicts; a file that needs more is refused,
    never unpickled in full), and ``.pkl`` (a full unpickle, which can run any code the file carries) only when
    ``trust_pickle`` is True."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            fields = {k: z[k] for k in z.files}
    elif path.suffix in (".pt", ".pth"):
        import pickle

        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SegmentsImportError(
                f"{path}: refused: it holds more than tensors, numbers, strings, lists and dicts (e.g. a detectron2 "
                f"Instances object), and loading that would run code from the file ({first[:200]}). Save plain "
                "tensors instead: torch.save({k: v.cpu() for k, v in outputs['instances'].get_fields().items() "
                "if k in ('pred_masks', 'scores', 'pred_classes')}, path), or np.savez to a .npz."
            ) from None
        fields = _fields(obj, path)
    elif path.suffix == ".pkl":
        if not trust_pickle:
            raise SegmentsImportError(
                f"{path}: refused: unpickling a .pkl runs whatever code the file carries. Convert it to .npz "
                "(np.savez(path, pred_masks=..., scores=..., pred_classes=...)), or pass --trust-pickle if you "
                "made the file yourself and trust it."
            )
        import pickle

        with open(path, "rb") as fh:
            fields = _fields(pickle.load(fh), path)
    else:
        raise SegmentsImportError(f"{path}: unsupported prediction file; use .npz, .pt/.pth or .pkl.")
    masks = fields.get("pred_masks", fields.get("masks"))
    scores = fields.get("scores")
    if masks is None or scores is None:
        raise SegmentsImportError(
            f"{path}: needs 'pred_masks' [N, H, W] and 'scores' [N] (found keys {sorted(fields)}). Save detectron2 "
            "predictions with: np.savez(path, **{k: v.cpu().numpy() for k, v in "
            "outputs['instances'].get_fields().items() if k in ('pred_masks', 'scores', 'pred_classes')})"
        )
    masks = _to_numpy(masks)
    if masks.ndim == 2 and masks.size == 0:
        masks = masks.reshape(0, 0, 0)
    classes = fields.get("pred_classes")
    return masks.astype(bool), _to_numpy(scores).astype(np.float64), None if classes is None else _to_numpy(classes)


def _fields(obj, path: Path) -> Dict:
    if isinstance(obj, dict) and "instances" in obj:
        obj = obj["instances"]
    if hasattr(obj, "get_fields"):
        obj = obj.get_fields()
    if not isinstance(obj, dict):
        raise SegmentsImportError(
            f"{path}: expected a dict, a detectron2 Instances or {{'instances': ...}}, got {type(obj).__name__}."
        )
    return dict(obj)


# --------------------------------------------------------------------------------------------------------------
# Import into a scene
# --------------------------------------------------------------------------------------------------------------


def _find(folder: Path, stem: str, exts) -> Optional[Path]:
    for ext in exts:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def _sources(source: Path, kind: SourceKind, stems: List[str], match: str) -> List[Dict[str, Optional[Path]]]:
    """Per frame: the files of its segments (``instance`` and optionally ``semantic`` and ``confidence``)."""
    if kind == "id-maps":
        inst_dir = source / "instance" if (source / "instance").is_dir() else source
        roles = {"instance": inst_dir, "semantic": source / "semantic", "confidence": source / "confidence"}
        exts = ID_MAP_EXTS
    else:
        roles = {"instance": source}
        exts = PREDICTION_EXTS
    if match == "order":
        listed = sorted(
            (p for p in roles["instance"].iterdir() if p.suffix in exts),
            key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem),
        )
        if len(listed) != len(stems):
            raise SegmentsImportError(
                f"{roles['instance']}: {len(listed)} files but the scene has {len(stems)} "
                "frames; match='order' needs one file per frame."
            )
        stems_src = [p.stem for p in listed]
    else:
        stems_src = stems
    out = []
    for stem_frame, stem_src in zip(stems, stems_src):
        files = {role: (_find(folder, stem_src, exts) if folder.is_dir() else None) for role, folder in roles.items()}
        out.append(files)
    missing = [s for s, f in zip(stems, out) if f["instance"] is None]
    if missing:
        raise SegmentsImportError(
            f"{roles['instance']}: no {'/'.join(exts)} file for frame(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}"
            f" ({len(missing)} of {len(stems)}). Name files after the frames' image stems, or pass match='order'."
        )
    for role in [r for r in ("semantic", "confidence") if r in roles]:
        have = [f[role] is not None for f in out]
        if any(have) and not all(have):
            lack = [s for s, h in zip(stems, have) if not h][:5]
            raise SegmentsImportError(
                f"{roles[role]}: {role} maps exist for some frames but not for {lack}; give "
                "them for every frame or for none."
            )
    return out


def _resize_to_frame(
    arr: np.ndarray, shape: Tuple[int, int], resize: bool, where: str, nearest: bool = True
) -> np.ndarray:
    """``arr`` unchanged when its ``[H, W]`` is the frame's ``shape``; else resampled to it (nearest for ids,
    bilinear for confidences) when ``resize``, or an error saying how to allow it."""
    if arr.shape == shape:
        return arr
    if not resize:
        raise SegmentsImportError(
            f"{where}: is {arr.shape[1]}x{arr.shape[0]} but the frame is {shape[1]}x{shape[0]} "
            "(w x h); pass resize=True (--resize) to resample it (nearest for ids)."
        )
    mode = Image.NEAREST if nearest else Image.BILINEAR
    im = Image.fromarray(arr.astype(np.int32) if nearest else arr.astype(np.float32))
    return np.asarray(im.resize((shape[1], shape[0]), mode)).astype(arr.dtype)


@dataclass(frozen=True)
class _ImportOptions:
    """The per-frame conversion settings of one :func:`import_segments` call (see its arguments)."""

    kind: SourceKind
    thing: int
    class_map: Dict[int, int]
    score_threshold: float
    background_confidence: float
    resize: bool
    trust_pickle: bool = False


def bootstrap_transforms_json(scene_dir: Path) -> Optional[Path]:
    """Give a scene another reader loads (a COLMAP project) the ``transforms.json`` segments are written into:
    :func:`lift3d.data.writers.transforms_json.write_transforms_json` of the loaded scene, in ``scene_dir``. Scenes
    whose reader applies per-frame conventions (a Messy Rooms release) are left alone. Returns the file written, or
    None (nothing to do or not possible)."""
    from lift3d.data.loading import load_scene
    from lift3d.data.readers import find_reader
    from lift3d.data.writers.transforms_json import write_transforms_json

    json_path = scene_dir / "transforms.json"
    if json_path.exists() or not scene_dir.is_dir():
        return None
    reader = find_reader(scene_dir)
    if reader is None or reader.name == "transforms_json":
        return None
    scene = load_scene(scene_dir, check_files=False)
    if scene.frame_adapter is not None:
        return None
    return write_transforms_json(scene, json_path)


def _check_arguments(scene_dir: Path, source: Path, kind: str, name: str) -> Path:
    """Path of the scene's ``transforms.json`` after checking the arguments of :func:`import_segments`."""
    json_path = scene_dir / "transforms.json"
    if not json_path.is_file():
        raise SegmentsImportError(
            f"{json_path}: not found; `segments import` writes into a lift3d scene folder "
            "(a released Messy Rooms folder already carries its detic_* segments)."
        )
    if not source.is_dir():
        raise SegmentsImportError(f"{source}: not a folder of per-view segmenter outputs.")
    if kind not in ("id-maps", "detectron2"):
        raise SegmentsImportError(f"kind={kind!r}; expected 'id-maps' or 'detectron2'.")
    if not name or "/" in name or name.startswith("."):
        raise SegmentsImportError(f"name={name!r} must be a plain folder name.")
    return json_path


def _resolve_classes(
    scene: Scene, thing_class: Optional[int], class_map: Optional[Dict[int, int]], json_path: Path
) -> Tuple[int, Dict[int, int]]:
    """``(thing class of unclassified segments, segmenter class -> scene class)``, both checked against the scene."""
    class_ids = {c.id for c in scene.classes}
    thing = scene.thing_ids[0] if thing_class is None else int(thing_class)
    if thing not in class_ids:
        raise SegmentsImportError(f"thing_class={thing} is not a class of {json_path} ({sorted(class_ids)}).")
    class_map = {int(k): int(v) for k, v in (class_map or {}).items()}
    unknown = sorted(set(class_map.values()) - class_ids)
    if unknown:
        raise SegmentsImportError(f"class_map targets {unknown} are not classes of {json_path} ({sorted(class_ids)}).")
    return thing, class_map


def _segments_from_id_maps(
    src: Dict[str, Optional[Path]], shape: Tuple[int, int], opts: _ImportOptions, where: str
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(instance, semantic, confidence)`` ``[H, W]`` of one frame from its id-map files."""
    inst = _resize_to_frame(_read_instance_map(src["instance"]), shape, opts.resize, f"{where}: {src['instance']}")
    if src["semantic"] is not None:
        sem = _resize_to_frame(read_id_map(src["semantic"]), shape, opts.resize, f"{where}: {src['semantic']}")
        if opts.class_map:
            values, inverse = np.unique(sem, return_inverse=True)
            sem = np.array([opts.class_map.get(int(c), int(c)) for c in values])[inverse].reshape(sem.shape)
    else:
        sem = np.where(inst > 0, opts.thing, 0).astype(np.int64)
    conf = (
        np.ones(shape, np.float32)
        if src["confidence"] is None
        else _resize_to_frame(
            read_confidence(src["confidence"]), shape, opts.resize, f"{where}: {src['confidence']}", nearest=False
        )
    )
    return inst, sem, conf


def _segments_from_predictions(
    path: Path, shape: Tuple[int, int], opts: _ImportOptions, where: str
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(instance, semantic, confidence)`` ``[H, W]`` of one frame from its detectron2 prediction file."""
    try:
        masks, scores, classes = read_detectron2_predictions(path, opts.trust_pickle)
    except SegmentsImportError:
        raise
    except Exception as err:
        raise SegmentsImportError(f"{where}: cannot read {path} ({type(err).__name__}: {err}).") from None
    if len(masks) and masks.shape[1:] != shape:
        if not opts.resize:
            raise SegmentsImportError(
                f"{where}: masks in {path} are {masks.shape[2]}x{masks.shape[1]} but the frame "
                f"is {shape[1]}x{shape[0]} (w x h); pass resize=True (--resize) to resample them."
            )
        masks = np.stack([_resize_to_frame(m.astype(np.uint8), shape, True, where) > 0 for m in masks])
    if not len(masks):
        masks = np.zeros((0,) + shape, bool)
    return masks_to_segments(
        masks, scores, classes, opts.score_threshold, opts.background_confidence, opts.class_map, opts.thing
    )


def _write_segments(folder: Path, stem: str, inst: np.ndarray, sem: np.ndarray, conf: np.ndarray) -> None:
    """One frame's maps as ``folder/{instance,semantic,confidence}/<stem>.png`` (16-bit ids, 8/16-bit classes,
    8-bit confidence)."""
    write_id_map(folder / "instance" / f"{stem}.png", inst, bits=16)
    write_id_map(folder / "semantic" / f"{stem}.png", sem, bits=8 if sem.max(initial=0) <= 255 else 16)
    conf8 = np.round(np.clip(conf, 0.0, 1.0) * 255.0).astype(np.int64)
    write_id_map(folder / "confidence" / f"{stem}.png", conf8, bits=8)


def _pointed_transforms(json_path: Path, name: str, stems: List[str], record: Dict) -> Dict:
    """``transforms.json`` with every frame's segment paths pointing at ``segments/<name>/`` and ``record`` kept
    as ``segments_imported``."""
    meta = json.loads(json_path.read_text())
    rel = f"segments/{name}"
    for fr, stem in zip(meta["frames"], stems):
        fr["instance_file_path"] = f"{rel}/instance/{stem}.png"
        fr["semantic_file_path"] = f"{rel}/semantic/{stem}.png"
        fr["confidence_file_path"] = f"{rel}/confidence/{stem}.png"
    meta["segments_imported"] = record
    return meta


def import_segments(
    scene_dir: Path,
    source: Path,
    kind: SourceKind = "id-maps",
    *,
    name: str = "imported",
    match: Literal["stem", "order"] = "stem",
    thing_class: Optional[int] = None,
    class_map: Optional[Dict[int, int]] = None,
    score_threshold: float = 0.5,
    background_confidence: float = 1.0,
    resize: bool = False,
    overwrite: bool = False,
    trust_pickle: bool = False,
) -> Path:
    """Write a segmenter's output into ``scene_dir`` as ``segments/<name>/...`` and point ``transforms.json``
    at it (see the module docstring). Returns the folder written. Every problem raises
    :class:`SegmentsImportError` naming the file and frame before anything in the scene changes. ``.pkl``
    predictions are refused unless ``trust_pickle`` (unpickling runs any code the file carries)."""
    scene_dir, source = Path(scene_dir), Path(source)
    if source.is_dir():
        bootstrap_transforms_json(scene_dir)  # a COLMAP project gets its transforms.json first
    json_path = _check_arguments(scene_dir, source, kind, name)
    scene = load_transforms_json(scene_dir, check_files=False)
    class_ids = {c.id for c in scene.classes}
    thing, class_map = _resolve_classes(scene, thing_class, class_map, json_path)
    opts = _ImportOptions(kind, thing, class_map, score_threshold, background_confidence, resize, trust_pickle)
    stems = [Path(f.name).stem for f in scene.frames]
    if len(set(stems)) != len(stems):
        raise SegmentsImportError(f"{json_path}: frame image stems are not unique; use match='order'.")
    files = _sources(source, kind, stems, match)

    out_dir = scene_dir / "segments" / name
    if out_dir.exists() and not overwrite:
        raise SegmentsImportError(f"{out_dir} already exists; choose another name or pass overwrite=True.")
    with atomic_folder(out_dir, overwrite=True, subdirs=("instance", "semantic", "confidence")) as tmp:
        for f, stem, src in zip(scene.frames, stems, files):
            where = f"{json_path}, frame {f.index} ({f.name})"
            shape = (f.height, f.width)
            if kind == "id-maps":
                inst, sem, conf = _segments_from_id_maps(src, shape, opts, where)
            else:
                inst, sem, conf = _segments_from_predictions(src["instance"], shape, opts, where)
            bad = sorted(set(np.unique(sem).tolist()) - class_ids)
            if bad:
                raise SegmentsImportError(
                    f"{where}: semantic ids {bad[:10]} are not classes of the scene "
                    f"({sorted(class_ids)}); pass a class_map (--class-map)."
                )
            _write_segments(tmp, stem, inst, sem, conf)
        record = {
            "name": name,
            "source": str(source.resolve()),
            "kind": kind,
            "match": match,
            "score_threshold": score_threshold if kind == "detectron2" else None,
        }
        meta = _pointed_transforms(json_path, name, stems, record)
    atomic_write_bytes(json_path, json.dumps(meta, indent=2).encode())
    return out_dir


@dataclass
class SegmentsImport:
    """Import a real 2D segmenter's output (folders of per-view id maps, or detectron2 / Detic predictions saved to
    disk) into a scene: writes SCENE/segments/NAME/ and points transforms.json at it."""

    scene: tyro.conf.Positional[Path]
    """Scene folder holding transforms.json."""
    source: tyro.conf.Positional[Path]
    """Folder of per-view outputs named after the frames' image stems (see --kind)."""
    kind: SourceKind = "id-maps"
    """id-maps: SOURCE/instance/<stem>.png|npy (+ optional semantic/, confidence/); detectron2: SOURCE/<stem>.npz|pt|pth|pkl
    with pred_masks [N, H, W], scores [N], optional pred_classes [N]."""
    name: str = "imported"
    """Output folder SCENE/segments/NAME (existing segments stay on disk)."""
    match: Literal["stem", "order"] = "stem"
    """Match files to frames by image stem, or by sorted order (numeric stems by number)."""
    thing_class: Optional[int] = None
    """Class of segments without a class (id maps without semantic maps, detections without a class_map entry);
    default: the scene's first thing class."""
    class_map: Optional[Path] = None
    """JSON {"segmenter class id": scene class id, ...} applied to semantic maps / pred_classes."""
    score_threshold: float = 0.5
    """detectron2: drop masks scoring below this."""
    background_confidence: float = 1.0
    """detectron2: confidence of pixels no mask covers."""
    resize: bool = False
    """Resample maps whose size differs from the frame's (nearest for ids) instead of failing."""
    overwrite: bool = False
    """Replace an existing SCENE/segments/NAME."""
    trust_pickle: bool = False
    """WARNING: unpickling runs any code a file carries. detectron2: read .pkl predictions (a full unpickle); only
    for files you made yourself. Without it .pkl is refused; .pt/.pth are always read as plain tensors only
    (torch.load weights_only) and .npz without pickles."""

    def run_command(self) -> None:
        cmap = None
        if self.class_map is not None:
            try:
                cmap = {int(k): int(v) for k, v in json.loads(Path(self.class_map).read_text()).items()}
            except (OSError, ValueError, AttributeError) as err:
                raise SegmentsImportError(
                    f"{self.class_map}: expected a JSON object of integer class ids ({err})."
                ) from None
        out = import_segments(
            self.scene,
            self.source,
            self.kind,
            name=self.name,
            match=self.match,
            thing_class=self.thing_class,
            class_map=cmap,
            score_threshold=self.score_threshold,
            background_confidence=self.background_confidence,
            resize=self.resize,
            overwrite=self.overwrite,
            trust_pickle=self.trust_pickle,
        )
        print(f"imported {self.kind} segments from {self.source} into {out}; {self.scene / 'transforms.json'} updated")
