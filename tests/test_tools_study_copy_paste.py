"""tools/study_copy_paste: the pretraining record (final loss, code diagnostics, first step at the uniform code's
loss) computed by hand from a train.json, and the rows' flags (the recipe rows share every SwAV setting)."""

from __future__ import annotations

import json
import math

import pytest

from tools.study_copy_paste import PRETRAININGS, _train_record


def test_pretraining_record_by_hand(tmp_path):
    ln_k = math.log(100)
    history = [{"step": s, "loss": 5.0 - 0.01 * s, "image": 5.0 - 0.01 * s, "image_used": 4, "image_code_max": 0.5}
               for s in range(1, 21)]  # fmt: skip
    history += [{"step": s, "loss": ln_k, "image": ln_k, "image_used": 2, "image_code_max": 0.01} for s in (21, 22)]
    (tmp_path / "train.json").write_text(json.dumps({"step": 22, "ln_prototypes": ln_k, "history": history}))
    r = _train_record(tmp_path)
    last = history[-20:]  # steps 3..22
    assert r["steps"] == 22 and r["ln_prototypes"] == pytest.approx(ln_k)
    assert r["final_loss_mean_last_20"] == pytest.approx(sum(h["loss"] for h in last) / 20)
    assert r["image_used_mean_last_20"] == pytest.approx((18 * 4 + 2 * 2) / 20)
    assert r["image_code_max_mean_last_20"] == pytest.approx((18 * 0.5 + 2 * 0.01) / 20)
    # 5.0 - 0.01 s (steps 1-20: 4.99 .. 4.80) is never within 0.01 of ln 100 = 4.6052; steps 21, 22 are at ln K
    assert r["image_last_100_fraction_within_0.01_of_ln_k"] == pytest.approx(2 / 22)
    # a fine-tuning run (no ln_prototypes): steps and loss only
    (tmp_path / "train.json").write_text(json.dumps({"step": 2, "history": [{"loss": 1.0}, {"loss": 3.0}]}))
    assert _train_record(tmp_path) == {"steps": 2, "final_loss_mean_last_20": 2.0}


def test_recipe_rows_share_swav_settings():
    def flags(name: str) -> dict:
        args, out, key = PRETRAININGS[name], {}, None
        for a in args:
            if a.startswith("--"):
                key = a
                out[key] = []
            else:
                out[key].append(a)
        return out

    shared = ("--freeze-prototypes-epochs", "--head-batch-norm", "--epsilon", "--queue-length")
    rows = [flags(n) for n in ("swav-recipe", "copy-paste-1", "copy-paste-0.5")]
    for key in shared:
        assert rows[0][key] == rows[1][key] == rows[2][key], key
    assert rows[0]["--epsilon"] == ["0.02"] and rows[0]["--queue-length"] == ["0"]
    assert flags("swav")["--small-crops"] == ["0"] and "--no-head-batch-norm" in flags("swav")  # the first run's
