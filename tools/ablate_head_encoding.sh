#!/usr/bin/env bash
# cpu-small ablation: cpu-small's encoded heads (frequency-encoded xyz, plus a hash grid in front of the semantic MLP)
# vs raw xyz as in paper 004 (64-wide, 2-layer semantic MLP without hash grid: cpu-small's first configuration).
# Same scene, same short schedule (600 iterations). Writes OUT/{encoded,raw}/metrics.json and OUT/summary.json.
# Usage: bash tools/ablate_head_encoding.sh [OUT=outputs/ablate_head_encoding]
set -euo pipefail
OUT=${1:-outputs/ablate_head_encoding}
LIFT3D=${LIFT3D:-.venv/bin/lift3d}
SCHEDULE="optim.iterations=600 losses.semantic_start=50 losses.instance_start=120 losses.segment_consistency_start=100000"
rm -rf "$OUT"; mkdir -p "$OUT"
$LIFT3D generate messy-rooms --objects 8 --views 24 --resolution 64 --segmenter-noise clean --seed 0 --out "$OUT/scene"
$LIFT3D fit "$OUT/scene" --out "$OUT/encoded" --preset cpu-small --set $SCHEDULE
$LIFT3D eval "$OUT/encoded"
$LIFT3D fit "$OUT/scene" --out "$OUT/raw" --preset cpu-small --set $SCHEDULE \
  model.semantic.position_frequencies=0 model.semantic.hidden_dim=64 model.semantic.encoding=frequency \
  model.instance.position_frequencies=0
$LIFT3D eval "$OUT/raw"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
summary = {k: {m: json.loads((out / k / "metrics.json").read_text())[m] for m in ("pq_scene", "pq_frame", "miou", "psnr")}
           for k in ("encoded", "raw")}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
