#!/bin/bash
# Third run of paper 003 on generated scenes (docs/results/twod-copy-paste/README.md): the scenes, pretraining seeds 0 and 1
# with table (a), then table (b) at 10% and 100% labels with 3000 fine-tuning steps from each seed's pretrainings. Run from the repository root.
set -e
cd "$(git rev-parse --show-toplevel)"
export PATH=$PWD/.venv/bin:$PATH
for S in $(seq 1 12); do [ -d /work/cp-data/train$S ] || lift3d generate messy-rooms --objects 10 --views 24 --resolution 96 --classes families --seed $S --out /work/cp-data/train$S; done
for S in 100 101 102; do [ -d /work/cp-data/unseen$S ] || lift3d generate messy-rooms --objects 10 --views 24 --resolution 96 --classes families --seed $S --out /work/cp-data/unseen$S; done
TRAIN=$(echo /work/cp-data/train{1..12}); EVAL=$(echo /work/cp-data/unseen{100,101,102})
COMMON="--train $TRAIN --eval $EVAL --pretrain-steps 600 --pretrain-minutes 7 --finetune-steps 3000 --finetune-minutes 10 --threads 2 --inits scratch swav-recipe copy-paste-1 copy-paste-0.5 --fractions 0.1 1.0 --prototypes 100 --regions.merge-threshold 0.05 --regions.modularity-resolution 3.0"
date -u +"seed0 pretrain %T"
python -m tools.study_copy_paste $COMMON --work /work/cp-data/study7 --out /work/cp-data/study7.json --only pretrain unsupervised
date -u +"seed1 pretrain %T"
python -m tools.study_copy_paste $COMMON --seed 1 --work /work/cp-data/study7-seed1 --out /work/cp-data/study7-seed1.json --only pretrain unsupervised
date -u +"seed0 finetune %T"
python -m tools.study_copy_paste $COMMON --work /work/cp-data/study7 --out /work/cp-data/study7.json --only finetune
date -u +"seed1 finetune %T"
python -m tools.study_copy_paste $COMMON --seed 1 --work /work/cp-data/study7-seed1 --out /work/cp-data/study7-seed1.json --only finetune
date -u +"done %T"
