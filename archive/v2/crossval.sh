#!/usr/bin/env bash
# Cross-validate a training preset: for each fold of a split file, train (resumable), then segment the
# fold's held-out cases on their original grid with the last and the best weights in one whole-volume pass
# (and the last with mirroring, and in windows of the training patch) and score them. Inference runs in the
# precision the model file asks for (mixed for models trained with --precision mixed).
# Several copies may run at once (one per free core): a fold is claimed by creating OUT/foldK.claim.
#
#   scripts/crossval.sh DATASET SPLIT OUT [train options...]
#   e.g. MEDSEG3D_THREADS=1 scripts/crossval.sh ../shared/data/brats2018 splits/brats2018-5fold.json \
#            runs/cv-brats --preset brats --epochs 40
# Then: python scripts/crossval_report.py runs/cv-brats
# FOLDS="0 2" runs only those folds. SCORE=none trains only (a cascade's refiner: scripts/crossval_cascade.py scores it with its coarse model).
set -euo pipefail
score() {  # score WEIGHTS FOLDER NAME [predict options]: segment the held-out cases and evaluate them
    local weights=$1 held=$2 pred=$3; shift 3
    medseg3d predict "$weights" "$held" -o "$pred" --force --quiet "$@"
    medseg3d evaluate "$pred" "$held" --labels brats --hd95-penalty --quiet
}
data=$1; split=$2; out=$3; shift 3
mkdir -p "$out"
folds=$(python -c "import json,sys; print(len(json.load(open(sys.argv[1]))['folds']))" "$split")
for ((k = 0; k < folds; k++)); do
    if [[ -n "${FOLDS:-}" && " $FOLDS " != *" $k "* ]]; then continue; fi
    run="$out/fold$k"
    if [[ -e "$run/done" ]]; then continue; fi
    # claim the fold unless this is a resume of our own earlier claim (-resume: RESUME=1)
    if ! mkdir "$run.claim" 2>/dev/null && [[ "${RESUME:-0}" != 1 ]]; then continue; fi
    resume=(); [[ -e "$run/last.pt" ]] && resume=(--resume)
    medseg3d train "$data" --out "$run" --fold "$k" --split-file "$split" --quiet "${resume[@]}" "$@"
    held="$run/heldout"; rm -rf "$held"; mkdir -p "$held"
    for c in $(python -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['folds'][int(sys.argv[2])]['val']))" "$split" "$k"); do
        ln -s "$(realpath "$data/$c")" "$held/$c"
    done
    if [[ "${SCORE:-all}" == none ]]; then touch "$run/done"; continue; fi
    # explicit flags: models trained on patches run in windows by default (see medseg3d models)
    score "$run/last.safetensors" "$held" "$run/pred-last" --whole-volume
    score "$run/best.safetensors" "$held" "$run/pred-best" --whole-volume
    score "$run/last.safetensors" "$held" "$run/pred-last-tta" --whole-volume --tta
    score "$run/last.safetensors" "$held" "$run/pred-last-sw" --sliding-window   # windows of the patch size
    touch "$run/done"
done
