#!/usr/bin/env bash
# The cross-validations of issue #22 (bundled model v2) as one resumable queue, in two phases, so that the
# candidate most likely to become v2 (the v1 preset refined by the 1 mm cascade) is cross-validated on all five
# folds first:
#   phase 1, each fold: the v1 preset (baseline), the 1 mm refiner, the cascade's scores, the baseline's
#            probabilities (for ensembling) and its far false positives on the other pipeline's case;
#   then:    the candidate v2's two networks on all 27 cases (runs/v2-coarse, runs/v2-refine: the presets of
#            phase 1 with --all-cases), so that v2 can be bundled as soon as phase 1 says the cascade helps;
#   phase 2, each fold: the v1 preset with --augment strong, the cascade on it, the same extras.
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

extras() {  # CV folder, fold, tag: the fold's probabilities (lever 4); far false positives (lever 5), alone and refined
    local cv=$1 k=$2 tag=$3
    local held="$cv/fold$k/heldout" prob="$cv/fold$k/pred-last-sw-prob"
    [[ -e "$prob/done" ]] || { medseg3d predict "$cv/fold$k/last.safetensors" "$held" -o "$prob" --probabilities \
        --refine none --quiet && touch "$prob/done"; }
    [[ -e "runs/robustness-$tag-fold$k.json" ]] || python scripts/pipeline_robustness.py \
        "$cv/fold$k/last.safetensors" --refiner "runs/cv27-refine/fold$k/last.safetensors" \
        --json "runs/robustness-$tag-fold$k.json"
}

for k in "${folds[@]}"; do  # phase 1
    FOLDS=$k scripts/crossval.sh "$data" "$split" runs/cv27-v1 --preset brats "${budget[@]}"
    FOLDS=$k SCORE=none scripts/crossval.sh "$data" "$split" runs/cv27-refine --preset brats-refine "${budget[@]}"
    python scripts/crossval_cascade.py runs/cv27-v1 runs/cv27-refine --windows  # box in one pass and in windows
    extras runs/cv27-v1 "$k" v1
done
final() {  # OUT PRESET: train on every case, resumably; OUT/done when finished
    local out=$1 preset=$2; shift 2
    [[ -e "$out/done" ]] && return 0
    local resume=(); [[ -e "$out/last.pt" ]] && resume=(--resume)
    medseg3d train "$data" --out "$out" --preset "$preset" --all-cases --quiet "${resume[@]}" "${budget[@]}" "$@"
    touch "$out/done"
}
final runs/v2-coarse brats
final runs/v2-refine brats-refine
for k in "${folds[@]}"; do  # phase 2
    FOLDS=$k scripts/crossval.sh "$data" "$split" runs/cv27-strong --preset brats --augment strong "${budget[@]}"
    python scripts/crossval_cascade.py runs/cv27-strong runs/cv27-refine
    extras runs/cv27-strong "$k" strong
done
