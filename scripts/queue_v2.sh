#!/usr/bin/env bash
# The cross-validations of issue #22 (bundled model v2) as one resumable queue, fold by fold, so that each lever
# is compared with the v1 baseline on the same held-out cases as early as possible:
#   for each fold: the v1 preset (baseline), the 1 mm refiner (then the cascade's scores), strong augmentation.
# Every training writes a checkpoint each epoch and resumes; run the same command again after a stop.
#
#   MEDSEG3D_THREADS=2 scripts/queue_v2.sh [DATASET] [SPLIT] [FOLDS...]
#   e.g. MEDSEG3D_THREADS=2 setsid nohup scripts/queue_v2.sh ../shared/data/brats2018 \
#            splits/brats2018-27-5fold.json 0 1 2 3 4 >> runs/queue_v2.log 2>&1 &
# Then: python scripts/crossval_report.py runs/cv27-v1 (baseline and cascade variants, case by case),
#       python scripts/crossval_report.py runs/cv27-strong, python scripts/postprocess_sweep.py runs/cv27-v1,
#       python scripts/ensemble_heldout.py runs/cv27-v1/foldK/heldout runs/cv27-{v1,strong}/foldK/pred-last-sw-prob
set -euo pipefail
data=${1:-../shared/data/brats2018}; split=${2:-splits/brats2018-27-5fold.json}; shift 2 || true
folds=("$@"); [[ ${#folds[@]} -gt 0 ]] || folds=(0 1 2 3 4)
export RESUME=1  # one queue owns its claims: a fold it started before a stop is resumed, not skipped
budget=(--minutes 100000)  # iterations pinned by the presets (160 x 50), never cut by the clock
for k in "${folds[@]}"; do
    FOLDS=$k scripts/crossval.sh "$data" "$split" runs/cv27-v1 --preset brats "${budget[@]}"
    FOLDS=$k SCORE=none scripts/crossval.sh "$data" "$split" runs/cv27-refine --preset brats-refine "${budget[@]}"
    python scripts/crossval_cascade.py runs/cv27-v1 runs/cv27-refine --windows  # box in one pass and in windows
    FOLDS=$k scripts/crossval.sh "$data" "$split" runs/cv27-strong --preset brats --augment strong "${budget[@]}"
    # probabilities of both coarse models of the fold, for scripts/ensemble_heldout.py (lever 4: ensembling)
    for cv in runs/cv27-v1 runs/cv27-strong; do
        held="$cv/fold$k/heldout"; prob="$cv/fold$k/pred-last-sw-prob"
        [[ -e "$prob/done" ]] || { medseg3d predict "$cv/fold$k/last.safetensors" "$held" -o "$prob" --probabilities \
            --refine none --quiet && touch "$prob/done"; }
    done
    # lever 5: far false positives on the case from another preprocessing pipeline, both coarse models of the fold
    [[ -e "runs/robustness-fold$k.json" ]] || python scripts/pipeline_robustness.py runs/cv27-v1/fold$k/last.safetensors \
        runs/cv27-strong/fold$k/last.safetensors --json "runs/robustness-fold$k.json"
done
