"""lift3d.metrics.mask_ap held to pycocotools' COCOeval (segm) on random cases, and by hand on small ones."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from lift3d.metrics import mask_ap

pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _random_case(rng, n_img=4, size=20, things=(1, 2)):
    gt_inst, gt_sem, masks, scores, classes = [], [], [], [], []
    for _ in range(n_img):
        inst = np.zeros((size, size), np.int64)
        sem = np.zeros((size, size), np.int64)  # class 0 = stuff
        for k in range(1, rng.integers(1, 6)):
            y, x = rng.integers(0, size - 3, 2)
            h, w = rng.integers(2, 9, 2)
            inst[y : y + h, x : x + w] = k
            sem[y : y + h, x : x + w] = rng.choice(things)
        ids = np.unique(inst[inst > 0])
        pm, ps, pc = [], [], []
        for k in ids:  # perturbed copies of the ground truth, sometimes with the wrong class
            m = inst == k
            near = m | np.roll(m, 1, axis=1) | np.roll(m, 1, axis=0)
            m = m ^ (near & (rng.random(m.shape) < rng.uniform(0.0, 0.5)))
            pm.append(m)
            ps.append(rng.random())
            pc.append(int(sem[inst == k][0]) if rng.random() < 0.8 else int(rng.choice(things)))
        for _ in range(rng.integers(0, 4)):  # false positives
            m = np.zeros((size, size), bool)
            y, x = rng.integers(0, size - 3, 2)
            m[y : y + rng.integers(2, 7), x : x + rng.integers(2, 7)] = True
            pm.append(m)
            ps.append(rng.random())
            pc.append(int(rng.choice(things)))
        gt_inst.append(inst)
        gt_sem.append(sem)
        masks.append(np.stack(pm) if pm else np.zeros((0, size, size), bool))
        scores.append(np.asarray(ps))
        classes.append(np.asarray(pc))
    return masks, scores, classes, gt_inst, gt_sem


def _coco_stats(masks, scores, classes, gt_inst, gt_sem, things):
    images, anns, dets = [], [], []
    for i, (inst, sem) in enumerate(zip(gt_inst, gt_sem)):
        h, w = inst.shape
        images.append({"id": i, "height": h, "width": w})
        for k in np.unique(inst[inst > 0]):
            m = inst == k
            vals, counts = np.unique(sem[m], return_counts=True)
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(vals[np.argmax(counts)]),
                    "segmentation": rle,
                    "area": float(m.sum()),
                    "bbox": list(mask_utils.toBbox(rle)),
                    "iscrowd": 0,
                }
            )
        for m, s, c in zip(masks[i], scores[i], classes[i]):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            dets.append({"image_id": i, "category_id": int(c), "segmentation": rle, "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": t} for t in things]}
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", range(8))
def test_matches_pycocotools_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    case = _random_case(rng)
    ours = mask_ap(*case, things=[1, 2])
    stats = _coco_stats(*case, things=[1, 2])
    assert ours["AP"] == pytest.approx(stats[0], abs=1e-9)
    assert ours["AP50"] == pytest.approx(stats[1], abs=1e-9)
    assert ours["AP75"] == pytest.approx(stats[2], abs=1e-9)


def test_by_hand():
    inst = np.zeros((4, 4), np.int64)
    inst[:2, :2] = 1
    inst[2:, 2:] = 2
    sem = (inst > 0).astype(np.int64)
    exact = np.stack([inst == 1, inst == 2])
    # both found exactly: AP 1
    r = mask_ap([exact], [np.array([0.9, 0.8])], [np.array([1, 1])], [inst], [sem], things=[1])
    assert r["AP"] == pytest.approx(1.0) and r["num_gt"] == 2
    # one found, one missed: recall stops at 0.5 with precision 1 -> 51 of 101 recall points
    r = mask_ap([exact[:1]], [np.array([0.9])], [np.array([1])], [inst], [sem], things=[1])
    assert r["AP"] == pytest.approx(51 / 101)
    # a higher-scoring false positive first: precision 1/2 at recall 1/2 and 2/3 at recall 1 -> 2/3 everywhere
    fp = np.zeros((1, 4, 4), bool)
    fp[0, 0, 3] = True
    r = mask_ap([np.concatenate([fp, exact])], [np.array([0.95, 0.9, 0.8])], [np.array([1, 1, 1])], [inst], [sem], [1])
    assert r["AP"] == pytest.approx(2 / 3)
    # a mask with IoU 3/4 counts at thresholds 0.50..0.75 (6 of 10)
    partial = exact.copy()
    partial[0, 1, 1] = False
    r = mask_ap([partial[:1]], [np.array([0.9])], [np.array([1])], [np.where(inst == 1, 1, 0)], [sem], [1])
    assert r["AP50"] == pytest.approx(1.0) and r["AP75"] == pytest.approx(1.0) and r["AP"] == pytest.approx(0.6)
