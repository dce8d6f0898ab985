#!/usr/bin/env bash
# The cross-validations of issue #22 (bundled model v2) as one resumable queue, fold by fold, so that each lever
# meets the v1 baseline on the same held-out cases as early as possible:
#   each fold: the v1 preset (baseline), the v1 preset with --augment strong (lever 3), both models'
#              probabilities and far false positives on the other pipeline's case (lever 5), and the two
#              models of the fold as one ensemble, scored on the cases neither saw (lever 4).
# v2 is the two presets' models trained on all 27 cases, as one ensemble run in windows of the patch: on fold 0
# that variant scored best (0.874 / 0.783 / 0.709), and with two windows per network call it segments a case in
# 7.4 s end to end (docs/results.md). Each chain trains its preset on all 27 cases first (runs/v2-v1,
# runs/v2-strong), then its folds; the queue scores each fold's two models as that same ensemble.
# The 1 mm refiner (lever 1) was cross-validated on fold 0 only (runs/cv27-refine, scripts/crossval_cascade.py):
# its cascade lost 0.17 to 0.29 TC Dice there (docs/results.md), so its other folds are not queued.
# The two presets train side by side, one thread each (two chains of folds): on this 2-core AVX2 CPU two
# one-thread trainings did 1.09-1.27x the steps per second of one two-thread training
# (`python benchmarks/train_threads.py`, three runs), and in the real runs 1.36-1.49x the epochs per hour
# (67-70 s per epoch each against 47-50 s alone; docs/results.md).
# Every training writes a checkpoint each epoch and resumes; run the same command again after a stop.
# FINALS=skip trains the folds only (v2's two members are bundled already and need not be trained again).
#
#   scripts/queue_v2.sh [DATASET] [SPLIT] [FOLDS...]
#   e.g. setsid nohup scripts/queue_v2.sh ../shared/data/brats2018 \
#            splits/brats2018-27-5fold.json 0 1 2 3 4 >> runs/queue_v2.log 2>&1 &
# Then: python scripts/crossval_report.py runs/cv27-v1, python scripts/crossval_report.py runs/cv27-strong --against runs/cv27-v1,
#       python scripts/crossval_report.py runs/cv27-v1 --reference last-sw --variant last-sw --variant ens-cv27-strong,
#       python scripts/postprocess_sweep.py runs/cv27-v1, python scripts/learning_curves.py runs/cv27-v1
set -euo pipefail
data=${1:-../shared/data/brats2018}; split=${2:-splits/brats2018-27-5fold.json}; shift 2 || true
folds=("$@"); [[ ${#folds[@]} -gt 0 ]] || folds=(0 1 2 3 4)
export RESUME=1  # one queue owns its claims: a fold it started before a stop is resumed, not skipped
export MEDSEG3D_THREADS=1  # one core per chain
budget=(--minutes 100000)  # iterations pinned by the presets (160 x 50), never cut by the clock

extras() {  # CV folder, fold, tag: the fold's probabilities (lever 4); far false positives (lever 5)
    local cv=$1 k=$2 tag=$3
    local held="$cv/fold$k/heldout" prob="$cv/fold$k/pred-last-sw-prob" rob="$cv/fold$k/robustness.json"
    [[ -e "$prob/done" ]] || { medseg3d predict "$cv/fold$k/last.safetensors" "$held" -o "$prob" --probabilities \
        --refine none --quiet && touch "$prob/done"; }
    # until session 17 the rows lived in runs/robustness-TAG-foldK.json; now in the fold, kept with its records
    [[ -e "runs/robustness-$tag-fold$k.json" && ! -e "$rob" ]] && mv "runs/robustness-$tag-fold$k.json" "$rob"
    [[ -e "$rob" ]] || python validation/pipeline_robustness.py "$cv/fold$k/last.safetensors" --json "$rob"
}

ensemble() {  # fold: the two presets' fold models as one ensemble on the cases neither saw, once both are done;
    # then that ensemble, in windows as v2 runs, on the other pipeline's case (lever 5)
    local k=$1 fold="runs/cv27-v1/fold$k"
    [[ -e "$fold/done" && -e "runs/cv27-strong/fold$k/done" ]] || return 0
    # whichever chain finishes the fold second scores it, once: each step looks for its result again while it
    # holds the fold's lock, so a chain that waited for the other's step never repeats it
    (
        flock 9
        [[ -e "$fold/pred-ens-cv27-strong-sw/metrics.csv" ]] \
            || python scripts/crossval_ensemble.py runs/cv27-v1 runs/cv27-strong --folds "$k" --windows
        [[ -e "$fold/ensemble-cv27-strong.safetensors" && ! -e "$fold/robustness-ens-cv27-strong-sw.json" ]] \
            || exit 0
        python validation/pipeline_robustness.py "$fold/ensemble-cv27-strong.safetensors" \
            --sliding-window --json "$fold/robustness-ens-cv27-strong-sw.json"
    ) 9> "runs/ensemble-fold$k.lock" || true
}

final() {  # folder, train options...: the preset on all 27 cases, one of v2's two members (resumable)
    local out=$1; shift
    [[ "${FINALS:-train}" == skip || -e "$out/done" ]] && return 0
    local resume=(); [[ -e "$out/last.pt" ]] && resume=(--resume)
    medseg3d train "$data" --out "$out" --all-cases --quiet "${resume[@]}" "$@" "${budget[@]}" && touch "$out/done"
}

chain() {  # CV folder, tag, final folder, train options...: the preset on all 27 cases first, then its folds in
    # order, each with its extras and the fold's ensemble
    local cv=$1 tag=$2 all=$3; shift 3
    final "$all" "$@"
    for k in "${folds[@]}"; do
        FOLDS=$k scripts/crossval.sh "$data" "$split" "$cv" "$@" "${budget[@]}"
        extras "$cv" "$k" "$tag"
        ensemble "$k"
    done
}

chain runs/cv27-v1 v1 runs/v2-v1 --preset brats &
chain runs/cv27-strong strong runs/v2-strong --preset brats --augment strong &
wait
